//! The report's HTML page: one self-contained file (inline SVG, inline style and script, nothing
//! fetched). Its script checks that every chart rendered — an `<svg>` with a non-empty box and
//! drawn shapes — and writes the count on `<body data-charts-rendered="N">` (and on each chart's
//! figure the points its data lines drew, `data-series-points`), so that a headless browser can tell a page that renders
//! from one that does not.

use std::fmt::Write;

use recast_ops::report::ReportData;

use crate::report::summary;
use crate::tables::{escape, Table};

const STYLE: &str = "body{font-family:sans-serif;margin:2em auto;max-width:980px;color:#222}\
table{border-collapse:collapse;margin:1em 0}caption{text-align:left;font-weight:bold;padding:.3em 0}\
td,th{border:1px solid #ccc;padding:.25em .6em}td:not(:first-child){text-align:right}\
figure{margin:1.5em 0}figcaption{color:#555;font-size:.9em}";

/// Counts the charts that rendered and the data each drew; run by the browser on load.
const CHECK_SCRIPT: &str = r#"(function () {
  var rendered = 0;
  document.querySelectorAll('figure.chart').forEach(function (figure) {
    var svg = figure.querySelector('svg');
    if (!svg) { return; }
    var box = svg.getBoundingClientRect();
    var shapes = svg.querySelectorAll('polyline, path, rect, line, circle').length;
    // Data lines are drawn 2 px wide, axes and grid 1 px: count the data's points apart.
    var points = 0;
    svg.querySelectorAll('polyline[stroke-width="2"]').forEach(function (p) {
      points += p.points.numberOfItems;
    });
    figure.setAttribute('data-series-points', String(points));
    if (box.width > 0 && box.height > 0 && shapes > 0) {
      rendered += 1;
      figure.setAttribute('data-rendered', 'true');
    }
  });
  document.body.setAttribute('data-charts-rendered', String(rendered));
})();"#;

pub fn page(data: &ReportData, tables: &[Table]) -> anyhow::Result<String> {
    let charts = recast_ops::charts::charts(data)?;
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>recast report: run {run}</title>\n<style>{STYLE}</style>\n</head>\n\
         <body data-charts-expected=\"{n}\">\n<h1>recast report: run {run}</h1>\n<p>{summary}</p>\n",
        run = escape(&data.run),
        n = charts.len(),
        summary = escape(&summary(data)),
    );
    for t in tables {
        out.push_str(&t.html());
    }
    out.push_str(
        "<p>Measured from the catalog's records: objects and bytes from each photo's recorded \
         state, requests as each job attempt recorded them, instance hours as the sum of each \
         worker's span from its first attempt to its last. See docs/report.md.</p>\n",
    );
    for c in &charts {
        let _ = write!(
            out,
            "<figure class=\"chart\" id=\"chart-{id}\" data-points=\"{points}\">\n{svg}\n\
             <figcaption>{caption}</figcaption>\n</figure>\n",
            id = c.id,
            points = c.points,
            svg = c.svg,
            caption = escape(&c.caption),
        );
    }
    let _ = write!(
        out,
        "<script>\n{CHECK_SCRIPT}\n</script>\n</body>\n</html>\n"
    );
    Ok(out)
}
