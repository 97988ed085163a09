//! How a job attempt ended, by one name everywhere: the `job_attempts.outcome` column, the
//! `recast_jobs_total{outcome}` metric label, the logs and the report. The names are stable (a
//! catalog written by an earlier recast holds them): rename a variant, never its string.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How a job attempt ended. A worker records `Complete`, `Retry` and `Released` attempts in the
/// catalog with the requests they made; `launch` records its own requests as a `Producer`
/// attempt, and a worker the requests that served no single job as an `Overhead` one. `Deferred`,
/// `DeadLettered` and `Halted` are counted in the metrics only: such a delivery recorded nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobOutcome {
    /// Every photo of the couple is terminal; the message is deleted.
    Complete,
    /// Transient trouble: the message is visible again after a backoff.
    Retry,
    /// Stopped by a drain or the job's time limit: visible again at once.
    Released,
    /// A duplicate delivery of a couple another live worker holds, put back until its lease ends.
    Deferred,
    /// A message that can never be processed, sent to the dead-letter queue.
    DeadLettered,
    /// The worker cannot go on (its catalog or queue refuses it).
    Halted,
    /// The producer's (`launch`'s) requests.
    Producer,
    /// A worker's requests that served no single job (receives, sweeps, message deletes).
    Overhead,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown job outcome {0:?}")]
pub struct UnknownOutcome(pub String);

impl JobOutcome {
    pub const ALL: [JobOutcome; 8] = [
        JobOutcome::Complete,
        JobOutcome::Retry,
        JobOutcome::Released,
        JobOutcome::Deferred,
        JobOutcome::DeadLettered,
        JobOutcome::Halted,
        JobOutcome::Producer,
        JobOutcome::Overhead,
    ];

    /// The outcome's stored and exported name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobOutcome::Complete => "complete",
            JobOutcome::Retry => "retry",
            JobOutcome::Released => "released",
            JobOutcome::Deferred => "deferred",
            JobOutcome::DeadLettered => "dead_lettered",
            JobOutcome::Halted => "halted",
            JobOutcome::Producer => "producer",
            JobOutcome::Overhead => "overhead",
        }
    }

    /// An attempt's outcome from what it did: `Retry` on trouble, else `Released` if it was
    /// stopped before the end, else `Complete`.
    pub fn of_attempt(trouble: bool, stopped: bool) -> JobOutcome {
        match (trouble, stopped) {
            (true, _) => JobOutcome::Retry,
            (false, true) => JobOutcome::Released,
            (false, false) => JobOutcome::Complete,
        }
    }
}

impl fmt::Display for JobOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobOutcome {
    type Err = UnknownOutcome;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobOutcome::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| UnknownOutcome(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_keep_the_names_catalogs_already_hold() {
        let names: Vec<&str> = JobOutcome::ALL.iter().map(|o| o.as_str()).collect();
        assert_eq!(
            names,
            [
                "complete",
                "retry",
                "released",
                "deferred",
                "dead_lettered",
                "halted",
                "producer",
                "overhead"
            ]
        );
        for o in JobOutcome::ALL {
            assert_eq!(o.as_str().parse::<JobOutcome>(), Ok(o));
            assert_eq!(o.to_string(), o.as_str());
            assert_eq!(serde_json::to_string(&o).unwrap(), format!("\"{o}\""));
        }
        assert_eq!(
            "Complete".parse::<JobOutcome>(),
            Err(UnknownOutcome("Complete".into()))
        );
        assert_eq!(JobOutcome::of_attempt(true, true), JobOutcome::Retry);
        assert_eq!(JobOutcome::of_attempt(false, true), JobOutcome::Released);
        assert_eq!(JobOutcome::of_attempt(false, false), JobOutcome::Complete);
    }
}
