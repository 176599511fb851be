//! Shared by the `wsx serve` end-to-end tests: the real binary on an ephemeral port, a plain
//! HTTP client, a STOMP client, and Redis servers for the clustered broker.
#![allow(dead_code)]

pub mod chat;

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Lines};
use std::net::SocketAddr;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wsx::{CloseCode, CloseFrame, Message, WebSocket};
use wsx_stomp::{Command as StompCommand, Decoder, Frame, Limits, Version};

/// Upper bound on any single wait, so that a broken server fails a test instead of hanging it.
pub const WAIT: Duration = Duration::from_secs(15);

/// A `wsx serve` process, killed when dropped.
pub struct Server {
    child: Option<Child>,
    /// The bound address.
    pub addr: SocketAddr,
    /// Kept open: the server's stdout stays a live pipe (and later lines can be read).
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Server {
    /// Start `wsx serve` on an ephemeral port and read the bound address from its stdout.
    pub fn start(extra: &[&str]) -> Server {
        Server::start_listening("127.0.0.1:0", extra)
    }

    /// [`Server::start`] listening on `listen` (`0.0.0.0:0`: every address).
    pub fn start_listening(listen: &str, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wsx"))
            .args(["--log-level", "error", "serve", "--listen", listen])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn wsx serve");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("wsx serve exited before listening")
                .expect("read stdout");
            let bound = line
                .strip_prefix("listening on http://")
                .or_else(|| line.strip_prefix("listening on https://"));
            if let Some(addr) = bound {
                break addr.trim().parse().expect("a socket address");
            }
        };
        Server {
            child: Some(child),
            addr,
            stdout: lines,
        }
    }

    /// The next line the server prints on stdout (after `listening on …`: `stomp tcp on …`).
    pub fn next_stdout_line(&mut self) -> String {
        self.stdout
            .next()
            .expect("wsx serve closed its stdout")
            .expect("read stdout")
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// The server's resident memory in KiB (`VmRSS` of /proc/PID/status), for the tests that
    /// bound what an attack makes it hold.
    pub fn rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("read status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("a VmRSS line")
    }

    /// Kill the process at once (SIGKILL on Unix): no graceful shutdown.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill wsx serve");
            child.wait().expect("reap wsx serve");
        }
    }

    /// The value of the `/metrics` line `name` (labels included), if there is one.
    pub async fn metric_value(&self, name: &str) -> Option<u64> {
        metric(self.addr, name).await
    }

    /// Wait for the process to exit.
    pub async fn wait_exit(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let wait = tokio::task::spawn_blocking(move || child.wait());
        tokio::time::timeout(WAIT, wait)
            .await
            .expect("the server did not exit in time")
            .expect("join")
            .expect("wait")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A plain HTTP response: status, head (lowercased) and body.
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The head, lowercased.
    pub head: String,
    /// The body.
    pub body: String,
}

/// The next text message on `ws` (other messages skipped).
pub async fn next_text(ws: &mut WebSocket<wsx::MaybeTlsStream>) -> String {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.recv())
            .await
            .expect("a message in time")
            .expect("open")
            .expect("no error");
        if let Message::Text(text) = msg {
            return text.to_string();
        }
    }
}

/// Poll `/metrics` until the line `name` has a value satisfying `ok`.
pub async fn wait_metric(server: &Server, name: &str, ok: impl Fn(u64) -> bool) -> u64 {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let value = server.metric_value(name).await;
        if let Some(value) = value
            && ok(value)
        {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} is {value:?} on {} after {WAIT:?}",
            server.addr
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Send a plain HTTP request and read the whole response (the server closes it).
pub async fn http(addr: SocketAddr, method: &str, path: &str) -> Response {
    let req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: test\r\n\r\n");
    http_exchange(addr, req.as_bytes()).await
}

/// `POST path` with `headers` and `body` (a `Content-Length` added); the whole response.
pub async fn http_post(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(body);
    http_exchange(addr, &bytes).await
}

/// Send `request` (head and body, as they go on the wire) and read the whole response (the
/// server closes it).
pub async fn http_exchange(addr: SocketAddr, request: &[u8]) -> Response {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(request).await.expect("write request");
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut raw))
        .await
        .expect("response in time")
        .expect("read response");
    let text = String::from_utf8(raw).expect("UTF-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete head");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    Response {
        status,
        head: head.to_ascii_lowercase(),
        body: body.to_owned(),
    }
}

/// The value of the `/metrics` line `name` (labels included) of the server at `addr`.
pub async fn metric(addr: SocketAddr, name: &str) -> Option<u64> {
    let text = http(addr, "GET", "/metrics").await.body;
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

// ---------------------------------------------------------------------------------------------
// the STOMP client

/// What a client saw from the server.
#[derive(Debug)]
pub enum Event {
    /// A STOMP frame.
    Frame(Frame),
    /// A heart-beat (an end-of-line).
    HeartBeat,
    /// The WebSocket closed, with the server's close frame if it sent one.
    Closed(Option<CloseFrame>),
}

/// A STOMP 1.2 client over a `wsx` WebSocket.
pub struct Client {
    ws: WebSocket<wsx::MaybeTlsStream>,
    decoder: Decoder,
    frames: VecDeque<Frame>,
    /// The subprotocol the server chose.
    pub subprotocol: Option<String>,
}

impl Client {
    /// Open a WebSocket to `server` at `path` (with its query), offering `protocols`.
    pub async fn open(server: &Server, path: &str, protocols: &[&str]) -> Client {
        let mut builder = wsx::ClientBuilder::new(server.ws_url(path));
        for p in protocols {
            builder = builder.subprotocol(*p);
        }
        let (ws, response) = tokio::time::timeout(WAIT, builder.connect())
            .await
            .expect("connect in time")
            .expect("WebSocket handshake");
        Client::over(ws, response.subprotocol)
    }

    /// A client on `ws`, which agreed on `subprotocol`.
    fn over(ws: WebSocket<wsx::MaybeTlsStream>, subprotocol: Option<String>) -> Client {
        let mut decoder = Decoder::new(Limits::default());
        decoder.set_version(Version::V1_2);
        Client {
            ws,
            decoder,
            frames: VecDeque::new(),
            subprotocol,
        }
    }

    /// Open `/stomp` offering STOMP 1.2 over a socket whose receive buffer is 4 KiB (a client
    /// that reads slowly, or not at all, backs the server up at once). The handshake is written
    /// by hand on that socket.
    pub async fn open_small_window(server: &Server) -> Client {
        let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
        socket
            .set_recv_buffer_size(4096)
            .expect("a 4 KiB receive buffer");
        let mut stream = tokio::time::timeout(WAIT, socket.connect(server.addr))
            .await
            .expect("connect in time")
            .expect("connect");
        let request = format!(
            "GET /stomp HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Protocol: v12.stomp\r\n\r\n",
            server.addr
        );
        stream
            .write_all(request.as_bytes())
            .await
            .expect("send the upgrade request");
        // The response head, a byte at a time: nothing after it is consumed.
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let byte = tokio::time::timeout(WAIT, stream.read_u8())
                .await
                .expect("a response in time")
                .expect("read the response");
            head.push(byte);
        }
        assert!(head.starts_with(b"HTTP/1.1 101"), "{head:?}");
        let ws = WebSocket::from_raw(
            wsx::MaybeTlsStream::Plain(stream),
            wsx::Role::Client,
            &wsx::WebSocketConfig::default(),
        );
        Client::over(ws, Some("v12.stomp".to_owned()))
    }

    /// Open `/stomp` offering STOMP 1.2 and send CONNECT with `headers` (plus
    /// `accept-version` and `host`); returns the client and the server's answer (CONNECTED or
    /// ERROR).
    pub async fn connect_with(
        server: &Server,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (Client, Frame) {
        let mut client = Client::open(server, path, &["v12.stomp"]).await;
        let mut connect = Frame::new(StompCommand::Connect)
            .with_header("accept-version", "1.2")
            .with_header("host", "localhost");
        for (name, value) in headers {
            connect = connect.with_header(*name, *value);
        }
        client.send(connect).await;
        let answer = client.frame().await;
        (client, answer)
    }

    /// Connect with a bearer token and expect CONNECTED.
    pub async fn connect(server: &Server, token: &str) -> Client {
        let bearer = format!("Bearer {token}");
        let (client, answer) =
            Client::connect_with(server, "/stomp", &[("Authorization", &bearer)]).await;
        assert_eq!(answer.command, StompCommand::Connected, "{answer:?}");
        client
    }

    /// Send one frame.
    pub async fn send(&mut self, frame: Frame) {
        self.feed(frame);
        self.flush().await;
    }

    /// Queue a frame without writing it (see [`Client::flush`]).
    pub fn feed(&mut self, frame: Frame) {
        let bytes = frame.encode(Version::V1_2).expect("encodable frame");
        let msg = match String::from_utf8(bytes.to_vec()) {
            Ok(text) => Message::text(text),
            Err(_) => Message::binary(bytes),
        };
        self.ws.feed(msg).expect("queue a frame");
    }

    /// Write the queued frames.
    pub async fn flush(&mut self) {
        tokio::time::timeout(WAIT, self.ws.flush())
            .await
            .expect("written in time")
            .expect("write frames");
    }

    /// Open `/stomp` and CONNECT without credentials (a server without JWT settings) as
    /// `login`; expects CONNECTED.
    pub async fn connect_anonymous(server: &Server, login: &str) -> Client {
        let (client, answer) = Client::connect_with(server, "/stomp", &[("login", login)]).await;
        assert_eq!(answer.command, StompCommand::Connected, "{answer:?}");
        client
    }

    /// Queue an ACK of a MESSAGE (by its `ack` header).
    pub fn feed_ack(&mut self, message: &Frame) {
        let id = message
            .header("ack")
            .expect("a MESSAGE in a client ack mode");
        self.feed(Frame::new(StompCommand::Ack).with_header("id", id));
    }

    /// Send a heart-beat (one end-of-line).
    pub async fn heart_beat(&mut self) {
        self.ws
            .send(Message::text("\n"))
            .await
            .expect("send a heart-beat");
    }

    /// The next thing from the server.
    pub async fn next(&mut self) -> Event {
        self.next_within(WAIT)
            .await
            .expect("the server answered in time")
    }

    /// The next thing from the server, or `None` if nothing comes within `within`.
    pub async fn next_within(&mut self, within: Duration) -> Option<Event> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(frame) = self.frames.pop_front() {
                return Some(Event::Frame(frame));
            }
            // `recv` is cancel-safe: a timeout loses nothing.
            let msg = tokio::time::timeout_at(deadline, self.ws.recv())
                .await
                .ok()?;
            let payload = match msg {
                None => return Some(Event::Closed(None)),
                Some(Err(e)) => panic!("connection failed: {e}"),
                Some(Ok(Message::Close(frame))) => {
                    // Finish the close handshake.
                    while let Some(Ok(_)) = self.ws.recv().await {}
                    return Some(Event::Closed(frame));
                }
                Some(Ok(msg)) if msg.is_data() => msg.payload().to_vec(),
                Some(Ok(_)) => continue,
            };
            if !payload.is_empty() && payload.iter().all(|&b| b == b'\n' || b == b'\r') {
                return Some(Event::HeartBeat);
            }
            self.decoder.feed(&payload);
            while let Some(frame) = self.decoder.poll_frame().expect("a valid server frame") {
                self.frames.push_back(frame);
            }
        }
    }

    /// The next frame within `within` (heart-beats skipped), or `None`; panics if the
    /// connection closes.
    pub async fn frame_within(&mut self, within: Duration) -> Option<Frame> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_within(left).await? {
                Event::Frame(frame) => return Some(frame),
                Event::HeartBeat => {}
                Event::Closed(close) => panic!("closed while waiting for a frame: {close:?}"),
            }
        }
    }

    /// The next frame, skipping heart-beats.
    pub async fn frame(&mut self) -> Frame {
        loop {
            match self.next().await {
                Event::Frame(frame) => return frame,
                Event::HeartBeat => {}
                Event::Closed(close) => panic!("closed while waiting for a frame: {close:?}"),
            }
        }
    }

    /// The next frame, which must be `command`.
    pub async fn expect(&mut self, command: StompCommand) -> Frame {
        let frame = self.frame().await;
        assert_eq!(frame.command, command, "{frame:?}");
        frame
    }

    /// The next frame must be RECEIPT `id`.
    pub async fn expect_receipt(&mut self, id: &str) {
        let frame = self.expect(StompCommand::Receipt).await;
        assert_eq!(frame.header("receipt-id"), Some(id));
    }

    /// The connection must close next (heart-beats aside); returns the close frame.
    pub async fn expect_closed(&mut self) -> Option<CloseFrame> {
        loop {
            match self.next().await {
                Event::Closed(close) => return close,
                Event::HeartBeat => {}
                Event::Frame(frame) => panic!("expected the close, got {frame:?}"),
            }
        }
    }

    /// The next frame must be an ERROR with a `message` header, followed by the close.
    pub async fn expect_error_then_close(&mut self) -> String {
        let error = self.expect(StompCommand::Error).await;
        let message = error
            .header("message")
            .expect("ERROR has a message header")
            .to_owned();
        let close = self.expect_closed().await;
        assert!(close.is_some(), "the server sent a close frame");
        message
    }

    /// SUBSCRIBE with a receipt, and wait for it.
    pub async fn subscribe(&mut self, id: &str, destination: &str, ack: &str) {
        let receipt = format!("sub-{id}");
        self.send(
            Frame::new(StompCommand::Subscribe)
                .with_header("id", id)
                .with_header("destination", destination)
                .with_header("ack", ack)
                .with_header("receipt", receipt.as_str()),
        )
        .await;
        self.expect_receipt(&receipt).await;
    }

    /// SEND a text message with `extra` headers.
    pub async fn publish(&mut self, destination: &str, body: &str, extra: &[(&str, &str)]) {
        let mut frame = Frame::new(StompCommand::Send)
            .with_header("destination", destination)
            .with_header("content-type", "text/plain")
            .with_body(body.to_owned());
        for (name, value) in extra {
            frame = frame.with_header(*name, *value);
        }
        self.send(frame).await;
    }

    /// Publish and wait for the receipt: the server has stored and routed the message when it
    /// returns (with a Redis broker: Redis has it).
    pub async fn publish_confirmed(&mut self, destination: &str, body: &str) {
        let receipt = format!("pub-{body}");
        self.publish(destination, body, &[("receipt", receipt.as_str())])
            .await;
        self.expect_receipt(&receipt).await;
    }

    /// The next MESSAGE's body.
    pub async fn message_body(&mut self) -> String {
        let frame = self.expect(StompCommand::Message).await;
        String::from_utf8(frame.body.to_vec()).expect("UTF-8 body")
    }

    /// DISCONNECT with a receipt; expects the receipt and a normal close.
    pub async fn disconnect(mut self) {
        self.send(Frame::new(StompCommand::Disconnect).with_header("receipt", "bye"))
            .await;
        self.expect_receipt("bye").await;
        let close = self.expect_closed().await.expect("a close frame");
        assert_eq!(close.code, CloseCode::NORMAL);
    }
}

/// A frame's body as text.
pub fn body(frame: &Frame) -> &str {
    std::str::from_utf8(&frame.body).expect("UTF-8 body")
}

// ---------------------------------------------------------------------------------------------
// Redis

/// Whether the environment says tests must not skip (`CI=true`).
fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// The Redis server shared by the tests: `WSX_TEST_REDIS_URL` (scripts/test.sh starts one).
/// `None` (after printing a skip line) when unset outside CI; a panic when unset under
/// `CI=true`.
pub fn redis_url(test: &str) -> Option<String> {
    match std::env::var("WSX_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                !under_ci(),
                "WSX_TEST_REDIS_URL is unset under CI=true: {test} cannot run"
            );
            eprintln!("skipped {test}: WSX_TEST_REDIS_URL is unset (scripts/test.sh starts Redis)");
            None
        }
    }
}

/// Start `wsx serve` as node `name` of the broker shared through `redis` under `prefix`.
pub fn cluster_node(redis: &str, prefix: &str, name: &str, extra: &[&str]) -> Server {
    let mut args = vec![
        "--broker",
        redis,
        "--redis-prefix",
        prefix,
        "--node-id",
        name,
    ];
    args.extend_from_slice(extra);
    Server::start(&args)
}

/// A Redis key prefix no other test (or test run) shares, for `--redis-prefix`.
pub fn unique_prefix(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("wsxtest:{test}:{}:{nanos}:", std::process::id())
}

/// A TCP port nothing listens on (it was free a moment ago).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

/// A `redis-server` of the test's own (from PATH), killed when dropped.
pub struct RedisServer {
    child: Option<Child>,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl RedisServer {
    /// Whether `redis-server` is on PATH: `false` (after printing a skip line) when missing
    /// outside CI; a panic when missing under `CI=true`.
    pub fn available(test: &str) -> bool {
        tool_available("redis-server", test)
    }

    /// Start `redis-server` on `port` (no persistence) and wait until it accepts connections.
    pub fn start(port: u16) -> RedisServer {
        RedisServer::start_with(port, &[])
    }

    /// [`RedisServer::start`] with more arguments (`--replicaof 127.0.0.1 PORT`).
    pub fn start_with(port: u16, extra: &[&str]) -> RedisServer {
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(std::env::temp_dir())
            .args(extra);
        RedisServer::spawn(command, port)
    }

    /// A sentinel on `port` with the configuration file `conf` (it must be writable: the
    /// sentinel rewrites it), `redis-server CONF --sentinel`.
    pub fn start_sentinel(port: u16, conf: &std::path::Path) -> RedisServer {
        let mut command = Command::new("redis-server");
        command.arg(conf).arg("--sentinel").args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ]);
        RedisServer::spawn(command, port)
    }

    /// Run `command` (a redis-server listening on `port`) and wait until it accepts
    /// connections.
    fn spawn(mut command: Command, port: u16) -> RedisServer {
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn redis-server");
        let mut server = RedisServer {
            child: Some(child),
            port,
        };
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            if let Some(child) = server.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("redis-server on port {port} exited: {status}");
            }
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not listen on port {port} in time"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kill it at once (SIGKILL): every client connection drops, every key is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A Redis Cluster of the test's own (`redis-server --cluster-enabled yes`, joined with
/// `redis-cli --cluster create`, both from PATH): `primaries` primaries on free ports (each
/// with its bus port, +10000, free too); killed, and its directory removed, when dropped.
pub struct RedisCluster {
    servers: Vec<RedisServer>,
    dir: std::path::PathBuf,
}

impl RedisCluster {
    /// Whether `redis-server` and `redis-cli` are on PATH: `false` (after printing a skip
    /// line) when missing outside CI; a panic when missing under `CI=true`.
    pub fn available(test: &str) -> bool {
        RedisServer::available(test) && tool_available("redis-cli", test)
    }

    /// Start the nodes, create the cluster and wait until every node says it is ok.
    pub fn start(primaries: usize) -> RedisCluster {
        let ports: Vec<u16> = (0..primaries).map(|_| cluster_port()).collect();
        let dir = std::env::temp_dir().join(format!(
            "wsx-cli-cluster-{}-{}",
            std::process::id(),
            ports[0]
        ));
        std::fs::create_dir_all(&dir).expect("a directory for the cluster");
        let servers = ports
            .iter()
            .map(|port| {
                let conf = dir.join(format!("nodes-{port}.conf"));
                RedisServer::start_with(
                    *port,
                    &[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        conf.to_str().expect("utf-8 path"),
                        "--cluster-node-timeout",
                        "1000",
                    ],
                )
            })
            .collect();
        let cluster = RedisCluster { servers, dir };
        let status = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(ports.iter().map(|p| format!("127.0.0.1:{p}")))
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .status()
            .expect("run redis-cli --cluster create");
        assert!(status.success(), "redis-cli --cluster create: {status}");
        let deadline = std::time::Instant::now() + WAIT;
        for port in &ports {
            while !cluster_ok(*port) {
                assert!(
                    std::time::Instant::now() < deadline,
                    "cluster node {port} not ok in time"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        cluster
    }

    /// The nodes' ports.
    pub fn ports(&self) -> Vec<u16> {
        self.servers.iter().map(|s| s.port).collect()
    }

    /// `redis-cluster://…` naming every node.
    pub fn url(&self) -> String {
        let nodes: Vec<String> = self
            .servers
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        format!("redis-cluster://{}", nodes.join(","))
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        self.servers.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A free port whose cluster bus port (+10000) is free too.
fn cluster_port() -> u16 {
    loop {
        let port = free_port();
        if port < 55_000 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

/// Whether the node on `port` says `cluster_state:ok` (`CLUSTER INFO` over a plain socket).
fn cluster_ok(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut socket) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = socket.set_read_timeout(Some(Duration::from_secs(1)));
    if socket.write_all(b"CLUSTER INFO\r\n").is_err() {
        return false;
    }
    let mut reply = vec![0u8; 4096];
    let n = socket.read(&mut reply).unwrap_or(0);
    String::from_utf8_lossy(&reply[..n]).contains("cluster_state:ok")
}

/// Whether `tool --version` runs: `false` (after printing a skip line) when it does not outside
/// CI; a panic when it does not under `CI=true`.
fn tool_available(tool: &str, test: &str) -> bool {
    let found = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            !under_ci(),
            "{tool} is missing under CI=true: {test} cannot run"
        );
        eprintln!("skipped {test}: {tool} is not on PATH");
    }
    found
}
