//! `wsx serve`'s connect-time limits: allowed origins, connection limit, handshake timeout,
//! header size, keepalive and idle timeout — the real binary, real sockets.

mod common;

use std::time::Duration;

use common::{Server, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wsx::{ClientBuilder, CloseCode, Message};

async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(WAIT, f).await.expect("timed out")
}

fn refusal_status(err: &wsx::Error) -> u16 {
    match err.as_handshake() {
        Some(wsx::HandshakeError::Rejected { status, .. }) => *status,
        other => panic!("not a refusal: {other:?} ({err})"),
    }
}

#[tokio::test]
async fn cross_origin_websockets_are_refused_with_403() {
    let server = Server::start(&["--allowed-origin", "https://chat.example"]);
    let url = server.ws_url("/ws/echo");
    let err = ClientBuilder::new(&url)
        .origin("https://evil.example")
        .connect()
        .await
        .unwrap_err();
    assert_eq!(refusal_status(&err), 403);
    let err = ClientBuilder::new(&url).connect().await.unwrap_err();
    assert_eq!(refusal_status(&err), 403);
    let (mut ws, _) = ClientBuilder::new(&url)
        .origin("https://chat.example")
        .connect()
        .await
        .unwrap();
    ws.send(Message::text("hi")).await.unwrap();
    assert_eq!(
        within(ws.recv()).await.unwrap().unwrap(),
        Message::text("hi")
    );
}

#[tokio::test]
async fn connections_past_the_limit_get_503() {
    let server = Server::start(&["--max-connections", "1"]);
    let (mut first, _) = wsx::connect(&server.ws_url("/ws/echo")).await.unwrap();
    let err = wsx::connect(&server.ws_url("/ws/echo")).await.unwrap_err();
    assert_eq!(refusal_status(&err), 503);
    first.send(Message::text("still fine")).await.unwrap();
    assert_eq!(
        within(first.recv()).await.unwrap().unwrap(),
        Message::text("still fine")
    );
}

#[tokio::test]
async fn slowloris_gets_408() {
    let server = Server::start(&["--handshake-timeout", "1"]);
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"GET /ws/echo HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut resp = Vec::new();
    within(tcp.read_to_end(&mut resp)).await.unwrap();
    assert!(
        resp.starts_with(b"HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&resp)
    );
}

#[tokio::test]
async fn oversized_heads_get_431() {
    let server = Server::start(&["--max-header-bytes", "2048"]);
    let err = ClientBuilder::new(server.ws_url("/ws/echo"))
        .header("X-Filler", "x".repeat(4096))
        .connect()
        .await
        .unwrap_err();
    assert_eq!(refusal_status(&err), 431);
}

#[tokio::test]
async fn pings_are_sent_after_silence() {
    let server = Server::start(&["--ping-interval", "1"]);
    let (mut ws, _) = wsx::connect(&server.ws_url("/ws/echo")).await.unwrap();
    // The client answers the ping by itself; a second one proves the pong was accepted.
    for _ in 0..2 {
        let msg = within(ws.recv()).await.unwrap().unwrap();
        assert!(matches!(msg, Message::Ping(_)), "{msg:?}");
    }
    ws.send(Message::text("alive")).await.unwrap();
    assert_eq!(
        within(ws.recv()).await.unwrap().unwrap(),
        Message::text("alive")
    );
}

#[tokio::test]
async fn idle_websockets_are_closed_with_1001() {
    let server = Server::start(&["--idle-timeout", "1"]);
    let (mut ws, _) = wsx::connect(&server.ws_url("/ws/echo")).await.unwrap();
    let started = std::time::Instant::now();
    match within(ws.recv()).await.unwrap().unwrap() {
        Message::Close(Some(f)) => {
            assert_eq!(f.code, CloseCode::GOING_AWAY);
            assert_eq!(f.reason.as_str(), "idle timeout");
        }
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[tokio::test]
async fn connections_past_the_limit_are_refused_at_accept() {
    let server = Server::start(&["--max-connections", "1", "--handshake-timeout", "5"]);
    let (mut first, _) = wsx::connect(&server.ws_url("/ws/echo")).await.unwrap();
    // Nothing sent: the refusal comes without the server waiting for a request.
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    let mut resp = Vec::new();
    tokio::time::timeout(Duration::from_secs(2), tcp.read_to_end(&mut resp))
        .await
        .expect("refused at once, not after the handshake timeout")
        .unwrap();
    assert!(
        resp.starts_with(b"HTTP/1.1 503"),
        "{}",
        String::from_utf8_lossy(&resp)
    );
    first.send(Message::text("still fine")).await.unwrap();
    assert_eq!(
        within(first.recv()).await.unwrap().unwrap(),
        Message::text("still fine")
    );
}
