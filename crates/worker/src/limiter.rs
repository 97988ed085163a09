//! A worker's share of one fleet budget: a governor token bucket whose rate is the share times an
//! AIMD factor — halved when the service throttles, raised back additively while it does not.

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// The factor is never cut below this: a throttled worker keeps making some progress.
const MIN_FACTOR: f64 = 0.02;
/// Cuts closer together than this count as one throttling episode (many requests in flight fail
/// together).
const CUT_SPACING: Duration = Duration::from_secs(1);
/// The rate is rebuilt only when it moved by more than this fraction.
const REBUILD_STEP: f64 = 0.02;

/// Additive increase of the AIMD factor per recovery tick.
pub(crate) const RECOVER_STEP: f64 = 0.05;

#[derive(Debug)]
pub(crate) struct RateGate {
    /// Seconds of the rate a burst may hold (and so the largest request, in cells).
    burst_secs: f64,
    state: Mutex<GateState>,
}

#[derive(Debug)]
struct GateState {
    limiter: Arc<DefaultDirectRateLimiter>,
    burst: u32,
    /// The worker's share, per second.
    share: f64,
    factor: f64,
    applied: f64,
    last_cut: Option<Instant>,
}

impl RateGate {
    pub fn new(per_sec: f64, burst_secs: f64) -> RateGate {
        let (limiter, burst) = build(per_sec, burst_secs);
        RateGate {
            burst_secs,
            state: Mutex::new(GateState {
                limiter,
                burst,
                share: per_sec,
                factor: 1.0,
                applied: per_sec,
                last_cut: None,
            }),
        }
    }

    /// The worker's share changed (budgets or live workers).
    pub fn set_share(&self, per_sec: f64) {
        let mut s = self.state.lock().expect("gate lock");
        s.share = per_sec;
        self.apply(&mut s);
    }

    /// The service answered "slow down": halve the rate (once per episode).
    pub fn throttled(&self) {
        let mut s = self.state.lock().expect("gate lock");
        if s.last_cut.is_some_and(|t| t.elapsed() < CUT_SPACING) {
            return;
        }
        s.last_cut = Some(Instant::now());
        s.factor = (s.factor * 0.5).max(MIN_FACTOR);
        self.apply(&mut s);
    }

    /// A quiet tick: raise the factor by `step`, up to the whole share.
    pub fn recover(&self, step: f64) {
        let mut s = self.state.lock().expect("gate lock");
        if s.factor < 1.0 {
            s.factor = (s.factor + step).min(1.0);
            self.apply(&mut s);
        }
    }

    /// The rate being enforced, per second.
    pub fn rate(&self) -> f64 {
        let s = self.state.lock().expect("gate lock");
        s.applied
    }

    #[cfg(test)]
    pub fn factor(&self) -> f64 {
        self.state.lock().expect("gate lock").factor
    }

    /// The most cells one request should take at once (a DeleteObjects' keys, say).
    pub fn burst(&self) -> u32 {
        self.state.lock().expect("gate lock").burst
    }

    /// Waits until `n` cells may be spent; returns how long it waited.
    pub async fn acquire(&self, n: u32) -> Duration {
        let started = Instant::now();
        let mut left = n;
        while left > 0 {
            let (limiter, burst) = {
                let s = self.state.lock().expect("gate lock");
                (s.limiter.clone(), s.burst)
            };
            let take = left.min(burst);
            let cells = NonZeroU32::new(take).expect("take is at least 1");
            // `take <= burst`, so the limiter can always grant it eventually.
            if limiter.until_n_ready(cells).await.is_ok() {
                left -= take;
            }
        }
        started.elapsed()
    }

    fn apply(&self, s: &mut GateState) {
        let rate = (s.share * s.factor).max(0.001);
        if (rate - s.applied).abs() <= s.applied * REBUILD_STEP {
            return;
        }
        let (limiter, burst) = build(rate, self.burst_secs);
        s.limiter = limiter;
        s.burst = burst;
        s.applied = rate;
    }
}

/// A limiter of `per_sec` whose bucket holds `burst_secs` of it, created empty: a rebuilt bucket
/// must not hand out a fresh burst, or frequent changes would add up to more than the rate.
fn build(per_sec: f64, burst_secs: f64) -> (Arc<DefaultDirectRateLimiter>, u32) {
    let per_sec = per_sec.max(0.001);
    let burst = (per_sec * burst_secs).floor().clamp(1.0, 1000.0) as u32;
    let period = Duration::from_secs_f64(1.0 / per_sec);
    let quota = Quota::with_period(period)
        .expect("period is positive")
        .allow_burst(NonZeroU32::new(burst).expect("burst is at least 1"));
    let limiter = RateLimiter::direct(quota);
    let _ = limiter.check_n(NonZeroU32::new(burst).expect("burst is at least 1"));
    (Arc::new(limiter), burst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_gate_holds_its_rate() {
        let gate = RateGate::new(200.0, 0.05);
        assert_eq!(gate.burst(), 10);
        let started = Instant::now();
        gate.acquire(100).await;
        let secs = started.elapsed().as_secs_f64();
        // 100 cells at 200/s from an empty bucket: half a second.
        assert!((0.4..1.0).contains(&secs), "{secs} s");
    }

    #[test]
    fn throttling_halves_and_quiet_ticks_recover_additively() {
        let gate = RateGate::new(100.0, 1.0);
        gate.throttled();
        assert!((gate.rate() - 50.0).abs() < 1e-6);
        // A second answer of the same episode does not cut again.
        gate.throttled();
        assert!((gate.rate() - 50.0).abs() < 1e-6);
        for _ in 0..5 {
            gate.recover(RECOVER_STEP);
        }
        assert!((gate.factor() - 0.75).abs() < 1e-9, "{}", gate.factor());
        for _ in 0..20 {
            gate.recover(RECOVER_STEP);
        }
        assert_eq!(gate.factor(), 1.0);
        assert!((gate.rate() - 100.0).abs() < 1e-6);
        // A new share keeps the factor.
        gate.set_share(30.0);
        assert!((gate.rate() - 30.0).abs() < 1e-6);
    }
}
