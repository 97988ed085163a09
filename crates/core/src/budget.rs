//! Fleet-wide budgets: limits that hold for the whole fleet of a run and are shared out among its
//! live workers (docs/architecture.md, "The fleet").

use serde::{Deserialize, Serialize};

/// The fleet-wide budgets of a run. Each worker enforces its share: the budget divided by the
/// live workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budgets {
    /// Objects deleted per minute per bucket (S3 throttles bulk deletes near 10 million a minute).
    pub s3_deletes_per_min: u64,
    /// PUT requests per second per prefix (S3 documents 3,500).
    pub s3_puts_per_sec: u64,
    /// GET requests per second per prefix (S3 documents 5,500).
    pub s3_gets_per_sec: u64,
    /// Messages in flight in the queue (SQS's hard cap is 120,000 per standard queue).
    pub max_in_flight: u64,
}

impl Default for Budgets {
    fn default() -> Self {
        Budgets {
            s3_deletes_per_min: 5_000_000,
            s3_puts_per_sec: 3_000,
            s3_gets_per_sec: 5_000,
            max_in_flight: 100_000,
        }
    }
}

/// Budgets given on one worker's command line: those present replace the run's stored ones.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetOverrides {
    pub s3_deletes_per_min: Option<u64>,
    pub s3_puts_per_sec: Option<u64>,
    pub s3_gets_per_sec: Option<u64>,
    pub max_in_flight: Option<u64>,
}

impl BudgetOverrides {
    pub fn is_empty(&self) -> bool {
        *self == BudgetOverrides::default()
    }

    /// The stored values, with the defaults for those never set.
    pub fn or_defaults(&self) -> Budgets {
        let d = Budgets::default();
        Budgets {
            s3_deletes_per_min: self.s3_deletes_per_min.unwrap_or(d.s3_deletes_per_min),
            s3_puts_per_sec: self.s3_puts_per_sec.unwrap_or(d.s3_puts_per_sec),
            s3_gets_per_sec: self.s3_gets_per_sec.unwrap_or(d.s3_gets_per_sec),
            max_in_flight: self.max_in_flight.unwrap_or(d.max_in_flight),
        }
    }
}

impl Budgets {
    /// One worker's share when `live` workers (itself included) run.
    pub fn share(&self, live: u32) -> Share {
        let live = f64::from(live.max(1));
        Share {
            deletes_per_sec: self.s3_deletes_per_min as f64 / 60.0 / live,
            puts_per_sec: self.s3_puts_per_sec as f64 / live,
            gets_per_sec: self.s3_gets_per_sec as f64 / live,
            // Rounded down so the fleet stays under the cap; a worker may always hold one.
            in_flight: ((self.max_in_flight as f64 / live).floor() as u64).max(1),
        }
    }
}

/// One worker's part of the budgets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Share {
    pub deletes_per_sec: f64,
    pub puts_per_sec: f64,
    pub gets_per_sec: f64,
    pub in_flight: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_divide_the_budget_among_live_workers() {
        let b = Budgets {
            s3_deletes_per_min: 600,
            s3_puts_per_sec: 30,
            s3_gets_per_sec: 60,
            max_in_flight: 20,
        };
        let s = b.share(3);
        assert!((s.deletes_per_sec - 600.0 / 60.0 / 3.0).abs() < 1e-9);
        assert!((s.puts_per_sec - 10.0).abs() < 1e-9);
        assert!((s.gets_per_sec - 20.0).abs() < 1e-9);
        // 3 x 6 = 18 <= 20: the fleet never exceeds the cap.
        assert_eq!(s.in_flight, 6);
        // No live worker known yet (registration pending): the worker counts itself.
        assert_eq!(b.share(0), b.share(1));
        // More workers than the cap: each may still hold one.
        assert_eq!(b.share(50).in_flight, 1);
    }

    #[test]
    fn overrides_replace_only_what_they_name() {
        let o = BudgetOverrides {
            max_in_flight: Some(20),
            ..Default::default()
        };
        assert!(!o.is_empty());
        let b = o.or_defaults();
        assert_eq!(b.max_in_flight, 20);
        assert_eq!(b.s3_deletes_per_min, Budgets::default().s3_deletes_per_min);
        assert!(BudgetOverrides::default().is_empty());
    }
}
