use recast_catalog::CatalogError;
use recast_core::PatternError;
use recast_store::StoreError;

/// Why an import stopped. Nothing of the unit (inventory file, listing page, manifest chunk) that
/// failed reaches the catalog; units before it stay staged, and a new run resumes after them.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{0}")]
    Pattern(#[from] PatternError),
    #[error("unknown import source {0:?}: use s3://BUCKET/.../manifest.json (an S3 Inventory report), s3://BUCKET/PREFIX or file:///DIR (a listing), or csv:PATH or csv:- (the app's manifest)")]
    BadSource(String),
    #[error("failed to read {key}: {source}")]
    Store {
        key: String,
        #[source]
        source: StoreError,
    },
    #[error("failed to read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("inventory manifest {key} is not valid: {reason}")]
    Manifest { key: String, reason: String },
    #[error("inventory manifest {key} does not match manifest.checksum (md5 {actual}, expected {expected}): the report is incomplete or altered; read it again once S3 has finished writing it")]
    ManifestChecksum {
        key: String,
        expected: String,
        actual: String,
    },
    #[error("inventory format {0} is not supported: recast reads CSV inventories (configure the report with output format CSV); Parquet and ORC would need the arrow/parquet stack, too heavy for this tool")]
    UnsupportedFormat(String),
    #[error("inventory file {key} does not match its MD5 in the manifest (md5 {actual}, expected {expected}): nothing of it was imported; fetch the report again")]
    FileChecksum {
        key: String,
        expected: String,
        actual: String,
    },
    #[error("inventory file {key} is not a readable gzip ({source}): nothing of it was imported; it is truncated or corrupt")]
    Gzip {
        key: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file} line {line}: {reason}; nothing of this file was imported")]
    Row {
        file: String,
        line: u64,
        reason: String,
    },
    #[error("catalog: {0}")]
    Catalog(#[from] CatalogError),
    #[error(
        "the thread reading the import's records stopped ({0}): nothing of the unit was imported"
    )]
    Parser(#[source] tokio::task::JoinError),
    #[error("the listing cursor in this import's checkpoint is unreadable ({0}); clear it with a new source name or re-create the catalog")]
    Cursor(String),
    #[error("the checkpoint of this import is unreadable ({0}); clear it with a new source name or re-create the catalog")]
    Checkpoint(serde_json::Error),
    #[error("an import from stdin cannot resume from its checkpoint; import from the file (csv:PATH) instead")]
    StdinResume,
}
