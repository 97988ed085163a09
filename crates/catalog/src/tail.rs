//! The statements of a run's tail, written once for both backends (`$N` placeholders, which
//! SQLite accepts too): releasing a stopping worker's sweep claims, binding a run to its queue,
//! and finding the couples a requeue must send again.

/// Ends every sweep claim of `owner` ($2) on the run ($1): another worker may take the photos at
/// once instead of after the claim's lease.
pub(crate) const RELEASE_SWEEP: &str =
    "UPDATE photo_progress SET sweep_owner = NULL, sweep_until = NULL
     WHERE run_id = $1 AND sweep_owner = $2";

/// Binds the run ($1) to a queue ($2) at $3, unless it is bound already.
pub(crate) const BIND_QUEUE: &str =
    "INSERT INTO run_queues (run_id, queue_url, bound_at) VALUES ($1, $2, $3)
     ON CONFLICT (run_id) DO NOTHING";

/// The queue the run ($1) is bound to.
pub(crate) const BOUND_QUEUE: &str = "SELECT queue_url FROM run_queues WHERE run_id = $1";

/// Up to $3 couples with an id above $1 that the run ($2) enqueued and whose job has not completed
/// (`run_open_couples`, kept by triggers: a read of what is unfinished, not a scan of the
/// catalog), with their photos and thumbnail keys, as job rows (see `rows::JobRow`).
pub(crate) const UNFINISHED_COUPLES: &str = "SELECT c.id, p.id, p.original_key, t.key
     FROM (SELECT couple_id AS id FROM run_open_couples
           WHERE run_id = $2 AND couple_id > $1
           ORDER BY couple_id LIMIT $3) c
     LEFT JOIN photos p ON p.couple_id = c.id
     LEFT JOIN thumbnails t ON t.photo_id = p.id
     ORDER BY c.id, p.id, t.key";

/// Marks a photo ($2) of the run ($1) as one whose thumbnails the store refuses to delete, with
/// the reason ($3), and ends its sweep claim.
pub(crate) const BLOCK_SWEEP: &str =
    "UPDATE photo_progress SET sweep_blocked = $3, sweep_owner = NULL, sweep_until = NULL
     WHERE run_id = $1 AND photo_id = $2";

/// Clears every such mark of the run ($1) (a partial index holds only marked rows).
pub(crate) const UNBLOCK_SWEEPS: &str =
    "UPDATE photo_progress SET sweep_blocked = NULL WHERE run_id = $1 AND sweep_blocked IS NOT NULL";

/// The run's ($1) photos marked so.
pub(crate) const SWEEP_BLOCKED: &str =
    "SELECT count(*) FROM photo_progress WHERE run_id = $1 AND sweep_blocked IS NOT NULL";

use recast_core::{CoupleId, PhotoId, Tally};

use crate::{CatalogError, CoupleJob, Run};

/// A run's tail: sweep claims handed back, the run's queue, what a requeue sends. Every
/// [`crate::Catalog`] is one (a supertrait, so a `dyn Catalog` has these methods).
#[async_trait::async_trait]
pub trait RunTail {
    /// Ends every sweep claim `owner` holds on the run, so that other workers take the photos
    /// at once (a worker that drains or exits); returns how many photos it had claimed.
    async fn release_sweep(
        &self,
        run: &Run,
        owner: &str,
        tally: &Tally,
    ) -> Result<u64, CatalogError>;

    /// Binds the run to `queue_url` unless it is bound already, and returns the queue it is bound
    /// to (the one given, or the one bound before).
    async fn bind_queue(&self, run: &Run, queue_url: &str) -> Result<String, CatalogError>;

    /// The queue the run is bound to (none for a run launched before bindings existed).
    async fn bound_queue(&self, run: &Run) -> Result<Option<String>, CatalogError>;

    /// Like [`Catalog::couples_after`], but only couples of which the run has not recorded every
    /// photo: what `launch --requeue` sends again (one statement).
    async fn unfinished_couples_after(
        &self,
        run: &Run,
        after: Option<CoupleId>,
        limit: u32,
        tally: &Tally,
    ) -> Result<Vec<CoupleJob>, CatalogError>;

    /// Marks the photo as one whose thumbnails the store refuses to delete (`reason`): no worker
    /// claims it again and the run's sweep backlog leaves it out, until [`RunTail::unblock_sweeps`].
    async fn block_sweep(
        &self,
        run: &Run,
        photo: PhotoId,
        reason: &str,
        tally: &Tally,
    ) -> Result<(), CatalogError>;

    /// Clears every such mark of the run (the operator fixed the cause); returns how many.
    async fn unblock_sweeps(&self, run: &Run) -> Result<u64, CatalogError>;

    /// How many photos of the run are marked so.
    async fn sweep_blocked(&self, run: &Run) -> Result<u64, CatalogError>;
}

/// A queue URL as a binding compares it: the embedded queue's options (`?max_receives=…`) do not
/// name another queue.
pub fn queue_identity(url: &str) -> &str {
    if url.starts_with("sqlite:") {
        url.split_once('?').map_or(url, |(u, _)| u)
    } else {
        url.trim_end_matches('/')
    }
}

/// The [`crate::Catalog`] methods of the run's tail, the same text in both backends' impls (each
/// has a `pool` field of its own type).
macro_rules! tail_methods {
    ($backend:ty) => {
        #[async_trait::async_trait]
        impl crate::RunTail for $backend {
            async fn release_sweep(
                &self,
                run: &Run,
                owner: &str,
                tally: &Tally,
            ) -> Result<u64, CatalogError> {
                tally.db(1);
                Ok(sqlx::query(crate::tail::RELEASE_SWEEP)
                    .bind(run.id.0)
                    .bind(owner)
                    .execute(&self.pool)
                    .await?
                    .rows_affected())
            }

            async fn bind_queue(&self, run: &Run, queue_url: &str) -> Result<String, CatalogError> {
                sqlx::query(crate::tail::BIND_QUEUE)
                    .bind(run.id.0)
                    .bind(queue_url)
                    .bind(now_ms())
                    .execute(&self.pool)
                    .await?;
                Ok(<$backend as crate::RunTail>::bound_queue(self, run)
                    .await?
                    .unwrap_or_else(|| queue_url.to_owned()))
            }

            async fn bound_queue(&self, run: &Run) -> Result<Option<String>, CatalogError> {
                let row: Option<(String,)> = sqlx::query_as(crate::tail::BOUND_QUEUE)
                    .bind(run.id.0)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.map(|(u,)| u))
            }

            async fn unfinished_couples_after(
                &self,
                run: &Run,
                after: Option<CoupleId>,
                limit: u32,
                tally: &Tally,
            ) -> Result<Vec<CoupleJob>, CatalogError> {
                tally.db(1);
                let rows: Vec<crate::rows::JobRow> =
                    sqlx::query_as(crate::tail::UNFINISHED_COUPLES)
                        .bind(after.map_or(i64::MIN, |c| c.0))
                        .bind(run.id.0)
                        .bind(i64::from(limit))
                        .fetch_all(&self.pool)
                        .await?;
                Ok(crate::rows::group_jobs(rows))
            }

            async fn block_sweep(
                &self,
                run: &Run,
                photo: recast_core::PhotoId,
                reason: &str,
                tally: &Tally,
            ) -> Result<(), CatalogError> {
                tally.db(1);
                sqlx::query(crate::tail::BLOCK_SWEEP)
                    .bind(run.id.0)
                    .bind(photo.0)
                    .bind(reason)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn unblock_sweeps(&self, run: &Run) -> Result<u64, CatalogError> {
                Ok(sqlx::query(crate::tail::UNBLOCK_SWEEPS)
                    .bind(run.id.0)
                    .execute(&self.pool)
                    .await?
                    .rows_affected())
            }

            async fn sweep_blocked(&self, run: &Run) -> Result<u64, CatalogError> {
                let n: i64 = sqlx::query_scalar(crate::tail::SWEEP_BLOCKED)
                    .bind(run.id.0)
                    .fetch_one(&self.pool)
                    .await?;
                Ok(n as u64)
            }
        }
    };
}
pub(crate) use tail_methods;
