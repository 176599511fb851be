//! End-to-end tests of `wsx serve`: the real binary on an ephemeral port, the `wsx` library as
//! the client, raw TCP for plain HTTP.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Value, json};
use tokio::net::TcpStream;
use wsx::{CloseCode, DeflateConfig, Message, WebSocketConfig};

use common::chat::{join, next_json, recv, send_json, until, until_close};
use common::{Server, WAIT, http};

/// The value of an unlabelled metric.
fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("metric {name} missing in:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_routes() {
    let server = Server::start(&[]);
    let page = http(server.addr, "GET", "/").await;
    assert_eq!(page.status, 200);
    assert!(
        page.head.contains("content-type: text/html"),
        "{}",
        page.head
    );
    assert!(page.head.contains("content-security-policy:"));
    assert!(
        page.body.contains("<title>wsx chat</title>"),
        "{}",
        page.body
    );

    let js = http(server.addr, "GET", "/app.js").await;
    assert_eq!(js.status, 200);
    assert!(js.head.contains("content-type: text/javascript"));
    assert!(js.body.contains("/ws/chat/"));
    let css = http(server.addr, "GET", "/style.css").await;
    assert_eq!(css.status, 200);
    assert!(css.head.contains("content-type: text/css"));

    let health = http(server.addr, "GET", "/healthz").await;
    assert_eq!((health.status, health.body.as_str()), (200, "ok"));

    assert_eq!(http(server.addr, "GET", "/nope").await.status, 404);
    assert_eq!(
        http(server.addr, "GET", "/ws/chat/bad%20room").await.status,
        404
    );
    assert_eq!(http(server.addr, "POST", "/healthz").await.status, 405);

    for path in ["/ws/echo", "/ws/chat/lobby"] {
        let resp = http(server.addr, "GET", path).await;
        assert_eq!(resp.status, 426, "{path}");
        assert!(resp.head.contains("upgrade: websocket"), "{}", resp.head);
    }

    // An upgrade to a path that is not a WebSocket endpoint is refused, not echoed.
    let refused = wsx::connect(&server.ws_url("/nope")).await;
    let err = refused.expect_err("404 expected");
    assert!(
        matches!(
            err.as_handshake(),
            Some(wsx::HandshakeError::Rejected { status: 404, .. })
        ),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_round_trips_with_and_without_compression() {
    let server = Server::start(&[]);
    for compress in [false, true] {
        let mut config = WebSocketConfig::default();
        if compress {
            config = config.compression(DeflateConfig::default());
        }
        let (mut ws, _) = wsx::ClientBuilder::new(server.ws_url("/ws/echo"))
            .config(config)
            .connect()
            .await
            .expect("connect");
        assert_eq!(ws.is_compressed(), compress);
        ws.send(Message::text("hello")).await.expect("send");
        assert_eq!(recv(&mut ws).await, Message::text("hello"));
        let blob: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        ws.send(Message::binary(blob.clone())).await.expect("send");
        assert_eq!(recv(&mut ws).await, Message::binary(blob));
        ws.close(CloseCode::NORMAL, "bye").await.expect("close");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_presence_messages_and_files() {
    let server = Server::start(&[]);
    let (mut alice, welcome) = join(&server, "lobby", "alice").await;
    assert_eq!(welcome["name"], "alice");
    assert_eq!(welcome["room"], "lobby");
    assert_eq!(welcome["max_file_bytes"], 1 << 20);
    assert_eq!(
        until(&mut alice, "presence").await["users"],
        json!(["alice"])
    );

    let (mut bob, _) = join(&server, "lobby", "bob").await;
    assert_eq!(
        until(&mut bob, "presence").await["users"],
        json!(["alice", "bob"])
    );
    // Members present get the change only, not the whole list again.
    assert_eq!(
        next_json(&mut alice).await,
        json!({"type": "join", "name": "bob"})
    );

    // Someone in another room sees none of it.
    let (mut carol, _) = join(&server, "elsewhere", "carol").await;
    assert_eq!(
        until(&mut carol, "presence").await["users"],
        json!(["carol"])
    );

    // A text message reaches everyone, the sender included (and is what alice gets next).
    send_json(&mut alice, json!({"type": "message", "text": "hi bob"})).await;
    for ws in [&mut alice, &mut bob] {
        let m = next_json(ws).await;
        assert_eq!(m["type"], "message");
        assert_eq!(m["name"], "alice");
        assert_eq!(m["text"], "hi bob");
        assert!(
            m["ts"].as_u64().is_some_and(|ts| ts > 1_600_000_000_000),
            "{m}"
        );
    }

    // A file: a header, then the bytes, to the others.
    let data: Vec<u8> = (0..50_000u32).map(|i| (i * 7) as u8).collect();
    send_json(
        &mut bob,
        json!({"type": "file", "name": "../photo.png", "mime": "image/png", "size": data.len()}),
    )
    .await;
    bob.send(Message::binary(data.clone()))
        .await
        .expect("send file");
    let header = next_json(&mut alice).await;
    assert_eq!(header["type"], "file");
    assert_eq!(header["name"], "photo.png");
    assert_eq!(header["mime"], "image/png");
    assert_eq!(header["size"], data.len());
    assert_eq!(header["from"], "bob");
    assert_eq!(recv(&mut alice).await, Message::binary(data));

    // A second "alice" gets a distinct name; late joiners get the history.
    let (mut alice2, welcome) = join(&server, "lobby", "Alice").await;
    assert_eq!(welcome["name"], "Alice 2");
    let replay = next_json(&mut alice2).await;
    assert_eq!(
        (&replay["type"], &replay["text"]),
        (&json!("message"), &json!("hi bob"))
    );
    assert_eq!(
        until(&mut alice2, "presence").await["users"],
        json!(["alice", "bob", "Alice 2"])
    );
    assert_eq!(
        next_json(&mut alice).await,
        json!({"type": "join", "name": "Alice 2"})
    );

    // Leaving is announced, as a change.
    bob.close(CloseCode::NORMAL, "bye").await.expect("close");
    for ws in [&mut alice, &mut alice2] {
        assert_eq!(next_json(ws).await, json!({"type": "leave", "name": "bob"}));
    }

    // Carol's room saw nothing: her next message is her own.
    send_json(&mut carol, json!({"type": "message", "text": "anyone?"})).await;
    let m = next_json(&mut carol).await;
    assert_eq!(
        (&m["name"], &m["text"]),
        (&json!("carol"), &json!("anyone?"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_validates_input_and_answers_pings() {
    let server = Server::start(&["--max-file-bytes", "1000"]);
    let (mut ws, _) = wsx::connect(&server.ws_url("/ws/chat/checks"))
        .await
        .expect("connect");

    // Before joining.
    send_json(&mut ws, json!({"type": "message", "text": "hello?"})).await;
    assert_eq!(next_json(&mut ws).await["code"], "not_joined");
    send_json(&mut ws, json!({"type": "ping", "t": 1234.5})).await;
    assert_eq!(
        next_json(&mut ws).await,
        json!({"type": "pong", "t": 1234.5})
    );

    for bad in [
        "not json",
        "{\"type\":\"dance\"}",
        "{\"type\":\"ping\",\"t\":\"x\"}",
        "[]",
    ] {
        ws.send(Message::text(bad)).await.expect("send");
        let e = next_json(&mut ws).await;
        assert_eq!(
            (&e["type"], &e["code"]),
            (&json!("error"), &json!("bad_json")),
            "{bad}"
        );
    }
    for name in ["", "   ", &"x".repeat(33), "a\u{7}b"] {
        send_json(&mut ws, json!({"type": "join", "name": name})).await;
        assert_eq!(next_json(&mut ws).await["code"], "invalid_name", "{name:?}");
    }

    send_json(&mut ws, json!({"type": "join", "name": "dora"})).await;
    assert_eq!(next_json(&mut ws).await["type"], "welcome");
    send_json(&mut ws, json!({"type": "join", "name": "dora"})).await;
    assert_eq!(until(&mut ws, "error").await["code"], "already_joined");

    send_json(
        &mut ws,
        json!({"type": "message", "text": "x".repeat(2001)}),
    )
    .await;
    assert_eq!(next_json(&mut ws).await["code"], "invalid_text");
    send_json(&mut ws, json!({"type": "message", "text": " \n "})).await;
    assert_eq!(next_json(&mut ws).await["code"], "invalid_text");
    ws.send(Message::text("x".repeat(20_000)))
        .await
        .expect("send");
    assert_eq!(next_json(&mut ws).await["code"], "too_long");

    // Over --max-file-bytes but under the connection limit: refused with a message.
    send_json(&mut ws, json!({"type": "file", "name": "a", "size": 5000})).await;
    assert_eq!(next_json(&mut ws).await["code"], "file_too_large");
    ws.send(Message::binary(vec![1u8; 5000]))
        .await
        .expect("send");
    assert_eq!(next_json(&mut ws).await["code"], "file_too_large");

    // Still usable.
    send_json(&mut ws, json!({"type": "message", "text": "still here"})).await;
    assert_eq!(next_json(&mut ws).await["text"], "still here");

    // Over the connection limit (64 KiB at least): close 1009.
    ws.send(Message::binary(vec![0u8; 100_000]))
        .await
        .expect("send");
    assert_eq!(until_close(&mut ws).await.0, 1009);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_traffic() {
    let server = Server::start(&[]);
    let before = http(server.addr, "GET", "/metrics").await;
    assert_eq!(before.status, 200);
    assert!(
        before
            .head
            .contains("content-type: text/plain; version=0.0.4")
    );
    assert_eq!(metric(&before.body, "wsx_connections_total"), 0);
    assert!(before.body.contains("# TYPE wsx_connections_active gauge"));

    let (mut ws, _) = wsx::connect(&server.ws_url("/ws/echo"))
        .await
        .expect("connect");
    for _ in 0..3 {
        ws.send(Message::text("12345")).await.expect("send");
        recv(&mut ws).await;
    }
    let (_alice, _) = join(&server, "m", "alice").await;
    assert_eq!(http(server.addr, "GET", "/ws/echo").await.status, 426);

    let after = http(server.addr, "GET", "/metrics").await.body;
    assert_eq!(metric(&after, "wsx_connections_active"), 2);
    assert_eq!(metric(&after, "wsx_connections_total"), 2);
    assert!(metric(&after, "wsx_messages_received_total") >= 4);
    assert!(metric(&after, "wsx_messages_sent_total") >= 4);
    assert!(metric(&after, "wsx_bytes_received_total") >= 15);
    assert!(metric(&after, "wsx_bytes_sent_total") >= 15);
    assert_eq!(metric(&after, "wsx_chat_rooms"), 1);
    assert_eq!(metric(&after, "wsx_chat_members"), 1);
    assert!(
        after.contains("wsx_handshake_failures_total{reason=\"not_upgrade\"} 1\n"),
        "{after}"
    );

    ws.close(CloseCode::NORMAL, "").await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_member_is_dropped_without_slowing_the_room() {
    let server = Server::start(&[]);
    let (mut slow, _) = join(&server, "busy", "slow").await;
    until(&mut slow, "presence").await;
    // From here on `slow` reads nothing.

    let (mut observer, _) = join(&server, "busy", "observer").await;
    let (mut sender, _) = join(&server, "busy", "sender").await;
    until(&mut observer, "presence").await;

    // The observer acknowledges each file, so the sender never outruns it: only `slow` falls
    // behind.
    let stop = Arc::new(AtomicBool::new(false));
    let (ack_tx, mut acks) = tokio::sync::mpsc::unbounded_channel();
    let watcher = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut files = 0u32;
            loop {
                match recv(&mut observer).await {
                    Message::Binary(b) => {
                        assert_eq!(b.len(), 1 << 20);
                        files += 1;
                        let _ = ack_tx.send(());
                    }
                    Message::Text(t) => {
                        let v: Value = serde_json::from_str(&t).expect("JSON");
                        if v["type"] == "leave" && v["name"] == "slow" {
                            stop.store(true, Ordering::SeqCst);
                        }
                        if v["type"] == "message" && v["text"] == "after" {
                            return (observer, files);
                        }
                    }
                    other => panic!("observer: unexpected {other:?}"),
                }
            }
        })
    };

    let file = wsx::Bytes::from(vec![7u8; 1 << 20]);
    let mut sent = 0u32;
    while !stop.load(Ordering::SeqCst) {
        assert!(sent < 400, "the slow member was never dropped");
        send_json(
            &mut sender,
            json!({"type": "file", "name": "blob.bin", "size": file.len()}),
        )
        .await;
        sender
            .send(Message::Binary(file.clone()))
            .await
            .expect("send file");
        sent += 1;
        tokio::time::timeout(WAIT, acks.recv())
            .await
            .expect("the observer got the file in time")
            .expect("observer alive");
    }
    send_json(&mut sender, json!({"type": "message", "text": "after"})).await;
    let (_observer, files) = tokio::time::timeout(WAIT, watcher)
        .await
        .expect("the observer got everything in time")
        .expect("observer task");
    assert_eq!(files, sent);

    // The slow member finds, after its backlog, a close 1008.
    assert_eq!(until_close(&mut slow).await, (1008, "too slow".to_owned()));

    let metrics = http(server.addr, "GET", "/metrics").await.body;
    assert_eq!(metric(&metrics, "wsx_chat_slow_disconnects_total"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_connections_with_1001_and_exits_0() {
    let mut server = Server::start(&[]);
    let (mut echo, _) = wsx::connect(&server.ws_url("/ws/echo"))
        .await
        .expect("connect");
    echo.send(Message::text("ping")).await.expect("send");
    recv(&mut echo).await;
    let (mut chat, _) = join(&server, "lobby", "zoe").await;
    until(&mut chat, "presence").await;

    let killed = Command::new("kill")
        .args(["-TERM", &server.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(killed.success());

    for ws in [&mut echo, &mut chat] {
        assert_eq!(
            until_close(ws).await,
            (1001, "server shutting down".to_owned())
        );
    }
    let status = server.wait_exit().await;
    assert_eq!(status.code(), Some(0), "{status:?}");
    // The port is closed.
    assert!(TcpStream::connect(server.addr).await.is_err());
}
