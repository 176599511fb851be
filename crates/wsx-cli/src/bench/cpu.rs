//! CPU time of a process, read from `/proc`, for `wsx bench`'s CPU-per-message figures.
//!
//! [`super`] samples [`cpu_time`] for itself and for `--server-pid` at the start and the end of
//! the measured window; the difference divided by the messages of that window is the CPU cost
//! per message. The preferred source is the sum of the first field of
//! `/proc/PID/task/*/schedstat` over every thread (nanoseconds spent on a CPU); where that is
//! missing, `utime + stime` from `/proc/PID/stat` (in clock ticks of 10 ms).
//!
//! `/proc/PID/stat` also splits that time into user space (`utime`) and kernel (`stime`):
//! [`kernel_share`] turns two samples into the fraction the kernel took in between, which
//! shows how much of a server's cost per message is socket work that no WebSocket library
//! can remove.

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
    /// `utime` and `stime` of `/proc/PID/stat` in clock ticks, when readable.
    pub ticks: Option<Ticks>,
}

/// User and kernel CPU time of a process, in clock ticks (`USER_HZ`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticks {
    /// Time in user space (`utime`).
    pub user: u64,
    /// Time in the kernel on the process's behalf (`stime`).
    pub kernel: u64,
}

/// The CPU time `process` has used so far, or `None` when `/proc` has no readable entry for it.
pub fn cpu_time(process: Process) -> Option<CpuTime> {
    let dir = process.dir();
    let ticks = std::fs::read_to_string(dir.join("stat"))
        .ok()
        .and_then(|stat| parse_stat_ticks(&stat));
    if let Some(ns) = schedstat_sum(&dir) {
        return Some(CpuTime { ns, ticks });
    }
    let t = ticks?;
    Some(CpuTime {
        ns: (t.user + t.kernel).saturating_mul(1_000_000_000 / CLOCK_TICKS_PER_SEC),
        ticks,
    })
}

/// The fraction (0 to 1) of the CPU time between two samples that was spent in the kernel, or
/// `None` when either sample lacks the split or no tick elapsed in between.
pub fn kernel_share(before: CpuTime, after: CpuTime) -> Option<f64> {
    let (b, a) = (before.ticks?, after.ticks?);
    let user = a.user.saturating_sub(b.user);
    let kernel = a.kernel.saturating_sub(b.kernel);
    let total = user + kernel;
    (total > 0).then(|| kernel as f64 / total as f64)
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

/// `utime` and `stime` (fields 14 and 15) of a `/proc/PID/stat` line, in clock ticks.
fn parse_stat_ticks(text: &str) -> Option<Ticks> {
    // The command name (field 2) is in parentheses and may contain spaces or parentheses:
    // the fields after it start after the last `)`.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    // `rest` starts at field 3 (state), so utime (field 14) is its 12th entry.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Ticks {
        user: utime,
        kernel: stime,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat() {
        let line = "1234 (my (odd) prog) S 1 1234 1234 0 -1 4194560 100 0 0 0 \
                    250 36 0 0 20 0 1 0 12345 1000000 100 18446744073709551615";
        assert_eq!(
            parse_stat_ticks(line),
            Some(Ticks {
                user: 250,
                kernel: 36
            })
        );
        assert_eq!(parse_stat_ticks("garbage"), None);
    }

    #[test]
    fn kernel_share_of_the_ticks_in_between() {
        let at = |user, kernel| CpuTime {
            ns: 0,
            ticks: Some(Ticks { user, kernel }),
        };
        assert_eq!(kernel_share(at(100, 50), at(120, 130)), Some(0.8));
        assert_eq!(kernel_share(at(100, 50), at(100, 50)), None);
        let no_split = CpuTime { ns: 0, ticks: None };
        assert_eq!(kernel_share(no_split, at(1, 1)), None);
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
