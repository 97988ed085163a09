use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// Counts of requests made to each external system on behalf of one job (or one worker), so that
/// `status` and `report` can state what the migration cost. Shared by reference between the
/// counting wrappers of the store, the queue and the catalog.
#[derive(Debug, Default)]
pub struct Tally {
    s3_get: AtomicU64,
    s3_put: AtomicU64,
    s3_delete_requests: AtomicU64,
    s3_deleted_objects: AtomicU64,
    sqs_requests: AtomicU64,
    db_statements: AtomicU64,
    /// Counts every request again as it is made (the worker's totals, for its samples); `take` and
    /// `absorb`, which move counts between tallies, leave it alone.
    parent: Option<std::sync::Arc<Tally>>,
}

/// A plain copy of a [`Tally`], as stored in the catalog.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TallySnapshot {
    pub s3_get: u64,
    pub s3_put: u64,
    pub s3_delete_requests: u64,
    pub s3_deleted_objects: u64,
    pub sqs_requests: u64,
    pub db_statements: u64,
}

impl Tally {
    /// A tally whose requests are also counted in `parent`.
    pub fn child_of(parent: std::sync::Arc<Tally>) -> Tally {
        Tally {
            parent: Some(parent),
            ..Tally::default()
        }
    }

    pub fn s3_get(&self) {
        self.s3_get.fetch_add(1, Ordering::Relaxed);
        if let Some(p) = &self.parent {
            p.s3_get();
        }
    }
    pub fn s3_put(&self) {
        self.s3_put.fetch_add(1, Ordering::Relaxed);
        if let Some(p) = &self.parent {
            p.s3_put();
        }
    }
    pub fn s3_delete(&self, objects: u64) {
        self.s3_delete_requests.fetch_add(1, Ordering::Relaxed);
        self.s3_deleted_objects
            .fetch_add(objects, Ordering::Relaxed);
        if let Some(p) = &self.parent {
            p.s3_delete(objects);
        }
    }
    pub fn sqs(&self, requests: u64) {
        self.sqs_requests.fetch_add(requests, Ordering::Relaxed);
        if let Some(p) = &self.parent {
            p.sqs(requests);
        }
    }
    pub fn db(&self, statements: u64) {
        self.db_statements.fetch_add(statements, Ordering::Relaxed);
        if let Some(p) = &self.parent {
            p.db(statements);
        }
    }

    pub fn snapshot(&self) -> TallySnapshot {
        TallySnapshot {
            s3_get: self.s3_get.load(Ordering::Relaxed),
            s3_put: self.s3_put.load(Ordering::Relaxed),
            s3_delete_requests: self.s3_delete_requests.load(Ordering::Relaxed),
            s3_deleted_objects: self.s3_deleted_objects.load(Ordering::Relaxed),
            sqs_requests: self.sqs_requests.load(Ordering::Relaxed),
            db_statements: self.db_statements.load(Ordering::Relaxed),
        }
    }

    /// Adds counts taken earlier back (they were not recorded after all).
    pub fn absorb(&self, s: TallySnapshot) {
        self.s3_get.fetch_add(s.s3_get, Ordering::Relaxed);
        self.s3_put.fetch_add(s.s3_put, Ordering::Relaxed);
        self.s3_delete_requests
            .fetch_add(s.s3_delete_requests, Ordering::Relaxed);
        self.s3_deleted_objects
            .fetch_add(s.s3_deleted_objects, Ordering::Relaxed);
        self.sqs_requests
            .fetch_add(s.sqs_requests, Ordering::Relaxed);
        self.db_statements
            .fetch_add(s.db_statements, Ordering::Relaxed);
    }

    /// Takes the counts and resets them, for counts that are attributed to whichever job records next
    /// (queue receives serve several jobs at once).
    pub fn take(&self) -> TallySnapshot {
        TallySnapshot {
            s3_get: self.s3_get.swap(0, Ordering::Relaxed),
            s3_put: self.s3_put.swap(0, Ordering::Relaxed),
            s3_delete_requests: self.s3_delete_requests.swap(0, Ordering::Relaxed),
            s3_deleted_objects: self.s3_deleted_objects.swap(0, Ordering::Relaxed),
            sqs_requests: self.sqs_requests.swap(0, Ordering::Relaxed),
            db_statements: self.db_statements.swap(0, Ordering::Relaxed),
        }
    }
}

impl std::ops::Add for TallySnapshot {
    type Output = TallySnapshot;
    fn add(self, o: TallySnapshot) -> TallySnapshot {
        TallySnapshot {
            s3_get: self.s3_get + o.s3_get,
            s3_put: self.s3_put + o.s3_put,
            s3_delete_requests: self.s3_delete_requests + o.s3_delete_requests,
            s3_deleted_objects: self.s3_deleted_objects + o.s3_deleted_objects,
            sqs_requests: self.sqs_requests + o.sqs_requests,
            db_statements: self.db_statements + o.db_statements,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_resets_and_add_sums() {
        let t = Tally::default();
        t.s3_get();
        t.s3_delete(700);
        t.sqs(2);
        let a = t.take();
        assert_eq!(a.s3_get, 1);
        assert_eq!(a.s3_deleted_objects, 700);
        assert_eq!(t.snapshot(), TallySnapshot::default());
        t.db(3);
        let b = a + t.snapshot();
        t.absorb(a);
        assert_eq!(t.snapshot().s3_deleted_objects, 700);
        assert_eq!(
            (b.db_statements, b.sqs_requests, b.s3_delete_requests),
            (3, 2, 1)
        );
    }

    #[test]
    fn a_child_counts_into_its_parent_once() {
        let parent = std::sync::Arc::new(Tally::default());
        let child = Tally::child_of(parent.clone());
        child.s3_get();
        child.db(2);
        let moved = child.take();
        child.absorb(moved);
        assert_eq!(parent.snapshot().s3_get, 1);
        assert_eq!(parent.snapshot().db_statements, 2);
    }
}
