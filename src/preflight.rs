//! Start-up checks of `work` and `launch`: before any job, one look at each thing the command
//! will use — the AWS credentials (when S3 or SQS is used), the queue's attributes, one read of
//! the store, the catalog's schema and run, and the run's queue binding — so that a mistake ends
//! the command within seconds with one line naming it and its fix, instead of a retry loop.

use std::future::Future;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use recast_catalog::{queue_identity, Catalog, CatalogError, Run};
use recast_queue::JobQueue;
use recast_store::ObjectStore;

/// Longest wait for one check: a server that does not answer by then is named as unreachable.
/// The SDK's own retries of an unreachable endpoint take longer, so this bounds the start-up.
const CHECK_TIMEOUT: Duration = Duration::from_secs(8);
/// Originals read to check the store: a denial of all of them is store-wide; one photo's own
/// denial is that photo's recorded failure, later.
const STORE_PROBES: u32 = 3;

async fn within<T>(what: &str, fix: &str, f: impl Future<Output = T>) -> anyhow::Result<T> {
    tokio::time::timeout(CHECK_TIMEOUT, f).await.map_err(|_| {
        anyhow!(
            "{what} did not answer within {}s; {fix}",
            CHECK_TIMEOUT.as_secs()
        )
    })
}

fn uses_aws(url: &str) -> bool {
    url.starts_with("s3://") || url.starts_with("https://") || url.starts_with("http://")
}

/// AWS credentials, when one of the URLs is an S3 bucket or an SQS queue.
pub async fn credentials(urls: &[&str]) -> anyhow::Result<()> {
    if !urls.iter().any(|u| uses_aws(u)) {
        return Ok(());
    }
    within(
        "the AWS credentials chain",
        "check AWS_PROFILE or the instance role",
        recast_aws::check_credentials(),
    )
    .await?
    .map_err(|e| {
        anyhow!("no AWS credentials found ({e}); set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or give the instance a role")
    })
}

/// The queue's attributes (one GetQueueAttributes on SQS).
pub async fn queue(queue: &dyn JobQueue, url: &str) -> anyhow::Result<()> {
    within(
        &format!("the queue {url}"),
        "check AWS_ENDPOINT_URL and the network",
        queue.stats(),
    )
    .await?
    .with_context(|| format!("failed to check the queue {url}"))?;
    Ok(())
}

/// Reads up to [`STORE_PROBES`] originals the catalog names (a missing one is fine: the bucket
/// answered). A missing bucket, or a denial of every probe, ends the command.
pub async fn store(
    store: &dyn ObjectStore,
    catalog: &dyn Catalog,
    url: &str,
) -> anyhow::Result<()> {
    let samples = catalog
        .sample_photos(STORE_PROBES, 1)
        .await
        .context("failed to read the catalog")?;
    let keys: Vec<String> = if samples.is_empty() {
        vec!["recast-start-up-check".to_owned()]
    } else {
        samples.into_iter().map(|s| s.original_key).collect()
    };
    let mut denied = None;
    for key in &keys {
        match within(
            &format!("the store {url}"),
            "check AWS_ENDPOINT_URL and the network",
            store.get(key),
        )
        .await?
        {
            Ok(_) => return Ok(()),
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) if e.is_permission_denied() => denied = Some(e),
            Err(e) if e.is_no_such_bucket() => {
                bail!("failed to check the store {url}: {e}")
            }
            Err(e) => return Err(e).with_context(|| format!("failed to check the store {url}")),
        }
    }
    match denied {
        Some(e) => bail!("failed to check the store {url}: {e}"),
        None => Ok(()),
    }
}

/// The catalog opened for writing (migrated), with a clear line when it cannot be.
pub fn catalog_opened<T>(r: Result<T, CatalogError>, url: &str) -> anyhow::Result<T> {
    r.map_err(|e| {
        if e.is_too_new() {
            anyhow!("the catalog {url} was migrated by a newer recast ({e}); use that version of recast")
        } else {
            anyhow::Error::new(e).context("failed to open the catalog")
        }
    })
}

/// The run a worker works for must exist.
pub async fn run(catalog: &dyn Catalog, name: &str) -> anyhow::Result<Run> {
    catalog
        .run(Some(name))
        .await
        .with_context(|| format!("failed to find the run {name:?} in the catalog"))
}

/// A run is bound to the queue its launch enqueued into. `bind`: bind it now if it is not yet
/// (launch); otherwise only compare (work).
pub async fn queue_binding(
    catalog: &dyn Catalog,
    run: &Run,
    queue_url: &str,
    bind: bool,
) -> anyhow::Result<()> {
    let given = queue_identity(queue_url);
    let bound = if bind {
        Some(catalog.bind_queue(run, given).await?)
    } else {
        catalog.bound_queue(run).await?
    };
    match bound {
        Some(bound) if bound != given => bail!(
            "run {:?} is bound to the queue {bound}, not {given}; pass --queue {bound} (a run's messages all go to the queue it was launched with)",
            run.name
        ),
        _ => Ok(()),
    }
}
