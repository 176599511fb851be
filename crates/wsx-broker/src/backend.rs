//! The engine behind `/stomp`, chosen at startup by `--broker`.
//!
//! `--broker memory` (the default) keeps topics and queues in this process
//! ([`wsx_stomp::MemoryEngine`]); `--broker redis://HOST:PORT[/DB]` (or
//! `redis-sentinel://HOST:PORT[,HOST:PORT…]/SERVICE`, the primary its sentinels name, or
//! `redis-cluster://HOST:PORT[,HOST:PORT…]`, a Redis Cluster's primaries) makes
//! the server one node of a broker shared through Redis ([`wsx_stomp_redis::RedisEngine`]): clients on any node
//! see the same topics and queues. [`Backend`] is either one behind the
//! [`wsx_stomp::Engine`] trait, so the [`crate::hub::Hub`] and the sessions do not care which.
//!
//! ```text
//! --broker ─ BrokerUrl::from_str ─ Backend::start ─ Broker ─ Hub ─ /stomp connections
//!                                        │ (Redis)                 ▲
//!                                        └── RedisEvents ── pump ──┘ Hub::pump_with
//! ```
//!
//! With Redis, what other nodes publish arrives on [`wsx_stomp_redis::RedisEvents`]; the
//! task of [`crate::Broker::start`] hands each event to
//! [`wsx_stomp_redis::RedisEngine::handle_event`] under the hub's lock. So do the
//! confirmations of this node's SENDs (a SEND is [`wsx_stomp::Outcome::Pending`] until Redis
//! stored it), which the hub hands to [`wsx_stomp::Broker::confirm`].

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use wsx_stomp::{
    Delivery, Destination, Engine, MemoryEngine, MessageId, Origin, Outcome, Publish, Selector,
    StreamStart, SubscriberKey, TopicHistory,
};
use wsx_stomp_redis::{ClusterUrl, Config, RedisEngine, RedisEvents, RedisMetrics, SentinelUrl};

/// The `--broker` value: `memory`, or the Redis server of a shared broker.
#[derive(Clone, PartialEq, Eq)]
pub enum BrokerUrl {
    /// The in-process broker.
    Memory,
    /// A broker shared through Redis at this URL (`redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]`,
    /// `redis-sentinel://HOST:PORT[,HOST:PORT…]/SERVICE`: see [`SentinelUrl`], or
    /// `redis-cluster://HOST:PORT[,HOST:PORT…]`: see [`ClusterUrl`]).
    Redis(String),
}

impl BrokerUrl {
    /// The URL without its credentials, for logs and errors.
    fn redacted(url: &str) -> String {
        let Some((scheme, rest)) = url.split_once("://") else {
            return url.to_owned();
        };
        match rest.split_once('/') {
            Some((authority, path)) => {
                format!("{scheme}://{}/{path}", without_userinfo(authority))
            }
            None => format!("{scheme}://{}", without_userinfo(rest)),
        }
    }
}

fn without_userinfo(authority: &str) -> &str {
    authority
        .rsplit_once('@')
        .map_or(authority, |(_, host_port)| host_port)
}

impl fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BrokerUrl::Memory => f.write_str("memory"),
            BrokerUrl::Redis(url) => f.write_str(&BrokerUrl::redacted(url)),
        }
    }
}

/// Shows no password.
impl fmt::Debug for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BrokerUrl({self})")
    }
}

impl FromStr for BrokerUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const EXPECTED: &str = "expected `memory`, `redis://HOST:PORT[/DB]`, `redis-sentinel://HOST:PORT[,HOST:PORT…]/SERVICE` or `redis-cluster://HOST:PORT[,HOST:PORT…]`";
        if s.eq_ignore_ascii_case("memory") {
            return Ok(BrokerUrl::Memory);
        }
        if ClusterUrl::is_cluster(s) {
            let url = s.parse::<ClusterUrl>().map_err(|e| e.to_string())?;
            return Ok(BrokerUrl::Redis(url.to_string()));
        }
        if SentinelUrl::is_sentinel(s) {
            let url = s.parse::<SentinelUrl>().map_err(|e| e.to_string())?;
            return Ok(BrokerUrl::Redis(url.to_string()));
        }
        if s.starts_with("rediss://") || s.starts_with("redis+unix://") || s.starts_with("unix:") {
            return Err(format!(
                "`{}`: only plain TCP Redis URLs are supported ({EXPECTED})",
                BrokerUrl::redacted(s)
            ));
        }
        let Some(rest) = s.strip_prefix("redis://") else {
            return Err(format!("`{}`: {EXPECTED}", BrokerUrl::redacted(s)));
        };
        let shown = BrokerUrl::redacted(s);
        let (authority, db) = rest.split_once('/').unwrap_or((rest, ""));
        if !db.is_empty() && db.parse::<u32>().is_err() {
            return Err(format!(
                "`{shown}`: the database must be a number ({EXPECTED})"
            ));
        }
        let host_port = without_userinfo(authority);
        let (host, port) = match host_port.strip_prefix('[') {
            // An IPv6 address: `[::1]:6379`.
            Some(v6) => {
                let Some((host, after)) = v6.split_once(']') else {
                    return Err(format!("`{shown}`: unclosed `[` in the host ({EXPECTED})"));
                };
                match after {
                    "" => (host, None),
                    _ => match after.strip_prefix(':') {
                        Some(port) => (host, Some(port)),
                        None => return Err(format!("`{shown}`: {EXPECTED}")),
                    },
                }
            }
            None => match host_port.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (host_port, None),
            },
        };
        if host.is_empty() {
            return Err(format!("`{shown}`: the host is missing ({EXPECTED})"));
        }
        if let Some(port) = port
            && !port.parse::<u16>().is_ok_and(|p| p != 0)
        {
            return Err(format!(
                "`{shown}`: the port must be a number from 1 to 65535 ({EXPECTED})"
            ));
        }
        Ok(BrokerUrl::Redis(s.to_owned()))
    }
}

/// The budgets of the in-memory broker (`--stomp-max-destinations`, `--stomp-max-queue-bytes`,
/// `--stomp-max-broker-bytes`); ignored with a Redis broker.
#[derive(Debug, Clone, Copy)]
pub struct MemorySettings {
    /// Queues and topics kept at once.
    pub max_destinations: usize,
    /// Bytes one queue holds.
    pub max_queue_bytes: usize,
    /// Bytes all queues hold.
    pub max_bytes: usize,
    /// History each topic keeps (`--topic-history`, `--topic-history-bytes`).
    pub topic_history: TopicHistory,
    /// Bytes the history of all topics holds together.
    pub max_history_bytes: usize,
}

impl Default for MemorySettings {
    fn default() -> Self {
        MemorySettings {
            max_destinations: MemoryEngine::DEFAULT_MAX_DESTINATIONS,
            max_queue_bytes: MemoryEngine::DEFAULT_MAX_QUEUE_BYTES,
            max_bytes: MemoryEngine::DEFAULT_MAX_BYTES,
            topic_history: TopicHistory::default(),
            max_history_bytes: MemoryEngine::DEFAULT_MAX_HISTORY_BYTES,
        }
    }
}

/// The settings of a Redis node (`--node-id`, `--redis-*`); ignored with `--broker memory`.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// This node's consumer name; `None` for a random one.
    pub node_id: Option<String>,
    /// Prefix of every Redis key of the broker; nodes of one broker share it.
    pub prefix: String,
    /// How long a dead node's unacknowledged queue entries wait before another node takes
    /// them.
    pub claim_timeout: Duration,
    /// SENDs that may wait for Redis before new ones are refused with an ERROR.
    pub max_pending_sends: usize,
    /// Messages a queue may hold in Redis before SENDs to it are refused with an ERROR.
    pub max_queue_len: usize,
    /// Bytes of SENDs that may wait for Redis before new ones are refused with an ERROR.
    pub max_pending_bytes: usize,
    /// Bytes of messages a queue may hold in Redis before SENDs to it are refused with an
    /// ERROR.
    pub max_queue_bytes: usize,
    /// Bytes of queue messages this node may hold (fetched, not acknowledged) before it
    /// fetches nothing more.
    pub max_held_bytes: usize,
    /// How long an empty queue nobody consumes stays in Redis.
    pub queue_grace: Duration,
    /// History each topic keeps in Redis (`--topic-history`, `--topic-history-bytes`).
    pub topic_history: TopicHistory,
    /// Replicas that must have a write before a SEND is confirmed (RECEIPT, an HTTP
    /// publish's answer) and an ACK counts as done (`--redis-replicas-ack`; 0: the primary
    /// alone).
    pub replicas_ack: usize,
}

/// The engine of `/stomp`: in memory or on Redis. Every [`Engine`] method goes to the one
/// chosen.
#[derive(Debug)]
pub enum Backend {
    /// `--broker memory`.
    Memory(Box<MemoryEngine>),
    /// `--broker redis://…`: one node of a shared broker.
    Redis(Box<RedisEngine>),
}

impl Backend {
    /// Build the engine `url` names. With Redis, this spawns the engine's tasks on the current
    /// runtime (they connect, and reconnect, on their own) and returns the events to feed to
    /// [`RedisEngine::handle_event`]. Errors are for the user (an invalid URL).
    pub fn start(
        url: &BrokerUrl,
        memory: &MemorySettings,
        settings: &RedisSettings,
    ) -> Result<(Backend, Option<RedisEvents>), String> {
        match url {
            BrokerUrl::Memory => {
                let engine = MemoryEngine::new()
                    .with_max_destinations(memory.max_destinations)
                    .with_max_queue_bytes(memory.max_queue_bytes)
                    .with_max_bytes(memory.max_bytes)
                    .with_topic_history(memory.topic_history)
                    .with_max_history_bytes(memory.max_history_bytes);
                Ok((Backend::Memory(Box::new(engine)), None))
            }
            BrokerUrl::Redis(raw) => {
                let mut config = Config::new(raw.clone())
                    .prefix(settings.prefix.clone())
                    .claim_timeout(settings.claim_timeout)
                    .max_pending_sends(settings.max_pending_sends)
                    .max_queue_len(settings.max_queue_len)
                    .max_pending_bytes(settings.max_pending_bytes)
                    .max_queue_bytes(settings.max_queue_bytes)
                    .max_held_bytes(settings.max_held_bytes)
                    .empty_queue_grace(settings.queue_grace)
                    .topic_history(settings.topic_history)
                    .replicas_ack(settings.replicas_ack);
                if let Some(id) = &settings.node_id {
                    config = config.node_id(id.clone());
                }
                let (engine, events) =
                    RedisEngine::start(config).map_err(|e| format!("--broker {url}: {e}"))?;
                Ok((Backend::Redis(Box::new(engine)), Some(events)))
            }
        }
    }

    /// The Redis node's counters, when this is one.
    pub fn redis_metrics(&self) -> Option<RedisMetrics> {
        match self {
            Backend::Memory(_) => None,
            Backend::Redis(redis) => Some(redis.metrics()),
        }
    }

    /// The Redis engine, when this is one.
    pub fn redis_mut(&mut self) -> Option<&mut RedisEngine> {
        match self {
            Backend::Memory(_) => None,
            Backend::Redis(redis) => Some(redis),
        }
    }
}

/// The offset of a topic message published from the server ([`Backend::publish_with_offset`]):
/// known at once in memory, once Redis stored it otherwise.
#[derive(Debug)]
pub(crate) enum PendingOffset {
    /// Stored, with this offset.
    Stored(u64),
    /// Redis answers later.
    Redis(tokio::sync::oneshot::Receiver<Result<u64, wsx_stomp_redis::Error>>),
}

impl PendingOffset {
    /// The offset, once stored (0: stored by a write Redis answered twice, offset unknown);
    /// or why it was not.
    pub(crate) async fn stored(self) -> Result<u64, String> {
        match self {
            PendingOffset::Stored(offset) => Ok(offset),
            PendingOffset::Redis(rx) => match rx.await {
                Ok(result) => result.map_err(|e| e.to_string()),
                Err(_) => Err("the redis engine stopped".to_owned()),
            },
        }
    }
}

impl Backend {
    /// Publish a topic message (`/topic/NAME`) and learn its offset: see [`PendingOffset`].
    /// Refused like a SEND.
    pub(crate) fn publish_with_offset(
        &mut self,
        publish: Publish,
        out: &mut Vec<Delivery>,
    ) -> Result<PendingOffset, String> {
        match self {
            Backend::Memory(e) => match e.publish_with_offset(publish, out) {
                Ok(Some(offset)) => Ok(PendingOffset::Stored(offset)),
                Ok(None) => Err("not a topic: no offset".to_owned()),
                Err(error) => Err(error.to_string()),
            },
            Backend::Redis(e) => e
                .offer_with_offset(publish)
                .map(PendingOffset::Redis)
                .map_err(|e| e.to_string()),
        }
    }

    /// Publish a queue message (`/queue/NAME`) and learn when it is stored: at once in memory,
    /// once Redis stored it otherwise (the [`PendingOffset`] resolves to 0). Refused like a
    /// SEND.
    pub(crate) fn publish_stored(
        &mut self,
        publish: Publish,
        out: &mut Vec<Delivery>,
    ) -> Result<PendingOffset, String> {
        match self {
            Backend::Memory(e) => e
                .try_publish(publish, out)
                .map(|()| PendingOffset::Stored(0))
                .map_err(|e| e.to_string()),
            Backend::Redis(e) => e
                .offer_stored(publish)
                .map(PendingOffset::Redis)
                .map_err(|e| e.to_string()),
        }
    }
}

impl Engine for Backend {
    fn subscribe(
        &mut self,
        key: SubscriberKey,
        destination: &Destination,
        max_unacked: Option<usize>,
        out: &mut Vec<Delivery>,
    ) {
        match self {
            Backend::Memory(e) => e.subscribe(key, destination, max_unacked, out),
            Backend::Redis(e) => e.subscribe(key, destination, max_unacked, out),
        }
    }

    fn subscribe_with_selector(
        &mut self,
        key: SubscriberKey,
        destination: &Destination,
        max_unacked: Option<usize>,
        selector: Option<Selector>,
        out: &mut Vec<Delivery>,
    ) -> Result<(), wsx_stomp::Error> {
        match self {
            Backend::Memory(e) => {
                e.subscribe_with_selector(key, destination, max_unacked, selector, out)
            }
            Backend::Redis(e) => {
                e.subscribe_with_selector(key, destination, max_unacked, selector, out)
            }
        }
    }

    fn subscribe_at(
        &mut self,
        key: SubscriberKey,
        destination: &Destination,
        max_unacked: Option<usize>,
        selector: Option<Selector>,
        start: StreamStart,
        out: &mut Vec<Delivery>,
    ) -> Result<(), wsx_stomp::Error> {
        match self {
            Backend::Memory(e) => {
                e.subscribe_at(key, destination, max_unacked, selector, start, out)
            }
            Backend::Redis(e) => {
                e.subscribe_at(key, destination, max_unacked, selector, start, out)
            }
        }
    }

    fn unsubscribe(&mut self, key: &SubscriberKey, out: &mut Vec<Delivery>) {
        match self {
            Backend::Memory(e) => e.unsubscribe(key, out),
            Backend::Redis(e) => e.unsubscribe(key, out),
        }
    }

    fn publish(&mut self, message: Publish, out: &mut Vec<Delivery>) {
        match self {
            Backend::Memory(e) => e.publish(message, out),
            Backend::Redis(e) => e.publish(message, out),
        }
    }

    fn try_publish(
        &mut self,
        message: Publish,
        out: &mut Vec<Delivery>,
    ) -> Result<(), wsx_stomp::Error> {
        match self {
            Backend::Memory(e) => e.try_publish(message, out),
            Backend::Redis(e) => e.try_publish(message, out),
        }
    }

    fn try_publish_from(
        &mut self,
        message: Publish,
        origin: Origin,
        out: &mut Vec<Delivery>,
    ) -> Result<Outcome, wsx_stomp::Error> {
        match self {
            Backend::Memory(e) => e.try_publish_from(message, origin, out),
            Backend::Redis(e) => e.try_publish_from(message, origin, out),
        }
    }

    fn ack(&mut self, key: &SubscriberKey, ids: &[MessageId], out: &mut Vec<Delivery>) {
        match self {
            Backend::Memory(e) => e.ack(key, ids, out),
            Backend::Redis(e) => e.ack(key, ids, out),
        }
    }

    fn nack(&mut self, key: &SubscriberKey, ids: &[MessageId], out: &mut Vec<Delivery>) {
        match self {
            Backend::Memory(e) => e.nack(key, ids, out),
            Backend::Redis(e) => e.nack(key, ids, out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls() {
        assert_eq!("memory".parse(), Ok(BrokerUrl::Memory));
        assert_eq!("MEMORY".parse(), Ok(BrokerUrl::Memory));
        for ok in [
            "redis://127.0.0.1:6379",
            "redis://localhost",
            "redis://localhost:6379/2",
            "redis://:secret@redis.internal:6380/0",
            "redis://user:secret@redis.internal:6380",
            "redis://[::1]:6379/1",
            "redis-sentinel://10.0.0.1:26379,10.0.0.2:26379/mymaster",
            "redis-cluster://10.0.0.1:7000,10.0.0.2:7000",
        ] {
            assert_eq!(ok.parse(), Ok(BrokerUrl::Redis(ok.to_owned())), "{ok}");
        }
        for bad in [
            "",
            "mem",
            "http://localhost:6379",
            "redis://",
            "redis://:6379",
            "redis://host:0",
            "redis://host:port",
            "redis://host:70000",
            "redis://host:6379/db",
            "redis://[::1",
            "rediss://host:6379",
            "redis-sentinel://h:26379",
            "redis-sentinel://h/mymaster",
            "redis-cluster://h",
            "redis-cluster://h:7000/0",
        ] {
            assert!(bad.parse::<BrokerUrl>().is_err(), "{bad}");
        }
        let err = "rediss://u:pw@h:1"
            .parse::<BrokerUrl>()
            .expect_err("refused");
        assert!(!err.contains("pw"), "{err}");
    }

    #[test]
    fn passwords_stay_out_of_logs() {
        let url: BrokerUrl = "redis://user:hunter2@h:6379/3".parse().expect("valid");
        assert_eq!(url.to_string(), "redis://h:6379/3");
        assert!(!format!("{url:?}").contains("hunter2"));
    }

    #[tokio::test]
    async fn memory_needs_no_events() {
        let settings = RedisSettings {
            node_id: None,
            prefix: "wsx:".to_owned(),
            claim_timeout: Duration::from_secs(30),
            max_pending_sends: 10,
            max_queue_len: 100,
            max_pending_bytes: 1 << 20,
            max_queue_bytes: 1 << 20,
            max_held_bytes: 1 << 20,
            queue_grace: Duration::from_secs(60),
            topic_history: TopicHistory::default(),
            replicas_ack: 0,
        };
        let memory = MemorySettings::default();
        let (engine, events) = Backend::start(&BrokerUrl::Memory, &memory, &settings).expect("ok");
        assert!(events.is_none());
        assert!(engine.redis_metrics().is_none());
        // Redis: started without waiting for the server (nothing listens on port 1).
        let url: BrokerUrl = "redis://127.0.0.1:1".parse().expect("valid");
        let (engine, events) = Backend::start(&url, &memory, &settings).expect("ok");
        assert!(events.is_some());
        let metrics = engine.redis_metrics().expect("a redis node");
        assert!(!metrics.connected());
    }
}
