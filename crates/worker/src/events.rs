//! One sink for everything a worker counts. The job, the sweeper, the budgeted store and the
//! fleet report each [`Event`] once to the worker's [`EventSink`], which feeds all that counts
//! it: the process's live [`Progress`] (progress bars), the worker's [`WorkerSummary`] (printed
//! when it stops), the heartbeat sample ([`SampleCounters`], stored with each heartbeat for
//! `status` and `report`) and the Prometheus metrics. Adding an event is one variant and one arm
//! here; the names of the metrics are those documented in the README and checked by the tests.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use recast_core::{JobOutcome, PhotoState};

use crate::{Progress, WorkerSummary};

/// Something a worker did that is counted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Event {
    /// A photo's first recorded state: switched (converted or kept) or failed.
    PhotoRecorded(PhotoState),
    /// Photos a sweep moved to done.
    PhotosDone(u64),
    /// Bytes of originals read.
    BytesIn(u64),
    /// Bytes of WebPs written.
    BytesOut(u64),
    /// A job's message was settled with this outcome.
    JobSettled(JobOutcome),
    /// A duplicate delivery met the couple's lease held by another live worker and was kept,
    /// invisible, until the lease ended (counted with the duplicates put back).
    DuplicateHeld,
    /// A job stopped running in this worker, whatever its outcome.
    JobEnded,
    /// A request to a service, and how it ended (`ok`, `throttled`, `not_found`, `error`).
    Request {
        service: &'static str,
        op: &'static str,
        result: &'static str,
    },
    /// S3 attempts answered SlowDown that the SDK retried by itself.
    ThrottledAttempts { op: &'static str, attempts: u64 },
    /// Objects a DeleteObjects request reported deleted.
    ObjectsDeleted(u64),
    /// A throttling answer (S3 SlowDown, SQS OverLimit) against a budget.
    Throttled {
        service: &'static str,
        budget: &'static str,
    },
    /// A wait at a budget's gate.
    LimiterWait {
        budget: &'static str,
        waited: Duration,
    },
}

/// What a worker counted since its last heartbeat: taken by the heartbeat, put back if it could
/// not be stored.
#[derive(Debug, Default)]
pub(crate) struct SampleCounters {
    pub jobs: AtomicU64,
    pub photos: AtomicU64,
    pub failed: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub throttles: AtomicU64,
    pub limiter_wait_ms: AtomicU64,
}

/// The one place a worker's events are counted.
#[derive(Debug, Default)]
pub(crate) struct EventSink {
    progress: Arc<Progress>,
    summary: Mutex<WorkerSummary>,
    sample: SampleCounters,
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl EventSink {
    /// A sink whose live counts go to `progress` (shared by the workers of a process).
    pub fn new(progress: Arc<Progress>) -> EventSink {
        EventSink {
            progress,
            ..EventSink::default()
        }
    }

    pub fn record(&self, event: Event) {
        let (p, s) = (&*self.progress, &self.sample);
        match event {
            Event::PhotoRecorded(state) => {
                add(&s.photos, 1);
                metrics::counter!("recast_photos_total", "outcome" => state.as_str()).increment(1);
                match state {
                    PhotoState::Failed => {
                        add(&p.photos_failed, 1);
                        add(&s.failed, 1);
                    }
                    PhotoState::Switched => add(&p.photos_converted, 1),
                    _ => {}
                }
            }
            Event::PhotosDone(n) => add(&p.photos_finished, n),
            Event::BytesIn(n) => {
                add(&p.bytes_in, n);
                add(&s.bytes_in, n);
                metrics::counter!("recast_bytes_total", "direction" => "in").increment(n);
            }
            Event::BytesOut(n) => {
                add(&p.bytes_out, n);
                add(&s.bytes_out, n);
                metrics::counter!("recast_bytes_total", "direction" => "out").increment(n);
            }
            Event::JobSettled(outcome) => self.job_settled(outcome),
            Event::DuplicateHeld => self.summary.lock().expect("summary lock").jobs_deferred += 1,
            Event::JobEnded => add(&s.jobs, 1),
            Event::Request {
                service,
                op,
                result,
            } => {
                metrics::counter!("recast_requests_total", "service" => service, "op" => op, "result" => result)
                    .increment(1);
            }
            Event::ThrottledAttempts { op, attempts } => {
                metrics::counter!("recast_s3_throttled_attempts_total", "op" => op)
                    .increment(attempts);
            }
            Event::ObjectsDeleted(n) => {
                metrics::counter!("recast_s3_deleted_objects_total").increment(n);
            }
            Event::Throttled { service, budget } => {
                add(&s.throttles, 1);
                metrics::counter!("recast_throttles_total", "service" => service, "budget" => budget)
                    .increment(1);
            }
            Event::LimiterWait { budget, waited } => {
                add(&s.limiter_wait_ms, waited.as_millis() as u64);
                metrics::histogram!("recast_limiter_wait_seconds", "budget" => budget)
                    .record(waited.as_secs_f64());
            }
        }
    }

    fn job_settled(&self, outcome: JobOutcome) {
        let p = &*self.progress;
        metrics::counter!("recast_jobs_total", "outcome" => outcome.as_str()).increment(1);
        let mut summary = self.summary.lock().expect("summary lock");
        match outcome {
            JobOutcome::Complete => {
                add(&p.jobs_completed, 1);
                summary.jobs_completed += 1;
            }
            JobOutcome::Retry => {
                add(&p.jobs_retried, 1);
                summary.jobs_retried += 1;
            }
            JobOutcome::DeadLettered => {
                add(&p.jobs_dead_lettered, 1);
                summary.jobs_dead_lettered += 1;
            }
            JobOutcome::Released => summary.jobs_released += 1,
            JobOutcome::Deferred => summary.jobs_deferred += 1,
            JobOutcome::Halted | JobOutcome::Producer | JobOutcome::Overhead => {}
        }
    }

    /// What the worker did, so far.
    pub fn summary(&self) -> WorkerSummary {
        *self.summary.lock().expect("summary lock")
    }

    /// The counts since the last heartbeat.
    pub fn sample(&self) -> &SampleCounters {
        &self.sample
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_event_feeds_the_progress_the_summary_and_the_sample() {
        let progress = Arc::new(Progress::default());
        let sink = EventSink::new(progress.clone());
        for e in [
            Event::PhotoRecorded(PhotoState::Switched),
            Event::PhotoRecorded(PhotoState::Failed),
            Event::BytesIn(1000),
            Event::BytesOut(300),
            Event::JobSettled(JobOutcome::Complete),
            Event::JobSettled(JobOutcome::Retry),
            Event::JobSettled(JobOutcome::Deferred),
            Event::JobEnded,
            Event::Throttled {
                service: "s3",
                budget: "s3_puts",
            },
            Event::PhotosDone(1),
        ] {
            sink.record(e);
        }
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        assert_eq!(
            [
                get(&progress.photos_converted),
                get(&progress.photos_failed),
                get(&progress.photos_finished),
                get(&progress.bytes_in),
                get(&progress.bytes_out),
                get(&progress.jobs_completed),
                get(&progress.jobs_retried),
            ],
            [1, 1, 1, 1000, 300, 1, 1]
        );
        assert_eq!(
            sink.summary(),
            WorkerSummary {
                jobs_completed: 1,
                jobs_retried: 1,
                jobs_deferred: 1,
                ..WorkerSummary::default()
            }
        );
        let s = sink.sample();
        assert_eq!(
            [
                get(&s.jobs),
                get(&s.photos),
                get(&s.failed),
                get(&s.bytes_in),
                get(&s.bytes_out),
                get(&s.throttles),
            ],
            [1, 2, 1, 1000, 300, 1]
        );
    }

    #[test]
    fn events_keep_their_metric_names() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let sink = EventSink::default();
        metrics::with_local_recorder(&recorder, || {
            for e in [
                Event::PhotoRecorded(PhotoState::Switched),
                Event::BytesIn(1000),
                Event::BytesOut(300),
                Event::JobSettled(JobOutcome::Complete),
                Event::JobSettled(JobOutcome::DeadLettered),
                Event::Request {
                    service: "s3",
                    op: "get",
                    result: "ok",
                },
                Event::ThrottledAttempts {
                    op: "put",
                    attempts: 2,
                },
                Event::ObjectsDeleted(5),
                Event::Throttled {
                    service: "sqs",
                    budget: "in_flight",
                },
                Event::LimiterWait {
                    budget: "s3_gets",
                    waited: Duration::from_millis(20),
                },
            ] {
                sink.record(e);
            }
        });
        let text = handle.render();
        for line in [
            r#"recast_photos_total{outcome="switched"} 1"#,
            r#"recast_bytes_total{direction="in"} 1000"#,
            r#"recast_bytes_total{direction="out"} 300"#,
            r#"recast_jobs_total{outcome="complete"} 1"#,
            r#"recast_jobs_total{outcome="dead_lettered"} 1"#,
            r#"recast_requests_total{service="s3",op="get",result="ok"} 1"#,
            r#"recast_s3_throttled_attempts_total{op="put"} 2"#,
            r#"recast_s3_deleted_objects_total 5"#,
            r#"recast_throttles_total{service="sqs",budget="in_flight"} 1"#,
            r#"recast_limiter_wait_seconds_count{budget="s3_gets"} 1"#,
        ] {
            assert!(text.contains(line), "no {line} in:\n{text}");
        }
    }
}
