//! `recast import`: sources behind one trait, matched through key patterns, staged per unit with
//! a checkpoint after each, resolved into the catalog at the end.

mod app_manifest;
mod classify;
mod csv_line;
mod error;
mod inventory;
mod listing;
mod run;
mod source;
mod summary;

pub use classify::{Classified, Patterns};
pub use error::ImportError;
pub use listing::{listing_of, listing_with, ListingShape, DEFAULT_LISTING_STREAMS};
pub use run::{import, ImportOptions, MAX_LISTED};
pub use source::{open_source, open_source_with, Given, Record, Source, Unit};
pub use summary::{ImportSummary, KindTotals};
