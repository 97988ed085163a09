//! The import and export methods of [`Catalog`], checked the same way on every backend, each on an
//! empty catalog (crates/ops/tests/import.rs runs them on SQLite and PostgreSQL).

use crate::{Catalog, ImportCheckpoint, ObjectKind, StagedObject};

fn object(kind: ObjectKind, couple: &str, photo: &str, key: &str) -> StagedObject {
    StagedObject {
        kind,
        couple: couple.into(),
        photo: photo.into(),
        format: (kind == ObjectKind::Original).then(|| "jpeg".into()),
        key: key.into(),
        bytes: 10,
    }
}

/// Staging, discarding, checkpoints and the resolution into couples, photos and thumbnails.
pub async fn import_stages_then_resolves_once(c: &dyn Catalog) {
    use ObjectKind::{Original, Thumbnail};
    let src = "conformance-import";
    assert_eq!(c.import_checkpoint(src).await.unwrap(), None);
    c.import_stage(
        src,
        0,
        &[
            object(Thumbnail, "c\t1", "p 1", "t/c\t1/p 1_1.jpg"),
            object(Original, "c\t1", "p 1", "o/c\t1/p 1.jpg"),
            object(Original, "10", "2", "o/10/2.jpg"),
            object(Original, "9", "é", "o/9/é.jpg"),
        ],
    )
    .await
    .unwrap();
    let cp = ImportCheckpoint {
        units_done: 1,
        cursor: Some("o/9/é.jpg".into()),
        summary: "{}".into(),
    };
    c.import_save_checkpoint(src, &cp).await.unwrap();
    assert_eq!(c.import_checkpoint(src).await.unwrap(), Some(cp));
    // A unit staged in part and then refused leaves nothing behind.
    c.import_stage(src, 1, &[object(Original, "x", "y", "o/x/y.jpg")])
        .await
        .unwrap();
    c.import_discard(src, 1).await.unwrap();
    c.import_stage(src, 1, &[object(Thumbnail, "9", "gone", "t/9/gone_1.jpg")])
        .await
        .unwrap();

    let r = c.import_resolve(src, 10).await.unwrap();
    assert_eq!(
        (r.couples_added, r.photos_added, r.thumbnails_added),
        (3, 3, 1)
    );
    assert_eq!(
        (r.orphans, r.orphan_keys),
        (1, vec!["t/9/gone_1.jpg".to_owned()])
    );
    assert_eq!(c.import_checkpoint(src).await.unwrap(), None);
    // Numeric ids keep their numeric order ("9" before "10").
    let (couples, photos) = c.max_ids().await.unwrap();
    assert_eq!((couples.0, photos.0), (3, 3));

    // Staging the same objects again adds nothing.
    c.import_stage(src, 0, &[object(Original, "10", "2", "o/10/2.jpg")])
        .await
        .unwrap();
    let again = c.import_resolve(src, 10).await.unwrap();
    assert_eq!((again.couples_added, again.photos_added), (0, 0));

    let run = c
        .ensure_run("conformance-export", &recast_core::RunSettings::default())
        .await
        .unwrap()
        .0;
    let page = c.export_page(&run, 0, 2).await.unwrap();
    assert_eq!(page.len(), 2);
    let rest = c.export_page(&run, page[1].photo_id, 10).await.unwrap();
    assert_eq!(rest.len(), 1);
    let ids: Vec<(String, String)> = page
        .iter()
        .chain(&rest)
        .map(|r| (r.couple.clone(), r.photo.clone()))
        .collect();
    assert!(ids.contains(&("c\t1".into(), "p 1".into())), "{ids:?}");
    assert!(ids.contains(&("9".into(), "é".into())), "{ids:?}");
    assert!(page.iter().chain(&rest).all(|r| r.state.is_none()));
}
