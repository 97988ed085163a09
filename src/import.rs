//! `recast import`: arguments → [`recast_ops::import`] → the summary.

use anyhow::Context;
use recast_ops::import::{ImportOptions, ImportSummary, ListingShape, Patterns};

use crate::cli::ImportArgs;

pub async fn run(a: ImportArgs) -> anyhow::Result<()> {
    let patterns = Patterns::parse(&a.original, &a.thumbnail)?;
    let listing = ListingShape {
        streams: a.listing_streams.max(1),
        prefixes: patterns.literal_prefixes(),
    };
    let mut source = recast_ops::import::open_source_with(&a.from, &listing).await?;
    let options = ImportOptions { dry_run: a.dry_run };
    if a.dry_run {
        // A dry run does not even open (or create) the catalog.
        let summary =
            recast_ops::import::import(None, &a.from, source.as_mut(), &patterns, &options)
                .await
                .with_context(|| format!("failed to read {}", a.from))?;
        return print_summary(&summary, a.json);
    }
    let catalog = a.db.open().await?;
    let result = recast_ops::import::import(
        Some(catalog.as_ref()),
        &a.from,
        source.as_mut(),
        &patterns,
        &options,
    )
    .await;
    catalog.close().await;
    let summary = result.with_context(|| format!("failed to import {}", a.from))?;
    print_summary(&summary, a.json)
}

fn print_summary(summary: &ImportSummary, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(summary)?);
    } else {
        print!("{}", human(summary));
    }
    Ok(())
}

/// The summary for a person.
pub fn human(s: &ImportSummary) -> String {
    let mb = |b: u64| b as f64 / 1e6;
    let mut out = format!(
        "{} {}: {} objects in {} unit(s){}\n  originals  {:>10}  {:>12.1} MB\n  thumbnails {:>10}  {:>12.1} MB\n  unmatched  {:>10}  {:>12.1} MB (not imported)\n  orphans    {:>10}  thumbnails without their original (not imported)\n",
        if s.dry_run { "would import" } else { "imported" },
        s.source,
        s.objects(),
        s.units,
        if s.resumed_at_unit > 0 {
            format!(" (resumed at unit {})", s.resumed_at_unit)
        } else {
            String::new()
        },
        s.originals.objects,
        mb(s.originals.bytes),
        s.thumbnails.objects,
        mb(s.thumbnails.bytes),
        s.unmatched.objects,
        mb(s.unmatched.bytes),
        s.orphans,
    );
    if !s.dry_run {
        out += &format!(
            "  added to the catalog: {} couples, {} photos, {} thumbnails\n",
            s.couples_added, s.photos_added, s.thumbnails_added
        );
    }
    for (what, total, keys) in [
        ("unmatched", s.unmatched.objects, &s.unmatched_keys),
        ("orphans", s.orphans, &s.orphan_keys),
    ] {
        if !keys.is_empty() {
            out += &format!("  first {} of {total} {what}:\n", keys.len());
            for k in keys {
                out += &format!("    {k}\n");
            }
        }
    }
    out
}
