//! S3 (and S3-compatible servers) through the official SDK.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode, Delete, ObjectIdentifier};
use aws_sdk_s3::Client;
use bytes::Bytes;

use crate::object_store::validate_key;
use crate::s3_body::{body_backoff, BodyFault, GET_BODY_ATTEMPTS};
use crate::throttle::{ThrottleCounter, ThrottleInterceptor};
use crate::{
    crc32c, DeleteOutcome, ObjectMeta, ObjectStore, StoreError, ThrottledAttempts, MAX_DELETE_BATCH,
};

/// Objects under `s3://bucket/prefix`: key `a/b.jpg` is the object `prefix/a/b.jpg`.
///
/// Every PUT carries the body's CRC32C, which S3 verifies before storing; no HEAD or LIST is made on
/// the hot path. Throttling (503 SlowDown) is retried by the SDK (standard mode) first and surfaces
/// as [`StoreError::Throttled`] only when that gives up; every throttled attempt is counted on the
/// way ([`ObjectStore::throttled_attempts`]). A GET body cut mid-read or failing its CRC32C is read
/// again here, a bounded number of times.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: Client,
    bucket: String,
    prefix: String,
    throttles: Arc<ThrottleCounter>,
}

impl S3Store {
    /// `path_style`: address the bucket in the path (S3-compatible servers on an IP or localhost)
    /// rather than in the host name.
    pub async fn new(bucket: &str, prefix: &str, path_style: bool) -> S3Store {
        S3Store::build(bucket, prefix, path_style, None).await
    }

    /// As [`S3Store::new`], but at `endpoint` rather than the standard chain's (a test proxy, say).
    pub async fn with_endpoint(
        bucket: &str,
        prefix: &str,
        path_style: bool,
        endpoint: &str,
    ) -> S3Store {
        S3Store::build(bucket, prefix, path_style, Some(endpoint)).await
    }

    async fn build(
        bucket: &str,
        prefix: &str,
        path_style: bool,
        endpoint: Option<&str>,
    ) -> S3Store {
        let throttles = Arc::new(ThrottleCounter::default());
        let mut config = aws_sdk_s3::config::Builder::from(recast_aws::sdk_config().await)
            .force_path_style(path_style)
            .interceptor(ThrottleInterceptor(throttles.clone()));
        if let Some(endpoint) = endpoint {
            config.set_endpoint_url(Some(endpoint.to_owned()));
        }
        let config = config.build();
        S3Store {
            client: Client::from_conf(config),
            bucket: bucket.to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
            throttles,
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    fn full_key(&self, key: &str) -> Result<String, StoreError> {
        validate_key(key)?;
        Ok(if self.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}/{key}", self.prefix)
        })
    }

    fn strip(&self, full: &str) -> String {
        if self.prefix.is_empty() {
            full.to_owned()
        } else {
            full.strip_prefix(&self.prefix)
                .map_or(full, |k| k.trim_start_matches('/'))
                .to_owned()
        }
    }
}

/// Maps an SDK error to the store's categories by status and error code, never by message text.
fn classify<E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static>(
    key: &str,
    err: SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> StoreError {
    let status = err.raw_response().map(|r| r.status().as_u16());
    let code = err.code().map(str::to_owned);
    match (status, code.as_deref()) {
        // Before the 404 arm: a missing bucket also answers 404.
        (_, Some("NoSuchBucket")) => StoreError::NoSuchBucket {
            key: key.to_owned(),
            source: Box::new(err),
        },
        (
            _,
            Some(
                "AccessDenied"
                | "AllAccessDisabled"
                | "InvalidAccessKeyId"
                | "SignatureDoesNotMatch",
            ),
        )
        | (Some(403), _) => StoreError::PermissionDenied {
            key: key.to_owned(),
            source: Box::new(err),
        },
        (_, Some("NoSuchKey" | "NotFound")) | (Some(404), _) => StoreError::NotFound {
            key: key.to_owned(),
        },
        (_, Some("SlowDown" | "Throttling" | "ThrottlingException" | "RequestLimitExceeded"))
        | (Some(503), _) => StoreError::Throttled {
            key: key.to_owned(),
        },
        _ => {
            let transient = match &err {
                SdkError::TimeoutError(_)
                | SdkError::DispatchFailure(_)
                | SdkError::ResponseError(_) => true,
                SdkError::ServiceError(_) => status.is_some_and(|s| s >= 500),
                _ => false,
            };
            StoreError::Backend {
                key: key.to_owned(),
                message: format!("{}", aws_sdk_s3::error::DisplayErrorContext(&err)),
                transient,
            }
        }
    }
}

fn is_checksum_refusal(err: &StoreError) -> bool {
    matches!(err, StoreError::Backend { message, .. }
        if ["BadDigest", "InvalidDigest", "XAmzContentChecksumMismatch", "InvalidChecksum"].iter().any(|c| message.contains(c)))
}

#[async_trait]
impl ObjectStore for S3Store {
    async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        let full = self.full_key(key)?;
        let mut attempt = 1;
        loop {
            let out = self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(&full)
                .checksum_mode(ChecksumMode::Enabled)
                .send()
                .await
                .map_err(|e| classify(key, e))?;
            let err = match out.body.collect().await {
                Ok(body) => return Ok(body.into_bytes()),
                Err(e) => e,
            };
            let fault = BodyFault::of(&err);
            if attempt >= GET_BODY_ATTEMPTS {
                return Err(StoreError::Backend {
                    key: key.to_owned(),
                    message: format!(
                        "reading the body failed {attempt} times, the last by {fault}: {}",
                        aws_sdk_s3::error::DisplayErrorContext(&err)
                    ),
                    transient: true,
                });
            }
            let wait = body_backoff(attempt);
            // No key in the log: keys carry user ids.
            match fault {
                BodyFault::Cut => tracing::warn!(
                    attempt,
                    ?wait,
                    error = %aws_sdk_s3::error::DisplayErrorContext(&err),
                    "connection cut while reading a GET body; reading the object again"
                ),
                BodyFault::Checksum => tracing::warn!(
                    attempt,
                    ?wait,
                    "GET body does not match its CRC32C; reading the object again"
                ),
            }
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    async fn put(&self, key: &str, body: Bytes, expected: u32) -> Result<(), StoreError> {
        let full = self.full_key(key)?;
        // Checked here too, so a body corrupted in this process is never sent; the server checks
        // again what arrived.
        let actual = crc32c(&body);
        if actual != expected {
            return Err(StoreError::ChecksumMismatch {
                key: key.to_owned(),
                expected,
                actual,
            });
        }
        let checksum = crc32c_header(expected);
        let result = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(&full)
            .checksum_algorithm(ChecksumAlgorithm::Crc32C)
            .checksum_crc32_c(checksum)
            .body(ByteStream::from(body))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => {
                let err = classify(key, e);
                if is_checksum_refusal(&err) {
                    Err(StoreError::ChecksumMismatch {
                        key: key.to_owned(),
                        expected,
                        actual,
                    })
                } else {
                    Err(err)
                }
            }
        }
    }

    async fn delete_many(&self, keys: &[String]) -> Result<DeleteOutcome, StoreError> {
        if keys.len() > MAX_DELETE_BATCH {
            return Err(StoreError::BatchTooLarge(keys.len()));
        }
        let mut outcome = DeleteOutcome::default();
        let mut objects = Vec::with_capacity(keys.len());
        let mut by_full = std::collections::HashMap::new();
        for key in keys {
            match self.full_key(key) {
                Ok(full) => {
                    objects.push(
                        ObjectIdentifier::builder()
                            .key(&full)
                            .build()
                            .expect("a key is set"),
                    );
                    by_full.insert(full, key.clone());
                }
                Err(e) => outcome.failed.push((key.clone(), e)),
            }
        }
        if objects.is_empty() {
            return Ok(outcome);
        }
        let delete = Delete::builder()
            .set_objects(Some(objects))
            .quiet(true)
            .build()
            .expect("objects are set");
        let out = self
            .client
            .delete_objects()
            .bucket(&self.bucket)
            .delete(delete)
            .send()
            .await
            .map_err(|e| classify(keys.first().map_or("", String::as_str), e))?;
        let mut failed = HashSet::new();
        for e in out.errors() {
            let full = e.key().unwrap_or_default();
            let key = by_full
                .get(full)
                .cloned()
                .unwrap_or_else(|| self.strip(full));
            let err = match e.code() {
                Some("SlowDown") => StoreError::Throttled { key: key.clone() },
                Some("AccessDenied") => StoreError::PermissionDenied {
                    key: key.clone(),
                    source: format!("AccessDenied: {}", e.message().unwrap_or("access denied"))
                        .into(),
                },
                code => StoreError::Backend {
                    key: key.clone(),
                    message: format!(
                        "{}: {}",
                        code.unwrap_or("error"),
                        e.message().unwrap_or_default()
                    ),
                    transient: true,
                },
            };
            failed.insert(key.clone());
            outcome.failed.push((key, err));
        }
        // Quiet mode lists only failures: every other key of the request was deleted (or absent).
        outcome
            .deleted
            .extend(by_full.into_values().filter(|k| !failed.contains(k)));
        Ok(outcome)
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StoreError> {
        let full = self.full_key(key)?;
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(&full)
            .send()
            .await
        {
            Ok(out) => Ok(Some(ObjectMeta {
                key: key.to_owned(),
                size: out.content_length().unwrap_or_default().max(0) as u64,
            })),
            Err(e) => match classify(key, e) {
                StoreError::NotFound { .. } => Ok(None),
                other => Err(other),
            },
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        let full_prefix = if self.prefix.is_empty() {
            prefix.to_owned()
        } else {
            format!("{}/{prefix}", self.prefix)
        };
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&full_prefix)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify(prefix, e))?;
            for o in page.contents() {
                out.push(ObjectMeta {
                    key: self.strip(o.key().unwrap_or_default()),
                    size: o.size().unwrap_or_default().max(0) as u64,
                });
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    fn throttled_attempts(&self) -> ThrottledAttempts {
        self.throttles.snapshot()
    }

    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        max: u32,
    ) -> Result<Vec<ObjectMeta>, StoreError> {
        let full = |k: &str| {
            if self.prefix.is_empty() {
                k.to_owned()
            } else {
                format!("{}/{k}", self.prefix)
            }
        };
        let mut request = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(full(prefix))
            .max_keys(max.clamp(1, 1000) as i32);
        if let Some(after) = start_after {
            request = request.start_after(full(after));
        }
        let page = request.send().await.map_err(|e| classify(prefix, e))?;
        Ok(page
            .contents()
            .iter()
            .map(|o| ObjectMeta {
                key: self.strip(o.key().unwrap_or_default()),
                size: o.size().unwrap_or_default().max(0) as u64,
            })
            .collect())
    }
}

/// The base64 of a CRC32C in network byte order, as the x-amz-checksum-crc32c header carries it.
fn crc32c_header(crc: u32) -> String {
    aws_smithy_types::base64::encode(crc.to_be_bytes())
}

#[cfg(test)]
mod tests {
    #[test]
    fn checksum_header_is_base64_of_the_big_endian_crc() {
        // crc32c("123456789") = 0xE3069283, the standard check value.
        let crc = crate::crc32c(b"123456789");
        assert_eq!(crc, 0xE306_9283);
        assert_eq!(super::crc32c_header(crc), "4waSgw==");
    }
}

#[cfg(test)]
mod server_tests {
    use super::*;

    /// A fresh bucket on the S3-compatible server that scripts/test starts.
    async fn fresh_store(prefix: &str) -> S3Store {
        assert!(
            std::env::var("RECAST_TEST_AWS_ENDPOINT").is_ok(),
            "RECAST_TEST_AWS_ENDPOINT is not set: run the tests with scripts/test, which starts the S3/SQS server"
        );
        let bucket = format!("recast-test-{:08x}", fastrand::u32(..));
        let store = S3Store::new(&bucket, prefix, true).await;
        store
            .client()
            .create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .expect("bucket created");
        store
    }

    #[tokio::test]
    async fn s3_store_passes_the_conformance_suite() {
        crate::conformance::run_all(&fresh_store("").await).await;
        crate::conformance::run_all(&fresh_store("some/prefix").await).await;
    }

    #[tokio::test]
    async fn keys_live_under_the_prefix() {
        let store = fresh_store("migr").await;
        store
            .put("a/b.jpg", Bytes::from_static(b"x"), crc32c(b"x"))
            .await
            .unwrap();
        let raw = store
            .client()
            .get_object()
            .bucket(store.bucket())
            .key("migr/a/b.jpg")
            .send()
            .await;
        assert!(raw.is_ok(), "object not at prefix/key");
        let url = format!("s3://{}/migr?path_style=true", store.bucket());
        let opened = crate::open(&url).await.unwrap();
        assert_eq!(
            opened.get("a/b.jpg").await.unwrap(),
            Bytes::from_static(b"x")
        );
        assert!(matches!(
            crate::open("s3://b/p?colour=red").await,
            Err(StoreError::BadUrl { .. })
        ));
    }

    #[tokio::test]
    async fn puts_carry_the_crc32c_that_the_server_keeps() {
        let store = fresh_store("").await;
        let body = b"a webp, say";
        store
            .put("k.webp", Bytes::from_static(body), crc32c(body))
            .await
            .unwrap();
        let head = store
            .client()
            .head_object()
            .bucket(store.bucket())
            .key("k.webp")
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .unwrap();
        assert_eq!(
            head.checksum_crc32_c(),
            Some(crc32c_header(crc32c(body)).as_str())
        );
    }
}
