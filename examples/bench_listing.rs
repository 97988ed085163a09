//! The live listing's scheduling when each request costs a round trip, as S3's ListObjectsV2
//! does (tens of ms a page, served in parallel): one stream against key ranges listed at once,
//! on the same keys in the same run. The keys are held sorted in memory and each page is cut from
//! them after the round trip, so what is measured is the listing (its requests, their overlap,
//! the ranges' balance), not a server. Neither moto nor the local folder can stand in for S3
//! here: moto sorts the whole bucket for every page (2.1 s a page at 60,000 keys, one request at
//! a time), and the folder's walk is resumed cheaply only by one listing at a time. Run by
//! `scripts/bench-listing`; prints figures, asserts only that every key was listed once.
//!
//!   cargo run --release --example bench_listing -- [KEYS] [ROUND_TRIP_MS] [STREAMS]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use recast_ops::import::{listing_with, ListingShape};
use recast_store::{DeleteOutcome, ObjectMeta, ObjectStore, StoreError};

/// Sorted keys, each page answered after `round_trip` (only listing is asked of it).
#[derive(Debug)]
struct RoundTrip {
    keys: Vec<String>,
    round_trip: Duration,
    requests: AtomicU64,
}

fn unused() -> StoreError {
    StoreError::NotFound {
        key: "the benchmark lists only".into(),
    }
}

#[async_trait]
impl ObjectStore for RoundTrip {
    async fn get(&self, _key: &str) -> Result<Bytes, StoreError> {
        Err(unused())
    }
    async fn put(&self, _key: &str, _body: Bytes, _crc32c: u32) -> Result<(), StoreError> {
        Err(unused())
    }
    async fn delete_many(&self, _keys: &[String]) -> Result<DeleteOutcome, StoreError> {
        Err(unused())
    }
    async fn head(&self, _key: &str) -> Result<Option<ObjectMeta>, StoreError> {
        Err(unused())
    }
    async fn list(&self, _prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        Err(unused())
    }
    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        max: u32,
    ) -> Result<Vec<ObjectMeta>, StoreError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(self.round_trip).await;
        let from = start_after.map_or(0, |a| self.keys.partition_point(|k| k.as_str() <= a));
        Ok(self.keys[from..]
            .iter()
            .filter(|k| k.starts_with(prefix))
            .take(max as usize)
            .map(|k| ObjectMeta {
                key: k.clone(),
                size: 1,
            })
            .collect())
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numbers: KEYS ROUND_TRIP_MS STREAMS"))
        .collect();
    let keys = args.first().copied().unwrap_or(1_000_000) as usize;
    let round_trip = Duration::from_millis(args.get(1).copied().unwrap_or(50));
    let streams = args.get(2).copied().unwrap_or(16) as usize;

    // The import benchmark's shape: couples of 60 photos, an original and 5 thumbnails each.
    let mut names: Vec<String> = (0..keys)
        .map(|i| {
            let (photo, n) = (i / 6, i % 6);
            let couple = photo / 60;
            match n {
                0 => format!("photos/{couple}/{photo}.jpg"),
                _ => format!("thumbs/{couple}/{photo}_{}.jpg", 160 << n),
            }
        })
        .collect();
    names.sort_unstable();

    println!(
        "listing {keys} keys, each request answered after {} ms",
        round_trip.as_millis()
    );
    let mut rates = Vec::new();
    for streams in [1, streams] {
        let store = Arc::new(RoundTrip {
            keys: names.clone(),
            round_trip,
            requests: AtomicU64::new(0),
        });
        let shape = ListingShape {
            streams,
            prefixes: vec!["photos/".into(), "thumbs/".into()],
        };
        let started = Instant::now();
        let mut source = listing_with(Arc::clone(&store) as Arc<dyn ObjectStore>, "bench", shape);
        let (mut seen, mut cursor, mut i) = (0usize, None, 0);
        while let Some(unit) = source.unit(i, cursor.as_deref()).await.expect("page") {
            seen += unit.records.count();
            cursor = unit.cursor;
            i += 1;
        }
        let took = started.elapsed().as_secs_f64();
        assert_eq!(seen, keys, "every key listed once");
        let rate = keys as f64 / took;
        println!(
            "  {streams:>2} stream(s): {took:>7.2} s  {rate:>9.0} keys/s  {:>5} LIST requests ({:.0} keys each)",
            store.requests.load(Ordering::Relaxed),
            keys as f64 / store.requests.load(Ordering::Relaxed) as f64,
        );
        rates.push(rate);
    }
    println!("ranges at once / one stream: {:.2}x", rates[1] / rates[0]);
}
