//! `recast export`: arguments → [`recast_ops::export`] → one line of totals.

use anyhow::Context;
use recast_ops::export::ExportOptions;

use crate::cli::ExportArgs;

pub async fn run(a: ExportArgs) -> anyhow::Result<()> {
    let catalog = a.db.open_read_only().await?;
    let options = ExportOptions {
        run: a.run,
        states: a.state,
        after: a.after,
    };
    let result = recast_ops::export::export(catalog.as_ref(), &a.out, &options).await;
    catalog.close().await;
    let s = result.with_context(|| format!("failed to export to {}", a.out))?;
    println!(
        "exported {} photos of run {} to {}; last photo id {} (continue with --after {})",
        s.rows, s.run, a.out, s.last_photo_id, s.last_photo_id
    );
    Ok(())
}
