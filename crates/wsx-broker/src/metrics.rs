//! [`BrokerMetrics`]: the broker's counters and gauges, rendered in the Prometheus text format
//! by [`BrokerMetrics::render_into`] (an application appends them to its own `/metrics`).
//!
//! The hub and the session tasks update these relaxed atomics as traffic flows; rendering only
//! reads them. With a Redis engine the node's own counters ([`RedisMetrics`]) are read at
//! render time as well (`wsx_stomp_redis_*`).

use std::fmt::Write as _;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use wsx_stomp::DestinationKind;

use crate::broadcast_counters::BroadcastCounters;
use wsx_stomp_redis::RedisMetrics;

/// The `kind` label values of the message counters.
const KINDS: [&str; 4] = ["topic", "queue", "user", "app"];

/// The index of a destination kind in [`KINDS`].
fn kind_index(kind: DestinationKind) -> usize {
    match kind {
        DestinationKind::Topic => 0,
        DestinationKind::Queue => 1,
        DestinationKind::User => 2,
        DestinationKind::App => 3,
    }
}

/// The broker's metrics.
#[derive(Debug, Default)]
pub struct BrokerMetrics {
    sessions: AtomicU64,
    /// Of them, over TCP or TLS.
    tcp_sessions: AtomicU64,
    tcp_refused: AtomicU64,
    subscriptions: AtomicU64,
    /// Indexed by [`kind_index`].
    published: [AtomicU64; KINDS.len()],
    delivered: [AtomicU64; KINDS.len()],
    redeliveries: AtomicU64,
    slow_disconnects: AtomicU64,
    conflated: AtomicU64,
    frames_received: AtomicU64,
    bytes_received: AtomicU64,
    frames_sent: AtomicU64,
    bytes_sent: AtomicU64,
    /// How topic MESSAGE frames went out over WebSocket (compress-once).
    broadcast: BroadcastCounters,
    /// The Redis node's counters, with a Redis engine.
    redis: OnceLock<RedisMetrics>,
}

impl BrokerMetrics {
    /// A session opened (`delta` 1) or closed (`delta` -1).
    pub(crate) fn sessions_add(&self, delta: i64) {
        add_signed(&self.sessions, delta);
    }

    /// A STOMP-over-TCP session opened (`delta` 1) or closed (`delta` -1).
    pub(crate) fn tcp_sessions_add(&self, delta: i64) {
        add_signed(&self.tcp_sessions, delta);
    }

    /// A TCP connection closed as accepted: over the connection limit.
    pub(crate) fn tcp_refused(&self) {
        self.tcp_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Subscriptions made (`delta` > 0) or released (`delta` < 0).
    pub(crate) fn subscriptions_add(&self, delta: i64) {
        add_signed(&self.subscriptions, delta);
    }

    /// A message stored by the engine.
    pub(crate) fn published(&self, kind: DestinationKind) {
        self.published[kind_index(kind)].fetch_add(1, Ordering::Relaxed);
    }

    /// A message handed to a subscription.
    pub(crate) fn delivered(&self, kind: DestinationKind, redelivered: bool) {
        self.delivered[kind_index(kind)].fetch_add(1, Ordering::Relaxed);
        if redelivered {
            self.redeliveries.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A connection dropped because it did not keep up.
    pub(crate) fn slow_disconnect(&self) {
        self.slow_disconnects.fetch_add(1, Ordering::Relaxed);
    }

    /// A topic message waiting for a slow subscriber was replaced by a later one with the same
    /// `x-conflation-key`.
    pub(crate) fn conflated(&self) {
        self.conflated.fetch_add(1, Ordering::Relaxed);
    }

    /// A message (WebSocket) or a read (TCP) of `len` bytes received from a client.
    pub(crate) fn received(&self, len: usize) {
        self.frames_received.fetch_add(1, Ordering::Relaxed);
        self.bytes_received.fetch_add(len as u64, Ordering::Relaxed);
    }

    /// A frame of `len` bytes queued to a client.
    pub(crate) fn sent(&self, len: usize) {
        self.frames_sent.fetch_add(1, Ordering::Relaxed);
        self.bytes_sent.fetch_add(len as u64, Ordering::Relaxed);
    }

    /// How MESSAGE frames went out over WebSocket: compressed once and shared, or not.
    pub fn broadcast(&self) -> &BroadcastCounters {
        &self.broadcast
    }

    /// Render the counters of the Redis node as well (`wsx_stomp_redis_*`). Set once.
    pub(crate) fn set_redis(&self, redis: RedisMetrics) {
        let _ = self.redis.set(redis);
    }

    /// Data messages received from the broker's clients (for an application's totals).
    pub fn messages_received(&self) -> u64 {
        self.frames_received.load(Ordering::Relaxed)
    }

    /// Payload bytes received from the broker's clients.
    pub fn bytes_received(&self) -> u64 {
        self.bytes_received.load(Ordering::Relaxed)
    }

    /// Data messages queued to the broker's clients.
    pub fn messages_sent(&self) -> u64 {
        self.frames_sent.load(Ordering::Relaxed)
    }

    /// Payload bytes queued to the broker's clients.
    pub fn bytes_sent(&self) -> u64 {
        self.bytes_sent.load(Ordering::Relaxed)
    }

    /// Sessions open now.
    pub fn sessions(&self) -> u64 {
        self.sessions.load(Ordering::Relaxed)
    }

    /// Sessions open now over plain TCP or TLS (counted in [`BrokerMetrics::sessions`] too).
    pub fn tcp_sessions(&self) -> u64 {
        self.tcp_sessions.load(Ordering::Relaxed)
    }

    /// Append the broker's series (`wsx_stomp_*`) in the Prometheus text exposition format.
    pub fn render_into(&self, out: &mut String) {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        metric(
            "wsx_stomp_sessions",
            "gauge",
            "STOMP sessions open (WebSocket and TCP).",
            get(&self.sessions),
        );
        metric(
            "wsx_stomp_tcp_sessions",
            "gauge",
            "STOMP sessions open over plain TCP or TLS (of wsx_stomp_sessions).",
            get(&self.tcp_sessions),
        );
        metric(
            "wsx_stomp_tcp_refused_total",
            "counter",
            "STOMP-over-TCP connections closed as accepted: over the connection limit.",
            get(&self.tcp_refused),
        );
        metric(
            "wsx_stomp_subscriptions",
            "gauge",
            "Active STOMP subscriptions.",
            get(&self.subscriptions),
        );
        metric(
            "wsx_stomp_redeliveries_total",
            "counter",
            "STOMP messages delivered again (after a NACK, or when their consumer went away).",
            get(&self.redeliveries),
        );
        metric(
            "wsx_stomp_slow_disconnects_total",
            "counter",
            "STOMP connections dropped because they did not keep up (close 1008).",
            get(&self.slow_disconnects),
        );
        metric(
            "wsx_stomp_messages_conflated_total",
            "counter",
            "STOMP topic messages replaced, while waiting for a slow subscriber, by a later one \
             with the same x-conflation-key.",
            get(&self.conflated),
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
            metric(
                "wsx_stomp_redis_failovers_total",
                "counter",
                "Times the node found the Redis primary at a new address (failovers seen).",
                redis.failovers(),
            );
            metric(
                "wsx_stomp_redis_replica_waits_total",
                "counter",
                "Times WAIT answered with fewer replicas than --redis-replicas-ack (confirmations waited).",
                redis.replica_waits(),
            );
            let _ = writeln!(
                out,
                "# HELP wsx_stomp_redis_primary The Redis the node uses: mode (single, sentinel, \
                 cluster) and the primary's address, one line per primary in cluster mode \
                 (empty before the first connection).\n\
                 # TYPE wsx_stomp_redis_primary gauge"
            );
            let primaries = redis.primaries();
            let empty = [String::new()];
            let shown = if primaries.is_empty() {
                &empty[..]
            } else {
                &primaries[..]
            };
            for address in shown {
                let _ = writeln!(
                    out,
                    "wsx_stomp_redis_primary{{mode=\"{}\",address=\"{}\"}} 1",
                    redis.mode(),
                    label_value(address),
                );
            }
        }
        for (name, help, counts) in [
            (
                "wsx_stomp_messages_published_total",
                "STOMP messages published, by destination kind.",
                &self.published,
            ),
            (
                "wsx_stomp_messages_delivered_total",
                "STOMP messages handed to subscriptions, by destination kind.",
                &self.delivered,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (kind, count) in KINDS.iter().zip(counts) {
                let _ = writeln!(out, "{name}{{kind=\"{kind}\"}} {}", get(count));
            }
        }
        self.broadcast
            .render_into("wsx_stomp", "STOMP MESSAGE", out);
    }

    /// [`BrokerMetrics::render_into`] a new string.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(2048);
        self.render_into(&mut out);
        out
    }
}

/// `value` as a Prometheus label value: backslash, quote and newline escaped.
fn label_value(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn add_signed(a: &AtomicU64, delta: i64) {
    if delta >= 0 {
        a.fetch_add(delta.unsigned_abs(), Ordering::Relaxed);
    } else {
        a.fetch_sub(delta.unsigned_abs(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_series_only_with_the_redis_broker() {
        let m = BrokerMetrics::default();
        assert!(!m.render().contains("wsx_stomp_redis_"));
        assert!(m.render().contains("wsx_stomp_sessions 0\n"));
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
            "wsx_stomp_redis_failovers_total 0\n",
            "wsx_stomp_redis_replica_waits_total 0\n",
            "wsx_stomp_redis_primary{mode=\"single\",address=\"",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }
}
