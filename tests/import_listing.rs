//! `recast import --from s3://BUCKET/PREFIX` (a live listing) against moto's S3 with awkward keys:
//! spaces, `+`, `%`, non-ASCII ids, keys near S3's 1,024-byte limit, keys that match no pattern,
//! and more keys than one ListObjectsV2 page (1,000) holds. Every photo and thumbnail must arrive in
//! the PostgreSQL catalog with its exact key and ids; the others are counted as unmatched.

mod common;

use std::collections::BTreeSet;

use bytes::Bytes;
use common::Env;
use futures::StreamExt;

/// Couple ids that S3, URL encoding or XML could each get wrong.
const COUPLES: [&str; 7] = ["1", "a b", "x+y", "50%", "c%2Bd", "é", "日本"];
/// Photo id endings, for the same reason.
const ENDINGS: [&str; 6] = ["", " sp", "+plus", "%25", "é", "日本語"];
const SIZES: [u32; 5] = [1280, 960, 640, 320, 160];
/// 170 photos of 6 objects each: 1,020 matching keys, more than one listing page.
const PHOTOS: usize = 170;

/// (couple, photo) of every photo put; one of them with a key of ~1,000 bytes.
fn photos() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = (0..PHOTOS - 1)
        .map(|i| {
            (
                COUPLES[i % COUPLES.len()].to_owned(),
                format!("{i}{}", ENDINGS[i % ENDINGS.len()]),
            )
        })
        .collect();
    // S3 keys are at most 1,024 bytes: the thumbnail `thumbs/1/<id>_1280.jpg` of this one is 1,000.
    out.push((
        "1".to_owned(),
        "l".repeat(1000 - "thumbs/1/_1280.jpg".len()),
    ));
    out
}

fn original_key(couple: &str, photo: &str) -> String {
    format!("photos/{couple}/{photo}.jpg")
}

fn thumbnail_key(couple: &str, photo: &str, size: u32) -> String {
    format!("thumbs/{couple}/{photo}_{size}.jpg")
}

/// Keys that match no pattern (a nested folder, another extension, no size, not a photo).
const UNMATCHED: [&str; 4] = [
    "photos/a b/nested/1.jpg",
    "photos/1/x.png",
    "thumbs/é/nosize.jpg",
    "read me+.txt",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_listing_of_awkward_keys_imports_every_exact_key() {
    let env = Env::on_services().await;
    let store = recast_store::open(&env.store()).await.unwrap();
    let photos = photos();
    let mut keys: Vec<String> = UNMATCHED.iter().map(|k| k.to_string()).collect();
    for (c, p) in &photos {
        keys.push(original_key(c, p));
        keys.extend(SIZES.iter().map(|&s| thumbnail_key(c, p, s)));
    }
    assert!(keys.len() > 1000, "more than one listing page");
    assert!(keys.iter().any(|k| k.len() == 1000));
    futures::stream::iter(keys.iter())
        .map(|k| {
            let store = store.clone();
            async move {
                let body = Bytes::from(format!("body of {k}"));
                let crc = recast_store::crc32c(&body);
                store.put(k, body, crc).await.unwrap();
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;

    let out = env.ok(&[
        "import",
        "--db",
        &env.db(),
        "--from",
        &env.store(),
        "--json",
    ]);
    let s: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(s["originals"]["objects"], PHOTOS, "{out}");
    assert_eq!(s["thumbnails"]["objects"], PHOTOS * SIZES.len(), "{out}");
    assert_eq!(s["photos_added"], PHOTOS, "{out}");
    assert_eq!(s["orphans"], 0, "{out}");
    assert_eq!(s["unmatched"]["objects"], UNMATCHED.len(), "{out}");
    let unmatched: BTreeSet<&str> = s["unmatched_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert_eq!(unmatched, UNMATCHED.into_iter().collect(), "{out}");
    assert!(s["units"].as_u64().unwrap() >= 2, "several pages: {out}");

    let pool = sqlx::PgPool::connect(&env.db()).await.unwrap();
    let got: BTreeSet<(String, String, String)> = sqlx::query_as(
        "SELECT c.ext_id, p.ext_id, p.original_key FROM photos p JOIN couples c ON c.id = p.couple_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap()
    .into_iter()
    .collect();
    let want: BTreeSet<(String, String, String)> = photos
        .iter()
        .map(|(c, p)| (c.clone(), p.clone(), original_key(c, p)))
        .collect();
    assert_eq!(got, want, "every photo with its ids and exact key");

    let got: BTreeSet<(String, String, String)> = sqlx::query_as(
        "SELECT c.ext_id, p.ext_id, t.key FROM thumbnails t
         JOIN photos p ON p.id = t.photo_id JOIN couples c ON c.id = p.couple_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap()
    .into_iter()
    .collect();
    let want: BTreeSet<(String, String, String)> = photos
        .iter()
        .flat_map(|(c, p)| {
            SIZES
                .iter()
                .map(move |&s| (c.clone(), p.clone(), thumbnail_key(c, p, s)))
        })
        .collect();
    assert_eq!(got, want, "every thumbnail under its photo, exact key");
}
