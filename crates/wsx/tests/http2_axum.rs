//! The axum extractor over HTTP/2 (RFC 8441, features `http2` + `axum`): `axum::serve` on
//! 127.0.0.1 (HTTP/1.1 and h2c on one port), one `any()` route, the wsx HTTP/2 client and the
//! HTTP/1.1 client against it.
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
