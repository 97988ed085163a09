//! Library cores of the operator verbs: [`launch`] (a run's messages, checkpointed), [`verify`]
//! (a run audited against the store), [`plan`] (a dry run's predictions from a sample),
//! [`report`] (what a run did and cost, from its records) and its [`charts`], [`seed`] (a demo
//! store), and those that move a store's description in and out of the catalog: [`import`] (an
//! S3 Inventory report, a live listing or the app's own manifest, through key patterns, into the
//! catalog) and [`export`] (the completion report of a run, one row per photo). [`units`] is how
//! their figures read. No command-line types here: the binary parses arguments, calls these and
//! prints their typed results.

pub mod charts;
mod cpu_time;
pub mod export;
pub mod import;
pub mod launch;
pub mod plan;
pub mod report;
pub mod seed;
pub mod units;
pub mod verify;
