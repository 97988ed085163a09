//! The behaviour every [`ObjectStore`] backend must show, written once and run against each.
//! Each check uses its own key prefix, so the suite can run on a shared (non-empty) store.

use bytes::Bytes;

use crate::{crc32c, ObjectStore, StoreError, MAX_DELETE_BATCH};

pub async fn run_all(store: &dyn ObjectStore) {
    let p = format!("conformance-{:08x}", fastrand::u32(..));
    put_then_get(store, &p).await;
    put_overwrites(store, &p).await;
    missing_key_is_not_found(store, &p).await;
    bad_checksum_is_refused_and_stores_nothing(store, &p).await;
    delete_many_is_idempotent_and_per_key(store, &p).await;
    delete_batch_limit(store).await;
    list_and_head(store, &p).await;
    invalid_keys_are_refused(store).await;
    list_pages_follow_the_cursor(store, &p).await;
}

async fn put(store: &dyn ObjectStore, key: &str, body: &'static [u8]) {
    store
        .put(key, Bytes::from_static(body), crc32c(body))
        .await
        .unwrap_or_else(|e| panic!("put {key}: {e}"));
}

pub async fn put_then_get(store: &dyn ObjectStore, p: &str) {
    let key = format!("{p}/photos/1/2.webp");
    put(store, &key, b"RIFF....WEBP").await;
    assert_eq!(
        store.get(&key).await.unwrap(),
        Bytes::from_static(b"RIFF....WEBP")
    );
}

pub async fn put_overwrites(store: &dyn ObjectStore, p: &str) {
    let key = format!("{p}/over");
    put(store, &key, b"first").await;
    put(store, &key, b"second").await;
    put(store, &key, b"second").await;
    assert_eq!(
        store.get(&key).await.unwrap(),
        Bytes::from_static(b"second")
    );
}

pub async fn missing_key_is_not_found(store: &dyn ObjectStore, p: &str) {
    let err = store.get(&format!("{p}/nope")).await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert!(store.head(&format!("{p}/nope")).await.unwrap().is_none());
}

pub async fn bad_checksum_is_refused_and_stores_nothing(store: &dyn ObjectStore, p: &str) {
    let key = format!("{p}/corrupt");
    let err = store
        .put(&key, Bytes::from_static(b"payload"), crc32c(b"other"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::ChecksumMismatch { .. }), "{err}");
    assert!(!err.is_transient());
    assert!(store.get(&key).await.unwrap_err().is_not_found());
}

pub async fn delete_many_is_idempotent_and_per_key(store: &dyn ObjectStore, p: &str) {
    let keys: Vec<String> = (0..5).map(|i| format!("{p}/del/{i}.jpg")).collect();
    for k in &keys[..3] {
        put(store, k, b"thumb").await;
    }
    // Two of the keys never existed: deleting them succeeds too.
    let out = store.delete_many(&keys).await.unwrap();
    assert!(out.failed.is_empty(), "{:?}", out.failed);
    let mut deleted = out.deleted.clone();
    deleted.sort();
    assert_eq!(deleted, keys);
    for k in &keys {
        assert!(store.get(k).await.unwrap_err().is_not_found());
    }
    let again = store.delete_many(&keys).await.unwrap();
    assert_eq!(again.deleted.len(), keys.len());
    assert!(store.delete_many(&[]).await.unwrap().deleted.is_empty());
}

pub async fn delete_batch_limit(store: &dyn ObjectStore) {
    let keys: Vec<String> = (0..=MAX_DELETE_BATCH).map(|i| format!("x/{i}")).collect();
    let err = store.delete_many(&keys).await.unwrap_err();
    assert!(
        matches!(err, StoreError::BatchTooLarge(n) if n == MAX_DELETE_BATCH + 1),
        "{err}"
    );
}

pub async fn list_and_head(store: &dyn ObjectStore, p: &str) {
    put(store, &format!("{p}/list/b"), b"bb").await;
    put(store, &format!("{p}/list/a/c"), b"ccc").await;
    let listed = store.list(&format!("{p}/list/")).await.unwrap();
    let keys: Vec<_> = listed.iter().map(|m| m.key.as_str()).collect();
    assert_eq!(keys, vec![format!("{p}/list/a/c"), format!("{p}/list/b")]);
    assert_eq!(listed[0].size, 3);
    let meta = store.head(&format!("{p}/list/b")).await.unwrap().unwrap();
    assert_eq!(meta.size, 2);
}

pub async fn invalid_keys_are_refused(store: &dyn ObjectStore) {
    for key in ["", "/abs", "a/../b", "nul\0"] {
        let err = store.get(key).await.unwrap_err();
        assert!(
            matches!(err, StoreError::InvalidKey { .. }),
            "{key:?}: {err}"
        );
    }
}

/// Paged listing: pages in key order, each after the cursor, an empty page at the end.
pub async fn list_pages_follow_the_cursor(store: &dyn ObjectStore, p: &str) {
    let prefix = format!("{p}/pages/");
    for k in ["a/1", "a/2", "b", "c d", "é"] {
        put(store, &format!("{prefix}{k}"), b"x").await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store
            .list_page(&prefix, cursor.as_deref(), 2)
            .await
            .unwrap();
        assert!(page.len() <= 2, "a page holds at most max keys");
        let Some(last) = page.last() else { break };
        cursor = Some(last.key.clone());
        seen.extend(page.into_iter().map(|m| m.key));
    }
    let want: Vec<String> = ["a/1", "a/2", "b", "c d", "é"]
        .iter()
        .map(|k| format!("{prefix}{k}"))
        .collect();
    assert_eq!(seen, want);
}
