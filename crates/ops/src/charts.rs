//! The report's charts, as SVG drawn by plotters (its SVG backend only: text is left to the
//! browser as SVG `<text>`, so no font is loaded here), from a [`ReportData`] alone.

use plotters::prelude::*;

use crate::report::{ReportData, Series};

const SIZE: (u32, u32) = (720, 320);
const FONT: &str = "sans-serif";
const PHOTOS: RGBColor = RGBColor(31, 119, 180);
const DONE: RGBColor = RGBColor(44, 160, 44);
const DELETES: RGBColor = RGBColor(148, 103, 189);
const FAILED: RGBColor = RGBColor(214, 39, 40);
const KEPT: RGBColor = RGBColor(255, 127, 14);
const RETRIES: RGBColor = RGBColor(127, 127, 127);

/// A chart plotters could not draw.
#[derive(Debug, thiserror::Error)]
#[error("failed to draw a chart: {0}")]
pub struct ChartError(String);

/// One chart of the page: an id, a caption saying what it shows, and its SVG.
#[derive(Debug, Clone)]
pub struct Chart {
    pub id: &'static str,
    pub caption: String,
    pub svg: String,
    /// Data points drawn (0 when the chart only carries a note).
    pub points: usize,
}

/// A line: its name, colour and points (minutes since the run started, value).
struct Line {
    name: &'static str,
    color: RGBColor,
    points: Vec<(f64, f64)>,
}

/// The report's six charts: progress, photos, deletes and throttling answers per minute,
/// failures and retries per minute, and failures and kept photos by reason.
pub fn charts(d: &ReportData) -> Result<Vec<Chart>, ChartError> {
    let minute = |ms: i64| (ms - d.started_ms) as f64 / 60_000.0;
    let rate = |s: &Series| -> Vec<(f64, f64)> {
        s.iter()
            .map(|(t, n)| (minute(*t), d.per_minute(*n)))
            .collect()
    };
    let cumulative = |s: &Series| -> Vec<(f64, f64)> {
        let total = d.status.photos_total().max(1) as f64;
        let mut sum = 0;
        let mut out = vec![(0.0, 0.0)];
        for (t, n) in s {
            sum += n;
            out.push((minute(*t + d.bucket_ms), 100.0 * sum as f64 / total));
        }
        out
    };
    let bucket = crate::units::duration(d.bucket_ms as f64 / 1000.0);
    let x_max = minute(d.finished_ms).max(minute(d.started_ms + d.bucket_ms));
    let mut out = vec![
        line_chart(LineChart {
            id: "progress",
            title: "Progress over time",
            caption: format!(
                "Share of the run's photos recorded (switched, kept or failed) and done, over time (per {bucket})."
            ),
            y_desc: "% of photos",
            x_max,
            lines: vec![
                Line {
                    name: "recorded",
                    color: PHOTOS,
                    points: cumulative(&d.photos),
                },
                Line {
                    name: "done",
                    color: DONE,
                    points: cumulative(&d.done),
                },
            ],
            y_max: Some(100.0),
            note: None,
        })?,
        line_chart(LineChart {
            id: "photos-per-minute",
            title: "Photos per minute",
            caption: format!("Photos recorded per minute, in buckets of {bucket}."),
            y_desc: "photos / min",
            x_max,
            lines: vec![Line {
                name: "photos",
                color: PHOTOS,
                points: rate(&d.photos),
            }],
            y_max: None,
            note: None,
        })?,
        line_chart(LineChart {
            id: "deletes-per-minute",
            title: "S3 deletes per minute",
            caption: format!(
                "Objects deleted per minute (DeleteObjects keys), in buckets of {bucket}, as recorded with the job attempts."
            ),
            y_desc: "objects / min",
            x_max,
            lines: vec![Line {
                name: "objects deleted",
                color: DELETES,
                points: rate(&d.deletes),
            }],
            y_max: None,
            note: None,
        })?,
        line_chart(LineChart {
            id: "throttles",
            title: "Throttling events",
            caption: format!("Throttling answers (S3 503 SlowDown, SQS OverLimit) per minute, in buckets of {bucket}."),
            y_desc: "events / min",
            x_max,
            lines: vec![Line {
                name: "throttles",
                color: FAILED,
                points: rate(&d.throttles),
            }],
            y_max: None,
            note: d.throttles
                .is_empty()
                .then_some("no throttling recorded"),
        })?,
        line_chart(LineChart {
            id: "failures-per-minute",
            title: "Failures, kept photos and retries",
            caption: format!(
                "Photos failed and photos kept (original kept as the copy) per minute, and job attempts released for a retry, in buckets of {bucket}."
            ),
            y_desc: "per min",
            x_max,
            lines: vec![
                Line {
                    name: "failed photos",
                    color: FAILED,
                    points: rate(&d.failed),
                },
                Line {
                    name: "kept photos",
                    color: KEPT,
                    points: rate(&d.kept),
                },
                Line {
                    name: "retried attempts",
                    color: RETRIES,
                    points: rate(&d.retries),
                },
            ],
            y_max: None,
            note: None,
        })?,
    ];
    out.push(reasons_chart(d)?);
    Ok(out)
}

fn plot_error<E: std::fmt::Display>(e: E) -> ChartError {
    ChartError(e.to_string())
}

/// A line chart to draw.
struct LineChart<'a> {
    id: &'static str,
    title: &'a str,
    caption: String,
    y_desc: &'a str,
    x_max: f64,
    lines: Vec<Line>,
    /// The top of the y axis (default: a little above the highest point).
    y_max: Option<f64>,
    /// Text drawn across the chart (for a chart without data).
    note: Option<&'a str>,
}

fn line_chart(spec: LineChart<'_>) -> Result<Chart, ChartError> {
    let LineChart {
        id,
        title,
        caption,
        y_desc,
        x_max,
        lines,
        y_max,
        note,
    } = spec;
    let top = y_max.unwrap_or_else(|| {
        let highest = lines
            .iter()
            .flat_map(|l| l.points.iter().map(|p| p.1))
            .fold(0.0, f64::max);
        (highest * 1.1).max(1.0)
    });
    let points = lines.iter().map(|l| l.points.len()).sum();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, (FONT, 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..x_max.max(0.1), 0f64..top)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc("minutes since the run started")
            .y_desc(y_desc)
            .label_style((FONT, 12))
            .draw()
            .map_err(plot_error)?;
        let mut legend = false;
        for line in lines.into_iter().filter(|l| !l.points.is_empty()) {
            let color = line.color;
            chart
                .draw_series(LineSeries::new(line.points, color.stroke_width(2)))
                .map_err(plot_error)?
                .label(line.name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
            legend = true;
        }
        if legend {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .label_font((FONT, 12))
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK.mix(0.3))
                .draw()
                .map_err(plot_error)?;
        }
        if let Some(note) = note {
            let (w, h) = SIZE;
            root.draw(&Text::new(
                note.to_owned(),
                (w as i32 / 2 - 90, h as i32 / 2),
                (FONT, 18).into_font().color(&BLACK.mix(0.6)),
            ))
            .map_err(plot_error)?;
        }
        root.present().map_err(plot_error)?;
    }
    Ok(Chart {
        id,
        caption,
        svg,
        points,
    })
}

/// Failures and kept photos by reason, as bars.
fn reasons_chart(d: &ReportData) -> Result<Chart, ChartError> {
    let s = &d.status;
    let bars: Vec<(String, u64, RGBColor)> = s
        .failures
        .iter()
        .map(|(r, n)| (format!("failed: {r}"), *n, FAILED))
        .chain(s.kept.iter().map(|(r, n)| (format!("kept: {r}"), *n, KEPT)))
        .collect();
    let top = bars.iter().map(|b| b.1).max().unwrap_or(0).max(1) as f64 * 1.15;
    let n = bars.len().max(1) as u32;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("Failures and kept photos by reason", (FONT, 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d((0u32..n).into_segmented(), 0f64..top)
            .map_err(plot_error)?;
        let names: Vec<String> = bars.iter().map(|b| b.0.clone()).collect();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(bars.len().max(1))
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => names.get(*i as usize).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .y_desc("photos")
            .label_style((FONT, 12))
            .draw()
            .map_err(plot_error)?;
        for (i, (_, count, color)) in bars.iter().enumerate() {
            chart
                .draw_series(
                    Histogram::vertical(&chart)
                        .style(color.filled())
                        .margin(24)
                        .data([(i as u32, *count as f64)]),
                )
                .map_err(plot_error)?;
        }
        if bars.is_empty() {
            let (w, h) = SIZE;
            root.draw(&Text::new(
                "no failures and no kept photos",
                (w as i32 / 2 - 120, h as i32 / 2),
                (FONT, 18).into_font().color(&BLACK.mix(0.6)),
            ))
            .map_err(plot_error)?;
        }
        root.present().map_err(plot_error)?;
    }
    Ok(Chart {
        id: "reasons",
        caption: "Photos that failed (nothing of them deleted) and photos that keep their original as their copy, by reason.".to_owned(),
        svg,
        points: bars.len(),
    })
}
