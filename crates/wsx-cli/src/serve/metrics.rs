//! Server counters and gauges, rendered at `/metrics` in the Prometheus text format.
//!
//! Every part of the server (the accept loop, the router, the echo and chat sessions, the chat
//! rooms, the STOMP broker) updates these atomics as traffic flows; `/metrics` only reads them.
//! Plain relaxed atomics are enough: each value is independent and read for monitoring. The
//! STOMP broker (crate `wsx-broker`) keeps its own [`BrokerMetrics`], appended at render time
//! (`wsx_stomp_*`, with `--broker redis://…` also `wsx_stomp_redis_*`) and counted in the
//! message and byte totals.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use wsx::HandshakeError;
use wsx::SharedSend;
use wsx_broker::{BroadcastCounters, BrokerMetrics};

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
    /// Open / accepted WebSockets by HTTP version: `[HTTP/1.1, HTTP/2]`.
    websockets_active: [AtomicU64; 2],
    websockets_total: [AtomicU64; 2],
    messages_received: AtomicU64,
    messages_sent: AtomicU64,
    bytes_received: AtomicU64,
    bytes_sent: AtomicU64,
    http_requests: AtomicU64,
    handshake_failures: [AtomicU64; HANDSHAKE_REASONS.len()],
    chat_rooms: AtomicU64,
    chat_members: AtomicU64,
    chat_slow_disconnects: AtomicU64,
    /// How chat room broadcasts went out (compress-once).
    chat_broadcast: BroadcastCounters,
    /// The STOMP broker's metrics, unless `--stomp off`.
    broker: OnceLock<Arc<BrokerMetrics>>,
}

/// Counts one open WebSocket connection while it lives (`wsx_connections_active`).
#[derive(Debug)]
pub struct ConnectionGuard<'a>(&'a Metrics, usize);

impl Drop for ConnectionGuard<'_> {
    fn drop(&mut self) {
        self.0.connections_active.fetch_sub(1, Ordering::Relaxed);
        self.0.websockets_active[self.1].fetch_sub(1, Ordering::Relaxed);
    }
}

/// The `http` label of each version index.
const HTTP_VERSIONS: [&str; 2] = ["1.1", "2"];

impl Metrics {
    /// Count a new WebSocket connection (over HTTP/2 if `http2`, else HTTP/1.1); it stays
    /// active until the guard is dropped.
    pub fn connection_opened(&self, http2: bool) -> ConnectionGuard<'_> {
        let version = usize::from(http2);
        self.connections_total.fetch_add(1, Ordering::Relaxed);
        self.connections_active.fetch_add(1, Ordering::Relaxed);
        self.websockets_total[version].fetch_add(1, Ordering::Relaxed);
        self.websockets_active[version].fetch_add(1, Ordering::Relaxed);
        ConnectionGuard(self, version)
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

    /// Count a room broadcast queued to a member, by how it was compressed.
    pub fn chat_broadcast_sent(&self, sent: SharedSend) {
        self.chat_broadcast.count(sent);
    }

    /// Render the STOMP broker's series too (`wsx_stomp_*`), and count its traffic in the
    /// message and byte totals. Set once.
    pub fn set_broker(&self, broker: Arc<BrokerMetrics>) {
        let _ = self.broker.set(broker);
    }

    /// The metrics in the Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let broker = self.broker.get();
        let of_broker = |f: fn(&BrokerMetrics) -> u64| broker.map_or(0, |b| f(b));
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
        for (name, kind, help, values) in [
            (
                "wsx_websockets_active",
                "gauge",
                "WebSocket connections currently open, by HTTP version.",
                &self.websockets_active,
            ),
            (
                "wsx_websockets_total",
                "counter",
                "WebSocket connections accepted since start, by HTTP version.",
                &self.websockets_total,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (version, value) in HTTP_VERSIONS.iter().zip(values) {
                let _ = writeln!(out, "{name}{{http=\"{version}\"}} {}", get(value));
            }
        }
        let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        metric(
            "wsx_messages_received_total",
            "counter",
            "Data messages received from clients.",
            get(&self.messages_received) + of_broker(BrokerMetrics::messages_received),
        );
        metric(
            "wsx_messages_sent_total",
            "counter",
            "Data messages sent to clients.",
            get(&self.messages_sent) + of_broker(BrokerMetrics::messages_sent),
        );
        metric(
            "wsx_bytes_received_total",
            "counter",
            "Payload bytes of the data messages received.",
            get(&self.bytes_received) + of_broker(BrokerMetrics::bytes_received),
        );
        metric(
            "wsx_bytes_sent_total",
            "counter",
            "Payload bytes of the data messages sent.",
            get(&self.bytes_sent) + of_broker(BrokerMetrics::bytes_sent),
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
        self.chat_broadcast
            .render_into("wsx_chat", "Chat room", &mut out);
        if let Some(broker) = broker {
            broker.render_into(&mut out);
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
            let _c = m.connection_opened(true);
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
        assert!(m.render().contains("wsx_websockets_total{http=\"2\"} 1\n"));
        assert!(
            m.render()
                .contains("wsx_websockets_total{http=\"1.1\"} 0\n")
        );
        assert!(m.render().contains("wsx_websockets_active{http=\"2\"} 0\n"));
    }
}
