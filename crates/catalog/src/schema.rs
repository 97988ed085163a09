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
