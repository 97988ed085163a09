use std::time::Duration;

/// How a job ended when it did not complete: the runner acts on this, not on error strings.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Something transient (store, database or queue trouble): release the message so that it is
    /// received again after a backoff. Nothing was lost; progress made so far is recorded.
    #[error("will retry: {reason}")]
    Retry { reason: String },
    /// The message can never be processed (malformed, unknown run): dead-letter it with the reason.
    #[error("abandoned: {reason}")]
    Abort { reason: String },
    /// The job was stopped before its end (drain, or over its maximum duration) after recording
    /// what it had done: make the message visible again at once, for any worker.
    #[error("released: {reason}")]
    Release { reason: String },
    /// Another live worker holds the couple (a duplicate delivery): put the message back until
    /// its lease ends.
    #[error("couple held by {owner}")]
    Busy { owner: String, until_ms: i64 },
    /// Nothing can proceed on this worker (the store denies its writes, the bucket is gone):
    /// release the message and stop the worker with the reason, rather than fail every job.
    #[error("worker cannot go on: {reason}")]
    Fatal { reason: String },
}

impl JobError {
    pub fn retry(reason: impl std::fmt::Display) -> JobError {
        JobError::Retry {
            reason: reason.to_string(),
        }
    }

    pub fn abort(reason: impl std::fmt::Display) -> JobError {
        JobError::Abort {
            reason: reason.to_string(),
        }
    }

    pub fn fatal(reason: impl std::fmt::Display) -> JobError {
        JobError::Fatal {
            reason: reason.to_string(),
        }
    }

    pub fn is_fatal(&self) -> bool {
        matches!(self, JobError::Fatal { .. })
    }

    /// A store error of a whole request that no photo can do without (the PUT of a WebP):
    /// transient trouble is retried; a denial or a missing bucket stops the worker; any other
    /// permanent refusal is retried too, since the same request may be accepted (a checksum
    /// refused after corruption in transit).
    pub fn store(what: &str, e: recast_store::StoreError) -> JobError {
        if e.is_permission_denied() || e.is_no_such_bucket() {
            JobError::fatal(format_args!("failed to {what}: {e}"))
        } else {
            JobError::retry(format_args!("failed to {what}: {e}"))
        }
    }

    /// A catalog error: retried when the database may answer later; the worker stopped when the
    /// database refuses every such statement (read-only, a missing grant, a full disk: every
    /// message would fail the same way, and dead-lettering them would empty the queue into the
    /// dead-letter queue); abandoned otherwise (an unknown run, a malformed row).
    pub fn catalog(e: recast_catalog::CatalogError) -> JobError {
        if e.is_transient() {
            JobError::retry(e)
        } else if e.is_database_wide() {
            JobError::fatal(format_args!(
                "the catalog refuses the worker's statements: {e}; no job can proceed (a read-only \
                 server, a missing grant, a full disk?)"
            ))
        } else {
            JobError::abort(e)
        }
    }
}

/// Backoff before the `attempt`-th retry of a job: 2 s doubling up to 2 min, with up to 50% jitter
/// so that a fleet hit by the same outage does not come back in step.
pub fn retry_backoff(attempt: u32) -> Duration {
    const BASE: Duration = Duration::from_secs(2);
    const CAP: Duration = Duration::from_secs(120);
    let exp = BASE
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
        .min(CAP);
    exp.mul_f64(0.5 + fastrand::f64() / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        for attempt in 1..40 {
            let d = retry_backoff(attempt);
            assert!(
                d >= Duration::from_secs(1) && d <= Duration::from_secs(180),
                "{attempt}: {d:?}"
            );
        }
        assert!(retry_backoff(1) <= Duration::from_secs(3));
        assert!(retry_backoff(8) >= Duration::from_secs(60));
    }
}
