//! End-to-end tests of `wsx serve --stomp-tcp ADDR`: STOMP 1.2 over plain TCP (and TLS with
//! `--stomp-tcp-tls`) on the broker of `/stomp`, as the external broker of Spring's
//! `StompBrokerRelay`. A raw STOMP-over-TCP client plays the relay (a "system" session with
//! its own login/passcode, `host` and heart-beats 10000,10000, then one session per client with
//! the client's forwarded CONNECT headers) and meets WebSocket clients on the same topics and
//! queues, on one node and across two nodes on Redis; a TCP client that never reads costs
//! bounded memory and is dropped; connections past `--stomp-tcp-max-connections` are closed.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use common::{Client, Server, WAIT, redis_url, unique_prefix, wait_metric};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;
use wsx_stomp::{Command, Decoder, Frame, Limits, Version};

/// Start `wsx serve --stomp-tcp 127.0.0.1:0` with `extra` arguments; returns the server and
/// the STOMP-over-TCP address it printed.
fn server(extra: &[&str]) -> (Server, SocketAddr) {
    let mut args = vec!["--stomp-tcp", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let mut server = Server::start(&args);
    let line = server.next_stdout_line();
    let addr = line
        .strip_prefix("stomp tcp on ")
        .unwrap_or_else(|| panic!("a `stomp tcp on ADDR` line, got {line:?}"))
        .parse()
        .expect("a socket address");
    (server, addr)
}

/// A STOMP 1.2 client over a byte stream (TCP or TLS).
struct TcpClient<S> {
    stream: S,
    decoder: Decoder,
    buf: Vec<u8>,
}

impl TcpClient<TcpStream> {
    /// Connect a TCP stream to `addr`.
    async fn open(addr: SocketAddr) -> TcpClient<TcpStream> {
        let stream = tokio::time::timeout(WAIT, TcpStream::connect(addr))
            .await
            .expect("connect in time")
            .expect("connect");
        TcpClient::over(stream)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TcpClient<S> {
    fn over(stream: S) -> TcpClient<S> {
        let mut decoder = Decoder::new(Limits::default());
        decoder.set_version(Version::V1_2);
        TcpClient {
            stream,
            decoder,
            buf: vec![0; 64 * 1024],
        }
    }

    async fn send(&mut self, frame: Frame) {
        let bytes = frame.encode(Version::V1_2).expect("encodable");
        self.send_raw(&bytes).await;
    }

    /// Write raw bytes (frames framed by hand).
    async fn send_raw(&mut self, bytes: &[u8]) {
        tokio::time::timeout(WAIT, self.stream.write_all(bytes))
            .await
            .expect("written in time")
            .expect("write");
    }

    /// The next frame (heart-beats skipped), or `None` when the server closed the stream.
    async fn next_frame(&mut self) -> Option<Frame> {
        loop {
            if let Some(frame) = self.decoder.poll_frame().expect("a valid server frame") {
                return Some(frame);
            }
            let n = tokio::time::timeout(WAIT, self.stream.read(&mut self.buf))
                .await
                .expect("the server answered in time")
                .unwrap_or(0);
            if n == 0 {
                return None;
            }
            self.decoder.feed(&self.buf[..n]);
        }
    }

    async fn expect(&mut self, command: Command) -> Frame {
        let frame = self.next_frame().await.expect("a frame, not the end");
        assert_eq!(frame.command, command, "{frame:?}");
        frame
    }

    async fn expect_receipt(&mut self, id: &str) {
        let frame = self.expect(Command::Receipt).await;
        assert_eq!(frame.header("receipt-id"), Some(id));
    }

    /// CONNECT as Spring's relay does: `host` (the virtual host), the login and passcode
    /// (the system session's own, or the client's forwarded ones), `heart-beat`, and any
    /// `forwarded` headers of the client's CONNECT; expects CONNECTED.
    async fn relay_connect(&mut self, login: &str, passcode: &str, forwarded: &[(&str, &str)]) {
        let mut connect = Frame::new(Command::Connect)
            .with_header("accept-version", "1.1,1.2")
            .with_header("host", "vhost.example")
            .with_header("login", login)
            .with_header("passcode", passcode)
            .with_header("heart-beat", "10000,10000");
        for (name, value) in forwarded {
            connect = connect.with_header(*name, *value);
        }
        self.send(connect).await;
        let connected = self.expect(Command::Connected).await;
        assert_eq!(connected.header("version"), Some("1.2"));
        assert!(connected.header("heart-beat").is_some(), "{connected:?}");
    }

    async fn subscribe(&mut self, id: &str, destination: &str) {
        let receipt = format!("sub-{id}");
        self.send(
            Frame::new(Command::Subscribe)
                .with_header("id", id)
                .with_header("destination", destination)
                .with_header("receipt", receipt.as_str()),
        )
        .await;
        self.expect_receipt(&receipt).await;
    }

    async fn publish(&mut self, destination: &str, body: &str, receipt: Option<&str>) {
        let mut frame = Frame::new(Command::Send)
            .with_header("destination", destination)
            .with_header("content-type", "text/plain")
            .with_body(body.to_owned());
        if let Some(receipt) = receipt {
            frame = frame.with_header("receipt", receipt);
        }
        self.send(frame).await;
        if let Some(receipt) = receipt {
            self.expect_receipt(receipt).await;
        }
    }

    async fn message_body(&mut self) -> String {
        let frame = self.expect(Command::Message).await;
        String::from_utf8(frame.body.to_vec()).expect("UTF-8 body")
    }

    /// DISCONNECT with a receipt: the RECEIPT, then the end of the stream.
    async fn disconnect(mut self) {
        self.send(Frame::new(Command::Disconnect).with_header("receipt", "bye"))
            .await;
        self.expect_receipt("bye").await;
        assert!(
            self.next_frame().await.is_none(),
            "closed after the receipt"
        );
    }
}

/// The relay's sessions and a WebSocket client exchange messages on one topic and two queues,
/// both ways; `tcp_node` serves the TCP sessions, `ws_node` the WebSocket client (the same
/// server, or two nodes on Redis).
async fn relay_meets_websocket(tcp_node: SocketAddr, ws_node: &Server, warm_up: bool) {
    // The system session: its own login, heart-beats 10000,10000; it SENDs what the
    // application publishes, without receipts.
    let mut system = TcpClient::open(tcp_node).await;
    system
        .relay_connect("relay-system", "system-secret", &[])
        .await;
    // A client session, with the client's forwarded CONNECT headers.
    let mut alice = TcpClient::open(tcp_node).await;
    alice
        .relay_connect("alice", "alice-secret", &[("x-forwarded", "yes")])
        .await;
    alice.subscribe("0", "/topic/chat").await;
    alice.subscribe("1", "/queue/to-tcp").await;

    let mut bob = Client::connect_anonymous(ws_node, "bob").await;
    bob.subscribe("0", "/topic/chat", "auto").await;
    bob.subscribe("1", "/queue/to-ws", "auto").await;

    if warm_up {
        // Across nodes a SUBSCRIBE's receipt does not wait for Redis: publish until both
        // subscribers got a warm-up message.
        let deadline = Instant::now() + WAIT;
        let mut n = 0;
        loop {
            assert!(Instant::now() < deadline, "no warm-up message went round");
            bob.publish("/topic/chat", &format!("warmup-{n}"), &[])
                .await;
            n += 1;
            let at_bob = bob.frame_within(Duration::from_millis(100)).await;
            let at_alice = tokio::time::timeout(Duration::from_millis(100), alice.next_frame());
            if at_bob.is_some() && at_alice.await.is_ok() {
                break;
            }
        }
        // What is still on its way.
        while bob.frame_within(Duration::from_millis(300)).await.is_some() {}
        while let Ok(frame) =
            tokio::time::timeout(Duration::from_millis(300), alice.next_frame()).await
        {
            assert!(frame.is_some(), "alice's stream ended");
        }
    }

    // WebSocket → TCP: the topic (bob gets it too: no receipt to race it) and a queue.
    bob.publish("/topic/chat", "hello from ws", &[]).await;
    assert_eq!(alice.message_body().await, "hello from ws");
    assert_eq!(bob.message_body().await, "hello from ws");
    bob.publish_confirmed("/queue/to-tcp", "job from ws").await;
    assert_eq!(alice.message_body().await, "job from ws");

    // TCP → WebSocket: the system session publishes to the topic (no receipt, as Spring's
    // relay), the client session to a queue with a receipt.
    system
        .publish("/topic/chat", "broadcast from tcp", None)
        .await;
    assert_eq!(bob.message_body().await, "broadcast from tcp");
    assert_eq!(alice.message_body().await, "broadcast from tcp");
    alice
        .publish("/queue/to-ws", "reply from tcp", Some("r-1"))
        .await;
    assert_eq!(bob.message_body().await, "reply from tcp");

    alice.disconnect().await;
    system.disconnect().await;
    bob.disconnect().await;
}

#[tokio::test]
async fn the_spring_relay_sequence_meets_websocket_clients() {
    let (server, tcp) = server(&[]);
    relay_meets_websocket(tcp, &server, false).await;
    assert_eq!(server.metric_value("wsx_stomp_tcp_sessions").await, Some(0));
}

/// An HS256 JWT for `sub` signed with `secret`, valid ten minutes, allowed every destination.
fn jwt(secret: &str, sub: &str) -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
        + 600;
    let claims = serde_json::json!({"sub": sub, "exp": exp, "subscribe": ["**"], "send": ["**"]});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("encode a token")
}

#[tokio::test]
async fn the_jwt_authenticator_applies_and_crlf_frames_are_read() {
    const SECRET: &str = "stomp-tcp-secret";
    let (_server, tcp) = server(&["--jwt-secret", SECRET]);
    // A refused CONNECT: the ERROR reaches the client, then the connection ends.
    let mut mallory = TcpClient::open(tcp).await;
    mallory
        .send_raw(b"CONNECT\r\naccept-version:1.2\r\nhost:vhost\r\nlogin:mallory\r\npasscode:not.a.token\r\n\r\n\0")
        .await;
    let error = mallory.expect(Command::Error).await;
    let message = error.header("message").unwrap_or_default();
    assert!(message.contains("token"), "{error:?}");
    assert!(
        mallory.next_frame().await.is_none(),
        "closed after the ERROR"
    );

    // The JWT as passcode (the relay forwards the client's), frames and heart-beats with
    // `\r\n` line ends.
    let mut alice = TcpClient::open(tcp).await;
    let connect = format!(
        "CONNECT\r\naccept-version:1.2\r\nhost:vhost\r\nlogin:alice\r\npasscode:{}\r\n\
         heart-beat:10000,10000\r\n\r\n\0",
        jwt(SECRET, "alice")
    );
    alice.send_raw(connect.as_bytes()).await;
    let connected = alice.expect(Command::Connected).await;
    assert_eq!(connected.header("user-id"), Some("alice"));
    alice
        .send_raw(
            b"\r\nSUBSCRIBE\r\nid:0\r\ndestination:/topic/crlf\r\n\r\n\0\r\n\
              SEND\r\ndestination:/topic/crlf\r\nreceipt:r\r\n\r\nline ends\0",
        )
        .await;
    let mut got = Vec::new();
    while got.len() < 2 {
        let frame = alice.next_frame().await.expect("a frame");
        got.push(frame.command);
        if frame.command == Command::Message {
            assert_eq!(&frame.body[..], b"line ends");
        }
    }
    got.sort_by_key(|c| format!("{c:?}"));
    assert_eq!(got, [Command::Message, Command::Receipt]);
    alice.disconnect().await;
}

#[tokio::test]
async fn tcp_sessions_are_counted_and_closed_at_shutdown() {
    let (mut server, tcp) = server(&[]);
    let mut client = TcpClient::open(tcp).await;
    client.relay_connect("alice", "x", &[]).await;
    assert_eq!(server.metric_value("wsx_stomp_tcp_sessions").await, Some(1));
    assert_eq!(server.metric_value("wsx_stomp_sessions").await, Some(1));
    let started = Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &server.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    assert!(client.next_frame().await.is_none(), "closed at shutdown");
    assert!(server.wait_exit().await.success());
    // The server does not wait for the client to close its side (TCP_CLOSE_TIMEOUT is 5 s).
    let took = started.elapsed();
    assert!(took < Duration::from_secs(4), "shutdown took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_client_that_never_reads_costs_bounded_memory_and_is_dropped() {
    let (server, tcp) = server(&[]);
    let mut publisher = Client::connect_anonymous(&server, "publisher").await;
    // Warm up the allocator with a served round trip first.
    publisher.subscribe("0", "/topic/other", "auto").await;
    publisher.publish_confirmed("/topic/other", "before").await;
    assert_eq!(publisher.message_body().await, "before");
    let before = server.rss_kib();

    // A subscriber over a socket whose receive buffer is 4 KiB, which never reads once
    // subscribed.
    let socket = TcpSocket::new_v4().expect("a socket");
    socket
        .set_recv_buffer_size(4096)
        .expect("a 4 KiB receive buffer");
    let stream = socket.connect(tcp).await.expect("connect");
    let mut slow = TcpClient::over(stream);
    slow.send(
        Frame::new(Command::Connect)
            .with_header("accept-version", "1.2")
            .with_header("host", "localhost")
            .with_header("heart-beat", "0,0"),
    )
    .await;
    slow.expect(Command::Connected).await;
    slow.subscribe("0", "/topic/flood").await;

    // 64 KiB messages until the server drops it (its queue holds 8 MiB, the rest waits in
    // its socket buffers and the write high-water mark). Bounded: at most 64 MiB sent.
    let chunk = "x".repeat(64 * 1024);
    let mut sent = 0;
    let mut peak = before;
    while server
        .metric_value("wsx_stomp_slow_disconnects_total")
        .await
        == Some(0)
    {
        assert!(sent < 1024, "still connected after {sent} messages");
        for _ in 0..31 {
            publisher.publish("/topic/flood", &chunk, &[]).await;
        }
        publisher.publish_confirmed("/topic/flood", "batch").await;
        sent += 32;
        peak = peak.max(server.rss_kib());
    }
    let growth_mib = peak.saturating_sub(before) / 1024;
    println!(
        "tcp client never reads: RSS {before} KiB before, peak {peak} KiB (+{growth_mib} MiB)"
    );
    assert!(growth_mib < 32, "the server grew by {growth_mib} MiB");
    wait_metric(&server, "wsx_stomp_tcp_sessions", |n| n == 0).await;

    // Its stream ends: what was on its way, then the end (or a reset).
    let ended = tokio::time::timeout(WAIT, async {
        loop {
            match slow.stream.read(&mut slow.buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the slow client's stream did not end");
    // The publisher is still served.
    publisher.publish_confirmed("/topic/other", "after").await;
    assert_eq!(publisher.message_body().await, "after");
}

/// A TCP client that never reads while its SENDs fan out to its own subscriptions: the
/// server stops reading it once its output budget is full, stays bounded, and closes it after
/// the idle limit (heart-beats off, so nothing else ends it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_client_that_never_reads_its_own_output_is_paused_then_closed() {
    let (server, tcp) = server(&["--stomp-idle-timeout", "2"]);
    let before = server.rss_kib();
    let socket = TcpSocket::new_v4().expect("a socket");
    socket
        .set_recv_buffer_size(4096)
        .expect("a 4 KiB receive buffer");
    let mut attacker = TcpClient::over(socket.connect(tcp).await.expect("connect"));
    let mut opening = Vec::new();
    let connect = Frame::new(Command::Connect)
        .with_header("accept-version", "1.2")
        .with_header("host", "localhost")
        .with_header("heart-beat", "0,0");
    opening.extend(connect.encode(Version::V1_2).expect("encodable"));
    for i in 0..64 {
        let subscribe = Frame::new(Command::Subscribe)
            .with_header("id", format!("{i}"))
            .with_header("destination", "/topic/mirror");
        opening.extend(subscribe.encode(Version::V1_2).expect("encodable"));
    }
    attacker.send_raw(&opening).await;
    let started = Instant::now();
    // SENDs until the server stops reading them (the writes then block).
    let writer = tokio::spawn(async move {
        let send = Frame::new(Command::Send)
            .with_header("destination", "/topic/mirror")
            .with_body("x".repeat(100))
            .encode(Version::V1_2)
            .expect("encodable");
        let batch = send.repeat(100);
        for _ in 0..1000 {
            if attacker.stream.write_all(&batch).await.is_err() {
                break;
            }
        }
    });
    wait_metric(&server, "wsx_stomp_tcp_sessions", |n| n == 1).await;
    let mut peak = before;
    while server.metric_value("wsx_stomp_tcp_sessions").await != Some(0) {
        assert!(started.elapsed() < WAIT, "the paused client is still open");
        peak = peak.max(server.rss_kib());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "closed by the idle limit, not before"
    );
    let growth_mib = peak.saturating_sub(before) / 1024;
    assert!(growth_mib < 32, "the server grew by {growth_mib} MiB");
    writer.abort();
}

#[tokio::test]
async fn connections_past_the_limit_are_closed_at_once() {
    let (server, tcp) = server(&["--stomp-tcp-max-connections", "2"]);
    let mut first = TcpClient::open(tcp).await;
    first.relay_connect("first", "x", &[]).await;
    let mut second = TcpClient::open(tcp).await;
    second.relay_connect("second", "x", &[]).await;
    // The third is closed before it is served: its CONNECT gets no answer.
    let mut third = TcpClient::open(tcp).await;
    third
        .send(Frame::new(Command::Connect).with_header("accept-version", "1.2"))
        .await;
    assert!(third.next_frame().await.is_none(), "the third is closed");
    assert_eq!(
        server.metric_value("wsx_stomp_tcp_refused_total").await,
        Some(1)
    );
    // Once one leaves, a new one is served.
    first.disconnect().await;
    wait_metric(&server, "wsx_stomp_tcp_sessions", |n| n == 1).await;
    let mut fourth = TcpClient::open(tcp).await;
    fourth.relay_connect("fourth", "x", &[]).await;
    second.disconnect().await;
    fourth.disconnect().await;
}

/// A CA and a certificate for localhost, written to a fresh directory: (dir, ca.pem,
/// cert.pem, key.pem).
fn localhost_certificate() -> (PathBuf, PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().expect("a CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_pem = ca.self_signed(&ca_key).expect("a CA certificate").pem();
    let key = KeyPair::generate().expect("a key");
    let cert = CertificateParams::new(vec!["localhost".to_owned()])
        .expect("parameters")
        .signed_by(&key, &Issuer::new(ca, ca_key))
        .expect("a certificate");
    let dir = std::env::temp_dir().join(format!("wsx-stomp-tcp-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a directory");
    let paths = [
        ("ca.pem", ca_pem),
        ("cert.pem", cert.pem()),
        ("key.pem", key.serialize_pem()),
    ]
    .map(|(name, pem)| {
        let path = dir.join(name);
        std::fs::write(&path, pem).expect("write a PEM file");
        path
    });
    let [ca, cert, key] = paths;
    (dir, ca, cert, key)
}

#[tokio::test]
async fn stomp_over_tls() {
    let (dir, ca, cert, key) = localhost_certificate();
    let (cert, key) = (cert.to_str().expect("UTF-8"), key.to_str().expect("UTF-8"));
    let (server, tcp) = server(&["--stomp-tcp-tls", "--tls-cert", cert, "--tls-key", key]);
    let connector = wsx::tls::ClientTlsConfig::new()
        .add_ca_pem_file(&ca)
        .build()
        .expect("a TLS client");
    let stream = TcpStream::connect(tcp).await.expect("connect");
    let tls = tokio::time::timeout(WAIT, connector.connect("localhost", stream))
        .await
        .expect("handshake in time")
        .expect("TLS handshake");
    let mut alice = TcpClient::over(tls);
    alice.relay_connect("alice", "x", &[]).await;
    alice.subscribe("0", "/topic/secure").await;
    // The WebSocket side is wss:// on the same certificate.
    let ws_tls = wsx::tls::ClientTlsConfig::new()
        .add_ca_pem_file(&ca)
        .build()
        .expect("a TLS client");
    let url = format!("wss://localhost:{}/stomp", server.addr.port());
    let (mut ws, _) = wsx::ClientBuilder::new(&url)
        .tls(ws_tls)
        .subprotocol("v12.stomp")
        .connect()
        .await
        .expect("wss handshake");
    let connect = Frame::new(Command::Connect)
        .with_header("accept-version", "1.2")
        .with_header("host", "localhost");
    let send = Frame::new(Command::Send)
        .with_header("destination", "/topic/secure")
        .with_header("receipt", "r")
        .with_body("over tls".to_owned());
    for frame in [connect, send] {
        let bytes = frame.encode(Version::V1_2).expect("encodable");
        ws.send(wsx::Message::binary(bytes)).await.expect("send");
    }
    assert_eq!(alice.message_body().await, "over tls");
    alice.disconnect().await;
    // A plain-TCP client does not get a STOMP session on the TLS port.
    let mut plain = TcpClient::open(tcp).await;
    plain
        .send(Frame::new(Command::Connect).with_header("accept-version", "1.2"))
        .await;
    assert!(plain.next_frame().await.is_none(), "no session without TLS");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn tcp_and_websocket_clients_meet_across_two_nodes_on_redis() {
    let Some(redis) = redis_url("tcp_and_websocket_clients_meet_across_two_nodes_on_redis") else {
        return;
    };
    let prefix = unique_prefix("stomp-tcp");
    let node = |name: &str, tcp: bool| {
        let common = [
            "--broker",
            redis.as_str(),
            "--redis-prefix",
            prefix.as_str(),
            "--node-id",
            name,
        ];
        if tcp {
            server(&common)
        } else {
            let server = Server::start(&common);
            let addr = server.addr;
            (server, addr)
        }
    };
    let (_a, tcp) = node("tcp-a", true);
    let (b, _) = node("ws-b", false);
    relay_meets_websocket(tcp, &b, true).await;
}
