//! What the broker's tests share: a broker served on a real socket by `wsx::Server`
//! ([`serve`]), a STOMP client over the wsx WebSocket client writing raw frames ([`Client`]),
//! and the Redis settings of the two-node tests.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use wsx::{Answer, Message, Server};
use wsx_broker::Broker;
use wsx_stomp::{Command, Decoder, Frame, Limits, Version};

/// How long anything may take.
pub const WAIT: Duration = Duration::from_secs(10);

/// Serve `broker` at `/stomp` on a free port of 127.0.0.1 (other paths: 404).
pub async fn serve(broker: Arc<Broker>) -> SocketAddr {
    let server = Server::bind("127.0.0.1:0").await.expect("bind");
    let addr = server.local_addr().expect("an address");
    tokio::spawn(server.serve_routes(move |info| match info.request.path() {
        "/stomp" => broker.upgrade(info).into(),
        _ => Answer::text(404, "not found"),
    }));
    addr
}

/// The Redis URL of the two-node tests: `WSX_TEST_REDIS_URL`; `None` (after a skip line)
/// when unset outside CI, a panic when unset under `CI=true`.
pub fn redis_url(test: &str) -> Option<String> {
    match std::env::var("WSX_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "WSX_TEST_REDIS_URL is unset under CI=true: {test} cannot run"
            );
            eprintln!("skipped {test}: WSX_TEST_REDIS_URL is unset (scripts/test.sh starts Redis)");
            None
        }
    }
}

/// A Redis key prefix no other test (or test run) shares.
pub fn unique_prefix(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("wsxtest:{test}:{}:{nanos}:", std::process::id())
}

/// A STOMP 1.2 client over a wsx WebSocket, sending and reading raw frames.
pub struct Client {
    ws: wsx::WebSocket<wsx::MaybeTlsStream>,
    decoder: Decoder,
    frames: VecDeque<Frame>,
}

impl Client {
    /// Open `ws://addr{path}` offering `v12.stomp`, with extra upgrade request headers.
    pub async fn open(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Client {
        let mut builder =
            wsx::ClientBuilder::new(format!("ws://{addr}{path}")).subprotocol("v12.stomp");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let (ws, response) = tokio::time::timeout(WAIT, builder.connect())
            .await
            .expect("connect in time")
            .expect("WebSocket handshake");
        assert_eq!(response.subprotocol.as_deref(), Some("v12.stomp"));
        let mut decoder = Decoder::new(Limits::default());
        decoder.set_version(Version::V1_2);
        Client {
            ws,
            decoder,
            frames: VecDeque::new(),
        }
    }

    /// Open `/stomp` over a socket whose receive buffer is `bytes` (the kernel's buffering
    /// out of the way: a client that stops reading is felt by the server at once), CONNECT as
    /// `login` and expect CONNECTED.
    pub async fn connect_with_receive_buffer(addr: SocketAddr, login: &str, bytes: u32) -> Client {
        let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
        socket.set_recv_buffer_size(bytes).expect("SO_RCVBUF");
        let tcp = tokio::time::timeout(WAIT, socket.connect(addr))
            .await
            .expect("connect in time")
            .expect("connected");
        let builder =
            wsx::ClientBuilder::new(format!("ws://{addr}/stomp")).subprotocol("v12.stomp");
        let (ws, _) =
            tokio::time::timeout(WAIT, builder.connect_on(wsx::MaybeTlsStream::Plain(tcp)))
                .await
                .expect("handshake in time")
                .expect("WebSocket handshake");
        let mut decoder = Decoder::new(Limits::default());
        decoder.set_version(Version::V1_2);
        let mut client = Client {
            ws,
            decoder,
            frames: VecDeque::new(),
        };
        client
            .send(
                Frame::new(Command::Connect)
                    .with_header("accept-version", "1.2")
                    .with_header("host", "localhost")
                    .with_header("login", login),
            )
            .await;
        let answer = client.frame().await;
        assert_eq!(answer.command, Command::Connected, "{answer:?}");
        client
    }

    /// Open `/stomp` and CONNECT with `headers` (plus `accept-version`, `host`); returns
    /// the client and the server's answer (CONNECTED or ERROR).
    pub async fn connect_with(
        addr: SocketAddr,
        path: &str,
        upgrade_headers: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> (Client, Frame) {
        let mut client = Client::open(addr, path, upgrade_headers).await;
        let mut connect = Frame::new(Command::Connect)
            .with_header("accept-version", "1.2")
            .with_header("host", "localhost");
        for (name, value) in headers {
            connect = connect.with_header(*name, *value);
        }
        client.send(connect).await;
        let answer = client.frame().await;
        (client, answer)
    }

    /// Open `/stomp`, CONNECT as `login` and expect CONNECTED.
    pub async fn connect(addr: SocketAddr, login: &str) -> Client {
        let (client, answer) = Client::connect_with(addr, "/stomp", &[], &[("login", login)]).await;
        assert_eq!(answer.command, Command::Connected, "{answer:?}");
        client
    }

    /// Send one frame.
    pub async fn send(&mut self, frame: Frame) {
        let bytes = frame.encode(Version::V1_2).expect("encodable frame");
        let text = String::from_utf8(bytes.to_vec()).expect("text frames in tests");
        tokio::time::timeout(WAIT, self.ws.send(Message::text(text)))
            .await
            .expect("sent in time")
            .expect("send a frame");
    }

    /// SEND `body` to `destination`, with more headers.
    pub async fn send_to(&mut self, destination: &str, body: &str, headers: &[(&str, &str)]) {
        let mut frame = Frame::new(Command::Send)
            .with_header("destination", destination)
            .with_body(body.to_owned());
        for (name, value) in headers {
            frame = frame.with_header(*name, *value);
        }
        self.send(frame).await;
    }

    /// SUBSCRIBE to `destination` as `id` (ack:auto) and wait for its RECEIPT.
    pub async fn subscribe(&mut self, id: &str, destination: &str) {
        let receipt = format!("sub-{id}");
        self.send(
            Frame::new(Command::Subscribe)
                .with_header("id", id)
                .with_header("destination", destination)
                .with_header("receipt", receipt.as_str()),
        )
        .await;
        let answer = self.frame().await;
        assert_eq!(answer.command, Command::Receipt, "{answer:?}");
        assert_eq!(answer.header("receipt-id"), Some(receipt.as_str()));
    }

    /// The next frame (heart-beats skipped); panics if none comes in time or the connection
    /// ends.
    pub async fn frame(&mut self) -> Frame {
        self.frame_within(WAIT)
            .await
            .expect("a frame from the server in time")
    }

    /// The next frame, or `None` if none comes within `within` or the connection ends.
    pub async fn frame_within(&mut self, within: Duration) -> Option<Frame> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(frame) = self.frames.pop_front() {
                return Some(frame);
            }
            let msg = tokio::time::timeout_at(deadline, self.ws.recv())
                .await
                .ok()??;
            let msg = msg.ok()?;
            if msg.is_data() {
                self.decoder.feed(msg.payload());
                while let Some(frame) = self.decoder.poll_frame().expect("a valid frame") {
                    self.frames.push_back(frame);
                }
            }
        }
    }

    /// Wait until the server closes the connection; returns the close code, if any.
    pub async fn closed(&mut self) -> Option<u16> {
        loop {
            match tokio::time::timeout(WAIT, self.ws.recv())
                .await
                .expect("the server closes in time")
            {
                None | Some(Err(_)) => return None,
                Some(Ok(Message::Close(frame))) => return frame.map(|f| f.code.0),
                Some(Ok(_)) => {}
            }
        }
    }

    /// Frames until `n` have come; panics if they do not in time.
    pub async fn frames(&mut self, n: usize) -> Vec<Frame> {
        let mut frames = Vec::with_capacity(n);
        while frames.len() < n {
            frames.push(self.frame().await);
        }
        frames
    }
}

/// The body of a frame as text.
pub fn body(frame: &Frame) -> &str {
    std::str::from_utf8(&frame.body).expect("a text body")
}
