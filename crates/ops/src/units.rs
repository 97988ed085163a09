//! How figures read for people, the same in every verb's output: counts with thousands
//! separators, bytes in decimal units (as S3's console shows them), dollars, durations.

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

/// Bytes in decimal units (kB, MB, GB, TB), as S3's console shows them: the one byte format of
/// every output.
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
}
