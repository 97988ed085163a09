//! Where an import reads objects from: one trait over the three sources, each read in units
//! (inventory file, listing page, manifest chunk) that are staged whole and checkpointed.

use async_trait::async_trait;
use recast_catalog::ObjectKind;

use super::listing::ListingShape;
use super::ImportError;

/// One object a source names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub key: String,
    pub bytes: u64,
    /// What the app's manifest says the object is (its ids and role); `None` for sources that
    /// only know keys, which the key patterns then classify.
    pub given: Option<Given>,
}

/// The ids and role the app's manifest gives an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Given {
    pub kind: ObjectKind,
    pub couple: String,
    pub photo: String,
}

/// A unit of a source: read whole, staged whole, then checkpointed.
pub struct Unit {
    /// What to call it in messages (the inventory file's key, the page's first key...).
    pub name: String,
    /// What the source needs to continue after this unit (the listing's last key).
    pub cursor: Option<String>,
    /// The unit's objects, streamed; an error ends the unit and the import.
    pub records: Box<dyn Iterator<Item = Result<Record, ImportError>> + Send>,
}

/// A source of objects, read unit after unit.
#[async_trait]
pub trait Source: Send {
    /// Unit number `index` (units before it were imported; `cursor` is what the last of them
    /// left), or `None` when the source is exhausted.
    async fn unit(&mut self, index: i64, cursor: Option<&str>)
        -> Result<Option<Unit>, ImportError>;
}

/// Opens the source an operator named, a live listing in one stream (see [`open_source_with`]).
pub async fn open_source(from: &str) -> Result<Box<dyn Source>, ImportError> {
    open_source_with(from, &ListingShape::sequential()).await
}

/// Opens the source an operator named: `s3://BUCKET/.../manifest.json` or
/// `file:///DIR/.../manifest.json` (an S3 Inventory report), `s3://BUCKET/PREFIX` or
/// `file:///DIR` (a live listing), `csv:PATH` or `csv:-` (the app's manifest).
/// A live listing of S3 is listed as `listing` says (ranges at once).
pub async fn open_source_with(
    from: &str,
    listing: &ListingShape,
) -> Result<Box<dyn Source>, ImportError> {
    if let Some(path) = from.strip_prefix("csv:") {
        return Ok(Box::new(super::app_manifest::AppManifest::open(path)?));
    }
    if !(from.starts_with("s3://") || from.starts_with("file://")) {
        return Err(ImportError::BadSource(from.to_owned()));
    }
    if from.ends_with("/manifest.json") {
        return Ok(Box::new(super::inventory::Inventory::open(from).await?));
    }
    Ok(Box::new(
        super::listing::Listing::open(from, listing).await?,
    ))
}
