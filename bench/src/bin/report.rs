//! Renders the results of a `scripts/bench.sh` run: `bench/RESULTS.md` and the SVG charts.
//!
//! ```text
//! report RUN_DIR CARGO_LOCK RESULTS_MD CHARTS_DIR
//! ```
//!
//! Where it sits in the flow: the script runs every measurement, appending one JSON line per
//! run to `RUN_DIR/results.jsonl` (`{"kind":"throughput"|"idle"|"churn", "server", ...,
//! "report": {...}}`, the report being `wsx bench --json` or `idle_clients` output) and
//! describing the machine and the run in `RUN_DIR/meta.json`; this binary aggregates them
//! (median and min–max over rounds, nothing dropped), reads the peers' versions from
//! `CARGO_LOCK`, writes the Markdown report and draws the charts with `plotters`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde::Deserialize;
use serde_json::Value;

type AnyError = Box<dyn std::error::Error>;

/// One workload as the script describes it in `meta.json`.
#[derive(Debug, Clone, Deserialize)]
struct Workload {
    id: String,
    name: String,
    compression: bool,
}

/// `meta.json`.
#[derive(Debug, Clone, Deserialize)]
struct Meta {
    #[serde(default)]
    started: String,
    #[serde(default)]
    finished: String,
    #[serde(default)]
    quick: bool,
    rounds: u32,
    duration_s: f64,
    warmup_s: f64,
    #[serde(default)]
    idle_connections: u64,
    #[serde(default)]
    idle_rounds: u32,
    #[serde(default)]
    churn_s: f64,
    #[serde(default)]
    churn_concurrency: u64,
    #[serde(default)]
    cpu_model: String,
    #[serde(default)]
    cores: u32,
    #[serde(default)]
    kernel: String,
    #[serde(default)]
    rustc: String,
    #[serde(default)]
    wsx_commit: String,
    #[serde(default)]
    pinning: String,
    #[serde(default)]
    load_before: String,
    #[serde(default)]
    load_after: String,
    #[serde(default)]
    others_before: String,
    workloads: Vec<Workload>,
    servers: Vec<String>,
    #[serde(default)]
    deflate_servers: Vec<String>,
}

/// Median, min and max of a set of samples (all of them: noisy rounds are not dropped).
#[derive(Debug, Clone)]
struct Stat {
    median: f64,
    min: f64,
    max: f64,
    samples: Vec<f64>,
}

impl Stat {
    fn of(samples: &[f64]) -> Option<Stat> {
        let mut s: Vec<f64> = samples.iter().copied().filter(|v| v.is_finite()).collect();
        if s.is_empty() {
            return None;
        }
        s.sort_by(f64::total_cmp);
        let n = s.len();
        let median = if n % 2 == 1 {
            s[n / 2]
        } else {
            (s[n / 2 - 1] + s[n / 2]) / 2.0
        };
        Some(Stat {
            median,
            min: s[0],
            max: s[n - 1],
            samples: samples.to_vec(),
        })
    }

    /// Spread as a fraction of the median.
    fn spread(&self) -> f64 {
        if self.median == 0.0 {
            0.0
        } else {
            (self.max - self.min) / self.median
        }
    }
}

/// Throughput figures of one server on one workload.
#[derive(Debug, Default)]
struct Runs {
    msgs: Vec<f64>,
    cpu: Vec<f64>,
    /// Fraction (0..1) of the server's CPU time in the measured window that was kernel time,
    /// for the runs that recorded it (`server_kernel_share`; absent in older runs).
    kernel_share: Vec<f64>,
    p50: Vec<f64>,
    p99: Vec<f64>,
    errors: u64,
    failed_runs: u32,
    first_error: Option<String>,
    compressed: Vec<f64>,
}

/// The benchmark issue's CPU target: wsx's server CPU per message at most this fraction of the
/// best peer's (on the deflate workload, of sockudo-ws's: the only peer with deflate).
const CPU_TARGET: f64 = 0.85;

/// Splits a server CPU time per message into `(user, kernel)` nanoseconds by the kernel share
/// (0..1, clamped) of that CPU time.
fn split_cpu(cpu_ns: f64, kernel_share: f64) -> (f64, f64) {
    let kernel = cpu_ns * kernel_share.clamp(0.0, 1.0);
    (cpu_ns - kernel, kernel)
}

/// wsx's kernel time per message alone divided by the best peer's whole CPU time per message.
/// Above [`CPU_TARGET`] the CPU target is out of reach with the same system calls, even with
/// zero user time. `None` when the best peer's figure is not positive.
fn kernel_alone_ratio(
    wsx_cpu_ns: f64,
    wsx_kernel_share: f64,
    best_peer_cpu_ns: f64,
) -> Option<f64> {
    (best_peer_cpu_ns > 0.0).then(|| split_cpu(wsx_cpu_ns, wsx_kernel_share).1 / best_peer_cpu_ns)
}

/// The "target" cell of the summary: CPU per message at most [`CPU_TARGET`] × the best peer's,
/// messages/s at least the best peer's; a missed target says what figure would meet it.
fn target_cell(
    wsx_cpu: Option<f64>,
    best_cpu: Option<f64>,
    wsx_msgs: Option<f64>,
    best_msgs: Option<f64>,
) -> String {
    let cpu = match (wsx_cpu, best_cpu) {
        (Some(w), Some(b)) if w <= CPU_TARGET * b => "CPU ✓".to_string(),
        (Some(_), Some(b)) => format!("CPU ✗ (needs ≤ {})", fmt_ns(CPU_TARGET * b)),
        _ => "CPU n/a".to_string(),
    };
    let msgs = match (wsx_msgs, best_msgs) {
        (Some(w), Some(b)) if w >= b => "msg/s ✓".to_string(),
        (Some(_), Some(b)) => format!("msg/s ✗ (needs ≥ {})", fmt_rate(b)),
        _ => "msg/s n/a".to_string(),
    };
    format!("{cpu}, {msgs}")
}

/// Workload names for a sentence: each in bold, separated by semicolons (names hold commas).
fn bold_list(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("**{n}**"))
        .collect::<Vec<_>>()
        .join("; ")
}

fn num(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_f64)
}

fn fmt_rate(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2} M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.1} k", v / 1e3)
    } else if v >= 1e3 {
        format!("{:.2} k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

fn fmt_ns(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2} ms", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.1} µs", v / 1e3)
    } else {
        format!("{v:.0} ns")
    }
}

fn fmt_bytes(v: f64) -> String {
    if v.abs() >= 1024.0 * 1024.0 {
        format!("{:.2} MiB", v / (1024.0 * 1024.0))
    } else if v.abs() >= 1024.0 {
        format!("{:.1} KiB", v / 1024.0)
    } else {
        format!("{v:.0} B")
    }
}

/// `median (min–max)` in the given format.
fn with_spread(s: &Stat, f: fn(f64) -> String) -> String {
    if s.samples.len() == 1 {
        f(s.median)
    } else {
        format!("{} ({}–{})", f(s.median), f(s.min), f(s.max))
    }
}

/// Versions of the crates that matter, from `Cargo.lock`.
fn lock_versions(lock: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut name = None;
    for line in lock.lines() {
        if let Some(n) = line.strip_prefix("name = ") {
            name = Some(n.trim_matches('"').to_string());
        } else if let (Some(v), Some(n)) = (line.strip_prefix("version = "), name.take()) {
            out.entry(n)
                .or_default()
                .push(v.trim_matches('"').to_string());
        }
    }
    out
}

const PALETTE: [RGBColor; 6] = [
    RGBColor(214, 39, 40),
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(140, 86, 75),
];

/// The label under a bar (the legend gives the full name).
fn short_name(server: &str) -> &str {
    match server {
        "tokio-tungstenite" => "tungstenite",
        "tokio-websockets" => "tokio-ws",
        "fastwebsockets" => "fastws",
        "sockudo-ws" => "sockudo",
        other => other,
    }
}

/// One panel of a bar chart: a title, and per bar a label and a statistic.
struct Panel {
    title: String,
    bars: Vec<(String, Option<Stat>)>,
}

/// Draw panels side by side (`cols` per row) into one SVG: bars at the median with min–max
/// error bars and the median written above each bar.
fn bar_chart(
    path: &Path,
    title: &str,
    unit: &str,
    panels: &[Panel],
    cols: usize,
    fmt: fn(f64) -> String,
    colors: &[(String, RGBColor)],
) -> Result<(), AnyError> {
    let cols = cols.max(1);
    let rows = panels.len().div_ceil(cols).max(1);
    let (w, h) = (380 * cols.max(2) as u32, 300 * rows as u32 + 66);
    let root = SVGBackend::new(path, (w, h)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 22))?;
    let (legend, root) = root.split_vertically(26);
    // One legend for all panels: the colours are the same everywhere.
    let mut x = 20;
    for (name, color) in colors {
        legend.draw(&Rectangle::new(
            [(x, 8), (x + 12, 20)],
            color.mix(0.85).filled(),
        ))?;
        let label = format!("{name} ({})", short_name(name));
        let label = if label.starts_with("wsx") {
            "wsx".to_string()
        } else {
            label
        };
        legend.draw(&Text::new(label.clone(), (x + 16, 9), ("sans-serif", 12)))?;
        x += 16 + 6 * label.len() as i32 + 18;
    }
    let areas = root.split_evenly((rows, cols));
    for (panel, area) in panels.iter().zip(areas.iter()) {
        let n = panel.bars.len().max(1);
        let top = panel
            .bars
            .iter()
            .filter_map(|(_, s)| s.as_ref().map(|s| s.max))
            .fold(0.0_f64, f64::max);
        let top = if top > 0.0 { top * 1.18 } else { 1.0 };
        let labels: Vec<String> = panel.bars.iter().map(|(l, _)| l.clone()).collect();
        let mut chart = ChartBuilder::on(area)
            .caption(&panel.title, ("sans-serif", 15))
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(58)
            .build_cartesian_2d((0..n as i32 - 1).into_segmented(), 0f64..top)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .y_desc(unit)
            .y_labels(6)
            .y_label_formatter(&|v| fmt(*v))
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => labels
                    .get(usize::try_from(*i).unwrap_or(usize::MAX))
                    .map(|l| short_name(l).to_string())
                    .unwrap_or_default(),
                _ => String::new(),
            })
            .x_label_style(("sans-serif", 10))
            .draw()?;
        for (i, (label, stat)) in panel.bars.iter().enumerate() {
            let i = i as i32;
            let color = colors
                .iter()
                .find(|(name, _)| name == label)
                .map(|(_, c)| *c)
                .unwrap_or(PALETTE[5]);
            let Some(stat) = stat else {
                chart.draw_series(std::iter::once(Text::new(
                    "n/a",
                    (SegmentValue::CenterOf(i), top * 0.05),
                    ("sans-serif", 11).into_font().color(&BLACK.mix(0.6)),
                )))?;
                continue;
            };
            let mut bar = Rectangle::new(
                [
                    (SegmentValue::Exact(i), 0.0),
                    (SegmentValue::Exact(i + 1), stat.median),
                ],
                color.mix(0.85).filled(),
            );
            bar.set_margin(0, 0, 10, 10);
            chart.draw_series(std::iter::once(bar))?;
            chart.draw_series(std::iter::once(ErrorBar::new_vertical(
                SegmentValue::CenterOf(i),
                stat.min,
                stat.median,
                stat.max,
                BLACK.stroke_width(1),
                8,
            )))?;
            chart.draw_series(std::iter::once(Text::new(
                fmt(stat.median),
                (SegmentValue::CenterOf(i), stat.max + top * 0.02),
                TextStyle::from(("sans-serif", 10).into_font())
                    .pos(Pos::new(HPos::Center, VPos::Bottom)),
            )))?;
        }
    }
    root.present()?;
    Ok(())
}

fn main() -> Result<(), AnyError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [run_dir, lock_path, out_md, charts_dir] = args.as_slice() else {
        return Err("usage: report RUN_DIR CARGO_LOCK RESULTS_MD CHARTS_DIR".into());
    };
    let run_dir = Path::new(run_dir);
    let charts_dir = Path::new(charts_dir);
    let meta: Meta = serde_json::from_str(&std::fs::read_to_string(run_dir.join("meta.json"))?)?;
    let lock = std::fs::read_to_string(lock_path).unwrap_or_default();
    let versions = lock_versions(&lock);
    let lines = std::fs::read_to_string(run_dir.join("results.jsonl")).unwrap_or_default();

    // Gather every line.
    let mut thr: BTreeMap<(String, String), Runs> = BTreeMap::new();
    let mut raw_rounds: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    let mut idle: BTreeMap<(String, bool), Vec<Value>> = BTreeMap::new();
    let mut churn: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for line in lines.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let server = v["server"].as_str().unwrap_or("?").to_string();
        let report = &v["report"];
        match v["kind"].as_str() {
            Some("throughput") => {
                let workload = v["workload"].as_str().unwrap_or("?").to_string();
                let key = (workload, server);
                let runs = thr.entry(key.clone()).or_default();
                let raw = raw_rounds.entry(key).or_default();
                match num(report, "msgs_per_sec") {
                    Some(m) if report.is_object() => {
                        runs.msgs.push(m);
                        let cpu = num(report, "server_cpu_ns_per_msg");
                        if let Some(c) = cpu {
                            runs.cpu.push(c);
                        }
                        let kernel_share =
                            num(report, "server_kernel_share").filter(|k| (0.0..=1.0).contains(k));
                        if let Some(k) = kernel_share {
                            runs.kernel_share.push(k);
                        }
                        if let Some(p) = num(&report["latency_us"], "p50") {
                            runs.p50.push(p);
                        }
                        if let Some(p) = num(&report["latency_us"], "p99") {
                            runs.p99.push(p);
                        }
                        if let Some(c) = num(report, "compressed_connections") {
                            runs.compressed.push(c);
                        }
                        let errors = report["errors"].as_u64().unwrap_or(0);
                        runs.errors += errors;
                        if runs.first_error.is_none() {
                            runs.first_error = report["first_error"].as_str().map(String::from);
                        }
                        raw.push(format!(
                            "{} msg/s, {}/msg{}{}",
                            fmt_rate(m),
                            cpu.map(fmt_ns).unwrap_or_else(|| "?".into()),
                            kernel_share
                                .map(|k| format!(" ({:.0} % kernel)", k * 100.0))
                                .unwrap_or_default(),
                            if errors > 0 {
                                format!(", {errors} errors")
                            } else {
                                String::new()
                            }
                        ));
                    }
                    _ => {
                        runs.failed_runs += 1;
                        let e = v["error"].as_str().unwrap_or("no report").to_string();
                        raw.push(format!("failed: {e}"));
                        runs.first_error.get_or_insert(e);
                    }
                }
            }
            Some("idle") => {
                let deflate = v["deflate"].as_bool().unwrap_or(false);
                idle.entry((server, deflate)).or_default().push(v.clone());
            }
            Some("churn") => churn.entry(server).or_default().push(v.clone()),
            _ => {}
        }
    }

    let colors: Vec<(String, RGBColor)> = meta
        .servers
        .iter()
        .enumerate()
        .map(|(i, s)| (s.clone(), PALETTE[i % PALETTE.len()]))
        .collect();
    let servers_for = |w: &Workload| -> Vec<String> {
        meta.servers
            .iter()
            .filter(|s| !w.compression || meta.deflate_servers.contains(s))
            .cloned()
            .collect()
    };

    // ---- Markdown ----
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# Benchmark results: wsx side by side with the Rust peers\n"
    );
    let _ = writeln!(
        md,
        "Written by `scripts/bench.sh` (run {} → {}). Every figure is the **median over \
         rounds** with the min–max spread in brackets; no round is dropped — rounds whose \
         spread exceeds 10 % of the median are marked *noisy* and listed in full under \
         [Every round](#every-round).\n",
        meta.started, meta.finished
    );
    if meta.quick {
        let _ = writeln!(
            md,
            "> **QUICK run** ({} round(s) of {} s): a smoke test of the suite, not a \
             measurement. Run `scripts/bench.sh` without `QUICK=1` for the real figures.\n",
            meta.rounds, meta.duration_s
        );
    }
    let _ = writeln!(md, "## Machine\n");
    let _ = writeln!(md, "| | |\n|---|---|");
    let _ = writeln!(md, "| CPU | {} |", meta.cpu_model);
    let _ = writeln!(md, "| cores | {} |", meta.cores);
    let _ = writeln!(md, "| kernel | {} |", meta.kernel);
    let _ = writeln!(md, "| rustc | {} |", meta.rustc);
    let _ = writeln!(md, "| pinning | {} |", meta.pinning);
    let _ = writeln!(
        md,
        "| load average before / after | {} / {} |",
        meta.load_before, meta.load_after
    );
    if !meta.others_before.trim().is_empty() {
        let _ = writeln!(
            md,
            "\nOther processes using CPU when the run started (`top`, busiest first; \
             anything busy here disturbs the figures on a machine this small):\n\n```\n{}\n```",
            meta.others_before.trim_end()
        );
    }
    let _ = writeln!(md, "\n## Versions\n");
    let _ = writeln!(md, "| implementation | crate | version |\n|---|---|---|");
    let _ = writeln!(
        md,
        "| wsx | wsx (path `../crates/wsx`) | {} (commit {}) |",
        versions
            .get("wsx")
            .map(|v| v.join(", "))
            .unwrap_or_default(),
        meta.wsx_commit
    );
    for (imp, krate) in [
        ("tokio-tungstenite", "tokio-tungstenite"),
        ("tokio-tungstenite", "tungstenite"),
        ("tokio-websockets", "tokio-websockets"),
        ("fastwebsockets", "fastwebsockets"),
        ("fastwebsockets", "hyper"),
        ("sockudo-ws", "sockudo-ws"),
        ("all", "tokio"),
    ] {
        let v = versions
            .get(krate)
            .map(|v| v.join(", "))
            .unwrap_or("?".into());
        let _ = writeln!(md, "| {imp} | {krate} | {v} |");
    }
    let _ = writeln!(md, "\n## Method\n");
    let _ = writeln!(
        md,
        "- One echo server per implementation (`bench/src/bin/echo_*.rs`), each on a \
         current-thread tokio runtime with `TCP_NODELAY`, echoing every text and binary \
         message, written the way the crate's own echo example is. wsx uses `recv` + `feed` \
         (the queued echo leaves with the next `recv`).\n\
         - Load: `wsx bench` (one client thread, one message in flight per connection, every \
         echo checked), {} s measured after {} s warmup, {} interleaved round(s): each round \
         runs every server once, in turn, before the next round starts.\n\
         - Server CPU per message: the server's CPU time (all threads, from \
         `/proc/PID/task/*/schedstat`) over the measured window divided by the messages \
         echoed in it (`wsx bench --server-pid`). Lower is better; it is the figure that \
         does not depend on how fast the client is.\n\
         - \"vs best\" divides by the best implementation on that workload (1.00 = best); \
         for CPU lower is better, so the best has 1.00 and the others more.\n\
         - Idle memory: `idle_clients` opens {} connections (handshake completed, then \
         idle) and reads the server's `VmRSS` before and after: (after − before) / N, {} \
         round(s), each on a fresh server. \
         Connection set-up: fresh TCP connection + opening handshake, {} in flight, for {} \
         s; the socket is then reset.",
        meta.duration_s,
        meta.warmup_s,
        meta.rounds,
        meta.idle_connections,
        meta.idle_rounds,
        meta.churn_concurrency,
        meta.churn_s
    );

    // One figure of one server on one workload, over its rounds.
    let stat = |w: &Workload, s: &str, f: fn(&Runs) -> &Vec<f64>| {
        thr.get(&(w.id.clone(), s.to_string()))
            .and_then(|r| Stat::of(f(r)))
    };
    // The peer (not wsx) with the lowest median CPU per message on a workload, and that median.
    let best_peer_cpu = |w: &Workload| {
        servers_for(w)
            .into_iter()
            .filter(|s| s != "wsx")
            .filter_map(|p| stat(w, &p, |r| &r.cpu).map(|s| (p, s.median)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
    };

    // Summary.
    let _ = writeln!(md, "\n## Summary: wsx against the best peer\n");
    let _ = writeln!(
        md,
        "Ratios: messages/s of wsx ÷ the best peer's (above 1 = wsx ahead), and server CPU \
         per message of the best peer ÷ wsx's (above 1 = wsx uses less). Targets, on every \
         workload: wsx's server CPU per message at most {CPU_TARGET} × the best peer's (CPU \
         ratio ≥ {:.2}; on the deflate workload the peer is sockudo-ws, the only one with \
         permessage-deflate), and messages/s at least the best peer's (msg/s ratio ≥ 1.00). \
         A missed target shows the figure that would meet it.\n",
        1.0 / CPU_TARGET
    );
    let _ = writeln!(
        md,
        "| workload | wsx msg/s | best peer (msg/s) | msg/s ratio | wsx CPU/msg | best peer (CPU/msg) | CPU ratio | target |\n|---|---|---|---|---|---|---|---|"
    );
    for w in &meta.workloads {
        let wsx_m = stat(w, "wsx", |r| &r.msgs);
        let wsx_c = stat(w, "wsx", |r| &r.cpu);
        let best_m = servers_for(w)
            .into_iter()
            .filter(|s| s != "wsx")
            .filter_map(|p| stat(w, &p, |r| &r.msgs).map(|s| (p, s.median)))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        let best_c = best_peer_cpu(w);
        let cell = |s: &Option<Stat>, f: fn(f64) -> String| {
            s.as_ref().map(|s| f(s.median)).unwrap_or("n/a".into())
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            w.name,
            cell(&wsx_m, fmt_rate),
            best_m
                .as_ref()
                .map(|(p, v)| format!("{p} ({})", fmt_rate(*v)))
                .unwrap_or("n/a".into()),
            match (&wsx_m, &best_m) {
                (Some(a), Some((_, b))) if *b > 0.0 => format!("**{:.2}×**", a.median / b),
                _ => "n/a".into(),
            },
            cell(&wsx_c, fmt_ns),
            best_c
                .as_ref()
                .map(|(p, v)| format!("{p} ({})", fmt_ns(*v)))
                .unwrap_or("n/a".into()),
            match (&wsx_c, &best_c) {
                (Some(a), Some((_, b))) if a.median > 0.0 => format!("**{:.2}×**", b / a.median),
                _ => "n/a".into(),
            },
            target_cell(
                wsx_c.as_ref().map(|s| s.median),
                best_c.as_ref().map(|(_, v)| *v),
                wsx_m.as_ref().map(|s| s.median),
                best_m.as_ref().map(|(_, v)| *v),
            ),
        );
    }

    let _ = writeln!(md, "\n## Charts\n");
    let _ = writeln!(
        md,
        "- [Server CPU time per message](charts/cpu_per_msg.svg)"
    );
    let _ = writeln!(md, "- [Messages per second](charts/msgs_per_sec.svg)");
    let _ = writeln!(md, "- [Idle memory per connection](charts/idle_memory.svg)");
    let _ = writeln!(md, "- [Connection set-up rate](charts/handshakes.svg)");
    let _ = writeln!(
        md,
        "- [Server CPU per connection set-up](charts/handshake_cpu.svg)\n"
    );
    let _ = writeln!(md, "![Server CPU per message](charts/cpu_per_msg.svg)\n");
    let _ = writeln!(md, "![Messages per second](charts/msgs_per_sec.svg)\n");
    let _ = writeln!(
        md,
        "![Idle memory per connection](charts/idle_memory.svg)\n"
    );
    let _ = writeln!(md, "![Connection set-up rate](charts/handshakes.svg)");

    // Per workload.
    let _ = writeln!(md, "\n## Throughput and CPU per workload\n");
    for w in &meta.workloads {
        let _ = writeln!(md, "### {}\n", w.name);
        let _ = writeln!(
            md,
            "| server | msg/s | vs best | server CPU/msg | vs best | latency p50 | latency p99 | errors | note |\n|---|---|---|---|---|---|---|---|---|"
        );
        let servers = servers_for(w);
        let best_m = servers
            .iter()
            .filter_map(|s| {
                thr.get(&(w.id.clone(), s.clone()))
                    .and_then(|r| Stat::of(&r.msgs))
            })
            .map(|s| s.median)
            .fold(0.0_f64, f64::max);
        let best_c = servers
            .iter()
            .filter_map(|s| {
                thr.get(&(w.id.clone(), s.clone()))
                    .and_then(|r| Stat::of(&r.cpu))
            })
            .map(|s| s.median)
            .fold(f64::INFINITY, f64::min);
        for s in &servers {
            let Some(r) = thr.get(&(w.id.clone(), s.clone())) else {
                let _ = writeln!(md, "| {s} | not run | | | | | | | |");
                continue;
            };
            let m = Stat::of(&r.msgs);
            let c = Stat::of(&r.cpu);
            let mut notes = Vec::new();
            if m.as_ref().is_some_and(|m| m.spread() > 0.10)
                || c.as_ref().is_some_and(|c| c.spread() > 0.10)
            {
                notes.push("noisy".to_string());
            }
            if r.failed_runs > 0 {
                notes.push(format!("{} run(s) failed", r.failed_runs));
            }
            if w.compression {
                let comp = Stat::of(&r.compressed).map(|c| c.median).unwrap_or(0.0);
                notes.push(format!("deflate on {comp:.0} conn."));
            }
            if let Some(e) = &r.first_error {
                notes.push(format!("first error: {}", e.replace('|', "/")));
            }
            let _ = writeln!(
                md,
                "| {s} | {} | {} | {} | {} | {} | {} | {} | {} |",
                m.as_ref()
                    .map(|m| with_spread(m, fmt_rate))
                    .unwrap_or("n/a".into()),
                m.as_ref()
                    .filter(|_| best_m > 0.0)
                    .map(|m| format!("{:.2}", m.median / best_m))
                    .unwrap_or_default(),
                c.as_ref()
                    .map(|c| with_spread(c, fmt_ns))
                    .unwrap_or("n/a".into()),
                c.as_ref()
                    .filter(|_| best_c.is_finite() && best_c > 0.0)
                    .map(|c| format!("{:.2}", c.median / best_c))
                    .unwrap_or_default(),
                Stat::of(&r.p50)
                    .map(|p| format!("{:.0} µs", p.median))
                    .unwrap_or_default(),
                Stat::of(&r.p99)
                    .map(|p| format!("{:.0} µs", p.median))
                    .unwrap_or_default(),
                r.errors,
                notes.join("; "),
            );
        }
        let _ = writeln!(md);
    }

    // User and kernel time.
    let _ = writeln!(
        md,
        "## Where the server's CPU goes: user space and kernel\n"
    );
    if thr.values().all(|r| r.kernel_share.is_empty()) {
        let _ = writeln!(
            md,
            "The split of the server's CPU time into user and kernel time was not recorded in \
             this run (no `server_kernel_share` in the `wsx bench` reports).\n"
        );
    } else {
        let _ = writeln!(
            md,
            "Each cell: user + kernel time per message = the median server CPU per message \
             split by the median kernel share of the server's CPU time (system time ÷ user + \
             system time over the measured window, from `/proc/PID/stat`, clock-tick \
             resolution), the kernel share in brackets. Last column: wsx's kernel time per \
             message alone ÷ the best peer's whole CPU per message, against the {CPU_TARGET}× \
             target.\n"
        );
        let _ = writeln!(
            md,
            "| workload | {} | wsx kernel alone ÷ best peer's total |\n|---|{}---|",
            meta.servers
                .iter()
                .map(|s| format!("{s}: user + kernel"))
                .collect::<Vec<_>>()
                .join(" | "),
            "---|".repeat(meta.servers.len())
        );
        let median =
            |w: &Workload, s: &str, f: fn(&Runs) -> &Vec<f64>| stat(w, s, f).map(|s| s.median);
        let (mut out_of_reach, mut within) = (Vec::new(), Vec::new());
        for w in &meta.workloads {
            let run = servers_for(w);
            let cells: Vec<String> = meta
                .servers
                .iter()
                .map(|s| {
                    if !run.contains(s) {
                        return "—".to_string();
                    }
                    match (median(w, s, |r| &r.cpu), median(w, s, |r| &r.kernel_share)) {
                        (Some(c), Some(k)) => {
                            let (user, kernel) = split_cpu(c, k);
                            format!("{} + {} ({:.0} %)", fmt_ns(user), fmt_ns(kernel), k * 100.0)
                        }
                        _ => "n/a".to_string(),
                    }
                })
                .collect();
            let ratio = match (
                median(w, "wsx", |r| &r.cpu),
                median(w, "wsx", |r| &r.kernel_share),
                best_peer_cpu(w),
            ) {
                (Some(c), Some(k), Some((p, b))) => kernel_alone_ratio(c, k, b).map(|r| (p, r)),
                _ => None,
            };
            let last = match &ratio {
                Some((p, r)) if *r > CPU_TARGET => {
                    out_of_reach.push(w.name.as_str());
                    format!("**{r:.2}** > {CPU_TARGET} ({p})")
                }
                Some((p, r)) => {
                    within.push(w.name.as_str());
                    format!("{r:.2} ≤ {CPU_TARGET} ({p})")
                }
                None => "n/a".to_string(),
            };
            let _ = writeln!(md, "| {} | {} | {last} |", w.name, cells.join(" | "));
        }
        let _ = writeln!(
            md,
            "\nThe kernel part is the socket work: reading and writing the bytes through TCP \
             over loopback and waking the client, the same system calls for every \
             implementation."
        );
        if !out_of_reach.is_empty() {
            let _ = writeln!(
                md,
                "Where the kernel time per message of wsx alone is above {CPU_TARGET} × the \
                 best peer's whole CPU per message ({}), the {CPU_TARGET}× CPU target cannot \
                 be reached by user-space work with the same system calls: even zero user \
                 time would miss it.",
                bold_list(&out_of_reach)
            );
        }
        if !within.is_empty() {
            let _ = writeln!(
                md,
                "Where it is within {CPU_TARGET} × the best peer's whole CPU per message ({}), \
                 kernel time alone does not rule the target out.",
                bold_list(&within)
            );
        }
        let _ = writeln!(md);
    }

    // Idle memory.
    let _ = writeln!(md, "## Idle memory per connection\n");
    let _ = writeln!(
        md,
        "{} idle connections, handshake completed; (RSS after − RSS before) / connections \
         opened. \"deflate\": the client offered permessage-deflate and the server accepted \
         it (servers without deflate are not run).\n",
        meta.idle_connections
    );
    let _ = writeln!(
        md,
        "| server | plain: per connection | plain: opened | deflate: per connection | deflate: negotiated on |\n|---|---|---|---|---|"
    );
    let idle_stat = |s: &str, d: bool| -> (Option<Stat>, String, String) {
        let runs = idle.get(&(s.to_string(), d));
        let per: Vec<f64> = runs
            .map(|rs| {
                rs.iter()
                    .filter_map(|r| num(&r["report"], "rss_per_connection"))
                    .collect()
            })
            .unwrap_or_default();
        let opened = runs
            .map(|rs| {
                rs.iter()
                    .map(|r| match r["report"]["opened"].as_u64() {
                        Some(o) => o.to_string(),
                        None => format!("failed: {}", r["error"].as_str().unwrap_or("?")),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        let neg = runs
            .map(|rs| {
                rs.iter()
                    .filter_map(|r| r["report"]["deflate_negotiated"].as_u64())
                    .map(|n| n.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        (Stat::of(&per), opened, neg)
    };
    for s in &meta.servers {
        let (plain, opened, _) = idle_stat(s, false);
        let (defl, _, neg) = idle_stat(s, true);
        let has_deflate = meta.deflate_servers.contains(s);
        let _ = writeln!(
            md,
            "| {s} | {} | {} | {} | {} |",
            plain
                .as_ref()
                .map(|p| with_spread(p, fmt_bytes))
                .unwrap_or("n/a".into()),
            opened,
            if has_deflate {
                defl.as_ref()
                    .map(|p| with_spread(p, fmt_bytes))
                    .unwrap_or("n/a".into())
            } else {
                "not supported".into()
            },
            if has_deflate { neg } else { String::new() },
        );
    }

    // Churn.
    let _ = writeln!(md, "\n## Connection set-up rate\n");
    let _ = writeln!(
        md,
        "Fresh TCP connection + opening handshake (no deflate offered), {} in flight.\n",
        meta.churn_concurrency
    );
    let _ = writeln!(
        md,
        "| server | handshakes/s | vs best | server CPU per handshake | failed |\n|---|---|---|---|---|"
    );
    let churn_stat = |s: &str, key: &str| -> Option<Stat> {
        let v: Vec<f64> = churn
            .get(s)
            .map(|rs| rs.iter().filter_map(|r| num(&r["report"], key)).collect())
            .unwrap_or_default();
        Stat::of(&v)
    };
    let best_h = meta
        .servers
        .iter()
        .filter_map(|s| churn_stat(s, "handshakes_per_sec"))
        .map(|s| s.median)
        .fold(0.0_f64, f64::max);
    for s in &meta.servers {
        let h = churn_stat(s, "handshakes_per_sec");
        let c = churn_stat(s, "server_cpu_ns_per_handshake");
        let failed: u64 = churn
            .get(s)
            .map(|rs| {
                rs.iter()
                    .filter_map(|r| r["report"]["failed"].as_u64())
                    .sum()
            })
            .unwrap_or(0);
        let _ = writeln!(
            md,
            "| {s} | {} | {} | {} | {failed} |",
            h.as_ref()
                .map(|h| with_spread(h, fmt_rate))
                .unwrap_or("n/a".into()),
            h.as_ref()
                .filter(|_| best_h > 0.0)
                .map(|h| format!("{:.2}", h.median / best_h))
                .unwrap_or_default(),
            c.as_ref()
                .map(|c| with_spread(c, fmt_ns))
                .unwrap_or("n/a".into()),
        );
    }

    // Every round.
    let _ = writeln!(md, "\n## Every round\n");
    let _ = writeln!(
        md,
        "Messages/s and server CPU per message of each round, in the order run.\n"
    );
    for w in &meta.workloads {
        let _ = writeln!(md, "- **{}**", w.name);
        for s in servers_for(w) {
            if let Some(r) = raw_rounds.get(&(w.id.clone(), s.clone())) {
                let _ = writeln!(md, "  - {s}: {}", r.join(" · "));
            }
        }
    }
    std::fs::write(out_md, md)?;

    // ---- Charts ----
    std::fs::create_dir_all(charts_dir)?;
    let throughput_panels = |f: fn(&Runs) -> &Vec<f64>| -> Vec<Panel> {
        meta.workloads
            .iter()
            .map(|w| Panel {
                title: w.name.clone(),
                bars: servers_for(w)
                    .into_iter()
                    .map(|s| {
                        let st = thr
                            .get(&(w.id.clone(), s.clone()))
                            .and_then(|r| Stat::of(f(r)));
                        (s, st)
                    })
                    .collect(),
            })
            .collect()
    };
    bar_chart(
        &charts_dir.join("cpu_per_msg.svg"),
        "Server CPU time per message (lower is better; median, min–max)",
        "CPU per message",
        &throughput_panels(|r| &r.cpu),
        3,
        fmt_ns,
        &colors,
    )?;
    bar_chart(
        &charts_dir.join("msgs_per_sec.svg"),
        "Messages per second (higher is better; median, min–max)",
        "messages / s",
        &throughput_panels(|r| &r.msgs),
        3,
        fmt_rate,
        &colors,
    )?;
    let idle_panels: Vec<Panel> = [(false, "plain"), (true, "permessage-deflate negotiated")]
        .into_iter()
        .map(|(d, name)| Panel {
            title: format!("{} idle connections, {name}", meta.idle_connections),
            bars: meta
                .servers
                .iter()
                .filter(|s| !d || meta.deflate_servers.contains(s))
                .map(|s| (s.clone(), idle_stat(s, d).0))
                .collect(),
        })
        .collect();
    bar_chart(
        &charts_dir.join("idle_memory.svg"),
        "Server memory per idle connection (RSS; lower is better)",
        "bytes per connection",
        &idle_panels,
        2,
        fmt_bytes,
        &colors,
    )?;
    let churn_panels = [
        Panel {
            title: "handshakes per second (higher is better)".into(),
            bars: meta
                .servers
                .iter()
                .map(|s| (s.clone(), churn_stat(s, "handshakes_per_sec")))
                .collect(),
        },
        Panel {
            title: "server CPU per handshake (lower is better)".into(),
            bars: meta
                .servers
                .iter()
                .map(|s| (s.clone(), churn_stat(s, "server_cpu_ns_per_handshake")))
                .collect(),
        },
    ];
    // The two panels have different units; each formats its own axis as numbers.
    bar_chart(
        &charts_dir.join("handshakes.svg"),
        "Connection set-up: fresh TCP connection + opening handshake",
        "",
        &churn_panels[..1],
        1,
        fmt_rate,
        &colors,
    )
    .and_then(|()| {
        bar_chart(
            &charts_dir.join("handshake_cpu.svg"),
            "Server CPU per connection set-up",
            "",
            &churn_panels[1..],
            1,
            fmt_ns,
            &colors,
        )
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_spread_keep_every_sample() {
        let s = Stat::of(&[5.0, 1.0, 3.0, 100.0]).unwrap();
        assert_eq!(s.median, 4.0);
        assert_eq!((s.min, s.max), (1.0, 100.0));
        assert_eq!(s.samples.len(), 4);
        assert!(s.spread() > 0.10);
        assert!(Stat::of(&[]).is_none());
    }

    #[test]
    fn versions_come_from_the_lock_file() {
        let lock = "[[package]]\nname = \"sockudo-ws\"\nversion = \"3.1.0\"\n\n\
                    [[package]]\nname = \"base64\"\nversion = \"0.21.7\"\n\n\
                    [[package]]\nname = \"base64\"\nversion = \"0.22.1\"\n";
        let v = lock_versions(lock);
        assert_eq!(v["sockudo-ws"], ["3.1.0"]);
        assert_eq!(v["base64"], ["0.21.7", "0.22.1"]);
    }

    #[test]
    fn cpu_splits_into_user_and_kernel() {
        let (user, kernel) = split_cpu(8000.0, 0.85);
        assert!((user - 1200.0).abs() < 1e-9);
        assert!((kernel - 6800.0).abs() < 1e-9);
        assert_eq!(split_cpu(100.0, 1.5), (0.0, 100.0));
        assert_eq!(split_cpu(100.0, -0.5), (100.0, 0.0));
    }

    #[test]
    fn kernel_alone_against_the_best_peer() {
        // wsx 8000 ns at 85 % kernel = 6800 ns of kernel time; best peer 7500 ns in all:
        // 6800 / 7500 ≈ 0.907 > 0.85, out of reach even with zero user time.
        let r = kernel_alone_ratio(8000.0, 0.85, 7500.0).unwrap();
        assert!((r - 6800.0 / 7500.0).abs() < 1e-12);
        assert!(r > CPU_TARGET);
        // Half the time in the kernel leaves room.
        assert!(kernel_alone_ratio(8000.0, 0.5, 7500.0).unwrap() < CPU_TARGET);
        assert!(kernel_alone_ratio(8000.0, 0.85, 0.0).is_none());
    }

    #[test]
    fn target_cell_says_what_would_meet_the_target() {
        assert_eq!(
            target_cell(Some(8000.0), Some(7800.0), Some(100e3), Some(90e3)),
            "CPU ✗ (needs ≤ 6630 ns), msg/s ✓"
        );
        assert_eq!(
            target_cell(Some(5000.0), Some(7800.0), Some(80e3), Some(92.5e3)),
            "CPU ✓, msg/s ✗ (needs ≥ 92.5 k)"
        );
        assert_eq!(
            target_cell(None, Some(7800.0), Some(1.0), None),
            "CPU n/a, msg/s n/a"
        );
    }
}
