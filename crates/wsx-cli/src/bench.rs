//! `wsx bench URL`: a WebSocket echo load generator, in the spirit of uWebSockets' `load_test`.
//!
//! Where it sits in the `wsx` binary: `main.rs` parses [`BenchArgs`] and calls [`run`]. The
//! flow of a run:
//!
//! 1. `--threads` worker threads start, each with a current-thread tokio runtime and a
//!    `LocalSet`; the connections are shared out among them and open concurrently.
//! 2. Once every connection is open (or failed), the controller (the main thread) lets them
//!    go. Each connection keeps exactly one message in flight: send, wait for the echo, check
//!    it is identical (comparing the received `Bytes` in place), record the round trip in its
//!    thread's latency histogram, send again.
//! 3. The controller sleeps through the warmup, samples the CPU time of this process (and of
//!    `--server-pid`) from `/proc` ([`cpu`]) and the completed-message counter, sleeps through
//!    the measured window, samples again and tells the connections to stop. Each finishes the
//!    round trip it has in flight and closes with 1000.
//! 4. The workers hand back their histograms; the [`report::Report`] is printed as text or
//!    JSON.
//!
//! With `--fanout chat|stomp|raw` it measures broadcast fan-out instead ([`fanout`]).
//!
//! The hot path allocates nothing of its own: every connection of a thread sends clones of the
//! same payload `Bytes`, and echoes are compared without copying.

mod cpu;
mod fanout;
mod report;

use std::cell::RefCell;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Args;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::task::{JoinSet, LocalSet};
use wsx::http2::{Http2Client, Http2Limits};
use wsx::{
    ClientBuilder, ClientResponse, CloseCode, DeflateConfig, Message, WebSocket, WebSocketConfig,
};

use crate::connect::{Exit, OnOff, parse_positive_secs, parse_secs};
use cpu::{CpuTime, Process};
pub use fanout::FanoutKind;
use report::{Latency, Report};

/// How long one connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long, after the window, connections may take to finish their round trip and close.
const FINISH_GRACE: Duration = Duration::from_secs(5);
/// How often the controller wakes up to update the progress bar.
const TICK: Duration = Duration::from_millis(100);

const BENCH_HELP: &str = "\
Each connection keeps exactly one message in flight and checks that every echo is identical to
what it sent. Only the measured window (after the warmup) counts: messages/s, round-trip
latency percentiles and CPU time per message (from /proc/PID/task/*/schedstat, in ns) of this
process and, with --server-pid, of the server.

With --compression on the client offers permessage-deflate with the library's default policy,
under which messages shorter than 256 bytes are sent uncompressed.

Exit codes:
  0  the run completed without errors
  1  usage error, no connection could be opened, or --server-pid is not readable
  2  the run completed with errors (the report counts them and shows the first)";

/// Options of `wsx bench`.
#[derive(Debug, Clone, Args)]
#[command(after_help = BENCH_HELP)]
pub struct BenchArgs {
    /// URL of a WebSocket echo server: ws://host[:port]/path
    pub url: String,
    /// Number of connections.
    #[arg(short = 'c', long, default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub connections: u32,
    /// Payload size of each message in bytes.
    #[arg(short = 's', long, default_value_t = 20)]
    pub size: usize,
    /// Send text messages (the default).
    #[arg(long, conflicts_with = "binary")]
    pub text: bool,
    /// Send binary messages.
    #[arg(long)]
    pub binary: bool,
    /// Offer permessage-deflate.
    #[arg(long, value_enum, default_value_t = OnOff::Off)]
    pub compression: OnOff,
    /// Length of the measured window in seconds.
    #[arg(short = 'd', long, value_name = "SECS", default_value = "10",
          value_parser = parse_positive_secs)]
    pub duration: Duration,
    /// Load before the measured window starts, in seconds (not counted).
    #[arg(short = 'w', long, value_name = "SECS", default_value = "1", value_parser = parse_secs)]
    pub warmup: Duration,
    /// Client threads, each running a single-threaded runtime with its share of connections.
    #[arg(short = 't', long, default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub threads: u32,
    /// Print one JSON object instead of the text report (and no progress bar).
    #[arg(long)]
    pub json: bool,
    /// Also measure this process's CPU time per message (the server's, on the same machine).
    #[arg(long, value_name = "PID")]
    pub server_pid: Option<u32>,
    /// Fan-out mode instead of echo: the connections subscribe to a chat room (URL
    /// ws://HOST/ws/chat/ROOM), to the STOMP topic /topic/fanout (URL ws://HOST/stomp), or
    /// just stay connected to a server that broadcasts what a client sends (raw), and one
    /// more connection publishes --rate messages/s of about --size bytes of JSON; reports
    /// deliveries, server CPU and bytes read from the socket per delivery, and the
    /// publish-to-delivery latency (p50, p99) (JSON).
    #[arg(long, value_enum, value_name = "KIND")]
    pub fanout: Option<FanoutKind>,
    /// Messages per second the fan-out publisher sends.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate: u32,
    /// Open the WebSockets over HTTP/2 (RFC 8441; h2c for ws://, ALPN h2 for wss://): each
    /// client thread opens one HTTP/2 connection and multiplexes its share of the WebSockets
    /// over it, so --threads is the number of TCP connections (each carries at most the
    /// server's SETTINGS_MAX_CONCURRENT_STREAMS at once: 100 for wsx).
    #[arg(long, conflicts_with = "fanout")]
    pub http2: bool,
}

/// Where the run is; the controller moves it forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Connections are opening.
    Connecting,
    /// Messages flow.
    Running,
    /// The window is over: finish the message in flight and close.
    Stopped,
}

/// What the controller and all connections share.
struct LoadState {
    client: ClientBuilder,
    /// Whether WebSockets go over one HTTP/2 connection per worker thread (`--http2`).
    http2: bool,
    payload: Message,
    phase: watch::Receiver<Phase>,
    /// Round trips completed since the start (the controller samples it at the window's edges).
    completed: AtomicU64,
    errors: AtomicU64,
    first_error: Mutex<Option<String>>,
    /// Connections open.
    connected: AtomicUsize,
    /// Connections that opened or failed to.
    settled: AtomicUsize,
    compressed: AtomicUsize,
    /// Whether round trips go into the latency histograms.
    measuring: AtomicBool,
    /// Whether connections should stop sending (checked before every message).
    stop: AtomicBool,
}

impl LoadState {
    fn error(&self, what: impl FnOnce() -> String) {
        if self.errors.fetch_add(1, Relaxed) == 0
            && let Ok(mut first) = self.first_error.lock()
        {
            first.get_or_insert_with(what);
        }
    }
}

/// Run `wsx bench` and return its exit status.
pub fn run(args: BenchArgs) -> ExitCode {
    // Print the report; the number of errors it counts.
    let outcome = match args.fanout {
        Some(kind) => fanout::run(&args, kind).map(|report| {
            println!("{report}");
            report["errors"].as_u64().unwrap_or(u64::MAX)
        }),
        None => bench(&args).map(|report| {
            if args.json {
                println!("{}", report.to_json());
            } else {
                print!("{}", report.to_text());
            }
            report.errors
        }),
    };
    match outcome {
        Ok(0) => Exit::Normal.into(),
        Ok(_) => Exit::Abnormal.into(),
        Err(msg) => {
            eprintln!("wsx bench: {msg}");
            Exit::Failure.into()
        }
    }
}

/// The payload: printable ASCII for text, a fixed pseudo-random sequence for binary.
fn payload(size: usize, binary: bool) -> Message {
    if binary {
        let mut x: u32 = 0x9e37_79b9;
        let bytes: Vec<u8> = (0..size)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x.to_le_bytes()[0]
            })
            .collect();
        Message::binary(bytes)
    } else {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let text: String = (0..size)
            .map(|i| char::from(ALPHABET[i % ALPHABET.len()]))
            .collect();
        Message::text(text)
    }
}

/// A copy of `msg` with its own buffer, so threads don't share one reference count.
fn deep_copy(msg: &Message) -> Message {
    match msg {
        Message::Binary(b) => Message::Binary(Bytes::copy_from_slice(b)),
        Message::Text(t) => Message::text(t.as_str()),
        other => other.clone(),
    }
}

/// A latency histogram in nanoseconds: 1 ns to 1 hour at 3 significant digits, allocated
/// once (about 350 KiB) so that recording never resizes it.
fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("constant, valid bounds")
}

fn bench(args: &BenchArgs) -> Result<Report, String> {
    let connections = args.connections as usize;
    let threads = (args.threads as usize).min(connections);
    let server = args.server_pid.map(Process::Pid);
    if let Some(pid) = args.server_pid
        && cpu::cpu_time(Process::Pid(pid)).is_none()
    {
        return Err(format!(
            "cannot read the CPU time of process {pid} in /proc"
        ));
    }
    let mut config = WebSocketConfig::default();
    if args.compression == OnOff::On {
        config = config.compression(DeflateConfig::default());
    }
    let (phase_tx, phase_rx) = watch::channel(Phase::Connecting);
    let shared = Arc::new(LoadState {
        client: ClientBuilder::new(args.url.clone()).config(config),
        http2: args.http2,
        payload: payload(args.size, args.binary),
        phase: phase_rx,
        completed: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        first_error: Mutex::new(None),
        connected: AtomicUsize::new(0),
        settled: AtomicUsize::new(0),
        compressed: AtomicUsize::new(0),
        measuring: AtomicBool::new(false),
        stop: AtomicBool::new(false),
    });

    let mut workers = Vec::with_capacity(threads);
    for t in 0..threads {
        let share = connections / threads + usize::from(t < connections % threads);
        let shared = Arc::clone(&shared);
        let handle = std::thread::Builder::new()
            .name(format!("wsx-bench-{t}"))
            .spawn(move || worker(&shared, share))
            .map_err(|e| format!("cannot start a thread: {e}"))?;
        workers.push(handle);
    }

    let progress = progress_bar(args, connections);
    // 1. Connect.
    loop {
        let settled = shared.settled.load(Relaxed);
        progress.set_message(format!(
            "{} of {connections} connected",
            shared.connected.load(Relaxed)
        ));
        if settled >= connections {
            break;
        }
        std::thread::sleep(TICK / 2);
    }
    let connected = shared.connected.load(Relaxed);
    if connected == 0 {
        let _ = phase_tx.send(Phase::Stopped);
        join(workers);
        progress.finish_and_clear();
        let why = shared
            .first_error
            .lock()
            .ok()
            .and_then(|e| e.clone())
            .unwrap_or_else(|| "unknown error".into());
        return Err(format!(
            "no connection to {} could be opened: {why}",
            args.url
        ));
    }

    // 2. Warm up, 3. measure.
    let _ = phase_tx.send(Phase::Running);
    let start = Instant::now();
    progress.set_prefix("warmup");
    wait_until(&shared, &progress, start, start + args.warmup);
    let self0 = cpu::cpu_time(Process::Current);
    let server0 = server.and_then(cpu::cpu_time);
    let count0 = shared.completed.load(Relaxed);
    let t0 = Instant::now();
    shared.measuring.store(true, Relaxed);
    progress.set_prefix("measure");
    wait_until(&shared, &progress, start, t0 + args.duration);
    shared.measuring.store(false, Relaxed);
    let count1 = shared.completed.load(Relaxed);
    let window = t0.elapsed();
    let self1 = cpu::cpu_time(Process::Current);
    let server1 = server.and_then(cpu::cpu_time);

    // 4. Stop, collect.
    shared.stop.store(true, Relaxed);
    let _ = phase_tx.send(Phase::Stopped);
    progress.set_prefix("closing");
    let hist = join(workers);
    progress.finish_and_clear();

    let messages = count1.saturating_sub(count0);
    let secs = window.as_secs_f64();
    let quantile = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    let first_error = shared.first_error.lock().ok().and_then(|e| e.clone());
    Ok(Report {
        url: args.url.clone(),
        connections,
        connected,
        compressed_connections: shared.compressed.load(Relaxed),
        threads,
        size: args.size,
        mode: if args.binary { "binary" } else { "text" },
        warmup_s: args.warmup.as_secs_f64(),
        duration_s: round(secs, 3),
        messages,
        msgs_per_sec: round(messages as f64 / secs.max(1e-9), 1),
        bytes: messages.saturating_mul(2).saturating_mul(args.size as u64),
        errors: shared.errors.load(Relaxed),
        first_error,
        latency_us: if hist.is_empty() {
            Latency::default()
        } else {
            Latency {
                p50: round(quantile(0.5), 1),
                p90: round(quantile(0.9), 1),
                p99: round(quantile(0.99), 1),
                max: round(hist.max() as f64 / 1000.0, 1),
            }
        },
        client_cpu_ns_per_msg: per_message(self0, self1, messages),
        server_pid: args.server_pid,
        server_cpu_ns_per_msg: per_message(server0, server1, messages),
        server_kernel_share: match (server0, server1) {
            (Some(a), Some(b)) => cpu::kernel_share(a, b).map(|s| round(s, 3)),
            _ => None,
        },
    })
}

fn round(x: f64, decimals: i32) -> f64 {
    let f = 10f64.powi(decimals);
    (x * f).round() / f
}

fn per_message(before: Option<CpuTime>, after: Option<CpuTime>, messages: u64) -> Option<f64> {
    let (before, after) = (before?, after?);
    if messages == 0 {
        return None;
    }
    Some(round(
        after.ns.saturating_sub(before.ns) as f64 / messages as f64,
        1,
    ))
}

fn progress_bar(args: &BenchArgs, connections: usize) -> ProgressBar {
    if args.json || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let total = (args.warmup + args.duration).as_millis();
    let bar = ProgressBar::with_draw_target(
        Some(u64::try_from(total).unwrap_or(u64::MAX)),
        ProgressDrawTarget::stderr(),
    );
    let style = ProgressStyle::with_template("{prefix:>8} [{bar:30}] {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix("connect");
    bar.set_message(format!("0 of {connections} connected"));
    bar
}

/// Sleep until `until`, updating the progress bar (time since `start`, current rate).
fn wait_until(shared: &LoadState, progress: &ProgressBar, start: Instant, until: Instant) {
    let mut last = (Instant::now(), shared.completed.load(Relaxed));
    loop {
        let now = Instant::now();
        if now >= until {
            return;
        }
        std::thread::sleep(TICK.min(until - now));
        let now = Instant::now();
        let count = shared.completed.load(Relaxed);
        let rate = (count - last.1) as f64 / (now - last.0).as_secs_f64().max(1e-9);
        last = (now, count);
        progress.set_position(u64::try_from((now - start).as_millis()).unwrap_or(u64::MAX));
        progress.set_message(format!(
            "{rate:>9.0} msg/s  {} errors",
            shared.errors.load(Relaxed)
        ));
    }
}

/// Wait for the worker threads and merge their histograms.
fn join(workers: Vec<std::thread::JoinHandle<Histogram<u64>>>) -> Histogram<u64> {
    let mut all = new_histogram();
    for w in workers {
        if let Ok(h) = w.join() {
            // Same bounds on both sides: adding cannot fail.
            let _ = all.add(&h);
        }
    }
    all
}

/// One worker thread: its share of the connections on a current-thread runtime.
fn worker(shared: &Arc<LoadState>, connections: usize) -> Histogram<u64> {
    let hist = Rc::new(RefCell::new(new_histogram()));
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            for _ in 0..connections {
                shared.error(|| format!("cannot start a runtime: {e}"));
                shared.settled.fetch_add(1, Relaxed);
            }
            return new_histogram();
        }
    };
    let local = LocalSet::new();
    local.block_on(&rt, async {
        let payload = deep_copy(&shared.payload);
        let http2 = if shared.http2 {
            match open_http2(shared).await {
                Ok(client) => Some(client),
                Err(e) => {
                    for _ in 0..connections {
                        shared.error(|| e.clone());
                        shared.settled.fetch_add(1, Relaxed);
                    }
                    return;
                }
            }
        } else {
            None
        };
        let mut tasks = JoinSet::new();
        for _ in 0..connections {
            tasks.spawn_local(connection(
                Arc::clone(shared),
                http2.clone(),
                payload.clone(),
                Rc::clone(&hist),
            ));
        }
        let mut phase = shared.phase.clone();
        let finished = tokio::select! {
            () = async { while tasks.join_next().await.is_some() {} } => true,
            () = async {
                let _ = phase.wait_for(|p| *p == Phase::Stopped).await;
                tokio::time::sleep(FINISH_GRACE).await;
            } => false,
        };
        if !finished {
            for _ in 0..tasks.len() {
                shared.error(|| {
                    format!("a connection did not finish within {FINISH_GRACE:?} of the end")
                });
            }
            tasks.abort_all();
        }
    });
    drop(local);
    hist.borrow().clone()
}

/// A worker's HTTP/2 connection (`--http2`), within [`CONNECT_TIMEOUT`].
async fn open_http2(shared: &LoadState) -> Result<Http2Client, String> {
    let limits = Http2Limits::default();
    let open = Http2Client::connect(&shared.client, &limits);
    match tokio::time::timeout(CONNECT_TIMEOUT, open).await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(e)) => Err(format!("connect (HTTP/2): {e}")),
        Err(_) => Err(format!(
            "connect (HTTP/2): no answer within {CONNECT_TIMEOUT:?}"
        )),
    }
}

/// One connection (a stream of the worker's HTTP/2 connection with `--http2`): open, then
/// [`load`].
async fn connection(
    shared: Arc<LoadState>,
    http2: Option<Http2Client>,
    payload: Message,
    hist: Rc<RefCell<Histogram<u64>>>,
) {
    match http2 {
        Some(client) => {
            let opened = client.open(shared.client.clone());
            if let Some(ws) = opened_in_time(&shared, opened).await {
                load(&shared, ws, &payload, &hist).await;
            }
        }
        None => {
            let opened = shared.client.clone().connect();
            if let Some(ws) = opened_in_time(&shared, opened).await {
                load(&shared, ws, &payload, &hist).await;
            }
        }
    }
}

/// The WebSocket `open` makes within [`CONNECT_TIMEOUT`]; `None` once the failure is counted.
async fn opened_in_time<S>(
    shared: &LoadState,
    open: impl Future<Output = wsx::Result<(WebSocket<S>, ClientResponse)>>,
) -> Option<WebSocket<S>> {
    let failure = match tokio::time::timeout(CONNECT_TIMEOUT, open).await {
        Ok(Ok((ws, _))) => return Some(ws),
        Ok(Err(e)) => format!("connect: {e}"),
        Err(_) => format!("connect: no answer within {CONNECT_TIMEOUT:?}"),
    };
    shared.error(|| failure);
    shared.settled.fetch_add(1, Relaxed);
    None
}

/// An open connection: wait for the start, ping-pong the payload until told to stop, close.
async fn load<S: AsyncRead + AsyncWrite + Unpin>(
    shared: &LoadState,
    mut ws: WebSocket<S>,
    payload: &Message,
    hist: &RefCell<Histogram<u64>>,
) {
    if ws.is_compressed() {
        shared.compressed.fetch_add(1, Relaxed);
    }
    shared.connected.fetch_add(1, Relaxed);
    shared.settled.fetch_add(1, Relaxed);
    let mut phase = shared.phase.clone();
    let running = match phase.wait_for(|p| *p != Phase::Connecting).await {
        Ok(p) => *p == Phase::Running,
        Err(_) => false,
    };
    if running && let Err(e) = ping_pong(shared, &mut ws, payload, hist).await {
        shared.error(|| e);
        return;
    }
    match tokio::time::timeout(FINISH_GRACE, ws.close(CloseCode::NORMAL, "")).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => shared.error(|| format!("close: {e}")),
        Err(_) => shared.error(|| "close: the server did not finish the close handshake".into()),
    }
}

/// Send, await the echo, compare, record; until `shared.stop`. An error that ends the
/// connection is returned; a wrong echo is counted and the loop goes on.
async fn ping_pong<S: AsyncRead + AsyncWrite + Unpin>(
    shared: &LoadState,
    ws: &mut WebSocket<S>,
    payload: &Message,
    hist: &RefCell<Histogram<u64>>,
) -> Result<(), String> {
    while !shared.stop.load(Relaxed) {
        let sent = Instant::now();
        ws.send(payload.clone())
            .await
            .map_err(|e| format!("send: {e}"))?;
        if !echo(ws, payload).await? {
            shared.error(|| "an echo differs from the message sent".into());
        }
        let ns = u64::try_from(sent.elapsed().as_nanos()).unwrap_or(u64::MAX);
        shared.completed.fetch_add(1, Relaxed);
        if shared.measuring.load(Relaxed) {
            hist.borrow_mut().saturating_record(ns);
        }
    }
    Ok(())
}

/// Wait for the next data message; whether it equals `sent` (same type, same bytes).
async fn echo<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocket<S>,
    sent: &Message,
) -> Result<bool, String> {
    loop {
        let msg = match ws.recv().await {
            Some(Ok(msg)) => msg,
            Some(Err(e)) => return Err(format!("receive: {e}")),
            None => return Err("the connection closed".into()),
        };
        return Ok(match (&msg, sent) {
            (Message::Text(got), Message::Text(want)) => got.as_bytes() == want.as_bytes(),
            (Message::Binary(got), Message::Binary(want)) => got == want,
            (Message::Ping(_) | Message::Pong(_), _) => continue,
            (Message::Close(frame), _) => {
                return Err(match frame {
                    Some(f) => format!("the server closed the connection: {} {}", f.code, f.reason),
                    None => "the server closed the connection".into(),
                });
            }
            _ => false,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads() {
        let t = payload(40, false);
        assert_eq!(t.payload().len(), 40);
        assert!(t.as_text().is_some());
        let b = payload(1000, true);
        assert_eq!(b.payload().len(), 1000);
        assert!(matches!(b, Message::Binary(_)));
        // Not constant: compression and masking see realistic bytes.
        assert!(b.payload().windows(2).any(|w| w[0] != w[1]));
        assert_eq!(deep_copy(&b), b);
        assert_eq!(payload(0, false).payload().len(), 0);
    }

    #[test]
    fn per_message_cpu() {
        let t = |ns| Some(CpuTime { ns, ticks: None });
        assert_eq!(per_message(t(1000), t(5000), 4), Some(1000.0));
        assert_eq!(per_message(t(1000), t(5000), 0), None);
        assert_eq!(per_message(None, t(5000), 4), None);
    }
}
