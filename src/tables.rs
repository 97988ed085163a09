//! The tables `plan` and `report` print: one small type rendered as aligned text, Markdown or
//! HTML. (A table crate would bring more than these ~100 lines do: padding, pipes and escaping.)
//! The number formats are `recast_ops::units`, re-exported here: one format per figure for
//! every verb's output.

use std::fmt::Write;

pub use recast_ops::units::{bytes, count, dollars, duration, error_percent, percent};

/// A titled table; the first column is a label, the others are figures (right-aligned).
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub title: String,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(title: impl Into<String>, header: &[&str]) -> Table {
        Table {
            title: title.into(),
            header: header.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    fn widths(&self) -> Vec<usize> {
        let mut w: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, c) in row.iter().enumerate() {
                if i < w.len() {
                    w[i] = w[i].max(c.chars().count());
                }
            }
        }
        w
    }

    /// Aligned columns for a terminal.
    pub fn terminal(&self) -> String {
        let w = self.widths();
        let line = |cells: &[String]| {
            let mut out = String::from(" ");
            for (i, c) in cells.iter().enumerate() {
                let pad = w.get(i).copied().unwrap_or(0);
                if i == 0 {
                    let _ = write!(out, " {c:<pad$}");
                } else {
                    let _ = write!(out, "  {c:>pad$}");
                }
            }
            out.trim_end().to_owned()
        };
        let mut out = format!("{}\n", self.title);
        out.push_str(&line(&self.header));
        out.push('\n');
        for row in &self.rows {
            out.push_str(&line(row));
            out.push('\n');
        }
        out
    }

    pub fn markdown(&self) -> String {
        let cell = |c: &str| c.replace('|', "\\|");
        let mut out = format!("### {}\n\n", self.title);
        let _ = writeln!(
            out,
            "| {} |",
            self.header
                .iter()
                .map(|h| cell(h))
                .collect::<Vec<_>>()
                .join(" | ")
        );
        let rule: Vec<&str> = (0..self.header.len())
            .map(|i| if i == 0 { "---" } else { "---:" })
            .collect();
        let _ = writeln!(out, "|{}|", rule.join("|"));
        for row in &self.rows {
            let _ = writeln!(
                out,
                "| {} |",
                row.iter().map(|c| cell(c)).collect::<Vec<_>>().join(" | ")
            );
        }
        out
    }

    pub fn html(&self) -> String {
        let mut out = format!("<table>\n<caption>{}</caption>\n<tr>", escape(&self.title));
        for h in &self.header {
            let _ = write!(out, "<th>{}</th>", escape(h));
        }
        out.push_str("</tr>\n");
        for row in &self.rows {
            out.push_str("<tr>");
            for c in row {
                let _ = write!(out, "<td>{}</td>", escape(c));
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</table>\n");
        out
    }
}

/// Text made safe to put in HTML.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_renders_in_three_forms() {
        let mut t = Table::new("Cost <x>", &["", "count", "dollars"]);
        t.row(vec!["S3 PUT".into(), "1,000".into(), "$0.01".into()]);
        t.row(vec!["a|b".into(), "2".into(), "$0".into()]);
        assert_eq!(
            t.terminal(),
            "Cost <x>\n          count  dollars\n  S3 PUT  1,000    $0.01\n  a|b         2       $0\n"
        );
        let md = t.markdown();
        assert!(md.contains("|---|---:|---:|"), "{md}");
        assert!(md.contains("| a\\|b | 2 | $0 |"), "{md}");
        let html = t.html();
        assert!(html.contains("<caption>Cost &lt;x&gt;</caption>"), "{html}");
        assert!(html.contains("<td>a|b</td>"), "{html}");
    }
}
