//! The tables `plan` and `report` print: one small type rendered as aligned text, Markdown or
//! HTML, and the number formats they share. (A table crate would bring more than these ~100
//! lines do: padding, pipes and escaping.)

use std::fmt::Write;

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

/// 1234567 as "1,234,567".
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// Bytes in decimal units (kB, MB, GB, TB), as S3's console shows them.
pub fn bytes(n: u64) -> String {
    let n = n as f64;
    let units = [(1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1e3, "kB")];
    for (size, unit) in units {
        if n >= size {
            return format!("{:.1} {unit}", n / size);
        }
    }
    format!("{n} B")
}

/// Dollars, with cents for large sums and more digits for small ones.
pub fn dollars(d: f64) -> String {
    if d == 0.0 {
        "$0".to_owned()
    } else if d >= 100.0 {
        format!("${}", count(d.round() as u64))
    } else if d >= 0.01 {
        format!("${d:.2}")
    } else {
        format!("${d:.6}")
    }
}

/// A duration for people: "42.0 s", "12 min 05 s", "3 h 20 min".
pub fn duration(seconds: f64) -> String {
    if seconds < 60.0 {
        format!("{seconds:.1} s")
    } else if seconds < 3600.0 {
        let s = seconds.round() as u64;
        format!("{} min {:02} s", s / 60, s % 60)
    } else {
        let m = (seconds / 60.0).round() as u64;
        format!("{} h {:02} min", m / 60, m % 60)
    }
}

pub fn percent(p: f64) -> String {
    format!("{p:.1}%")
}

/// How far `predicted` is from `measured`, in percent of the measured.
pub fn error_percent(predicted: f64, measured: f64) -> f64 {
    if measured == 0.0 {
        0.0
    } else {
        100.0 * (predicted - measured) / measured
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_read_well() {
        assert_eq!(count(0), "0");
        assert_eq!(count(1234567), "1,234,567");
        assert_eq!(count(100), "100");
        assert_eq!(bytes(245_300_000), "245.3 MB");
        assert_eq!(bytes(738_000_000_000_000), "738.0 TB");
        assert_eq!(bytes(12), "12 B");
        assert_eq!(dollars(1234.4), "$1,234");
        assert_eq!(dollars(1.8), "$1.80");
        assert_eq!(dollars(0.0004), "$0.000400");
        assert_eq!(duration(42.04), "42.0 s");
        assert_eq!(duration(85.0), "1 min 25 s");
        assert_eq!(duration(725.0), "12 min 05 s");
        assert_eq!(duration(4.0 * 86400.0), "96 h 00 min");
        assert!((error_percent(110.0, 100.0) - 10.0).abs() < 1e-9);
    }

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
