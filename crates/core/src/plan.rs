//! The plan model: from what the catalog holds and what converting a sample of its photos measured,
//! predict a run's result (objects and bytes after), its requests, its duration on a fleet and
//! which budget binds. Pure arithmetic; `recast plan` gathers the inputs and prints the output.
//! What is modelled, and how, is documented in docs/report.md ("How plan predicts").

use serde::{Deserialize, Serialize};

use crate::{OriginalsPolicy, TallySnapshot};

/// What the catalog holds (every photo, whatever any run did: a plan is for a new run).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogTotals {
    /// Couples that own at least one photo (one job each).
    pub couples: u64,
    pub photos: u64,
    pub original_bytes: u64,
    pub thumbnails: u64,
    pub thumbnail_bytes: u64,
    /// Sum of width × height over the photos whose dimensions are recorded.
    pub pixels: u64,
    pub photos_with_dimensions: u64,
}

/// What converting a sample of real photos measured on this machine (the worker's conversion:
/// decode, encode, quality guard).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct SampleMeasure {
    pub photos: u64,
    pub original_bytes: u64,
    /// Photos that got a WebP, their originals' bytes and the WebPs' bytes.
    pub converted: u64,
    pub converted_original_bytes: u64,
    pub webp_bytes: u64,
    /// Photos that keep their original as their copy (quality, no saving, already WebP, animated).
    pub kept: u64,
    pub kept_original_bytes: u64,
    /// Photos that cannot be converted (undecodable, too large, missing).
    pub failed: u64,
    pub failed_original_bytes: u64,
    /// Pixels of the sampled photos that decoded.
    pub pixels: u64,
    /// Photos whose pixels are counted in `pixels`.
    pub decoded: u64,
    /// Seconds the conversions took, each timed on its thread (CPU time where the system gives
    /// it) while the others ran beside it on `threads` threads: core-seconds, as a worker's pool
    /// spends them.
    pub cpu_seconds: f64,
    pub threads: u32,
}

impl SampleMeasure {
    /// WebP bytes per original byte, over the photos that got a WebP.
    pub fn webp_ratio(&self) -> f64 {
        ratio(self.webp_bytes as f64, self.converted_original_bytes as f64)
    }

    /// CPU seconds per megapixel of the conversion on this machine.
    pub fn cpu_seconds_per_megapixel(&self) -> f64 {
        ratio(self.cpu_seconds, self.pixels as f64 / 1e6)
    }
}

/// The machines the run is planned for.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Fleet {
    /// Worker processes (`recast work`), one per instance.
    pub workers: u32,
    /// Instances the workers run on; `demo` runs every worker on one machine.
    pub instances: u32,
    /// vCPUs of one instance; the conversion speed per vCPU is the one measured here.
    pub vcpus_per_instance: u32,
    /// Couples in hand per worker (`--concurrency`): messages in flight.
    pub concurrency: u32,
    /// Photos per progress record (`--record-batch`).
    pub record_batch: u32,
    /// The catalog writes a job's attempt row in its own statement (SQLite) rather than in the
    /// progress record's (PostgreSQL).
    pub attempt_statement: bool,
}

/// Fleet-wide budgets (docs/architecture.md, "The fleet"), and the database's capacity, which no budget states.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PlanBudgets {
    pub s3_deletes_per_minute: f64,
    pub s3_puts_per_second: f64,
    pub s3_gets_per_second: f64,
    pub sqs_in_flight: f64,
    pub db_statements_per_second: f64,
}

impl Default for PlanBudgets {
    fn default() -> Self {
        PlanBudgets {
            s3_deletes_per_minute: 5_000_000.0,
            s3_puts_per_second: 3_000.0,
            s3_gets_per_second: 5_000.0,
            sqs_in_flight: 100_000.0,
            db_statements_per_second: DEFAULT_DB_STATEMENTS_PER_SECOND,
        }
    }
}

/// The database capacity a plan assumes unless told: statements per second that a mid-size
/// PostgreSQL instance sustains for recast's multi-row upserts of up to 32 rows. An assumption,
/// not a measurement: give yours with `--db-statements-per-sec`.
pub const DEFAULT_DB_STATEMENTS_PER_SECOND: f64 = 2_000.0;

/// Share of the cores the pipeline turns into conversions: `recast demo` measured 0.95-0.99 of
/// its codec ceiling (I/O, catalog writes and sweeps overlap the CPU work but cost some of it).
pub const PIPELINE_EFFICIENCY: f64 = 0.95;

/// Seconds a run takes beyond its conversions: the last jobs' records, the final sweep, the
/// workers' last polls. Measured on `recast demo` (0.5-1.5 s); a fleet's tail is larger (20 s
/// long polls, 30 s sweeps), which is small beside the hours of a real run.
pub const TAIL_SECONDS: f64 = 1.0;

/// Photos one sweep claims at a time (crates/worker sweep.rs), for the statement count.
const SWEEP_CLAIM_PHOTOS: f64 = 400.0;
/// Keys per DeleteObjects request.
const DELETE_BATCH: f64 = 1000.0;
/// Messages per SQS batch request.
const SQS_BATCH: f64 = 10.0;

/// The input of [`plan`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PlanInput {
    pub totals: CatalogTotals,
    pub sample: SampleMeasure,
    pub originals: OriginalsPolicy,
    pub fleet: Fleet,
    pub budgets: PlanBudgets,
}

/// Objects and bytes in the store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Footprint {
    pub objects: u64,
    pub bytes: u64,
}

impl Footprint {
    /// How much smaller `after` is than `self`, in percent.
    pub fn reduction_percent(&self, after: &Footprint) -> f64 {
        100.0 * ratio(self.bytes as f64 - after.bytes as f64, self.bytes as f64)
    }
}

/// What may bound a run's speed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    Cpu,
    S3Deletes,
    S3Puts,
    S3Gets,
    SqsInFlight,
    Db,
}

impl Limit {
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::Cpu => "CPU",
            Limit::S3Deletes => "S3 deletes",
            Limit::S3Puts => "S3 PUT",
            Limit::S3Gets => "S3 GET",
            Limit::SqsInFlight => "SQS in flight",
            Limit::Db => "DB",
        }
    }
}

/// One limit: what the run would need of it at full CPU speed, what it allows, and the photo
/// rate it allows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LimitUse {
    pub limit: Limit,
    pub need: f64,
    pub cap: f64,
    pub unit: &'static str,
    pub max_photos_per_second: f64,
}

impl LimitUse {
    pub fn utilisation(&self) -> f64 {
        ratio(self.need, self.cap)
    }
}

/// The prediction.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub couples: u64,
    pub photos: u64,
    pub before: Footprint,
    pub after: Footprint,
    /// Predicted requests by service (as `status` and `report` count them).
    pub requests: TallySnapshot,
    /// Predicted photos that get a WebP, keep their original, fail.
    pub converted: u64,
    pub kept: u64,
    pub failed: u64,
    pub webp_ratio: f64,
    pub cpu_seconds_per_megapixel: f64,
    pub cpu_seconds: f64,
    pub limits: Vec<LimitUse>,
    pub binding: Limit,
    pub photos_per_second: f64,
    pub duration_seconds: f64,
    pub instance_hours: f64,
}

fn ratio(n: f64, d: f64) -> f64 {
    if d > 0.0 {
        n / d
    } else {
        0.0
    }
}

/// Predicts a run over the whole catalog.
pub fn plan(input: &PlanInput) -> Plan {
    let t = &input.totals;
    let s = &input.sample;
    let f = &input.fleet;
    let photos = t.photos as f64;
    let sampled = s.photos.max(1) as f64;
    // Shares of photos (by count) and of original bytes (by bytes) in each outcome.
    let (fc, fk, ff) = (
        s.converted as f64 / sampled,
        s.kept as f64 / sampled,
        s.failed as f64 / sampled,
    );
    let sample_bytes = s.original_bytes.max(1) as f64;
    let (bc, bk, bf) = (
        s.converted_original_bytes as f64 / sample_bytes,
        s.kept_original_bytes as f64 / sample_bytes,
        s.failed_original_bytes as f64 / sample_bytes,
    );
    let webp_ratio = s.webp_ratio();
    let originals = t.original_bytes as f64;
    let thumbs = t.thumbnails as f64;
    let thumb_bytes = t.thumbnail_bytes as f64;
    let converted = photos * fc;
    let webp_bytes = originals * bc * webp_ratio;
    // Failed photos lose nothing; every other photo loses its thumbnails.
    let (objects_after, bytes_after) = match input.originals {
        OriginalsPolicy::Keep => (
            photos + converted + thumbs * ff,
            originals + webp_bytes + thumb_bytes * ff,
        ),
        // Kept and failed photos keep their originals even under delete.
        OriginalsPolicy::Delete => (
            converted + photos * (fk + ff) + thumbs * ff,
            webp_bytes + originals * (bk + bf) + thumb_bytes * ff,
        ),
    };

    // Requests, as the worker makes them (README, "How a job runs, and what it costs").
    let couples = t.couples as f64;
    let workers = f64::from(f.workers.max(1));
    let keys_deleted = thumbs * (1.0 - ff)
        + match input.originals {
            OriginalsPolicy::Keep => 0.0,
            OriginalsPolicy::Delete => converted,
        };
    // Full requests of 1,000 keys, and each worker's last partial one.
    let delete_requests = if keys_deleted > 0.0 {
        (keys_deleted / DELETE_BATCH).ceil() + (workers - 1.0).min(keys_deleted / DELETE_BATCH)
    } else {
        0.0
    };
    let message_batches = (couples / SQS_BATCH).ceil();
    // Send, receive and delete in tens; a few receives and queue stats per worker at the end.
    let sqs = 3.0 * message_batches + 3.0 * workers;
    let photos_per_couple = ratio(photos, couples);
    let records_per_couple = (photos_per_couple / f64::from(f.record_batch.max(1)))
        .ceil()
        .max(1.0);
    let db = couples * (records_per_couple + if f.attempt_statement { 1.0 } else { 0.0 })
        // Sweeps: a claim (two statements) per 400 photos, an advance per delete request.
        + 2.0 * (photos * (1.0 - ff) / SWEEP_CLAIM_PHOTOS).ceil()
        + delete_requests
        // The producer: a checkpoint per batch of ten messages, a page per 500 couples.
        + message_batches + (couples / 500.0).ceil() + 3.0
        // Each worker: its run, its final backlog checks, its last overhead row.
        + 3.0 * workers;
    let requests = TallySnapshot {
        s3_get: t.photos,
        s3_put: converted.round() as u64,
        s3_delete_requests: delete_requests.round() as u64,
        s3_deleted_objects: keys_deleted.round() as u64,
        sqs_requests: sqs.round() as u64,
        db_statements: db.round() as u64,
    };

    // CPU: the measured seconds per megapixel over the catalog's pixels (photos without recorded
    // dimensions count as the sample's average photo).
    let sample_pixels_per_photo = ratio(s.pixels as f64, s.decoded as f64);
    let unknown = t.photos.saturating_sub(t.photos_with_dimensions) as f64;
    let cpu_per_mp = s.cpu_seconds_per_megapixel();
    let cpu_seconds = if s.pixels > 0 {
        cpu_per_mp * (t.pixels as f64 + unknown * sample_pixels_per_photo) / 1e6
    } else {
        s.cpu_seconds / sampled * photos
    };
    let vcpus = f64::from(f.instances.max(1)) * f64::from(f.vcpus_per_instance.max(1));
    let cpu_rate = ratio(photos * vcpus * PIPELINE_EFFICIENCY, cpu_seconds);

    let b = &input.budgets;
    let keys_per_photo = ratio(keys_deleted, photos);
    let puts_per_photo = ratio(converted, photos);
    let db_per_photo = ratio(db, photos);
    let in_flight = workers * f64::from(f.concurrency.max(1));
    let bound = |cap: f64, per_photo: f64| {
        if per_photo > 0.0 {
            cap / per_photo
        } else {
            f64::INFINITY
        }
    };
    let limits = vec![
        LimitUse {
            limit: Limit::Cpu,
            need: vcpus,
            cap: vcpus,
            unit: "vCPUs",
            max_photos_per_second: cpu_rate,
        },
        LimitUse {
            limit: Limit::S3Deletes,
            need: cpu_rate * keys_per_photo * 60.0,
            cap: b.s3_deletes_per_minute,
            unit: "objects/min",
            max_photos_per_second: bound(b.s3_deletes_per_minute / 60.0, keys_per_photo),
        },
        LimitUse {
            limit: Limit::S3Puts,
            need: cpu_rate * puts_per_photo,
            cap: b.s3_puts_per_second,
            unit: "PUT/s",
            max_photos_per_second: bound(b.s3_puts_per_second, puts_per_photo),
        },
        LimitUse {
            limit: Limit::S3Gets,
            need: cpu_rate,
            cap: b.s3_gets_per_second,
            unit: "GET/s",
            max_photos_per_second: bound(b.s3_gets_per_second, 1.0),
        },
        LimitUse {
            limit: Limit::SqsInFlight,
            need: in_flight,
            cap: b.sqs_in_flight,
            unit: "messages",
            // More couples in hand than the cap allows: only the cap's share of the fleet works.
            max_photos_per_second: if in_flight > b.sqs_in_flight {
                cpu_rate * b.sqs_in_flight / in_flight
            } else {
                f64::INFINITY
            },
        },
        LimitUse {
            limit: Limit::Db,
            need: cpu_rate * db_per_photo,
            cap: b.db_statements_per_second,
            unit: "statements/s",
            max_photos_per_second: bound(b.db_statements_per_second, db_per_photo),
        },
    ];
    let binding = limits
        .iter()
        .min_by(|a, b| a.max_photos_per_second.total_cmp(&b.max_photos_per_second))
        .expect("limits are listed above");
    let rate = binding.max_photos_per_second;
    let duration_seconds = if photos > 0.0 && rate > 0.0 {
        photos / rate + TAIL_SECONDS
    } else {
        0.0
    };
    Plan {
        couples: t.couples,
        photos: t.photos,
        before: Footprint {
            objects: t.photos + t.thumbnails,
            bytes: t.original_bytes + t.thumbnail_bytes,
        },
        after: Footprint {
            objects: objects_after.round() as u64,
            bytes: bytes_after.round() as u64,
        },
        requests,
        converted: converted.round() as u64,
        kept: (photos * fk).round() as u64,
        failed: (photos * ff).round() as u64,
        webp_ratio,
        cpu_seconds_per_megapixel: cpu_per_mp,
        cpu_seconds,
        binding: binding.limit,
        limits,
        photos_per_second: rate,
        duration_seconds,
        instance_hours: f64::from(f.instances.max(1)) * duration_seconds / 3600.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1,000 couples of 10 photos of 2 MB and 4 MP, 5 thumbnails of 50 kB each; a sample of 10
    /// photos: 8 converted at a third of their size, 1 kept, 1 failed; 2 CPU seconds per photo.
    fn input(originals: OriginalsPolicy, workers: u32) -> PlanInput {
        PlanInput {
            totals: CatalogTotals {
                couples: 1000,
                photos: 10_000,
                original_bytes: 10_000 * 2_000_000,
                thumbnails: 50_000,
                thumbnail_bytes: 50_000 * 50_000,
                pixels: 10_000 * 4_000_000,
                photos_with_dimensions: 10_000,
            },
            sample: SampleMeasure {
                photos: 10,
                original_bytes: 20_000_000,
                converted: 8,
                converted_original_bytes: 16_000_000,
                webp_bytes: 16_000_000 / 3,
                kept: 1,
                kept_original_bytes: 2_000_000,
                failed: 1,
                failed_original_bytes: 2_000_000,
                pixels: 9 * 4_000_000,
                decoded: 9,
                cpu_seconds: 18.0,
                threads: 2,
            },
            originals,
            fleet: Fleet {
                workers,
                instances: workers,
                vcpus_per_instance: 2,
                concurrency: 16,
                record_batch: 32,
                attempt_statement: false,
            },
            budgets: PlanBudgets::default(),
        }
    }

    #[test]
    fn bytes_after_follow_the_policy_and_the_sample() {
        let keep = plan(&input(OriginalsPolicy::Keep, 1));
        assert_eq!(keep.before.objects, 60_000);
        assert_eq!(keep.before.bytes, 20_000_000_000 + 2_500_000_000);
        // Every original stays, 8,000 WebPs are added, the failed photos' 5,000 thumbnails stay.
        assert_eq!(keep.after.objects, 10_000 + 8_000 + 5_000);
        let webps = 8_000.0 * 2_000_000.0 / 3.0;
        let expect = 20_000_000_000.0 + webps + 250_000_000.0;
        assert!((keep.after.bytes as f64 - expect).abs() < 1e3, "{keep:?}");
        let delete = plan(&input(OriginalsPolicy::Delete, 1));
        // WebPs, the kept and failed originals, the failed photos' thumbnails.
        assert_eq!(delete.after.objects, 8_000 + 2_000 + 5_000);
        let expect = webps + 4_000_000_000.0 + 250_000_000.0;
        assert!(
            (delete.after.bytes as f64 - expect).abs() < 1e3,
            "{delete:?}"
        );
        assert!((delete.before.reduction_percent(&delete.after) - 57.4).abs() < 0.1);
        // Under delete the converted photos' originals are deleted too.
        assert_eq!(keep.requests.s3_deleted_objects, 45_000);
        assert_eq!(delete.requests.s3_deleted_objects, 53_000);
        assert_eq!(keep.requests.s3_get, 10_000);
        assert_eq!(keep.requests.s3_put, 8_000);
        assert_eq!(keep.requests.s3_delete_requests, 45);
        assert_eq!(keep.requests.sqs_requests, 3 * 100 + 3);
    }

    #[test]
    fn a_small_fleet_is_bound_by_its_cpus_and_a_large_one_by_a_budget() {
        let small = plan(&input(OriginalsPolicy::Keep, 2));
        assert_eq!(small.binding, Limit::Cpu);
        // 0.5 CPU seconds per megapixel over 40,000 MP, on 4 vCPUs at 95%.
        assert!((small.cpu_seconds - 20_000.0).abs() < 1e-6);
        let expect = 20_000.0 / (4.0 * PIPELINE_EFFICIENCY) + TAIL_SECONDS;
        assert!((small.duration_seconds - expect).abs() < 1e-6);
        assert!((small.instance_hours - 2.0 * expect / 3600.0).abs() < 1e-9);
        // 200 workers (190 photos/s of CPU) against lowered budgets: each binds in turn.
        let bound_by = |budgets: PlanBudgets| {
            plan(&PlanInput {
                budgets,
                ..input(OriginalsPolicy::Keep, 200)
            })
        };
        let in_flight = bound_by(PlanBudgets {
            sqs_in_flight: 1_000.0,
            ..PlanBudgets::default()
        });
        assert_eq!(in_flight.binding, Limit::SqsInFlight);
        // 3,200 couples in hand against 1,000: less than a third of the fleet can work.
        assert!((in_flight.photos_per_second - 190.0 * 1_000.0 / 3_200.0).abs() < 1e-6);
        let puts = bound_by(PlanBudgets {
            s3_puts_per_second: 100.0,
            ..PlanBudgets::default()
        });
        assert_eq!(puts.binding, Limit::S3Puts);
        assert!(
            (puts.photos_per_second - 125.0).abs() < 1e-9,
            "0.8 PUT per photo"
        );
        let db = bound_by(PlanBudgets {
            db_statements_per_second: 20.0,
            ..PlanBudgets::default()
        });
        assert_eq!(db.binding, Limit::Db);
        let d = db.limits.iter().find(|l| l.limit == Limit::Db).unwrap();
        assert!(d.utilisation() > 1.0);
        assert!((db.photos_per_second - d.max_photos_per_second).abs() < 1e-9);
        assert_eq!(bound_by(PlanBudgets::default()).binding, Limit::Cpu);
    }

    #[test]
    fn an_empty_catalog_plans_nothing() {
        let p = plan(&PlanInput {
            totals: CatalogTotals::default(),
            sample: SampleMeasure::default(),
            ..input(OriginalsPolicy::Keep, 1)
        });
        assert_eq!(p.duration_seconds, 0.0);
        assert_eq!(p.after, Footprint::default());
        assert_eq!(p.requests.s3_delete_requests, 0);
    }
}
