use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};

static IN_CLEAR: AtomicBool = AtomicBool::new(false);

/// Logs show user identifiers in clear from now on (the operator asked for it).
pub fn set_log_ids_in_clear(clear: bool) {
    IN_CLEAR.store(clear, Ordering::Relaxed);
}

/// How a couple or photo id appears in logs: a salted hash (stable for a given
/// `RECAST_LOG_SALT`, so an operator who knows an id can find it), or the id in clear.
pub fn redact_id(id: i64) -> String {
    if IN_CLEAR.load(Ordering::Relaxed) {
        return id.to_string();
    }
    let salt = std::env::var("RECAST_LOG_SALT").unwrap_or_else(|_| "recast".to_owned());
    let mut h =
        std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
            .build_hasher();
    h.write(salt.as_bytes());
    h.write_i64(id);
    format!("h{:012x}", h.finish() & 0xffff_ffff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_hashed_stably_unless_asked() {
        let a = redact_id(42);
        assert_eq!(a, redact_id(42));
        assert_ne!(a, redact_id(43));
        assert!(!a.contains("42"));
        set_log_ids_in_clear(true);
        assert_eq!(redact_id(42), "42");
        set_log_ids_in_clear(false);
    }
}
