//! Keepalive pings, pong and idle timeouts, and the backpressure policies, over real sockets.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wsx::{Backpressure, ClientBuilder, CloseCode, Message, WebSocketConfig};

const HANDSHAKE: &str = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .expect("timed out")
}

/// A server running `config`, whose single connection's outcome is returned by the handle.
async fn server_with(
    config: WebSocketConfig,
) -> (
    std::net::SocketAddr,
    tokio::task::JoinHandle<Vec<Result<Message, String>>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = wsx::accept_with(tcp, &config, |_| Ok(wsx::Accept::default()))
            .await
            .unwrap();
        let mut seen = Vec::new();
        while let Some(m) = ws.recv().await {
            let failed = m.is_err();
            seen.push(m.map_err(|e| e.to_string()));
            if failed {
                break;
            }
            if let Some(Ok(msg)) = seen.last()
                && msg.is_data()
            {
                ws.send(msg.clone()).await.unwrap();
            }
        }
        seen
    });
    (addr, handle)
}

#[tokio::test]
async fn unanswered_pings_fail_the_connection_with_1011() {
    let config =
        WebSocketConfig::default().keepalive(Duration::from_millis(50), Duration::from_millis(200));
    let (addr, server) = server_with(config).await;
    // A raw peer that completes the handshake and then never answers.
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(HANDSHAKE.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    within(tcp.read_to_end(&mut got)).await.unwrap();
    let seen = within(server).await.unwrap();
    assert!(
        matches!(seen.last(), Some(Err(e)) if e.contains("pong")),
        "{seen:?}"
    );
    let frames = &got[got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4..];
    assert_eq!(frames[0], 0x89, "a ping first");
    let close_at = frames
        .iter()
        .position(|&b| b == 0x88)
        .expect("a close frame");
    assert_eq!(
        u16::from_be_bytes([frames[close_at + 2], frames[close_at + 3]]),
        1011
    );
}

#[tokio::test]
async fn answered_pings_keep_the_connection_alive() {
    let config =
        WebSocketConfig::default().keepalive(Duration::from_millis(30), Duration::from_millis(500));
    let (addr, server) = server_with(config).await;
    let (mut ws, _) = wsx::connect(&format!("ws://{addr}/")).await.unwrap();
    let mut pings = 0;
    while pings < 5 {
        match within(ws.recv()).await.unwrap().unwrap() {
            Message::Ping(_) => pings += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    ws.send(Message::text("still here")).await.unwrap();
    let mut echo = within(ws.recv()).await.unwrap().unwrap();
    while let Message::Ping(_) = echo {
        echo = within(ws.recv()).await.unwrap().unwrap();
    }
    assert_eq!(echo, Message::text("still here"));
    ws.close(CloseCode::NORMAL, "").await.unwrap();
    let seen = within(server).await.unwrap();
    assert!(
        seen.iter()
            .filter(|m| matches!(m, Ok(Message::Pong(_))))
            .count()
            >= 5
    );
}

#[tokio::test]
async fn idle_connections_are_closed_with_1001() {
    let (addr, server) =
        server_with(WebSocketConfig::default().idle_timeout(Duration::from_millis(200))).await;
    let (mut ws, _) = wsx::connect(&format!("ws://{addr}/")).await.unwrap();
    let msg = within(ws.recv()).await.unwrap().unwrap();
    match msg {
        Message::Close(Some(f)) => {
            assert_eq!(f.code, CloseCode::GOING_AWAY);
            assert_eq!(f.reason.as_str(), "idle timeout");
        }
        other => panic!("unexpected {other:?}"),
    }
    let seen = within(server).await.unwrap();
    assert!(
        matches!(seen.last(), Some(Err(e)) if e.contains("idle")),
        "{seen:?}"
    );
}

/// A server that completes the handshake and then never reads.
async fn non_reading_server() -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let (req, _) = wsx::read_request(&mut tcp, 16384).await.unwrap();
        let key = req.header_str("sec-websocket-key").unwrap().to_string();
        let mut resp = Vec::new();
        wsx_proto::handshake::AcceptResponse::new(&key, None, None, &[]).encode(&mut resp);
        tcp.write_all(&resp).await.unwrap();
        let _ = stopped.await;
        drop(tcp);
    });
    (addr, stop)
}

fn big() -> Message {
    Message::binary(vec![7u8; 256 * 1024])
}

#[tokio::test]
async fn fail_policy_refuses_when_the_peer_does_not_read() {
    let (addr, _stop) = non_reading_server().await;
    let config = WebSocketConfig::default().backpressure(1 << 20, Backpressure::Fail);
    let (mut ws, _) = ClientBuilder::new(format!("ws://{addr}/"))
        .config(config)
        .connect()
        .await
        .unwrap();
    let mut queued = 0usize;
    let err = loop {
        match ws.feed(big()) {
            Ok(()) => queued += 1,
            Err(e) => break e,
        }
        // Let the kernel take what it will; it stops taking once the peer's window is full.
        let _ = tokio::time::timeout(Duration::from_millis(20), ws.flush()).await;
        assert!(queued < 10_000, "the buffer never filled");
    };
    assert!(matches!(err, wsx::Error::BufferFull), "{err}");
    assert!(ws.buffered_amount() >= 1 << 20);
    assert!(ws.buffered_amount() < (1 << 20) + 256 * 1024 + 64);
}

#[tokio::test]
async fn close_policy_ends_the_connection() {
    let (addr, _stop) = non_reading_server().await;
    let config = WebSocketConfig::default()
        .backpressure(1 << 20, Backpressure::Close(CloseCode::TRY_AGAIN_LATER))
        .close_timeout(Duration::from_millis(200));
    let (mut ws, _) = ClientBuilder::new(format!("ws://{addr}/"))
        .config(config)
        .connect()
        .await
        .unwrap();
    loop {
        match ws.feed(big()) {
            Ok(()) => {
                let _ = tokio::time::timeout(Duration::from_millis(20), ws.flush()).await;
            }
            Err(e) => {
                assert!(matches!(e, wsx::Error::BufferFull));
                break;
            }
        }
    }
    assert!(ws.connection().is_close_sent());
    assert!(matches!(
        ws.send(Message::text("more")).await,
        Err(wsx::Error::Closed | wsx::Error::BufferFull)
    ));
    // The close deadline drops the connection although the peer never answers.
    let end = within(ws.recv()).await;
    assert!(end.is_none() || matches!(end, Some(Err(_))), "{end:?}");
}

#[tokio::test]
async fn wait_policy_makes_send_wait() {
    let (addr, _stop) = non_reading_server().await;
    let config = WebSocketConfig::default().backpressure(1 << 20, Backpressure::Wait);
    let (mut ws, _) = ClientBuilder::new(format!("ws://{addr}/"))
        .config(config)
        .connect()
        .await
        .unwrap();
    let mut waited = false;
    for _ in 0..10_000 {
        if tokio::time::timeout(Duration::from_millis(100), ws.send(big()))
            .await
            .is_err()
        {
            waited = true;
            break;
        }
    }
    assert!(waited, "send never waited for a peer that does not read");
}

#[tokio::test]
async fn the_close_deadline_ends_a_close_the_peer_never_answers() {
    let (addr, _stop) = non_reading_server().await;
    let config = WebSocketConfig::default().close_timeout(Duration::from_millis(300));
    let (mut ws, _) = ClientBuilder::new(format!("ws://{addr}/"))
        .config(config)
        .connect()
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let end = within(ws.close(CloseCode::NORMAL, "bye")).await;
    let took = started.elapsed();
    assert!(
        matches!(end, Err(wsx::Error::Timeout(why)) if why.contains("close frame")),
        "{end:?}"
    );
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert!(ws.recv().await.is_none());
}
