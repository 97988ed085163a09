//! `recast plan`: a dry run (the core is `recast_ops::plan`): the arguments become a
//! [`PlanRequest`], the library measures a sample and predicts, and this prints the
//! [`PlanReport`] as tables, Markdown or JSON. It writes nothing: the catalog is opened
//! read-only, the store is only read (GET), no queue is opened.

use recast_core::Cost;
use recast_ops::plan::{PlanReport, PlanRequest, Sampling};
use recast_worker::CpuPool;

use crate::cli::PlanArgs;
use crate::tables::{self, Table};

pub async fn run(a: PlanArgs) -> anyhow::Result<()> {
    let prices = recast_ops::plan::load_prices(a.prices.as_deref())?;
    let cpu = CpuPool::per_core();
    let request = PlanRequest {
        run: a.run.clone(),
        settings: a.settings.settings()?,
        sampling: Sampling {
            photos: a.sample,
            seed: a.seed.unwrap_or_else(|| fastrand::u64(..)),
        },
        prices,
        instance_type: a.instance_type.clone(),
        machine_cores: cpu.threads() as u32,
        workers: a.workers,
        concurrency: a.concurrency,
        record_batch: a.record_batch,
        attempt_statement: a.db.db.starts_with("sqlite:"),
        budgets: a.budgets.overrides(),
        db_statements_per_second: a.db_statements_per_sec,
    };
    // The instance type is checked before anything is opened.
    if let Some(t) = &request.instance_type {
        request.prices.instance(t)?;
    }
    let catalog = a.db.open_read_only().await?;
    let store = recast_ops::plan::open_store_for_reading(&a.store).await?;
    let setup = recast_ops::plan::setup(catalog.as_ref(), request).await?;
    let report = recast_ops::plan::predict(catalog.as_ref(), store.as_ref(), &cpu, setup).await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if a.markdown {
        print!("{}", markdown(&report));
    } else {
        print!("{}", terminal(&report));
    }
    Ok(())
}

/// A figure of a rate or a need: whole above 100, one decimal below; "-" for no limit.
fn figure(v: f64) -> String {
    if !v.is_finite() {
        "-".to_owned()
    } else if v >= 100.0 {
        tables::count(v.round() as u64)
    } else {
        format!("{v:.1}")
    }
}

fn heading(r: &PlanReport) -> String {
    let p = &r.plan;
    let s = &r.input.sample;
    let f = &r.input.fleet;
    format!(
        "recast plan — {} couples, {} photos, originals {}; {} worker(s) on {}\n\
         sample: {} photos (seed {}): {} converted, {} kept, {} failed; WebP/original {:.3}; \
         {:.3} CPU s per megapixel on {} threads\n",
        tables::count(p.couples),
        tables::count(p.photos),
        r.input.originals,
        f.workers,
        r.machine,
        s.photos,
        r.seed,
        s.converted,
        s.kept,
        s.failed,
        p.webp_ratio,
        p.cpu_seconds_per_megapixel,
        s.threads
    )
}

fn footer(r: &PlanReport) -> String {
    let p = &r.plan;
    format!(
        "duration {} at {} photos/s ({} binds); {:.2} instance hours, {}\n",
        tables::duration(p.duration_seconds),
        figure(p.photos_per_second),
        p.binding.as_str(),
        p.instance_hours,
        tables::dollars(r.cost.total_dollars)
    )
}

/// The plan's three tables: result, cost and limits.
fn plan_tables(r: &PlanReport) -> Vec<Table> {
    let p = &r.plan;
    vec![
        result_table(
            "Result (predicted)",
            (p.before, p.after),
            (r.storage_per_month_before, r.storage_per_month_after),
        ),
        cost_table("Cost (predicted)", &r.cost, &p.requests, &r.instance_type),
        limits_table(r),
    ]
}

fn limits_table(r: &PlanReport) -> Table {
    let mut t = Table::new(
        "Limits (need at full CPU speed against the budget)",
        &["limit", "need", "budget", "unit", "use", "max photos/s", ""],
    );
    for l in &r.plan.limits {
        t.row(vec![
            l.limit.as_str().to_owned(),
            figure(l.need),
            figure(l.cap),
            l.unit.to_owned(),
            tables::percent(100.0 * l.utilisation()),
            figure(l.max_photos_per_second),
            if l.limit == r.plan.binding {
                "binds".to_owned()
            } else {
                String::new()
            },
        ]);
    }
    t
}

/// The plan for a terminal: a heading, the tables, a footer.
pub fn terminal(r: &PlanReport) -> String {
    let mut out = heading(r);
    for t in plan_tables(r) {
        out.push('\n');
        out.push_str(&t.terminal());
    }
    out.push('\n');
    out.push_str(&footer(r));
    out
}

/// The plan as Markdown.
pub fn markdown(r: &PlanReport) -> String {
    let mut out = format!("## {}", heading(r).replace('\n', "\n\n"));
    for t in plan_tables(r) {
        out.push('\n');
        out.push_str(&t.markdown());
    }
    out.push('\n');
    out.push_str(&footer(r));
    out
}

/// The "result" table: objects and storage before and after.
pub fn result_table(
    title: &str,
    (before, after): (recast_core::Footprint, recast_core::Footprint),
    (month_before, month_after): (f64, f64),
) -> Table {
    let change = |b: f64, a: f64| {
        if b == 0.0 {
            "-".to_owned()
        } else {
            format!("{:+.1}%", 100.0 * (a - b) / b)
        }
    };
    let mut t = Table::new(title, &["", "before", "after", "change"]);
    t.row(vec![
        "S3 objects".into(),
        tables::count(before.objects),
        tables::count(after.objects),
        change(before.objects as f64, after.objects as f64),
    ]);
    t.row(vec![
        "S3 storage".into(),
        tables::bytes(before.bytes),
        tables::bytes(after.bytes),
        change(before.bytes as f64, after.bytes as f64),
    ]);
    t.row(vec![
        "storage per month".into(),
        tables::dollars(month_before),
        tables::dollars(month_after),
        change(month_before, month_after),
    ]);
    t
}

/// The "cost" table: instance hours and requests, with their dollars.
pub fn cost_table(
    title: &str,
    cost: &Cost,
    r: &recast_core::TallySnapshot,
    instance_type: &str,
) -> Table {
    let mut t = Table::new(title, &["", "quantity", "dollars"]);
    t.row(vec![
        format!("EC2 spot hours ({instance_type})"),
        format!("{:.3}", cost.instance_hours),
        tables::dollars(cost.instance_dollars),
    ]);
    t.row(vec![
        "SQS requests".into(),
        tables::count(r.sqs_requests),
        tables::dollars(cost.sqs_dollars),
    ]);
    t.row(vec![
        "S3 GET requests".into(),
        tables::count(r.s3_get),
        tables::dollars(cost.s3_get_dollars),
    ]);
    t.row(vec![
        "S3 PUT requests".into(),
        tables::count(r.s3_put),
        tables::dollars(cost.s3_put_dollars),
    ]);
    t.row(vec![
        format!(
            "S3 DeleteObjects requests ({} keys)",
            tables::count(r.s3_deleted_objects)
        ),
        tables::count(r.s3_delete_requests),
        tables::dollars(cost.s3_delete_dollars),
    ]);
    t.row(vec![
        "DB statements (not priced)".into(),
        tables::count(r.db_statements),
        "-".into(),
    ]);
    t.row(vec![
        "total".into(),
        String::new(),
        tables::dollars(cost.total_dollars),
    ]);
    t
}
