//! A live listing cut into key ranges listed concurrently: every key of the store is handed out
//! exactly once, in units whose cursors resume where the units handed out stopped, whatever the
//! order the concurrent pages came back in. On a local folder (the S3 listing against moto is
//! tested end to end in tests/import_listing.rs).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use recast_ops::import::{listing_of, listing_with, ListingShape, Source};
use recast_store::ObjectStore;

/// ~3,000 keys over every range the patterns' prefixes give: numeric, hex, capitalised and
/// non-ASCII ids, keys before, between and after the prefixes.
fn keys() -> Vec<String> {
    let mut keys = Vec::new();
    for couple in 0..240 {
        for photo in 0..2 {
            keys.push(format!("photos/{couple}/{photo}.jpg"));
            for size in [160, 320, 640, 1280, 2048] {
                keys.push(format!("thumbs/{couple}/{photo}_{size}.jpg"));
            }
        }
    }
    for id in ["ab12", "f00d", "Zed", "Nadia", "é", "日本", "~tilde", "9z"] {
        keys.push(format!("photos/{id}/1.jpg"));
        keys.push(format!("thumbs/{id}/1_320.jpg"));
    }
    keys.extend(
        [
            "aaa.txt",
            "photos.txt",
            "readme.txt",
            "thumbs.old/x",
            "zzz/after.txt",
        ]
        .map(str::to_owned),
    );
    keys
}

fn store_with(dir: &Path, keys: &[String]) -> Arc<dyn ObjectStore> {
    for key in keys {
        let path = dir.join(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, key.as_bytes()).unwrap();
    }
    Arc::new(recast_store::LocalStore::new(dir).unwrap())
}

fn shape(streams: usize) -> ListingShape {
    ListingShape {
        streams,
        prefixes: vec!["photos/".into(), "thumbs/".into()],
    }
}

/// Reads up to `units` units (all when `None`) from `cursor`; answers the keys seen (with how
/// many times each) and the cursor of the last unit.
async fn read(
    source: &mut dyn Source,
    cursor: Option<String>,
    units: Option<usize>,
    seen: &mut BTreeMap<String, u32>,
) -> (Option<String>, usize) {
    let mut cursor = cursor;
    let mut n = 0;
    while units.is_none_or(|u| n < u) {
        let Some(unit) = source.unit(n as i64, cursor.as_deref()).await.unwrap() else {
            break;
        };
        for record in unit.records {
            *seen.entry(record.unwrap().key).or_default() += 1;
        }
        cursor = unit.cursor;
        n += 1;
    }
    (cursor, n)
}

fn every_key_once(seen: &BTreeMap<String, u32>, keys: &[String]) {
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "listed more than once: {twice:?}");
    let mut expected: Vec<&String> = keys.iter().collect();
    expected.sort();
    assert_eq!(seen.keys().collect::<Vec<_>>(), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_listed_at_once_hand_out_every_key_once() {
    let dir = tempfile::tempdir().unwrap();
    let keys = keys();
    let store = store_with(dir.path(), &keys);

    // 4 streams list the planned ranges; 16 also cut the long ones further as they go (a range
    // with a full page is cut while fewer than 4 ranges per stream are open).
    let mut seen = BTreeMap::new();
    for streams in [4, 16] {
        seen.clear();
        let mut ranged = listing_with(Arc::clone(&store), "test", shape(streams));
        let (cursor, units) = read(ranged.as_mut(), None, None, &mut seen).await;
        every_key_once(&seen, &keys);
        assert!(
            cursor.unwrap().starts_with("ranges:v1:"),
            "a ranged listing's cursor records its ranges"
        );
        // More units than one stream's pages of 1,000: a unit is a page of one range.
        assert!(units > keys.len() / 1000 + 1, "{units} units");
    }

    let mut sequential = BTreeMap::new();
    let mut one = listing_of(store, "test");
    let (cursor, units) = read(one.as_mut(), None, None, &mut sequential).await;
    assert_eq!(sequential, seen, "the same keys as one stream");
    assert_eq!(units, keys.len().div_ceil(1000));
    assert_eq!(
        cursor.as_deref(),
        Some("zzz/after.txt"),
        "one stream's cursor is its last key"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ranged_listing_resumes_from_any_unit_without_losing_or_repeating_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let keys = keys();
    let store = store_with(dir.path(), &keys);
    for (stop_after, streams) in [(1, 4), (3, 16), (7, 4), (12, 16)] {
        let mut seen = BTreeMap::new();
        // A listing stopped after some units (its pages in flight are dropped, as a killed
        // import's are), then a new one from the last unit's cursor.
        let mut first = listing_with(Arc::clone(&store), "test", shape(streams));
        let (cursor, n) = read(first.as_mut(), None, Some(stop_after), &mut seen).await;
        assert_eq!(n, stop_after);
        drop(first);
        let mut resumed = listing_with(Arc::clone(&store), "test", shape(streams));
        read(resumed.as_mut(), cursor, None, &mut seen).await;
        every_key_once(&seen, &keys);
    }
}
