//! The sweeper: deletes what switched photos no longer need — their thumbnails, then (under the
//! delete policy) their originals — in DeleteObjects requests filled to 1,000 keys across jobs,
//! and records how far each photo got. It works from the catalog, not from jobs' memory: photos
//! are claimed with a lease, so a dead worker's claims pass to another after the lease.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use recast_catalog::{Catalog, Run, SweepItem};
use recast_core::{advance_after_deletes, OriginalsPolicy, PhotoId, PhotoState, Step, Tally};
use recast_store::ObjectStore;
use tracing::{debug, warn};

use crate::events::Event;
use crate::fleet::Fleet;
use crate::JobError;

/// What a worker's sweeper holds for one run: claimed photos and the keys each still has to lose
/// in its current phase.
#[derive(Debug, Default)]
pub(crate) struct SweepBuffer {
    photos: BTreeMap<PhotoId, Held>,
}

#[derive(Debug)]
struct Held {
    state: PhotoState,
    original: String,
    /// The original is the photo's copy: it is never deleted.
    kept: bool,
    keys: Vec<String>,
    /// When its keys of the current phase entered the buffer.
    since: Instant,
}

impl SweepBuffer {
    fn key_count(&self) -> usize {
        self.photos.values().map(|h| h.keys.len()).sum()
    }

    fn add(&mut self, item: SweepItem, policy: OriginalsPolicy) {
        let policy = effective_policy(policy, item.kept);
        let keys = keys_for(
            item.state.next_step(policy),
            &item.thumbs,
            &item.original_key,
        );
        self.photos.entry(item.photo).or_insert(Held {
            state: item.state,
            original: item.original_key,
            kept: item.kept,
            keys,
            since: Instant::now(),
        });
    }

    /// How long the oldest key still held has waited (zero when none is held).
    fn oldest_wait(&self) -> Duration {
        self.photos
            .values()
            .filter(|h| !h.keys.is_empty())
            .map(|h| h.since.elapsed())
            .max()
            .unwrap_or_default()
    }

    /// Up to `max` keys, in photo order; a photo's keys may be split across requests.
    fn take(&mut self, max: usize) -> Vec<(PhotoId, String)> {
        let mut out = Vec::new();
        for (id, held) in self.photos.iter_mut() {
            while out.len() < max {
                let Some(k) = held.keys.pop() else { break };
                out.push((*id, k));
            }
            if out.len() == max {
                break;
            }
        }
        out
    }

    /// Forgets a photo whose keys the store refuses to delete (the catalog marks it).
    fn set_aside(&mut self, photo: PhotoId) {
        self.photos.remove(&photo);
    }

    fn give_back(&mut self, photo: PhotoId, key: String) {
        if let Some(h) = self.photos.get_mut(&photo) {
            h.keys.push(key);
        }
    }

    /// Photos whose keys are all gone, with their next state (the buffer is not changed: see
    /// [`SweepBuffer::advanced`], once the catalog has recorded the moves).
    fn finished(&self, policy: OriginalsPolicy) -> Vec<(PhotoId, PhotoState)> {
        self.photos
            .iter()
            .filter(|(_, h)| h.keys.is_empty())
            .map(|(id, held)| {
                let policy = effective_policy(policy, held.kept);
                // Every key of the phase is gone: the thumbnails of a switched photo, or the
                // original of one whose thumbnails went before.
                let original_deleted = held.state == PhotoState::ThumbsGone;
                (
                    *id,
                    advance_after_deletes(held.state, policy, true, original_deleted),
                )
            })
            .collect()
    }

    /// The catalog recorded `moves`: photos take their next state, and keep what is left to
    /// delete in it (originals under the delete policy) or leave the buffer. Until then they stay
    /// held as they were, so a failed record is simply tried again by the next round.
    fn advanced(&mut self, moves: &[(PhotoId, PhotoState)], policy: OriginalsPolicy) {
        for (id, next) in moves {
            let Some(held) = self.photos.get_mut(id) else {
                continue;
            };
            let policy = effective_policy(policy, held.kept);
            held.state = *next;
            held.keys = keys_for(next.next_step(policy), &[], &held.original);
            held.since = Instant::now();
            if next.is_terminal() {
                self.photos.remove(id);
            }
        }
    }
}

/// A kept photo's original is its copy: for it every run is a keep run.
fn effective_policy(policy: OriginalsPolicy, kept: bool) -> OriginalsPolicy {
    if kept {
        OriginalsPolicy::Keep
    } else {
        policy
    }
}

/// The keys a step of the state machine deletes.
fn keys_for(step: Step, thumbs: &[String], original: &str) -> Vec<String> {
    match step {
        Step::DeleteThumbs => thumbs.to_vec(),
        Step::DeleteOriginal => vec![original.to_owned()],
        _ => Vec::new(),
    }
}

/// What a sweep round needs.
pub(crate) struct SweepContext<'a> {
    pub catalog: &'a dyn Catalog,
    /// The store, counting into the worker's overhead.
    pub store: &'a dyn ObjectStore,
    pub tally: &'a Tally,
    pub owner: &'a str,
    pub lease: Duration,
    /// Keys per DeleteObjects request (the worker's delete share allows no larger ones).
    pub batch: usize,
    /// Photos claimed per statement: more than one request's worth, so requests can be filled.
    pub claim: u32,
    pub fleet: &'a Fleet,
    /// A partial request goes out once its oldest key has been held this long.
    pub partial_after: Duration,
}

impl SweepContext<'_> {
    /// Sends every full request it can make, and a partial one when its oldest key has waited
    /// `partial_after`; with `final_round`, also the last partial one whatever its age.
    pub async fn round(
        &self,
        run: &Run,
        buffer: &mut SweepBuffer,
        final_round: bool,
    ) -> Result<(), JobError> {
        let policy = run.settings.originals;
        let mut exhausted = false;
        loop {
            if buffer.key_count() < self.batch && !exhausted {
                let items = self
                    .fleet
                    .timed(
                        self.catalog
                            .claim_sweep(run, self.owner, self.claim, self.lease, self.tally),
                    )
                    .await
                    .map_err(JobError::retry)?;
                exhausted = items.len() < self.claim as usize;
                for item in items {
                    buffer.add(item, policy);
                }
            }
            let keys = buffer.key_count();
            let due = final_round || buffer.oldest_wait() >= self.partial_after;
            let send = keys >= self.batch || (due && keys > 0);
            let mut progressed = false;
            if send {
                let batch = buffer.take(self.batch);
                let list: Vec<String> = batch.iter().map(|(_, k)| k.clone()).collect();
                match self.store.delete_many(&list).await {
                    Ok(outcome) => {
                        progressed = outcome.failed.len() < batch.len();
                        self.settle_failures(run, buffer, batch, &outcome.failed)
                            .await?;
                    }
                    Err(e) => {
                        for (photo, key) in batch {
                            buffer.give_back(photo, key);
                        }
                        return Err(JobError::retry(format_args!("failed to delete: {e}")));
                    }
                }
            }
            let moves = buffer.finished(policy);
            if !moves.is_empty() {
                self.fleet
                    .timed(self.catalog.advance(run, &moves, self.tally))
                    .await
                    .map_err(JobError::retry)?;
                buffer.advanced(&moves, policy);
                let done = moves.iter().filter(|(_, s)| *s == PhotoState::Done).count() as u64;
                self.fleet.events().record(Event::PhotosDone(done));
                debug!(photos = moves.len(), "swept");
            }
            if !send || !progressed {
                return Ok(());
            }
        }
    }

    /// Keys a DeleteObjects request did not delete. A transient failure gives the key back for
    /// the next round. A denial (AccessDenied on the key: a policy on a prefix, an object lock) is
    /// permanent and never retried as if transient: when the store denied every key of the
    /// request the worker cannot delete at all and stops (fatal); otherwise the photos of the
    /// denied keys leave the buffer and are marked in the catalog, so that no worker claims them
    /// again until `launch --requeue` (status counts them).
    async fn settle_failures(
        &self,
        run: &Run,
        buffer: &mut SweepBuffer,
        batch: Vec<(PhotoId, String)>,
        failed: &[(String, recast_store::StoreError)],
    ) -> Result<(), JobError> {
        let denied: HashMap<&String, &recast_store::StoreError> = failed
            .iter()
            .filter(|(_, e)| e.is_permission_denied())
            .map(|(k, e)| (k, e))
            .collect();
        let retried: HashSet<&String> = failed
            .iter()
            .filter(|(_, e)| !e.is_permission_denied())
            .map(|(k, e)| {
                warn!(error = %e, key = k, "a key was not deleted; it will be retried");
                k
            })
            .collect();
        if !denied.is_empty() && denied.len() == batch.len() {
            let e = denied.values().next().expect("a denial");
            for (photo, key) in batch {
                buffer.give_back(photo, key);
            }
            return Err(JobError::fatal(format_args!(
                "the store refused to delete every key of a DeleteObjects request ({e}); grant the worker's role s3:DeleteObject on the bucket"
            )));
        }
        let mut blocked = BTreeMap::new();
        for (photo, key) in batch {
            if let Some(e) = denied.get(&key) {
                blocked.entry(photo).or_insert_with(|| e.to_string());
            } else if retried.contains(&key) {
                buffer.give_back(photo, key);
            }
        }
        for (photo, reason) in blocked {
            warn!(photo = photo.0, %reason, "the store refuses to delete a thumbnail of this photo; it is set aside (status counts it; fix the cause, then `recast launch --requeue`)");
            buffer.set_aside(photo);
            self.fleet
                .timed(self.catalog.block_sweep(run, photo, &reason, self.tally))
                .await
                .map_err(JobError::retry)?;
        }
        Ok(())
    }
}
