//! The WebSocket frame layer over HTTP/2 streams: the behaviours the TCP tests check
//! (client_server.rs, keepalive_backpressure.rs, split.rs), run over an [`H2Stream`] pair made by
//! the wsx HTTP/2 server and client on an in-memory duplex — so only the transport differs.
#![cfg(feature = "http2")]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::within;
use tokio::sync::mpsc;
use wsx::http2::{H2WebSocket, Http2Client, Http2Limits, Http2Server};
use wsx::{Bytes, ClientBuilder, CloseCode, Error, Message, OpCode, WebSocketConfig};

/// A connected pair over one in-memory HTTP/2 connection: (server side, client side). The
/// client handle is returned too, to keep the connection.
async fn pair(
    server_config: WebSocketConfig,
    client_config: WebSocketConfig,
) -> (H2WebSocket, H2WebSocket, Http2Client) {
    let (near, far) = tokio::io::duplex(64 * 1024);
    let (tx, mut accepted) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let peer: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let server = Http2Server::new().config(server_config);
        let _ = server
            .serve_connection(far, peer, move |_| {
                let tx = tx.clone();
                Ok(move |ws, _| async move {
                    let _ = tx.send(ws);
                })
            })
            .await;
    });
    let client = Http2Client::handshake(near, false, &Http2Limits::default())
        .await
        .unwrap();
    let (ws, resp) = client
        .open(ClientBuilder::new("ws://in-memory/ws").config(client_config))
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
    let server = within(accepted.recv()).await.unwrap();
    (server, ws, client)
}

async fn default_pair() -> (H2WebSocket, H2WebSocket, Http2Client) {
    pair(WebSocketConfig::default(), WebSocketConfig::default()).await
}

#[tokio::test]
async fn text_binary_and_large_messages_both_ways() {
    let (mut server, mut client, _conn) = default_pair().await;
    let large: Vec<u8> = (0..5_000_000u32).map(|i| (i % 251) as u8).collect();
    let messages = [
        Message::text("hello"),
        Message::binary(vec![0u8, 1, 2, 255]),
        Message::text(""),
        Message::binary(large),
    ];
    let echo = tokio::spawn(async move {
        while let Some(Ok(msg)) = server.recv().await {
            if msg.is_data() && server.send(msg).await.is_err() {
                break;
            }
        }
        server
    });
    for msg in messages {
        client.send(msg.clone()).await.unwrap();
        assert_eq!(within(client.recv()).await.unwrap().unwrap(), msg);
    }
    client.close(CloseCode::NORMAL, "done").await.unwrap();
    let server = within(echo).await.unwrap();
    assert_eq!(
        server.peer_close_frame().map(|f| f.code),
        Some(CloseCode::NORMAL)
    );
}

#[tokio::test]
async fn fragments_and_queued_messages_arrive_in_order() {
    let (mut server, mut client, _conn) = default_pair().await;
    client
        .feed_fragment(OpCode::Text, Bytes::from_static(b"frag"), false)
        .unwrap();
    client
        .feed_fragment(OpCode::Continuation, Bytes::from_static(b"mented"), true)
        .unwrap();
    for i in 0..1000 {
        client.feed(Message::text(format!("m{i}"))).unwrap();
    }
    client.flush().await.unwrap();
    assert_eq!(
        within(server.recv()).await.unwrap().unwrap(),
        Message::text("fragmented")
    );
    for i in 0..1000 {
        assert_eq!(
            within(server.recv()).await.unwrap().unwrap(),
            Message::text(format!("m{i}"))
        );
    }
}

#[tokio::test]
async fn pings_are_answered_while_the_server_only_reads() {
    let (mut server, mut client, _conn) = default_pair().await;
    let reader = tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some(Ok(msg)) = server.recv().await {
            seen.push(msg);
        }
        seen
    });
    client
        .send(Message::Ping("are you there".into()))
        .await
        .unwrap();
    assert_eq!(
        within(client.recv()).await.unwrap().unwrap(),
        Message::Pong("are you there".into())
    );
    client.close(CloseCode::NORMAL, "bye").await.unwrap();
    let seen = within(reader).await.unwrap();
    assert_eq!(seen[0], Message::Ping("are you there".into()));
}

#[tokio::test]
async fn server_initiated_close_reaches_the_client_then_the_stream_ends() {
    let (mut server, mut client, _conn) = default_pair().await;
    let closing =
        tokio::spawn(async move { server.close(CloseCode::GOING_AWAY, "shutting down").await });
    match within(client.recv()).await.unwrap().unwrap() {
        Message::Close(Some(f)) => {
            assert_eq!(f.code, CloseCode::GOING_AWAY);
            assert_eq!(f.reason.as_str(), "shutting down");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(within(client.recv()).await.is_none());
    within(closing).await.unwrap().unwrap();
}

#[tokio::test]
async fn an_oversized_message_closes_with_1009() {
    let (mut server, mut client, _conn) = pair(
        WebSocketConfig::default().max_message_size(1024),
        WebSocketConfig::default(),
    )
    .await;
    let reader = tokio::spawn(async move { server.recv().await });
    client.send(Message::binary(vec![7u8; 4096])).await.unwrap();
    match within(client.recv()).await.unwrap().unwrap() {
        Message::Close(Some(f)) => assert_eq!(f.code, CloseCode::MESSAGE_TOO_BIG),
        other => panic!("unexpected {other:?}"),
    }
    assert!(matches!(
        within(reader).await.unwrap(),
        Some(Err(Error::Protocol(_)))
    ));
}

#[tokio::test]
async fn unanswered_pings_fail_the_connection_with_1011() {
    let config =
        WebSocketConfig::default().keepalive(Duration::from_millis(50), Duration::from_millis(200));
    // The client never reads, so it never answers the server's pings.
    let (mut server, _client, _conn) = pair(config, WebSocketConfig::default()).await;
    let end = within(async {
        loop {
            match server.recv().await {
                Some(Ok(_)) => continue,
                other => return other,
            }
        }
    })
    .await;
    assert!(
        matches!(&end, Some(Err(e)) if e.to_string().contains("pong")),
        "{end:?}"
    );
}

#[tokio::test]
async fn idle_connections_are_closed_with_1001() {
    let (mut server, mut client, _conn) = pair(
        WebSocketConfig::default().idle_timeout(Duration::from_millis(200)),
        WebSocketConfig::default(),
    )
    .await;
    let server = tokio::spawn(async move { server.recv().await });
    match within(client.recv()).await.unwrap().unwrap() {
        Message::Close(Some(f)) => {
            assert_eq!(f.code, CloseCode::GOING_AWAY);
            assert_eq!(f.reason.as_str(), "idle timeout");
        }
        other => panic!("unexpected {other:?}"),
    }
    let end = within(server).await.unwrap();
    assert!(
        matches!(&end, Some(Err(e)) if e.to_string().contains("idle")),
        "{end:?}"
    );
}

#[tokio::test]
async fn the_close_deadline_ends_a_close_the_peer_never_answers() {
    let (_server, mut client, _conn) = pair(
        WebSocketConfig::default(),
        WebSocketConfig::default().close_timeout(Duration::from_millis(300)),
    )
    .await;
    // The server side is held but never polled: it never answers the close.
    let end = within(client.close(CloseCode::NORMAL, "bye")).await;
    assert!(
        matches!(end, Err(Error::Timeout(why)) if why.contains("close frame")),
        "{end:?}"
    );
}

#[tokio::test]
async fn split_senders_and_receiver_over_a_stream() {
    let (mut server, client, _conn) = default_pair().await;
    tokio::spawn(async move {
        while let Some(Ok(msg)) = server.recv().await {
            if msg.is_data() && server.send(msg).await.is_err() {
                break;
            }
        }
    });
    common::four_split_senders_are_echoed_in_order(client).await;
}
