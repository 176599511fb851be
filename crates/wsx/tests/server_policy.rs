//! `wsx::Server` and its connect-time policy, over real sockets.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wsx::{Accept, ClientBuilder, CloseCode, Message, Policy, Reject, Server, WebSocketConfig};

async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .expect("timed out")
}

/// Start an echo `Server` with `policy`; returns its address and shutdown handle.
async fn start(
    policy: Policy,
    config: WebSocketConfig,
) -> (
    std::net::SocketAddr,
    wsx::ShutdownHandle,
    tokio::task::JoinHandle<()>,
) {
    let server = Server::bind("127.0.0.1:0")
        .await
        .unwrap()
        .policy(policy)
        .config(config);
    let addr = server.local_addr().unwrap();
    let stop = server.shutdown_handle();
    let done = tokio::spawn(async move {
        server
            .serve(|mut ws, _| async move {
                while let Some(Ok(m)) = ws.recv().await {
                    if m.is_data() && ws.send(m).await.is_err() {
                        break;
                    }
                }
            })
            .await
            .unwrap();
    });
    (addr, stop, done)
}

fn status(err: &wsx::Error) -> u16 {
    match err.as_handshake() {
        Some(wsx_proto::handshake::HandshakeError::Rejected { status, .. }) => *status,
        other => panic!("not a refusal: {other:?} ({err})"),
    }
}

#[tokio::test]
async fn cross_origin_requests_are_refused() {
    let (addr, _stop, _) = start(
        Policy::default().allow_origin("https://good.example"),
        Default::default(),
    )
    .await;
    let url = format!("ws://{addr}/");
    let err = ClientBuilder::new(&url)
        .origin("https://evil.example")
        .connect()
        .await
        .unwrap_err();
    assert_eq!(status(&err), 403);
    let err = ClientBuilder::new(&url).connect().await.unwrap_err();
    assert_eq!(
        status(&err),
        403,
        "no Origin at all is refused once a list is set"
    );
    let (mut ws, _) = ClientBuilder::new(&url)
        .origin("https://GOOD.example")
        .connect()
        .await
        .unwrap();
    ws.send(Message::text("hi")).await.unwrap();
    assert_eq!(
        within(ws.recv()).await.unwrap().unwrap(),
        Message::text("hi")
    );
}

#[tokio::test]
async fn auth_hook_sees_the_request_and_peer() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let policy = Policy::default()
        .subprotocol("v2")
        .subprotocol("v1")
        .auth(move |req, peer| {
            log.lock().unwrap().push((
                req.path().to_string(),
                req.query().map(String::from),
                req.cookie("session").map(String::from),
                peer.ip(),
            ));
            if req.cookie("session") == Some("s3cret") {
                Ok(Accept {
                    subprotocol: None,
                    headers: vec![("X-User".into(), "alice".into())],
                })
            } else {
                Err(Reject::new(401, "who are you?"))
            }
        });
    let (addr, _stop, _) = start(policy, Default::default()).await;
    let (ws, resp) = ClientBuilder::new(format!("ws://{addr}/room/1?x=y"))
        .header("Cookie", "theme=dark; session=s3cret")
        .subprotocol("v1")
        .subprotocol("v2")
        .connect()
        .await
        .unwrap();
    assert_eq!(ws.subprotocol(), Some("v2"), "the server's preference wins");
    assert_eq!(resp.header("x-user"), Some(&b"alice"[..]));
    let err = ClientBuilder::new(format!("ws://{addr}/"))
        .connect()
        .await
        .unwrap_err();
    assert_eq!(status(&err), 401);
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0].0, "/room/1");
    assert_eq!(seen[0].1.as_deref(), Some("x=y"));
    assert_eq!(seen[0].2.as_deref(), Some("s3cret"));
    assert!(seen[0].3.is_loopback());
}

#[tokio::test]
async fn connections_past_the_limit_get_503() {
    let (addr, _stop, _) = start(Policy::default().max_connections(2), Default::default()).await;
    let url = format!("ws://{addr}/");
    let (mut a, _) = wsx::connect(&url).await.unwrap();
    let (mut b, _) = wsx::connect(&url).await.unwrap();
    let err = wsx::connect(&url).await.unwrap_err();
    assert_eq!(status(&err), 503);
    a.close(CloseCode::NORMAL, "").await.unwrap();
    // The freed slot becomes available once the server has seen the close.
    let mut tries = 0;
    let (mut c, _) = loop {
        match wsx::connect(&url).await {
            Ok(ok) => break ok,
            Err(_) if tries < 100 => {
                tries += 1;
                tokio::task::yield_now().await;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) => panic!("{e}"),
        }
    };
    c.send(Message::text("ok")).await.unwrap();
    assert_eq!(
        within(c.recv()).await.unwrap().unwrap(),
        Message::text("ok")
    );
    b.close(CloseCode::NORMAL, "").await.unwrap();
}

#[tokio::test]
async fn slowloris_gets_408_and_is_cut_off() {
    let (addr, _stop, _) = start(
        Policy::default().handshake_timeout(Duration::from_millis(200)),
        Default::default(),
    )
    .await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nUpgr")
        .await
        .unwrap();
    let mut resp = Vec::new();
    within(tcp.read_to_end(&mut resp)).await.unwrap();
    assert!(
        resp.starts_with(b"HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&resp)
    );
}

#[tokio::test]
async fn oversized_headers_get_431() {
    let config = WebSocketConfig::default().max_header_bytes(1024);
    let (addr, _stop, _) = start(Policy::default(), config).await;
    let err = ClientBuilder::new(format!("ws://{addr}/"))
        .header("X-Big", "a".repeat(2000))
        .connect()
        .await
        .unwrap_err();
    assert_eq!(status(&err), 431);
}

#[tokio::test]
async fn shutdown_sends_1001_to_every_connection() {
    let (addr, stop, done) = start(
        Policy::default().shutdown_timeout(Duration::from_secs(5)),
        Default::default(),
    )
    .await;
    let mut clients = Vec::new();
    for _ in 0..100 {
        let (ws, _) = wsx::connect(&format!("ws://{addr}/")).await.unwrap();
        clients.push(ws);
    }
    // Every connection is live: one round trip each.
    for ws in clients.iter_mut() {
        ws.send(Message::text("ping")).await.unwrap();
        assert_eq!(
            within(ws.recv()).await.unwrap().unwrap(),
            Message::text("ping")
        );
    }
    stop.shutdown();
    let mut readers = Vec::new();
    for mut ws in clients {
        readers.push(tokio::spawn(async move {
            let first = ws.recv().await;
            let rest = ws.recv().await;
            (first, rest.is_none())
        }));
    }
    for r in readers {
        let (first, ended) = within(r).await.unwrap();
        match first {
            Some(Ok(Message::Close(Some(f)))) => {
                assert_eq!(f.code, CloseCode::GOING_AWAY);
                assert_eq!(f.reason.as_str(), "server shutting down");
            }
            other => panic!("expected close 1001, got {other:?}"),
        }
        assert!(ended);
    }
    within(done).await.unwrap();
    assert!(
        TcpStream::connect(addr).await.is_err() || {
            // Some kernels accept into a closed listener's backlog briefly; a handshake must fail.
            wsx::connect(&format!("ws://{addr}/")).await.is_err()
        }
    );
}

#[tokio::test]
async fn connections_past_the_limit_are_refused_at_accept() {
    let (addr, _stop, _) = start(
        Policy::default()
            .max_connections(1)
            .handshake_timeout(Duration::from_secs(5)),
        Default::default(),
    )
    .await;
    let (mut a, _) = wsx::connect(&format!("ws://{addr}/")).await.unwrap();
    // Over the limit: answered without the server waiting for (or reading) a request.
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let mut resp = Vec::new();
    tokio::time::timeout(Duration::from_secs(2), tcp.read_to_end(&mut resp))
        .await
        .expect("refused at once, not after the handshake timeout")
        .unwrap();
    assert!(
        resp.starts_with(b"HTTP/1.1 503"),
        "{}",
        String::from_utf8_lossy(&resp)
    );
    a.close(CloseCode::NORMAL, "").await.unwrap();
}

#[tokio::test]
async fn a_client_that_never_reads_its_refusal_does_not_hold_its_slot() {
    // A refusal too large for the socket buffers: writing it waits for the client to read.
    let big = "x".repeat(8 << 20);
    let policy = Policy::default().max_connections(1).auth(move |req, _| {
        if req.path() == "/big" {
            Err(Reject::new(403, big.clone()))
        } else {
            Ok(Accept::default())
        }
    });
    let (addr, _stop, _) = start(policy, Default::default()).await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stuck = socket.connect(addr).await.unwrap();
    stuck
        .write_all(
            b"GET /big HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .await
        .unwrap();
    // The 403 is dropped after the response deadline, which frees the only slot.
    let deadline = tokio::time::Instant::now() + wsx::RESPONSE_TIMEOUT + Duration::from_secs(5);
    let (mut ws, _) = loop {
        match wsx::connect(&format!("ws://{addr}/")).await {
            Ok(ok) => break ok,
            Err(e) if tokio::time::Instant::now() < deadline => {
                assert_eq!(status(&e), 503, "{e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("the slot stayed taken: {e}"),
        }
    };
    ws.send(Message::text("served")).await.unwrap();
    assert_eq!(
        within(ws.recv()).await.unwrap().unwrap(),
        Message::text("served")
    );
    drop(stuck);
}
