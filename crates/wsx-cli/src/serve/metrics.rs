//! Server counters and gauges, rendered at `/metrics` in the Prometheus text format.
//!
//! Every part of the server (the accept loop, the router, the echo and chat sessions, the chat
//! rooms, the STOMP hub) updates these atomics as traffic flows; `/metrics` only reads them.
//! Plain relaxed atomics are enough: each value is independent and read for monitoring. With
//! `--broker redis://…` the Redis node's own counters ([`RedisMetrics`]) are read at render
//! time as well (`wsx_stomp_redis_*`).

use std::fmt::Write as _;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use wsx_proto::handshake::HandshakeError;
use wsx_stomp::DestinationKind;
use wsx_stomp_redis::RedisMetrics;

/// Label values of `wsx_handshake_failures_total{reason}`, one per kind of failed handshake.
const HANDSHAKE_REASONS: [&str; 12] = [
    "malformed",
    "headers_too_large",
    "too_many_headers",
    "method_not_get",
    "not_http11",
    "missing_host",
    "not_upgrade",
    "missing_connection_upgrade",
    "missing_key",
    "invalid_key",
    "unsupported_version",
    "other",
];

/// The label of a handshake error, an index into [`HANDSHAKE_REASONS`].
fn reason_index(err: &HandshakeError) -> usize {
    match err {
        HandshakeError::Malformed(_) => 0,
        HandshakeError::HeadersTooLarge => 1,
        HandshakeError::TooManyHeaders => 2,
        HandshakeError::MethodNotGet => 3,
        HandshakeError::NotHttp11 => 4,
        HandshakeError::MissingHost => 5,
        HandshakeError::NotUpgrade => 6,
        HandshakeError::MissingConnectionUpgrade => 7,
        HandshakeError::MissingKey => 8,
        HandshakeError::InvalidKey => 9,
        HandshakeError::UnsupportedVersion => 10,
        _ => 11,
    }
}

/// The server's metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    connections_active: AtomicU64,
    connections_total: AtomicU64,
    messages_received: AtomicU64,
    messages_sent: AtomicU64,
    bytes_received: AtomicU64,
    bytes_sent: AtomicU64,
    http_requests: AtomicU64,
    handshake_failures: [AtomicU64; HANDSHAKE_REASONS.len()],
    chat_rooms: AtomicU64,
    chat_members: AtomicU64,
    chat_slow_disconnects: AtomicU64,
    stomp_sessions: AtomicU64,
    stomp_subscriptions: AtomicU64,
    /// Indexed by [`stomp_kind`]: topic, queue.
    stomp_published: [AtomicU64; STOMP_KINDS.len()],
    stomp_delivered: [AtomicU64; STOMP_KINDS.len()],
    stomp_redeliveries: AtomicU64,
    stomp_slow_disconnects: AtomicU64,
    /// The Redis node's counters, with `--broker redis://…`.
    redis: OnceLock<RedisMetrics>,
}

/// The `kind` label values of the STOMP message counters.
const STOMP_KINDS: [&str; 4] = ["topic", "queue", "user", "app"];

/// The index of a destination kind in [`STOMP_KINDS`].
fn stomp_kind(kind: DestinationKind) -> usize {
    match kind {
        DestinationKind::Topic => 0,
        DestinationKind::Queue => 1,
        DestinationKind::User => 2,
        DestinationKind::App => 3,
    }
}

/// Counts one open WebSocket connection while it lives (`wsx_connections_active`).
#[derive(Debug)]
pub struct ConnectionGuard<'a>(&'a Metrics);

impl Drop for ConnectionGuard<'_> {
    fn drop(&mut self) {
        self.0.connections_active.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    /// Count a new WebSocket connection; it stays active until the guard is dropped.
    pub fn connection_opened(&self) -> ConnectionGuard<'_> {
        self.connections_total.fetch_add(1, Ordering::Relaxed);
        self.connections_active.fetch_add(1, Ordering::Relaxed);
        ConnectionGuard(self)
    }

    /// Count a data message received from a client, with its payload length.
    pub fn received(&self, payload_len: usize) {
        self.messages_received.fetch_add(1, Ordering::Relaxed);
        self.bytes_received
            .fetch_add(payload_len as u64, Ordering::Relaxed);
    }

    /// Count a data message queued to a client, with its payload length.
    pub fn sent(&self, payload_len: usize) {
        self.messages_sent.fetch_add(1, Ordering::Relaxed);
        self.bytes_sent
            .fetch_add(payload_len as u64, Ordering::Relaxed);
    }

    /// Count a plain HTTP request (a page, `/healthz`, `/metrics`, a 404 …).
    pub fn http_request(&self) {
        self.http_requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Count a failed handshake, labelled by its kind.
    pub fn handshake_failed(&self, err: &HandshakeError) {
        self.handshake_failures[reason_index(err)].fetch_add(1, Ordering::Relaxed);
    }

    /// A chat room was created (`delta` 1) or emptied (`delta` -1).
    pub fn chat_rooms_add(&self, delta: i8) {
        add_signed(&self.chat_rooms, delta);
    }

    /// A member joined (`delta` 1) or left (`delta` -1) a chat room.
    pub fn chat_members_add(&self, delta: i8) {
        add_signed(&self.chat_members, delta);
    }

    /// Count a chat member disconnected because its outgoing queue was full.
    pub fn chat_slow_disconnect(&self) {
        self.chat_slow_disconnects.fetch_add(1, Ordering::Relaxed);
    }

    /// A `/stomp` connection opened (`delta` 1) or closed (`delta` -1).
    pub fn stomp_sessions_add(&self, delta: i64) {
        add_signed_wide(&self.stomp_sessions, delta);
    }

    /// STOMP subscriptions were added (positive) or removed (negative).
    pub fn stomp_subscriptions_add(&self, delta: i64) {
        add_signed_wide(&self.stomp_subscriptions, delta);
    }

    /// Count a message published (SEND, or committed with its transaction) to a destination.
    pub fn stomp_published(&self, kind: DestinationKind) {
        self.stomp_published[stomp_kind(kind)].fetch_add(1, Ordering::Relaxed);
    }

    /// Count a message handed to a subscription; `redelivered` if it came back (NACK, or its
    /// consumer went away).
    pub fn stomp_delivered(&self, kind: DestinationKind, redelivered: bool) {
        self.stomp_delivered[stomp_kind(kind)].fetch_add(1, Ordering::Relaxed);
        if redelivered {
            self.stomp_redeliveries.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Count a STOMP connection dropped because its outgoing queue was full.
    pub fn stomp_slow_disconnect(&self) {
        self.stomp_slow_disconnects.fetch_add(1, Ordering::Relaxed);
    }

    /// Render the counters of the Redis broker node as well (`wsx_stomp_redis_*`). Set once,
    /// at startup; later calls are ignored.
    pub fn set_redis(&self, redis: RedisMetrics) {
        let _ = self.redis.set(redis);
    }

    /// The metrics in the Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut out = String::with_capacity(2048);
        let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        metric(
            "wsx_connections_active",
            "gauge",
            "WebSocket connections currently open.",
            get(&self.connections_active),
        );
        metric(
            "wsx_connections_total",
            "counter",
            "WebSocket connections accepted since start.",
            get(&self.connections_total),
        );
        metric(
            "wsx_messages_received_total",
            "counter",
            "Data messages received from clients.",
            get(&self.messages_received),
        );
        metric(
            "wsx_messages_sent_total",
            "counter",
            "Data messages sent to clients.",
            get(&self.messages_sent),
        );
        metric(
            "wsx_bytes_received_total",
            "counter",
            "Payload bytes of the data messages received.",
            get(&self.bytes_received),
        );
        metric(
            "wsx_bytes_sent_total",
            "counter",
            "Payload bytes of the data messages sent.",
            get(&self.bytes_sent),
        );
        metric(
            "wsx_http_requests_total",
            "counter",
            "Plain HTTP requests answered (pages, health, metrics, not found).",
            get(&self.http_requests),
        );
        metric(
            "wsx_chat_rooms",
            "gauge",
            "Chat rooms with at least one member.",
            get(&self.chat_rooms),
        );
        metric(
            "wsx_chat_members",
            "gauge",
            "Members of all chat rooms.",
            get(&self.chat_members),
        );
        metric(
            "wsx_chat_slow_disconnects_total",
            "counter",
            "Chat members disconnected because they did not keep up (close 1008).",
            get(&self.chat_slow_disconnects),
        );
        metric(
            "wsx_stomp_sessions",
            "gauge",
            "STOMP connections open on /stomp.",
            get(&self.stomp_sessions),
        );
        metric(
            "wsx_stomp_subscriptions",
            "gauge",
            "Active STOMP subscriptions.",
            get(&self.stomp_subscriptions),
        );
        metric(
            "wsx_stomp_redeliveries_total",
            "counter",
            "STOMP messages delivered again (after a NACK, or when their consumer went away).",
            get(&self.stomp_redeliveries),
        );
        metric(
            "wsx_stomp_slow_disconnects_total",
            "counter",
            "STOMP connections dropped because they did not keep up (close 1008).",
            get(&self.stomp_slow_disconnects),
        );
        if let Some(redis) = self.redis.get() {
            metric(
                "wsx_stomp_redis_connected",
                "gauge",
                "Whether the STOMP broker's connection to Redis is up (1) or not (0).",
                u64::from(redis.connected()),
            );
            metric(
                "wsx_stomp_redis_reconnects_total",
                "counter",
                "Connections to Redis re-established after a loss.",
                redis.reconnects(),
            );
            metric(
                "wsx_stomp_redis_pending_sends",
                "gauge",
                "STOMP SENDs accepted and not yet written to Redis.",
                u64::try_from(redis.pending_sends()).unwrap_or(u64::MAX),
            );
            metric(
                "wsx_stomp_redis_held_bytes",
                "gauge",
                "Bytes of queue messages fetched from Redis and not yet acknowledged or given back.",
                u64::try_from(redis.held_bytes()).unwrap_or(u64::MAX),
            );
            metric(
                "wsx_stomp_redis_send_failures_total",
                "counter",
                "STOMP SENDs refused (Redis unreachable with the backlog full, or a Redis error).",
                redis.send_failures(),
            );
            metric(
                "wsx_stomp_redis_dropped_total",
                "counter",
                "Topic messages from Redis not delivered to a local subscriber whose window was full.",
                redis.dropped(),
            );
            metric(
                "wsx_stomp_redis_malformed_total",
                "counter",
                "Messages read from Redis that were not in the broker's format (skipped).",
                redis.malformed(),
            );
        }
        for (name, help, counts) in [
            (
                "wsx_stomp_messages_published_total",
                "STOMP messages published, by destination kind.",
                &self.stomp_published,
            ),
            (
                "wsx_stomp_messages_delivered_total",
                "STOMP messages handed to subscriptions, by destination kind.",
                &self.stomp_delivered,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (kind, count) in STOMP_KINDS.iter().zip(counts) {
                let _ = writeln!(out, "{name}{{kind=\"{kind}\"}} {}", get(count));
            }
        }
        out.push_str(
            "# HELP wsx_handshake_failures_total Failed WebSocket handshakes by reason.\n\
             # TYPE wsx_handshake_failures_total counter\n",
        );
        for (reason, count) in HANDSHAKE_REASONS.iter().zip(&self.handshake_failures) {
            let _ = writeln!(
                out,
                "wsx_handshake_failures_total{{reason=\"{reason}\"}} {}",
                get(count)
            );
        }
        out
    }
}

fn add_signed_wide(a: &AtomicU64, delta: i64) {
    if delta >= 0 {
        a.fetch_add(delta.unsigned_abs(), Ordering::Relaxed);
    } else {
        a.fetch_sub(delta.unsigned_abs(), Ordering::Relaxed);
    }
}

fn add_signed(a: &AtomicU64, delta: i8) {
    if delta >= 0 {
        a.fetch_add(u64::from(delta.unsigned_abs()), Ordering::Relaxed);
    } else {
        a.fetch_sub(u64::from(delta.unsigned_abs()), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_series() {
        let m = Metrics::default();
        {
            let _c = m.connection_opened();
            m.received(5);
            m.sent(7);
            m.handshake_failed(&HandshakeError::NotUpgrade);
            let text = m.render();
            assert!(text.contains("wsx_connections_active 1\n"), "{text}");
            assert!(text.contains("wsx_bytes_received_total 5\n"));
            assert!(text.contains("wsx_bytes_sent_total 7\n"));
            assert!(text.contains("wsx_handshake_failures_total{reason=\"not_upgrade\"} 1\n"));
            assert!(text.contains("# TYPE wsx_connections_total counter\n"));
        }
        assert!(m.render().contains("wsx_connections_active 0\n"));
        assert!(m.render().contains("wsx_connections_total 1\n"));
    }

    #[test]
    fn redis_series_only_with_the_redis_broker() {
        let m = Metrics::default();
        assert!(!m.render().contains("wsx_stomp_redis_"));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let _guard = rt.enter();
        // Nothing listens on port 1: the node is down and stays so.
        let config = wsx_stomp_redis::Config::new("redis://127.0.0.1:1");
        let (engine, _events) = wsx_stomp_redis::RedisEngine::start(config).expect("starts");
        m.set_redis(engine.metrics());
        let text = m.render();
        for line in [
            "wsx_stomp_redis_connected 0\n",
            "wsx_stomp_redis_reconnects_total 0\n",
            "wsx_stomp_redis_pending_sends 0\n",
            "wsx_stomp_redis_held_bytes 0\n",
            "wsx_stomp_redis_send_failures_total 0\n",
            "wsx_stomp_redis_dropped_total 0\n",
            "# TYPE wsx_stomp_redis_connected gauge\n",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        assert!(text.contains("wsx_connections_active 0\n"));
    }
}
