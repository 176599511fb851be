//! Connection benchmarks that `wsx bench` does not cover: idle memory per connection and the
//! connection set-up rate.
//!
//! ```text
//! idle_clients HOST:PORT --connections N [--deflate] [--concurrency C] --server-pid PID
//! idle_clients HOST:PORT --connections N --http2 PER_CONN [--deflate] --server-pid PID
//! idle_clients HOST:PORT --churn SECS [--deflate] [--concurrency C] --server-pid PID
//! ```
//!
//! Idle mode samples the server's RSS, opens N connections (C handshakes in flight at a time),
//! waits for the server's RSS to settle, samples it again and prints one JSON line with the
//! difference per connection, then closes everything and exits. Churn mode opens fresh TCP
//! connections for SECS seconds, each doing one opening handshake and then dropping the
//! socket with a reset (no TIME_WAIT), and prints handshakes per second and the server's CPU
//! time per handshake.
//!
//! With `--http2 PER_CONN`, idle mode opens the N WebSockets over HTTP/2 (h2c with prior
//! knowledge, RFC 8441: the wsx client), PER_CONN of them per connection, so that the figure
//! is the server's memory per WebSocket over HTTP/2 (its connections' share included).
//!
//! The HTTP/1.1 client is a bare-bones upgrade written straight to the socket (with
//! `Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits` under `--deflate`),
//! so it measures the server and nothing of a client library.

use std::process::ExitCode;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::LocalSet;
use wsx_bench::proc;

/// How long one connection may take to open and finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest response head accepted.
const MAX_RESPONSE: usize = 8 * 1024;

struct Args {
    addr: String,
    connections: usize,
    churn: Option<Duration>,
    deflate: bool,
    concurrency: usize,
    server_pid: u32,
    /// `--http2 PER_CONN`: WebSockets per HTTP/2 connection.
    http2: Option<usize>,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut addr = None;
    let mut connections = 10_000;
    let mut churn = None;
    let mut deflate = false;
    let mut concurrency = 64;
    let mut server_pid = None;
    let mut http2 = None;
    fn value<T: std::str::FromStr>(
        it: &mut impl Iterator<Item = String>,
        flag: &str,
    ) -> Result<T, String> {
        it.next()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("{flag} needs a number"))
    }
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--connections" => connections = value(&mut it, "--connections")?,
            "--churn" => churn = Some(Duration::from_secs_f64(value(&mut it, "--churn")?)),
            "--deflate" => deflate = true,
            "--concurrency" => concurrency = value(&mut it, "--concurrency")?,
            "--server-pid" => server_pid = Some(value(&mut it, "--server-pid")?),
            "--http2" => http2 = Some(value::<usize>(&mut it, "--http2")?.max(1)),
            _ if addr.is_none() && !arg.starts_with('-') => {
                addr = Some(
                    arg.trim_start_matches("ws://")
                        .trim_end_matches('/')
                        .to_string(),
                )
            }
            _ => return Err(format!("unexpected argument {arg:?}")),
        }
    }
    Ok(Args {
        addr: addr.ok_or("missing HOST:PORT")?,
        connections,
        churn,
        deflate,
        concurrency: concurrency.max(1),
        server_pid: server_pid.ok_or("missing --server-pid")?,
        http2,
    })
}

/// The upgrade request, the same for every connection.
fn request(addr: &str, deflate: bool) -> Vec<u8> {
    let mut r = format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    );
    if deflate {
        r.push_str("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n");
    }
    r.push_str("\r\n");
    r.into_bytes()
}

/// Open one connection and complete the opening handshake; returns the stream and whether
/// permessage-deflate was accepted.
async fn open(addr: &str, request: &[u8]) -> Result<(TcpStream, bool), String> {
    let mut tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    tcp.write_all(request)
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 512];
    loop {
        let n = tcp.read(&mut buf).await.map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("closed during handshake".into());
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            let text = String::from_utf8_lossy(&head[..end]).to_ascii_lowercase();
            if !text.starts_with("http/1.1 101") {
                let line = text.lines().next().unwrap_or_default().to_string();
                return Err(format!("not upgraded: {line}"));
            }
            return Ok((tcp, text.contains("permessage-deflate")));
        }
        if head.len() > MAX_RESPONSE {
            return Err("response head too long".into());
        }
    }
}

#[derive(Serialize)]
struct IdleReport {
    connections: usize,
    opened: usize,
    failed: usize,
    first_error: Option<String>,
    deflate_offered: bool,
    deflate_negotiated: usize,
    open_secs: f64,
    handshakes_per_sec: f64,
    server_rss_before: u64,
    server_rss_after: u64,
    rss_per_connection: f64,
    /// HTTP/2 connections carrying the WebSockets (`--http2`), else absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    http2_connections: Option<usize>,
}

#[derive(Serialize)]
struct ChurnReport {
    duration_s: f64,
    handshakes: u64,
    failed: u64,
    first_error: Option<String>,
    deflate_offered: bool,
    deflate_negotiated: u64,
    concurrency: usize,
    handshakes_per_sec: f64,
    server_cpu_ns_per_handshake: Option<f64>,
}

/// Poll the server's RSS until two samples 200 ms apart agree (at most 5 s).
async fn settled_rss(pid: u32) -> std::io::Result<u64> {
    let mut last = proc::rss_bytes(pid)?;
    for _ in 0..25 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = proc::rss_bytes(pid)?;
        if now == last {
            break;
        }
        last = now;
    }
    Ok(last)
}

async fn idle(args: Args) -> Result<String, String> {
    if let Some(per_connection) = args.http2 {
        return idle_http2(args, per_connection).await;
    }
    let pid = args.server_pid;
    let before = settled_rss(pid).await.map_err(|e| e.to_string())?;
    let request = Rc::new(request(&args.addr, args.deflate));
    let addr = Rc::new(args.addr.clone());
    let start = Instant::now();
    let mut held = Vec::with_capacity(args.connections);
    let mut failed = 0;
    let mut negotiated = 0;
    let mut first_error = None;
    let mut set = tokio::task::JoinSet::new();
    let mut launched = 0;
    while launched < args.connections || !set.is_empty() {
        while launched < args.connections && set.len() < args.concurrency {
            let (addr, request) = (addr.clone(), request.clone());
            set.spawn_local(async move {
                tokio::time::timeout(HANDSHAKE_TIMEOUT, open(&addr, &request))
                    .await
                    .unwrap_or_else(|_| Err("handshake timed out".into()))
            });
            launched += 1;
        }
        match set.join_next().await {
            Some(Ok(Ok((tcp, deflate)))) => {
                negotiated += usize::from(deflate);
                held.push(tcp);
            }
            Some(Ok(Err(e))) => {
                failed += 1;
                first_error.get_or_insert(e);
            }
            Some(Err(e)) => {
                failed += 1;
                first_error.get_or_insert(e.to_string());
            }
            None => {}
        }
    }
    let opened = Opened {
        count: held.len(),
        failed,
        negotiated,
        first_error,
        http2_connections: None,
    };
    let report = opened.report(&args, before, start).await;
    drop(held);
    report
}

/// What an idle run opened, before the server's RSS is sampled again.
struct Opened {
    count: usize,
    failed: usize,
    negotiated: usize,
    first_error: Option<String>,
    http2_connections: Option<usize>,
}

impl Opened {
    /// Sample the server's RSS once it settled, and report (while the caller still holds the
    /// connections).
    async fn report(self, args: &Args, before: u64, start: Instant) -> Result<String, String> {
        let open_secs = start.elapsed().as_secs_f64();
        let after = settled_rss(args.server_pid)
            .await
            .map_err(|e| e.to_string())?;
        let report = IdleReport {
            connections: args.connections,
            opened: self.count,
            failed: self.failed,
            first_error: self.first_error,
            deflate_offered: args.deflate,
            deflate_negotiated: self.negotiated,
            open_secs,
            handshakes_per_sec: self.count as f64 / open_secs.max(1e-9),
            server_rss_before: before,
            server_rss_after: after,
            rss_per_connection: (after as f64 - before as f64) / (self.count.max(1) as f64),
            http2_connections: self.http2_connections,
        };
        serde_json::to_string(&report).map_err(|e| e.to_string())
    }
}

/// Idle mode over HTTP/2: `per_connection` WebSockets on each h2c connection, opened one
/// connection at a time (its WebSockets `concurrency` at a time).
async fn idle_http2(args: Args, per_connection: usize) -> Result<String, String> {
    use wsx::http2::{Http2Client, Http2Limits};
    use wsx::{ClientBuilder, DeflateConfig, WebSocketConfig};

    let pid = args.server_pid;
    let before = settled_rss(pid).await.map_err(|e| e.to_string())?;
    let url = format!("ws://{}/", args.addr);
    let mut config = WebSocketConfig::default();
    if args.deflate {
        config = config.compression(DeflateConfig::default());
    }
    let builder = ClientBuilder::new(url)
        .config(config)
        .connect_timeout(HANDSHAKE_TIMEOUT);
    let start = Instant::now();
    let (mut clients, mut held) = (Vec::new(), Vec::with_capacity(args.connections));
    let (mut failed, mut negotiated, mut first_error) = (0, 0, None);
    while held.len() + failed < args.connections {
        let client = Http2Client::connect(&builder, &Http2Limits::default())
            .await
            .map_err(|e| format!("HTTP/2 connection: {e}"))?;
        let want = per_connection.min(args.connections - held.len() - failed);
        let mut set = tokio::task::JoinSet::new();
        let mut launched = 0;
        while launched < want || !set.is_empty() {
            while launched < want && set.len() < args.concurrency {
                let (client, builder) = (client.clone(), builder.clone());
                set.spawn_local(async move { client.open(builder).await });
                launched += 1;
            }
            match set.join_next().await {
                Some(Ok(Ok((ws, _)))) => {
                    negotiated += usize::from(ws.is_compressed());
                    held.push(ws);
                }
                Some(Ok(Err(e))) => {
                    failed += 1;
                    first_error.get_or_insert(e.to_string());
                }
                Some(Err(e)) => {
                    failed += 1;
                    first_error.get_or_insert(e.to_string());
                }
                None => {}
            }
        }
        clients.push(client);
    }
    let opened = Opened {
        count: held.len(),
        failed,
        negotiated,
        first_error,
        http2_connections: Some(clients.len()),
    };
    let report = opened.report(&args, before, start).await;
    drop(held);
    drop(clients);
    report
}

async fn churn(args: Args, window: Duration) -> Result<String, String> {
    let pid = args.server_pid;
    let request = Rc::new(request(&args.addr, args.deflate));
    let addr = Rc::new(args.addr.clone());
    let stop = Rc::new(AtomicBool::new(false));
    let done = Rc::new(AtomicU64::new(0));
    let failed = Rc::new(AtomicU64::new(0));
    let negotiated = Rc::new(AtomicU64::new(0));
    let first_error = Rc::new(std::cell::RefCell::new(None::<String>));
    let cpu_before = proc::cpu_ns(pid).ok();
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..args.concurrency {
        let (addr, request, stop) = (addr.clone(), request.clone(), stop.clone());
        let (done, failed, negotiated) = (done.clone(), failed.clone(), negotiated.clone());
        let first_error = first_error.clone();
        set.spawn_local(async move {
            while !stop.load(Relaxed) {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, open(&addr, &request)).await {
                    Ok(Ok((tcp, deflate))) => {
                        done.fetch_add(1, Relaxed);
                        negotiated.fetch_add(u64::from(deflate), Relaxed);
                        // Reset rather than close: no TIME_WAIT piling up on either side.
                        let _ = tcp.set_zero_linger();
                        drop(tcp);
                    }
                    Ok(Err(e)) => {
                        failed.fetch_add(1, Relaxed);
                        first_error.borrow_mut().get_or_insert(e);
                    }
                    Err(_) => {
                        failed.fetch_add(1, Relaxed);
                        first_error
                            .borrow_mut()
                            .get_or_insert_with(|| "handshake timed out".into());
                    }
                }
            }
        });
    }
    tokio::time::sleep(window).await;
    stop.store(true, Relaxed);
    let handshakes = done.load(Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    let cpu_after = proc::cpu_ns(pid).ok();
    while set.join_next().await.is_some() {}
    let server_cpu = match (cpu_before, cpu_after) {
        (Some(a), Some(b)) if handshakes > 0 => Some((b - a) as f64 / handshakes as f64),
        _ => None,
    };
    let report = ChurnReport {
        duration_s: elapsed,
        handshakes,
        failed: failed.load(Relaxed),
        first_error: first_error.borrow().clone(),
        deflate_offered: args.deflate,
        deflate_negotiated: negotiated.load(Relaxed),
        concurrency: args.concurrency,
        handshakes_per_sec: handshakes as f64 / elapsed.max(1e-9),
        server_cpu_ns_per_handshake: server_cpu,
    };
    serde_json::to_string(&report).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("idle_clients: {e}");
            return ExitCode::from(1);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("idle_clients: {e}");
            return ExitCode::from(1);
        }
    };
    let result = LocalSet::new().block_on(&rt, async move {
        match args.churn {
            Some(window) => churn(args, window).await,
            None => idle(args).await,
        }
    });
    match result {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("idle_clients: {e}");
            ExitCode::from(1)
        }
    }
}
