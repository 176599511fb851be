//! Chat under hostile input, against the real `wsx serve`: a raw-socket client that floods
//! one-byte invalid messages and never reads must not grow the server (each is answered with an
//! `error` event, which counts against the connection's output budget: the server stops reading
//! it while the output is full), and a burst of joins costs the members present one `join`
//! event each, never the whole presence list.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use wsx::{Message, WebSocket};

use common::{Server, WAIT};

type Ws = WebSocket<wsx::MaybeTlsStream>;

/// A TCP connection with a 4 KiB receive buffer, upgraded to a WebSocket on `path` by hand.
async fn raw_websocket(addr: SocketAddr, path: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let mut stream = socket.connect(addr).await.expect("connect");
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        let n = tokio::time::timeout(WAIT, stream.read(&mut byte))
            .await
            .expect("handshake answer in time")
            .expect("read");
        assert_eq!(n, 1, "closed during the handshake");
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    stream
}

/// Skip JSON events until one of type `ty`.
async fn until(ws: &mut Ws, ty: &str) -> Value {
    loop {
        let event = next_json(ws).await;
        if event["type"] == ty {
            return event;
        }
    }
}

async fn next_json(ws: &mut Ws) -> Value {
    serde_json::from_str(&common::next_text(ws).await).expect("JSON")
}

async fn join(server: &Server, room: &str, name: &str) -> Ws {
    join_url(server.ws_url(&format!("/ws/chat/{room}")), name.to_owned()).await
}

async fn join_url(url: String, name: String) -> Ws {
    let (mut ws, _) = wsx::connect(&url).await.expect("connect to the chat");
    let join = json!({"type": "join", "name": name}).to_string();
    ws.send(Message::text(join)).await.expect("send");
    let welcome = next_json(&mut ws).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    ws
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_messages_never_read_do_not_grow_the_server() {
    /// Input sent at most (each 7-byte frame is answered with an ~80-byte error event).
    const MAX_INPUT: usize = 24 << 20;
    const MAX_GROWTH: u64 = 64 << 20;
    let server = Server::start(&[]);
    let mut other = join(&server, "calm", "other").await;
    let before = server.rss_kib() * 1024;

    let mut flood = raw_websocket(server.addr, "/ws/chat/flood").await;
    // Masked (with a zero key) one-byte text frames: `x`, not JSON.
    let frame = [0x81u8, 0x81, 0, 0, 0, 0, b'x'];
    let chunk: Vec<u8> = frame
        .iter()
        .copied()
        .cycle()
        .take(frame.len() * 9362)
        .collect();
    let mut sent = 0;
    let mut blocked = false;
    while sent < MAX_INPUT {
        match tokio::time::timeout(Duration::from_secs(2), flood.write_all(&chunk)).await {
            Ok(Ok(())) => sent += chunk.len(),
            // The server stopped reading this client: what it queued is bounded.
            Err(_) => {
                blocked = true;
                break;
            }
            // Or it closed the connection.
            Ok(Err(_)) => break,
        }
    }
    let growth = (server.rss_kib() * 1024).saturating_sub(before);
    eprintln!(
        "sent {} KiB of one-byte messages (writes blocked: {blocked}); server RSS growth {} KiB",
        sent / 1024,
        growth / 1024
    );
    assert!(
        growth < MAX_GROWTH,
        "server RSS grew by {} MiB",
        growth >> 20
    );

    // Another client is still served at once.
    let start = Instant::now();
    let text = json!({"type": "message", "text": "still here"}).to_string();
    other.send(Message::text(text)).await.expect("send");
    let echo = until(&mut other, "message").await;
    assert_eq!(echo["text"], "still here", "{echo}");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    drop(flood);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_joins_costs_members_one_event_each() {
    const JOINERS: usize = 60;
    let server = Server::start(&[]);
    let mut observer = join(&server, "burst", "observer").await;
    let first = next_json(&mut observer).await;
    assert_eq!(first, json!({"type": "presence", "users": ["observer"]}));

    let mut joins = tokio::task::JoinSet::new();
    for _ in 0..JOINERS {
        joins.spawn(join_url(server.ws_url("/ws/chat/burst"), "bob".to_owned()));
    }
    let mut joined = joins.join_all().await;

    // The observer gets one `join` per joiner, each with a distinct name, and no list.
    let mut names = std::collections::BTreeSet::new();
    for _ in 0..JOINERS {
        let event = next_json(&mut observer).await;
        assert_eq!(event["type"], "join", "{event}");
        names.insert(event["name"].as_str().expect("a name").to_owned());
    }
    let expected: std::collections::BTreeSet<String> = std::iter::once("bob".to_owned())
        .chain((2..=JOINERS).map(|k| format!("bob {k}")))
        .collect();
    assert_eq!(names, expected);
    // Each joiner gets the list once (after the `join`s of those who came just before it):
    // everyone who had joined by then, itself included.
    for ws in &mut joined {
        let presence = until(ws, "presence").await;
        let users = presence["users"].as_array().expect("a list");
        assert_eq!(users[0], "observer");
        assert!(users.len() >= 2, "{presence}");
    }
    // Nothing else came to the observer: its next event is this message.
    let text = json!({"type": "message", "text": "done"}).to_string();
    observer.send(Message::text(text)).await.expect("send");
    let next = next_json(&mut observer).await;
    assert_eq!(next["type"], "message", "{next}");
}
