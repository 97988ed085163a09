//! `recast seed`: a demo store of couples' photos and real JPEG thumbnails (the core is
//! `recast_ops::seed`). It writes the store only; with `--db` it imports what it wrote (the same
//! import as `recast import --from STORE`), otherwise it prints that import's command.

use anyhow::Context;
use recast_core::{CoupleId, PhotoId};
use recast_ops::seed::{import_seeded, seed, seed_patterns, SeedPlan};
use recast_worker::CpuPool;

use crate::cli::SeedArgs;
use crate::tables;

pub async fn run(a: SeedArgs) -> anyhow::Result<()> {
    let store = recast_store::open(&a.store)
        .await
        .context("failed to open the store")?;
    let plan = SeedPlan {
        photos: a.photos,
        couples: a.couples,
        min_photos: a.min_photos,
        max_photos: a.max_photos,
        thumbs: a.thumbs,
        synth_width: recast_ops::seed::DEFAULT_SYNTH_WIDTH,
    };
    let catalog = match &a.db {
        Some(db) => Some(
            recast_catalog::open(db)
                .await
                .context("failed to open the catalog")?,
        ),
        None => None,
    };
    let first_ids = match &catalog {
        Some(c) => c.max_ids().await?,
        None => (CoupleId(0), PhotoId(0)),
    };
    let r = seed(
        &plan,
        first_ids,
        store.clone(),
        &CpuPool::per_core(),
        &|_| {},
    )
    .await?;
    println!(
        "seeded {} couples, {} photos, {} thumbnails ({}){}",
        r.couples,
        r.photos,
        r.thumbnails,
        tables::bytes(r.bytes),
        if r.undecodable_sources > 0 {
            format!(
                "; {} source file(s) are not decodable and will fail to migrate",
                r.undecodable_sources
            )
        } else {
            String::new()
        }
    );
    let patterns = seed_patterns(&r);
    match catalog {
        Some(catalog) => {
            let imported = import_seeded(catalog.as_ref(), store, &a.store, &patterns).await;
            catalog.close().await;
            print!("{}", crate::import::human(&imported?));
        }
        None => {
            let originals: String = patterns
                .0
                .iter()
                .map(|p| format!(" --original '{p}'"))
                .collect();
            println!(
                "import it into a catalog with:\n  recast import --db URL --from {}{originals} --thumbnail '{}'",
                a.store, patterns.1[0]
            );
        }
    }
    Ok(())
}
