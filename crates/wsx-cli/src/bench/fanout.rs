//! `wsx bench --fanout chat|stomp|raw URL`: broadcast fan-out load, for the server's cost per
//! delivered message (with and without permessage-deflate) and the publish-to-delivery
//! latency.
//!
//! Where it sits: [`super::run`] calls [`run`] instead of the echo load when `--fanout` is
//! given. The flow of a run:
//!
//! 1. `--connections` subscribers open (offering permessage-deflate with `--compression on`)
//!    over sockets that count the bytes they read, and join the chat room of the URL
//!    (`/ws/chat/ROOM`) or subscribe to `/topic/fanout` (`/stomp`), or just stay connected
//!    (`raw`: a server that broadcasts every message a client sends to all its clients, such as
//!    the peers' fan-out servers in bench/); each reads everything and counts the broadcast
//!    messages it gets (chat `message` events, STOMP `MESSAGE` frames, any text message).
//! 2. One publisher (no deflate) opens and publishes `--rate` messages per second of about
//!    `--size` bytes of JSON quotes (different numbers in each message, and `sent_us`: when it
//!    was sent, in µs from the run's start), as chat messages, STOMP SENDs or plain text.
//! 3. After the warmup the controller samples the server's CPU time (`--server-pid`, from
//!    `/proc`), the deliveries, the bytes the subscribers read from their sockets (frame
//!    headers and payloads as sent: compressed or not) and the payload bytes they decoded;
//!    again after the measured window. The report divides by the deliveries of the window, and
//!    gives the median and 99th percentile of the latency (delivery time − `sent_us`) of the
//!    deliveries in the window.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use clap::ValueEnum;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use wsx::{ClientBuilder, DeflateConfig, Message, WebSocket, WebSocketConfig, WsUrl};

use super::cpu::{self, Process};
use super::{BenchArgs, round};
use crate::connect::OnOff;

/// How long all subscribers may take to open and join.
const SETUP_TIMEOUT: Duration = Duration::from_secs(120);
/// Subscribers opening at once.
const CONNECT_CONCURRENCY: usize = 64;

/// What the subscribers receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FanoutKind {
    /// A `wsx serve` chat room (`ws://HOST/ws/chat/ROOM`).
    Chat,
    /// A STOMP topic, `/topic/fanout` (`ws://HOST/stomp`).
    Stomp,
    /// Any server that sends every text message a client sends to all its clients.
    Raw,
}

impl FanoutKind {
    fn name(self) -> &'static str {
        match self {
            FanoutKind::Chat => "chat",
            FanoutKind::Stomp => "stomp",
            FanoutKind::Raw => "raw",
        }
    }
}

/// Latency samples kept at most (deliveries past it in the window are not sampled).
const MAX_LATENCY_SAMPLES: usize = 2_000_000;

/// What the run counts; shared by every task.
#[derive(Default)]
struct Counts {
    deliveries: AtomicU64,
    wire_bytes: AtomicU64,
    payload_bytes: AtomicU64,
    published: AtomicU64,
    ready: AtomicUsize,
    failed: AtomicUsize,
    compressed: AtomicUsize,
    errors: AtomicU64,
    first_error: Mutex<Option<String>>,
    /// When the run started: `sent_us` counts from here.
    epoch: Option<Instant>,
    /// Whether the measured window is on (latencies are sampled).
    measuring: std::sync::atomic::AtomicBool,
    /// Publish-to-delivery latencies in the window, µs.
    latencies: Mutex<Vec<u32>>,
}

impl Counts {
    fn error(&self, what: String) {
        if self.errors.fetch_add(1, Relaxed) == 0
            && let Ok(mut first) = self.first_error.lock()
        {
            first.get_or_insert(what);
        }
    }

    /// µs since the run's start.
    fn now_us(&self) -> u64 {
        self.epoch.map_or(0, |e| {
            u64::try_from(e.elapsed().as_micros()).unwrap_or(u64::MAX)
        })
    }

    /// A delivery of a message whose text holds `sent_us:N` (JSON or chat text).
    fn delivered(&self, text: &str) {
        if !self.measuring.load(Relaxed) {
            return;
        }
        let Some(at) = text.find("sent_us") else {
            return;
        };
        let digits: String = text[at + 7..]
            .chars()
            .skip_while(|c| !c.is_ascii_digit())
            .take_while(char::is_ascii_digit)
            .collect();
        if let Ok(sent) = digits.parse::<u64>()
            && let Ok(mut samples) = self.latencies.lock()
            && samples.len() < MAX_LATENCY_SAMPLES
        {
            let latency = self.now_us().saturating_sub(sent);
            samples.push(u32::try_from(latency).unwrap_or(u32::MAX));
        }
    }

    fn sample(&self) -> [u64; 4] {
        [
            self.deliveries.load(Relaxed),
            self.wire_bytes.load(Relaxed),
            self.payload_bytes.load(Relaxed),
            self.published.load(Relaxed),
        ]
    }
}

/// A TCP stream that adds the bytes it reads to a counter.
struct CountingStream {
    inner: TcpStream,
    counts: Arc<Counts>,
}

impl AsyncRead for CountingStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = buf.filled().len().saturating_sub(before);
        self.counts.wire_bytes.fetch_add(read as u64, Relaxed);
        polled
    }
}

impl AsyncWrite for CountingStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

type Ws = WebSocket<CountingStream>;

/// Run the fan-out load and return its report (a JSON object).
pub(super) fn run(args: &BenchArgs, kind: FanoutKind) -> Result<serde_json::Value, String> {
    if let Some(pid) = args.server_pid
        && cpu::cpu_time(Process::Pid(pid)).is_none()
    {
        return Err(format!(
            "cannot read the CPU time of process {pid} in /proc"
        ));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads as usize)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    let report = rt.block_on(fanout(args, kind));
    rt.shutdown_timeout(Duration::from_secs(1));
    report
}

async fn fanout(args: &BenchArgs, kind: FanoutKind) -> Result<serde_json::Value, String> {
    let subscribers = args.connections as usize;
    let counts = Arc::new(Counts {
        epoch: Some(Instant::now()),
        ..Counts::default()
    });
    let deflate = args.compression == OnOff::On;
    let gate = Arc::new(tokio::sync::Semaphore::new(CONNECT_CONCURRENCY));
    let mut tasks = JoinSet::new();
    for i in 0..subscribers {
        let (url, counts, gate) = (args.url.clone(), counts.clone(), gate.clone());
        tasks.spawn(async move {
            let permit = gate.acquire_owned().await;
            let joined = match open(&url, deflate, &counts).await {
                Ok(mut ws) => join(&mut ws, kind, &format!("s{i}")).await.map(|()| ws),
                Err(e) => Err(e),
            };
            drop(permit);
            match joined {
                Ok(ws) => {
                    counts.ready.fetch_add(1, Relaxed);
                    subscribe_loop(ws, kind, &counts).await;
                }
                Err(e) => {
                    counts.failed.fetch_add(1, Relaxed);
                    counts.error(e);
                }
            }
        });
    }
    let setup = Instant::now();
    while counts.ready.load(Relaxed) + counts.failed.load(Relaxed) < subscribers {
        if setup.elapsed() > SETUP_TIMEOUT {
            return Err(format!(
                "only {} of {subscribers} subscribers ready after {SETUP_TIMEOUT:?}",
                counts.ready.load(Relaxed)
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ready = counts.ready.load(Relaxed);
    if ready == 0 {
        let why = counts.first_error.lock().ok().and_then(|e| e.clone());
        return Err(format!("no subscriber could join: {why:?}"));
    }

    let mut publisher = open(&args.url, false, &counts).await?;
    join(&mut publisher, kind, "publisher").await?;
    let rate = args.rate.max(1);
    let size = args.size;
    let publishing = {
        let counts = counts.clone();
        tokio::spawn(async move { publish_loop(publisher, kind, rate, size, &counts).await })
    };

    tokio::time::sleep(args.warmup).await;
    let server = args.server_pid.map(Process::Pid);
    let cpu0 = server.and_then(cpu::cpu_time);
    let before = counts.sample();
    counts.measuring.store(true, Relaxed);
    let t0 = Instant::now();
    tokio::time::sleep(args.duration).await;
    counts.measuring.store(false, Relaxed);
    let after = counts.sample();
    let cpu1 = server.and_then(cpu::cpu_time);
    let window = t0.elapsed().as_secs_f64();
    publishing.abort();
    tasks.abort_all();

    let [deliveries, wire, payload, published] =
        [0, 1, 2, 3].map(|i| after[i].saturating_sub(before[i]));
    let per = |x: u64| {
        if deliveries == 0 {
            None
        } else {
            Some(round(x as f64 / deliveries as f64, 1))
        }
    };
    let cpu_ns = match (cpu0, cpu1) {
        (Some(a), Some(b)) => per(b.ns.saturating_sub(a.ns)),
        _ => None,
    };
    let first_error = counts.first_error.lock().ok().and_then(|e| e.clone());
    let (p50, p99) = counts
        .latencies
        .lock()
        .map(|mut l| percentiles(&mut l))
        .unwrap_or_default();
    Ok(json!({
        "mode": "fanout",
        "kind": kind.name(),
        "url": args.url,
        "subscribers": subscribers,
        "ready": ready,
        "compressed_connections": counts.compressed.load(Relaxed),
        "rate": rate,
        "size": size,
        "warmup_s": args.warmup.as_secs_f64(),
        "duration_s": round(window, 3),
        "published": published,
        "deliveries": deliveries,
        "expected_deliveries": published * ready as u64,
        "deliveries_per_sec": round(deliveries as f64 / window.max(1e-9), 1),
        "server_pid": args.server_pid,
        "server_cpu_ns_per_delivery": cpu_ns,
        "wire_bytes_per_delivery": per(wire),
        "payload_bytes_per_delivery": per(payload),
        "latency_p50_us": p50,
        "latency_p99_us": p99,
        "errors": counts.errors.load(Relaxed),
        "first_error": first_error,
    }))
}

/// Open a WebSocket to `url` over a counting socket.
async fn open(url: &str, deflate: bool, counts: &Arc<Counts>) -> Result<Ws, String> {
    let parsed = WsUrl::parse(url).map_err(|e| format!("{url}: {e}"))?;
    let tcp = TcpStream::connect((parsed.host.as_str(), parsed.port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let io = CountingStream {
        inner: tcp,
        counts: counts.clone(),
    };
    let mut config = WebSocketConfig::default().max_message_size(16 << 20);
    if deflate {
        config = config.compression(DeflateConfig::default());
    }
    let mut builder = ClientBuilder::new(url).config(config);
    if url.contains("/stomp") {
        builder = builder.subprotocol("v12.stomp");
    }
    let (ws, _) = builder
        .connect_on(io)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    if ws.is_compressed() {
        counts.compressed.fetch_add(1, Relaxed);
    }
    Ok(ws)
}

/// Join the room (until the welcome) or connect and subscribe (until the receipt).
async fn join(ws: &mut Ws, kind: FanoutKind, name: &str) -> Result<(), String> {
    let (requests, until) = match kind {
        FanoutKind::Chat => (
            vec![json!({"type": "join", "name": name}).to_string()],
            "{\"type\":\"welcome\"",
        ),
        FanoutKind::Stomp if name == "publisher" => (
            vec!["CONNECT\naccept-version:1.2\nhost:localhost\n\n\0".to_owned()],
            "CONNECTED",
        ),
        FanoutKind::Stomp => (
            vec![
                "CONNECT\naccept-version:1.2\nhost:localhost\n\n\0".to_owned(),
                format!("SUBSCRIBE\nid:{name}\ndestination:/topic/fanout\nreceipt:r\n\n\0"),
            ],
            "RECEIPT",
        ),
        // Connected is joined.
        FanoutKind::Raw => return Ok(()),
    };
    for r in requests {
        ws.send(Message::text(r))
            .await
            .map_err(|e| format!("send: {e}"))?;
    }
    loop {
        match tokio::time::timeout(SETUP_TIMEOUT, ws.recv()).await {
            Ok(Some(Ok(Message::Text(t)))) if t.starts_with(until) => return Ok(()),
            Ok(Some(Ok(Message::Text(t)))) if t.starts_with("ERROR") => {
                return Err(format!("the server refused: {}", t.as_str()));
            }
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => return Err(format!("receive: {e}")),
            Ok(None) => return Err("closed while joining".into()),
            Err(_) => return Err("no answer while joining".into()),
        }
    }
}

/// Read everything, counting the broadcast messages and their payload bytes.
async fn subscribe_loop(mut ws: Ws, kind: FanoutKind, counts: &Counts) {
    while let Some(msg) = ws.recv().await {
        match msg {
            Ok(Message::Text(t)) => {
                let broadcast = match kind {
                    FanoutKind::Chat => t.starts_with("{\"type\":\"message\""),
                    FanoutKind::Stomp => t.starts_with("MESSAGE\n"),
                    FanoutKind::Raw => true,
                };
                if broadcast {
                    counts.deliveries.fetch_add(1, Relaxed);
                    counts.payload_bytes.fetch_add(t.len() as u64, Relaxed);
                    counts.delivered(&t);
                }
            }
            Ok(_) => {}
            Err(e) => {
                counts.error(format!("subscriber: {e}"));
                return;
            }
        }
    }
}

/// Publish `rate` messages per second (reading and dropping what comes back).
async fn publish_loop(mut ws: Ws, kind: FanoutKind, rate: u32, size: usize, counts: &Counts) {
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut seq: u64 = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                seq += 1;
                let sent = counts.now_us();
                let msg = match kind {
                    FanoutKind::Chat => json!({"type": "message", "text": quote_text(seq, sent, size)}).to_string(),
                    FanoutKind::Stomp => format!(
                        "SEND\ndestination:/topic/fanout\ncontent-type:application/json\n\n{}\0",
                        quotes_json(seq, sent, size)
                    ),
                    FanoutKind::Raw => quotes_json(seq, sent, size),
                };
                if let Err(e) = ws.send(Message::text(msg)).await {
                    counts.error(format!("publisher: {e}"));
                    return;
                }
                counts.published.fetch_add(1, Relaxed);
            }
            msg = ws.recv() => match msg {
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    counts.error(format!("publisher: {e}"));
                    return;
                }
                None => return,
            },
        }
    }
}

/// A deterministic pseudo-random sequence for the quote figures.
fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

/// One quote: symbol, bid, ask, volume and time, different numbers for each message.
fn quote(rng: &mut u64, i: usize, seq: u64) -> serde_json::Value {
    let mid = 10_000 + xorshift(rng) % 90_000;
    json!({
        "symbol": format!("SYM{:02}", i % 50),
        "bid": mid as f64 / 100.0,
        "ask": (mid + 1 + xorshift(rng) % 9) as f64 / 100.0,
        "volume": xorshift(rng) % 1_000_000,
        "ts": 1_760_000_000_000 + seq * 50 + i as u64,
    })
}

/// The median and 99th percentile of `samples` (sorted here), µs.
fn percentiles(samples: &mut [u32]) -> (Option<u32>, Option<u32>) {
    if samples.is_empty() {
        return (None, None);
    }
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    (Some(at(0.5)), Some(at(0.99)))
}

/// At most about `size` bytes of JSON: `{"seq":N,"sent_us":T,"quotes":[…]}`.
fn quotes_json(seq: u64, sent_us: u64, size: usize) -> String {
    let mut rng = seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut quotes = Vec::new();
    let mut len = 40;
    loop {
        let q = quote(&mut rng, quotes.len(), seq);
        len += q.to_string().len() + 1;
        if len > size && !quotes.is_empty() {
            break;
        }
        quotes.push(q);
    }
    json!({"seq": seq, "sent_us": sent_us, "quotes": quotes}).to_string()
}

/// Chat text whose `message` event is about `size` bytes: the same quotes, written without
/// JSON's quotes (which would be escaped in the event).
fn quote_text(seq: u64, sent_us: u64, size: usize) -> String {
    let json = quotes_json(seq, sent_us, (size * 7 / 6).saturating_sub(80));
    json.replace('"', "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_are_json_of_about_the_size_and_differ() {
        let a = quotes_json(1, 123_456, 1024);
        let v: serde_json::Value = serde_json::from_str(&a).expect("JSON");
        assert!(v["quotes"].as_array().is_some_and(|q| q.len() > 5));
        assert!((900..=1024).contains(&a.len()), "{}", a.len());
        assert_ne!(a, quotes_json(2, 123_456, 1024));
        assert_eq!(v["sent_us"], 123_456);
        let event = json!({"type": "message", "name": "publisher", "text": quote_text(1, 123_456, 1024), "ts": 1_760_000_000_000_u64});
        let len = event.to_string().len();
        assert!((900..1100).contains(&len), "{len}");
    }

    #[test]
    fn latencies_are_read_from_json_and_chat_text() {
        let counts = Counts {
            epoch: Some(Instant::now()),
            ..Counts::default()
        };
        counts.delivered(&quotes_json(1, 0, 200));
        counts.measuring.store(true, Relaxed);
        counts.delivered(&quotes_json(1, 0, 200));
        counts.delivered(&quote_text(2, 0, 200));
        counts.delivered("no timestamp");
        let mut samples = counts.latencies.lock().unwrap().clone();
        assert_eq!(samples.len(), 2, "only in the window, only with sent_us");
        assert!(percentiles(&mut samples).1.is_some());
        assert_eq!(percentiles(&mut [5, 1, 3]), (Some(3), Some(5)));
    }
}
