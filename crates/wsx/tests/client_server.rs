//! A wsx client against a wsx server over real sockets on 127.0.0.1.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{echo_server, echo_server_with};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wsx::{Accept, ClientBuilder, CloseCode, CloseFrame, Message, Reject, WebSocketConfig};

async fn timeout<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .expect("timed out")
}

#[tokio::test]
async fn echo_text_binary_and_large() {
    let addr = echo_server().await;
    let (mut ws, resp) = wsx::connect(&format!("ws://{addr}/echo")).await.unwrap();
    assert_eq!(resp.status, 101);
    let big: Vec<u8> = (0..(1 << 20)).map(|i| (i * 7 % 251) as u8).collect();
    let msgs = vec![
        Message::text("hello"),
        Message::text(""),
        Message::text("κόσμε ✓"),
        Message::binary(vec![0u8, 1, 2, 255]),
        Message::binary(big),
    ];
    for m in &msgs {
        ws.send(m.clone()).await.unwrap();
        let back = timeout(ws.recv()).await.unwrap().unwrap();
        assert_eq!(&back, m);
    }
    ws.close(CloseCode::NORMAL, "done").await.unwrap();
}

#[tokio::test]
async fn many_queued_messages_are_coalesced_and_all_echoed() {
    let addr = echo_server().await;
    let (mut ws, _) = wsx::connect(&format!("ws://{addr}/")).await.unwrap();
    for i in 0..1000 {
        ws.feed(Message::text(format!("m{i}"))).unwrap();
    }
    ws.flush().await.unwrap();
    for i in 0..1000 {
        let m = timeout(ws.recv()).await.unwrap().unwrap();
        assert_eq!(m.as_text(), Some(format!("m{i}").as_str()));
    }
}

#[tokio::test]
async fn pings_are_answered_while_the_server_only_reads() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = wsx::accept(tcp).await.unwrap();
        let mut seen = Vec::new();
        while let Some(Ok(m)) = ws.recv().await {
            seen.push(m);
        }
        seen
    });
    let (mut ws, _) = wsx::connect(&format!("ws://{addr}/")).await.unwrap();
    ws.send(Message::Ping(Bytes::from_static(b"are you there")))
        .await
        .unwrap();
    let pong = timeout(ws.recv()).await.unwrap().unwrap();
    assert_eq!(pong, Message::Pong(Bytes::from_static(b"are you there")));
    ws.close(CloseCode::NORMAL, "bye").await.unwrap();
    let seen = timeout(server).await.unwrap();
    assert_eq!(
        seen,
        vec![
            Message::Ping(Bytes::from_static(b"are you there")),
            Message::Close(Some(CloseFrame::new(CloseCode::NORMAL, "bye")))
        ]
    );
}

#[tokio::test]
async fn server_initiated_close_reaches_the_client() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = wsx::accept(tcp).await.unwrap();
        ws.close(CloseCode::GOING_AWAY, "shutting down").await
    });
    let (mut ws, _) = wsx::connect(&format!("ws://{addr}/")).await.unwrap();
    let m = timeout(ws.recv()).await.unwrap().unwrap();
    assert_eq!(
        m,
        Message::Close(Some(CloseFrame::new(
            CloseCode::GOING_AWAY,
            "shutting down"
        )))
    );
    assert!(timeout(ws.recv()).await.is_none());
    timeout(server).await.unwrap().unwrap();
}

#[tokio::test]
async fn stream_and_sink() {
    let addr = echo_server().await;
    let (mut ws, _) = wsx::connect(&format!("ws://{addr}/")).await.unwrap();
    ws.send_all(&mut futures_util::stream::iter(
        (0..10).map(|i| Ok(Message::text(i.to_string()))),
    ))
    .await
    .unwrap();
    let got: Vec<Message> = ws.by_ref().take(10).map(|m| m.unwrap()).collect().await;
    assert_eq!(got.len(), 10);
    assert_eq!(got[9], Message::text("9"));
    SinkExt::close(&mut ws).await.unwrap();
}

#[tokio::test]
async fn accept_callback_sees_request_and_picks_subprotocol() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        for _ in 0..2 {
            let (tcp, _) = listener.accept().await.unwrap();
            let res = wsx::accept_with(tcp, &WebSocketConfig::default(), |req| {
                if req.query() != Some("token=good") {
                    return Err(Reject::new(401, "bad token"));
                }
                assert_eq!(req.path(), "/chat");
                assert_eq!(req.header_str("x-app"), Some("demo"));
                Ok(Accept {
                    subprotocol: Some("v2.chat".into()),
                    headers: vec![("X-Server".into(), "wsx".into())],
                })
            })
            .await;
            if let Ok(mut ws) = res {
                let _ = ws.close(CloseCode::NORMAL, "").await;
            }
        }
    });
    let (ws, resp) = ClientBuilder::new(format!("ws://{addr}/chat?token=good"))
        .subprotocol("v1.chat")
        .subprotocol("v2.chat")
        .header("X-App", "demo")
        .connect()
        .await
        .unwrap();
    assert_eq!(ws.subprotocol(), Some("v2.chat"));
    assert_eq!(resp.header("x-server"), Some(&b"wsx"[..]));
    drop(ws);
    let err = ClientBuilder::new(format!("ws://{addr}/chat?token=bad"))
        .connect()
        .await
        .unwrap_err();
    let status = match err.as_handshake() {
        Some(wsx_proto::handshake::HandshakeError::Rejected { status, .. }) => *status,
        other => panic!("unexpected {other:?} / {err}"),
    };
    assert_eq!(status, 401);
}

/// Send raw bytes to a fresh server connection and read everything it answers until it closes.
async fn raw_exchange(request: &[u8]) -> Vec<u8> {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        if let Ok(mut ws) = wsx::accept(tcp).await {
            while let Some(Ok(_)) = ws.recv().await {}
        }
    });
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request).await.unwrap();
    // Half-close: a server waiting for frames sees the end of the stream.
    tcp.shutdown().await.unwrap();
    let mut out = Vec::new();
    timeout(tcp.read_to_end(&mut out)).await.unwrap();
    timeout(server).await.unwrap();
    out
}

fn status_of(resp: &[u8]) -> u16 {
    let s = String::from_utf8_lossy(resp);
    s.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

const GOOD_HEAD: &str = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";

#[tokio::test]
async fn bad_handshakes_get_http_errors() {
    let resp = raw_exchange(format!("{GOOD_HEAD}\r\n").as_bytes()).await;
    assert_eq!(status_of(&resp), 101);
    assert!(String::from_utf8_lossy(&resp).contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));

    let no_key = GOOD_HEAD.replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "");
    assert_eq!(
        status_of(&raw_exchange(format!("{no_key}\r\n").as_bytes()).await),
        400
    );

    let v8 = GOOD_HEAD.replace("Version: 13", "Version: 8");
    let resp = raw_exchange(format!("{v8}\r\n").as_bytes()).await;
    assert_eq!(status_of(&resp), 426);
    assert!(
        String::from_utf8_lossy(&resp)
            .to_ascii_lowercase()
            .contains("sec-websocket-version: 13")
    );

    let post = GOOD_HEAD.replace("GET", "POST");
    assert_eq!(
        status_of(&raw_exchange(format!("{post}\r\n").as_bytes()).await),
        405
    );

    let huge = format!("{GOOD_HEAD}X-Big: {}\r\n\r\n", "a".repeat(20_000));
    assert_eq!(status_of(&raw_exchange(huge.as_bytes()).await), 431);

    assert_eq!(status_of(&raw_exchange(b"garbage\r\n\r\n").await), 400);
}

#[tokio::test]
async fn malformed_frame_gets_1002_and_the_server_closes_tcp() {
    // An unmasked text frame right after the handshake.
    let mut req = format!("{GOOD_HEAD}\r\n").into_bytes();
    req.extend_from_slice(&[0x81, 0x02, b'h', b'i']);
    let resp = raw_exchange(&req).await;
    let head_end = resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let frame = &resp[head_end..];
    assert_eq!(frame[0], 0x88, "a close frame");
    assert_eq!(u16::from_be_bytes([frame[2], frame[3]]), 1002);
}

#[tokio::test]
async fn tcp_drop_without_close_is_an_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = wsx::accept(tcp).await.unwrap();
        ws.recv().await
    });
    let (ws, _) = wsx::connect(&format!("ws://{addr}/")).await.unwrap();
    drop(ws);
    let res = timeout(server).await.unwrap();
    assert!(
        matches!(res, Some(Err(wsx::Error::ConnectionReset))),
        "{res:?}"
    );
}

#[tokio::test]
async fn oversized_message_closes_with_1009() {
    let addr = echo_server_with(WebSocketConfig::default().max_message_size(1000)).await;
    let (mut ws, _) = wsx::connect(&format!("ws://{addr}/")).await.unwrap();
    ws.send(Message::binary(vec![0u8; 1001])).await.unwrap();
    let m = timeout(ws.recv()).await.unwrap().unwrap();
    match m {
        Message::Close(Some(f)) => assert_eq!(f.code, CloseCode::MESSAGE_TOO_BIG),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn sending_after_close_is_the_one_closed_error() {
    let addr = echo_server().await;
    let (mut ws, _) = wsx::connect(&format!("ws://{addr}/echo")).await.unwrap();
    ws.close(CloseCode::NORMAL, "done").await.unwrap();
    // The core refuses (our close frame is sent): `Closed`, not a protocol error.
    let err = ws.send(Message::text("late")).await.unwrap_err();
    assert!(matches!(err, wsx::Error::Closed), "{err:?}");
    // A close frame that may not be sent is API misuse too, not a protocol error.
    let (mut ws, _) = wsx::connect(&format!("ws://{addr}/echo")).await.unwrap();
    let err = ws.close(CloseCode(1005), "").await.unwrap_err();
    assert!(matches!(err, wsx::Error::InvalidSend(_)), "{err:?}");
}
