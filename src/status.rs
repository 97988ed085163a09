//! `recast status`: where a run stands, from what the catalog recorded.

use recast_catalog::RunStatus;
use recast_core::PhotoState;
use serde_json::json;

use crate::cli::StatusArgs;

pub async fn run(a: StatusArgs) -> anyhow::Result<()> {
    let catalog = a.db.open().await?;
    if a.watch {
        let watched = crate::watch::watch(catalog.as_ref(), a.run.as_deref(), a.interval).await;
        catalog.close().await;
        return watched;
    }
    let run = catalog.run(a.run.as_deref()).await?;
    let status = if a.recount {
        crate::recount::recount(catalog.as_ref(), &run).await?
    } else {
        catalog.status(&run).await?
    };
    let workers = catalog.workers(&run.name).await?;
    let budgets = catalog.budgets(&run.name).await?;
    catalog.close().await;
    let now = crate::launch::now_ms();
    // Stale as the workers judge it with their default heartbeat.
    let stale_after = recast_worker::FleetSettings::default().stale_after();
    let live = workers
        .iter()
        .filter(|w| w.is_live(now, stale_after))
        .count();
    if a.json {
        let mut json = to_json(&status);
        json["fleet"] = json!({
            "live_workers": live,
            "workers": workers,
            "budgets": budgets,
        });
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        print!("{}", render(&status));
        println!(
            "fleet     {live} live of {} registered workers; budgets: {} deletes/min, {} PUT/s, {} GET/s, {} in flight",
            workers.len(),
            budgets.s3_deletes_per_min,
            budgets.s3_puts_per_sec,
            budgets.s3_gets_per_sec,
            budgets.max_in_flight
        );
    }
    Ok(())
}

pub fn to_json(s: &RunStatus) -> serde_json::Value {
    let (objects_before, bytes_before) = s.before();
    let (objects_after, bytes_after) = s.after();
    json!({
        "status": s,
        "photos_total": s.photos_total(),
        "complete": s.is_complete(),
        "couples_unfinished": s.couples_unfinished(),
        "oldest_unfinished_age_secs": oldest_unfinished_age(s).map(|d| d.as_secs()),
        "objects_before": objects_before,
        "objects_after": objects_after,
        "bytes_before": bytes_before,
        "bytes_after": bytes_after,
        "reduction_percent": reduction(bytes_before, bytes_after),
    })
}

/// How long ago the oldest unfinished couple was enqueued: a couple enqueued for longer than the
/// queue's retention (14 days at most) has lost its message, and `launch --requeue` sends it again.
pub fn oldest_unfinished_age(s: &RunStatus) -> Option<std::time::Duration> {
    let at = s.oldest_unfinished_enqueued_ms?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_millis() as i64;
    Some(std::time::Duration::from_millis(
        now.saturating_sub(at).max(0) as u64,
    ))
}

/// An age in its largest whole unit or two: "45s", "12m 5s", "3h 20m", "2d 4h".
fn age_words(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        3600..86400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86400, s % 86400 / 3600),
    }
}

fn reduction(before: u64, after: u64) -> f64 {
    if before == 0 {
        0.0
    } else {
        100.0 * (before as f64 - after as f64) / before as f64
    }
}

fn per(n: u64, d: u64) -> String {
    if d == 0 {
        "-".into()
    } else {
        format!("{:.2}", n as f64 / d as f64)
    }
}

pub fn render(s: &RunStatus) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let (objects_before, bytes_before) = s.before();
    let (objects_after, bytes_after) = s.after();
    let photos = s.photos_total();
    let _ = writeln!(
        out,
        "run {:?} (originals: {}){}",
        s.run,
        s.originals,
        if s.is_complete() { " — complete" } else { "" }
    );
    let _ = writeln!(
        out,
        "couples   {} total, {} enqueued{}, {} complete, {} enqueued but unfinished{}",
        s.couples_total,
        s.couples_enqueued,
        if s.producer_finished {
            ""
        } else {
            " (launch not finished)"
        },
        s.couples_complete,
        s.couples_unfinished(),
        match oldest_unfinished_age(s) {
            Some(age) => format!(" (oldest enqueued {} ago)", age_words(age)),
            None => String::new(),
        }
    );
    let states = [
        PhotoState::Pending,
        PhotoState::Switched,
        PhotoState::ThumbsGone,
        PhotoState::Done,
        PhotoState::Failed,
    ];
    let by_state: Vec<String> = states
        .iter()
        .map(|st| format!("{} {}", st, s.photos_in(*st)))
        .collect();
    let _ = writeln!(out, "photos    {photos} total: {}", by_state.join(", "));
    let _ = writeln!(
        out,
        "objects   {objects_before} before -> {objects_after} now"
    );
    let _ = writeln!(
        out,
        "bytes     {} before -> {} now ({:.1}% less)",
        crate::tables::bytes(bytes_before),
        crate::tables::bytes(bytes_after),
        reduction(bytes_before, bytes_after)
    );
    if !s.kept.is_empty() {
        let k: Vec<String> = s.kept.iter().map(|(r, n)| format!("{r} {n}")).collect();
        let _ = writeln!(
            out,
            "kept      {} (original kept as the copy; thumbnails deleted)",
            k.join(", ")
        );
    }
    if !s.failures.is_empty() {
        let f: Vec<String> = s.failures.iter().map(|(r, n)| format!("{r} {n}")).collect();
        let _ = writeln!(out, "failures  {}", f.join(", "));
    }
    if s.sweep_blocked > 0 {
        let _ = writeln!(
            out,
            "blocked   {} photos whose thumbnails the store refuses to delete (see the workers' log for the keys; fix the policy or lock, then `recast launch --requeue`)",
            s.sweep_blocked
        );
    }
    let r = &s.requests;
    let _ = writeln!(
        out,
        "requests  S3: {} GET, {} PUT, {} DeleteObjects ({} keys); SQS: {}; DB statements: {}",
        r.s3_get,
        r.s3_put,
        r.s3_delete_requests,
        r.s3_deleted_objects,
        r.sqs_requests,
        r.db_statements
    );
    let done = s.photos_in(PhotoState::Done) + s.photos_in(PhotoState::Failed);
    let _ = writeln!(
        out,
        "per photo S3 {} | SQS per couple {} | DB {} (over {} finished photos, {} job attempts)",
        per(r.s3_get + r.s3_put + r.s3_delete_requests, done),
        per(r.sqs_requests, s.couples_complete),
        per(r.db_statements, done),
        done,
        s.attempts
    );
    out
}
