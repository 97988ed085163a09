//! What the codec's example tools share.

/// CPU time of this process in milliseconds (utime + stime from /proc/self/stat, Linux).
pub fn cpu() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("linux");
    let fields: Vec<&str> = stat[stat.rfind(')').expect("comm") + 2..]
        .split(' ')
        .collect();
    fields[11..13]
        .iter()
        .map(|f| f.parse::<u64>().expect("ticks"))
        .sum::<u64>()
        * 10
}
