//! Messages made of a per-connection head and a shared tail
//! (`WebSocket::feed_with_shared_tail`, `WsSender::send_with_shared_tail`), over real sockets:
//! the peer receives one message, head then tail, in both roles; the output budget applies; a
//! message that cannot be one (a control opcode, text that is not UTF-8) is refused.

mod common;

use bytes::Bytes;
use tokio::net::TcpListener;
use wsx::{Accept, Backpressure, Error, Message, OpCode, WebSocketConfig};

/// A server that sends, on each connection, the messages `head + tail` for each pair in `parts`
/// (text, then binary, alternating), then closes.
async fn shared_tail_server(parts: Vec<(Bytes, Bytes)>, split: bool) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let config = WebSocketConfig::default();
        let mut ws = wsx::accept_with(tcp, &config, |_| Ok(Accept::default()))
            .await
            .unwrap();
        let opcodes = [OpCode::Text, OpCode::Binary].into_iter().cycle();
        if split {
            let (tx, mut rx) = ws.split();
            for ((head, tail), opcode) in parts.into_iter().zip(opcodes) {
                tx.send_with_shared_tail(opcode, head, tail).await.unwrap();
            }
            tx.close(wsx::CloseCode::NORMAL, "done").await.unwrap();
            while rx.recv().await.is_some() {}
        } else {
            for ((head, tail), opcode) in parts.into_iter().zip(opcodes) {
                ws.feed_with_shared_tail(opcode, &head, tail).unwrap();
            }
            ws.close(wsx::CloseCode::NORMAL, "done").await.unwrap();
        }
    });
    addr
}

fn parts() -> Vec<(Bytes, Bytes)> {
    // A small message (head and tail copied together) and a large one (the tail queued as
    // it is), text and binary.
    vec![
        (
            Bytes::from_static(b"MESSAGE\nsubscription:1\n\n"),
            Bytes::from_static(b"hello\0"),
        ),
        (
            Bytes::from_static(&[1, 2, 3]),
            Bytes::from(vec![0xAB; 100_000]),
        ),
        (
            Bytes::from_static("héad:".as_bytes()),
            Bytes::from("ünï".repeat(20_000)),
        ),
    ]
}

fn expected(parts: &[(Bytes, Bytes)]) -> Vec<Message> {
    parts
        .iter()
        .enumerate()
        .map(|(i, (head, tail))| {
            let mut whole = head.to_vec();
            whole.extend_from_slice(tail);
            if i % 2 == 0 {
                Message::text(String::from_utf8(whole).unwrap())
            } else {
                Message::binary(whole)
            }
        })
        .collect()
}

async fn receive_all(addr: std::net::SocketAddr) -> Vec<Message> {
    let (mut ws, _) = wsx::connect(&format!("ws://{addr}/")).await.unwrap();
    let mut got = Vec::new();
    while let Some(msg) = ws.recv().await {
        match msg.unwrap() {
            Message::Close(_) => {}
            m => got.push(m),
        }
    }
    got
}

#[tokio::test]
async fn server_sends_head_and_shared_tail_as_one_message() {
    let addr = shared_tail_server(parts(), false).await;
    assert_eq!(receive_all(addr).await, expected(&parts()));
}

#[tokio::test]
async fn split_sender_sends_head_and_shared_tail_as_one_message() {
    let addr = shared_tail_server(parts(), true).await;
    assert_eq!(receive_all(addr).await, expected(&parts()));
}

#[tokio::test]
async fn client_masks_head_and_tail_as_one_payload() {
    let addr = common::echo_server().await;
    let (mut ws, _) = wsx::connect(&format!("ws://{addr}/")).await.unwrap();
    let parts = parts();
    for (i, (head, tail)) in parts.iter().enumerate() {
        let opcode = if i % 2 == 0 {
            OpCode::Text
        } else {
            OpCode::Binary
        };
        ws.feed_with_shared_tail(opcode, head, tail.clone())
            .unwrap();
    }
    ws.flush().await.unwrap();
    for want in expected(&parts) {
        assert_eq!(ws.recv().await.unwrap().unwrap(), want);
    }
    ws.close(wsx::CloseCode::NORMAL, "").await.unwrap();
}

#[tokio::test]
async fn refuses_control_opcodes_and_invalid_text() {
    let addr = common::echo_server().await;
    let (mut ws, _) = wsx::connect(&format!("ws://{addr}/")).await.unwrap();
    let tail = Bytes::from_static(b"tail");
    for opcode in [OpCode::Ping, OpCode::Close, OpCode::Continuation] {
        assert!(matches!(
            ws.feed_with_shared_tail(opcode, b"head", tail.clone()),
            Err(Error::InvalidSend(_))
        ));
    }
    // A code point split between head and tail is fine; invalid bytes are not.
    let e_acute = "é".as_bytes();
    ws.feed_with_shared_tail(
        OpCode::Text,
        &e_acute[..1],
        Bytes::copy_from_slice(&e_acute[1..]),
    )
    .unwrap();
    assert!(matches!(
        ws.feed_with_shared_tail(OpCode::Text, b"ok", Bytes::from_static(&[0xFF])),
        Err(Error::InvalidSend(_))
    ));
    assert!(matches!(
        ws.feed_with_shared_tail(OpCode::Text, &e_acute[..1], Bytes::new()),
        Err(Error::InvalidSend(_))
    ));
    ws.flush().await.unwrap();
    assert_eq!(ws.recv().await.unwrap().unwrap(), Message::text("é"));
    assert_eq!(ws.buffered_amount(), 0, "refused messages queue nothing");

    // The split sender refuses them before queueing.
    let (tx, _rx) = ws.split();
    assert!(matches!(
        tx.send_with_shared_tail(OpCode::Pong, Bytes::new(), tail.clone())
            .await,
        Err(Error::InvalidSend(_))
    ));
    assert!(matches!(
        tx.send_with_shared_tail(OpCode::Text, Bytes::from_static(&[0xC3]), Bytes::new())
            .await,
        Err(Error::InvalidSend(_))
    ));
}

#[tokio::test]
async fn the_output_budget_applies() {
    let addr = common::echo_server().await;
    let config = WebSocketConfig::default().backpressure(4096, Backpressure::Fail);
    let (mut ws, _) = wsx::ClientBuilder::new(format!("ws://{addr}/"))
        .config(config)
        .connect()
        .await
        .unwrap();
    let tail = Bytes::from(vec![7u8; 3000]);
    // Queued without writing: the first fits the budget, the second fills it, the third fails.
    ws.feed_with_shared_tail(OpCode::Binary, b"a", tail.clone())
        .unwrap();
    ws.feed_with_shared_tail(OpCode::Binary, b"b", tail.clone())
        .unwrap();
    assert!(ws.buffered_amount() >= 4096);
    assert!(matches!(
        ws.feed_with_shared_tail(OpCode::Binary, b"c", tail.clone()),
        Err(Error::BufferFull)
    ));
    ws.flush().await.unwrap();
    for head in [b"a", b"b"] {
        let mut want = head.to_vec();
        want.extend_from_slice(&tail);
        assert_eq!(ws.recv().await.unwrap().unwrap(), Message::binary(want));
    }
    ws.feed_with_shared_tail(OpCode::Binary, b"c", tail)
        .unwrap();
}
