//! STOMP-over-WebSocket load: fan-out through a topic and work sharing through a queue, for
//! any broker that speaks STOMP 1.2 over WebSocket (`wsx serve`'s `/stomp`, RabbitMQ's
//! web-stomp `/ws`). Driven by `scripts/bench_stomp.sh`.
//!
//! ```text
//! stomp_load fanout --url URL [--url URL ...] [--subscribers 1000] [--size 100]
//!                   [--window 8 | --rate MSGS_PER_SEC] [options]
//! stomp_load queue  --url URL [--url URL ...] [--consumers 10] [--producers 1] [--size 100]
//!                   [--window 1000] [--ack client-individual|auto] [options]
//! options: [--duration 8] [--warmup 2] [--server-pid PID ...] [--aux-pid PID ...]
//!          [--login L --passcode P] [--vhost /] [--destination NAME] [--prefetch 256]
//!          [--connect-concurrency 50]
//! ```
//!
//! - `fanout`: N subscribers on `/topic/NAME` (auto ack), spread round-robin over the URLs
//!   (subscriber i connects to URL i mod #URLs), each SUBSCRIBE confirmed by a RECEIPT before
//!   the publisher starts. One publisher (on the first URL) sends either at a fixed `--rate`
//!   or as fast as the deliveries keep up: at most `--window` messages are in flight, a message
//!   counting as in flight until N deliveries' worth have arrived (published × N − delivered
//!   < window × N).
//! - `queue`: C consumers on `/queue/NAME` (ack mode `--ack`, client-individual by default:
//!   one ACK per MESSAGE; `prefetch-count` asks RabbitMQ for the same window of unacknowledged
//!   messages wsx uses), P producers spread over the URLs like the consumers, together keeping
//!   at most `--window` messages sent and not yet delivered.
//!
//! Every body starts with `SEQ TIMESTAMP ` (hex, the timestamp in nanoseconds on the client's
//! monotonic clock, taken just before the frame is written) and is padded with `x` to
//! `--size` bytes, so a receiver computes publish-to-delivery latency (into an HDR histogram)
//! and, on a topic, notices gaps in the sequence. Publisher and receivers are in the same
//! process, on one current-thread tokio runtime: pin it to a core of its own (taskset).
//!
//! After `--warmup` seconds the counters and the histogram restart and the CPU time of the
//! `--server-pid`s and `--aux-pid`s (utime + stime from `/proc/PID/stat`, all threads) is read;
//! after `--duration` more seconds it is read again and one JSON object is printed on stdout:
//! deliveries/s, latency percentiles, server CPU per delivery with and without the aux pids
//! (Redis, for wsx on Redis), the client's own CPU use (close to 1 s/s means the client, not the
//! broker, was the limit), errors and gaps.

use std::cell::{Cell, RefCell};
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use hdrhistogram::Histogram;
use tokio::sync::{Notify, Semaphore};
use tokio::task::LocalSet;
use wsx::{ClientBuilder, MaybeTlsStream, Message, Utf8Bytes, WebSocket};
use wsx_stomp::{Command, Decoder, Frame, Limits, Version};

type Ws = WebSocket<MaybeTlsStream>;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Fanout,
    Queue,
}

#[derive(Clone, Debug)]
struct Args {
    mode: Mode,
    urls: Vec<String>,
    receivers: usize,
    producers: usize,
    size: usize,
    window: usize,
    rate: Option<f64>,
    ack_client: bool,
    duration: f64,
    warmup: f64,
    server_pids: Vec<u32>,
    aux_pids: Vec<u32>,
    login: Option<String>,
    passcode: Option<String>,
    vhost: String,
    destination: Option<String>,
    prefetch: usize,
    connect_concurrency: usize,
}

const USAGE: &str = "usage: stomp_load fanout|queue --url URL [--url URL ...] \
[--subscribers N | --consumers N] [--producers N] [--size BYTES] [--window N] [--rate MSG/S] \
[--ack auto|client-individual] [--duration S] [--warmup S] [--server-pid PID ...] \
[--aux-pid PID ...] [--login L] [--passcode P] [--vhost V] [--destination NAME] \
[--prefetch N] [--connect-concurrency N]";

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mode = match it.next().as_deref() {
        Some("fanout") => Mode::Fanout,
        Some("queue") => Mode::Queue,
        _ => return Err(USAGE.into()),
    };
    let mut a = Args {
        mode,
        urls: Vec::new(),
        receivers: if mode == Mode::Fanout { 1000 } else { 10 },
        producers: 1,
        size: 100,
        window: if mode == Mode::Fanout { 8 } else { 1000 },
        rate: None,
        ack_client: mode == Mode::Queue,
        duration: 8.0,
        warmup: 2.0,
        server_pids: Vec::new(),
        aux_pids: Vec::new(),
        login: None,
        passcode: None,
        vhost: "/".into(),
        destination: None,
        prefetch: 256,
        connect_concurrency: 50,
    };
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        fn num<T: std::str::FromStr>(flag: &str, v: String) -> Result<T, String> {
            v.parse().map_err(|_| format!("bad value for {flag}: {v}"))
        }
        match flag.as_str() {
            "--url" => a.urls.push(val()?),
            "--subscribers" | "--consumers" => a.receivers = num(&flag, val()?)?,
            "--producers" => a.producers = num(&flag, val()?)?,
            "--size" => a.size = num(&flag, val()?)?,
            "--window" => a.window = num(&flag, val()?)?,
            "--rate" => a.rate = Some(num(&flag, val()?)?),
            "--ack" => {
                a.ack_client = match val()?.as_str() {
                    "auto" => false,
                    "client-individual" => true,
                    v => return Err(format!("--ack: auto or client-individual, not {v}")),
                }
            }
            "--duration" => a.duration = num(&flag, val()?)?,
            "--warmup" => a.warmup = num(&flag, val()?)?,
            "--server-pid" => a.server_pids.push(num(&flag, val()?)?),
            "--aux-pid" => a.aux_pids.push(num(&flag, val()?)?),
            "--login" => a.login = Some(val()?),
            "--passcode" => a.passcode = Some(val()?),
            "--vhost" => a.vhost = val()?,
            "--destination" => a.destination = Some(val()?),
            "--prefetch" => a.prefetch = num(&flag, val()?)?,
            "--connect-concurrency" => a.connect_concurrency = num(&flag, val()?)?,
            "-h" | "--help" => return Err(USAGE.into()),
            _ => return Err(format!("unknown option {flag}\n{USAGE}")),
        }
    }
    if a.urls.is_empty() {
        return Err(format!("--url is required\n{USAGE}"));
    }
    a.size = a.size.max(MIN_BODY);
    a.window = a.window.max(1);
    a.producers = a.producers.max(1);
    a.receivers = a.receivers.max(1);
    Ok(a)
}

/// `SEQ(16 hex) TS(16 hex) ` at the start of every body.
const MIN_BODY: usize = 34;

/// State shared by every task (one thread: `Cell`s).
struct Shared {
    base: Instant,
    /// Deliveries since the start (warm-up included).
    deliveries: Cell<u64>,
    /// Messages published since the start.
    published: Cell<u64>,
    /// Wake the publishers once `deliveries` reaches this.
    wake_at: Cell<u64>,
    progress: Notify,
    hist: RefCell<Histogram<u64>>,
    errors: Cell<u64>,
    /// Topic: sequence numbers skipped (messages a subscriber never got).
    gaps: Cell<u64>,
    /// Subscribers that lost their connection.
    closed: Cell<u64>,
    /// Times a publisher's wait for the window timed out (100 ms without progress).
    stalls: Cell<u64>,
    first_error: RefCell<Option<String>>,
    stop: Cell<bool>,
}

impl Shared {
    fn now_ns(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }

    fn error(&self, what: String) {
        self.errors.set(self.errors.get() + 1);
        let mut first = self.first_error.borrow_mut();
        if first.is_none() {
            eprintln!("stomp_load: {what}");
            *first = Some(what);
        }
    }

    fn delivered(&self) {
        let d = self.deliveries.get() + 1;
        self.deliveries.set(d);
        if d >= self.wake_at.get() {
            self.wake_at.set(u64::MAX);
            self.progress.notify_waiters();
        }
    }
}

fn text(bytes: Bytes) -> Message {
    match Utf8Bytes::try_from(bytes) {
        Ok(t) => Message::Text(t),
        Err(_) => unreachable!("the frames this client writes are ASCII"),
    }
}

fn encode(frame: &Frame) -> Message {
    text(frame.encode(Version::V1_2).expect("encodable frame"))
}

/// Read frames until one arrives; errors on ERROR frames and closed connections.
async fn next_frame(ws: &mut Ws, dec: &mut Decoder) -> Result<Frame, String> {
    loop {
        if let Some(f) = dec.poll_frame().map_err(|e| format!("decode: {e}"))? {
            if f.command == Command::Error {
                return Err(format!(
                    "ERROR frame: {} {}",
                    f.header("message").unwrap_or(""),
                    String::from_utf8_lossy(&f.body)
                ));
            }
            return Ok(f);
        }
        match ws.recv().await {
            Some(Ok(m)) if m.is_data() => dec.feed(m.payload()),
            Some(Ok(Message::Close(c))) => return Err(format!("closed by the server: {c:?}")),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(format!("websocket: {e}")),
            None => return Err("connection closed".into()),
        }
    }
}

/// Open a WebSocket to `url`, CONNECT, wait for CONNECTED.
async fn stomp_connect(args: &Args, url: &str) -> Result<(Ws, Decoder), String> {
    let (mut ws, _) = ClientBuilder::new(url)
        .subprotocol("v12.stomp")
        .connect_timeout(Duration::from_secs(20))
        .connect()
        .await
        .map_err(|e| format!("connect {url}: {e}"))?;
    let mut f = Frame::new(Command::Connect)
        .with_header("accept-version", "1.2")
        .with_header("host", args.vhost.clone())
        .with_header("heart-beat", "0,0");
    if let Some(l) = &args.login {
        f = f.with_header("login", l.clone());
    }
    if let Some(p) = &args.passcode {
        f = f.with_header("passcode", p.clone());
    }
    ws.send(encode(&f))
        .await
        .map_err(|e| format!("send CONNECT: {e}"))?;
    let mut dec = Decoder::new(Limits::default());
    let reply = next_frame(&mut ws, &mut dec).await?;
    if reply.command != Command::Connected {
        return Err(format!(
            "expected CONNECTED, got {}",
            reply.command.as_str()
        ));
    }
    dec.set_version(Version::V1_2);
    Ok((ws, dec))
}

/// SUBSCRIBE with a receipt and wait for it.
async fn subscribe(args: &Args, ws: &mut Ws, dec: &mut Decoder, dest: &str) -> Result<(), String> {
    let ack = if args.ack_client && args.mode == Mode::Queue {
        "client-individual"
    } else {
        "auto"
    };
    let mut f = Frame::new(Command::Subscribe)
        .with_header("id", "0")
        .with_header("destination", dest)
        .with_header("ack", ack)
        .with_header("receipt", "sub-0");
    if ack != "auto" {
        f = f.with_header("prefetch-count", args.prefetch.to_string());
    }
    ws.send(encode(&f))
        .await
        .map_err(|e| format!("send SUBSCRIBE: {e}"))?;
    loop {
        let r = next_frame(ws, dec).await?;
        match r.command {
            Command::Receipt => return Ok(()),
            // A message from an earlier run still in the queue: ignore it.
            Command::Message => {}
            c => return Err(format!("expected RECEIPT, got {}", c.as_str())),
        }
    }
}

fn hex16(buf: &mut BytesMut, v: u64) {
    const H: &[u8; 16] = b"0123456789abcdef";
    for i in (0..16).rev() {
        buf.put_u8(H[((v >> (i * 4)) & 0xf) as usize]);
    }
}

fn parse_hex16(b: &[u8]) -> Option<u64> {
    if b.len() < 16 {
        return None;
    }
    let mut v = 0u64;
    for &c in &b[..16] {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => return None,
        };
        v = (v << 4) | d as u64;
    }
    Some(v)
}

/// The SEND frame for message `seq`, stamped now.
fn send_frame(shared: &Shared, dest_line: &[u8], seq: u64, size: usize) -> Message {
    let mut b = BytesMut::with_capacity(size + dest_line.len() + 48);
    b.put_slice(b"SEND\n");
    b.put_slice(dest_line);
    b.put_slice(b"content-length:");
    b.put_slice(size.to_string().as_bytes());
    b.put_slice(b"\n\n");
    hex16(&mut b, seq);
    b.put_u8(b' ');
    hex16(&mut b, shared.now_ns());
    b.put_u8(b' ');
    b.put_bytes(b'x', size - MIN_BODY);
    b.put_u8(0);
    text(b.freeze())
}

/// One receiver: count and time every MESSAGE; ACK it in a client ack mode.
async fn receive(shared: Rc<Shared>, mut ws: Ws, mut dec: Decoder, ack: bool, topic: bool) {
    let mut last_seq: Option<u64> = None;
    loop {
        let msg = match ws.recv().await {
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                if !shared.stop.get() {
                    shared.closed.set(shared.closed.get() + 1);
                    shared.error(format!("receiver: {e}"));
                }
                return;
            }
            None => {
                if !shared.stop.get() {
                    shared.closed.set(shared.closed.get() + 1);
                    shared.error("receiver: connection closed".into());
                }
                return;
            }
        };
        if !msg.is_data() {
            continue;
        }
        dec.feed(msg.payload());
        loop {
            let frame = match dec.poll_frame() {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    shared.error(format!("receiver decode: {e}"));
                    return;
                }
            };
            match frame.command {
                Command::Message => {
                    let now = shared.now_ns();
                    let body = &frame.body[..];
                    match (parse_hex16(body), body.get(17..).and_then(parse_hex16)) {
                        (Some(seq), Some(ts)) => {
                            let _ = shared
                                .hist
                                .borrow_mut()
                                .record(now.saturating_sub(ts).max(1));
                            if topic {
                                if let Some(l) = last_seq
                                    && seq > l + 1
                                {
                                    shared.gaps.set(shared.gaps.get() + (seq - l - 1));
                                }
                                last_seq = Some(seq);
                            }
                        }
                        _ => shared.error("a MESSAGE body without a sequence/timestamp".into()),
                    }
                    if ack {
                        if let Some(id) = frame.header("ack") {
                            let f = Frame::new(Command::Ack).with_header("id", id);
                            // Queued; written by the next recv() with everything else queued.
                            if let Err(e) = ws.feed(encode(&f)) {
                                shared.error(format!("ACK: {e}"));
                                return;
                            }
                        } else {
                            shared.error("MESSAGE without an ack header".into());
                        }
                    }
                    shared.delivered();
                }
                Command::Error => {
                    shared.error(format!(
                        "ERROR frame to a receiver: {}",
                        frame.header("message").unwrap_or("")
                    ));
                    return;
                }
                _ => {}
            }
        }
    }
}

/// A publisher/producer: `share` of the messages, window-limited or at `rate` msg/s.
async fn publish(shared: Rc<Shared>, args: Rc<Args>, mut ws: Ws, dest: String, rate: Option<f64>) {
    let dest_line = format!("destination:{dest}\n").into_bytes();
    // Deliveries per message: N subscribers on a topic, one consumer on a queue.
    let per_msg = if args.mode == Mode::Fanout {
        args.receivers as u64
    } else {
        1
    };
    let window = args.window as u64;
    let mut ticker = rate.map(|r| {
        let mut t = tokio::time::interval(Duration::from_secs_f64(1.0 / r));
        // A constant schedule: a late tick is made up for at once (no coordinated omission).
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        t
    });
    while !shared.stop.get() {
        if let Some(t) = ticker.as_mut() {
            t.tick().await;
        }
        // Room in the window? (published − delivered/per_msg < window)
        let mut room = 0u64;
        loop {
            let p = shared.published.get();
            let done = shared.deliveries.get() / per_msg;
            let in_flight = p.saturating_sub(done);
            if in_flight < window {
                room = window - in_flight;
                break;
            }
            if shared.stop.get() {
                break;
            }
            // Wake when one more message's deliveries are in.
            let target = (p - window + 1) * per_msg;
            let notified = shared.progress.notified();
            shared.wake_at.set(shared.wake_at.get().min(target));
            // A lost subscriber would stall the window: never wait more than 100 ms.
            let _ = tokio::time::timeout(Duration::from_millis(100), notified).await;
            if shared.deliveries.get() < target && !shared.stop.get() {
                // Timed out: let one through.
                shared.stalls.set(shared.stalls.get() + 1);
                room = 1;
                break;
            }
        }
        if shared.stop.get() {
            break;
        }
        let n = if ticker.is_some() { 1 } else { room.min(64) };
        for _ in 0..n {
            let seq = shared.published.get();
            shared.published.set(seq + 1);
            if let Err(e) = ws.feed(send_frame(&shared, &dest_line, seq, args.size)) {
                shared.error(format!("publisher: {e}"));
                return;
            }
        }
        if let Err(e) = ws.flush().await {
            shared.error(format!("publisher: {e}"));
            return;
        }
    }
}

/// utime + stime of `pid` in seconds (all threads), from /proc/PID/stat.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of stat(5); `rest` starts at field 3.
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / clock_ticks())
}

fn clock_ticks() -> f64 {
    // sysconf(_SC_CLK_TCK) is 100 on every Linux configuration in use; `getconf` confirms it.
    static TCK: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TCK.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

fn self_cpu() -> f64 {
    cpu_seconds(std::process::id()).unwrap_or(0.0)
}

fn sum_cpu(pids: &[u32]) -> f64 {
    pids.iter().filter_map(|&p| cpu_seconds(p)).sum()
}

async fn run(args: Args) -> Result<serde_json::Value, String> {
    let args = Rc::new(args);
    let shared = Rc::new(Shared {
        base: Instant::now(),
        deliveries: Cell::new(0),
        published: Cell::new(0),
        wake_at: Cell::new(u64::MAX),
        progress: Notify::new(),
        hist: RefCell::new(Histogram::new_with_bounds(1, 120_000_000_000, 3).unwrap()),
        errors: Cell::new(0),
        gaps: Cell::new(0),
        closed: Cell::new(0),
        stalls: Cell::new(0),
        first_error: RefCell::new(None),
        stop: Cell::new(false),
    });
    let name = args.destination.clone().unwrap_or_else(|| {
        format!(
            "wsxbench-{}-{}",
            std::process::id(),
            shared.base.elapsed().as_nanos() % 1000
        )
    });
    let dest = match args.mode {
        Mode::Fanout => format!("/topic/{name}"),
        Mode::Queue => format!("/queue/{name}"),
    };

    // Receivers: connect and subscribe, a bounded number at a time.
    let setup_start = Instant::now();
    let sem = Rc::new(Semaphore::new(args.connect_concurrency.max(1)));
    let mut setups = Vec::with_capacity(args.receivers);
    for i in 0..args.receivers {
        let (args, sem, dest) = (args.clone(), sem.clone(), dest.clone());
        let url = args.urls[i % args.urls.len()].clone();
        setups.push(tokio::task::spawn_local(async move {
            let _permit = sem.acquire().await.unwrap();
            let (mut ws, mut dec) = stomp_connect(&args, &url).await?;
            subscribe(&args, &mut ws, &mut dec, &dest).await?;
            Ok::<_, String>((ws, dec))
        }));
    }
    let ack = args.mode == Mode::Queue && args.ack_client;
    let topic = args.mode == Mode::Fanout;
    for s in setups {
        let (ws, dec) = s.await.map_err(|e| e.to_string())??;
        tokio::task::spawn_local(receive(shared.clone(), ws, dec, ack, topic));
    }
    let setup_s = setup_start.elapsed().as_secs_f64();

    // Publishers.
    let producers = if args.mode == Mode::Fanout {
        1
    } else {
        args.producers
    };
    for i in 0..producers {
        let url = &args.urls[i % args.urls.len()];
        let (ws, dec) = stomp_connect(&args, url).await?;
        drop(dec);
        let rate = args.rate.map(|r| r / producers as f64);
        tokio::task::spawn_local(publish(
            shared.clone(),
            args.clone(),
            ws,
            dest.clone(),
            rate,
        ));
    }

    // Warm-up, then the measured window.
    tokio::time::sleep(Duration::from_secs_f64(args.warmup)).await;
    shared.hist.borrow_mut().reset();
    let s0 = shared.stalls.get();
    let (d0, p0, g0, e0) = (
        shared.deliveries.get(),
        shared.published.get(),
        shared.gaps.get(),
        shared.errors.get(),
    );
    let (srv0, aux0, me0) = (
        sum_cpu(&args.server_pids),
        sum_cpu(&args.aux_pids),
        self_cpu(),
    );
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(args.duration)).await;
    let elapsed = t0.elapsed().as_secs_f64();
    let (srv1, aux1, me1) = (
        sum_cpu(&args.server_pids),
        sum_cpu(&args.aux_pids),
        self_cpu(),
    );
    let deliveries = shared.deliveries.get() - d0;
    let published = shared.published.get() - p0;
    shared.stop.set(true);
    shared.progress.notify_waiters();

    let hist = shared.hist.borrow();
    let us = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    let server_cpu = srv1 - srv0;
    let aux_cpu = aux1 - aux0;
    let per = |cpu: f64| {
        if deliveries > 0 && (!args.server_pids.is_empty() || !args.aux_pids.is_empty()) {
            serde_json::json!(cpu * 1e6 / deliveries as f64)
        } else {
            serde_json::Value::Null
        }
    };
    Ok(serde_json::json!({
        "mode": if args.mode == Mode::Fanout { "fanout" } else { "queue" },
        "urls": args.urls,
        "destination": dest,
        "receivers": args.receivers,
        "producers": producers,
        "size": args.size,
        "window": args.window,
        "rate": args.rate,
        "ack": if ack { "client-individual" } else { "auto" },
        "setup_s": setup_s,
        "warmup_s": args.warmup,
        "duration_s": elapsed,
        "published": published,
        "deliveries": deliveries,
        "deliveries_per_sec": deliveries as f64 / elapsed,
        "published_per_sec": published as f64 / elapsed,
        "latency_us": {
            "p50": us(0.5), "p90": us(0.9), "p99": us(0.99), "p999": us(0.999),
            "max": hist.max() as f64 / 1000.0, "mean": hist.mean() / 1000.0,
            "count": hist.len(),
        },
        "server_pids": args.server_pids,
        "aux_pids": args.aux_pids,
        "server_cpu_s": server_cpu,
        "aux_cpu_s": aux_cpu,
        "cpu_us_per_delivery": per(server_cpu + aux_cpu),
        "cpu_us_per_delivery_without_aux": per(server_cpu),
        "server_cpu_util": (server_cpu + aux_cpu) / elapsed,
        "client_cpu_util": (me1 - me0) / elapsed,
        "gaps": shared.gaps.get() - g0,
        "window_stalls": shared.stalls.get() - s0,
        "errors": shared.errors.get() - e0,
        "errors_total": shared.errors.get(),
        "receivers_lost": shared.closed.get(),
        "first_error": shared.first_error.borrow().clone(),
    }))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let local = LocalSet::new();
    let out = local.block_on(&rt, run(args));
    match out {
        Ok(v) => {
            println!("{v}");
            // Do not wait for a thousand close handshakes: the brokers see the sockets reset.
            std::process::exit(0);
        }
        Err(e) => {
            eprintln!("stomp_load: {e}");
            std::process::exit(1);
        }
    }
}
