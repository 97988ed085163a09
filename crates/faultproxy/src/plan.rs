//! What the proxy injects: the operations it tells apart, the faults, their rates and their counts.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The operation a request is, told from its method, path and headers (S3 path-style REST, SQS
/// JSON protocol).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    GetObject,
    PutObject,
    DeleteObjects,
    /// HEAD, LIST, bucket operations: never faulted by rate.
    S3Other,
    ReceiveMessage,
    /// Every other SQS action (send, delete, change visibility, attributes).
    SqsOther,
}

impl Op {
    pub const ALL: [Op; 6] = [
        Op::GetObject,
        Op::PutObject,
        Op::DeleteObjects,
        Op::S3Other,
        Op::ReceiveMessage,
        Op::SqsOther,
    ];

    pub(crate) fn classify(
        method: &http::Method,
        uri: &http::Uri,
        headers: &http::HeaderMap,
    ) -> Op {
        if let Some(target) = headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
            return if target.ends_with(".ReceiveMessage") {
                Op::ReceiveMessage
            } else {
                Op::SqsOther
            };
        }
        // Path style: /bucket/key...; a request on the bucket alone is a bucket operation.
        let has_key = uri
            .path()
            .trim_start_matches('/')
            .split_once('/')
            .is_some_and(|(_, key)| !key.is_empty());
        let query = uri.query().unwrap_or_default();
        match *method {
            http::Method::GET if has_key => Op::GetObject,
            http::Method::PUT if has_key => Op::PutObject,
            http::Method::POST if query.split('&').any(|p| p == "delete" || p == "delete=") => {
                Op::DeleteObjects
            }
            _ => Op::S3Other,
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }

    fn is_sqs(self) -> bool {
        matches!(self, Op::ReceiveMessage | Op::SqsOther)
    }
}

/// One injected fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 503 SlowDown, not forwarded.
    SlowDown,
    /// Forwarded (it took effect), then answered 500 InternalError.
    Ambiguous500,
    /// Forwarded (it took effect), then the connection is cut halfway through the response body
    /// (or before the response head when the body is empty).
    Reset,
    /// Forwarded, then one byte of the body flipped; only GETs whose response carries a CRC32C.
    Corrupt,
}

/// Rates (0..=1, per request) of each fault and of added latency, drawn from a seeded generator.
#[derive(Debug, Clone)]
pub struct FaultPlan {
    pub seed: u64,
    pub slow_down: f64,
    pub ambiguous_500: f64,
    pub reset: f64,
    pub corrupt: f64,
    /// Share of requests delayed by a time drawn from `latency_ms`.
    pub latency: f64,
    pub latency_ms: (u64, u64),
    /// Fault SQS requests too (at a third of the S3 rates: a worker makes many more of them).
    pub sqs: bool,
}

impl FaultPlan {
    /// Forwards everything untouched.
    pub fn none() -> FaultPlan {
        FaultPlan {
            seed: 0,
            slow_down: 0.0,
            ambiguous_500: 0.0,
            reset: 0.0,
            corrupt: 0.0,
            latency: 0.0,
            latency_ms: (0, 0),
            sqs: false,
        }
    }

    /// The fault for a request of `op`, if one is drawn, and its added latency.
    pub(crate) fn draw(&self, rng: &mut fastrand::Rng, op: Op) -> (Option<Fault>, Duration) {
        let latency = if rng.f64() < self.latency {
            Duration::from_millis(
                rng.u64(self.latency_ms.0..=self.latency_ms.1.max(self.latency_ms.0)),
            )
        } else {
            Duration::ZERO
        };
        let scale = match op {
            Op::S3Other => return (None, latency),
            _ if op.is_sqs() && !self.sqs => return (None, latency),
            _ if op.is_sqs() => 1.0 / 3.0,
            _ => 1.0,
        };
        let x = rng.f64();
        let mut edge = 0.0;
        for (fault, rate) in [
            (Fault::SlowDown, self.slow_down),
            (Fault::Ambiguous500, self.ambiguous_500),
            (Fault::Reset, self.reset),
            (
                Fault::Corrupt,
                if op == Op::GetObject {
                    self.corrupt
                } else {
                    0.0
                },
            ),
        ] {
            edge += rate * scale;
            if x < edge {
                return (Some(fault), latency);
            }
        }
        (None, latency)
    }
}

/// What the proxy did, counted as it happened.
#[derive(Debug, Default)]
pub struct FaultCounts {
    pub(crate) requests: [AtomicU64; 6],
    pub(crate) slow_down: [AtomicU64; 6],
    pub(crate) ambiguous_500: [AtomicU64; 6],
    pub(crate) reset: [AtomicU64; 6],
    pub(crate) corrupt: [AtomicU64; 6],
    pub(crate) delayed: AtomicU64,
    pub(crate) held: AtomicU64,
    pub(crate) refused: AtomicU64,
    /// Requests of each operation that reached the upstream server and got its answer.
    pub(crate) upstream_done: [AtomicU64; 6],
}

fn sum(a: &[AtomicU64; 6]) -> u64 {
    a.iter().map(|c| c.load(Ordering::Relaxed)).sum()
}

impl FaultCounts {
    pub fn requests(&self) -> u64 {
        sum(&self.requests)
    }

    /// Faults of one kind injected so far, all operations together.
    pub fn of(&self, fault: Fault) -> u64 {
        sum(match fault {
            Fault::SlowDown => &self.slow_down,
            Fault::Ambiguous500 => &self.ambiguous_500,
            Fault::Reset => &self.reset,
            Fault::Corrupt => &self.corrupt,
        })
    }

    /// Faults of one kind injected on one operation.
    pub fn of_op(&self, fault: Fault, op: Op) -> u64 {
        let a = match fault {
            Fault::SlowDown => &self.slow_down,
            Fault::Ambiguous500 => &self.ambiguous_500,
            Fault::Reset => &self.reset,
            Fault::Corrupt => &self.corrupt,
        };
        a[op.index()].load(Ordering::Relaxed)
    }

    /// Every fault injected (latency and held responses not included).
    pub fn faults(&self) -> u64 {
        [
            Fault::SlowDown,
            Fault::Ambiguous500,
            Fault::Reset,
            Fault::Corrupt,
        ]
        .into_iter()
        .map(|f| self.of(f))
        .sum::<u64>()
            + self.refused()
    }

    pub fn delayed(&self) -> u64 {
        self.delayed.load(Ordering::Relaxed)
    }

    pub fn held(&self) -> u64 {
        self.held.load(Ordering::Relaxed)
    }

    /// Connections and requests refused while the proxy was down.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Requests of `op` the upstream server answered (whatever the proxy then did with the answer).
    pub fn upstream_done(&self, op: Op) -> u64 {
        self.upstream_done[op.index()].load(Ordering::Relaxed)
    }
}

impl fmt::Display for FaultCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} requests; injected: {} SlowDown 503, {} ambiguous 500 (took effect), {} resets \
             mid-response, {} corrupt GET bodies, {} refused while down; {} delayed, {} held",
            self.requests(),
            self.of(Fault::SlowDown),
            self.of(Fault::Ambiguous500),
            self.of(Fault::Reset),
            self.of(Fault::Corrupt),
            self.refused(),
            self.delayed(),
            self.held(),
        )?;
        for op in Op::ALL {
            let n = self.requests[op.index()].load(Ordering::Relaxed);
            if n == 0 {
                continue;
            }
            write!(
                f,
                "\n  {op:?}: {n} requests, {} slowdown, {} ambiguous 500, {} reset, {} corrupt",
                self.of_op(Fault::SlowDown, op),
                self.of_op(Fault::Ambiguous500, op),
                self.of_op(Fault::Reset, op),
                self.of_op(Fault::Corrupt, op),
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_told_apart() {
        let h = http::HeaderMap::new();
        let get = |m: http::Method, u: &str| Op::classify(&m, &u.parse().unwrap(), &h);
        assert_eq!(get(http::Method::GET, "/b/photos/1.jpg"), Op::GetObject);
        assert_eq!(get(http::Method::GET, "/b?list-type=2"), Op::S3Other);
        assert_eq!(get(http::Method::PUT, "/b/x.webp"), Op::PutObject);
        assert_eq!(get(http::Method::PUT, "/b"), Op::S3Other);
        assert_eq!(get(http::Method::POST, "/b?delete"), Op::DeleteObjects);
        assert_eq!(get(http::Method::HEAD, "/b/x.webp"), Op::S3Other);
        let mut sqs = http::HeaderMap::new();
        sqs.insert("x-amz-target", "AmazonSQS.ReceiveMessage".parse().unwrap());
        assert_eq!(
            Op::classify(&http::Method::POST, &"/".parse().unwrap(), &sqs),
            Op::ReceiveMessage
        );
    }

    #[test]
    fn rates_are_honoured_and_seeded() {
        let plan = FaultPlan {
            seed: 7,
            slow_down: 0.1,
            reset: 0.1,
            ..FaultPlan::none()
        };
        let mut rng = fastrand::Rng::with_seed(plan.seed);
        let faults = (0..10_000)
            .filter(|_| plan.draw(&mut rng, Op::GetObject).0.is_some())
            .count();
        assert!((1_700..2_300).contains(&faults), "{faults}");
        assert_eq!(plan.draw(&mut rng, Op::S3Other).0, None);
        assert_eq!(plan.draw(&mut rng, Op::ReceiveMessage).0, None);
    }
}
