//! The result of a `wsx bench` run: a [`Report`], printed for people or as one JSON object.
//!
//! [`super`] fills it in after the measured window; this module only presents it.

use std::fmt::Write as _;

use serde::Serialize;

/// Round-trip latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// The slowest round trip.
    pub max: f64,
}

/// Everything `wsx bench` measured. Field names are the keys of the `--json` output.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The server's URL.
    pub url: String,
    /// Connections asked for.
    pub connections: usize,
    /// Connections that were established.
    pub connected: usize,
    /// Connections on which permessage-deflate was negotiated.
    pub compressed_connections: usize,
    /// Client threads (each a current-thread runtime).
    pub threads: usize,
    /// Payload bytes per message.
    pub size: usize,
    /// `"text"` or `"binary"`.
    pub mode: &'static str,
    /// The warmup before the measured window, in seconds.
    pub warmup_s: f64,
    /// The measured window, in seconds (as measured, not as asked).
    pub duration_s: f64,
    /// Round trips completed in the window.
    pub messages: u64,
    /// `messages / duration_s`.
    pub msgs_per_sec: f64,
    /// Payload bytes sent and received in the window: `2 * messages * size`.
    pub bytes: u64,
    /// Errors over the whole run: failed connections, echoes that differ from what was sent,
    /// connections lost, close handshakes that failed.
    pub errors: u64,
    /// The first error, when there was one.
    pub first_error: Option<String>,
    /// Round-trip latency of the messages of the window.
    pub latency_us: Latency,
    /// This process's CPU time (all threads) in the window divided by `messages`; `null` when
    /// unknown.
    pub client_cpu_ns_per_msg: Option<f64>,
    /// The process given with `--server-pid`, if any.
    pub server_pid: Option<u32>,
    /// That process's CPU time in the window divided by `messages`; `null` when unknown.
    pub server_cpu_ns_per_msg: Option<f64>,
    /// The fraction (0 to 1) of that CPU time spent in the kernel (`stime` against `utime` in
    /// `/proc/PID/stat`); `null` when unknown.
    pub server_kernel_share: Option<f64>,
}

impl Report {
    /// The report as one line of JSON.
    pub fn to_json(&self) -> String {
        // Serialising plain numbers and strings cannot fail; keep a readable fallback anyway.
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The report for people, several lines.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "wsx bench {}: {} connections ({} open), {} B {} messages, compression on {} of them, \
             {} thread{}",
            self.url,
            self.connections,
            self.connected,
            self.size,
            self.mode,
            self.compressed_connections,
            self.threads,
            if self.threads == 1 { "" } else { "s" },
        );
        let _ = writeln!(
            s,
            "  window      {:.2} s (after {:.2} s warmup)",
            self.duration_s, self.warmup_s
        );
        let _ = writeln!(
            s,
            "  messages    {} ({:.0} msg/s, one in flight per connection)",
            self.messages, self.msgs_per_sec
        );
        let _ = writeln!(s, "  bytes       {} (payload sent + received)", self.bytes);
        match &self.first_error {
            Some(e) => {
                let _ = writeln!(s, "  errors      {} (first: {e})", self.errors);
            }
            None => {
                let _ = writeln!(s, "  errors      {}", self.errors);
            }
        }
        let l = &self.latency_us;
        let _ = writeln!(
            s,
            "  latency     p50 {}  p90 {}  p99 {}  max {}",
            micros(l.p50),
            micros(l.p90),
            micros(l.p99),
            micros(l.max)
        );
        let _ = writeln!(s, "  client CPU  {}", per_msg(self.client_cpu_ns_per_msg));
        if let Some(pid) = self.server_pid {
            let kernel = self
                .server_kernel_share
                .map(|k| format!(", {:.0} % in the kernel", k * 100.0))
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "  server CPU  {} (pid {pid}{kernel})",
                per_msg(self.server_cpu_ns_per_msg)
            );
        }
        s
    }
}

fn micros(us: f64) -> String {
    if us >= 10_000.0 {
        format!("{:.1} ms", us / 1000.0)
    } else {
        format!("{us:.1} µs")
    }
}

fn per_msg(ns: Option<f64>) -> String {
    match ns {
        Some(ns) => format!("{ns:.0} ns/msg"),
        None => "unknown".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        Report {
            url: "ws://127.0.0.1:1/".into(),
            connections: 4,
            connected: 4,
            compressed_connections: 0,
            threads: 1,
            size: 20,
            mode: "text",
            warmup_s: 1.0,
            duration_s: 2.0,
            messages: 1000,
            msgs_per_sec: 500.0,
            bytes: 40_000,
            errors: 0,
            first_error: None,
            latency_us: Latency {
                p50: 10.0,
                p90: 20.0,
                p99: 30.0,
                max: 12_345.0,
            },
            client_cpu_ns_per_msg: Some(900.0),
            server_pid: None,
            server_cpu_ns_per_msg: None,
            server_kernel_share: None,
        }
    }

    #[test]
    fn json_has_the_documented_keys() {
        let v: serde_json::Value = serde_json::from_str(&report().to_json()).unwrap();
        for key in [
            "connections",
            "size",
            "mode",
            "duration_s",
            "messages",
            "msgs_per_sec",
            "bytes",
            "errors",
            "latency_us",
            "client_cpu_ns_per_msg",
        ] {
            assert!(v.get(key).is_some(), "{key}");
        }
        for key in ["p50", "p90", "p99", "max"] {
            assert!(v["latency_us"][key].is_number(), "{key}");
        }
        assert!(v["server_cpu_ns_per_msg"].is_null());
        assert!(v["server_kernel_share"].is_null());
    }

    #[test]
    fn text_mentions_the_figures() {
        let t = report().to_text();
        assert!(t.contains("500 msg/s"), "{t}");
        assert!(t.contains("900 ns/msg"), "{t}");
        assert!(t.contains("12.3 ms"), "{t}");
        assert!(!t.contains("server CPU"), "{t}");
    }

    #[test]
    fn text_shows_the_server_kernel_share() {
        let mut r = report();
        r.server_pid = Some(42);
        r.server_cpu_ns_per_msg = Some(8000.0);
        r.server_kernel_share = Some(0.834);
        let t = r.to_text();
        assert!(
            t.contains("server CPU  8000 ns/msg (pid 42, 83 % in the kernel)"),
            "{t}"
        );
    }
}
