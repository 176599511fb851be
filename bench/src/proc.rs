//! Reading a process's CPU time and resident memory from `/proc` (Linux), used by
//! `idle_clients` to sample the server it loads.

use std::fs;
use std::io;

/// CPU time a process has used so far in nanoseconds: the sum of the run times in
/// `/proc/PID/task/*/schedstat` (all threads, nanosecond resolution).
pub fn cpu_ns(pid: u32) -> io::Result<u64> {
    let mut total = 0u64;
    for task in fs::read_dir(format!("/proc/{pid}/task"))? {
        let path = task?.path().join("schedstat");
        // A thread may exit between listing and reading: skip it.
        let Ok(text) = fs::read_to_string(path) else {
            continue;
        };
        if let Some(ns) = text
            .split_whitespace()
            .next()
            .and_then(|f| f.parse::<u64>().ok())
        {
            total += ns;
        }
    }
    Ok(total)
}

/// Resident set size of a process in bytes (`VmRSS` in `/proc/PID/status`).
pub fn rss_bytes(pid: u32) -> io::Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| io::Error::other(format!("no VmRSS in /proc/{pid}/status")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let pid = std::process::id();
        assert!(rss_bytes(pid).unwrap() > 0);
        let a = cpu_ns(pid).unwrap();
        // Spin for a while: the kernel brings a running thread's total up to date at least
        // every scheduler tick.
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < std::time::Duration::from_millis(100) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(1));
        }
        assert!(cpu_ns(pid).unwrap() > a);
    }
}
