//! `recast_ops::verify` as a library, against a real SQLite catalog and a real folder store:
//! what the catalog records and the store holds disagree, and the audit names each
//! disagreement; once they agree, it finds none.

use bytes::Bytes;
use recast_catalog::{NewCouple, NewPhoto, NewThumbnail, ProgressUpdate, WebpRecord};
use recast_core::{CoupleId, PhotoId, PhotoState, RunSettings, Tally};
use recast_ops::verify::{all_photos, audit, ViolationKind};

#[tokio::test]
async fn the_audit_names_what_the_store_does_not_hold_as_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = recast_catalog::open(&format!("sqlite://{}/c.db", dir.path().display()))
        .await
        .unwrap();
    let store = recast_store::open(&format!("file://{}/store", dir.path().display()))
        .await
        .unwrap();
    let (original, thumb, webp_key) = ("photos/1/1.jpg", "thumbs/1/1_160.jpg", "photos/1/1.webp");
    catalog
        .add_couples(&[NewCouple {
            id: CoupleId(1),
            photos: vec![NewPhoto {
                id: PhotoId(1),
                original_key: original.into(),
                format: "jpeg".into(),
                bytes: 9,
                width: None,
                height: None,
                thumbnails: vec![NewThumbnail {
                    key: thumb.into(),
                    bytes: 5,
                }],
            }],
        }])
        .await
        .unwrap();
    for key in [original, thumb] {
        let body = Bytes::from_static(b"old bytes");
        let crc = recast_store::crc32c(&body);
        store.put(key, body, crc).await.unwrap();
    }
    let (run, _) = catalog
        .ensure_run("r", &RunSettings::default())
        .await
        .unwrap();
    let webp = Bytes::from_static(b"RIFF-webp");
    let tally = Tally::default();
    catalog
        .record(
            &run,
            CoupleId(1),
            &[ProgressUpdate::Switched {
                photo: PhotoId(1),
                webp: WebpRecord {
                    key: webp_key.into(),
                    bytes: webp.len() as u64,
                    crc32c: recast_store::crc32c(&webp),
                },
            }],
            None,
            &tally,
        )
        .await
        .unwrap();
    catalog
        .advance(&run, &[(PhotoId(1), PhotoState::ThumbsGone)], &tally)
        .await
        .unwrap();

    // The WebP was never stored, and the thumbnail recorded gone is still there.
    let photos = all_photos(catalog.as_ref(), &run).await.unwrap();
    let found = audit(&run, &photos, store.as_ref(), 0, 4, "every photo".into())
        .await
        .unwrap();
    let kinds: Vec<_> = found
        .violations
        .iter()
        .map(|v| (v.kind, v.key.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            (ViolationKind::WebpMissing, webp_key),
            (ViolationKind::ThumbnailLeft, thumb)
        ]
    );

    // Once the store holds what the catalog records, nothing is found.
    let crc = recast_store::crc32c(&webp);
    store.put(webp_key, webp, crc).await.unwrap();
    store.delete_many(&[thumb.to_owned()]).await.unwrap();
    let found = audit(&run, &photos, store.as_ref(), 0, 4, "every photo".into())
        .await
        .unwrap();
    assert_eq!(found.violations, []);
    assert_eq!(found.webps_checked, 1);
}
