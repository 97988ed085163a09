//! The schema check of a catalog opened read-only: it cannot be migrated, so it must already be.

use sqlx::migrate::Migrator;

use crate::CatalogError;

/// The statement both backends answer with the migrations applied to their database.
pub(crate) const APPLIED_VERSIONS: &str = "SELECT version FROM _sqlx_migrations WHERE success";

/// Checks that every migration of `migrator` is among the `applied` versions read from the
/// database (an error reading them means the database holds no recast schema).
pub(crate) fn check_applied(
    applied: Result<Vec<i64>, sqlx::Error>,
    migrator: &Migrator,
) -> Result<(), CatalogError> {
    let applied = applied.map_err(|e| {
        CatalogError::SchemaNotCurrent(format!(
            "it holds no recast schema ({e}); `recast seed` or `recast launch` creates one"
        ))
    })?;
    let missing: Vec<String> = migrator
        .iter()
        .filter(|m| m.migration_type.is_up_migration() && !applied.contains(&m.version))
        .map(|m| format!("{} {}", m.version, m.description))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(CatalogError::SchemaNotCurrent(format!(
            "migrations {} are not applied; run a command that opens it for writing (e.g. `recast status`) with this version of recast first",
            missing.join(", ")
        )))
    }
}

/// The statement both backends answer with each applied migration's checksum.
pub(crate) const APPLIED_CHECKSUMS: &str =
    "SELECT version, checksum FROM _sqlx_migrations WHERE success ORDER BY version";

/// Whether a database already holds exactly `migrator`'s migrations, as read by
/// [`APPLIED_CHECKSUMS`] (an error: no recast schema yet). Opening such a catalog skips
/// `Migrator::run`, whose lock, table check and listing cost seven round trips on PostgreSQL: most
/// of a `recast status` call. Anything else (a missing migration, an edited one, a version this
/// build does not know) goes through `Migrator::run`, which applies or reports it.
pub(crate) fn is_current(
    applied: Result<Vec<(i64, Vec<u8>)>, sqlx::Error>,
    migrator: &Migrator,
) -> bool {
    let Ok(applied) = applied else {
        return false;
    };
    let expected: Vec<(i64, &[u8])> = migrator
        .iter()
        .filter(|m| m.migration_type.is_up_migration())
        .map(|m| (m.version, m.checksum.as_ref()))
        .collect();
    applied.len() == expected.len()
        && applied
            .iter()
            .zip(&expected)
            .all(|((v, c), (ev, ec))| v == ev && c.as_slice() == *ec)
}

#[cfg(test)]
mod tests {
    use super::*;

    static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/sqlite");

    fn applied() -> Vec<(i64, Vec<u8>)> {
        MIGRATOR
            .iter()
            .map(|m| (m.version, m.checksum.to_vec()))
            .collect()
    }

    #[test]
    fn only_exactly_the_migrations_of_this_build_skip_the_migrator() {
        assert!(is_current(Ok(applied()), &MIGRATOR));
        let mut missing = applied();
        missing.pop();
        assert!(!is_current(Ok(missing), &MIGRATOR), "a new migration runs");
        let mut edited = applied();
        edited[0].1[0] ^= 1;
        assert!(
            !is_current(Ok(edited), &MIGRATOR),
            "an edited one is reported"
        );
        let mut newer = applied();
        newer.push((9999, vec![0]));
        assert!(
            !is_current(Ok(newer), &MIGRATOR),
            "a newer schema is reported"
        );
        assert!(!is_current(Err(sqlx::Error::RowNotFound), &MIGRATOR));
    }
}
