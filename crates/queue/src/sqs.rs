//! Amazon SQS (and SQS-compatible servers) through the official SDK.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::operation::receive_message::ReceiveMessageError;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageAttributeValue, MessageSystemAttributeName,
    QueueAttributeName, SendMessageBatchRequestEntry,
};
use aws_sdk_sqs::Client;
use tokio::sync::OnceCell;

use crate::job_queue::check_batch;
use crate::{
    BatchOutcome, JobQueue, OutgoingMessage, QueueError, QueueStats, Receipt, ReceivedMessage,
};

/// SQS's longest long poll.
const MAX_WAIT: Duration = Duration::from_secs(20);
/// How long a dead letter is kept (SQS's maximum, 14 days).
const DLQ_RETENTION_SECS: u32 = 14 * 24 * 3600;

/// A standard SQS queue named by its URL. Its dead-letter queue is the target of its
/// RedrivePolicy (see [`SqsQueue::create`]).
#[derive(Debug)]
pub struct SqsQueue {
    client: Client,
    url: String,
    dlq_url: OnceCell<Option<String>>,
}

/// Settings of a queue made by [`SqsQueue::create`].
#[derive(Debug, Clone, Copy)]
pub struct SqsQueueSpec {
    /// Receives after which SQS moves a message to the dead-letter queue.
    pub max_receives: u32,
    pub visibility_timeout: Duration,
}

impl Default for SqsQueueSpec {
    fn default() -> Self {
        SqsQueueSpec {
            max_receives: 5,
            visibility_timeout: Duration::from_secs(120),
        }
    }
}

fn service_error<
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
>(
    what: &str,
    err: SdkError<E, R>,
) -> QueueError {
    let transient = matches!(
        err,
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_)
    ) || matches!(
        err.code(),
        Some("ServiceUnavailable" | "InternalError" | "ThrottlingException" | "RequestThrottled")
    );
    let message = format!("{what}: {}", aws_sdk_sqs::error::DisplayErrorContext(&err));
    match err.code() {
        Some(
            "AWS.SimpleQueueService.NonExistentQueue"
            | "QueueDoesNotExist"
            | "AWS.SimpleQueueService.QueueDoesNotExist",
        ) => QueueError::NoSuchQueue { message },
        Some(
            "AccessDenied"
            | "AccessDeniedException"
            | "InvalidClientTokenId"
            | "UnrecognizedClientException"
            | "SignatureDoesNotMatch"
            | "InvalidSecurity",
        ) => QueueError::Denied { message },
        _ => QueueError::Service { message, transient },
    }
}

/// Whole seconds, rounded up, as SQS counts time.
fn secs(d: Duration) -> i32 {
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    i32::try_from(s).unwrap_or(i32::MAX)
}

impl SqsQueue {
    pub async fn open(url: &str) -> Result<SqsQueue, QueueError> {
        let client = Client::new(recast_aws::sdk_config().await);
        Ok(SqsQueue {
            client,
            url: url.to_owned(),
            dlq_url: OnceCell::new(),
        })
    }

    /// Creates `name` and its dead-letter queue `name-dlq` with a redrive policy, and returns the
    /// queue's URL. Creating an existing queue with the same attributes is a no-op.
    pub async fn create(name: &str, spec: SqsQueueSpec) -> Result<String, QueueError> {
        let client = Client::new(recast_aws::sdk_config().await);
        let dlq = client
            .create_queue()
            .queue_name(format!("{name}-dlq"))
            .attributes(
                QueueAttributeName::MessageRetentionPeriod,
                DLQ_RETENTION_SECS.to_string(),
            )
            .send()
            .await
            .map_err(|e| service_error("failed to create the dead-letter queue", e))?;
        let dlq_url = dlq.queue_url().unwrap_or_default().to_owned();
        let attrs = client
            .get_queue_attributes()
            .queue_url(&dlq_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| service_error("failed to read the dead-letter queue's ARN", e))?;
        let arn = attrs
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::QueueArn))
            .cloned()
            .unwrap_or_default();
        let redrive = format!(
            r#"{{"deadLetterTargetArn":"{arn}","maxReceiveCount":"{}"}}"#,
            spec.max_receives
        );
        let queue = client
            .create_queue()
            .queue_name(name)
            .attributes(QueueAttributeName::RedrivePolicy, redrive)
            .attributes(
                QueueAttributeName::VisibilityTimeout,
                secs(spec.visibility_timeout).to_string(),
            )
            .attributes(QueueAttributeName::ReceiveMessageWaitTimeSeconds, "20")
            .send()
            .await
            .map_err(|e| service_error("failed to create the queue", e))?;
        Ok(queue.queue_url().unwrap_or_default().to_owned())
    }

    /// The dead-letter queue's URL, from the queue's RedrivePolicy (read once).
    async fn dlq_url(&self) -> Result<Option<&str>, QueueError> {
        let url = self
            .dlq_url
            .get_or_try_init(|| async {
                let attrs = self
                    .client
                    .get_queue_attributes()
                    .queue_url(&self.url)
                    .attribute_names(QueueAttributeName::RedrivePolicy)
                    .send()
                    .await
                    .map_err(|e| service_error("failed to read the redrive policy", e))?;
                let Some(policy) = attrs
                    .attributes()
                    .and_then(|a| a.get(&QueueAttributeName::RedrivePolicy))
                else {
                    return Ok(None);
                };
                // {"deadLetterTargetArn":"arn:aws:sqs:REGION:ACCOUNT:NAME","maxReceiveCount":"5"}
                let arn = policy
                    .split('"')
                    .find(|s| s.starts_with("arn:"))
                    .ok_or_else(|| QueueError::Service {
                        message: format!("unreadable RedrivePolicy {policy:?}"),
                        transient: false,
                    })?;
                let mut parts = arn.rsplitn(3, ':');
                let (name, account) = (
                    parts.next().unwrap_or_default(),
                    parts.next().unwrap_or_default(),
                );
                let out = self
                    .client
                    .get_queue_url()
                    .queue_name(name)
                    .queue_owner_aws_account_id(account)
                    .send()
                    .await
                    .map_err(|e| service_error("failed to find the dead-letter queue", e))?;
                Ok::<_, QueueError>(out.queue_url().map(str::to_owned))
            })
            .await?;
        Ok(url.as_deref())
    }

    async fn count(&self, url: &str, names: &[QueueAttributeName]) -> Result<Vec<u64>, QueueError> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .set_attribute_names(Some(names.to_vec()))
            .send()
            .await
            .map_err(|e| service_error("failed to read queue counts", e))?;
        let attrs = out.attributes();
        Ok(names
            .iter()
            .map(|n| {
                attrs
                    .and_then(|a| a.get(n))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0)
            })
            .collect())
    }
}

#[async_trait]
impl JobQueue for SqsQueue {
    async fn send_batch(&self, messages: &[OutgoingMessage]) -> Result<BatchOutcome, QueueError> {
        check_batch(messages.len())?;
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        let entries = messages
            .iter()
            .enumerate()
            .map(|(i, m)| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(&m.body)
                    .build()
                    .expect("id and body are set")
            })
            .collect();
        let out = self
            .client
            .send_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| service_error("failed to send", e))?;
        let mut outcome: BatchOutcome = messages.iter().map(|_| Ok(())).collect();
        for f in out.failed() {
            if let Some(slot) = f
                .id()
                .parse::<usize>()
                .ok()
                .and_then(|i| outcome.get_mut(i))
            {
                *slot = Err(QueueError::Service {
                    message: format!("{}: {}", f.code(), f.message().unwrap_or_default()),
                    transient: !f.sender_fault(),
                });
            }
        }
        Ok(outcome)
    }

    async fn receive(
        &self,
        max: usize,
        visibility: Duration,
        wait: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        check_batch(max)?;
        if max == 0 {
            return Ok(Vec::new());
        }
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max as i32)
            .visibility_timeout(secs(visibility))
            .wait_time_seconds(wait.min(MAX_WAIT).as_secs() as i32)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await;
        let out = match out {
            Ok(o) => o,
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(ReceiveMessageError::OverLimit(_))
                ) =>
            {
                return Err(QueueError::OverLimit {
                    detail: "SQS answered OverLimit".into(),
                })
            }
            Err(e) => return Err(service_error("failed to receive", e)),
        };
        Ok(out
            .messages()
            .iter()
            .map(|m| ReceivedMessage {
                id: m.message_id().unwrap_or_default().to_owned(),
                body: m.body().unwrap_or_default().to_owned(),
                receipt: Receipt(m.receipt_handle().unwrap_or_default().to_owned()),
                receive_count: m
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(1),
            })
            .collect())
    }

    async fn delete_batch(&self, receipts: &[Receipt]) -> Result<BatchOutcome, QueueError> {
        check_batch(receipts.len())?;
        if receipts.is_empty() {
            return Ok(Vec::new());
        }
        let entries = receipts
            .iter()
            .enumerate()
            .map(|(i, r)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(&r.0)
                    .build()
                    .expect("id and receipt are set")
            })
            .collect();
        let out = self
            .client
            .delete_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| service_error("failed to delete", e))?;
        let mut outcome: BatchOutcome = receipts.iter().map(|_| Ok(())).collect();
        for f in out.failed() {
            let Some(i) = f.id().parse::<usize>().ok().filter(|i| *i < receipts.len()) else {
                continue;
            };
            outcome[i] = Err(if f.code().contains("ReceiptHandleIsInvalid") {
                QueueError::ReceiptInvalid(receipts[i].0.clone())
            } else {
                QueueError::Service {
                    message: format!("{}: {}", f.code(), f.message().unwrap_or_default()),
                    transient: !f.sender_fault(),
                }
            });
        }
        Ok(outcome)
    }

    async fn change_visibility(
        &self,
        receipt: &Receipt,
        visibility: Duration,
    ) -> Result<(), QueueError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(&receipt.0)
            .visibility_timeout(secs(visibility))
            .send()
            .await
            .map_err(|e| match e.code() {
                Some(c)
                    if c.contains("ReceiptHandleIsInvalid") || c.contains("MessageNotInflight") =>
                {
                    QueueError::ReceiptInvalid(receipt.0.clone())
                }
                _ => service_error("failed to change visibility", e),
            })?;
        Ok(())
    }

    async fn dead_letter(&self, message: &ReceivedMessage, reason: &str) -> Result<(), QueueError> {
        let dlq = self.dlq_url().await?.ok_or_else(|| QueueError::Service {
            message: format!("queue {} has no RedrivePolicy, so no dead-letter queue; create it with `recast queue create`", self.url),
            transient: false,
        })?;
        let attr = |v: &str| {
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(v)
                .build()
                .expect("type and value are set")
        };
        self.client
            .send_message()
            .queue_url(dlq)
            .message_body(&message.body)
            .message_attributes("recast-reason", attr(reason))
            .message_attributes("recast-source-message-id", attr(&message.id))
            .send()
            .await
            .map_err(|e| service_error("failed to send to the dead-letter queue", e))?;
        self.client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(&message.receipt.0)
            .send()
            .await
            .map_err(|e| service_error("failed to delete a dead-lettered message", e))?;
        Ok(())
    }

    async fn stats(&self) -> Result<QueueStats, QueueError> {
        let counts = self
            .count(
                &self.url,
                &[
                    QueueAttributeName::ApproximateNumberOfMessages,
                    QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
                ],
            )
            .await?;
        let dead = match self.dlq_url().await? {
            Some(dlq) => {
                self.count(dlq, &[QueueAttributeName::ApproximateNumberOfMessages])
                    .await?[0]
            }
            None => 0,
        };
        Ok(QueueStats {
            visible: counts[0],
            in_flight: counts[1],
            dead,
        })
    }
}

#[cfg(test)]
mod server_tests {
    use super::*;

    async fn fresh_queue(max_receives: u32) -> SqsQueue {
        assert!(
            std::env::var("RECAST_TEST_AWS_ENDPOINT").is_ok(),
            "RECAST_TEST_AWS_ENDPOINT is not set: run the tests with scripts/test, which starts the S3/SQS server"
        );
        let name = format!("recast-test-{:08x}", fastrand::u32(..));
        let spec = SqsQueueSpec {
            max_receives,
            visibility_timeout: Duration::from_secs(30),
        };
        let url = SqsQueue::create(&name, spec).await.expect("queue created");
        SqsQueue::open(&url).await.unwrap()
    }

    #[tokio::test]
    async fn sqs_queue_passes_the_conformance_suite() {
        let q = fresh_queue(3).await;
        crate::conformance::run_all(&q, 3).await;
    }

    #[tokio::test]
    async fn queue_urls_open_the_sqs_backend() {
        let q = fresh_queue(5).await;
        let opened = crate::open(&q.url).await.unwrap();
        let stats = opened.stats().await.unwrap();
        assert!(stats.is_drained());
        assert_eq!(stats.dead, 0);
    }
}
