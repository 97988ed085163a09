//! Watches the EC2 instance metadata service (IMDSv2) for a spot interruption notice or a
//! rebalance recommendation, the two-minute and earlier warnings that the instance will go.
//! The endpoint is the AWS-standard one: `AWS_EC2_METADATA_SERVICE_ENDPOINT`, else
//! `http://169.254.169.254`.

use std::path::Path;
use std::time::Duration;

use aws_config::imds::client::error::ImdsError;
use aws_config::imds::Client;
use aws_config::provider_config::ProviderConfig;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};

const SPOT_ACTION: &str = "/latest/meta-data/spot/instance-action";
const REBALANCE: &str = "/latest/meta-data/events/recommendations/rebalance";

/// Why the instance is going away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interruption {
    /// `spot/instance-action`: the instance is stopped or terminated in two minutes (the JSON
    /// notice as the service gave it).
    Spot(String),
    /// `events/recommendations/rebalance`: the instance is at elevated risk of interruption.
    Rebalance(String),
}

impl Interruption {
    pub fn cause(&self) -> &'static str {
        match self {
            Interruption::Spot(_) => "spot-interruption",
            Interruption::Rebalance(_) => "rebalance-recommendation",
        }
    }
}

fn client() -> Client {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https();
    Client::builder()
        .configure(&ProviderConfig::without_region().with_http_client(http))
        .max_attempts(1)
        .connect_timeout(Duration::from_secs(1))
        .read_timeout(Duration::from_secs(2))
        .build()
}

/// One look: the notice if there is one. A 404 means none; other failures are errors.
async fn look(client: &Client) -> Result<Option<Interruption>, ImdsError> {
    for (path, make) in [
        (
            SPOT_ACTION,
            Interruption::Spot as fn(String) -> Interruption,
        ),
        (REBALANCE, Interruption::Rebalance),
    ] {
        match client.get(path).await {
            Ok(body) => return Ok(Some(make(body.as_ref().to_owned()))),
            Err(ImdsError::ErrorResponse(r)) if r.response().status().as_u16() == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// Whether this machine is an EC2 instance, decided locally (no request leaves it), as the AWS
/// SDKs and cloud-init do: `AWS_EC2_METADATA_DISABLED=true` says no; an explicit
/// `AWS_EC2_METADATA_SERVICE_ENDPOINT` says yes (the operator named the service); otherwise the
/// DMI tables of the firmware: a board asset tag that is an instance id (`i-…`, Nitro), or a
/// system vendor, product or BIOS vendor naming Amazon EC2 (Xen instances say `amazon` in their
/// BIOS version).
pub fn on_ec2() -> bool {
    on_ec2_with(
        |k| std::env::var(k).ok(),
        |f| std::fs::read_to_string(Path::new(DMI).join(f)).ok(),
    )
}

const DMI: &str = "/sys/class/dmi/id";

fn on_ec2_with(env: impl Fn(&str) -> Option<String>, dmi: impl Fn(&str) -> Option<String>) -> bool {
    if env("AWS_EC2_METADATA_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
        return false;
    }
    if env("AWS_EC2_METADATA_SERVICE_ENDPOINT").is_some_and(|v| !v.trim().is_empty()) {
        return true;
    }
    if dmi("board_asset_tag").is_some_and(|t| t.trim().starts_with("i-")) {
        return true;
    }
    let names_ec2 = |f: &str| {
        dmi(f).is_some_and(|v| {
            let v = v.trim().to_ascii_lowercase();
            v.contains("amazon ec2") || v == "ec2"
        })
    };
    names_ec2("sys_vendor")
        || names_ec2("product_name")
        || names_ec2("bios_vendor")
        || dmi("bios_version").is_some_and(|v| v.to_ascii_lowercase().contains("amazon"))
}

/// Polls every `every` until a notice comes, and returns it. Without `required`, a metadata
/// service that cannot be reached three times in a row (not on EC2) ends the watch with `None`;
/// with it, failures are logged and polling goes on.
pub async fn watch_interruptions(every: Duration, required: bool) -> Option<Interruption> {
    let client = client();
    let mut failures = 0u32;
    loop {
        match look(&client).await {
            Ok(Some(notice)) => return Some(notice),
            Ok(None) => failures = 0,
            Err(e) => {
                failures += 1;
                if !required && failures >= 3 {
                    tracing::debug!(error = %e, "no instance metadata service: spot notices are not watched");
                    return None;
                }
                tracing::warn!(error = %e, "failed to read the instance metadata service");
            }
        }
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::on_ec2_with;

    fn decide(env: &[(&str, &str)], dmi: &[(&str, &str)]) -> bool {
        on_ec2_with(
            |k| {
                env.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            },
            |f| {
                dmi.iter()
                    .find(|(n, _)| *n == f)
                    .map(|(_, v)| format!("{v}\n"))
            },
        )
    }

    #[test]
    fn ec2_is_decided_from_dmi_and_the_environment() {
        assert!(!decide(&[], &[]), "no DMI: not EC2");
        assert!(!decide(
            &[],
            &[("sys_vendor", "QEMU"), ("product_name", "Standard PC")]
        ));
        assert!(decide(&[], &[("board_asset_tag", "i-0123456789abcdef0")]));
        assert!(decide(&[], &[("sys_vendor", "Amazon EC2")]));
        assert!(decide(&[], &[("bios_vendor", "Amazon EC2")]));
        assert!(decide(&[], &[("bios_version", "4.11.amazon")]));
        assert!(!decide(
            &[("AWS_EC2_METADATA_DISABLED", "true")],
            &[("sys_vendor", "Amazon EC2")]
        ));
        assert!(decide(
            &[("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:9")],
            &[]
        ));
    }
}
