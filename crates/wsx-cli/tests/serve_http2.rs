//! `wsx serve` over HTTP/2: h2c with prior knowledge on the plain listener, ALPN `h2` over TLS.
//! The wsx HTTP/2 client (RFC 8441) opens echo, chat and STOMP WebSockets multiplexed on one
//! TCP connection; plain requests (the page, /healthz, /metrics) go over HTTP/2 with the `h2`
//! crate; HTTP/1.1 clients are served as before; /metrics counts WebSockets per HTTP version.

mod common;

use bytes::Bytes;
use common::Server;
use rcgen::{CertificateParams, KeyPair};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use wsx::http2::{H2WebSocket, Http2Client, Http2Limits};
use wsx::{ClientBuilder, Message};

/// A plain HTTP/2 client (h2c, prior knowledge) to `server`.
async fn h2c(server: &Server) -> h2::client::SendRequest<Bytes> {
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let (send, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    send
}

/// GET `path` over HTTP/2: (status, body).
async fn get(send: &h2::client::SendRequest<Bytes>, authority: &str, path: &str) -> (u16, String) {
    let request = http::Request::get(format!("http://{authority}{path}"))
        .body(())
        .unwrap();
    let mut send = send.clone().ready().await.unwrap();
    let (response, _) = send.send_request(request, true).unwrap();
    let response = response.await.unwrap();
    let status = response.status().as_u16();
    let mut body = response.into_body();
    let mut text = Vec::new();
    while let Some(data) = body.data().await {
        let data = data.unwrap();
        let _ = body.flow_control().release_capacity(data.len());
        text.extend_from_slice(&data);
    }
    (status, String::from_utf8(text).unwrap())
}

/// The value of the metric line starting with `series ` in a Prometheus text.
fn series(text: &str, series: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Open a WebSocket over `client` to `url`.
async fn open(client: &Http2Client, url: &str, protocols: &[&str]) -> H2WebSocket {
    let mut builder = ClientBuilder::new(url)
        .config(wsx::WebSocketConfig::default().compression(Default::default()));
    for p in protocols {
        builder = builder.subprotocol(*p);
    }
    client.open(builder).await.unwrap().0
}

async fn next_text(ws: &mut H2WebSocket) -> String {
    loop {
        match ws.recv().await.unwrap().unwrap() {
            Message::Text(t) => return t.to_string(),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

async fn echo(ws: &mut H2WebSocket, text: &str) {
    ws.send(Message::text(text.to_owned())).await.unwrap();
    assert_eq!(next_text(ws).await, text);
}

#[tokio::test]
async fn h2c_serves_every_route_and_multiplexes_websockets() {
    let server = Server::start(&[]);
    let authority = server.addr.to_string();

    // Plain requests over one HTTP/2 connection.
    let plain = h2c(&server).await;
    let (status, page) = get(&plain, &authority, "/").await;
    assert_eq!(status, 200);
    assert!(
        page.contains("<html") || page.contains("<!doctype"),
        "{page}"
    );
    assert_eq!(
        get(&plain, &authority, "/healthz").await,
        (200, "ok".into())
    );
    assert_eq!(get(&plain, &authority, "/nope").await.0, 404);
    // A plain GET for a WebSocket route: 400 (HTTP/2 has no 426 Upgrade).
    assert_eq!(get(&plain, &authority, "/ws/echo").await.0, 400);

    // WebSockets: echo ×3, chat ×2, STOMP, all on one TCP connection.
    let url = |path: &str| format!("ws://{authority}{path}");
    let client = Http2Client::connect(&ClientBuilder::new(url("/")), &Http2Limits::default())
        .await
        .unwrap();
    let mut echoes = Vec::new();
    for _ in 0..3 {
        echoes.push(open(&client, &url("/ws/echo"), &[]).await);
    }
    for (i, ws) in echoes.iter_mut().enumerate() {
        assert!(ws.is_compressed(), "permessage-deflate over HTTP/2");
        echo(ws, &format!("hello {i}")).await;
    }
    let mut chat = open(&client, &url("/ws/chat/h2room"), &[]).await;
    chat.send(Message::text(json!({"type": "ping", "t": 7}).to_string()))
        .await
        .unwrap();
    let pong: Value = serde_json::from_str(&next_text(&mut chat).await).unwrap();
    assert_eq!(pong, json!({"type": "pong", "t": 7}));
    let mut chat2 = open(&client, &url("/ws/chat/h2room"), &[]).await;
    chat2
        .send(Message::text(json!({"type": "ping", "t": 8}).to_string()))
        .await
        .unwrap();
    let pong: Value = serde_json::from_str(&next_text(&mut chat2).await).unwrap();
    assert_eq!(pong, json!({"type": "pong", "t": 8}));
    let mut stomp = open(&client, &url("/stomp"), &["v12.stomp"]).await;
    assert_eq!(stomp.subprotocol(), Some("v12.stomp"));
    stomp
        .send(Message::text(
            "CONNECT\naccept-version:1.2\nhost:localhost\nheart-beat:0,0\n\n\0",
        ))
        .await
        .unwrap();
    let connected = next_text(&mut stomp).await;
    assert!(connected.starts_with("CONNECTED\n"), "{connected:?}");

    // An HTTP/1.1 client is served as before.
    let (mut ws1, _) = wsx::connect(&server.ws_url("/ws/echo")).await.unwrap();
    ws1.send(Message::text("over 1.1")).await.unwrap();
    assert_eq!(
        ws1.recv().await.unwrap().unwrap(),
        Message::text("over 1.1")
    );
    assert_eq!(
        common::http(server.addr, "GET", "/healthz").await.status,
        200
    );

    // /metrics over HTTP/2 counts the WebSockets per version.
    let (status, metrics) = get(&plain, &authority, "/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(
        series(&metrics, "wsx_websockets_total{http=\"2\"}"),
        Some(6),
        "{metrics}"
    );
    assert_eq!(
        series(&metrics, "wsx_websockets_total{http=\"1.1\"}"),
        Some(1)
    );
    assert_eq!(
        series(&metrics, "wsx_websockets_active{http=\"2\"}"),
        Some(6)
    );
    for ws in &mut echoes {
        ws.close(wsx::CloseCode::NORMAL, "").await.unwrap();
    }
}

#[tokio::test]
async fn tls_offers_h2_and_http11() {
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let dir = std::env::temp_dir().join(format!("wsx-serve-h2-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let server = Server::start(&[
        "--tls-cert",
        cert_path.to_str().unwrap(),
        "--tls-key",
        key_path.to_str().unwrap(),
    ]);
    let tls = || {
        wsx::tls::ClientTlsConfig::new()
            .add_ca_pem(cert.pem().as_bytes())
            .build()
            .unwrap()
    };
    let url = format!("wss://localhost:{}/ws/echo", server.addr.port());

    // ALPN h2: several WebSockets over one TLS connection.
    let client = Http2Client::connect(
        &ClientBuilder::new(url.clone()).tls(tls()),
        &Http2Limits::default(),
    )
    .await
    .unwrap();
    let mut sockets = Vec::new();
    for _ in 0..4 {
        sockets.push(open(&client, &url, &[]).await);
    }
    for (i, ws) in sockets.iter_mut().enumerate() {
        echo(ws, &format!("tls {i}")).await;
    }

    // ALPN http/1.1: the HTTP/1.1 client as before.
    let (mut ws, _) = ClientBuilder::new(url.clone())
        .tls(tls())
        .connect()
        .await
        .unwrap();
    assert!(ws.get_ref().is_tls() && !ws.get_ref().is_http2());
    ws.send(Message::text("tls 1.1")).await.unwrap();
    assert_eq!(ws.recv().await.unwrap().unwrap(), Message::text("tls 1.1"));
    std::fs::remove_dir_all(&dir).unwrap();
}
