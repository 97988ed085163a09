//! Throttling seen inside the SDK's retries: an interceptor counts every attempt S3 answered
//! 503 (SlowDown), by operation, so that a worker's budgets can slow down while a request is still
//! retrying, not only once it has given up.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use aws_sdk_s3::config::interceptors::{
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_s3::error::BoxError;
use aws_smithy_types::config_bag::{Storable, StoreReplace};

/// Attempts answered 503 so far, by the budget they spend (a snapshot of running totals).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ThrottledAttempts {
    pub gets: u64,
    pub puts: u64,
    pub deletes: u64,
    /// HEAD, LIST and bucket requests.
    pub other: u64,
}

/// The running totals one store's interceptor adds to.
#[derive(Debug, Default)]
pub(crate) struct ThrottleCounter {
    gets: AtomicU64,
    puts: AtomicU64,
    deletes: AtomicU64,
    other: AtomicU64,
}

impl ThrottleCounter {
    pub fn snapshot(&self) -> ThrottledAttempts {
        ThrottledAttempts {
            gets: self.gets.load(Ordering::Relaxed),
            puts: self.puts.load(Ordering::Relaxed),
            deletes: self.deletes.load(Ordering::Relaxed),
            other: self.other.load(Ordering::Relaxed),
        }
    }

    fn count(&self, budget: BudgetOf) {
        let counter = match budget {
            BudgetOf::Gets => &self.gets,
            BudgetOf::Puts => &self.puts,
            BudgetOf::Deletes => &self.deletes,
            BudgetOf::Other => &self.other,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Which budget an attempt's request spends, noted before it is sent (the request itself is gone
/// from the context once the attempt is over).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BudgetOf {
    Gets,
    Puts,
    Deletes,
    Other,
}

impl Storable for BudgetOf {
    type Storer = StoreReplace<Self>;
}

impl BudgetOf {
    fn of(method: &str, uri: &str) -> BudgetOf {
        let query = uri.split_once('?').map_or("", |(_, q)| q);
        match method {
            "GET" if !query.contains("list-type") => BudgetOf::Gets,
            "PUT" => BudgetOf::Puts,
            "POST"
                if query
                    .split('&')
                    .any(|p| p == "delete" || p.starts_with("delete=")) =>
            {
                BudgetOf::Deletes
            }
            _ => BudgetOf::Other,
        }
    }
}

/// Counts, after each attempt, a 503 answer into its store's [`ThrottleCounter`].
#[derive(Debug)]
pub(crate) struct ThrottleInterceptor(pub Arc<ThrottleCounter>);

impl Intercept for ThrottleInterceptor {
    fn name(&self) -> &'static str {
        "recast::ThrottleInterceptor"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let req = context.request();
        cfg.interceptor_state()
            .store_put(BudgetOf::of(req.method(), req.uri()));
        Ok(())
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let throttled = context
            .response()
            .is_some_and(|r| r.status().as_u16() == 503);
        if throttled {
            self.0
                .count(cfg.load::<BudgetOf>().copied().unwrap_or(BudgetOf::Other));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_are_counted_by_budget() {
        let c = ThrottleCounter::default();
        for (method, uri) in [
            ("GET", "http://h/b/k.jpg?x-id=GetObject"),
            ("PUT", "http://h/b/k.webp"),
            ("POST", "http://h/b?delete"),
            ("POST", "http://h/b?delete&x-id=DeleteObjects"),
            ("GET", "http://h/b?list-type=2"),
        ] {
            c.count(BudgetOf::of(method, uri));
        }
        assert_eq!(
            c.snapshot(),
            ThrottledAttempts {
                gets: 1,
                puts: 1,
                deletes: 2,
                other: 1
            }
        );
    }
}
