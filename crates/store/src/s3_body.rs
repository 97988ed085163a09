//! A GET whose body breaks while it is read (the connection cut, or the bytes failing the CRC32C
//! that S3 sent with them) is read again inside the store: the SDK retries a request only until its
//! response head arrives, and one broken body must not fail a whole job attempt.

use std::error::Error;
use std::fmt;
use std::time::Duration;

/// Reads of one object's body, the first included, before the store gives up (transiently).
pub(crate) const GET_BODY_ATTEMPTS: u32 = 4;
/// First wait before a new read; doubled each time, capped, with jitter.
const BODY_BACKOFF_BASE: Duration = Duration::from_millis(100);
const BODY_BACKOFF_CAP: Duration = Duration::from_secs(2);

/// Why a body could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyFault {
    /// The connection broke (reset, closed early, timed out) before the body was whole.
    Cut,
    /// The body arrived whole but does not match the checksum S3 sent with it.
    Checksum,
}

impl BodyFault {
    /// Tells the two apart by the error's type (the SDK's checksum error), never by its text.
    pub fn of(err: &(dyn Error + 'static)) -> BodyFault {
        let mut next = Some(err);
        while let Some(e) = next {
            if e.downcast_ref::<aws_smithy_checksums::body::validate::Error>()
                .is_some()
            {
                return BodyFault::Checksum;
            }
            // An io::Error's source() skips the error it wraps: look at that one first.
            next = match e
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
            {
                Some(inner) => Some(inner as &(dyn Error + 'static)),
                None => e.source(),
            };
        }
        BodyFault::Cut
    }
}

impl fmt::Display for BodyFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BodyFault::Cut => "a cut connection",
            BodyFault::Checksum => "a CRC32C mismatch",
        })
    }
}

/// The wait before read `attempt + 1`: exponential, capped, with "equal jitter" (half fixed, half
/// random) so that readers cut together do not come back together.
pub(crate) fn body_backoff(attempt: u32) -> Duration {
    let exp = BODY_BACKOFF_BASE.saturating_mul(1 << attempt.saturating_sub(1).min(16));
    let ceiling = exp.min(BODY_BACKOFF_CAP);
    ceiling / 2 + ceiling.mul_f64(fastrand::f64() / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        for attempt in 1..=10 {
            let ceiling =
                (BODY_BACKOFF_BASE * 2u32.pow((attempt - 1).min(16))).min(BODY_BACKOFF_CAP);
            let d = body_backoff(attempt);
            assert!(d >= ceiling / 2 && d <= ceiling, "attempt {attempt}: {d:?}");
        }
    }

    #[test]
    fn a_checksum_error_is_told_from_a_cut() {
        let checksum = aws_smithy_checksums::body::validate::Error::ChecksumMismatch {
            expected: bytes::Bytes::from_static(b"a"),
            actual: bytes::Bytes::from_static(b"b"),
        };
        let wrapped = std::io::Error::other(checksum);
        assert_eq!(BodyFault::of(&wrapped), BodyFault::Checksum);
        let cut = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert_eq!(BodyFault::of(&cut), BodyFault::Cut);
    }
}
