//! `wsx serve`: an HTTP/WebSocket server with an echo endpoint, a chat demo and metrics.
//!
//! The flow: [`run`] binds the listener, prints `listening on http://ADDR` on stdout and serves
//! it with a [`wsx::Server`] until Ctrl-C or SIGTERM. The server (TLS with `--tls-cert`, the
//! connection limit, the handshake deadline, the header limit) reads each request head and
//! [`router::answer`] routes it: plain HTTP (the embedded page from
//! [`static_files`], `/healthz`, `/metrics` from [`metrics`]) or upgrades to WebSocket and runs an
//! [`echo`] or [`chat`] session; chat sessions talk to their [`room`] task, which spans the
//! nodes through the STOMP broker (topics under `/topic/wsx.`, which clients cannot SEND to). `/stomp` runs a
//! [`stomp`] session on the server's STOMP broker: in memory, or with `--broker redis://…` one
//! node of a broker shared by every `wsx serve` on that Redis (a pump task then feeds what
//! Redis sends to the broker). With `--stomp-tcp ADDR` the same broker also speaks STOMP over
//! plain TCP or TLS ([`stomp_tcp`], for Spring's StompBrokerRelay); its address is the second
//! stdout line, `stomp tcp on ADDR`. With `--demo-quotes` a [`demo_quotes`] task publishes a
//! synthetic quote feed on that broker to `/topic/quotes`, which the page `/quotes` shows.
//!
//! Shutdown: the server stops accepting, a `watch` channel tells every session, and each
//! WebSocket is sent close 1001 "server shutting down" and finishes its close handshake (STOMP
//! over TCP sessions: their output is written and the connection shut down). The
//! server waits up to `--shutdown-timeout` for them (a second signal cuts the wait short), closes the
//! STOMP sessions left and, with a Redis broker, waits (up to 2 s) until Redis has taken back
//! the queue messages they held, so that other nodes get them at once; then it exits 0.

mod chat;
mod demo_quotes;
mod echo;

mod metrics;
mod publish;
mod room;
mod router;
mod static_files;
mod stomp;
mod stomp_tcp;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use clap::{Args, ValueEnum};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{error, info, warn};
use wsx::{DeflateConfig, WebSocketConfig};
use wsx_stomp::MemoryEngine;

use metrics::Metrics;
use room::{RoomSettings, Rooms};

/// The default of `--max-file-bytes`: 1 MiB.
const DEFAULT_MAX_FILE_BYTES: u64 = 1 << 20;
/// The smallest message limit of a chat connection, whatever `--max-file-bytes` says, so that
/// JSON commands always fit.
const MIN_CHAT_MESSAGE_BYTES: usize = 64 * 1024;
/// The default of `--stomp-idle-timeout`: 5 minutes (the web page's STOMP mode sends
/// something every 15 s at most, every minute in a throttled background tab).
const DEFAULT_STOMP_IDLE_SECS: u64 = 300;
/// `--idle-timeout`: a WebSocket that receives nothing for 5 minutes is closed.
const DEFAULT_IDLE_SECS: u64 = 300;
/// The least bytes a chat member's queue may hold (four files' worth when files are larger).
const MIN_QUEUED_BYTES: usize = 8 << 20;

/// Options of `wsx serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the bound address is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// permessage-deflate: accept it when a client offers it (on) or never (off).
    #[arg(long, value_enum, default_value_t = OnOff::On)]
    pub compression: OnOff,
    /// Largest file (binary message) accepted in a chat room, in bytes; larger ones are refused
    /// with an error message, or closed with 1009 past the connection's message limit.
    #[arg(long, default_value_t = DEFAULT_MAX_FILE_BYTES,
          value_parser = clap::value_parser!(u64).range(1..=(1 << 30)))]
    pub max_file_bytes: u64,
    /// Seconds to wait for connections to close after Ctrl-C or SIGTERM.
    #[arg(long, value_name = "SECS", default_value_t = 5)]
    pub shutdown_timeout: u64,
    /// Text messages a chat room keeps for members who join later (0 to 200).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u16).range(0..=200))]
    pub history: u16,
    /// An Origin allowed to open WebSockets (repeatable, e.g. `https://app.example.com`). Once
    /// given, a WebSocket request whose Origin matches none, or has none, gets 403.
    #[arg(long = "allowed-origin", value_name = "ORIGIN")]
    pub allowed_origins: Vec<String>,
    /// The most connections served at once (HTTP and WebSocket). One past it is refused as it
    /// is accepted, before its request is read: 503 (`Retry-After: 1`) and closed; over TLS,
    /// closed.
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// Seconds a client may take, from the accept, for the TLS handshake (with --tls-cert) and
    /// its request head together; past it, 408 and the connection is closed (slowloris
    /// protection). Every HTTP response is then written within 5 s (wsx::RESPONSE_TIMEOUT).
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub handshake_timeout: u64,
    /// The largest request head accepted, in bytes; past it, 431.
    #[arg(long, value_name = "N", default_value_t = 16 * 1024)]
    pub max_header_bytes: usize,
    /// Send a WebSocket ping after this many seconds without traffic; a connection whose pong
    /// does not come within 20 s is closed with 1011.
    #[arg(long, value_name = "SECS")]
    pub ping_interval: Option<u64>,
    /// Close WebSockets (1001) that receive nothing for this many seconds (also counted while
    /// the server does not read a client whose output budget is full, so a client that never
    /// reads is closed after it); 0 turns it off.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_IDLE_SECS)]
    pub idle_timeout: u64,
    /// The output budget of each WebSocket connection, in bytes: while this much output (echoes,
    /// pongs, replies, messages) waits for a client that does not read, the server reads
    /// nothing more from it (TCP then slows the client down).
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20)]
    pub max_write_buffer: usize,
    /// Serve HTTPS and wss:// with this certificate chain (PEM); needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// HTTP/2 next to HTTP/1.1: with --tls-cert, ALPN offers `h2` then `http/1.1`; on the
    /// plain listener, a client that starts with the HTTP/2 preface (h2c, prior knowledge) is
    /// served HTTP/2. Every route (page, /healthz, /metrics, /api/…, WebSockets over RFC 8441
    /// extended CONNECT) is served over it.
    #[arg(long, value_enum, default_value_t = OnOff::On)]
    pub http2: OnOff,
    /// The most streams (requests and WebSockets) open at once on one HTTP/2 connection.
    #[arg(long, value_name = "N", default_value_t = wsx::http2::DEFAULT_MAX_CONCURRENT_STREAMS,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub http2_max_streams: u32,
    /// The STOMP 1.2 endpoint `/stomp` (see --broker): on or off.
    #[arg(long, value_enum, default_value_t = OnOff::On)]
    pub stomp: OnOff,
    /// The STOMP broker: `memory` (in this process), or `redis://HOST:PORT[/DB]` to make this
    /// server one node of a broker shared by every `wsx serve` on that Redis (same
    /// --redis-prefix): topics through pub/sub (at most once), queues through streams (at least
    /// once). The server starts without waiting for Redis and reconnects on its own.
    /// `redis-sentinel://HOST:PORT[,HOST:PORT…]/SERVICE`: the Redis primary the sentinels
    /// name, found again at every reconnect (follows a failover).
    /// `redis-cluster://HOST:PORT[,HOST:PORT…]`: a Redis Cluster (7 or later) found from these
    /// nodes; each destination's keys in one hash slot, topics through sharded pub/sub.
    #[arg(
        long,
        value_name = "memory|redis://HOST:PORT[/DB]|redis-sentinel://HOST:PORT,…/SERVICE|redis-cluster://HOST:PORT,…",
        default_value = "memory"
    )]
    pub broker: stomp::BrokerUrl,
    /// This node's name in a Redis broker (its consumer name in the queue groups); unique per
    /// node. Default: random.
    #[arg(long, value_name = "NAME", value_parser = non_empty)]
    pub node_id: Option<String>,
    /// Prefix of every Redis key of the broker; the nodes of one broker share it, different
    /// prefixes make separate brokers on one Redis.
    #[arg(long, value_name = "PREFIX", default_value = "wsx:")]
    pub redis_prefix: String,
    /// Seconds a queue message that a dead node received and did not see acknowledged waits
    /// before another node takes it over and delivers it again (marked redelivered).
    #[arg(long, value_name = "SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub redis_claim_timeout: u64,
    /// SENDs that may wait for Redis (while it is unreachable) before new ones are refused
    /// with an ERROR frame.
    #[arg(long, value_name = "N", default_value_t = 10_000, hide = true,
          value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub redis_max_pending_sends: u64,
    /// The most messages a queue may hold in Redis (not yet delivered, or delivered and not
    /// acknowledged); SENDs to a full queue are refused with an ERROR frame. Nothing is ever
    /// trimmed.
    #[arg(long, value_name = "N", default_value_t = 100_000,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
    pub redis_max_queue_len: u64,
    /// Bytes of SENDs that may wait for Redis (while it is unreachable or slow) before new
    /// ones are refused with an ERROR frame (naming max-pending-bytes).
    #[arg(long, value_name = "BYTES", default_value_t = 64 << 20,
          value_parser = clap::value_parser!(u64).range(1..=1 << 40))]
    pub redis_max_pending_bytes: u64,
    /// The most bytes of messages a queue may hold in Redis (not yet delivered, or delivered
    /// and not acknowledged); a SEND that would cross it is refused with an ERROR frame
    /// (naming max-queue-bytes).
    #[arg(long, value_name = "BYTES", default_value_t = 256 << 20,
          value_parser = clap::value_parser!(u64).range(1..=1 << 40))]
    pub redis_max_queue_bytes: u64,
    /// Bytes of queue messages this node may hold, fetched from Redis and not yet
    /// acknowledged (waiting for a consumer with room, or delivered and not acknowledged):
    /// at it, the node fetches nothing more until some are acknowledged or given back.
    #[arg(long, value_name = "BYTES", default_value_t = 64 << 20,
          value_parser = clap::value_parser!(u64).range(1..=1 << 40))]
    pub redis_max_held_bytes: u64,
    /// Seconds an empty queue's stream and group stay in Redis once no node consumes it;
    /// then they are removed (if still empty).
    #[arg(long, value_name = "SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub redis_queue_grace: u64,
    /// Replicas that must have a write before a SEND's RECEIPT, an HTTP publish's answer
    /// or an ACK's effect (Redis `WAIT`): with Sentinel, a failover then loses nothing a
    /// client was told is stored. Costs a replication round trip per write batch. 0: once
    /// the primary stored it. Not supported with `redis-cluster://` (yet).
    #[arg(long, value_name = "N", default_value_t = 0,
          value_parser = clap::value_parser!(u64).range(0..=16))]
    pub redis_replicas_ack: u64,
    /// Require STOMP clients to present a JWT signed with this HS256 secret (see
    /// `--jwt-public-key`). Without either flag, anyone may connect to `/stomp` and use every
    /// destination.
    #[arg(long, value_name = "SECRET")]
    pub jwt_secret: Option<stomp::JwtSecret>,
    /// Require STOMP clients to present a JWT signed (RS256) with the private key of this RSA
    /// public key (PEM). May be combined with `--jwt-secret`.
    #[arg(long, value_name = "FILE.pem")]
    pub jwt_public_key: Option<std::path::PathBuf>,
    /// Seconds of clock skew tolerated when checking a JWT's `exp` and `nbf` (a session ends
    /// this long after its token's `exp`).
    #[arg(long, value_name = "SECS", default_value_t = stomp::DEFAULT_JWT_LEEWAY_SECS,
          value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub jwt_leeway: u64,
    /// Accept only JWTs whose `iss` is this issuer (repeatable: any of them).
    #[arg(long = "jwt-issuer", value_name = "ISS", value_parser = non_empty)]
    pub jwt_issuers: Vec<String>,
    /// Accept only JWTs whose `aud` names this audience (repeatable: any of them). Without it,
    /// a JWT with an `aud` claim is refused.
    #[arg(long = "jwt-audience", value_name = "AUD", value_parser = non_empty)]
    pub jwt_audiences: Vec<String>,
    /// A token that lets a backend publish with `POST /api/publish` (`Authorization: Bearer
    /// TOKEN`) to any topic or queue. Without it and without `--jwt-*`, only loopback clients
    /// may publish over HTTP; with `--jwt-*`, a JWT whose `send` claim allows the destination
    /// may too.
    #[arg(long, value_name = "TOKEN")]
    pub api_token: Option<publish::ApiToken>,
    /// The most subscriptions one STOMP connection may hold.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub stomp_max_subscriptions: usize,
    /// The most queues and topics the in-memory broker keeps at once (a topic exists while it
    /// has subscribers, a queue while it has consumers or messages); a SUBSCRIBE or SEND that
    /// would add one more gets an ERROR frame naming the limit.
    #[arg(long, value_name = "N", default_value_t = MemoryEngine::DEFAULT_MAX_DESTINATIONS as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub stomp_max_destinations: u64,
    /// The most bytes one queue of the in-memory broker holds (messages waiting, or delivered
    /// and not acknowledged; headers and body counted); a SEND that would cross it gets an
    /// ERROR frame naming the limit.
    #[arg(long, value_name = "BYTES", default_value_t = MemoryEngine::DEFAULT_MAX_QUEUE_BYTES as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub stomp_max_queue_bytes: u64,
    /// The most bytes all queues of the in-memory broker hold together; a SEND to a queue
    /// that would cross it gets an ERROR frame naming the limit.
    #[arg(long, value_name = "BYTES", default_value_t = MemoryEngine::DEFAULT_MAX_BYTES as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub stomp_max_broker_bytes: u64,
    /// Messages each STOMP topic keeps for subscribers resuming with `x-stream-offset`
    /// (0: none; offsets are still given out).
    #[arg(long, value_name = "N", default_value_t = wsx_stomp::TopicHistory::DEFAULT_MAX_MESSAGES as u64,
          value_parser = clap::value_parser!(u64).range(0..=10_000_000))]
    pub topic_history: u64,
    /// Bytes each STOMP topic keeps for resuming subscribers (the oldest messages go first).
    #[arg(long, value_name = "BYTES", default_value_t = wsx_stomp::TopicHistory::DEFAULT_MAX_BYTES as u64,
          value_parser = clap::value_parser!(u64).range(1..=1 << 40))]
    pub topic_history_bytes: u64,
    /// The credit window of an `ack:auto` queue subscription: the most of its messages
    /// delivered and not yet written to the client's socket. They are acknowledged to the
    /// broker once written; those not written when the consumer goes go to other consumers.
    #[arg(long, value_name = "N", default_value_t = 256,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub stomp_auto_ack_window: u64,
    /// The most bytes of STOMP frames a connection may have waiting to be written to its
    /// socket before the server stops reading its frames (until the client reads); nothing is
    /// dropped. One frame may pass it by what it fans out to the connection's own
    /// subscriptions.
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20,
          value_parser = clap::value_parser!(u64).range(4096..=1 << 40))]
    pub stomp_max_unwritten_bytes: u64,
    /// The server's STOMP heart-beat: send one at least every SEND ms, expect the client's every
    /// RECEIVE ms (0 turns a direction off; the client's CONNECT header is taken into account).
    #[arg(long, value_name = "SEND,RECEIVE", default_value = "10000,10000")]
    pub stomp_heartbeat: stomp::HeartBeatMs,
    /// Seconds a connected STOMP client may send nothing at all (no frame, no heart-beat),
    /// whatever heart-beats it negotiated, before its session ends with an ERROR (0: no limit).
    /// A subscriber that only receives stays connected by sending heart-beats.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_STOMP_IDLE_SECS)]
    pub stomp_idle_timeout: u64,
    /// Also serve STOMP 1.2 over plain TCP on this address (61613 by convention), on the same
    /// broker and authentication as `/stomp`: for Spring's StompBrokerRelay and other STOMP
    /// clients. The bound address is printed as a second stdout line, `stomp tcp on ADDR`.
    #[arg(long, value_name = "ADDR")]
    pub stomp_tcp: Option<SocketAddr>,
    /// Serve --stomp-tcp over TLS, with the certificate of --tls-cert (the TLS handshake must
    /// end within --handshake-timeout).
    #[arg(long, requires_all = ["stomp_tcp", "tls_cert"])]
    pub stomp_tcp_tls: bool,
    /// The most --stomp-tcp connections served at once; one more is closed as it is accepted.
    #[arg(long, value_name = "N", default_value_t = wsx_broker::DEFAULT_MAX_TCP_CONNECTIONS,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub stomp_tcp_max_connections: usize,
    /// Publish a synthetic quote feed (50 symbols, conflation key = symbol) to /topic/quotes,
    /// shown live by the page /quotes; needs the STOMP broker. Give it to one node of a
    /// cluster only.
    #[arg(long)]
    pub demo_quotes: bool,
    /// Updates per second of --demo-quotes, all symbols together.
    #[arg(long, value_name = "N", default_value_t = demo_quotes::DEFAULT_RATE,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(demo_quotes::MAX_RATE)))]
    pub demo_quotes_rate: u32,
}

impl Default for ServeArgs {
    fn default() -> Self {
        ServeArgs {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            compression: OnOff::On,
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            shutdown_timeout: 5,
            history: 50,
            allowed_origins: Vec::new(),
            max_connections: None,
            handshake_timeout: 10,
            max_header_bytes: 16 * 1024,
            http2: OnOff::On,
            http2_max_streams: wsx::http2::DEFAULT_MAX_CONCURRENT_STREAMS,
            ping_interval: None,
            idle_timeout: DEFAULT_IDLE_SECS,
            max_write_buffer: 1 << 20,
            tls_cert: None,
            tls_key: None,
            stomp: OnOff::On,
            jwt_secret: None,
            jwt_public_key: None,
            jwt_leeway: stomp::DEFAULT_JWT_LEEWAY_SECS,
            jwt_issuers: Vec::new(),
            jwt_audiences: Vec::new(),
            api_token: None,
            stomp_idle_timeout: DEFAULT_STOMP_IDLE_SECS,
            stomp_tcp: None,
            stomp_tcp_tls: false,
            stomp_tcp_max_connections: wsx_broker::DEFAULT_MAX_TCP_CONNECTIONS,
            stomp_max_subscriptions: 64,
            stomp_max_destinations: MemoryEngine::DEFAULT_MAX_DESTINATIONS as u64,
            stomp_max_queue_bytes: MemoryEngine::DEFAULT_MAX_QUEUE_BYTES as u64,
            stomp_max_broker_bytes: MemoryEngine::DEFAULT_MAX_BYTES as u64,
            topic_history: wsx_stomp::TopicHistory::DEFAULT_MAX_MESSAGES as u64,
            topic_history_bytes: wsx_stomp::TopicHistory::DEFAULT_MAX_BYTES as u64,
            stomp_auto_ack_window: 256,
            stomp_max_unwritten_bytes: 1 << 20,
            stomp_heartbeat: stomp::HeartBeatMs {
                send: 10_000,
                receive: 10_000,
            },
            broker: stomp::BrokerUrl::Memory,
            node_id: None,
            redis_prefix: "wsx:".to_owned(),
            redis_claim_timeout: 30,
            redis_max_pending_sends: 10_000,
            redis_max_queue_len: 100_000,
            redis_max_pending_bytes: 64 << 20,
            redis_max_queue_bytes: 256 << 20,
            redis_max_held_bytes: 64 << 20,
            redis_queue_grace: 60,
            redis_replicas_ack: 0,
            demo_quotes: false,
            demo_quotes_rate: demo_quotes::DEFAULT_RATE,
        }
    }
}

/// A value parser: any non-empty string.
fn non_empty(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        return Err("must not be empty".to_owned());
    }
    Ok(s.to_owned())
}

/// A switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    /// Enabled.
    On,
    /// Disabled.
    Off,
}

/// What every connection task shares.
#[derive(Debug)]
pub struct State {
    /// Counters and gauges.
    pub metrics: Arc<Metrics>,
    /// The chat rooms.
    pub rooms: Arc<Rooms>,
    /// Settings of `/ws/echo` connections (and of reading request heads).
    pub echo_config: WebSocketConfig,
    /// Settings of chat connections: the message limit follows `--max-file-bytes`.
    pub chat_config: WebSocketConfig,
    /// The `/stomp` endpoint, unless `--stomp off`.
    pub stomp: Option<Arc<stomp::Stomp>>,
    /// `--api-token`, for `POST /api/publish`.
    pub api_token: Option<publish::ApiToken>,
    next_id: AtomicU64,
}

impl State {
    fn new(args: &ServeArgs) -> Self {
        let mut echo_config = WebSocketConfig::default()
            .max_header_bytes(args.max_header_bytes)
            .backpressure(args.max_write_buffer, wsx::Backpressure::Wait);
        if let Some(secs) = args.ping_interval {
            echo_config = echo_config.keepalive(Duration::from_secs(secs), Duration::from_secs(20));
        }
        if args.idle_timeout > 0 {
            echo_config = echo_config.idle_timeout(Duration::from_secs(args.idle_timeout));
        }
        if args.compression == OnOff::On {
            echo_config = echo_config.compression(DeflateConfig::default());
        }
        let max_file_bytes = usize::try_from(args.max_file_bytes).unwrap_or(usize::MAX);
        let chat_limit = max_file_bytes.max(MIN_CHAT_MESSAGE_BYTES);
        let chat_config = echo_config
            .clone()
            .max_message_size(chat_limit)
            .max_frame_size(chat_limit);
        let metrics = Arc::new(Metrics::default());
        let settings = RoomSettings {
            max_file_bytes,
            history: usize::from(args.history),
            max_queued_bytes: max_file_bytes.saturating_mul(4).max(MIN_QUEUED_BYTES),
        };
        State {
            rooms: Arc::new(Rooms::new(settings, metrics.clone())),
            metrics,
            echo_config,
            chat_config,
            stomp: None,
            api_token: args.api_token.clone(),
            next_id: AtomicU64::new(1),
        }
    }

    /// A fresh id for a chat session.
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }
}

/// Resolves once shutdown has begun (or the server is gone).
pub(crate) async fn wait_shutdown(shutdown: &mut watch::Receiver<bool>) {
    // An error means the sender is gone: the server is stopping either way.
    let _ = shutdown.wait_for(|&stop| stop).await;
}

/// Run the server until Ctrl-C or SIGTERM, then shut down gracefully.
pub fn run(args: ServeArgs) -> Result<(), Box<dyn std::error::Error>> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(serve(args))
}

async fn serve(args: ServeArgs) -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let addr = listener.local_addr()?;
    let mut state = State::new(&args);
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(wsx::tls::TlsAcceptor::from_pem_files(cert, key)?),
        _ => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    if args.stomp == OnOff::On {
        let topic_history = wsx_stomp::TopicHistory {
            max_messages: usize::try_from(args.topic_history).unwrap_or(usize::MAX),
            max_bytes: usize::try_from(args.topic_history_bytes).unwrap_or(usize::MAX),
        };
        let options = stomp::StompOptions {
            jwt: stomp::JwtOptions {
                secret: args.jwt_secret.as_ref().map(stomp::JwtSecret::as_str),
                public_key_file: args.jwt_public_key.as_deref(),
                leeway_secs: args.jwt_leeway,
                issuers: &args.jwt_issuers,
                audiences: &args.jwt_audiences,
            },
            idle_timeout: (args.stomp_idle_timeout > 0)
                .then(|| Duration::from_secs(args.stomp_idle_timeout)),
            max_subscriptions: args.stomp_max_subscriptions,
            auto_ack_window: usize::try_from(args.stomp_auto_ack_window).unwrap_or(usize::MAX),
            max_unwritten_bytes: usize::try_from(args.stomp_max_unwritten_bytes)
                .unwrap_or(usize::MAX),
            heartbeat: args.stomp_heartbeat,
            broker: &args.broker,
            memory: stomp::MemorySettings {
                max_destinations: usize::try_from(args.stomp_max_destinations)
                    .unwrap_or(usize::MAX),
                max_queue_bytes: usize::try_from(args.stomp_max_queue_bytes).unwrap_or(usize::MAX),
                max_bytes: usize::try_from(args.stomp_max_broker_bytes).unwrap_or(usize::MAX),
                topic_history,
                max_history_bytes: MemoryEngine::DEFAULT_MAX_HISTORY_BYTES,
            },
            redis: stomp::RedisSettings {
                node_id: args.node_id.clone(),
                prefix: args.redis_prefix.clone(),
                claim_timeout: Duration::from_secs(args.redis_claim_timeout),
                max_pending_sends: usize::try_from(args.redis_max_pending_sends)
                    .unwrap_or(usize::MAX),
                max_queue_len: usize::try_from(args.redis_max_queue_len).unwrap_or(usize::MAX),
                max_pending_bytes: usize::try_from(args.redis_max_pending_bytes)
                    .unwrap_or(usize::MAX),
                max_queue_bytes: usize::try_from(args.redis_max_queue_bytes).unwrap_or(usize::MAX),
                max_held_bytes: usize::try_from(args.redis_max_held_bytes).unwrap_or(usize::MAX),
                queue_grace: Duration::from_secs(args.redis_queue_grace),
                topic_history,
                replicas_ack: usize::try_from(args.redis_replicas_ack).unwrap_or(16),
            },
        };
        let broker = stomp::Stomp::builder()
            .options(options)
            .ws_config(state.echo_config.clone())
            .reserve(room::RESERVED_PREFIX)
            .build()?;
        state.metrics.set_broker(broker.metrics().clone());
        // The chat rooms span the nodes sharing the broker.
        state.rooms = Arc::new(
            Rooms::new(state.rooms.settings(), state.metrics.clone()).through(broker.clone()),
        );
        state.stomp = Some(broker);
    }
    let stomp_tcp = match (args.stomp_tcp, &state.stomp) {
        (None, _) => None,
        (Some(_), None) => {
            return Err("--stomp-tcp needs the STOMP broker (not --stomp off)".into());
        }
        (Some(tcp_addr), Some(broker)) => Some(
            stomp_tcp::start(
                broker,
                tcp_addr,
                tls.as_ref().filter(|_| args.stomp_tcp_tls),
                args.stomp_tcp_max_connections,
                Duration::from_secs(args.handshake_timeout),
            )
            .await?,
        ),
    };
    let state = Arc::new(state);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let quotes = match (args.demo_quotes, &state.stomp) {
        (false, _) => None,
        (true, None) => return Err("--demo-quotes needs the STOMP broker (not --stomp off)".into()),
        (true, Some(broker)) => Some(demo_quotes::spawn(
            broker.clone(),
            args.demo_quotes_rate,
            shutdown_rx.clone(),
        )),
    };
    let mut signals = Signals::new();
    // The first line on stdout: scripts and tests read the bound address from it.
    println!("listening on {scheme}://{addr}");
    if let Some(tcp) = &stomp_tcp {
        let tcp_scheme = if args.stomp_tcp_tls {
            "stomp+ssl"
        } else {
            "stomp"
        };
        println!("stomp tcp on {}", tcp.addr());
        info!("STOMP over TCP at {tcp_scheme}://{}", tcp.addr());
    }
    info!(
        "wsx serve on http://{addr}: chat page at /, WebSockets at ws://{addr}/ws/echo and \
         ws://{addr}/ws/chat/{{room}}, STOMP at ws://{addr}/stomp, /healthz, /metrics"
    );

    let mut server = wsx::Server::from_listener(listener)
        .config(state.echo_config.clone())
        .policy(policy(&args))
        .on_handshake_failure({
            let metrics = state.metrics.clone();
            move |failure, _| metrics.handshake_failed(failure)
        });
    if let Some(tls) = tls {
        server = server.tls(tls);
    }
    if args.http2 == OnOff::On {
        server = server.http2(
            wsx::http2::Http2Limits::default().max_concurrent_streams(args.http2_max_streams),
        );
    }
    let stop = server.shutdown_handle();
    let routes = {
        let (state, shutdown) = (state.clone(), shutdown_rx);
        move |info: &wsx::ConnectionInfo| router::answer(info, &state, &shutdown)
    };
    let mut serving = tokio::spawn(server.serve_routes(routes));

    let signal = signals.next().await;
    info!(
        "{signal}: shutting down, closing {} connection(s)",
        stop.active_connections()
    );
    let _ = shutdown_tx.send(true);
    stop.shutdown();
    if let (Some(stomp), Some(_)) = (&state.stomp, &stomp_tcp) {
        // The STOMP-over-TCP sessions close with the WebSocket ones.
        stomp.close_sessions();
    }
    let served = tokio::select! {
        served = &mut serving => served,
        signal = signals.next() => {
            warn!("{signal} again: dropping the remaining connections");
            stop.abort();
            serving.await
        }
    };
    match served {
        Ok(Ok(())) => {}
        Ok(Err(e)) => error!("server: {e}"),
        Err(e) => error!("server task: {e}"),
    }
    if let Some(tcp) = stomp_tcp {
        tcp.finish(Duration::from_secs(args.shutdown_timeout)).await;
    }
    if let Some(feed) = quotes {
        // It stops at the shutdown signal: nothing more is published once sessions close.
        if let Err(e) = feed.await {
            error!("demo quotes task: {e}");
        }
    }
    if let Some(stomp) = &state.stomp {
        // Queue messages the closed sessions held go back to the engine (and, with Redis, to
        // the other nodes); then the Redis pump stops.
        stomp.shut_down(Duration::from_secs(2)).await;
    }
    info!("stopped");
    Ok(())
}

/// The server's connect-time policy: allowed origins, connection limit, deadlines.
fn policy(args: &ServeArgs) -> wsx::Policy {
    let mut policy = args
        .allowed_origins
        .iter()
        .fold(wsx::Policy::default(), |p, o| p.allow_origin(o.clone()))
        .handshake_timeout(Duration::from_secs(args.handshake_timeout))
        .shutdown_timeout(Duration::from_secs(args.shutdown_timeout));
    policy.max_connections = args.max_connections;
    policy
}

/// Ctrl-C and, on Unix, SIGTERM.
struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let term = match signal(SignalKind::terminate()) {
                Ok(s) => Some(s),
                Err(e) => {
                    warn!("cannot listen for SIGTERM: {e}");
                    None
                }
            };
            Signals { term }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    /// The name of the next signal received.
    async fn next(&mut self) -> &'static str {
        let ctrl_c = async {
            if let Err(e) = tokio::signal::ctrl_c().await {
                // Without a Ctrl-C handler, only SIGTERM (or a kill) stops the server.
                warn!("cannot listen for Ctrl-C: {e}");
                std::future::pending::<()>().await;
            }
        };
        #[cfg(unix)]
        {
            let term = async {
                match self.term.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = ctrl_c => "Ctrl-C",
                () = term => "SIGTERM",
            }
        }
        #[cfg(not(unix))]
        {
            ctrl_c.await;
            "Ctrl-C"
        }
    }
}
