//! One output budget per connection (`WebSocketConfig::max_write_buffer`), over real sockets:
//! a raw client with a 4 KiB receive buffer that never reads floods pings, or data messages to
//! an echo server; the server's queued output stays bounded, the idle timeout still drops the
//! client, and another client is still served.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;
use wsx::{Accept, ClientBuilder, Message, WebSocketConfig};

const HANDSHAKE: &str = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/// The output budget the test servers run with.
const BUDGET: usize = 64 * 1024;

/// What the test server saw, over all its connections.
#[derive(Default)]
struct Seen {
    /// The most output queued on one connection, checked after every message.
    max_buffered: AtomicUsize,
    /// Pings received.
    pings: AtomicUsize,
}

/// An echo server that queues echoes with `feed` (written by the next `recv`), as a server
/// answering its peer does; each connection's outcome goes to the channel.
async fn echo_server(
    config: WebSocketConfig,
) -> (
    SocketAddr,
    Arc<Seen>,
    mpsc::UnboundedReceiver<Result<(), String>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    let stats = seen.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (config, seen, done) = (config.clone(), stats.clone(), done_tx.clone());
            tokio::spawn(async move {
                let mut ws = wsx::accept_with(tcp, &config, |_| Ok(Accept::default()))
                    .await
                    .unwrap();
                let outcome = loop {
                    match ws.recv().await {
                        None => break Ok(()),
                        Some(Err(e)) => break Err(e.to_string()),
                        Some(Ok(msg)) => {
                            if matches!(msg, Message::Ping(_)) {
                                seen.pings.fetch_add(1, Ordering::Relaxed);
                            }
                            if msg.is_data()
                                && let Err(e) = ws.feed(msg)
                            {
                                break Err(e.to_string());
                            }
                            seen.max_buffered
                                .fetch_max(ws.buffered_amount(), Ordering::Relaxed);
                        }
                    }
                };
                let _ = done.send(outcome);
            });
        }
    });
    (addr, seen, done_rx)
}

/// A raw client with a 4 KiB receive buffer that sends the handshake and never reads.
async fn never_reading_client(addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut tcp = socket.connect(addr).await.unwrap();
    tcp.write_all(HANDSHAKE.as_bytes()).await.unwrap();
    tcp
}

/// A masked client frame.
fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let key = [0x37, 0xfa, 0x21, 0x3d];
    let mut out = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n <= 0xffff => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&key);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    out
}

/// Write `chunk` over and over, `times` times at most, until a write does not complete within
/// `stall` (the server stopped reading); returns how many chunks were written.
async fn flood(tcp: &mut TcpStream, chunk: &[u8], times: usize, stall: Duration) -> usize {
    for i in 0..times {
        match tokio::time::timeout(stall, tcp.write_all(chunk)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("flood write failed: {e}"),
            Err(_) => return i,
        }
    }
    times
}

/// Poll `cond` until it holds or `limit` passes.
async fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cond()
}

/// A well-behaved client gets its echo.
async fn assert_served(addr: SocketAddr) {
    let (mut ws, _) = ClientBuilder::new(format!("ws://{addr}/"))
        .connect()
        .await
        .unwrap();
    ws.send(Message::text("still served")).await.unwrap();
    let echo = tokio::time::timeout(Duration::from_secs(10), ws.recv())
        .await
        .expect("echo in time")
        .unwrap()
        .unwrap();
    assert_eq!(echo, Message::text("still served"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_flood_from_a_client_that_never_reads_queues_one_pong() {
    let config = WebSocketConfig::default().backpressure(BUDGET, wsx::Backpressure::Wait);
    let (addr, seen, _done) = echo_server(config).await;
    let mut tcp = never_reading_client(addr).await;

    // 64 pings of 125 bytes per write, 16 MiB of pings in all (answered one by one, they
    // would be 16 MiB of pongs).
    let batch: Vec<u8> = (0..64)
        .flat_map(|_| client_frame(0x9, &[b'p'; 125]))
        .collect();
    let batches = (16 << 20) / batch.len();
    let sent = flood(&mut tcp, &batch, batches, Duration::from_secs(5)).await;
    assert_eq!(sent, batches, "the server keeps reading pings");
    let pings = sent * 64;
    assert!(
        eventually(Duration::from_secs(30), || seen
            .pings
            .load(Ordering::Relaxed)
            == pings)
        .await,
        "{} of {pings} pings received",
        seen.pings.load(Ordering::Relaxed)
    );
    let max = seen.max_buffered.load(Ordering::Relaxed);
    assert!(
        max <= wsx_proto::PONG_COALESCE_AT + 2 * 127,
        "queued output reached {max} bytes"
    );
    assert_served(addr).await;
    drop(tcp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_echo_flood_from_a_client_that_never_reads_stops_at_the_budget() {
    let config = WebSocketConfig::default()
        .backpressure(BUDGET, wsx::Backpressure::Wait)
        .idle_timeout(Duration::from_secs(1))
        .close_timeout(Duration::from_millis(500));
    let (addr, seen, mut done) = echo_server(config).await;
    let mut tcp = never_reading_client(addr).await;

    // 1 KiB messages, 64 MiB in all if the server took them.
    let message = client_frame(0x2, &[b'e'; 1024]);
    let batch: Vec<u8> = message.repeat(16);
    let batches = (64 << 20) / batch.len();
    let sent = flood(&mut tcp, &batch, batches, Duration::from_millis(500)).await;
    assert!(sent < batches, "the server stopped reading");
    let max = seen.max_buffered.load(Ordering::Relaxed);
    assert!(
        max <= BUDGET + message.len(),
        "queued output reached {max} bytes (budget {BUDGET})"
    );

    // While it does not read, the server still drops a client that sends nothing it reads
    // for the idle timeout (the close frame cannot be written: the close timeout ends it).
    let outcome = tokio::time::timeout(Duration::from_secs(10), done.recv())
        .await
        .expect("the connection ends")
        .unwrap();
    assert!(
        matches!(&outcome, Err(e) if e.contains("timed out") || e.contains("idle") || e.contains("close")),
        "{outcome:?}"
    );
    assert_served(addr).await;
    drop(tcp);
}
