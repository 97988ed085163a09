//! The job runner against the real embedded backends: a SQLite catalog and queue and a local
//! folder store in a temporary directory, with real JPEGs.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use recast_catalog::{
    Catalog, NewCouple, NewPhoto, NewThumbnail, ProgressUpdate, Run, RunTail, SqliteCatalog,
    WebpRecord,
};
use recast_core::{
    webp_key, CoupleId, JobMessage, JobPhoto, OriginalsPolicy, PhotoId, PhotoState, RunSettings,
    Tally, JOB_MESSAGE_VERSION,
};
use recast_queue::{JobQueue, OutgoingMessage, SqliteQueue};
use recast_store::{crc32c, DeleteOutcome, LocalStore, ObjectMeta, ObjectStore, StoreError};
use recast_worker::{CpuPool, Progress, Worker, WorkerConfig};
use tokio_util::sync::CancellationToken;

struct Rig {
    _dir: tempfile::TempDir,
    catalog: Arc<SqliteCatalog>,
    queue: Arc<SqliteQueue>,
    store: Arc<LocalStore>,
}

const THUMB_SIZES: [u32; 2] = [160, 80];

impl Rig {
    async fn new() -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let catalog = SqliteCatalog::open(&format!("sqlite://{}/c.db", dir.path().display()))
            .await
            .unwrap();
        let queue = SqliteQueue::open(&format!("sqlite://{}/q.db", dir.path().display()))
            .await
            .unwrap();
        let store = LocalStore::new(dir.path().join("store")).unwrap();
        Rig {
            _dir: dir,
            catalog: Arc::new(catalog),
            queue: Arc::new(queue),
            store: Arc::new(store),
        }
    }

    async fn put(&self, key: &str, body: Vec<u8>) -> u64 {
        let len = body.len() as u64;
        let crc = crc32c(&body);
        self.store.put(key, Bytes::from(body), crc).await.unwrap();
        len
    }

    /// Adds a couple whose photos have these bodies (each with two thumbnails) and returns its job.
    async fn couple(&self, id: i64, bodies: Vec<Vec<u8>>) -> JobPhoto {
        let mut photos = Vec::new();
        let mut first = None;
        for (i, body) in bodies.into_iter().enumerate() {
            let pid = PhotoId(id * 100 + i as i64);
            let key = format!("photos/{id}/{pid}.jpg");
            let bytes = self.put(&key, body).await;
            let mut thumbnails = Vec::new();
            for s in THUMB_SIZES {
                let tkey = format!("thumbs/{id}/{pid}_{s}.jpg");
                let tb = self
                    .put(
                        &tkey,
                        recast_codec::synth_photo_jpeg(s.into(), s, s * 3 / 4),
                    )
                    .await;
                thumbnails.push(NewThumbnail {
                    key: tkey,
                    bytes: tb,
                });
            }
            first.get_or_insert(JobPhoto {
                id: pid,
                key: key.clone(),
                thumbs: thumbnails.iter().map(|t| t.key.clone()).collect(),
            });
            photos.push(NewPhoto {
                id: pid,
                original_key: key,
                format: "jpeg".into(),
                bytes,
                width: None,
                height: None,
                thumbnails,
            });
        }
        self.catalog
            .add_couples(&[NewCouple {
                id: CoupleId(id),
                photos,
            }])
            .await
            .unwrap();
        first.unwrap()
    }

    /// The run a worker works for by default ("main"), so that a worker sweeps it unasked.
    async fn run(&self, originals: OriginalsPolicy) -> Run {
        let settings = RunSettings {
            originals,
            ..RunSettings::default()
        };
        self.catalog.ensure_run("main", &settings).await.unwrap().0
    }

    async fn enqueue(&self, run: &Run, couple: i64, inline: bool) {
        let photos = if inline {
            Some(
                self.catalog
                    .couple_photos(CoupleId(couple), &Tally::default())
                    .await
                    .unwrap(),
            )
        } else {
            None
        };
        let msg = JobMessage {
            v: JOB_MESSAGE_VERSION,
            run: run.name.clone(),
            couple: CoupleId(couple),
            photos,
        };
        self.queue
            .send_batch(&[OutgoingMessage {
                dedup_id: msg.dedup_id(),
                body: msg.to_body(),
            }])
            .await
            .unwrap();
    }

    /// Runs one worker until the queue is drained.
    async fn work(&self) -> recast_worker::WorkerSummary {
        self.work_with(self.store.clone()).await.0
    }

    /// Runs one worker over `store` until the queue is drained or the worker halts; returns its
    /// summary and why it halted.
    async fn work_with(
        &self,
        store: Arc<dyn ObjectStore>,
    ) -> (recast_worker::WorkerSummary, Option<String>) {
        let config = WorkerConfig {
            poll_wait: Duration::from_millis(100),
            exit_when_idle: true,
            ..WorkerConfig::default()
        };
        let worker = Worker::new(
            config,
            self.catalog.clone(),
            store,
            self.queue.clone(),
            CpuPool::new(2),
            Arc::new(Progress::default()),
        );
        let summary = tokio::time::timeout(
            Duration::from_secs(120),
            worker.run(CancellationToken::new()),
        )
        .await
        .expect("the worker drains the queue");
        (summary, worker.fatal())
    }

    async fn exists(&self, key: &str) -> bool {
        self.store.head(key).await.unwrap().is_some()
    }

    async fn state(&self, run: &Run, photo: PhotoId) -> (PhotoState, Option<String>) {
        let rows = self.catalog.all_progress(run).await.unwrap();
        rows.into_iter()
            .find(|r| r.photo == photo)
            .map_or((PhotoState::Pending, None), |r| (r.state, r.failure))
    }
}

fn jpeg(seed: u64) -> Vec<u8> {
    recast_codec::synth_photo_jpeg(seed, 400, 300)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_photo_fails_alone_and_keeps_everything() {
    let rig = Rig::new().await;
    let good = rig
        .couple(1, vec![jpeg(1), b"definitely not a jpeg".to_vec(), jpeg(2)])
        .await;
    let run = rig.run(OriginalsPolicy::Keep).await;
    rig.enqueue(&run, 1, true).await;
    let summary = rig.work().await;
    assert_eq!(summary.jobs_completed, 1);

    let (state, _) = rig.state(&run, good.id).await;
    assert_eq!(state, PhotoState::Done);
    let webp = rig.store.get(&webp_key(&good.key)).await.unwrap();
    let decoded = image::load_from_memory(&webp).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (400, 300));
    for t in &good.thumbs {
        assert!(
            !rig.exists(t).await,
            "thumbnail {t} of a migrated photo remains"
        );
    }
    assert!(rig.exists(&good.key).await, "original deleted under keep");

    let bad = PhotoId(101);
    let (state, reason) = rig.state(&run, bad).await;
    assert_eq!(
        (state, reason.as_deref()),
        (PhotoState::Failed, Some("undecodable"))
    );
    assert!(rig.exists("photos/1/101.jpg").await);
    for s in THUMB_SIZES {
        assert!(
            rig.exists(&format!("thumbs/1/101_{s}.jpg")).await,
            "thumbnail of a failed photo deleted"
        );
    }
    assert!(!rig.exists("photos/1/101.webp").await);
    let status = rig.catalog.status(&run).await.unwrap();
    assert_eq!(status.failures.get("undecodable"), Some(&1));
    assert_eq!(status.photos_in(PhotoState::Done), 2);
    assert!(rig.queue.stats().await.unwrap().is_drained());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_policy_removes_originals_only_after_the_switch() {
    let rig = Rig::new().await;
    let photo = rig.couple(2, vec![jpeg(3)]).await;
    rig.couple(3, vec![jpeg(4)]).await;
    // The original of couple 3's photo vanished behind recast's back.
    rig.store
        .delete_many(&["photos/3/300.jpg".to_owned()])
        .await
        .unwrap();
    let run = rig.run(OriginalsPolicy::Delete).await;
    rig.enqueue(&run, 2, false).await; // photos read from the catalog
    rig.enqueue(&run, 3, true).await;
    rig.work().await;
    assert_eq!(rig.state(&run, photo.id).await.0, PhotoState::Done);
    assert!(!rig.exists(&photo.key).await, "original kept under delete");
    assert!(rig.exists(&webp_key(&photo.key)).await);
    let (state, reason) = rig.state(&run, PhotoId(300)).await;
    assert_eq!(
        (state, reason.as_deref()),
        (PhotoState::Failed, Some("missing_original"))
    );
    assert!(
        rig.exists("thumbs/3/300_160.jpg").await,
        "thumbnails of a photo without original deleted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_message_is_dead_lettered_and_the_worker_goes_on() {
    let rig = Rig::new().await;
    let photo = rig.couple(4, vec![jpeg(5)]).await;
    let run = rig.run(OriginalsPolicy::Keep).await;
    let junk = [
        ("junk/1", "{not json"),
        ("junk/2", r#"{"v":1,"run":"no-such-run","couple":4}"#),
        ("junk/3", r#"{"v":7,"run":"test","couple":4}"#),
    ];
    for (id, body) in junk {
        rig.queue
            .send_batch(&[OutgoingMessage {
                dedup_id: id.into(),
                body: body.into(),
            }])
            .await
            .unwrap();
    }
    rig.enqueue(&run, 4, true).await;
    let summary = rig.work().await;
    assert_eq!((summary.jobs_completed, summary.jobs_dead_lettered), (1, 3));
    assert_eq!(rig.state(&run, photo.id).await.0, PhotoState::Done);
    let dead = rig.queue.dead_letters().await.unwrap();
    assert_eq!(dead.len(), 3);
    let reasons: Vec<&str> = dead.iter().map(|(_, r)| r.as_str()).collect();
    assert!(
        reasons.iter().any(|r| r.contains("not a recast job")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("does not exist")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("version 7")),
        "{reasons:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_job_continues_from_the_catalog_without_re_encoding() {
    let rig = Rig::new().await;
    let photo = rig.couple(5, vec![jpeg(6), jpeg(7)]).await;
    let run = rig.run(OriginalsPolicy::Keep).await;
    // An earlier attempt stored and recorded the first photo, then died before deleting anything.
    let webp = recast_codec::transcode(&jpeg(6), &Default::default())
        .unwrap()
        .webp;
    let key = webp_key(&photo.key);
    let bytes = rig.put(&key, webp.clone()).await;
    let record = WebpRecord {
        key,
        bytes,
        crc32c: crc32c(&webp),
    };
    rig.catalog
        .record(
            &run,
            CoupleId(5),
            &[ProgressUpdate::Switched {
                photo: photo.id,
                webp: record,
            }],
            None,
            &Tally::default(),
        )
        .await
        .unwrap();
    rig.enqueue(&run, 5, true).await;
    // Its message comes back with a receive count of 2.
    let first = rig
        .queue
        .receive(1, Duration::ZERO, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    rig.work().await;
    assert_eq!(rig.state(&run, photo.id).await.0, PhotoState::Done);
    assert_eq!(rig.state(&run, PhotoId(501)).await.0, PhotoState::Done);
    for t in &photo.thumbs {
        assert!(!rig.exists(t).await);
    }
    let status = rig.catalog.status(&run).await.unwrap();
    assert_eq!(
        status.requests.s3_get, 1,
        "the recorded photo was fetched again"
    );
    assert_eq!(status.requests.s3_put, 1);
    assert_eq!(
        status.requests.s3_delete_requests, 1,
        "thumbnails not deleted in one batch"
    );
    assert_eq!(status.requests.s3_deleted_objects, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_already_webp_photo_keeps_its_original_even_under_delete() {
    let rig = Rig::new().await;
    let webp = recast_codec::transcode(&jpeg(8), &Default::default())
        .unwrap()
        .webp;
    let photo = rig.couple(6, vec![webp.clone(), jpeg(9)]).await;
    let run = rig.run(OriginalsPolicy::Delete).await;
    rig.enqueue(&run, 6, true).await;
    rig.work().await;
    assert_eq!(rig.state(&run, photo.id).await.0, PhotoState::Done);
    assert_eq!(
        rig.store.get(&photo.key).await.unwrap(),
        webp,
        "the kept original changed or went"
    );
    for t in &photo.thumbs {
        assert!(!rig.exists(t).await, "a kept photo's thumbnail remains");
    }
    // Its neighbour was migrated normally: original deleted under delete.
    assert!(!rig.exists("photos/6/601.jpg").await);
    assert!(rig.exists("photos/6/601.webp").await);
    let status = rig.catalog.status(&run).await.unwrap();
    assert_eq!(status.kept.get("already_webp"), Some(&1));
    assert!(status.failures.is_empty());
    assert_eq!(
        status.requests.s3_put, 1,
        "the WebP original was re-encoded"
    );
}

/// A two-frame animated GIF made from two synthetic photos.
fn animated_gif() -> Vec<u8> {
    use image::codecs::gif::GifEncoder;
    use image::{Delay, Frame};
    let frames = [3u64, 4].map(|seed| {
        let rgba = image::load_from_memory(&recast_codec::synth_photo_jpeg(seed, 320, 240))
            .unwrap()
            .to_rgba8();
        Frame::from_parts(rgba, 0, 0, Delay::from_numer_denom_ms(100, 1))
    });
    let mut out = Vec::new();
    GifEncoder::new(&mut out).encode_frames(frames).unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_animated_gif_keeps_its_animation() {
    let rig = Rig::new().await;
    let gif = animated_gif();
    let photo = rig.couple(7, vec![gif.clone()]).await;
    let run = rig.run(OriginalsPolicy::Delete).await;
    rig.enqueue(&run, 7, true).await;
    rig.work().await;
    assert_eq!(rig.state(&run, photo.id).await.0, PhotoState::Done);
    assert_eq!(
        rig.store.get(&photo.key).await.unwrap(),
        gif,
        "the animation was lost"
    );
    assert!(
        !rig.exists(&webp_key(&photo.key)).await,
        "a first-frame WebP was stored"
    );
    let status = rig.catalog.status(&run).await.unwrap();
    assert_eq!(status.kept.get("animated"), Some(&1), "{:?}", status.kept);
}

/// The real local store, with S3's `AccessDenied` injected for the GETs of some keys, for every
/// PUT, or in DeleteObjects' per-key errors for some keys or every key (a bucket policy or an
/// object lock the local store cannot express).
#[derive(Debug, Default)]
struct Denying {
    inner: Option<Arc<LocalStore>>,
    denied_gets: Vec<String>,
    deny_puts: bool,
    denied_deletes: Vec<String>,
    deny_deletes: bool,
}

impl Denying {
    fn over(store: &Arc<LocalStore>) -> Denying {
        Denying {
            inner: Some(store.clone()),
            ..Denying::default()
        }
    }

    fn inner(&self) -> &LocalStore {
        self.inner.as_deref().expect("a store to wrap")
    }
}

fn denied(key: &str) -> StoreError {
    StoreError::PermissionDenied {
        key: key.to_owned(),
        source: Box::new(std::io::Error::other("AccessDenied: injected by the test")),
    }
}

#[async_trait::async_trait]
impl ObjectStore for Denying {
    async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        if self.denied_gets.iter().any(|k| k == key) {
            return Err(denied(key));
        }
        self.inner().get(key).await
    }
    async fn put(&self, key: &str, body: Bytes, crc32c: u32) -> Result<(), StoreError> {
        if self.deny_puts {
            return Err(denied(key));
        }
        self.inner().put(key, body, crc32c).await
    }
    async fn delete_many(&self, keys: &[String]) -> Result<DeleteOutcome, StoreError> {
        // As S3 answers: the request succeeds, with a per-key error for each denied key.
        let (refused, allowed): (Vec<String>, Vec<String>) = keys
            .iter()
            .cloned()
            .partition(|k| self.deny_deletes || self.denied_deletes.contains(k));
        let mut outcome = self.inner().delete_many(&allowed).await?;
        outcome
            .failed
            .extend(refused.into_iter().map(|k| (k.clone(), denied(&k))));
        Ok(outcome)
    }
    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StoreError> {
        self.inner().head(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        self.inner().list(prefix).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forbidden_original_is_recorded_failed_on_the_first_attempt() {
    let rig = Rig::new().await;
    let good = rig.couple(5, vec![jpeg(5), jpeg(6)]).await;
    let run = rig.run(OriginalsPolicy::Delete).await;
    rig.enqueue(&run, 5, true).await;
    let forbidden = PhotoId(501);
    let store = Denying {
        denied_gets: vec!["photos/5/501.jpg".to_owned()],
        ..Denying::over(&rig.store)
    };
    let (summary, fatal) = rig.work_with(Arc::new(store)).await;
    assert_eq!(fatal, None);
    assert_eq!(
        (summary.jobs_completed, summary.jobs_retried),
        (1, 0),
        "a denial is not retried as if transient"
    );
    let (state, reason) = rig.state(&run, forbidden).await;
    assert_eq!(
        (state, reason.as_deref()),
        (PhotoState::Failed, Some("access_denied"))
    );
    assert!(rig.exists("photos/5/501.jpg").await);
    for s in THUMB_SIZES {
        assert!(rig.exists(&format!("thumbs/5/501_{s}.jpg")).await);
    }
    assert_eq!(rig.state(&run, good.id).await.0, PhotoState::Done);
    let attempts = rig.catalog.status(&run).await.unwrap();
    assert_eq!(attempts.failures.get("access_denied"), Some(&1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_denies_every_put_halts_the_worker() {
    let rig = Rig::new().await;
    let photo = rig.couple(6, vec![jpeg(7)]).await;
    rig.couple(7, vec![jpeg(8)]).await;
    let run = rig.run(OriginalsPolicy::Delete).await;
    rig.enqueue(&run, 6, true).await;
    rig.enqueue(&run, 7, true).await;
    let store = Denying {
        deny_puts: true,
        ..Denying::over(&rig.store)
    };
    let (summary, fatal) = rig.work_with(Arc::new(store)).await;
    let fatal = fatal.expect("the worker halts on a store-wide denial");
    assert!(fatal.contains("access to"), "{fatal}");
    assert!(fatal.contains("denied"), "{fatal}");
    assert_eq!(summary.jobs_completed, 0);
    assert_eq!(summary.jobs_dead_lettered, 0);
    // Nothing recorded failed, nothing deleted; the messages stay for a worker that may write.
    assert_eq!(rig.state(&run, photo.id).await.0, PhotoState::Pending);
    assert!(rig.exists(&photo.key).await);
    let stats = rig.queue.stats().await.unwrap();
    assert_eq!(stats.visible + stats.in_flight, 2, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thumbnail_the_store_refuses_to_delete_sets_its_photo_aside() {
    let rig = Rig::new().await;
    let locked = rig.couple(8, vec![jpeg(9), jpeg(10)]).await;
    let run = rig.run(OriginalsPolicy::Keep).await;
    rig.enqueue(&run, 8, true).await;
    let refused = locked.thumbs[0].clone();
    let store = Denying {
        denied_deletes: vec![refused.clone()],
        ..Denying::over(&rig.store)
    };
    let (summary, fatal) = rig.work_with(Arc::new(store)).await;
    assert_eq!(fatal, None, "one refused key does not stop the worker");
    assert_eq!(summary.jobs_completed, 1);
    // The photo stays switched, set aside with its reason; its other thumbnail went (the request
    // deleted it), the refused one is kept; the other photo is done; the worker exited.
    assert_eq!(rig.state(&run, locked.id).await.0, PhotoState::Switched);
    assert!(rig.exists(&refused).await);
    assert!(!rig.exists(&locked.thumbs[1]).await);
    assert_eq!(rig.state(&run, PhotoId(801)).await.0, PhotoState::Done);
    let status = rig.catalog.status(&run).await.unwrap();
    assert_eq!(status.sweep_blocked, 1, "{status:?}");
    assert_eq!(
        rig.catalog
            .sweep_backlog(&run, &Tally::default())
            .await
            .unwrap(),
        0,
        "a set-aside photo is not waited for"
    );

    // The cause fixed, a requeue's unblock lets a worker finish it.
    assert_eq!(rig.catalog.unblock_sweeps(&run).await.unwrap(), 1);
    rig.work().await;
    assert_eq!(rig.state(&run, locked.id).await.0, PhotoState::Done);
    assert!(!rig.exists(&refused).await);
    assert_eq!(rig.catalog.status(&run).await.unwrap().sweep_blocked, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_refuses_every_delete_halts_the_worker() {
    let rig = Rig::new().await;
    let photo = rig.couple(9, vec![jpeg(11)]).await;
    let run = rig.run(OriginalsPolicy::Keep).await;
    rig.enqueue(&run, 9, true).await;
    let store = Denying {
        deny_deletes: true,
        ..Denying::over(&rig.store)
    };
    let (_, fatal) = rig.work_with(Arc::new(store)).await;
    let fatal = fatal.expect("the worker halts when it may not delete at all");
    assert!(fatal.contains("s3:DeleteObject"), "{fatal}");
    assert_eq!(rig.state(&run, photo.id).await.0, PhotoState::Switched);
    for t in &photo.thumbs {
        assert!(rig.exists(t).await, "{t} was deleted");
    }
    assert_eq!(rig.catalog.status(&run).await.unwrap().sweep_blocked, 0);
}
