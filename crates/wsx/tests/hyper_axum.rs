//! The hyper and axum integrations over real sockets on 127.0.0.1: a hyper 1 server and an axum
//! router upgrade to wsx, driven by the wsx client (and raw HTTP for the refusals).
//!
//! Run with `cargo test -p wsx --features hyper,axum`.
#![cfg(feature = "hyper")]

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wsx::HandshakeError;
use wsx::hyper_upgrade::{HyperWebSocket, error_response, upgrade};
use wsx::{Accept, ClientBuilder, CloseCode, DeflateConfig, Message, WebSocketConfig};

async fn timeout<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .expect("timed out")
}

/// Server side of every test: first a text message describing the connection
/// (`proto=<subprotocol or -> deflate=<bool>`), then echo data messages until the close.
async fn describe_and_echo(mut ws: HyperWebSocket) {
    let info = format!(
        "proto={} deflate={}",
        ws.subprotocol().unwrap_or("-"),
        ws.is_compressed()
    );
    if ws.send(Message::text(info)).await.is_err() {
        return;
    }
    while let Some(Ok(msg)) = ws.recv().await {
        if msg.is_data() && ws.send(msg).await.is_err() {
            break;
        }
    }
}

/// A compressing server configuration.
fn deflate_config() -> WebSocketConfig {
    WebSocketConfig::default().compression(DeflateConfig::default())
}

/// Send `request` (a whole HTTP/1.1 request head) on a fresh connection and read the response
/// until the server closes the connection.
async fn raw_http(addr: SocketAddr, request: &str) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    timeout(tcp.read_to_end(&mut out)).await.unwrap();
    String::from_utf8(out).unwrap()
}

/// The status code of a raw response.
fn status_of(response: &str) -> u16 {
    response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {response:?}"))
}

/// Whether a raw response has the header `name: value` (case-insensitive name).
fn has_header(response: &str, name: &str, value: &str) -> bool {
    let head = response.split("\r\n\r\n").next().unwrap_or_default();
    head.lines().skip(1).any(|line| {
        line.split_once(':').is_some_and(|(n, v)| {
            n.trim().eq_ignore_ascii_case(name) && v.trim().eq_ignore_ascii_case(value)
        })
    })
}

/// Send a message and expect it back.
async fn round_trip<S>(ws: &mut wsx::WebSocket<S>, msg: Message)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    ws.send(msg.clone()).await.unwrap();
    let back = timeout(ws.recv()).await.unwrap().unwrap();
    assert_eq!(back, msg);
}

/// Read the server's description message.
async fn info<S>(ws: &mut wsx::WebSocket<S>) -> String
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let msg = timeout(ws.recv()).await.unwrap().unwrap();
    msg.as_text().expect("a text message").to_owned()
}

// ---------------------------------------------------------------------------------------------
// hyper

/// A hyper 1 HTTP/1.1 server: `/ws` upgrades to WebSocket (with `config`, subprotocol `chat`
/// when offered and an `X-Server: wsx` header) and runs [`describe_and_echo`]; any other path
/// answers `plain` with 200.
async fn hyper_server(config: WebSocketConfig) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let config = config.clone();
            let service = service_fn(move |req| handle(req, config.clone()));
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    addr
}

async fn handle(
    mut req: Request<Incoming>,
    config: WebSocketConfig,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.uri().path() != "/ws" {
        return Ok(Response::new(Full::new(Bytes::from_static(b"plain"))));
    }
    let offered = wsx::hyper_upgrade::http_request(&req)
        .header_values("sec-websocket-protocol")
        .any(|v| v.split(|&b| b == b',').any(|p| p.trim_ascii() == b"chat"));
    let accept = Accept {
        subprotocol: offered.then(|| "chat".to_owned()),
        headers: vec![("X-Server".into(), "wsx".into())],
    };
    match upgrade(&mut req, &config, accept) {
        Ok((response, websocket)) => {
            tokio::spawn(async move {
                if let Ok(ws) = websocket.await {
                    describe_and_echo(ws).await;
                }
            });
            Ok(response)
        }
        Err(e) => Ok(error_response(&e)),
    }
}

#[tokio::test]
async fn hyper_upgrade_echoes_over_a_real_socket() {
    let addr = hyper_server(WebSocketConfig::default()).await;
    let (mut ws, resp) = ClientBuilder::new(format!("ws://{addr}/ws"))
        .subprotocol("chat")
        .connect()
        .await
        .unwrap();
    assert_eq!(resp.status, 101);
    assert_eq!(resp.subprotocol.as_deref(), Some("chat"));
    assert_eq!(resp.header("x-server"), Some(&b"wsx"[..]));
    assert_eq!(info(&mut ws).await, "proto=chat deflate=false");

    let big: Vec<u8> = (0..(1 << 20)).map(|i| (i * 7 % 251) as u8).collect();
    for msg in [
        Message::text("hello"),
        Message::text(""),
        Message::text("κόσμε ✓"),
        Message::binary(vec![0u8, 1, 2, 255]),
        Message::binary(big),
    ] {
        round_trip(&mut ws, msg).await;
    }
    // Many queued messages in one write, all echoed in order.
    for i in 0..200 {
        ws.feed(Message::text(format!("m{i}"))).unwrap();
    }
    ws.flush().await.unwrap();
    for i in 0..200 {
        let m = timeout(ws.recv()).await.unwrap().unwrap();
        assert_eq!(m.as_text(), Some(format!("m{i}").as_str()));
    }
    timeout(ws.close(CloseCode::NORMAL, "done")).await.unwrap();
}

#[tokio::test]
async fn hyper_negotiates_compression_when_offered() {
    let addr = hyper_server(deflate_config()).await;
    let url = format!("ws://{addr}/ws");

    let (mut ws, resp) = ClientBuilder::new(&url)
        .config(deflate_config())
        .connect()
        .await
        .unwrap();
    assert!(ws.is_compressed());
    assert_eq!(resp.extensions.len(), 1);
    assert!(resp.extensions[0].starts_with("permessage-deflate"));
    assert_eq!(info(&mut ws).await, "proto=- deflate=true");
    round_trip(&mut ws, Message::text("compress me ".repeat(1000))).await;
    timeout(ws.close(CloseCode::NORMAL, "")).await.unwrap();

    // A client that offers nothing gets no compression.
    let (mut ws, resp) = ClientBuilder::new(&url).connect().await.unwrap();
    assert!(!ws.is_compressed());
    assert!(resp.extensions.is_empty());
    assert_eq!(info(&mut ws).await, "proto=- deflate=false");
    round_trip(&mut ws, Message::text("plain ".repeat(1000))).await;
}

#[tokio::test]
async fn hyper_refuses_invalid_upgrades_with_http_errors() {
    let addr = hyper_server(WebSocketConfig::default()).await;

    let plain = raw_http(addr, "GET /ws HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(status_of(&plain), 426, "{plain}");
    assert!(has_header(&plain, "upgrade", "websocket"), "{plain}");

    let head = |version: &str, key: &str| {
        format!(
            "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Version: {version}\r\nSec-WebSocket-Key: {key}\r\n\r\n"
        )
    };
    let v8 = raw_http(addr, &head("8", "dGhlIHNhbXBsZSBub25jZQ==")).await;
    assert_eq!(status_of(&v8), 426, "{v8}");
    assert!(has_header(&v8, "sec-websocket-version", "13"), "{v8}");

    let bad_key = raw_http(addr, &head("13", "short")).await;
    assert_eq!(status_of(&bad_key), 400, "{bad_key}");

    let post = raw_http(
        addr,
        "POST /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Content-Length: 0\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&post), 405, "{post}");
    assert!(has_header(&post, "allow", "GET"), "{post}");

    // The wsx client sees the refusal as a handshake error with the status.
    let err = wsx::connect(&format!("ws://{addr}/elsewhere"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.as_handshake(),
            Some(HandshakeError::Rejected { status: 200, .. })
        ),
        "{err:?}"
    );

    // Other routes are still plain HTTP.
    let page = raw_http(
        addr,
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&page), 200, "{page}");
    assert!(page.ends_with("plain"), "{page}");
}

// ---------------------------------------------------------------------------------------------
// axum

#[cfg(feature = "axum")]
mod axum_tests {
    use super::*;
    use axum::Router;
    use axum::response::{IntoResponse, Response};
    use axum::routing::get;
    use wsx::axum::WebSocketUpgrade;

    /// `/ws`: subprotocols `v2` then `v1` (server preference), compression, an extra header.
    async fn ws_route(ws: WebSocketUpgrade) -> Response {
        ws.protocols(["v2", "v1"])
            .config(deflate_config())
            .header("X-Route", "ws")
            .on_upgrade(describe_and_echo)
    }

    /// `/nodeflate`: default settings, no compression.
    async fn no_deflate_route(ws: WebSocketUpgrade) -> Response {
        ws.on_upgrade(describe_and_echo)
    }

    /// `/`: a page for plain requests, a WebSocket for upgrades.
    async fn page_or_ws(ws: Option<WebSocketUpgrade>) -> Response {
        match ws {
            Some(ws) => ws.on_upgrade(describe_and_echo),
            None => "page".into_response(),
        }
    }

    async fn axum_server() -> SocketAddr {
        let app = Router::new()
            .route("/", get(page_or_ws))
            .route("/ws", get(ws_route))
            .route("/nodeflate", get(no_deflate_route))
            .route("/text", get(|| async { "text" }));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    }

    #[tokio::test]
    async fn axum_extractor_echoes() {
        let addr = axum_server().await;
        let (mut ws, resp) = wsx::connect(&format!("ws://{addr}/ws")).await.unwrap();
        assert_eq!(resp.status, 101);
        assert_eq!(resp.header("x-route"), Some(&b"ws"[..]));
        assert_eq!(resp.subprotocol, None);
        assert_eq!(info(&mut ws).await, "proto=- deflate=false");
        let big: Vec<u8> = (0..(1 << 20)).map(|i| (i * 13 % 251) as u8).collect();
        for msg in [
            Message::text("hello axum"),
            Message::binary(vec![9u8; 3]),
            Message::binary(big),
        ] {
            round_trip(&mut ws, msg).await;
        }
        timeout(ws.close(CloseCode::NORMAL, "bye")).await.unwrap();
        // After the close handshake the connection is over.
        assert!(timeout(ws.recv()).await.is_none());
    }

    #[tokio::test]
    async fn axum_selects_the_subprotocol_in_server_order() {
        let addr = axum_server().await;
        let url = format!("ws://{addr}/ws");
        for (offered, selected) in [
            (&["v1", "v2"][..], Some("v2")),
            (&["v1"][..], Some("v1")),
            (&["v3", "v1"][..], Some("v1")),
            (&["v3"][..], None),
            (&["V2"][..], None),
        ] {
            let mut client = ClientBuilder::new(&url);
            for p in offered {
                client = client.subprotocol(*p);
            }
            let (mut ws, resp) = client.connect().await.unwrap();
            assert_eq!(resp.subprotocol.as_deref(), selected, "offered {offered:?}");
            assert_eq!(ws.subprotocol(), selected);
            assert_eq!(
                info(&mut ws).await,
                format!("proto={} deflate=false", selected.unwrap_or("-"))
            );
            timeout(ws.close(CloseCode::NORMAL, "")).await.unwrap();
        }
    }

    #[tokio::test]
    async fn axum_negotiates_compression_when_offered() {
        let addr = axum_server().await;

        let (mut ws, resp) = ClientBuilder::new(format!("ws://{addr}/ws"))
            .config(deflate_config())
            .subprotocol("v1")
            .connect()
            .await
            .unwrap();
        assert!(ws.is_compressed());
        assert!(resp.extensions[0].starts_with("permessage-deflate"));
        assert_eq!(info(&mut ws).await, "proto=v1 deflate=true");
        round_trip(&mut ws, Message::text("squeeze ".repeat(2000))).await;
        round_trip(&mut ws, Message::binary(vec![7u8; 100_000])).await;
        timeout(ws.close(CloseCode::NORMAL, "")).await.unwrap();

        // A route without compression declines the offer.
        let (mut ws, resp) = ClientBuilder::new(format!("ws://{addr}/nodeflate"))
            .config(deflate_config())
            .connect()
            .await
            .unwrap();
        assert!(!ws.is_compressed());
        assert!(resp.extensions.is_empty());
        assert_eq!(info(&mut ws).await, "proto=- deflate=false");
        round_trip(&mut ws, Message::text("squeeze ".repeat(2000))).await;
    }

    #[tokio::test]
    async fn axum_refuses_a_plain_get_on_the_websocket_route() {
        let addr = axum_server().await;

        let plain = raw_http(addr, "GET /ws HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert_eq!(status_of(&plain), 426, "{plain}");
        assert!(has_header(&plain, "upgrade", "websocket"), "{plain}");
        assert!(plain.contains("requires a WebSocket upgrade"), "{plain}");

        let v12 = raw_http(
            addr,
            "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Version: 12\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
        .await;
        assert_eq!(status_of(&v12), 426, "{v12}");
        assert!(has_header(&v12, "sec-websocket-version", "13"), "{v12}");

        let no_key = raw_http(
            addr,
            "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n",
        )
        .await;
        assert_eq!(status_of(&no_key), 400, "{no_key}");

        // Plain routes are unaffected.
        let text = raw_http(
            addr,
            "GET /text HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert_eq!(status_of(&text), 200, "{text}");
        assert!(text.ends_with("text"), "{text}");
    }

    #[tokio::test]
    async fn axum_optional_extractor_serves_a_page_and_a_websocket() {
        let addr = axum_server().await;

        let page = raw_http(
            addr,
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert_eq!(status_of(&page), 200, "{page}");
        assert!(page.ends_with("page"), "{page}");

        let (mut ws, _) = wsx::connect(&format!("ws://{addr}/")).await.unwrap();
        assert_eq!(info(&mut ws).await, "proto=- deflate=false");
        round_trip(&mut ws, Message::text("same route")).await;
        timeout(ws.close(CloseCode::NORMAL, "")).await.unwrap();

        // An upgrade request that is invalid is still refused, not served as a page.
        let bad = raw_http(
            addr,
            "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: nope\r\n\r\n",
        )
        .await;
        assert_eq!(status_of(&bad), 400, "{bad}");
    }
}
