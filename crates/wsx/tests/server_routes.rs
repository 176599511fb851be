//! `wsx::Server` as an application server: plain-HTTP routes next to WebSocket routes, over
//! plain TCP and TLS, with the connection limit, the handshake deadline and the graceful
//! shutdown kept by the server. Real sockets on 127.0.0.1.
#![cfg(feature = "rustls")]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use wsx::tls::{ClientTlsConfig, TlsAcceptor, TlsConnector};
use wsx::{
    Answer, ClientBuilder, CloseCode, HttpResponse, Message, Policy, Server, ShutdownHandle,
    Upgrade, WebSocketConfig,
};

async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .expect("timed out")
}

/// Whether the request offers `protocol`.
fn offers(info: &wsx::ConnectionInfo, protocol: &str) -> bool {
    info.request
        .header_values("sec-websocket-protocol")
        .filter_map(|v| std::str::from_utf8(v).ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == protocol)
}

/// The route handler of these tests: `/hello` (plain), `/ws` (echo, subprotocol `chat.v1` when
/// offered, messages up to 16 bytes), 404 for the rest.
fn routes(info: &wsx::ConnectionInfo) -> Answer {
    match info.request.path() {
        "/hello" => HttpResponse::new(200, "hello\n")
            .header("Content-Type", "text/plain")
            .header("X-Route", "hello")
            .into(),
        "/ws" => Upgrade::new(|mut ws, info| async move {
            // The session gets the request it was upgraded from.
            let tls = ws.get_ref().is_tls();
            let greeting = format!("{} tls={tls}", info.request.path());
            if ws.send(Message::text(greeting)).await.is_err() {
                return;
            }
            while let Some(Ok(msg)) = ws.recv().await {
                if msg.is_data() && ws.send(msg).await.is_err() {
                    break;
                }
            }
        })
        .accept(wsx::Accept {
            subprotocol: offers(info, "chat.v1").then(|| "chat.v1".to_owned()),
            headers: vec![("X-Route".to_owned(), "ws".to_owned())],
        })
        .config(WebSocketConfig::default().max_message_size(16))
        .into(),
        _ => Answer::text(404, "not found\n"),
    }
}

/// A server on 127.0.0.1 serving [`routes`]; counts handshake failures in `failures`.
struct Running {
    addr: SocketAddr,
    stop: ShutdownHandle,
    failures: Arc<AtomicUsize>,
    done: JoinHandle<std::io::Result<()>>,
}

async fn start(policy: Policy, tls: Option<TlsAcceptor>) -> Running {
    let failures = Arc::new(AtomicUsize::new(0));
    let counted = failures.clone();
    let mut server = Server::bind("127.0.0.1:0")
        .await
        .unwrap()
        .policy(policy)
        .on_handshake_failure(move |_, peer| {
            assert!(peer.ip().is_loopback());
            counted.fetch_add(1, Ordering::SeqCst);
        });
    if let Some(tls) = tls {
        server = server.tls(tls);
    }
    let addr = server.local_addr().unwrap();
    let stop = server.shutdown_handle();
    let done = tokio::spawn(server.serve_routes(routes));
    Running {
        addr,
        stop,
        failures,
        done,
    }
}

/// A self-signed certificate for `localhost`: the acceptor, and a connector that trusts it.
fn tls_pair() -> (TlsAcceptor, TlsConnector) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert_pem, key_pem) = (cert.cert.pem(), cert.signing_key.serialize_pem());
    let acceptor = TlsAcceptor::from_pem(cert_pem.as_bytes(), key_pem.as_bytes()).unwrap();
    let connector = ClientTlsConfig::new()
        .webpki_roots(false)
        .add_ca_pem(cert_pem)
        .build()
        .unwrap();
    (acceptor, connector)
}

/// Send `request` and read the whole response (the server closes after it).
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(io: &mut S, request: &str) -> String {
    io.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    within(io.read_to_end(&mut response)).await.unwrap();
    String::from_utf8(response).unwrap()
}

/// Wait until the server serves `n` connections.
async fn wait_for_active(stop: &ShutdownHandle, n: usize) {
    within(async {
        while stop.active_connections() != n {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

/// Read until the server closes `tcp`, expecting nothing before.
async fn assert_closed_without_a_byte(tcp: &mut TcpStream) {
    let mut received = Vec::new();
    within(tcp.read_to_end(&mut received)).await.unwrap();
    assert!(
        received.is_empty(),
        "{}",
        String::from_utf8_lossy(&received)
    );
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n")
}

/// The greeting, an echo, and a message over the route's 16-byte limit closed with 1009.
async fn check_ws_route<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut wsx::WebSocket<S>, tls: bool) {
    let greeting = within(ws.recv()).await.unwrap().unwrap();
    assert_eq!(greeting, Message::text(format!("/ws tls={tls}")));
    ws.send(Message::text("ping")).await.unwrap();
    assert_eq!(
        within(ws.recv()).await.unwrap().unwrap(),
        Message::text("ping")
    );
    ws.send(Message::binary(vec![0u8; 17])).await.unwrap();
    let close = within(ws.recv()).await.unwrap().unwrap();
    let Message::Close(Some(frame)) = close else {
        panic!("expected a close frame, got {close:?}");
    };
    assert_eq!(frame.code, CloseCode::MESSAGE_TOO_BIG);
}

fn header<'a>(response: &'a wsx::ClientResponse, name: &str) -> Option<&'a [u8]> {
    response
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_slice())
}

#[tokio::test]
async fn plain_routes_are_answered_and_websocket_routes_upgraded() {
    let server = start(Policy::default(), None).await;
    let addr = server.addr;

    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let response = exchange(&mut tcp, &get("/hello")).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("X-Route: hello\r\n"), "{response}");
    assert!(response.ends_with("\r\n\r\nhello\n"), "{response}");

    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let response = exchange(&mut tcp, &get("/elsewhere")).await;
    assert!(response.starts_with("HTTP/1.1 404"), "{response}");
    assert_eq!(server.failures.load(Ordering::SeqCst), 0);

    // A plain GET on the WebSocket route: 426, reported to the hook before the answer.
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let response = exchange(&mut tcp, &get("/ws")).await;
    assert!(response.starts_with("HTTP/1.1 426"), "{response}");
    assert_eq!(server.failures.load(Ordering::SeqCst), 1);

    let (mut ws, response) = ClientBuilder::new(format!("ws://{addr}/ws"))
        .subprotocol("other")
        .subprotocol("chat.v1")
        .connect()
        .await
        .unwrap();
    assert_eq!(response.subprotocol.as_deref(), Some("chat.v1"));
    assert_eq!(header(&response, "x-route"), Some(&b"ws"[..]));
    check_ws_route(&mut ws, false).await;
}

#[tokio::test]
async fn routes_are_served_over_tls() {
    let (acceptor, connector) = tls_pair();
    let server = start(Policy::default(), Some(acceptor)).await;
    let port = server.addr.port();

    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let mut tls = connector.connect("localhost", tcp).await.unwrap();
    let response = exchange(&mut tls, &get("/hello")).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("\r\n\r\nhello\n"), "{response}");

    let (mut ws, response) = ClientBuilder::new(format!("wss://localhost:{port}/ws"))
        .subprotocol("chat.v1")
        .tls(connector)
        .connect()
        .await
        .unwrap();
    assert_eq!(response.subprotocol.as_deref(), Some("chat.v1"));
    check_ws_route(&mut ws, true).await;
}

#[tokio::test]
async fn connections_past_the_limit_are_refused_with_routes_too() {
    // Plain TCP: 503, whatever the route.
    let server = start(Policy::default().max_connections(1), None).await;
    let (_held, _) = wsx::connect(&format!("ws://{}/ws", server.addr))
        .await
        .unwrap();
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    let response = exchange(&mut tcp, &get("/hello")).await;
    assert!(response.starts_with("HTTP/1.1 503"), "{response}");
    assert!(response.contains("Retry-After: 1\r\n"), "{response}");

    // TLS: closed without a byte (the client expects a TLS handshake, not a 503).
    let (acceptor, connector) = tls_pair();
    let server = start(Policy::default().max_connections(1), Some(acceptor)).await;
    let port = server.addr.port();
    let (_held, _) = ClientBuilder::new(format!("wss://localhost:{port}/ws"))
        .tls(connector.clone())
        .connect()
        .await
        .unwrap();
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    assert_closed_without_a_byte(&mut tcp).await;
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    assert!(connector.connect("localhost", tcp).await.is_err());
}

#[tokio::test]
async fn a_client_that_never_starts_tls_is_cut_off_at_the_handshake_deadline() {
    let (acceptor, connector) = tls_pair();
    let policy = Policy::default().handshake_timeout(Duration::from_millis(300));
    let server = start(policy, Some(acceptor)).await;
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    assert_closed_without_a_byte(&mut silent).await;
    // Another client is still served, and the silent one no longer counts.
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let mut tls = connector.connect("localhost", tcp).await.unwrap();
    let response = exchange(&mut tls, &get("/hello")).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    wait_for_active(&server.stop, 0).await;
}

#[tokio::test]
async fn shutdown_sends_1001_to_routed_websockets_and_closes_waiting_heads() {
    // Long deadlines: the shutdown must not wait for them.
    let policy = Policy::default()
        .handshake_timeout(Duration::from_secs(60))
        .shutdown_timeout(Duration::from_secs(60));
    let server = start(policy, None).await;
    let (mut ws, _) = wsx::connect(&format!("ws://{}/ws", server.addr))
        .await
        .unwrap();
    within(ws.recv()).await.unwrap().unwrap();
    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(b"GET /hello HTTP/1.1\r\nHo").await.unwrap();
    wait_for_active(&server.stop, 2).await;

    server.stop.shutdown();
    let close = within(ws.recv()).await.unwrap().unwrap();
    let Message::Close(Some(frame)) = close else {
        panic!("expected a close frame, got {close:?}");
    };
    assert_eq!(frame.code, CloseCode::GOING_AWAY);
    assert!(within(ws.recv()).await.is_none());
    assert_closed_without_a_byte(&mut slow).await;
    within(server.done).await.unwrap().unwrap();
    assert!(TcpStream::connect(server.addr).await.is_err());
}

#[tokio::test]
async fn abort_cuts_the_shutdown_short() {
    let policy = Policy::default().shutdown_timeout(Duration::from_secs(60));
    let server = start(policy, None).await;
    // A client that never reads: it never answers the close.
    let (_deaf, _) = wsx::connect(&format!("ws://{}/ws", server.addr))
        .await
        .unwrap();
    wait_for_active(&server.stop, 1).await;
    server.stop.shutdown();
    server.stop.abort();
    within(server.done).await.unwrap().unwrap();
    assert_eq!(server.stop.active_connections(), 0);
}

#[tokio::test]
async fn serve_refuses_to_start_with_tls() {
    let (acceptor, _) = tls_pair();
    let server = Server::bind("127.0.0.1:0").await.unwrap().tls(acceptor);
    let err = server.serve(|_ws, _info| async {}).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}

#[tokio::test]
async fn shutdown_does_not_wait_for_request_heads() {
    let policy = Policy::default()
        .handshake_timeout(Duration::from_secs(60))
        .shutdown_timeout(Duration::from_secs(60));
    let server = Server::bind("127.0.0.1:0").await.unwrap().policy(policy);
    let (addr, stop) = (server.local_addr().unwrap(), server.shutdown_handle());
    let done = tokio::spawn(server.serve(|_ws, _info| async {}));
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHo").await.unwrap();
    wait_for_active(&stop, 1).await;
    stop.shutdown();
    within(done).await.unwrap().unwrap();
    assert_closed_without_a_byte(&mut slow).await;
}

#[tokio::test]
async fn a_session_that_handles_shutdown_closes_on_its_own_signal() {
    let (signal_tx, signal_rx) = tokio::sync::watch::channel(false);
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let (addr, stop) = (server.local_addr().unwrap(), server.shutdown_handle());
    let done = tokio::spawn(server.serve_routes(move |_| {
        let mut signal = signal_rx.clone();
        Upgrade::new(|mut ws, _| async move {
            tokio::select! {
                _ = signal.wait_for(|&stop| stop) => {}
                _ = async { while let Some(Ok(_)) = ws.recv().await {} } => return,
            }
            let _ = ws.close(CloseCode::from(4000), "own signal").await;
        })
        .session_handles_shutdown()
        .into()
    }));
    let (mut ws, _) = wsx::connect(&format!("ws://{addr}/")).await.unwrap();
    wait_for_active(&stop, 1).await;
    stop.shutdown();
    // The listener is closed once the server has seen the shutdown.
    within(async {
        while TcpStream::connect(addr).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    signal_tx.send(true).unwrap();
    let close = within(ws.recv()).await.unwrap().unwrap();
    let Message::Close(Some(frame)) = close else {
        panic!("expected a close frame, got {close:?}");
    };
    assert_eq!(frame.code, CloseCode::from(4000));
    assert!(within(ws.recv()).await.is_none());
    within(done).await.unwrap().unwrap();
}
