//! CPU time of a process, read from `/proc`, for `wsx bench`'s CPU-per-message figures.
//!
//! [`super`] samples [`cpu_time`] for itself and for `--server-pid` at the start and the end of
//! the measured window; the difference divided by the messages of that window is the CPU cost
//! per message. The preferred source is the sum of the first field of
//! `/proc/PID/task/*/schedstat` over every thread (nanoseconds spent on a CPU); where that is
//! missing, `utime + stime` from `/proc/PID/stat` (in clock ticks of 10 ms).

use std::path::{Path, PathBuf};

/// `USER_HZ`: the unit of `utime` and `stime` in `/proc/PID/stat`, fixed at 100 in Linux's ABI
/// (what `getconf CLK_TCK` prints).
const CLOCK_TICKS_PER_SEC: u64 = 100;

/// Which process to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Process {
    /// This process.
    Current,
    /// Another process.
    Pid(u32),
}

impl Process {
    fn dir(self) -> PathBuf {
        match self {
            Process::Current => PathBuf::from("/proc/self"),
            Process::Pid(pid) => PathBuf::from(format!("/proc/{pid}")),
        }
    }
}

/// A process's CPU time so far: user + system time of all its threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTime {
    /// Nanoseconds (to the nanosecond from `schedstat`, in steps of 10 ms from `stat`).
    pub ns: u64,
}

/// The CPU time `process` has used so far, or `None` when `/proc` has no readable entry for it.
pub fn cpu_time(process: Process) -> Option<CpuTime> {
    let dir = process.dir();
    if let Some(ns) = schedstat_sum(&dir) {
        return Some(CpuTime { ns });
    }
    let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
    let ticks = parse_stat_ticks(&stat)?;
    Some(CpuTime {
        ns: ticks.saturating_mul(1_000_000_000 / CLOCK_TICKS_PER_SEC),
    })
}

/// Sum the time on CPU of every thread of the process in `dir`.
fn schedstat_sum(dir: &Path) -> Option<u64> {
    let mut total = 0u64;
    let mut threads = 0;
    for entry in std::fs::read_dir(dir.join("task")).ok()? {
        let Ok(entry) = entry else { continue };
        // A thread may exit between the listing and the read: skip it.
        let Ok(text) = std::fs::read_to_string(entry.path().join("schedstat")) else {
            continue;
        };
        total = total.saturating_add(parse_schedstat(&text)?);
        threads += 1;
    }
    (threads > 0).then_some(total)
}

/// The first field of a `schedstat` line: nanoseconds spent running.
fn parse_schedstat(text: &str) -> Option<u64> {
    text.split_ascii_whitespace().next()?.parse().ok()
}

/// `utime + stime` (fields 14 and 15) of a `/proc/PID/stat` line, in clock ticks.
fn parse_stat_ticks(text: &str) -> Option<u64> {
    // The command name (field 2) is in parentheses and may contain spaces or parentheses:
    // the fields after it start after the last `)`.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    // `rest` starts at field 3 (state), so utime (field 14) is its 12th entry.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat() {
        let line = "1234 (my (odd) prog) S 1 1234 1234 0 -1 4194560 100 0 0 0 \
                    250 36 0 0 20 0 1 0 12345 1000000 100 18446744073709551615";
        assert_eq!(parse_stat_ticks(line), Some(286));
        assert_eq!(parse_stat_ticks("garbage"), None);
    }

    #[test]
    fn parses_schedstat() {
        assert_eq!(parse_schedstat("123456789 2000 17\n"), Some(123_456_789));
        assert_eq!(parse_schedstat(""), None);
    }

    #[test]
    fn reads_own_cpu_time() {
        let a = cpu_time(Process::Current).expect("/proc/self is readable");
        // Burn a little CPU so the counter moves.
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let b = cpu_time(Process::Current).expect("/proc/self is readable");
        assert!(b.ns >= a.ns);
        assert_eq!(cpu_time(Process::Pid(u32::MAX)), None);
    }
}
