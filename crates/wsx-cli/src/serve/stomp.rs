//! `/stomp`: STOMP 1.0, 1.1 and 1.2 over WebSocket, on the server's broker: in memory
//! (`--broker memory`, the default) or one node of a broker shared through Redis
//! (`--broker redis://HOST:PORT[/DB]`, see [`engine`]).
//!
//! The router upgrades a request for `/stomp` with the subprotocol [`Stomp::accept`] picks
//! (`v12.stomp`, `v11.stomp` or `v10.stomp`, the best the client offers; a client that offers
//! none is served too) and hands the connection to [`session`], with the URL's query string
//! and the peer address in a [`ConnectionInfo`] for the authenticator.
//!
//! The protocol work is done by the sans-IO crate `wsx-stomp`: one [`wsx_stomp::Broker`] for the
//! whole server, shared through the [`hub::Hub`]. A connection task feeds every WebSocket
//! message it receives to the broker, writes what the hub queued for it on its [`hub::Link`]
//! (STOMP frames as text messages when they are UTF-8, binary otherwise; heart-beats as
//! `"\n"`), sleeps until the session's next deadline (CONNECT timeout, heart-beats) and closes
//! the WebSocket when the session ends. Other connections' traffic reaches it through the link
//! and its `Notify`.
//!
//! The task tells the hub what reached the socket ([`wire::Fed`], [`hub::Hub::written`]): at
//! once when the session waits for it (`ack:auto` queue messages are acknowledged to the broker
//! only once written, which refills their credit window), otherwise along with the next input.
//! While the session's unwritten output is past `--stomp-max-unwritten-bytes` the task stops
//! reading the socket and only writes, until the client has read enough.
//!
//! With Redis, a SEND goes to Redis and comes back to every node (this one included) as a
//! [`wsx_stomp_redis::RedisEvent`]; the pump task ([`Stomp::spawn_redis_pump`]) hands those to
//! the engine under the hub's lock ([`hub::Hub::pump_with`]), which routes the deliveries
//! to the links like a local SEND's. The SEND's RECEIPT waits until Redis has stored the
//! message: the node's writer reports it among the same events, and the hub hands the
//! confirmation to the session ([`wsx_stomp::Broker::confirm`]), which then sends the RECEIPT
//! — or, when Redis refused the message after the node accepted it (a queue another node
//! filled first, an error), an ERROR, and closes. A SEND the engine cannot take at once (Redis
//! unreachable and `--redis-max-pending-sends` SENDs already waiting, a queue known to be full)
//! is answered with an ERROR at once.
//!
//! A MESSAGE frame is encoded once per message (and protocol version) by `wsx-stomp`: the
//! subscriber-specific head (`subscription`, `ack`, `redelivered`) is written per subscriber
//! and the shared tail (headers, body) goes to every socket without being copied or compressed,
//! like the chat rooms' broadcasts. Other frames (CONNECTED, RECEIPT, ERROR) are ordinary
//! messages, compressed when permessage-deflate was negotiated.
//!
//! Authentication: with `--jwt-secret` and/or `--jwt-public-key`, a client must present a JWT
//! ([`jwt`]; `--jwt-leeway`, `--jwt-issuer` and `--jwt-audience` tune the checks), and the
//! session ends with an ERROR `token expired` when the token does; without either, anyone may connect and use every destination (the principal is
//! the `login` header, or `anonymous`).
//!
//! The session ends when the client sends DISCONNECT (close 1000), on a protocol error or a
//! refused CONNECT (ERROR frame, then close 1008 with its message), when the client's
//! heart-beats stop or it sends nothing for `--stomp-idle-timeout` (ERROR, then close), when its
//! token expires (ERROR `token expired`, then close), when the client closes, when it is too slow for the
//! traffic it subscribed to (close 1008 "too slow"), or on server shutdown (close 1001). Its
//! subscriptions are then released: unacknowledged queue messages go to other consumers.

mod engine;
mod hub;
mod jwt;
mod wire;

use std::future::poll_fn;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::BytesMut;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info};
use wsx::{
    Accept, CloseCode, HttpRequest, MaybeTlsStream, Message, RecvOrDrained, Utf8Bytes, WebSocket,
    WebSocketConfig,
};
use wsx_proto::MAX_HEADER_LEN;
use wsx_proto::{FrameHeader, OpCode};
use wsx_stomp::{
    AllowAll, Authenticator, Broker, ConnectionInfo, EncodedFrame, Limits, SessionConfig,
};
use wsx_stomp_redis::RedisEvents;

use super::State;
use super::escaped::Escaped;
use super::metrics::Metrics;
use engine::BrokerEngine;
pub use engine::{BrokerUrl, MemorySettings, RedisSettings};
use hub::{Hub, LINK_QUEUE_LEN, Metered, Out, QueueLimits};
use jwt::JwtAuth;
pub use jwt::{DEFAULT_LEEWAY_SECS as DEFAULT_JWT_LEEWAY_SECS, JwtOptions};
use wire::Fed;

/// The subprotocols of STOMP over WebSocket, best first.
const SUBPROTOCOLS: [&str; 3] = ["v12.stomp", "v11.stomp", "v10.stomp"];
/// Unwritten output above which the task stops taking frames from its link.
const WRITE_HIGH_WATER: usize = 256 * 1024;
/// How long a session's input may stay paused when `--stomp-idle-timeout` is off.
const MAX_PAUSE: Duration = Duration::from_secs(300);
/// The least bytes of `ack:auto` topic messages a connection's link may hold before it counts as
/// too slow.
const MIN_QUEUED_BYTES: usize = 8 << 20;
/// The most Redis events handled under one lock of the hub.
const REDIS_EVENT_BATCH: usize = 64;

/// The `--stomp-heartbeat` value: the server's heart-beat header `sx,sy` in milliseconds: it
/// sends something at least every `sx` ms (if the client wants it) and wants to hear from the
/// client every `sy` ms (if the client can); 0 turns a direction off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartBeatMs {
    /// `sx`: how often the server can send heart-beats.
    pub send: u32,
    /// `sy`: how often the server wants to receive them.
    pub receive: u32,
}

impl FromStr for HeartBeatMs {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || format!("`{s}`: expected two millisecond counts, SEND,RECEIVE");
        let (a, b) = s.split_once(',').ok_or_else(invalid)?;
        Ok(HeartBeatMs {
            send: a.trim().parse().map_err(|_| invalid())?,
            receive: b.trim().parse().map_err(|_| invalid())?,
        })
    }
}

/// The `--jwt-secret` value; `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct JwtSecret(String);

impl std::fmt::Debug for JwtSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtSecret(…)")
    }
}

impl JwtSecret {
    /// The secret.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for JwtSecret {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err("the secret must not be empty".to_owned());
        }
        Ok(JwtSecret(s.to_owned()))
    }
}

/// What `/stomp` needs from the command line.
#[derive(Debug, Clone)]
pub struct StompOptions<'a> {
    /// `--jwt-secret`, `--jwt-public-key`, `--jwt-leeway`, `--jwt-issuer`, `--jwt-audience`.
    pub jwt: JwtOptions<'a>,
    /// `--stomp-idle-timeout` (`None`: no limit).
    pub idle_timeout: Option<Duration>,
    /// `--stomp-max-subscriptions`.
    pub max_subscriptions: usize,
    /// `--stomp-auto-ack-window`.
    pub auto_ack_window: usize,
    /// `--stomp-max-unwritten-bytes`.
    pub max_unwritten_bytes: usize,
    /// `--stomp-heartbeat`.
    pub heartbeat: HeartBeatMs,
    /// `--broker`.
    pub broker: &'a BrokerUrl,
    /// The `--stomp-max-*` budgets of the in-memory broker.
    pub memory: MemorySettings,
    /// `--node-id` and the `--redis-*` settings (used with a Redis broker).
    pub redis: RedisSettings,
}

/// The `/stomp` endpoint: the shared broker and the WebSocket settings of its connections.
#[derive(Debug)]
pub struct Stomp {
    hub: Hub<BrokerEngine>,
    ws_config: WebSocketConfig,
    /// How long a session's input may stay paused (its client does not read its output)
    /// before the connection is closed as too slow: the idle limit, or [`MAX_PAUSE`] when
    /// that is off.
    max_pause: Duration,
    /// What Redis sends this node, until [`Stomp::spawn_redis_pump`] takes it.
    redis_events: Mutex<Option<RedisEvents>>,
}

impl Stomp {
    /// Build the endpoint: `base` is the WebSocket configuration of the other routes
    /// (compression, keepalive); the message limit follows the STOMP frame limit. With a Redis
    /// broker this starts the node's Redis tasks (on the current runtime; they connect in the
    /// background) and registers its counters in `metrics`; call
    /// [`Stomp::spawn_redis_pump`] next. Errors are for the user (a bad key file or URL).
    pub fn new(
        options: &StompOptions<'_>,
        base: &WebSocketConfig,
        metrics: Arc<Metrics>,
    ) -> Result<Stomp, String> {
        let limits = Limits::default();
        let config = SessionConfig::default()
            .limits(limits)
            .heart_beat(options.heartbeat.send, options.heartbeat.receive)
            .max_subscriptions(options.max_subscriptions)
            .auto_ack_window(options.auto_ack_window)
            .max_unwritten_bytes(options.max_unwritten_bytes)
            .idle_timeout(options.idle_timeout);
        let jwt = JwtAuth::from_options(&options.jwt)?;
        let auth: Arc<dyn Authenticator> = match jwt {
            Some(jwt) => Arc::new(jwt),
            None => Arc::new(AllowAll),
        };
        let (engine, redis_events) =
            BrokerEngine::start(options.broker, &options.memory, &options.redis)?;
        match &engine {
            BrokerEngine::Memory(_) => info!("stomp: in-memory broker"),
            BrokerEngine::Redis(redis) => info!(
                "stomp: broker shared through {} (node id {}, key prefix {:?})",
                Escaped(options.broker),
                Escaped(redis.node_id()),
                options.redis.prefix
            ),
        }
        if let Some(redis) = engine.redis_metrics() {
            metrics.set_redis(redis);
        }
        let engine = Metered::new(engine, metrics.clone());
        let queue_limits = QueueLimits {
            items: LINK_QUEUE_LEN,
            bytes: limits
                .max_frame_size
                .saturating_mul(4)
                .max(MIN_QUEUED_BYTES),
        };
        // A WebSocket message may pack a few frames; the decoder enforces the frame limits.
        let message_limit = limits.max_frame_size.saturating_mul(2);
        // The task keeps at most WRITE_HIGH_WATER plus one frame in the WebSocket's buffer; the
        // WebSocket's own output budget must sit above that, so that the session alone decides
        // when a client's input pauses (and suspends its heart-beat check meanwhile).
        let write_budget = base.max_write_buffer.max(
            WRITE_HIGH_WATER
                .saturating_add(message_limit)
                .saturating_add(64 * 1024),
        );
        let ws_config = base
            .clone()
            .max_message_size(message_limit)
            .max_frame_size(message_limit)
            .backpressure(write_budget, base.backpressure);
        Ok(Stomp {
            hub: Hub::new(Broker::new(engine, config, auth), metrics, queue_limits),
            ws_config,
            redis_events: Mutex::new(redis_events),
            max_pause: options.idle_timeout.unwrap_or(MAX_PAUSE),
        })
    }

    /// With a Redis broker: spawn the task that hands what Redis sends (messages of every
    /// node's SENDs, queue entries) to the engine under the hub's lock and routes the
    /// deliveries to the connections. It runs until `stop` turns `true` (at shutdown, after
    /// [`Stomp::shut_down`]). `None` with the in-memory broker (or when already spawned).
    pub fn spawn_redis_pump(
        self: &Arc<Self>,
        stop: watch::Receiver<bool>,
    ) -> Option<JoinHandle<()>> {
        let events = self
            .redis_events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()?;
        Some(tokio::spawn(redis_pump(self.clone(), events, stop)))
    }

    /// At shutdown, once the connection tasks are gone (the Redis pump still running): close
    /// the sessions left, then, with a Redis broker, wait up to `timeout` until Redis has
    /// carried out every command issued so far, so that the queue messages the closed sessions
    /// held go back to the other nodes now rather than after the claim timeout (the flush also
    /// waits for the queue readers stopped to give back what they were still fetching).
    pub async fn shut_down(&self, timeout: Duration) {
        // Sessions whose tasks were cut short by the shutdown timeout.
        self.hub.close_all();
        // The future does not borrow the engine.
        let flushed = self
            .hub
            .with_engine(|engine| engine.redis_mut().map(|redis| redis.flushed()));
        let Some(flushed) = flushed else {
            return;
        };
        if tokio::time::timeout(timeout, flushed).await.is_err() {
            tracing::warn!("stomp: redis did not confirm the last commands in time");
        }
    }

    /// The WebSocket settings of `/stomp` connections.
    pub fn ws_config(&self) -> &WebSocketConfig {
        &self.ws_config
    }

    /// Choose the subprotocol for an upgrade request: the best STOMP version the client offers,
    /// or none when it offers none (such clients are served too).
    pub fn accept(&self, req: &HttpRequest, mut accept: Accept) -> Accept {
        accept.subprotocol = choose_subprotocol(req).map(str::to_owned);
        accept
    }
}

/// Feed every Redis event to the engine, a batch per lock of the hub, until `stop` (or until
/// the engine's tasks are gone).
async fn redis_pump(stomp: Arc<Stomp>, mut events: RedisEvents, mut stop: watch::Receiver<bool>) {
    loop {
        let first = tokio::select! {
            () = super::wait_shutdown(&mut stop) => break,
            event = events.recv() => match event {
                Some(event) => event,
                None => break,
            },
        };
        stomp.hub.pump_with(|engine, out, confirmations| {
            if let Some(redis) = engine.redis_mut() {
                redis.handle_event(first, out, confirmations);
                for _ in 1..REDIS_EVENT_BATCH {
                    let Some(event) = events.try_recv() else {
                        break;
                    };
                    redis.handle_event(event, out, confirmations);
                }
            }
        });
    }
    debug!("stomp: redis pump stopped");
}

/// The best of [`SUBPROTOCOLS`] that `req` offers.
fn choose_subprotocol(req: &HttpRequest) -> Option<&'static str> {
    let offered: Vec<&str> = req
        .header_values("sec-websocket-protocol")
        .filter_map(|value| std::str::from_utf8(value).ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .collect();
    SUBPROTOCOLS
        .into_iter()
        .find(|p| offered.iter().any(|o| o.eq_ignore_ascii_case(p)))
}

/// What the authenticator learns about a connection: peer, path, query string.
pub fn connection_info(req: &HttpRequest, peer: SocketAddr) -> ConnectionInfo {
    let info = ConnectionInfo::new()
        .with_peer_addr(peer)
        .with_path(req.path());
    match req.query() {
        Some(query) => info.with_query(query),
        None => info,
    }
}

/// Why a session ended.
enum End {
    /// The client closed the connection.
    PeerClosed,
    /// The connection failed.
    Failed(wsx::Error),
    /// The server is shutting down.
    Shutdown,
    /// The hub dropped the connection: it did not keep up.
    Kicked,
    /// The STOMP session ended: after an ERROR (its message) or a DISCONNECT (`None`).
    Stomp(Option<String>),
}

/// Run a STOMP session on an upgraded `/stomp` connection until it ends.
pub async fn session(
    mut ws: WebSocket<MaybeTlsStream>,
    info: ConnectionInfo,
    stomp: Arc<Stomp>,
    state: Arc<State>,
    mut shutdown: watch::Receiver<bool>,
) {
    let hub = &stomp.hub;
    let metrics = &state.metrics;
    let (conn, link, mut deadline) = hub.open(info);
    debug!(conn = conn.0, subprotocol = ?ws.subprotocol(), "stomp: open");
    let mut batch = Vec::new();
    // What was fed to the WebSocket, to report what reached the socket.
    let mut fed = Fed::default();
    // Whether the session takes input (its output backlog is within its budget).
    let mut reading = true;

    // Since when the session's input has been paused, if it is.
    let mut paused_since: Option<tokio::time::Instant> = None;

    let end = 'session: loop {
        paused_since = if reading {
            None
        } else {
            paused_since.or_else(|| Some(tokio::time::Instant::now()))
        };
        // Write what the broker produced for this connection, up to the high-water mark.
        let budget = WRITE_HIGH_WATER.saturating_sub(ws.buffered_amount());
        let taken = link.take(budget, &mut batch);
        if taken.kicked {
            break End::Kicked;
        }
        for out in batch.drain(..) {
            let before = ws.buffered_amount();
            let size = out.budget_size();
            let written = match out {
                Out::Frame(frame) => {
                    metrics.sent(frame.len());
                    feed_frame(&mut ws, &frame)
                }
                Out::HeartBeat => ws.feed(Message::text("\n")),
                Out::Close(reason) => break 'session End::Stomp(reason),
            };
            if let Err(e) = written {
                break 'session End::Failed(e);
            }
            fed.push(ws.buffered_amount().saturating_sub(before), size);
        }
        // Report the writes now when the session waits for them (acknowledgements of ack:auto
        // queue deliveries, paused input); otherwise with the next input.
        fed.update(ws.buffered_amount());
        let report = taken.report || !reading;
        if report && fed.has_unreported() {
            let status = hub.written(conn, fed.take());
            deadline = status.deadline;
            reading = status.wants_input;
        }
        // Wake when the writes go under the high-water mark (more to take from the link), or
        // reach the end of the next transmit to report.
        let drained = link.has_output().then_some(WRITE_HIGH_WATER);
        let level = drained.max(if report { fed.next_level() } else { None });
        let timer = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        // A client that does not read its output for that long is closed as too slow (the
        // session's own deadlines do this too, unless its idle limit is off).
        let stalled = async {
            match paused_since {
                Some(since) => tokio::time::sleep_until(since + stomp.max_pause).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = super::wait_shutdown(&mut shutdown) => break End::Shutdown,
            () = stalled => break End::Kicked,
            () = link.notify.notified() => {}
            () = timer => {
                let status = hub.timeout(conn);
                deadline = status.deadline;
                reading = status.wants_input;
            }
            // Over its output budget the session takes no input: then only write.
            input = poll_fn(|cx| if reading {
                ws.poll_recv_or_drained(cx, level)
            } else {
                poll_written(&mut ws, cx, level)
            }) => match input {
                RecvOrDrained::Drained => {}
                RecvOrDrained::Message(None) => break End::PeerClosed,
                RecvOrDrained::Message(Some(Err(e))) => break End::Failed(e),
                RecvOrDrained::Message(Some(Ok(msg))) => {
                    if msg.is_data() {
                        let bytes = msg.payload();
                        metrics.received(bytes.len());
                        fed.update(ws.buffered_amount());
                        let status = hub.receive(conn, bytes, fed.take());
                        deadline = status.deadline;
                        reading = status.wants_input;
                    }
                }
            },
        }
    };

    // Release the session first: its queue messages go to other consumers at once.
    hub.close(conn);
    drop(link);
    let closed = match end {
        End::PeerClosed => Ok(()),
        End::Failed(e) => Err(e),
        End::Shutdown => {
            ws.close(CloseCode::GOING_AWAY, "server shutting down")
                .await
        }
        End::Kicked => ws.close(CloseCode::POLICY_VIOLATION, "too slow").await,
        End::Stomp(None) => ws.close(CloseCode::NORMAL, "").await,
        End::Stomp(Some(reason)) => {
            ws.close(CloseCode::POLICY_VIOLATION, &close_reason(&reason))
                .await
        }
    };
    match closed {
        Ok(()) => debug!(conn = conn.0, "stomp: closed"),
        Err(e) => debug!(conn = conn.0, "stomp: connection ended: {}", Escaped(&e)),
    }
}

/// A close reason from an ERROR message: at most 123 bytes, cut on a character boundary.
fn close_reason(message: &str) -> String {
    const MAX: usize = 123;
    if message.len() <= MAX {
        return message.to_owned();
    }
    let mut end = MAX;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    message[..end].to_owned()
}

/// Write queued output without reading: [`RecvOrDrained::Drained`] once all of it is written,
/// or once less than `level` bytes wait; pending when there is nothing to write and nothing to
/// report (the link's notification or the timer wakes the task then).
fn poll_written(
    ws: &mut WebSocket<MaybeTlsStream>,
    cx: &mut std::task::Context<'_>,
    level: Option<usize>,
) -> std::task::Poll<RecvOrDrained> {
    use std::task::Poll;
    match ws.poll_write_out(cx) {
        Poll::Ready(Err(e)) => Poll::Ready(RecvOrDrained::Message(Some(Err(e.into())))),
        Poll::Ready(Ok(())) if level.is_some() => Poll::Ready(RecvOrDrained::Drained),
        Poll::Pending if level.is_some_and(|n| ws.buffered_amount() < n) => {
            Poll::Ready(RecvOrDrained::Drained)
        }
        Poll::Ready(Ok(())) | Poll::Pending => Poll::Pending,
    }
}

/// Queue one STOMP frame as one WebSocket message.
fn feed_frame(ws: &mut WebSocket<MaybeTlsStream>, frame: &EncodedFrame) -> Result<(), wsx::Error> {
    if frame.head().is_empty() {
        // A frame of this session alone (CONNECTED, RECEIPT, ERROR): an ordinary message.
        let bytes = frame.tail().clone();
        let msg = if frame.is_utf8() {
            Utf8Bytes::try_from(bytes.clone()).map_or(Message::Binary(bytes), Message::Text)
        } else {
            Message::Binary(bytes)
        };
        return ws.feed(msg);
    }
    // A MESSAGE: one unfragmented, uncompressed WebSocket frame written from the two parts;
    // the shared tail is queued as it is (no copy when large).
    let opcode = if frame.is_utf8() {
        OpCode::Text
    } else {
        OpCode::Binary
    };
    let header = FrameHeader::new(opcode, frame.len() as u64);
    let mut encoded = [0u8; MAX_HEADER_LEN];
    let n = header.encode(&mut encoded);
    let mut first = BytesMut::with_capacity(n + frame.head().len());
    first.extend_from_slice(&encoded[..n]);
    first.extend_from_slice(frame.head());
    ws.feed_encoded(first.freeze())?;
    ws.feed_encoded(frame.tail().clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(protocols: &[&str]) -> HttpRequest {
        let mut head = String::from(
            "GET /stomp?access_token=x HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n",
        );
        for p in protocols {
            head.push_str(&format!("Sec-WebSocket-Protocol: {p}\r\n"));
        }
        head.push_str("\r\n");
        let (req, _) = wsx_proto::handshake::parse_request(head.as_bytes(), 16 * 1024)
            .expect("valid")
            .expect("complete");
        req
    }

    #[test]
    fn subprotocols() {
        assert_eq!(choose_subprotocol(&request(&[])), None);
        assert_eq!(choose_subprotocol(&request(&["chat"])), None);
        assert_eq!(
            choose_subprotocol(&request(&["v10.stomp, v11.stomp, v12.stomp"])),
            Some("v12.stomp")
        );
        assert_eq!(
            choose_subprotocol(&request(&["v10.stomp", "V11.STOMP"])),
            Some("v11.stomp")
        );
    }

    #[test]
    fn connection_info_keeps_the_query() {
        let info = connection_info(&request(&[]), SocketAddr::from(([127, 0, 0, 1], 9)));
        assert_eq!(info.path, "/stomp");
        assert_eq!(info.query_param("access_token"), Some("x"));
    }

    #[test]
    fn heartbeat_flag() {
        assert_eq!(
            "10000,5000".parse(),
            Ok(HeartBeatMs {
                send: 10_000,
                receive: 5_000
            })
        );
        assert_eq!(
            " 0 , 0 ".parse(),
            Ok(HeartBeatMs {
                send: 0,
                receive: 0
            })
        );
        assert!("10000".parse::<HeartBeatMs>().is_err());
        assert!("a,b".parse::<HeartBeatMs>().is_err());
    }

    #[test]
    fn close_reasons_fit() {
        assert_eq!(close_reason("bad"), "bad");
        let long = "é".repeat(100);
        let cut = close_reason(&long);
        assert!(cut.len() <= 123 && long.starts_with(&cut));
    }
}
