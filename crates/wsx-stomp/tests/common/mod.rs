//! An in-memory STOMP server (a `Broker` with a `MemoryEngine`) and its clients: frames are
//! encoded as a client would, fed to the broker, and the broker's transmits are decoded back.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wsx_stomp::{
    AllowAll, AuthRequest, Authenticator, Broker, Command, Confirmation, ConnId, ConnectionInfo,
    Decoder, EncodedFrame, Engine, Frame, Limits, MemoryEngine, Principal, Refusal, SessionConfig,
    Transmit, Version,
};

/// Inside `impl Engine for …` of a test engine wrapping a [`MemoryEngine`] in its `inner`
/// field: the [`Engine`] methods it passes on unchanged (`subscribe`, `unsubscribe`,
/// `publish`, `ack`, `nack`). The test engine writes the methods it changes; the others keep
/// their defaults.
#[allow(unused_macros)]
macro_rules! forward_to_inner {
    () => {
        fn subscribe(
            &mut self,
            key: ::wsx_stomp::SubscriberKey,
            destination: &::wsx_stomp::Destination,
            max_unacked: Option<usize>,
            out: &mut Vec<::wsx_stomp::Delivery>,
        ) {
            self.inner.subscribe(key, destination, max_unacked, out);
        }

        fn unsubscribe(
            &mut self,
            key: &::wsx_stomp::SubscriberKey,
            out: &mut Vec<::wsx_stomp::Delivery>,
        ) {
            self.inner.unsubscribe(key, out);
        }

        fn publish(&mut self, message: ::wsx_stomp::Publish, out: &mut Vec<::wsx_stomp::Delivery>) {
            self.inner.publish(message, out);
        }

        fn ack(
            &mut self,
            key: &::wsx_stomp::SubscriberKey,
            ids: &[::wsx_stomp::MessageId],
            out: &mut Vec<::wsx_stomp::Delivery>,
        ) {
            self.inner.ack(key, ids, out);
        }

        fn nack(
            &mut self,
            key: &::wsx_stomp::SubscriberKey,
            ids: &[::wsx_stomp::MessageId],
            out: &mut Vec<::wsx_stomp::Delivery>,
        ) {
            self.inner.nack(key, ids, out);
        }
    };
}
#[allow(unused_imports)]
pub(crate) use forward_to_inner;

/// What a client saw from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    Frame(Frame),
    HeartBeat,
    Close,
    /// The session deferred authentication to the I/O layer.
    Authenticate(AuthRequest),
}

struct ClientSide {
    decoder: Decoder,
    version: Version,
    /// The sizes of the transmits drained and not reported written yet, oldest first.
    unreported: VecDeque<usize>,
}

pub struct Harness<E: Engine = MemoryEngine> {
    pub broker: Broker<E>,
    pub now: Instant,
    clients: HashMap<ConnId, ClientSide>,
    /// Every connection the last call reported as woken.
    pub woken: Vec<ConnId>,
}

impl Harness {
    pub fn new(config: SessionConfig) -> Self {
        Harness::with_auth(config, Arc::new(AllowAll))
    }

    pub fn with_auth(config: SessionConfig, auth: Arc<dyn Authenticator>) -> Self {
        Harness::with_engine(MemoryEngine::new(), config, auth)
    }
}

impl<E: Engine> Harness<E> {
    /// A server routing through `engine`.
    pub fn with_engine(engine: E, config: SessionConfig, auth: Arc<dyn Authenticator>) -> Self {
        Harness {
            broker: Broker::new(engine, config, auth),
            now: Instant::now(),
            clients: HashMap::new(),
            woken: Vec::new(),
        }
    }

    /// A server routing through `engine`, with the default session config, letting everyone in.
    pub fn routing_through(engine: E) -> Self {
        Harness::with_engine(engine, SessionConfig::default(), Arc::new(AllowAll))
    }

    pub fn advance(&mut self, by: Duration) {
        self.now += by;
    }

    pub fn open(&mut self, info: ConnectionInfo) -> ConnId {
        let conn = self.broker.open(info, self.now);
        self.clients.insert(
            conn,
            ClientSide {
                decoder: Decoder::new(Limits::default()),
                version: Version::V1_2,
                unreported: VecDeque::new(),
            },
        );
        conn
    }

    /// Open a connection and CONNECT with `accept-version`; returns it with what came back.
    pub fn connect_with(&mut self, frame: Frame) -> (ConnId, Vec<Seen>) {
        let conn = self.open(ConnectionInfo::new().with_path("/stomp"));
        self.send(conn, frame);
        let seen = self.drain(conn);
        (conn, seen)
    }

    /// Open a connection speaking 1.2 and check it got CONNECTED.
    pub fn connect(&mut self) -> ConnId {
        self.connect_version("1.2")
    }

    /// Open a connection offering `versions` and check it got CONNECTED.
    pub fn connect_version(&mut self, versions: &str) -> ConnId {
        let (conn, seen) = self.connect_with(
            Frame::new(Command::Connect)
                .with_header("accept-version", versions)
                .with_header("host", "localhost"),
        );
        let frames = frames(&seen);
        assert_eq!(frames.len(), 1, "{seen:?}");
        assert_eq!(frames[0].command, Command::Connected, "{seen:?}");
        conn
    }

    /// Encode `frame` the way this client's version says and feed it to the broker.
    pub fn send(&mut self, conn: ConnId, frame: Frame) {
        let version = self.clients[&conn].version;
        let bytes = frame.encode(version).expect("test frames are encodable");
        self.send_raw(conn, &bytes);
    }

    pub fn send_raw(&mut self, conn: ConnId, bytes: &[u8]) {
        self.woken = self.broker.receive(conn, self.now, bytes).to_vec();
    }

    pub fn close(&mut self, conn: ConnId) {
        self.woken = self.broker.close(conn).to_vec();
    }

    /// Hand the engine's confirmations of pending SENDs to the broker.
    pub fn confirm(&mut self, confirmations: Vec<Confirmation>) {
        self.woken = self.broker.confirm(confirmations).to_vec();
    }

    /// The I/O layer's answer to a deferred authentication of `conn`.
    pub fn authenticated(&mut self, conn: ConnId, verdict: Result<Principal, Refusal>) {
        self.woken = self.broker.authenticated(conn, self.now, verdict).to_vec();
    }

    pub fn tick(&mut self, conn: ConnId) {
        self.woken = self.broker.handle_timeout(conn, self.now).to_vec();
    }

    /// Everything the server has queued for `conn`, decoded.
    pub fn drain(&mut self, conn: ConnId) -> Vec<Seen> {
        let mut seen = Vec::new();
        while let Some(transmit) = self.broker.poll_transmit(conn, self.now) {
            if let Some(client) = self.clients.get_mut(&conn) {
                client.unreported.push_back(transmit.size());
            }
            match transmit {
                Transmit::HeartBeat => seen.push(Seen::HeartBeat),
                Transmit::Close => seen.push(Seen::Close),
                Transmit::Authenticate(request) => {
                    // Not for the client: not reported written.
                    if let Some(client) = self.clients.get_mut(&conn) {
                        client.unreported.pop_back();
                    }
                    seen.push(Seen::Authenticate(*request));
                }
                Transmit::Frame(encoded)
                | Transmit::TopicMessage(encoded)
                | Transmit::KeyedTopicMessage(encoded, _) => {
                    let frame = self.decode_one(conn, &encoded);
                    seen.push(Seen::Frame(frame));
                }
            }
        }
        seen
    }

    /// Report everything drained from `conn` so far as written to its socket
    /// ([`Broker::written`]).
    pub fn written(&mut self, conn: ConnId) {
        self.written_partly(conn, usize::MAX);
    }

    /// Report the first `n` transmits drained from `conn` and not reported yet as written.
    pub fn written_partly(&mut self, conn: ConnId, n: usize) {
        let Some(client) = self.clients.get_mut(&conn) else {
            return;
        };
        let n = n.min(client.unreported.len());
        let bytes: usize = client.unreported.drain(..n).sum();
        self.woken = self
            .broker
            .written(conn, self.now, n as u64, bytes)
            .to_vec();
    }

    /// The frames queued for `conn`, asserting there is nothing else.
    pub fn frames(&mut self, conn: ConnId) -> Vec<Frame> {
        let seen = self.drain(conn);
        let frames = frames(&seen);
        assert_eq!(frames.len(), seen.len(), "unexpected non-frames: {seen:?}");
        frames
    }

    fn decode_one(&mut self, conn: ConnId, encoded: &EncodedFrame) -> Frame {
        let client = self.clients.get_mut(&conn).expect("known client");
        client.decoder.feed(&encoded.to_bytes());
        let frame = client
            .decoder
            .poll_frame()
            .expect("server frames decode")
            .expect("each transmit is one whole frame");
        assert!(client.decoder.is_idle(), "one frame per transmit");
        if frame.command == Command::Connected {
            let version = frame
                .header("version")
                .and_then(Version::parse)
                .unwrap_or(Version::V1_0);
            client.version = version;
            client.decoder.set_version(version);
        }
        frame
    }
}

pub fn frames(seen: &[Seen]) -> Vec<Frame> {
    seen.iter()
        .filter_map(|s| match s {
            Seen::Frame(f) => Some(f.clone()),
            _ => None,
        })
        .collect()
}

pub fn subscribe(id: &str, destination: &str, ack: &str) -> Frame {
    Frame::new(Command::Subscribe)
        .with_header("id", id)
        .with_header("destination", destination)
        .with_header("ack", ack)
}

pub fn send(destination: &str, body: &str) -> Frame {
    Frame::new(Command::Send)
        .with_header("destination", destination)
        .with_header("content-type", "text/plain")
        .with_body(body.to_owned())
}

pub fn body(frame: &Frame) -> &str {
    std::str::from_utf8(&frame.body).expect("UTF-8 body")
}

/// Assert `seen` is exactly one ERROR whose message contains `needle`, then Close.
pub fn assert_error(seen: &[Seen], needle: &str) -> Frame {
    match seen {
        [Seen::Frame(error), Seen::Close] if error.command == Command::Error => {
            let message = error.header("message").unwrap_or_default();
            assert!(
                message.contains(needle),
                "ERROR message `{message}` does not contain `{needle}`"
            );
            error.clone()
        }
        other => panic!("expected ERROR then Close, got {other:?}"),
    }
}
