//! `status` and `totals` from counters (migrations `0011_counters`): a handful of rows, whatever
//! the catalog's size, instead of a scan of photos, thumbnails and progress.
//!
//! The counters are kept by triggers on every write (PostgreSQL: one statement trigger per
//! statement over its transition tables, counters sharded by couple id modulo 64 so that
//! concurrent workers seldom update the same row; SQLite: row triggers into shard 0), so any path
//! that inserts rows — `add_couples`, a bulk import, a hand-written INSERT — keeps them. The SQL
//! here runs as written on both backends (`$N` placeholders are positional in SQLite too; sums are
//! `CAST` because PostgreSQL sums BIGINT into NUMERIC). The full scans stay, for
//! `status --recount`, which also repairs the counters ([`REPAIR`]).

use recast_core::{CatalogTotals, TallySnapshot};

use crate::rows::{catalog_totals, state_totals, StateTuple, TotalsRow};
use crate::{Checkpoint, Run, RunStatus, StateTotals};

/// The catalog's totals, as [`TotalsRow`] (couples with photos first) then the couples rows.
pub(crate) const CATALOG: &str = "SELECT CAST(coalesce(sum(couples_with_photos), 0) AS BIGINT),
            CAST(coalesce(sum(photos), 0) AS BIGINT), CAST(coalesce(sum(photo_bytes), 0) AS BIGINT),
            CAST(coalesce(sum(thumbnails), 0) AS BIGINT), CAST(coalesce(sum(thumbnail_bytes), 0) AS BIGINT),
            CAST(coalesce(sum(pixels), 0) AS BIGINT), CAST(coalesce(sum(sized_photos), 0) AS BIGINT),
            CAST(coalesce(sum(couples), 0) AS BIGINT)
     FROM catalog_counters";

/// `plan`'s sample frame: the photos counted, and the lowest and highest photo id (two index
/// probes), not a count over the photos table.
pub(crate) const PHOTO_ID_RANGE: &str =
    "SELECT (SELECT CAST(coalesce(sum(photos), 0) AS BIGINT) FROM catalog_counters),
            (SELECT min(id) FROM photos), (SELECT max(id) FROM photos)";

/// A checkpoint as [`STATUS`] reads it; none yet is the start.
pub(crate) fn checkpoint(row: Option<(i64, i64, i64)>) -> Checkpoint {
    row.map_or_else(Checkpoint::default, |(last, enqueued, finished)| {
        Checkpoint {
            last_couple: Some(recast_core::CoupleId(last)),
            enqueued: enqueued as u64,
            finished: finished != 0,
        }
    })
}

/// When the run's oldest enqueued couple whose job has not completed was enqueued ($1 run), in
/// Unix ms: the first rows of an index in time order. A row whose couple did complete (PostgreSQL:
/// the completion committed while the producer's checkpoint added the row) is passed over, each
/// looked up by one index probe. The check is a scalar subquery, not `NOT EXISTS`: PostgreSQL may
/// turn a `NOT EXISTS` into a hash anti-join over every complete attempt of the run (a cost that
/// grows with the run) when its estimates say so; a scalar subquery stays one probe per row read,
/// so the cost is the stale rows passed over (none when the triggers keep the table, as they do).
macro_rules! oldest_open_sql {
    () => {
        "SELECT o.enqueued_at FROM run_open_couples o
     WHERE o.run_id = $1
       AND (SELECT 1 FROM job_attempts a WHERE a.run_id = o.run_id
            AND a.couple_id = o.couple_id AND a.outcome = 'complete' LIMIT 1) IS NULL
     ORDER BY o.enqueued_at LIMIT 1"
    };
}

/// See [`oldest_open_sql`].
pub(crate) const OLDEST_OPEN: &str = oldest_open_sql!();

/// (attempts, couples complete, s3 get, s3 put, delete requests, deleted objects, sqs requests,
/// db statements, first started, last finished).
pub(crate) type AttemptTuple = (
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    Option<i64>,
    Option<i64>,
);

/// The catalog's counters plus the couples rows (which may own no photo).
pub(crate) type CatalogTuple = (i64, i64, i64, i64, i64, i64, i64, i64);

/// Rewrites the catalog's counters and one run's ($1) counters from a full scan, in order; run
/// them in one transaction that holds the counter tables against concurrent writers. The run's
/// complete couples (migration 0012) are rebuilt before its attempt counters, which SQLite's
/// trigger on them would otherwise count twice.
pub(crate) const REPAIR: [&str; 11] = [
    "DELETE FROM catalog_counters",
    "INSERT INTO catalog_counters (shard, couples, couples_with_photos, photos, photo_bytes,
                                   thumbnails, thumbnail_bytes, sized_photos, pixels)
     SELECT 0, (SELECT count(*) FROM couples), (SELECT count(DISTINCT couple_id) FROM photos),
            (SELECT count(*) FROM photos), (SELECT coalesce(sum(bytes), 0) FROM photos),
            (SELECT count(*) FROM thumbnails), (SELECT coalesce(sum(bytes), 0) FROM thumbnails),
            (SELECT count(*) FROM photos WHERE width IS NOT NULL AND height IS NOT NULL),
            (SELECT coalesce(sum(width * height), 0) FROM photos
              WHERE width IS NOT NULL AND height IS NOT NULL)",
    "DELETE FROM run_state_counters WHERE run_id = $1",
    "INSERT INTO run_state_counters (run_id, shard, state, photos, original_bytes, thumbnails,
                                     thumbnail_bytes, webp_bytes, kept, kept_original_bytes)
     SELECT pp.run_id, 0, pp.state, count(*), coalesce(sum(p.bytes), 0),
            coalesce(sum(t.n), 0), coalesce(sum(t.b), 0),
            coalesce(sum(pp.webp_bytes), 0), count(pp.kept_reason),
            coalesce(sum(CASE WHEN pp.kept_reason IS NOT NULL THEN p.bytes ELSE 0 END), 0)
     FROM photo_progress pp JOIN photos p ON p.id = pp.photo_id
     LEFT JOIN (SELECT photo_id, count(*) AS n, sum(bytes) AS b FROM thumbnails GROUP BY photo_id) t
            ON t.photo_id = pp.photo_id
     WHERE pp.run_id = $1
     GROUP BY pp.run_id, pp.state",
    "DELETE FROM run_reason_counters WHERE run_id = $1",
    "INSERT INTO run_reason_counters (run_id, shard, kind, reason, photos)
     SELECT run_id, 0, 'failed', failure_reason, count(*) FROM photo_progress
     WHERE run_id = $1 AND state = 'failed' GROUP BY run_id, failure_reason",
    "INSERT INTO run_reason_counters (run_id, shard, kind, reason, photos)
     SELECT run_id, 0, 'kept', kept_reason, count(*) FROM photo_progress
     WHERE run_id = $1 AND kept_reason IS NOT NULL GROUP BY run_id, kept_reason",
    "DELETE FROM run_complete_couples WHERE run_id = $1",
    "INSERT INTO run_complete_couples (run_id, couple_id)
     SELECT DISTINCT run_id, couple_id FROM job_attempts
     WHERE run_id = $1 AND outcome = 'complete' AND couple_id IS NOT NULL",
    "DELETE FROM run_attempt_counters WHERE run_id = $1",
    "INSERT INTO run_attempt_counters (run_id, shard, attempts, couples_complete, s3_get, s3_put,
                                       s3_delete_requests, s3_deleted_objects, sqs_requests,
                                       db_statements, first_started, last_finished)
     SELECT run_id, 0, count(*), count(DISTINCT CASE WHEN outcome = 'complete' THEN couple_id END),
            sum(s3_get), sum(s3_put), sum(s3_delete_requests), sum(s3_deleted_objects),
            sum(sqs_requests), sum(db_statements), min(started_at), max(finished_at)
     FROM job_attempts WHERE run_id = $1 GROUP BY run_id",
];

/// Everything [`status`] reads, in one statement: one round trip instead of five (each of which
/// costs two on PostgreSQL, where a new statement is parsed before it runs), which is most of a
/// `recast status` call on a busy server. Rows are tagged by `part`; the numbers are, by part:
/// `catalog` n1..n8 as [`CatalogTuple`]; `state` (k1 = state) n1..n7 as [`StateTuple`]'s numbers;
/// `reason` (k1 = kind, k2 = reason) n1 = photos; `attempts` n1..n8 and m1, m2 as
/// [`AttemptTuple`]; `checkpoint` n1..n3 = last couple, enqueued, finished (absent: none yet);
/// `tail` n1 = photos set aside by the sweeper, m1 = [`OLDEST_OPEN`] (migration 0014; the
/// blocked count reads a partial index of the marked rows only).
pub(crate) const STATUS: &str = concat!(
    "
    SELECT 'catalog' AS part, '' AS k1, '' AS k2,
           CAST(coalesce(sum(couples_with_photos), 0) AS BIGINT) AS n1,
           CAST(coalesce(sum(photos), 0) AS BIGINT) AS n2,
           CAST(coalesce(sum(photo_bytes), 0) AS BIGINT) AS n3,
           CAST(coalesce(sum(thumbnails), 0) AS BIGINT) AS n4,
           CAST(coalesce(sum(thumbnail_bytes), 0) AS BIGINT) AS n5,
           CAST(coalesce(sum(pixels), 0) AS BIGINT) AS n6,
           CAST(coalesce(sum(sized_photos), 0) AS BIGINT) AS n7,
           CAST(coalesce(sum(couples), 0) AS BIGINT) AS n8,
           CAST(NULL AS BIGINT) AS m1, CAST(NULL AS BIGINT) AS m2
    FROM catalog_counters
    UNION ALL
    SELECT 'state', state, '', CAST(sum(photos) AS BIGINT), CAST(sum(original_bytes) AS BIGINT),
           CAST(sum(thumbnails) AS BIGINT), CAST(sum(thumbnail_bytes) AS BIGINT),
           CAST(sum(webp_bytes) AS BIGINT), CAST(sum(kept) AS BIGINT),
           CAST(sum(kept_original_bytes) AS BIGINT), 0, NULL, NULL
    FROM run_state_counters WHERE run_id = $1 GROUP BY state
    UNION ALL
    SELECT 'reason', kind, reason, CAST(sum(photos) AS BIGINT), 0, 0, 0, 0, 0, 0, 0, NULL, NULL
    FROM run_reason_counters WHERE run_id = $1 GROUP BY kind, reason
    UNION ALL
    SELECT 'attempts', '', '', CAST(coalesce(sum(attempts), 0) AS BIGINT),
           CAST(coalesce(sum(couples_complete), 0) AS BIGINT),
           CAST(coalesce(sum(s3_get), 0) AS BIGINT), CAST(coalesce(sum(s3_put), 0) AS BIGINT),
           CAST(coalesce(sum(s3_delete_requests), 0) AS BIGINT),
           CAST(coalesce(sum(s3_deleted_objects), 0) AS BIGINT),
           CAST(coalesce(sum(sqs_requests), 0) AS BIGINT),
           CAST(coalesce(sum(db_statements), 0) AS BIGINT),
           min(first_started), max(last_finished)
    FROM run_attempt_counters WHERE run_id = $1
    UNION ALL
    SELECT 'checkpoint', '', '', last_couple_id, enqueued, finished, 0, 0, 0, 0, 0, NULL, NULL
    FROM producer_checkpoints WHERE run_id = $1
    UNION ALL
    SELECT 'tail', '', '',
           CAST((SELECT count(*) FROM photo_progress
                 WHERE run_id = $1 AND sweep_blocked IS NOT NULL) AS BIGINT),
           0, 0, 0, 0, 0, 0, 0,
           (",
    oldest_open_sql!(),
    "),
           NULL"
);

/// One row of [`STATUS`].
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct StatusRow {
    part: String,
    k1: String,
    k2: String,
    n1: i64,
    n2: i64,
    n3: i64,
    n4: i64,
    n5: i64,
    n6: i64,
    n7: i64,
    n8: i64,
    m1: Option<i64>,
    m2: Option<i64>,
}

/// A run's status from the rows of [`STATUS`].
pub(crate) fn status_from_rows(run: &Run, rows: Vec<StatusRow>) -> RunStatus {
    let mut catalog: CatalogTuple = (0, 0, 0, 0, 0, 0, 0, 0);
    let mut states = Vec::new();
    let mut reasons = Vec::new();
    let mut attempts: AttemptTuple = (0, 0, 0, 0, 0, 0, 0, 0, None, None);
    let mut saved = None;
    let mut tail = (0, None);
    for r in rows {
        let n = (r.n1, r.n2, r.n3, r.n4, r.n5, r.n6, r.n7, r.n8);
        match r.part.as_str() {
            "catalog" => catalog = n,
            "state" => states.push((r.k1, n.0, n.1, n.2, n.3, n.4, n.5, n.6)),
            "reason" => reasons.push((r.k1, r.k2, n.0)),
            "attempts" => attempts = (n.0, n.1, n.2, n.3, n.4, n.5, n.6, n.7, r.m1, r.m2),
            "tail" => tail = (n.0, r.m1),
            _ => saved = Some((n.0, n.1, n.2)),
        }
    }
    let mut s = status(run, catalog, states, reasons, attempts, checkpoint(saved));
    s.sweep_blocked = tail.0.max(0) as u64;
    s.oldest_unfinished_enqueued_ms = tail.1;
    s
}

/// The catalog's totals from its counters.
pub(crate) fn totals(row: CatalogTuple) -> CatalogTotals {
    let (a, b, c, d, e, f, g, _couples_rows) = row;
    catalog_totals((a, b, c, d, e, f, g) as TotalsRow)
}

/// A run's status from its counters: pending is what the catalog holds minus what the run
/// recorded, and a state (or reason) without photos is left out, as the scan leaves it out.
pub(crate) fn status(
    run: &Run,
    catalog: CatalogTuple,
    states: Vec<StateTuple>,
    reasons: Vec<(String, String, i64)>,
    attempts: AttemptTuple,
    checkpoint: Checkpoint,
) -> RunStatus {
    let mut s = RunStatus {
        run: run.name.clone(),
        originals: run.settings.originals,
        ..RunStatus::default()
    };
    let (_, photos, photo_bytes, thumbs, thumb_bytes, _, _, couples) = catalog;
    let mut pending = StateTotals {
        photos: photos.max(0) as u64,
        original_bytes: photo_bytes.max(0) as u64,
        thumbnails: thumbs.max(0) as u64,
        thumbnail_bytes: thumb_bytes.max(0) as u64,
        ..StateTotals::default()
    };
    for (state, t) in states.into_iter().map(state_totals) {
        pending.photos = pending.photos.saturating_sub(t.photos);
        pending.original_bytes = pending.original_bytes.saturating_sub(t.original_bytes);
        pending.thumbnails = pending.thumbnails.saturating_sub(t.thumbnails);
        pending.thumbnail_bytes = pending.thumbnail_bytes.saturating_sub(t.thumbnail_bytes);
        if t.photos > 0 {
            s.by_state.insert(state, t);
        }
    }
    if pending.photos > 0 {
        s.by_state.insert("pending".to_owned(), pending);
    }
    for (kind, reason, n) in reasons {
        let into = if kind == "failed" {
            &mut s.failures
        } else {
            &mut s.kept
        };
        if n > 0 {
            into.insert(reason, n as u64);
        }
    }
    let (n, complete, get, put, del_req, deleted, sqs, db, first, last) = attempts;
    s.couples_total = couples.max(0) as u64;
    s.attempts = n.max(0) as u64;
    s.couples_complete = complete.max(0) as u64;
    s.requests = TallySnapshot {
        s3_get: get as u64,
        s3_put: put as u64,
        s3_delete_requests: del_req as u64,
        s3_deleted_objects: deleted as u64,
        sqs_requests: sqs as u64,
        db_statements: db as u64,
    };
    s.first_started_ms = first;
    s.last_finished_ms = last;
    s.couples_enqueued = checkpoint.enqueued;
    s.producer_finished = checkpoint.finished;
    s
}

/// `status`, `totals` and `repair_counters` for a backend with a `pool` field, from the SQL above.
/// `$lock` is the backend's statement that holds the counter tables against concurrent writers for
/// the rest of the transaction (empty where the transaction itself does).
macro_rules! shared_counter_methods {
    ($catalog:ty, $lock:expr) => {
        impl $catalog {
            pub(crate) async fn counted_totals(
                &self,
            ) -> Result<recast_core::CatalogTotals, CatalogError> {
                let row: crate::counters::CatalogTuple = sqlx::query_as(crate::counters::CATALOG)
                    .fetch_one(&self.pool)
                    .await?;
                Ok(crate::counters::totals(row))
            }

            pub(crate) async fn counted_status(
                &self,
                run: &Run,
            ) -> Result<crate::RunStatus, CatalogError> {
                let rows: Vec<crate::counters::StatusRow> = sqlx::query_as(crate::counters::STATUS)
                    .bind(run.id.0)
                    .fetch_all(&self.pool)
                    .await?;
                Ok(crate::counters::status_from_rows(run, rows))
            }

            /// See [`crate::counters::OLDEST_OPEN`] (the status statement reads it too).
            pub(crate) async fn oldest_open(&self, run: &Run) -> Result<Option<i64>, CatalogError> {
                Ok(sqlx::query_scalar(crate::counters::OLDEST_OPEN)
                    .bind(run.id.0)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            pub(crate) async fn repair_run_counters(&self, run: &Run) -> Result<(), CatalogError> {
                let mut tx = self.pool.begin().await?;
                let lock: &str = $lock;
                if !lock.is_empty() {
                    sqlx::query(lock).execute(&mut *tx).await?;
                }
                for (i, sql) in crate::counters::REPAIR.iter().enumerate() {
                    let q = sqlx::query(sql);
                    // The first two rewrite the catalog's counters and take no run.
                    let q = if i < 2 { q } else { q.bind(run.id.0) };
                    q.execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(())
            }
        }
    };
}
pub(crate) use shared_counter_methods;

#[cfg(test)]
mod tests {
    use super::*;
    use recast_core::{RunId, RunSettings};

    #[test]
    fn pending_is_the_catalog_minus_what_the_run_recorded() {
        let run = Run {
            id: RunId(1),
            name: "r".into(),
            settings: RunSettings::default(),
            created_at_ms: 0,
        };
        let states = vec![
            ("done".into(), 2, 2000, 10, 100, 600, 1, 1000),
            ("switched".into(), 0, 0, 0, 0, 0, 0, 0),
        ];
        let reasons = vec![
            ("failed".into(), "decode".into(), 0),
            ("kept".into(), "quality".into(), 1),
        ];
        let attempts = (3, 1, 1, 1, 0, 0, 2, 4, Some(5), Some(9));
        let s = status(
            &run,
            (2, 5, 5000, 25, 250, 0, 0, 3),
            states,
            reasons,
            attempts,
            Checkpoint::default(),
        );
        assert_eq!(s.photos_in(recast_core::PhotoState::Pending), 3);
        assert_eq!(s.by_state["pending"].original_bytes, 3000);
        assert_eq!(s.by_state["pending"].thumbnails, 15);
        assert!(
            !s.by_state.contains_key("switched"),
            "an emptied state is left out"
        );
        assert!(s.failures.is_empty(), "a reason with no photo is left out");
        assert_eq!(s.kept["quality"], 1);
        assert_eq!((s.couples_total, s.couples_complete, s.attempts), (3, 1, 3));
        assert_eq!(s.first_started_ms, Some(5));
    }
}
