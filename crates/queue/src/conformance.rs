//! The behaviour every [`JobQueue`] backend must show, written once and run against each.
//! `run_all` expects a fresh, empty queue whose maximum receives is `max_receives`.

use std::time::Duration;

use crate::{JobQueue, OutgoingMessage, QueueError, ReceivedMessage, MAX_BATCH};

const LONG: Duration = Duration::from_secs(60);
// SQS counts visibility in whole seconds, so the suite does too.
const SHORT: Duration = Duration::from_secs(1);
const NO_WAIT: Duration = Duration::ZERO;

fn msg(id: &str) -> OutgoingMessage {
    OutgoingMessage {
        dedup_id: format!("conformance/{id}"),
        body: format!("body {id}"),
    }
}

pub async fn run_all(q: &dyn JobQueue, max_receives: u32) {
    send_receive_delete(q).await;
    send_many_sends_every_message(q).await;
    batch_limits(q).await;
    visibility_timeout_redelivers_with_count(q).await;
    change_visibility_releases_and_extends(q).await;
    stale_receipts_are_refused(q).await;
    dead_letter_after_max_receives(q, max_receives).await;
    explicit_dead_letter(q).await;
    long_poll_waits(q).await;
}

async fn receive_all(q: &dyn JobQueue, vis: Duration) -> Vec<ReceivedMessage> {
    let mut out = Vec::new();
    loop {
        let got = q.receive(MAX_BATCH, vis, NO_WAIT).await.unwrap();
        if got.is_empty() {
            return out;
        }
        out.extend(got);
    }
}

pub async fn send_receive_delete(q: &dyn JobQueue) {
    let sent: Vec<_> = (0..MAX_BATCH).map(|i| msg(&format!("srd{i}"))).collect();
    let outcome = q.send_batch(&sent).await.unwrap();
    assert!(outcome.iter().all(Result::is_ok));
    let stats = q.stats().await.unwrap();
    assert_eq!((stats.visible, stats.in_flight), (MAX_BATCH as u64, 0));

    let got = receive_all(q, LONG).await;
    assert_eq!(got.len(), MAX_BATCH);
    assert!(got.iter().all(|m| m.receive_count == 1));
    let mut bodies: Vec<_> = got.iter().map(|m| m.body.clone()).collect();
    bodies.sort();
    let mut expected: Vec<_> = sent.iter().map(|m| m.body.clone()).collect();
    expected.sort();
    assert_eq!(bodies, expected);
    let stats = q.stats().await.unwrap();
    assert_eq!((stats.visible, stats.in_flight), (0, MAX_BATCH as u64));

    let receipts: Vec<_> = got.iter().map(|m| m.receipt.clone()).collect();
    let deleted = q.delete_batch(&receipts).await.unwrap();
    assert!(deleted.iter().all(Result::is_ok), "{deleted:?}");
    assert!(q.stats().await.unwrap().is_drained());
}

/// More than a batch at once (`launch` sends a page of couples so): each message once.
pub async fn send_many_sends_every_message(q: &dyn JobQueue) {
    let sent: Vec<_> = (0..3 * MAX_BATCH + 5)
        .map(|i| msg(&format!("many{i}")))
        .collect();
    let outcome = q.send_many(&sent).await.unwrap();
    assert_eq!(outcome.len(), sent.len());
    assert!(outcome.iter().all(Result::is_ok), "{outcome:?}");
    let got = receive_all(q, LONG).await;
    let mut bodies: Vec<_> = got.iter().map(|m| m.body.clone()).collect();
    bodies.sort();
    let mut expected: Vec<_> = sent.iter().map(|m| m.body.clone()).collect();
    expected.sort();
    assert_eq!(bodies, expected);
    let receipts: Vec<_> = got.iter().map(|m| m.receipt.clone()).collect();
    for chunk in receipts.chunks(MAX_BATCH) {
        let out = q.delete_batch(chunk).await.unwrap();
        assert!(out.iter().all(Result::is_ok), "{out:?}");
    }
    assert!(q.stats().await.unwrap().is_drained());
}

pub async fn batch_limits(q: &dyn JobQueue) {
    let too_many: Vec<_> = (0..=MAX_BATCH).map(|i| msg(&format!("big{i}"))).collect();
    assert!(matches!(
        q.send_batch(&too_many).await,
        Err(QueueError::BatchTooLarge(11))
    ));
    assert!(matches!(
        q.receive(MAX_BATCH + 1, LONG, NO_WAIT).await,
        Err(QueueError::BatchTooLarge(11))
    ));
    assert!(q.stats().await.unwrap().is_drained());
}

pub async fn visibility_timeout_redelivers_with_count(q: &dyn JobQueue) {
    q.send_batch(&[msg("vis")]).await.unwrap();
    let first = q.receive(1, SHORT, NO_WAIT).await.unwrap();
    assert_eq!(first.len(), 1);
    assert!(
        q.receive(1, SHORT, NO_WAIT).await.unwrap().is_empty(),
        "visible while in flight"
    );
    let again = q.receive(1, LONG, SHORT * 3).await.unwrap();
    assert_eq!(
        again.len(),
        1,
        "not redelivered after its visibility timeout"
    );
    assert_eq!(again[0].body, first[0].body);
    assert_eq!(again[0].receive_count, 2);
    q.delete_batch(&[again[0].receipt.clone()]).await.unwrap()[0]
        .as_ref()
        .unwrap();
    assert!(q.stats().await.unwrap().is_drained());
}

pub async fn change_visibility_releases_and_extends(q: &dyn JobQueue) {
    q.send_batch(&[msg("cv")]).await.unwrap();
    let m = q.receive(1, SHORT, NO_WAIT).await.unwrap().remove(0);
    q.change_visibility(&m.receipt, LONG).await.unwrap();
    tokio::time::sleep(SHORT * 2).await;
    assert!(
        q.receive(1, LONG, NO_WAIT).await.unwrap().is_empty(),
        "extension ignored"
    );
    q.change_visibility(&m.receipt, Duration::ZERO)
        .await
        .unwrap();
    let back = q.receive(1, LONG, NO_WAIT).await.unwrap();
    assert_eq!(
        back.len(),
        1,
        "release with visibility 0 did not make it visible"
    );
    q.delete_batch(&[back[0].receipt.clone()]).await.unwrap();
}

/// A receipt from an earlier receive may not delete the message on every backend (SQS documents that
/// such a delete "succeeds, but the message might not be deleted"), so the contract is weaker than
/// the embedded queue's: a stale delete either fails with ReceiptInvalid and leaves the message, or
/// succeeds; the latest receipt always works while the message is there.
pub async fn stale_receipts_are_refused(q: &dyn JobQueue) {
    q.send_batch(&[msg("stale")]).await.unwrap();
    let first = q
        .receive(1, Duration::ZERO, NO_WAIT)
        .await
        .unwrap()
        .remove(0);
    let second = q.receive(1, LONG, NO_WAIT).await.unwrap().remove(0);
    assert_eq!(second.receive_count, 2);
    let out = q
        .delete_batch(std::slice::from_ref(&first.receipt))
        .await
        .unwrap();
    match &out[0] {
        Err(QueueError::ReceiptInvalid(_)) => {
            assert_eq!(
                q.stats().await.unwrap().in_flight,
                1,
                "a refused stale receipt deleted the message"
            );
            q.delete_batch(std::slice::from_ref(&second.receipt))
                .await
                .unwrap()[0]
                .as_ref()
                .unwrap();
        }
        Err(e) => panic!("stale delete failed with {e}"),
        Ok(()) => {
            let _ = q
                .delete_batch(std::slice::from_ref(&second.receipt))
                .await
                .unwrap();
        }
    }
    assert!(q.stats().await.unwrap().is_drained());
}

pub async fn dead_letter_after_max_receives(q: &dyn JobQueue, max_receives: u32) {
    let dead_before = q.stats().await.unwrap().dead;
    q.send_batch(&[msg("poison")]).await.unwrap();
    for n in 1..=max_receives {
        let got = q.receive(1, Duration::ZERO, NO_WAIT).await.unwrap();
        assert_eq!(got.len(), 1, "receive {n}");
        assert_eq!(got[0].receive_count, n);
    }
    assert!(q.receive(1, LONG, NO_WAIT).await.unwrap().is_empty());
    let stats = q.stats().await.unwrap();
    assert!(stats.is_drained(), "{stats:?}");
    assert_eq!(stats.dead, dead_before + 1);
}

pub async fn explicit_dead_letter(q: &dyn JobQueue) {
    let dead_before = q.stats().await.unwrap().dead;
    q.send_batch(&[msg("malformed")]).await.unwrap();
    let m = q.receive(1, LONG, NO_WAIT).await.unwrap().remove(0);
    q.dead_letter(&m, "not a job").await.unwrap();
    let stats = q.stats().await.unwrap();
    assert!(stats.is_drained(), "{stats:?}");
    assert_eq!(stats.dead, dead_before + 1);
}

pub async fn long_poll_waits(q: &dyn JobQueue) {
    let started = std::time::Instant::now();
    assert!(q.receive(1, LONG, SHORT).await.unwrap().is_empty());
    assert!(started.elapsed() >= SHORT, "returned before the wait");
}

/// For a fresh queue whose in-flight cap is `cap`.
pub async fn in_flight_cap(q: &dyn JobQueue, cap: usize) {
    let sent: Vec<_> = (0..cap + 2).map(|i| msg(&format!("cap{i}"))).collect();
    for chunk in sent.chunks(MAX_BATCH) {
        q.send_batch(chunk).await.unwrap();
    }
    let got = receive_all_until_limit(q).await;
    assert_eq!(got.len(), cap, "received past the cap");
    let err = q.receive(1, LONG, NO_WAIT).await.unwrap_err();
    assert!(err.is_over_limit(), "{err}");
    q.delete_batch(&[got[0].receipt.clone()]).await.unwrap();
    assert_eq!(q.receive(MAX_BATCH, LONG, NO_WAIT).await.unwrap().len(), 1);
}

async fn receive_all_until_limit(q: &dyn JobQueue) -> Vec<ReceivedMessage> {
    let mut out = Vec::new();
    loop {
        match q.receive(MAX_BATCH, LONG, NO_WAIT).await {
            Ok(got) if got.is_empty() => return out,
            Ok(got) => out.extend(got),
            Err(e) if e.is_over_limit() => return out,
            Err(e) => panic!("{e}"),
        }
    }
}
