//! `report`'s core: what a run did and what it cost, from what the catalog recorded (never from
//! estimates). Everything the report shows is loaded once into [`ReportData`] by [`load`]; the
//! footprints and the cost are computed from that struct alone, and the binary draws the tables,
//! the charts ([`crate::charts`]) and the files from it.

use std::collections::BTreeMap;

use recast_catalog::WorkerSpan;
use recast_catalog::{AttemptBucket, CatalogError, CatalogRead, ProgressBucket, Run, RunStatus};
use recast_core::{Cost, Footprint, InstancePrice, OriginalsPolicy, PriceTable};
use serde::Serialize;

/// Bucket widths the charts may use, shortest first; the shortest that keeps a chart within
/// [`MAX_POINTS`] points is taken (1 s for a demo of a minute, 1 min for a 2-hour run, 1 h for a
/// run of four days).
const BUCKETS_MS: [i64; 9] = [
    1_000, 5_000, 10_000, 30_000, 60_000, 300_000, 900_000, 3_600_000, 21_600_000,
];
const MAX_POINTS: i64 = 120;

/// Why a report could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("failed to read the run's records")]
    Catalog(#[from] CatalogError),
}

/// A time series: (bucket start in Unix ms, count in the bucket).
pub type Series = Vec<(i64, u64)>;

/// Everything `report` shows.
#[derive(Debug, Clone, Serialize)]
pub struct ReportData {
    pub run: String,
    pub originals: OriginalsPolicy,
    pub status: RunStatus,
    /// First attempt start and last attempt finish of the run (the producer's included).
    pub started_ms: i64,
    pub finished_ms: i64,
    /// Width of every series' buckets.
    pub bucket_ms: i64,
    /// Photos first recorded (switched, kept or failed) per bucket.
    pub photos: Series,
    /// Photos that reached done per bucket.
    pub done: Series,
    /// S3 objects deleted per bucket, as recorded with the attempts (a sweep's deletes are
    /// recorded with the next attempt its worker records, seconds later).
    pub deletes: Series,
    pub failed: Series,
    pub kept: Series,
    /// Job attempts released for a retry per bucket.
    pub retries: Series,
    /// Throttling answers (S3 503 SlowDown, SQS OverLimit) per bucket, from the workers'
    /// heartbeat samples; empty when no worker recorded a sample (see [`throttle_series`]).
    pub throttles: Series,
    pub workers: Vec<WorkerSpan>,
    /// Sum of each worker's span: what `report` prices as instance hours.
    pub worker_hours: f64,
}

impl ReportData {
    pub fn wall_seconds(&self) -> f64 {
        (self.finished_ms - self.started_ms).max(0) as f64 / 1000.0
    }

    /// Counts per bucket as counts per minute.
    pub fn per_minute(&self, n: u64) -> f64 {
        n as f64 * 60_000.0 / self.bucket_ms as f64
    }

    /// Objects and bytes before the run and after it, from each photo's recorded state.
    pub fn footprints(&self) -> (Footprint, Footprint) {
        footprints(&self.status)
    }

    /// The recorded requests and worker hours, priced; an instance type the table does not
    /// know is priced at nothing (the binary checks the type before it loads the report).
    pub fn cost(&self, prices: &PriceTable, instance_type: &str) -> Cost {
        let instance = prices.instance(instance_type).unwrap_or(InstancePrice {
            vcpus: 0,
            spot_per_hour: 0.0,
        });
        prices.cost(instance, self.worker_hours, &self.status.requests)
    }
}

/// The bucket width for a run of `wall_ms`: the shortest that keeps under [`MAX_POINTS`].
pub fn bucket_for(wall_ms: i64) -> i64 {
    BUCKETS_MS
        .iter()
        .copied()
        .find(|b| wall_ms / b <= MAX_POINTS)
        .unwrap_or(BUCKETS_MS[BUCKETS_MS.len() - 1])
}

/// Loads what the report shows from the catalog; `bucket_ms` `None` picks it by [`bucket_for`].
pub async fn load(
    catalog: &dyn CatalogRead,
    run: &Run,
    bucket_ms: Option<i64>,
) -> Result<ReportData, ReportError> {
    let status = catalog.status(run).await?;
    let started_ms = status.first_started_ms.unwrap_or(run.created_at_ms);
    let finished_ms = status.last_finished_ms.unwrap_or(started_ms);
    let bucket_ms = bucket_ms
        .unwrap_or_else(|| bucket_for(finished_ms - started_ms))
        .max(1);
    let attempts = catalog.attempt_series(run, bucket_ms).await?;
    let progress = catalog.progress_series(run, bucket_ms).await?;
    let workers = catalog.worker_spans(run).await?;
    let worker_hours = workers.iter().map(|w| w.millis() as f64).sum::<f64>() / 3_600_000.0;
    // Every series covers the same buckets, those without records at zero, so that a chart's
    // line never bridges a quiet stretch.
    let starts = || {
        progress
            .iter()
            .map(|b| b.start_ms)
            .chain(attempts.iter().map(|b| b.start_ms))
    };
    let first = starts()
        .chain([started_ms / bucket_ms * bucket_ms])
        .min()
        .unwrap_or_default();
    let last = starts()
        .chain([finished_ms / bucket_ms * bucket_ms])
        .max()
        .unwrap_or_default();
    let dense = |points: Vec<(i64, u64)>| -> Series {
        let mut by_start: BTreeMap<i64, u64> = (0..=(last - first) / bucket_ms)
            .map(|i| (first + i * bucket_ms, 0))
            .collect();
        for (t, n) in points {
            *by_start.entry(t).or_default() += n;
        }
        by_start.into_iter().collect()
    };
    let from_progress = |f: fn(&ProgressBucket) -> u64| -> Series {
        dense(progress.iter().map(|b| (b.start_ms, f(b))).collect())
    };
    let from_attempts = |f: fn(&AttemptBucket) -> u64| -> Series {
        dense(attempts.iter().map(|b| (b.start_ms, f(b))).collect())
    };
    Ok(ReportData {
        run: run.name.clone(),
        originals: run.settings.originals,
        started_ms,
        finished_ms,
        bucket_ms,
        photos: from_progress(|b| b.recorded),
        done: from_progress(|b| b.done),
        failed: from_progress(|b| b.failed),
        kept: from_progress(|b| b.kept),
        deletes: from_attempts(|b| b.requests.s3_deleted_objects),
        retries: from_attempts(|b| b.retries),
        // Empty means "no worker recorded a sample" (the chart says so), not "none happened".
        throttles: match throttle_series(catalog, run, bucket_ms).await? {
            t if t.is_empty() => t,
            t => dense(t),
        },
        workers,
        worker_hours,
        status,
    })
}

/// Throttling answers per bucket (S3 SlowDown that reached recast after the SDK's retries, SQS
/// OverLimit at receives), from the workers' heartbeat samples of the run's fleet. Each sample
/// holds the answers since the worker's previous one.
async fn throttle_series(
    catalog: &dyn CatalogRead,
    run: &Run,
    bucket_ms: i64,
) -> Result<Series, ReportError> {
    let samples = catalog.samples(&run.name).await?;
    let mut buckets = BTreeMap::<i64, u64>::new();
    for s in samples {
        *buckets.entry(s.at_ms / bucket_ms * bucket_ms).or_default() += s.throttles;
    }
    Ok(buckets.into_iter().collect())
}

/// Objects and bytes before and after, from a run's status.
pub fn footprints(s: &RunStatus) -> (Footprint, Footprint) {
    let (objects_before, bytes_before) = s.before();
    let (objects_after, bytes_after) = s.after();
    (
        Footprint {
            objects: objects_before,
            bytes: bytes_before,
        },
        Footprint {
            objects: objects_after,
            bytes: bytes_after,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_keep_charts_readable() {
        assert_eq!(bucket_for(0), 1_000);
        assert_eq!(bucket_for(85_000), 1_000);
        assert_eq!(bucket_for(2 * 3_600_000), 60_000);
        assert_eq!(bucket_for(4 * 86_400_000), 3_600_000);
        assert_eq!(bucket_for(i64::MAX), 21_600_000);
    }
}
