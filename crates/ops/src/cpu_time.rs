//! The calling thread's CPU time, for `plan`'s sample (a conversion's cost without the time the
//! machine's other work took from it).

/// CPU time of the calling thread (user + system), from /proc/thread-self/stat; `None` where
/// that does not exist. Ten lines rather than a crate for one syscall's worth of numbers, like
/// `recast bench`'s process CPU time.
pub fn thread_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // After the command name (in parentheses, may hold spaces): state is field 3, utime and
    // stime are fields 14 and 15, in USER_HZ (100 per second wherever Linux exports them).
    let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split(' ').collect();
    let ticks = fields
        .get(11..13)?
        .iter()
        .map(|f| f.parse::<u64>().ok())
        .sum::<Option<u64>>()?;
    Some(ticks as f64 / 100.0)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::thread_cpu_seconds;

    #[test]
    fn a_threads_cpu_time_counts_its_work_not_its_waits() {
        let before = thread_cpu_seconds().expect("/proc/thread-self/stat is readable on Linux");
        // Work until the thread has run 0.2 s of CPU, however busy the machine is.
        let started = Instant::now();
        let mut x = 1u64;
        while thread_cpu_seconds().unwrap() - before < 0.2 {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "no CPU time counted"
            );
        }
        let worked = thread_cpu_seconds().unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let slept = thread_cpu_seconds().unwrap() - worked;
        assert!(slept < 0.05, "sleeping counted {slept} s of CPU");
    }
}
