//! WebSocket over HTTP/2 (RFC 8441, feature `http2`): the wsx client against the wsx server,
//! over real TCP connections on 127.0.0.1 (h2c with prior knowledge); and Python's `h2` as a
//! raw RFC 8441 client (scripts/interop/h2_peer.py, run by the interop venv's Python or
//! `WSX_TEST_PYTHON`; skipped without it, except under `CI=true`); and
//! `ClientBuilder::connect_prefer_http2` against TLS servers with and without HTTP/2 and RFC 8441.
#![cfg(all(feature = "http2", feature = "rustls"))]

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc};
use wsx::http2::{H2WebSocket, Http2Client, Http2Limits, Http2Server, PreferHttp2Stream};
use wsx::tls::{ALPN_H2, ALPN_HTTP11, ClientTlsConfig, TlsAcceptor};
use wsx::{
    Accept, ClientBuilder, CloseCode, Error, HandshakeError, Message, Policy, Reject,
    WebSocketConfig,
};

const ORIGIN: &str = "https://app.example";

/// A wsx HTTP/2 server on 127.0.0.1 with a few routes; its sessions report what they saw.
struct TestServer {
    addr: SocketAddr,
    /// TCP connections accepted.
    connections: Arc<AtomicUsize>,
    /// What the sessions saw (the peer's close, an error …).
    events: mpsc::UnboundedReceiver<String>,
    /// Lets the `/hold` session start reading.
    release: Arc<Notify>,
}

impl TestServer {
    async fn start() -> TestServer {
        Self::start_with(Http2Limits::default()).await
    }

    async fn start_with(limits: Http2Limits) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let (tx, events) = mpsc::unbounded_channel();
        let release = Arc::new(Notify::new());
        let policy = Policy::default()
            .allow_origin(ORIGIN)
            .subprotocol("chat")
            .auth(|req, _peer| {
                if req.path() == "/private" && req.header_str("authorization") != Some("Bearer ok")
                {
                    return Err(Reject::new(401, "who are you?"));
                }
                Ok(Accept::default())
            });
        let server = Http2Server::new()
            .config(WebSocketConfig::default().compression(Default::default()))
            .policy(policy)
            .limits(limits);
        let counted = connections.clone();
        let held = release.clone();
        tokio::spawn(async move {
            while let Ok((tcp, peer)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                let (server, tx, held) = (server.clone(), tx.clone(), held.clone());
                tokio::spawn(async move {
                    let _ = server
                        .serve_connection(tcp, peer, |info| route(info.request.path(), &tx, &held))
                        .await;
                });
            }
        });
        TestServer {
            addr,
            connections,
            events,
            release,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    async fn client(&self) -> Http2Client {
        Http2Client::connect(&ClientBuilder::new(self.url("/")), &Http2Limits::default())
            .await
            .unwrap()
    }

    async fn event(&mut self) -> String {
        tokio::time::timeout(Duration::from_secs(10), self.events.recv())
            .await
            .expect("a session event")
            .expect("the server runs")
    }
}

type Session = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

fn route(
    path: &str,
    tx: &mpsc::UnboundedSender<String>,
    release: &Arc<Notify>,
) -> Result<Box<dyn FnOnce(H2WebSocket, wsx::ConnectionInfo) -> Session + Send>, Reject> {
    let tx = tx.clone();
    let release = release.clone();
    Ok(match path {
        "/echo" | "/private" => Box::new(move |mut ws, _| {
            Box::pin(async move {
                let end = loop {
                    match ws.recv().await {
                        Some(Ok(msg)) if msg.is_data() => {
                            if ws.send(msg).await.is_err() {
                                break "send failed".to_owned();
                            }
                        }
                        Some(Ok(_)) => {}
                        Some(Err(e)) => break format!("error: {e:?}"),
                        None => break format!("closed: {:?}", ws.peer_close_frame()),
                    }
                };
                let _ = tx.send(end);
            })
        }),
        // Reads nothing until released, then answers the size of the one message it reads.
        "/hold" => Box::new(move |mut ws, _| {
            Box::pin(async move {
                release.notified().await;
                if let Some(Ok(msg)) = ws.recv().await {
                    let _ = ws
                        .send(Message::text(msg.payload().len().to_string()))
                        .await;
                }
                let _ = tx.send("released".into());
            })
        }),
        // Drops the WebSocket at once, without a close handshake: RST_STREAM.
        "/drop" => Box::new(move |ws, _| {
            Box::pin(async move {
                drop(ws);
                let _ = tx.send("dropped".into());
            })
        }),
        _ => return Err(Reject::new(404, "no such route")),
    })
}

fn builder(server: &TestServer, path: &str) -> ClientBuilder {
    ClientBuilder::new(server.url(path)).origin(ORIGIN)
}

fn rejected_status(err: &Error) -> Option<u16> {
    match err.as_handshake() {
        Some(HandshakeError::Rejected { status, .. }) => Some(*status),
        _ => None,
    }
}

#[tokio::test]
async fn echo_ping_subprotocol_deflate_and_close_code() {
    let mut server = TestServer::start().await;
    let client = server.client().await;
    let (mut ws, resp) = client
        .open(
            builder(&server, "/echo")
                .subprotocol("chat")
                .config(WebSocketConfig::default().compression(Default::default())),
        )
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(ws.subprotocol(), Some("chat"));
    assert!(ws.is_compressed(), "permessage-deflate over HTTP/2");

    let text = "hello over h2 ".repeat(1000);
    ws.send(Message::text(text.clone())).await.unwrap();
    assert_eq!(ws.recv().await.unwrap().unwrap(), Message::text(text));
    let binary: Vec<u8> = (0..200_000u32).map(|i| (i * 7) as u8).collect();
    ws.send(Message::binary(binary.clone())).await.unwrap();
    assert_eq!(ws.recv().await.unwrap().unwrap(), Message::binary(binary));
    ws.send(Message::Ping("are you there".into()))
        .await
        .unwrap();
    assert_eq!(
        ws.recv().await.unwrap().unwrap(),
        Message::Pong("are you there".into())
    );

    // `close` waits for the server's close frame and its END_STREAM.
    ws.close(CloseCode(4001), "bye").await.unwrap();
    assert_eq!(ws.peer_close_frame().map(|f| f.code), Some(CloseCode(4001)));
    assert!(ws.recv().await.is_none(), "nothing after the close");
    let seen = server.event().await;
    assert!(seen.contains("4001") && seen.contains("bye"), "{seen}");
}

#[tokio::test]
async fn eight_websockets_share_one_tcp_connection() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let mut sessions = Vec::new();
    for i in 0..8 {
        let client = client.clone();
        let builder = builder(&server, "/echo");
        sessions.push(tokio::spawn(async move {
            let (mut ws, _) = client.open(builder).await.unwrap();
            let id = ws.get_ref().stream_id();
            for n in 0..20 {
                let msg = Message::text(format!("socket {i} message {n}"));
                ws.send(msg.clone()).await.unwrap();
                assert_eq!(ws.recv().await.unwrap().unwrap(), msg);
            }
            ws.close(CloseCode::NORMAL, "").await.unwrap();
            while ws.recv().await.is_some() {}
            id
        }));
    }
    let mut ids = Vec::new();
    for s in sessions {
        ids.push(s.await.unwrap());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 8, "eight streams");
    assert_eq!(server.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn past_max_concurrent_streams_open_waits_for_a_stream_to_end() {
    let server = TestServer::start_with(Http2Limits::default().max_concurrent_streams(2)).await;
    let client = server.client().await;
    let (mut first, _) = client.open(builder(&server, "/echo")).await.unwrap();
    let (_second, _) = client.open(builder(&server, "/echo")).await.unwrap();
    let mut third = tokio::spawn({
        let (client, builder) = (client.clone(), builder(&server, "/echo"));
        async move { client.open(builder).await }
    });
    // Both streams are open: the third waits (a deadline is all that can show it waits).
    let early = tokio::time::timeout(Duration::from_millis(200), &mut third).await;
    assert!(early.is_err(), "a third stream while two are open");
    // The builder's connect timeout bounds the wait.
    let bounded = builder(&server, "/echo").connect_timeout(Duration::from_millis(100));
    let err = client.open(bounded).await.unwrap_err();
    assert!(matches!(err, Error::Timeout(_)), "{err:?}");
    first.close(CloseCode::NORMAL, "").await.unwrap();
    let (mut third, _) = third.await.unwrap().unwrap();
    third.send(Message::text("third")).await.unwrap();
    assert_eq!(third.recv().await.unwrap().unwrap(), Message::text("third"));
}

#[tokio::test]
async fn refusals_carry_their_http_status_and_leave_the_connection_usable() {
    let server = TestServer::start().await;
    let client = server.client().await;

    let err = client.open(builder(&server, "/nowhere")).await.unwrap_err();
    assert_eq!(rejected_status(&err), Some(404), "{err:?}");
    // The route answers before the policy, as over HTTP/1.1.
    let nowhere = ClientBuilder::new(server.url("/nowhere")).origin("https://evil.example");
    let err = client.open(nowhere).await.unwrap_err();
    assert_eq!(rejected_status(&err), Some(404), "{err:?}");

    let wrong_origin = ClientBuilder::new(server.url("/echo")).origin("https://evil.example");
    let err = client.open(wrong_origin).await.unwrap_err();
    assert_eq!(rejected_status(&err), Some(403), "{err:?}");
    let no_origin = ClientBuilder::new(server.url("/echo"));
    let err = client.open(no_origin).await.unwrap_err();
    assert_eq!(rejected_status(&err), Some(403), "{err:?}");

    let err = client.open(builder(&server, "/private")).await.unwrap_err();
    assert_eq!(rejected_status(&err), Some(401), "{err:?}");
    // A request head over max_header_list_size (16 KiB): 431.
    let oversized = builder(&server, "/echo").header("x-big", "b".repeat(20 * 1024));
    let err = client.open(oversized).await.unwrap_err();
    assert_eq!(rejected_status(&err), Some(431), "{err:?}");

    let authorized = builder(&server, "/private").header("Authorization", "Bearer ok");
    let (mut ws, _) = client.open(authorized).await.unwrap();
    ws.send(Message::text("in")).await.unwrap();
    assert_eq!(ws.recv().await.unwrap().unwrap(), Message::text("in"));
    assert_eq!(server.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_reset_stream_is_an_abnormal_close_on_both_sides() {
    let mut server = TestServer::start().await;
    let client = server.client().await;

    // The server drops its WebSocket: the client's read ends without a close frame
    // (END_STREAM then RST_STREAM NO_ERROR, as a TCP socket dropped without a close).
    let (mut ws, _) = client.open(builder(&server, "/drop")).await.unwrap();
    assert_eq!(server.event().await, "dropped");
    match ws.recv().await {
        Some(Err(Error::ConnectionReset)) => {}
        other => panic!("expected an abnormal close, got {other:?}"),
    }

    // The client drops its WebSocket (RST_STREAM CANCEL): the server's session sees the same.
    let (mut ws, _) = client.open(builder(&server, "/echo")).await.unwrap();
    ws.send(Message::text("x")).await.unwrap();
    assert_eq!(ws.recv().await.unwrap().unwrap(), Message::text("x"));
    drop(ws);
    assert_eq!(server.event().await, "error: ConnectionReset");

    // Streams end, the connection stays.
    let (mut ws, _) = client.open(builder(&server, "/echo")).await.unwrap();
    ws.send(Message::text("still here")).await.unwrap();
    assert_eq!(
        ws.recv().await.unwrap().unwrap(),
        Message::text("still here")
    );
    assert_eq!(server.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn flow_control_holds_a_peer_whose_reader_does_not_read() {
    let mut server = TestServer::start().await;
    let client = server.client().await;
    let (mut ws, _) = client.open(builder(&server, "/hold")).await.unwrap();
    const SIZE: usize = 8 << 20;
    let payload = vec![b'x'; SIZE];
    // The server reads nothing: once its stream window and our send buffer are full, the
    // send cannot finish, and the rest stays queued in our WebSocket.
    let sent = tokio::time::timeout(
        Duration::from_millis(500),
        ws.send(Message::binary(payload)),
    )
    .await;
    assert!(sent.is_err(), "the send was held by flow control");
    let limits = Http2Limits::default();
    let in_flight = SIZE - ws.buffered_amount();
    let bound = limits.initial_stream_window as usize + limits.max_send_buffer + (64 << 10);
    assert!(
        in_flight <= bound,
        "{in_flight} bytes left the WebSocket with a window of {bound}"
    );

    // The held stream does not stall the others on the connection.
    let (mut other, _) = client.open(builder(&server, "/echo")).await.unwrap();
    let large = Message::binary(vec![b'y'; 2 << 20]);
    other.send(large.clone()).await.unwrap();
    assert_eq!(other.recv().await.unwrap().unwrap(), large);

    // Once the server reads, everything arrives.
    server.release.notify_one();
    ws.flush().await.unwrap();
    assert_eq!(
        ws.recv().await.unwrap().unwrap(),
        Message::text(SIZE.to_string())
    );
    assert_eq!(server.event().await, "released");
}

#[tokio::test]
async fn a_server_without_extended_connect_is_refused() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut conn = h2::server::handshake(tcp).await.unwrap();
        while let Some(Ok(_)) = conn.accept().await {}
    });
    let err = Http2Client::connect(
        &ClientBuilder::new(format!("ws://{addr}/")),
        &Http2Limits::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::NoExtendedConnect), "{err:?}");
}

#[tokio::test]
async fn an_http1_server_is_not_an_http2_one() {
    // The HTTP/1.1 echo server answers the HTTP/2 preface with a 400 and closes.
    let addr = common::echo_server().await;
    let err = Http2Client::connect(
        &ClientBuilder::new(format!("ws://{addr}/")),
        &Http2Limits::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Http2(_) | Error::Io(_)), "{err:?}");
}

/// The interop venv's Python (which has `h2`), or `WSX_TEST_PYTHON`; `None` outside CI when it
/// is missing.
fn interop_python() -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python = match std::env::var_os("WSX_TEST_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => root.join(".tools/interop-venv/bin/python"),
    };
    let in_ci = std::env::var("CI").as_deref() == Ok("true");
    match (python.exists(), in_ci) {
        (true, _) => Some(python),
        (false, true) => panic!("no interop Python at {}", python.display()),
        (false, false) => {
            eprintln!("skipping the Python h2 peer: no {}", python.display());
            None
        }
    }
}

#[tokio::test]
async fn python_h2_speaks_rfc8441_to_the_server() {
    let Some(python) = interop_python() else {
        return;
    };
    let mut server = TestServer::start().await;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/interop/h2_peer.py");
    let (ip, port) = (server.addr.ip().to_string(), server.addr.port().to_string());
    // The peer's socket times out after 10 s, so it cannot hang the test.
    let run = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .arg(script)
            .args([ip, port])
            .output()
    });
    let output = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("the Python peer finishes")
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "h2_peer.py failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let checks: std::collections::HashMap<String, serde_json::Value> = stdout
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            (v["check"].as_str().unwrap().to_owned(), v)
        })
        .collect();
    assert_eq!(checks["settings"]["enable_connect_protocol"], 1);
    let echo = &checks["echo"];
    assert_eq!(echo["status"], "200");
    assert!(
        echo["extensions"]
            .as_str()
            .unwrap()
            .starts_with("permessage-deflate"),
        "{echo}"
    );
    assert_eq!(echo["compressed"], true);
    assert_eq!(echo["opcode"], 1);
    assert_eq!(echo["reply_matches"], true);
    assert_eq!(echo["close_opcode"], 8);
    assert_eq!(echo["close_code"], 1000);
    assert_eq!(checks["not found"]["status"], "404");
    assert_eq!(checks["wrong version"]["status"], "400");
    assert_eq!(checks["wrong version"]["version"], "13");
    assert_eq!(checks["plain GET"]["status"], "400");
    assert_eq!(checks["reset"]["status"], "200");

    // The server's sessions: the echo saw the close 1000, the reset stream an abnormal close.
    let mut events = vec![server.event().await, server.event().await];
    events.sort();
    assert!(events[0].contains("1000"), "{events:?}");
    assert_eq!(events[1], "error: ConnectionReset");
    assert_eq!(server.connections.load(Ordering::SeqCst), 1);
}

/// A self-signed certificate for `localhost`: (cert PEM, key PEM).
fn localhost_certificate() -> (String, String) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    (certified.cert.pem(), certified.signing_key.serialize_pem())
}

#[tokio::test]
async fn wss_over_http2_with_alpn_h2() {
    let (cert, key) = localhost_certificate();
    let acceptor = TlsAcceptor::from_pem(cert.as_bytes(), key.as_bytes())
        .unwrap()
        .offer_http2();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (alpn_tx, mut alpn) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((tcp, peer)) = listener.accept().await {
            let tls = acceptor.accept_tls(tcp).await.unwrap();
            let negotiated = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
            alpn_tx.send(negotiated.clone()).unwrap();
            if negotiated.as_deref() == Some(ALPN_H2) {
                tokio::spawn(async move {
                    let server = Http2Server::new();
                    let _ = server
                        .serve_connection(tls, peer, |_| {
                            Ok(|ws, _| async move {
                                let _ = common::echo(ws).await;
                            })
                        })
                        .await;
                });
            } else {
                // The HTTP/1.1 path, as a server offering both would have.
                tokio::spawn(async move {
                    let ws = wsx::accept(tls).await?;
                    common::echo(ws).await
                });
            }
        }
    });
    let tls = ClientTlsConfig::new()
        .webpki_roots(false)
        .add_ca_pem(cert.clone())
        .build()
        .unwrap();
    let url = format!("wss://localhost:{port}/echo");

    let client = Http2Client::connect(
        &ClientBuilder::new(url.clone()).tls(tls.clone()),
        &Http2Limits::default(),
    )
    .await
    .unwrap();
    assert_eq!(alpn.recv().await.unwrap().as_deref(), Some(ALPN_H2));
    for _ in 0..2 {
        let (mut ws, _) = client.open(ClientBuilder::new(url.clone())).await.unwrap();
        ws.send(Message::text("secure")).await.unwrap();
        assert_eq!(ws.recv().await.unwrap().unwrap(), Message::text("secure"));
    }

    // The same acceptor still serves HTTP/1.1 clients (ALPN http/1.1).
    let (mut ws, _) = ClientBuilder::new(url).tls(tls).connect().await.unwrap();
    assert_eq!(alpn.recv().await.unwrap().as_deref(), Some(ALPN_HTTP11));
    ws.send(Message::text("h1")).await.unwrap();
    assert_eq!(ws.recv().await.unwrap().unwrap(), Message::text("h1"));
}

#[tokio::test]
async fn wss_to_a_server_without_alpn_h2_is_refused_for_http2() {
    let (cert, key) = localhost_certificate();
    // The default acceptor offers http/1.1 only.
    let acceptor = TlsAcceptor::from_pem(cert.as_bytes(), key.as_bytes()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let _ = acceptor.accept_tls(tcp).await;
    });
    let tls = ClientTlsConfig::new()
        .webpki_roots(false)
        .add_ca_pem(cert)
        .build()
        .unwrap();
    let builder = ClientBuilder::new(format!("wss://localhost:{port}/")).tls(tls);
    let err = Http2Client::connect(&builder, &Http2Limits::default())
        .await
        .unwrap_err();
    // rustls refuses a handshake whose ALPN lists do not meet (no_application_protocol).
    assert!(
        matches!(err, Error::NoExtendedConnect) || wsx::tls::rustls_error(&err).is_some(),
        "{err:?}"
    );
}

/// `server` serving one connection whose WebSockets echo, and a client connected to it: the
/// URL of its echo, the client, and the task serving the connection.
async fn one_echo_connection(
    server: Http2Server,
) -> (
    String,
    Http2Client,
    tokio::task::JoinHandle<wsx::Result<()>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = tokio::spawn(async move {
        let (tcp, peer) = listener.accept().await.unwrap();
        server
            .serve_connection(tcp, peer, |_| {
                Ok(|ws, _| async move {
                    let _ = common::echo(ws).await;
                })
            })
            .await
    });
    let url = format!("ws://{addr}/echo");
    let client = Http2Client::connect(&ClientBuilder::new(url.clone()), &Http2Limits::default())
        .await
        .unwrap();
    (url, client, served)
}

#[tokio::test]
async fn a_graceful_shutdown_sends_goaway_and_closes_websockets_with_1001() {
    let stop = tokio_util::sync::CancellationToken::new();
    let (url, client, served) =
        one_echo_connection(Http2Server::new().close_on(stop.clone())).await;
    let (mut ws, _) = client.open(ClientBuilder::new(url.clone())).await.unwrap();
    ws.send(Message::text("before")).await.unwrap();
    assert_eq!(ws.recv().await.unwrap().unwrap(), Message::text("before"));

    stop.cancel();
    match ws.recv().await.unwrap().unwrap() {
        Message::Close(Some(f)) => {
            assert_eq!(f.code, CloseCode::GOING_AWAY);
            assert_eq!(f.reason.as_str(), "server shutting down");
        }
        other => panic!("expected the close, got {other:?}"),
    }
    assert!(ws.recv().await.is_none());
    // The connection ends once its last stream has: serve_connection returns.
    common::within(served).await.unwrap().unwrap();
    assert!(client.open(ClientBuilder::new(url)).await.is_err());
}

#[tokio::test]
async fn a_connection_without_websockets_is_closed_after_the_handshake_timeout() {
    let policy = Policy::default().handshake_timeout(Duration::from_millis(300));
    let (url, client, mut served) = one_echo_connection(Http2Server::new().policy(policy)).await;
    let (mut ws, _) = client.open(ClientBuilder::new(url.clone())).await.unwrap();
    // An open WebSocket keeps the connection, however long it is quiet.
    let early = tokio::time::timeout(Duration::from_millis(900), &mut served).await;
    assert!(early.is_err(), "closed with a WebSocket open");
    ws.send(Message::text("still open")).await.unwrap();
    assert_eq!(
        ws.recv().await.unwrap().unwrap(),
        Message::text("still open")
    );
    ws.close(CloseCode::NORMAL, "").await.unwrap();
    // Without one, GOAWAY after the timeout: serve_connection returns.
    common::within(served).await.unwrap().unwrap();
    assert!(client.open(ClientBuilder::new(url)).await.is_err());
}

/// What a TLS listener on `localhost` does with a connection whose ALPN chose `h2`.
#[derive(Clone, Copy)]
enum H2Side {
    /// Not offered: the acceptor offers `http/1.1` only.
    NotOffered,
    /// WebSockets over HTTP/2 (the wsx server, RFC 8441).
    Rfc8441,
    /// HTTP/2 without `SETTINGS_ENABLE_CONNECT_PROTOCOL` (a plain `h2` server).
    WithoutExtendedConnect,
}

/// A TLS echo listener on `localhost` (HTTP/1.1 always; HTTP/2 as `h2`) that reports the ALPN
/// protocol of every connection: its port, the reports and the certificate to trust.
async fn tls_echo(h2: H2Side) -> (u16, mpsc::UnboundedReceiver<Option<Vec<u8>>>, String) {
    let (cert, key) = localhost_certificate();
    let mut acceptor = TlsAcceptor::from_pem(cert.as_bytes(), key.as_bytes()).unwrap();
    if !matches!(h2, H2Side::NotOffered) {
        acceptor = acceptor.offer_http2();
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (alpn_tx, alpn) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((tcp, peer)) = listener.accept().await {
            let tls = acceptor.accept_tls(tcp).await.unwrap();
            let negotiated = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
            alpn_tx.send(negotiated.clone()).unwrap();
            tokio::spawn(async move {
                match (negotiated.as_deref() == Some(ALPN_H2), h2) {
                    (true, H2Side::WithoutExtendedConnect) => {
                        let mut conn = h2::server::handshake(tls).await.unwrap();
                        while let Some(Ok(_)) = conn.accept().await {}
                    }
                    (true, _) => {
                        let _ = Http2Server::new()
                            .serve_connection(tls, peer, |_| {
                                Ok(|ws, _| async move {
                                    let _ = common::echo(ws).await;
                                })
                            })
                            .await;
                    }
                    (false, _) => {
                        if let Ok(ws) = wsx::accept(tls).await {
                            let _ = common::echo(ws).await;
                        }
                    }
                }
            });
        }
    });
    (port, alpn, cert)
}

#[tokio::test]
async fn prefer_http2_takes_http2_where_offered_and_http1_elsewhere() {
    for (h2, alpns, over_http2) in [
        (H2Side::Rfc8441, vec![Some(ALPN_H2)], true),
        (H2Side::NotOffered, vec![Some(ALPN_HTTP11)], false),
        // HTTP/2 without RFC 8441: a second connection, over HTTP/1.1.
        (
            H2Side::WithoutExtendedConnect,
            vec![Some(ALPN_H2), Some(ALPN_HTTP11)],
            false,
        ),
    ] {
        let (port, mut alpn, cert) = tls_echo(h2).await;
        let tls = ClientTlsConfig::new()
            .webpki_roots(false)
            .add_ca_pem(cert)
            .build()
            .unwrap();
        let (mut ws, _) = ClientBuilder::new(format!("wss://localhost:{port}/echo"))
            .tls(tls)
            .connect_timeout(Duration::from_secs(10))
            .connect_prefer_http2(&Http2Limits::default())
            .await
            .unwrap();
        assert_eq!(
            matches!(ws.get_ref(), PreferHttp2Stream::Left(_)),
            over_http2
        );
        ws.send(Message::text("either way")).await.unwrap();
        assert_eq!(
            ws.recv().await.unwrap().unwrap(),
            Message::text("either way")
        );
        for expected in alpns {
            assert_eq!(alpn.recv().await.unwrap().as_deref(), expected);
        }
        ws.close(CloseCode::NORMAL, "done").await.unwrap();
    }

    // `ws://`: HTTP/1.1, no HTTP/2 preface sent to a server that may not speak it.
    let addr = common::echo_server().await;
    let (mut ws, _) = ClientBuilder::new(format!("ws://{addr}/"))
        .connect_prefer_http2(&Http2Limits::default())
        .await
        .unwrap();
    assert!(!matches!(ws.get_ref(), PreferHttp2Stream::Left(_)));
    ws.send(Message::text("plain")).await.unwrap();
    assert_eq!(ws.recv().await.unwrap().unwrap(), Message::text("plain"));
}
