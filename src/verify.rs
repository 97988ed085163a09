//! `recast verify`: audits a run against the store (the core is `recast_ops::verify`); exit code
//! 3 when any violation is found.

use recast_ops::plan::open_store_for_reading;
use recast_ops::verify::{all_photos, audit, render, sampled_photos, ViolationsFound};

use crate::cli::VerifyArgs;

pub async fn run(a: VerifyArgs) -> anyhow::Result<()> {
    let catalog = a.db.open_read_only().await?;
    let store = open_store_for_reading(&a.store).await?;
    let run = catalog.run(a.run.as_deref()).await?;
    let (photos, scope) = match a.sample {
        None => (
            all_photos(catalog.as_ref(), &run).await?,
            "every photo".to_owned(),
        ),
        Some(n) => {
            let seed = a.seed.unwrap_or_else(|| fastrand::u64(..));
            (
                sampled_photos(catalog.as_ref(), &run, n, seed).await?,
                format!("a sample of {n} (seed {seed})"),
            )
        }
    };
    let audit = audit(
        &run,
        &photos,
        store.as_ref(),
        a.decode as usize,
        a.parallelism,
        scope,
    )
    .await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&audit)?);
    } else {
        print!("{}", render(&audit));
    }
    if audit.violations.is_empty() {
        Ok(())
    } else {
        Err(ViolationsFound(audit.violations.len()).into())
    }
}
