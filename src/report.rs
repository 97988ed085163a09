//! `recast report`: what a run did and what it cost, from what the catalog recorded (the core
//! is `recast_ops::report`, which loads everything shown into a [`ReportData`]); this prints the
//! summary and the tables and writes the HTML page (charts by `recast_ops::charts`), the
//! Markdown and the JSON, all drawn from that struct alone.

use std::path::Path;

use anyhow::Context;
use recast_core::PriceTable;
use recast_ops::plan::load_prices;
use recast_ops::report::ReportData;

use crate::cli::ReportArgs;
use crate::plan::{cost_table, result_table};
use crate::tables::{self, Table};

/// The two tables of the reference migration, from what was recorded.
pub fn tables(data: &ReportData, prices: &PriceTable, instance_type: &str) -> Vec<Table> {
    let (before, after) = data.footprints();
    let cost = data.cost(prices, instance_type);
    vec![
        result_table(
            "Result (measured)",
            (before, after),
            (
                prices.storage_per_month(before.bytes),
                prices.storage_per_month(after.bytes),
            ),
        ),
        cost_table(
            "Cost (measured)",
            &cost,
            &data.status.requests,
            instance_type,
        ),
    ]
}

/// A paragraph on what the run did, for every form of the report.
pub fn summary(data: &ReportData) -> String {
    let s = &data.status;
    let finished =
        s.photos_in(recast_core::PhotoState::Done) + s.photos_in(recast_core::PhotoState::Failed);
    let list = |m: &std::collections::BTreeMap<String, u64>| {
        if m.is_empty() {
            "none".to_owned()
        } else {
            m.iter()
                .map(|(r, n)| format!("{r} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    format!(
        "run {:?} (originals {}){}: {} of {} photos finished in {} by {} worker(s) \
         ({:.3} worker hours, priced as instance hours); failed: {}; kept: {}.",
        data.run,
        data.originals,
        if s.is_complete() {
            ", complete"
        } else {
            ", not complete"
        },
        tables::count(finished),
        tables::count(s.photos_total()),
        tables::duration(data.wall_seconds()),
        data.workers.len(),
        data.worker_hours,
        list(&s.failures),
        list(&s.kept),
    )
}

pub async fn run(a: ReportArgs) -> anyhow::Result<()> {
    let prices = load_prices(a.prices.as_deref())?;
    prices.instance(&a.instance_type)?;
    let catalog = a.db.open_read_only().await?;
    let run = catalog.run(a.run.as_deref()).await?;
    let data = recast_ops::report::load(
        catalog.as_ref(),
        &run,
        a.bucket.map(|d| d.as_millis() as i64),
    )
    .await?;
    write(&a.out, &data, &prices, &a.instance_type)?;
    println!("{}\n", summary(&data));
    for t in tables(&data, &prices, &a.instance_type) {
        println!("{}", t.terminal());
    }
    println!("report written to {}", a.out.join("index.html").display());
    Ok(())
}

/// Writes index.html, report.md and report.json into `dir`.
pub fn write(
    dir: &Path,
    data: &ReportData,
    prices: &PriceTable,
    instance_type: &str,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("failed to create {}", dir.display()))?;
    let tables = tables(data, prices, instance_type);
    let html = crate::report_page::page(data, &tables)?;
    let mut md = format!("# recast report: run {}\n\n{}\n\n", data.run, summary(data));
    for t in &tables {
        md.push_str(&t.markdown());
        md.push('\n');
    }
    let json = serde_json::json!({
        "data": data,
        "cost": data.cost(prices, instance_type),
        "instance_type": instance_type,
        "prices": prices,
    });
    for (name, body) in [
        ("index.html", html),
        ("report.md", md),
        ("report.json", serde_json::to_string_pretty(&json)?),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, body)
            .with_context(|| format!("failed to write {}", path.display()))?;
    }
    Ok(())
}
