//! An embedded queue with SQS semantics in one SQLite file, shared by every process that opens it.

use std::collections::HashSet;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};
use tokio::sync::Notify;

use crate::job_queue::check_batch;
use crate::{
    BatchOutcome, JobQueue, OutgoingMessage, QueueError, QueueStats, Receipt, ReceivedMessage,
};

/// How often a long poll looks for new messages sent by another process; a send or release in this
/// process wakes it at once.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Messages per INSERT statement of `send_many` (four bound values each, far under SQLite's
/// 32,766 variables).
const ROWS_PER_INSERT: usize = 500;
/// How long a statement waits for another process's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS queue_lock (id INTEGER PRIMARY KEY CHECK (id = 1), n INTEGER NOT NULL);
INSERT OR IGNORE INTO queue_lock (id, n) VALUES (1, 0);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    dedup_id TEXT NOT NULL,
    body TEXT NOT NULL,
    sent_at INTEGER NOT NULL,
    visible_at INTEGER NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    receipt TEXT UNIQUE
);
CREATE INDEX IF NOT EXISTS messages_visible_at ON messages (visible_at);
CREATE TABLE IF NOT EXISTS sent_dedup_ids (dedup_id TEXT PRIMARY KEY, sent_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY,
    dedup_id TEXT NOT NULL,
    body TEXT NOT NULL,
    sent_at INTEGER NOT NULL,
    receive_count INTEGER NOT NULL,
    reason TEXT NOT NULL,
    dead_at INTEGER NOT NULL
);
"#;

/// Settings of an embedded queue, read from its URL's query string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqliteQueueOptions {
    /// Receives answer OverLimit while this many messages are in flight (SQS: 120,000).
    pub in_flight_cap: u64,
    /// A message received this many times without being deleted goes to the dead-letter queue on
    /// the next receive (SQS's maxReceiveCount).
    pub max_receives: u32,
}

impl Default for SqliteQueueOptions {
    fn default() -> Self {
        SqliteQueueOptions {
            in_flight_cap: 120_000,
            max_receives: 5,
        }
    }
}

/// The embedded queue. Every process that opens the same file shares the queue: each operation is
/// one SQLite transaction that starts by taking the write lock, so receives never hand one message
/// to two workers.
#[derive(Debug, Clone)]
pub struct SqliteQueue {
    pool: SqlitePool,
    options: SqliteQueueOptions,
    wake: Arc<Notify>,
    /// This process's writers take turns here before SQLite's write lock (see `write_tx`).
    writer: Arc<tokio::sync::Mutex<()>>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2)
}

/// Splits `sqlite:///abs/path?k=v` or `sqlite://rel/path?k=v` into a path and options.
fn parse_url(url: &str) -> Result<(PathBuf, SqliteQueueOptions), QueueError> {
    let bad = |reason: String| QueueError::BadUrl {
        url: url.to_owned(),
        reason,
    };
    let rest = url
        .strip_prefix("sqlite://")
        .ok_or_else(|| bad("expected sqlite://PATH".into()))?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() {
        return Err(bad("no file path".into()));
    }
    let mut options = SqliteQueueOptions::default();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| bad(format!("{pair:?} is not key=value")))?;
        let n: u64 = v
            .parse()
            .map_err(|_| bad(format!("{k}={v:?} is not a number")))?;
        match k {
            "in_flight_cap" if n > 0 => options.in_flight_cap = n,
            "max_receives" if n > 0 => {
                options.max_receives =
                    u32::try_from(n).map_err(|_| bad(format!("{k} too large")))?
            }
            "in_flight_cap" | "max_receives" => return Err(bad(format!("{k} must be positive"))),
            other => {
                return Err(bad(format!(
                    "unknown option {other:?} (known: in_flight_cap, max_receives)"
                )))
            }
        }
    }
    Ok((PathBuf::from(path), options))
}

impl SqliteQueue {
    pub async fn open(url: &str) -> Result<SqliteQueue, QueueError> {
        let (path, options) = parse_url(url)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| QueueError::BadUrl {
                url: url.to_owned(),
                reason: format!("cannot create {}: {e}", dir.display()),
            })?;
        }
        let connect = SqliteConnectOptions::from_str("sqlite://")?
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(connect)
            .await?;
        let mut conn = pool.acquire().await?;
        sqlx::raw_sql(SCHEMA).execute(&mut *conn).await?;
        drop(conn);
        Ok(SqliteQueue {
            pool,
            options,
            wake: Arc::new(Notify::new()),
            writer: Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    pub fn options(&self) -> SqliteQueueOptions {
        self.options
    }

    /// Starts a transaction holding the write lock, so that concurrent receivers in any process
    /// serialise here rather than failing on a lock upgrade. Writers of this process first queue
    /// on an async mutex (kept until the transaction ends), so that they wait their turn without
    /// SQLite's busy handler, which sleeps in steps of up to 100 ms: ten sends in flight from
    /// `launch` otherwise spent most of their time asleep.
    async fn write_tx(
        &self,
    ) -> Result<
        (
            tokio::sync::OwnedMutexGuard<()>,
            sqlx::Transaction<'_, sqlx::Sqlite>,
        ),
        QueueError,
    > {
        let writer = Arc::clone(&self.writer).lock_owned().await;
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE queue_lock SET n = n + 1 WHERE id = 1")
            .execute(&mut *tx)
            .await?;
        Ok((writer, tx))
    }

    async fn try_receive(
        &self,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        let now = now_ms();
        let (_writer, mut tx) = self.write_tx().await?;
        let max_receives = i64::from(self.options.max_receives);
        sqlx::query(
            "INSERT INTO dead_letters (id, dedup_id, body, sent_at, receive_count, reason, dead_at)
             SELECT id, dedup_id, body, sent_at, receive_count,
                    'received ' || receive_count || ' times without being deleted', ?
             FROM messages WHERE visible_at <= ? AND receive_count >= ?",
        )
        .bind(now)
        .bind(now)
        .bind(max_receives)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM messages WHERE visible_at <= ? AND receive_count >= ?")
            .bind(now)
            .bind(max_receives)
            .execute(&mut *tx)
            .await?;
        let in_flight: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM messages WHERE receive_count > 0 AND visible_at > ?",
        )
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let in_flight = in_flight as u64;
        if in_flight >= self.options.in_flight_cap {
            tx.commit().await?;
            return Err(QueueError::OverLimit {
                detail: format!("{in_flight} in flight, cap {}", self.options.in_flight_cap),
            });
        }
        let room = (self.options.in_flight_cap - in_flight).min(max as u64) as i64;
        let rows = sqlx::query(
            "UPDATE messages
             SET receive_count = receive_count + 1,
                 visible_at = ?,
                 receipt = id || '-' || (receive_count + 1) || '-' || lower(hex(randomblob(8)))
             WHERE id IN (SELECT id FROM messages WHERE visible_at <= ? ORDER BY visible_at, id LIMIT ?)
             RETURNING id, body, receipt, receive_count",
        )
        .bind(now.saturating_add(millis(visibility)))
        .bind(now)
        .bind(room)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut out: Vec<ReceivedMessage> = rows
            .into_iter()
            .map(|r| ReceivedMessage {
                id: r.get::<i64, _>("id").to_string(),
                body: r.get("body"),
                receipt: Receipt(r.get("receipt")),
                receive_count: r.get::<i64, _>("receive_count") as u32,
            })
            .collect();
        out.sort_by_key(|m| m.id.parse::<i64>().unwrap_or_default());
        Ok(out)
    }
}

#[async_trait]
impl JobQueue for SqliteQueue {
    async fn send_batch(&self, messages: &[OutgoingMessage]) -> Result<BatchOutcome, QueueError> {
        check_batch(messages.len())?;
        self.send_many(messages).await
    }

    /// All the messages in one transaction, a few hundred rows per statement: the transaction and
    /// each statement's trip to SQLite's thread cost far more than a row.
    async fn send_many(&self, messages: &[OutgoingMessage]) -> Result<BatchOutcome, QueueError> {
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        let now = now_ms();
        let (_writer, mut tx) = self.write_tx().await?;
        for chunk in messages.chunks(ROWS_PER_INSERT) {
            // The dedup ids new to the queue; a repeated one (even within the chunk) is dropped.
            let mut q =
                QueryBuilder::<Sqlite>::new("INSERT INTO sent_dedup_ids (dedup_id, sent_at) ");
            q.push_values(chunk, |mut b, m| {
                b.push_bind(&m.dedup_id).push_bind(now);
            });
            q.push(" ON CONFLICT (dedup_id) DO NOTHING RETURNING dedup_id");
            let mut fresh: HashSet<String> = q
                .build_query_scalar::<String>()
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .collect();
            let sent: Vec<&OutgoingMessage> = chunk
                .iter()
                .filter(|m| {
                    let first = fresh.remove(&m.dedup_id);
                    if !first {
                        tracing::debug!(dedup_id = %m.dedup_id, "dropped a duplicate send");
                    }
                    first
                })
                .collect();
            if sent.is_empty() {
                continue;
            }
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO messages (dedup_id, body, sent_at, visible_at) ",
            );
            q.push_values(sent, |mut b, m| {
                b.push_bind(&m.dedup_id)
                    .push_bind(&m.body)
                    .push_bind(now)
                    .push_bind(now);
            });
            q.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        self.wake.notify_waiters();
        Ok(messages.iter().map(|_| Ok(())).collect())
    }

    async fn receive(
        &self,
        max: usize,
        visibility: Duration,
        wait: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        check_batch(max)?;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let woken = self.wake.notified();
            let got = self.try_receive(max, visibility).await?;
            if !got.is_empty() || max == 0 || tokio::time::Instant::now() >= deadline {
                return Ok(got);
            }
            let nap = POLL_INTERVAL.min(deadline - tokio::time::Instant::now());
            tokio::select! {
                _ = woken => {}
                _ = tokio::time::sleep(nap) => {}
            }
        }
    }

    async fn delete_batch(&self, receipts: &[Receipt]) -> Result<BatchOutcome, QueueError> {
        check_batch(receipts.len())?;
        let (_writer, mut tx) = self.write_tx().await?;
        let mut out = Vec::with_capacity(receipts.len());
        for r in receipts {
            let n = sqlx::query("DELETE FROM messages WHERE receipt = ?")
                .bind(&r.0)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            out.push(if n == 1 {
                Ok(())
            } else {
                Err(QueueError::ReceiptInvalid(r.0.clone()))
            });
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn change_visibility(
        &self,
        receipt: &Receipt,
        visibility: Duration,
    ) -> Result<(), QueueError> {
        let n = sqlx::query("UPDATE messages SET visible_at = ? WHERE receipt = ?")
            .bind(now_ms().saturating_add(millis(visibility)))
            .bind(&receipt.0)
            .execute(&self.pool)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(QueueError::ReceiptInvalid(receipt.0.clone()));
        }
        if visibility.is_zero() {
            self.wake.notify_waiters();
        }
        Ok(())
    }

    async fn dead_letter(&self, message: &ReceivedMessage, reason: &str) -> Result<(), QueueError> {
        let (_writer, mut tx) = self.write_tx().await?;
        let moved = sqlx::query(
            "INSERT INTO dead_letters (id, dedup_id, body, sent_at, receive_count, reason, dead_at)
             SELECT id, dedup_id, body, sent_at, receive_count, ?, ? FROM messages WHERE receipt = ?",
        )
        .bind(reason)
        .bind(now_ms())
        .bind(&message.receipt.0)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if moved == 0 {
            return Err(QueueError::ReceiptInvalid(message.receipt.0.clone()));
        }
        sqlx::query("DELETE FROM messages WHERE receipt = ?")
            .bind(&message.receipt.0)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn stats(&self) -> Result<QueueStats, QueueError> {
        let row = sqlx::query(
            "SELECT
               (SELECT count(*) FROM messages WHERE visible_at <= ?1) AS visible,
               (SELECT count(*) FROM messages WHERE visible_at > ?1 AND receive_count > 0) AS in_flight,
               (SELECT count(*) FROM dead_letters) AS dead",
        )
        .bind(now_ms())
        .fetch_one(&self.pool)
        .await?;
        Ok(QueueStats {
            visible: row.get::<i64, _>("visible") as u64,
            in_flight: row.get::<i64, _>("in_flight") as u64,
            dead: row.get::<i64, _>("dead") as u64,
        })
    }
}

impl SqliteQueue {
    /// The dead letters with their reasons, oldest first (for operators and tests).
    pub async fn dead_letters(&self) -> Result<Vec<(String, String)>, QueueError> {
        let rows = sqlx::query("SELECT body, reason FROM dead_letters ORDER BY dead_at, id")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| (r.get("body"), r.get("reason")))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn queue(dir: &tempfile::TempDir, query: &str) -> SqliteQueue {
        let url = format!("sqlite://{}/q.db{query}", dir.path().display());
        SqliteQueue::open(&url).await.unwrap()
    }

    #[tokio::test]
    async fn sqlite_queue_passes_the_conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        let q = queue(&dir, "?max_receives=3").await;
        crate::conformance::run_all(&q, 3).await;
    }

    #[tokio::test]
    async fn in_flight_cap_answers_over_limit() {
        let dir = tempfile::tempdir().unwrap();
        let q = queue(&dir, "?in_flight_cap=3").await;
        crate::conformance::in_flight_cap(&q, 3).await;
    }

    #[tokio::test]
    async fn stale_receipts_never_delete() {
        let dir = tempfile::tempdir().unwrap();
        let q = queue(&dir, "").await;
        q.send_batch(&[OutgoingMessage {
            dedup_id: "s".into(),
            body: "s".into(),
        }])
        .await
        .unwrap();
        let first = q
            .receive(1, Duration::ZERO, Duration::ZERO)
            .await
            .unwrap()
            .remove(0);
        let second = q
            .receive(1, Duration::from_secs(60), Duration::ZERO)
            .await
            .unwrap()
            .remove(0);
        let out = q.delete_batch(&[first.receipt]).await.unwrap();
        assert!(
            matches!(out[0], Err(QueueError::ReceiptInvalid(_))),
            "{out:?}"
        );
        assert_eq!(q.stats().await.unwrap().in_flight, 1);
        assert!(q
            .change_visibility(&Receipt("nope".into()), Duration::ZERO)
            .await
            .is_err());
        q.delete_batch(std::slice::from_ref(&second.receipt))
            .await
            .unwrap()[0]
            .as_ref()
            .unwrap();
        assert!(
            q.delete_batch(&[second.receipt]).await.unwrap()[0].is_err(),
            "deleted twice"
        );
    }

    #[tokio::test]
    async fn duplicate_sends_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let q = queue(&dir, "").await;
        let m = OutgoingMessage {
            dedup_id: "run/1".into(),
            body: "a".into(),
        };
        q.send_batch(std::slice::from_ref(&m)).await.unwrap();
        q.send_batch(&[m.clone(), m]).await.unwrap();
        assert_eq!(q.stats().await.unwrap().visible, 1);
    }

    #[tokio::test]
    async fn send_many_keeps_order_across_statements_and_drops_repeats() {
        let dir = tempfile::tempdir().unwrap();
        let q = queue(&dir, "").await;
        // More than one INSERT's rows; every tenth message repeats an earlier dedup id.
        let n = ROWS_PER_INSERT * 2 + 7;
        let msgs: Vec<_> = (0..n)
            .map(|i| OutgoingMessage {
                dedup_id: format!("r/{}", if i % 10 == 9 { i / 2 } else { i }),
                body: i.to_string(),
            })
            .collect();
        let outcome = q.send_many(&msgs).await.unwrap();
        assert_eq!(outcome.len(), n);
        let mut seen = std::collections::HashSet::new();
        let expected: Vec<String> = msgs
            .iter()
            .filter(|m| seen.insert(m.dedup_id.clone()))
            .map(|m| m.body.clone())
            .collect();
        assert_eq!(q.stats().await.unwrap().visible, expected.len() as u64);
        let mut got = Vec::new();
        loop {
            let batch = q
                .receive(crate::MAX_BATCH, Duration::from_secs(60), Duration::ZERO)
                .await
                .unwrap();
            if batch.is_empty() {
                break;
            }
            got.extend(batch.into_iter().map(|m| m.body));
        }
        assert_eq!(
            got, expected,
            "received in the order sent, each dedup id once"
        );
    }

    #[tokio::test]
    async fn two_handles_on_one_file_never_share_a_message() {
        let dir = tempfile::tempdir().unwrap();
        let a = queue(&dir, "").await;
        let b = queue(&dir, "").await;
        let msgs: Vec<_> = (0..40)
            .map(|i| OutgoingMessage {
                dedup_id: format!("r/{i}"),
                body: i.to_string(),
            })
            .collect();
        for chunk in msgs.chunks(crate::MAX_BATCH) {
            a.send_batch(chunk).await.unwrap();
        }
        let vis = Duration::from_secs(60);
        let (mut got_a, mut got_b) = (Vec::new(), Vec::new());
        loop {
            let (ra, rb) = tokio::join!(
                a.receive(7, vis, Duration::ZERO),
                b.receive(7, vis, Duration::ZERO)
            );
            let (ra, rb) = (ra.unwrap(), rb.unwrap());
            if ra.is_empty() && rb.is_empty() {
                break;
            }
            got_a.extend(ra.into_iter().map(|m| m.body));
            got_b.extend(rb.into_iter().map(|m| m.body));
        }
        let mut all: Vec<i32> = got_a
            .iter()
            .chain(&got_b)
            .map(|b| b.parse().unwrap())
            .collect();
        all.sort();
        assert_eq!(all, (0..40).collect::<Vec<_>>());
    }

    #[test]
    fn url_options_are_checked() {
        let (p, o) = parse_url("sqlite:///tmp/q.db?in_flight_cap=20&max_receives=2").unwrap();
        assert_eq!(p, PathBuf::from("/tmp/q.db"));
        assert_eq!(o.in_flight_cap, 20);
        assert_eq!(o.max_receives, 2);
        assert_eq!(
            parse_url("sqlite://q.db").unwrap().1,
            SqliteQueueOptions::default()
        );
        for bad in [
            "sqlite://",
            "sqlite:///q.db?in_flight_cap=x",
            "sqlite:///q.db?in_flight_cap=0",
            "sqlite:///q.db?colour=red",
            "postgres://x",
        ] {
            assert!(
                matches!(parse_url(bad), Err(QueueError::BadUrl { .. })),
                "{bad}"
            );
        }
    }
}
