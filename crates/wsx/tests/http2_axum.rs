//! The axum extractor over HTTP/2 (RFC 8441, features `http2` + `axum`): `axum::serve` on
//! 127.0.0.1 (HTTP/1.1 and h2c on one port), one `any()` route, the wsx HTTP/2 client and the
//! HTTP/1.1 client against it; and the wsx HTTP/2 client against axum's own
//! `axum::extract::ws::WebSocketUpgrade` (hyper's RFC 8441 and tungstenite: a peer we did not
//! write).
#![cfg(all(feature = "http2", feature = "axum"))]

mod common;

use std::net::SocketAddr;

use axum::Router;
use axum::response::Response;
use axum::routing::any;
use common::within;
use tokio::net::TcpListener;
use wsx::axum::WebSocketUpgrade;
use wsx::http2::{Http2Client, Http2Limits};
use wsx::{ClientBuilder, CloseCode, DeflateConfig, HandshakeError, Message, WebSocketConfig};

async fn ws_handler(ws: WebSocketUpgrade) -> Response {
    ws.protocols(["chat"])
        .config(WebSocketConfig::default().compression(DeflateConfig::default()))
        .on_upgrade(|ws| async move {
            let _ = common::echo(ws).await;
        })
}

async fn serve() -> SocketAddr {
    let app = Router::new().route("/ws", any(ws_handler));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::test]
async fn the_axum_extractor_takes_http2_extended_connect() {
    let addr = serve().await;
    let url = format!("ws://{addr}/ws");
    let client = Http2Client::connect(&ClientBuilder::new(url.clone()), &Http2Limits::default())
        .await
        .unwrap();
    let mut sockets = Vec::new();
    for _ in 0..3 {
        let builder = ClientBuilder::new(url.clone())
            .subprotocol("chat")
            .config(WebSocketConfig::default().compression(DeflateConfig::default()));
        let (ws, resp) = within(client.open(builder)).await.unwrap();
        assert_eq!(resp.status, 200);
        assert_eq!(ws.subprotocol(), Some("chat"));
        assert!(ws.is_compressed());
        sockets.push(ws);
    }
    for (i, ws) in sockets.iter_mut().enumerate() {
        let text = format!("over HTTP/2 through axum, socket {i} ").repeat(100);
        ws.send(Message::text(text.clone())).await.unwrap();
        assert_eq!(
            within(ws.recv()).await.unwrap().unwrap(),
            Message::text(text)
        );
    }
    for mut ws in sockets {
        within(ws.close(CloseCode::NORMAL, "")).await.unwrap();
    }

    // No route: axum's 404, over the same connection.
    let err = within(client.open(ClientBuilder::new(format!("ws://{addr}/none"))))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.as_handshake(),
            Some(HandshakeError::Rejected { status: 404, .. })
        ),
        "{err:?}"
    );

    // The same route still upgrades HTTP/1.1 requests.
    let (mut ws, _) = within(wsx::connect(&url)).await.unwrap();
    ws.send(Message::text("h1")).await.unwrap();
    assert_eq!(
        within(ws.recv()).await.unwrap().unwrap(),
        Message::text("h1")
    );
}

/// An echo with axum's own extractor (no permessage-deflate: axum does not offer it).
async fn axums_own_echo(ws: axum::extract::ws::WebSocketUpgrade) -> Response {
    ws.on_upgrade(|mut socket| async move {
        while let Some(Ok(msg)) = socket.recv().await {
            let echo = match msg {
                axum::extract::ws::Message::Text(_) | axum::extract::ws::Message::Binary(_) => msg,
                // tungstenite answers a close itself, sent while `recv` is polled on to the end.
                _ => continue,
            };
            if socket.send(echo).await.is_err() {
                break;
            }
        }
    })
}

#[tokio::test]
async fn the_wsx_http2_client_talks_to_axums_own_extractor() {
    let app = Router::new().route("/own", any(axums_own_echo));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let url = format!("ws://{addr}/own");
    let client = within(Http2Client::connect(
        &ClientBuilder::new(url.clone()),
        &Http2Limits::default(),
    ))
    .await
    .unwrap();
    let mut sockets = Vec::new();
    for _ in 0..2 {
        // Offered, not negotiated.
        let builder = ClientBuilder::new(url.clone())
            .config(WebSocketConfig::default().compression(DeflateConfig::default()));
        let (ws, resp) = within(client.open(builder)).await.unwrap();
        assert_eq!(resp.status, 200);
        assert!(!ws.is_compressed());
        sockets.push(ws);
    }
    for (i, ws) in sockets.iter_mut().enumerate() {
        let text = format!("to axum over HTTP/2, socket {i}");
        ws.send(Message::text(text.clone())).await.unwrap();
        assert_eq!(
            within(ws.recv()).await.unwrap().unwrap(),
            Message::text(text)
        );
        ws.send(Message::binary(vec![i as u8; 70_000]))
            .await
            .unwrap();
        assert_eq!(
            within(ws.recv()).await.unwrap().unwrap(),
            Message::binary(vec![i as u8; 70_000])
        );
    }
    for mut ws in sockets {
        within(ws.close(CloseCode::NORMAL, "")).await.unwrap();
    }
}
