//! The one AWS SDK configuration of a recast process, shared by the S3 store and the SQS queue.
//!
//! Credentials, region and endpoints come from the standard AWS chain (environment, profiles,
//! web identity, ECS/EC2 instance roles, `AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_S3`,
//! `AWS_ENDPOINT_URL_SQS`), nothing custom. Requests go through rustls with ring (the one TLS
//! stack of the build), the SDK's standard retry mode (exponential backoff with jitter) and
//! explicit timeouts.
//!
//! Not the adaptive mode: its client-side rate limiter is a second controller of the request rate,
//! process-local and unaware of the fleet's budgets, beside the worker's own (AIMD per budget,
//! shared by the fleet through the catalog). Under steady throttling it can cut a process to half
//! a request per second (its floor) and recover slowly; the fault suite saw a worker crawl that
//! way. The worker's limiter is the one that slows down on a 503.

mod spot;

use std::time::Duration;

pub use spot::{on_ec2, watch_interruptions, Interruption};

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use tokio::sync::OnceCell;

/// Attempts of one request, the first included, before its error reaches recast.
pub const MAX_ATTEMPTS: u32 = 8;
/// Time to open a connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time to wait for a response's bytes (a long poll of SQS waits 20 s, so more than that).
pub const READ_TIMEOUT: Duration = Duration::from_secs(45);
/// Time for one attempt of a request, body included.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(120);

static CONFIG: OnceCell<SdkConfig> = OnceCell::const_new();

/// The process's SDK configuration, loaded once from the standard chain.
pub async fn sdk_config() -> &'static SdkConfig {
    CONFIG
        .get_or_init(|| async {
            let http = aws_smithy_http_client::Builder::new()
                .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
                .build_https();
            aws_config::defaults(BehaviorVersion::latest())
                .http_client(http)
                .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
                .timeout_config(
                    TimeoutConfig::builder()
                        .connect_timeout(CONNECT_TIMEOUT)
                        .read_timeout(READ_TIMEOUT)
                        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                        .build(),
                )
                .load()
                .await
        })
        .await
}

/// Checks that the standard chain yields credentials, without sending a request to a service
/// (a chain with none fails here rather than on every request of a worker).
pub async fn check_credentials() -> Result<(), String> {
    use aws_credential_types::provider::ProvideCredentials;
    let Some(provider) = sdk_config().await.credentials_provider() else {
        return Err("no AWS credentials provider is configured".to_owned());
    };
    provider
        .provide_credentials()
        .await
        .map(|_| ())
        .map_err(|e| {
            format!(
                "{}",
                aws_smithy_types::error::display::DisplayErrorContext(&e)
            )
        })
}
