//! Library cores of the operator verbs that move a store's description in and out of the
//! catalog: [`import`] (an S3 Inventory report, a live listing or the app's own manifest, through
//! key patterns, into the catalog) and [`export`] (the completion report of a run, one row per
//! photo). No command-line types here: the binary parses arguments and calls these.

pub mod export;
pub mod import;
