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

/// Units written with their checkpoint or not at all, deferred thumbnails, and the resolution.
pub async fn import_stages_then_resolves_once(c: &dyn Catalog) {
    use ObjectKind::{Original, Thumbnail};
    let src = "conformance-import";
    assert_eq!(c.import_checkpoint(src).await.unwrap(), None);
    let mut unit = c.import_unit(src, 0).await.unwrap();
    // A thumbnail before its original in the same batch is added; "9"'s photo "é" arrives in a
    // second batch.
    let first = unit
        .add(&[
            object(Thumbnail, "c\t1", "p 1", "t/c\t1/p 1_1.jpg"),
            object(Original, "c\t1", "p 1", "o/c\t1/p 1.jpg"),
            object(Original, "10", "2", "o/10/2.jpg"),
            object(Thumbnail, "9", "é", "t/9/é_1.jpg"),
        ])
        .await
        .unwrap();
    assert_eq!(
        (
            first.couples,
            first.photos,
            first.thumbnails,
            first.deferred
        ),
        (2, 2, 1, 1)
    );
    let second = unit
        .add(&[object(Original, "9", "é", "o/9/é.jpg")])
        .await
        .unwrap();
    assert_eq!((second.couples, second.photos), (1, 1));
    let cp = ImportCheckpoint {
        units_done: 1,
        cursor: Some("o/9/é.jpg".into()),
        summary: "{}".into(),
    };
    unit.commit(&cp).await.unwrap();
    assert_eq!(c.import_checkpoint(src).await.unwrap(), Some(cp.clone()));
    // A unit begun and dropped (refused, killed) leaves nothing behind, checkpoint included.
    let mut refused = c.import_unit(src, 1).await.unwrap();
    refused
        .add(&[object(Original, "x", "y", "o/x/y.jpg")])
        .await
        .unwrap();
    drop(refused);
    assert_eq!(c.import_checkpoint(src).await.unwrap(), Some(cp));
    let mut unit = c.import_unit(src, 1).await.unwrap();
    let orphan = unit
        .add(&[object(Thumbnail, "9", "gone", "t/9/gone_1.jpg")])
        .await
        .unwrap();
    assert_eq!(orphan.deferred, 1);
    unit.commit(&ImportCheckpoint {
        units_done: 2,
        cursor: None,
        summary: "{}".into(),
    })
    .await
    .unwrap();

    let r = c.import_resolve(src, 10).await.unwrap();
    assert_eq!(
        (r.couples_added, r.photos_added, r.thumbnails_added),
        (0, 0, 1),
        "the deferred thumbnail of 9/é is added at the end"
    );
    assert_eq!(
        (r.orphans, r.orphan_keys),
        (1, vec!["t/9/gone_1.jpg".to_owned()])
    );
    assert_eq!(c.import_checkpoint(src).await.unwrap(), None);
    // Numeric ids keep their numeric order within a batch; "x" was rolled back.
    let (couples, photos) = c.max_ids().await.unwrap();
    assert_eq!((couples.0, photos.0), (3, 3));

    // Importing the same objects again adds nothing.
    let mut unit = c.import_unit(src, 0).await.unwrap();
    let again = unit
        .add(&[
            object(Original, "10", "2", "o/10/2.jpg"),
            object(Thumbnail, "c\t1", "p 1", "t/c\t1/p 1_1.jpg"),
        ])
        .await
        .unwrap();
    assert_eq!(again, crate::BatchAdded::default());
    drop(unit);

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

/// Thumbnails that exist already, in a batch with new ones (an import overlapping an earlier one),
/// and a key twice in one batch: exactly the missing thumbnails are added, batch after batch of
/// the unit, and the catalog's counters count each once. (PostgreSQL copies thumbnails straight
/// in until a duplicate key, then takes the arbitrated path: this covers both.)
pub async fn import_adds_exactly_the_missing_thumbnails(c: &dyn Catalog) {
    use ObjectKind::{Original, Thumbnail};
    let src = "conformance-overlap";
    let commit = |units_done| ImportCheckpoint {
        units_done,
        cursor: None,
        summary: "{}".into(),
    };
    let mut unit = c.import_unit(src, 0).await.unwrap();
    let first = unit
        .add(&[
            object(Original, "1", "a", "o/1/a.jpg"),
            object(Thumbnail, "1", "a", "t/1/a_1.jpg"),
            object(Thumbnail, "1", "a", "t/1/a_2.jpg"),
            object(Thumbnail, "1", "a", "t/1/a_2.jpg"),
        ])
        .await
        .unwrap();
    assert_eq!(
        (first.photos, first.thumbnails),
        (1, 2),
        "a key twice in one batch is added once"
    );
    unit.commit(&commit(1)).await.unwrap();

    let mut unit = c.import_unit(src, 1).await.unwrap();
    let overlap = unit
        .add(&[
            object(Thumbnail, "1", "a", "t/1/a_1.jpg"),
            object(Thumbnail, "1", "a", "t/1/a_3.jpg"),
            object(Original, "1", "b", "o/1/b.jpg"),
            object(Thumbnail, "1", "b", "t/1/b_1.jpg"),
        ])
        .await
        .unwrap();
    assert_eq!(
        (overlap.couples, overlap.photos, overlap.thumbnails),
        (0, 1, 2),
        "the existing t/1/a_1 is left out, a_3 (of a photo from the unit before) and b_1 added"
    );
    let next = unit
        .add(&[
            object(Thumbnail, "1", "b", "t/1/b_1.jpg"),
            object(Thumbnail, "1", "b", "t/1/b_2.jpg"),
        ])
        .await
        .unwrap();
    assert_eq!(next.thumbnails, 1, "the unit's next batch adds what is new");
    unit.commit(&commit(2)).await.unwrap();
    c.import_resolve(src, 10).await.unwrap();

    let totals = c.totals().await.unwrap();
    assert_eq!(
        (totals.couples, totals.photos, totals.thumbnails),
        (1, 2, 5),
        "{totals:?}"
    );
    assert_eq!(totals.thumbnail_bytes, 50);
    assert_eq!(totals, c.recount_totals().await.unwrap());
}
