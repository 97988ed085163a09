//! One S3 object written in parts (a multipart upload), so that the writer holds one part in
//! memory however large the object grows: `recast export --out s3://...` of a billion photos.
//!
//! The upload is created with the first full part; an object smaller than one part is put whole
//! (an upload of one short part would be the same object at three requests' cost). An upload that
//! is not finished must be aborted ([`S3Multipart::abort`]): S3 keeps, and bills, the parts of an
//! unfinished upload until then (or until a lifecycle rule removes them).

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;

use crate::s3::classify;
use crate::{S3Store, StoreError};

/// S3's smallest part (but the last): 5 MiB.
pub const MIN_PART_BYTES: usize = 5 << 20;
/// S3's most parts per upload.
const MAX_PARTS: i32 = 10_000;

/// An object being written to S3 in parts.
pub struct S3Multipart {
    client: aws_sdk_s3::Client,
    bucket: String,
    /// The full key (the store's prefix included).
    full_key: String,
    /// The key as the caller named it, for errors.
    key: String,
    part_bytes: usize,
    /// Bytes not yet sent: less than one part.
    pending: Vec<u8>,
    /// The upload, once the first part is sent.
    upload_id: Option<String>,
    parts: Vec<CompletedPart>,
}

impl S3Multipart {
    /// Begins writing `key` of `store` in parts of `part_bytes` (at least S3's 5 MiB). Nothing is
    /// sent until a part is full.
    pub fn new(store: &S3Store, key: &str, part_bytes: usize) -> Result<S3Multipart, StoreError> {
        let part_bytes = part_bytes.max(MIN_PART_BYTES);
        Ok(S3Multipart {
            client: store.client().clone(),
            bucket: store.bucket().to_owned(),
            full_key: store.full_key(key)?,
            key: key.to_owned(),
            part_bytes,
            pending: Vec::with_capacity(part_bytes),
            upload_id: None,
            parts: Vec::new(),
        })
    }

    /// Appends `bytes`, sending every part that fills.
    pub async fn write(&mut self, mut bytes: &[u8]) -> Result<(), StoreError> {
        while !bytes.is_empty() {
            let room = self.part_bytes - self.pending.len();
            let take = room.min(bytes.len());
            self.pending.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.pending.len() == self.part_bytes {
                self.send_part().await?;
            }
        }
        Ok(())
    }

    /// Sends the rest and completes the object; answers how many parts it has (0: it was small
    /// enough to be put whole).
    pub async fn finish(mut self) -> Result<usize, StoreError> {
        let Some(upload_id) = self.upload_id.clone() else {
            let body = Bytes::from(std::mem::take(&mut self.pending));
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(&self.full_key)
                .body(ByteStream::from(body))
                .send()
                .await
                .map_err(|e| classify(&self.key, e))?;
            return Ok(0);
        };
        if !self.pending.is_empty() {
            self.send_part().await?;
        }
        let parts = self.parts.len();
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.full_key)
            .upload_id(&upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(std::mem::take(&mut self.parts)))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| classify(&self.key, e))?;
        Ok(parts)
    }

    /// Abandons the object: the parts sent are deleted (nothing is left billed). Best effort: an
    /// error here is returned, and the caller is already reporting a failure.
    pub async fn abort(self) -> Result<(), StoreError> {
        let Some(upload_id) = self.upload_id else {
            return Ok(());
        };
        self.client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.full_key)
            .upload_id(upload_id)
            .send()
            .await
            .map_err(|e| classify(&self.key, e))?;
        Ok(())
    }

    async fn send_part(&mut self) -> Result<(), StoreError> {
        let upload_id = match &self.upload_id {
            Some(id) => id.clone(),
            None => {
                let created = self
                    .client
                    .create_multipart_upload()
                    .bucket(&self.bucket)
                    .key(&self.full_key)
                    .send()
                    .await
                    .map_err(|e| classify(&self.key, e))?;
                let id = created.upload_id().unwrap_or_default().to_owned();
                self.upload_id = Some(id.clone());
                id
            }
        };
        let number = self.parts.len() as i32 + 1;
        if number > MAX_PARTS {
            let message = format!(
                "the object needs more than S3's {MAX_PARTS} parts of {} bytes; use larger parts",
                self.part_bytes
            );
            return Err(StoreError::Backend {
                key: self.key.clone(),
                code: None,
                message: message.clone(),
                transient: false,
                source: message.into(),
            });
        }
        let body = Bytes::from(std::mem::replace(
            &mut self.pending,
            Vec::with_capacity(self.part_bytes),
        ));
        let sent = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(&self.full_key)
            .upload_id(upload_id)
            .part_number(number)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| classify(&self.key, e))?;
        self.parts.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(sent.e_tag().map(str::to_owned))
                .build(),
        );
        Ok(())
    }
}
