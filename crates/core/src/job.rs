use serde::{Deserialize, Serialize};

use crate::{CoupleId, PhotoId};

/// Version of the message format; a worker refuses (dead-letters) messages of another version.
pub const JOB_MESSAGE_VERSION: u32 = 1;

/// One queue message: migrate the photos of one couple for one run.
///
/// The producer embeds the couple's photos and thumbnail keys when they fit (`photos`), so that a
/// first delivery costs the database no read at all; a worker loads them from the catalog when
/// `photos` is absent (couples too large for one message).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobMessage {
    pub v: u32,
    pub run: String,
    pub couple: CoupleId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub photos: Option<Vec<JobPhoto>>,
}

/// A photo as the worker needs it: where its original is and which thumbnails it has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobPhoto {
    pub id: PhotoId,
    pub key: String,
    pub thumbs: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error("message is not a recast job: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error("message has format version {found}, this worker reads version {JOB_MESSAGE_VERSION}")]
    Version { found: u32 },
    #[error("message names an empty run")]
    EmptyRun,
}

impl JobMessage {
    pub fn to_body(&self) -> String {
        serde_json::to_string(self).expect("a job message always serialises")
    }

    /// Parses and checks a message body; the error says why it can never be processed.
    pub fn parse(body: &str) -> Result<JobMessage, MessageError> {
        let msg: JobMessage = serde_json::from_str(body)?;
        if msg.v != JOB_MESSAGE_VERSION {
            return Err(MessageError::Version { found: msg.v });
        }
        if msg.run.trim().is_empty() {
            return Err(MessageError::EmptyRun);
        }
        Ok(msg)
    }

    /// The dedup id of this message: one couple is enqueued once per run.
    pub fn dedup_id(&self) -> String {
        format!("{}/{}", self.run, self.couple)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_round_trips() {
        let m = JobMessage {
            v: JOB_MESSAGE_VERSION,
            run: "r1".into(),
            couple: CoupleId(7),
            photos: Some(vec![JobPhoto {
                id: PhotoId(3),
                key: "photos/7/3.jpg".into(),
                thumbs: vec!["thumbs/7/3_160.jpg".into()],
            }]),
        };
        assert_eq!(JobMessage::parse(&m.to_body()).unwrap(), m);
        assert_eq!(m.dedup_id(), "r1/7");
    }

    #[test]
    fn malformed_messages_say_why() {
        assert!(matches!(
            JobMessage::parse("not json"),
            Err(MessageError::Malformed(_))
        ));
        assert!(matches!(
            JobMessage::parse(r#"{"v":9,"run":"r","couple":1}"#),
            Err(MessageError::Version { found: 9 })
        ));
        assert!(matches!(
            JobMessage::parse(r#"{"v":1,"run":" ","couple":1}"#),
            Err(MessageError::EmptyRun)
        ));
        assert!(matches!(
            JobMessage::parse(r#"{"v":1,"run":"r","couple":"x"}"#),
            Err(MessageError::Malformed(_))
        ));
        assert!(matches!(
            JobMessage::parse(r#"{"v":1,"run":"r","couple":1,"extra":true}"#),
            Err(MessageError::Malformed(_))
        ));
    }
}
