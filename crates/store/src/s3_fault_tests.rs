//! The S3 store against the real S3 server behind the fault proxy: broken GET bodies are read
//! again, and throttled attempts are counted even when the request finally succeeds.

use bytes::Bytes;
use recast_faultproxy::{Fault, FaultPlan, FaultProxy, Op};

use crate::{crc32c, ObjectStore, S3Store};

/// A bucket with one 256 KiB object, and two stores on it: straight to the server and through a
/// fault proxy that injects nothing unless told.
async fn set_up() -> (FaultProxy, S3Store, Bytes) {
    let endpoint = std::env::var("RECAST_TEST_AWS_ENDPOINT").expect(
        "RECAST_TEST_AWS_ENDPOINT is not set: run the tests with scripts/test, which starts the S3/SQS server",
    );
    let bucket = format!("recast-faults-{:08x}", fastrand::u32(..));
    let direct = S3Store::with_endpoint(&bucket, "", true, &endpoint).await;
    direct
        .client()
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("bucket created");
    let mut rng = fastrand::Rng::with_seed(5);
    let body = Bytes::from((0..256 * 1024).map(|_| rng.u8(..)).collect::<Vec<u8>>());
    direct
        .put("photos/1/2.jpg", body.clone(), crc32c(&body))
        .await
        .unwrap();
    let proxy = FaultProxy::start(&endpoint, FaultPlan::none())
        .await
        .unwrap();
    let faulty = S3Store::with_endpoint(&bucket, "", true, &proxy.url()).await;
    (proxy, faulty, body)
}

#[tokio::test]
async fn a_get_body_cut_mid_read_is_read_again() {
    let (proxy, store, body) = set_up().await;
    proxy.force(Op::GetObject, Fault::Reset, 2);
    assert_eq!(store.get("photos/1/2.jpg").await.unwrap(), body);
    assert_eq!(proxy.counts().of(Fault::Reset), 2, "{}", proxy.counts());
    // Only so many reads: then a transient error, so the job is retried later.
    proxy.force(Op::GetObject, Fault::Reset, 10);
    let err = store.get("photos/1/2.jpg").await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(
        err.to_string()
            .contains("4 times, the last by a cut connection"),
        "{err}"
    );
}

#[tokio::test]
async fn a_get_body_failing_its_crc32c_is_read_again() {
    let (proxy, store, body) = set_up().await;
    proxy.force(Op::GetObject, Fault::Corrupt, 2);
    assert_eq!(store.get("photos/1/2.jpg").await.unwrap(), body);
    assert_eq!(
        proxy.counts().of(Fault::Corrupt),
        2,
        "the server sent no CRC32C to check against? {}",
        proxy.counts()
    );
    proxy.force(Op::GetObject, Fault::Corrupt, 10);
    let err = store.get("photos/1/2.jpg").await.unwrap_err();
    assert!(
        err.to_string().contains("the last by a CRC32C mismatch"),
        "{err}"
    );
}

#[tokio::test]
async fn throttled_attempts_are_counted_inside_the_sdk_retries() {
    let (proxy, store, body) = set_up().await;
    assert_eq!(store.throttled_attempts(), Default::default());
    proxy.force(Op::PutObject, Fault::SlowDown, 2);
    proxy.force(Op::GetObject, Fault::SlowDown, 1);
    store
        .put("photos/1/3.webp", body.clone(), crc32c(&body))
        .await
        .unwrap();
    assert_eq!(store.get("photos/1/3.webp").await.unwrap(), body);
    let seen = store.throttled_attempts();
    assert_eq!((seen.puts, seen.gets, seen.deletes), (2, 1, 0), "{seen:?}");
    assert_eq!(proxy.counts().of(Fault::SlowDown), 3);
}
