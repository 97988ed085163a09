//! `recast status --watch`: the run's status redrawn every interval (the screen cleared with ANSI
//! codes), with rates over the last interval and over the whole run, and an ETA; it ends when the
//! run is complete.

use std::io::Write;
use std::time::{Duration, Instant};

use recast_catalog::{CatalogRead, RunStatus};
use recast_core::PhotoState;

use crate::tables;

/// Clear the screen and put the cursor home.
const CLEAR: &str = "\x1b[2J\x1b[H";
const BAR_WIDTH: usize = 40;

/// What the previous frame saw, for the rates of the last interval.
#[derive(Debug, Clone, Copy)]
pub struct Previous {
    pub seconds_ago: f64,
    pub finished: u64,
    pub deleted: u64,
}

pub async fn watch(
    catalog: &dyn CatalogRead,
    run: Option<&str>,
    interval: Duration,
) -> anyhow::Result<()> {
    let run = catalog.run(run).await?;
    let mut previous: Option<(Instant, u64, u64)> = None;
    loop {
        let s = catalog.status(&run).await?;
        let now = Instant::now();
        let prev = previous.map(|(at, finished, deleted)| Previous {
            seconds_ago: now.duration_since(at).as_secs_f64(),
            finished,
            deleted,
        });
        let text = frame(&s, prev, crate::launch::now_ms());
        let mut out = std::io::stdout().lock();
        write!(out, "{CLEAR}{text}")?;
        out.flush()?;
        if s.is_complete() {
            return Ok(());
        }
        previous = Some((now, finished(&s), s.requests.s3_deleted_objects));
        tokio::time::sleep(interval).await;
    }
}

fn finished(s: &RunStatus) -> u64 {
    s.photos_in(PhotoState::Done) + s.photos_in(PhotoState::Failed)
}

fn per_minute(n: f64, seconds: f64) -> Option<f64> {
    (seconds > 0.0).then(|| n * 60.0 / seconds)
}

fn rate(r: Option<f64>) -> String {
    r.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"))
}

/// One frame: progress, rates over the last interval and overall, ETA.
pub fn frame(s: &RunStatus, prev: Option<Previous>, now_ms: i64) -> String {
    use std::fmt::Write;
    let total = s.photos_total();
    let done = finished(s);
    let share = if total == 0 {
        100.0
    } else {
        100.0 * done as f64 / total as f64
    };
    let filled = (share / 100.0 * BAR_WIDTH as f64).round() as usize;
    let complete = s.is_complete();
    // Overall: from the run's first attempt to now (or to its last one, once complete).
    let end = if complete {
        s.last_finished_ms.unwrap_or(now_ms)
    } else {
        now_ms
    };
    let elapsed = s
        .first_started_ms
        .map_or(0.0, |start| (end - start).max(0) as f64 / 1000.0);
    let overall = per_minute(done as f64, elapsed);
    let overall_deletes = per_minute(s.requests.s3_deleted_objects as f64, elapsed);
    let recent =
        prev.and_then(|p| per_minute(done.saturating_sub(p.finished) as f64, p.seconds_ago));
    let recent_deletes = prev.and_then(|p| {
        per_minute(
            s.requests.s3_deleted_objects.saturating_sub(p.deleted) as f64,
            p.seconds_ago,
        )
    });
    let eta = if complete {
        "complete".to_owned()
    } else {
        match recent.filter(|r| *r > 0.0).or(overall.filter(|r| *r > 0.0)) {
            Some(r) => tables::duration(total.saturating_sub(done) as f64 / r * 60.0),
            None => "-".to_owned(),
        }
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "recast status --watch: run {:?} (originals {}){}",
        s.run,
        s.originals,
        if complete { " — complete" } else { "" }
    );
    let _ = writeln!(
        out,
        "photos    {} / {} finished ({share:.1}%)  [{}{}]",
        tables::count(done),
        tables::count(total),
        "#".repeat(filled),
        " ".repeat(BAR_WIDTH - filled.min(BAR_WIDTH)),
    );
    let _ = writeln!(
        out,
        "          {} switched and waiting for their deletes, {} pending",
        tables::count(s.photos_in(PhotoState::Switched) + s.photos_in(PhotoState::ThumbsGone)),
        tables::count(s.photos_in(PhotoState::Pending)),
    );
    let _ = writeln!(
        out,
        "rate      {} photos/min now, {} photos/min overall ({} elapsed)",
        rate(recent),
        rate(overall),
        tables::duration(elapsed)
    );
    let _ = writeln!(
        out,
        "deletes   {} objects/min now, {} objects/min overall",
        rate(recent_deletes),
        rate(overall_deletes)
    );
    let _ = writeln!(out, "ETA       {eta}");
    if !s.failures.is_empty() {
        let f: Vec<String> = s.failures.iter().map(|(r, n)| format!("{r} {n}")).collect();
        let _ = writeln!(out, "failures  {}", f.join(", "));
    }
    if !s.kept.is_empty() {
        let k: Vec<String> = s.kept.iter().map(|(r, n)| format!("{r} {n}")).collect();
        let _ = writeln!(out, "kept      {}", k.join(", "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use recast_catalog::StateTotals;

    fn status(pending: u64, done: u64) -> RunStatus {
        let mut s = RunStatus {
            run: "r".into(),
            producer_finished: true,
            first_started_ms: Some(0),
            last_finished_ms: Some(60_000),
            ..RunStatus::default()
        };
        for (state, n) in [("pending", pending), ("done", done)] {
            s.by_state.insert(
                state.into(),
                StateTotals {
                    photos: n,
                    ..StateTotals::default()
                },
            );
        }
        s.requests.s3_deleted_objects = done * 5;
        s
    }

    #[test]
    fn a_frame_shows_rates_and_an_eta() {
        // 30 of 90 done in two minutes; 20 of them in the last 30 seconds.
        let s = status(60, 30);
        let prev = Previous {
            seconds_ago: 30.0,
            finished: 10,
            deleted: 50,
        };
        let f = frame(&s, Some(prev), 120_000);
        assert!(f.contains("30 / 90 finished (33.3%)"), "{f}");
        assert!(
            f.contains("40.0 photos/min now, 15.0 photos/min overall"),
            "{f}"
        );
        assert!(
            f.contains("200.0 objects/min now, 75.0 objects/min overall"),
            "{f}"
        );
        // 60 left at 40 a minute.
        assert!(f.contains("ETA       1 min 30 s"), "{f}");
    }

    #[test]
    fn a_complete_run_says_so() {
        let f = frame(&status(0, 90), None, 999_999);
        assert!(f.contains("complete"), "{f}");
        assert!(f.contains("(100.0%)"), "{f}");
        // Overall rates end at the run's last record, not now.
        assert!(f.contains("90.0 photos/min overall"), "{f}");
        assert!(f.contains("ETA       complete"), "{f}");
    }
}
