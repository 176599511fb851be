//! # wsx-stomp-redis
//!
//! A Redis-backed [`wsx_stomp::Engine`], so that several `wsx serve` nodes form one STOMP
//! broker. Each node runs its own [`wsx_stomp::Broker`] with a [`RedisEngine`]; clients on
//! any node see the same topics and queues.
//!
//! ## Where it sits
//!
//! ```text
//! client ─ /stomp (I/O layer) ─ Broker ─ Session ─ RedisEngine ─(channels)─ tasks ─ Redis
//!                                  ▲                     │
//!                                  ├── Broker::deliver ◄─ handle_event ◄─ RedisEvents
//!                                  └── Broker::confirm ◄─┘
//! ```
//!
//! The engine is synchronous, as the trait is: calls record what to do and send commands to
//! background tasks ([`RedisEngine::start`] spawns them on the current tokio runtime). What
//! comes back from Redis arrives on [`RedisEvents`]; the I/O layer passes each event to
//! [`RedisEngine::handle_event`] (under the broker's lock), the deliveries it produces to
//! [`wsx_stomp::Broker::deliver`] and the confirmations of SENDs to
//! [`wsx_stomp::Broker::confirm`], then wakes the connections those calls return.
//!
//! ## SENDs: a RECEIPT means stored in Redis
//!
//! A session hands each SEND to [`wsx_stomp::Engine::try_publish_from`] with its origin; the
//! engine accepts it ([`wsx_stomp::Outcome::Pending`]) or refuses it at once (below). The
//! writer task writes it and, once Redis has answered, reports a
//! [`wsx_stomp::Confirmation`] among the events: `Stored` when the `PUBLISH` returned or the
//! queue's `XADD` script returned the new length — the session then sends the SEND's RECEIPT —
//! or `Failed` when the script refused the entry (the queue is full) or Redis answered an
//! error — the session then answers with an ERROR (with the SEND's `receipt-id`) and closes,
//! receipt asked for or not. A SEND accepted while Redis is down gets its RECEIPT when it is
//! finally written; if the node dies first, the client has no RECEIPT (and no ERROR: its
//! connection is gone) and should send again. So a RECEIPT is never sent for a message Redis
//! does not have, and no accepted SEND is dropped without its client being told, except by
//! the loss of its connection. A topic message stored is one Redis published: topics stay
//! at-most-once for subscribers (below).
//!
//! ## Topics: ordered, with offsets and a bounded history
//!
//! One pub/sub connection per node. The engine counts local subscribers per topic; the first
//! local SUBSCRIBE to a topic subscribes the node's connection to its channel, the last
//! UNSUBSCRIBE leaves it. A topic SEND is one Lua script (`TOPIC_PUBLISH`, run by the writer)
//! that, atomically: gives the message the topic's next offset (a counter in the companion
//! hash `PREFIXtm:NAME`, starting at [`wsx_stomp::FIRST_OFFSET`]), adds it to the topic's
//! history stream `PREFIXts:NAME` as entry `0-OFFSET`, trims the oldest entries past
//! [`Config::topic_history`] (count, and bytes counted in the hash), and `PUBLISH`es the
//! encoded message prefixed with its offset. So history and live messages agree, and every
//! node sees the same offsets; each MESSAGE carries `x-stream-offset`. A pipeline written
//! again after a timeout does not publish twice (the script records each writer's last SEND
//! per topic). Offsets and history stay in Redis after the last subscriber left (keys are
//! not expired: a topic costs its counter and at most its history bound in Redis).
//!
//! Plain subscribers (no `x-stream-offset`, or `next`) get what pub/sub brings: a message
//! published while a node's pub/sub connection is down (or while a subscriber's window is
//! full) is not delivered to them: **plain topic subscriptions are at-most-once**.
//!
//! A subscription resumed with `x-stream-offset` (`first`, `last`, `last=K`, `offset=N`) reads the
//! history from there on the writer's connection (no connection per subscriber: a node
//! keeps its three connections), once its channel subscription is live, buffers the live
//! messages meanwhile and delivers in offset order with no gap and no duplicate at the seam,
//! paced by its window; a live message beyond the next offset it expects (pub/sub lost some)
//! makes it read the missing ones from the history; what the history no longer holds is
//! skipped with `x-stream-gap:true` on the next delivery. See the module `resumed` for the
//! details.
//!
//! User destinations (`/user/{principal}/queue/NAME`, which a principal's sessions subscribe
//! to as `/user/queue/NAME`) go the same way, on channel `{prefix}u:{principal}/queue/NAME`:
//! a message reaches that principal's sessions on every node. SENDs to `/app/NAME` are refused
//! ([`Error::NoHandler`]): application handlers answer them before the engine.
//!
//! Selectors (the `selector` header of SUBSCRIBE, [`wsx_stomp::Selector`]) work on topics:
//! each node filters what it fans out to its own subscribers.
//!
//! ## Queues: Redis streams, at least once
//!
//! A queue is a stream with one consumer group; each node is a consumer named by its node id.
//! A SEND is an `XADD`. A node reads all its queues on **one connection** (one `XREADGROUP`
//! over the streams of every queue whose local consumers have room), no more entries per
//! queue than its local consumers have room for, and hands them out round-robin: a node has
//! three Redis connections (writer, pub/sub, reader) whatever the number of topics and
//! queues. An ACK is an `XACK` (and an `XDEL` of the entries it acknowledged: a late ACK,
//! after Redis lost the stream and ids started over, deletes nothing new); a NACK delivers the
//! message again locally, to the next consumer with room. A consumer subscribed with a window
//! (`max_unacked: Some(n)`, which the sessions use for `ack:auto` too, acknowledging once the
//! frame is written) is acknowledged in Redis only on [`wsx_stomp::Engine::ack`]; when it
//! leaves, what it held goes to the other local consumers (marked redelivered), or back to
//! the group when it was the last. Only a consumer subscribed without a window
//! (`max_unacked: None`) is acknowledged in Redis as entries are handed to it. When the last
//! local consumer leaves, the entries the node still holds go back to the group (a copy is
//! added — marked redelivered if it was delivered — and the original acknowledged,
//! atomically, in a script), and so do those its reader was still fetching: the reader's
//! blocking read is interrupted (`CLIENT UNBLOCK`), and what it returns, or forwarded and the
//! engine has not handled yet, the reader gives back itself. [`RedisEngine::flushed`] waits
//! for that: once it resolves, no entry of a queue without local consumers is pending at the
//! node, so a node shutting down hands its messages over at once (and not after the claim
//! timeout). A node refreshes the idle time of the entries it holds;
//! entries idle longer than [`Config::claim_timeout`] — those of a dead node — are taken over
//! by the other nodes (`XAUTOCLAIM`, no more than their consumers have room for) and
//! delivered marked redelivered. Nothing acknowledged is delivered again, and nothing is lost
//! while Redis keeps its data: **queues are at-least-once** (a message may come twice: a node
//! that stalls longer than the claim timeout, a SEND retried by its client after a connection
//! loss). A SUBSCRIBE to a queue with a selector is
//! refused ([`wsx_stomp::Error::Unsupported`], an ERROR to the client): a node fetches entries
//! for its local consumers as a whole and would hold back, from the other nodes' consumers,
//! entries none of its own selects.
//!
//! ## Unused queues are removed
//!
//! SUBSCRIBE creates the queue's stream and group. A node records in the queue's companion
//! hash (`PREFIXqm:NAME`) when it last consumed it, refreshed while it has local consumers.
//! When the last local consumer of a node leaves, the node tries, after
//! [`Config::empty_queue_grace`], to remove the stream and its companion hash: a script
//! deletes them only if the stream is empty, nothing is pending, and no node recorded
//! consuming it within the grace period. A SEND racing with it either comes first (the stream
//! is not empty: kept) or after (it creates the stream again, and the group, created at the
//! start of the stream, reads it). A queue whose last consumer was on a node that died is not
//! removed (no node is left to try).
//!
//! ## Queue length and bytes: bounded, never trimmed
//!
//! A queue's stream holds at most [`Config::max_queue_bytes`] bytes of messages (default
//! 256 MiB; counted in the companion hash, added by the `XADD` script and taken off by the
//! ACK script): a SEND that would cross it is refused by the script, and its client gets an
//! ERROR naming `max-queue-bytes` (the confirmation is `Failed`).
//!
//! A queue's stream holds at most [`Config::max_queue_len`] entries (default 100 000). An
//! acknowledged entry is deleted, so the length counts the messages not delivered yet or not
//! acknowledged yet; nothing is ever trimmed (no `XADD MAXLEN`): when a queue is full, new
//! SENDs are refused instead. A queue SEND is a Lua script that checks `XLEN` and adds only
//! below the limit, atomically on the server, so the stream never exceeds the limit whatever
//! the number of nodes. Refusal is synchronous where possible: the writer marks a stream full
//! when a write brings it to the limit (or is refused), and from then on
//! [`RedisEngine::offer`] and [`wsx_stomp::Engine::try_publish`] refuse SENDs to it at once
//! with [`Error::QueueFull`], which the session answers with an ERROR. Every 500 ms the writer
//! checks `XLEN` of the streams it marked full and clears the mark once there is room.
//!
//! The window: a SEND the engine accepted *before* its node knew the queue was full is refused
//! by the script afterwards. Its client is told then: the confirmation is `Failed`, so it gets
//! an ERROR (with the `receipt-id` of the SEND; it never got a RECEIPT) and its session is
//! closed; the message is also counted in [`RedisMetrics::send_failures`] and logged at `warn`
//! with its destination. Such SENDs are exactly those accepted by a node
//! between the moment the stream reached its limit and the moment that node's writer saw it:
//! the SENDs already queued in its writer (at most [`Config::max_pending_sends`]) or written
//! in the same pipeline, including, on a node that has not written to that queue since it
//! filled (another node filled it), the SENDs it accepts until its first refused write comes
//! back; and likewise after the 500 ms re-check cleared a mark, if other nodes fill the queue
//! again before this node's next write. Requeues (a copy added and the original deleted
//! together) do not change the length (unless Redis lost the original) and are never refused.
//!
//! ## Bytes a node holds: bounded
//!
//! Credit is counted in entries (the consumers' windows), not bytes. The entries a node holds
//! — read or claimed and not yet acknowledged, given back or dropped: waiting for a local
//! consumer with room, or delivered and not acknowledged — are bounded in bytes, node-wide,
//! by [`Config::max_held_bytes`] (default 64 MiB; [`RedisMetrics::held_bytes`]). While the
//! node holds that much its reader reads and claims nothing (consumers still get what the
//! node holds, and an ACK, a consumer leaving or a requeue releases bytes and lets it read
//! again). A read is sized to the room left at the largest entry seen, so it passes the
//! budget by at most one entry per queue read at once (of entries no larger than those seen
//! before). The budget is the node's: consumers that never acknowledge what they hold keep
//! it full, and the node's other queue consumers get nothing new from Redis until those
//! acknowledge, leave or are disconnected.
//!
//! ## Resilience
//!
//! When Redis goes away the node keeps its clients. Every task reconnects with exponential
//! backoff ([`Config::backoff_min`] to [`Config::backoff_max`]), resubscribes its channels and
//! recreates its groups; [`RedisMetrics::reconnects`] counts the connections re-established.
//! SENDs wait in the writer (and are written, and confirmed, once Redis is back) up to
//! [`Config::max_pending_sends`] messages and [`Config::max_pending_bytes`] bytes; past that
//! [`RedisEngine::offer`] (and the sessions, through
//! [`wsx_stomp::Engine::try_publish_from`]) refuse them with [`Error::Backlog`] or
//! [`Error::BacklogBytes`], which the session answers with an ERROR. Every channel between
//! the engine and its tasks is bounded (see the `connections` module). The writer writes at most 512
//! SENDs and about 1 MiB of them per pipeline; a pipeline Redis did not answer within
//! [`Config::write_timeout`] is written again on a new connection, and never duplicates:
//! queue SENDs are recorded per writer pipeline by the `XADD` script (a replay gets the
//! recorded outcome), acknowledgements and requeues act only on pending entries, and topic
//! messages carry their writer's sequence number, by which every node drops one it has
//! already delivered ([`RedisMetrics::duplicates`]). Through the plain
//! [`wsx_stomp::Engine::publish`] and [`RedisEngine::offer`] (which have no origin to
//! confirm to) a SEND refused at once or by Redis is counted in
//! [`RedisMetrics::send_failures`] and logged.
//!
//! ## Redis Cluster
//!
//! With [`Config::url`] `redis-cluster://HOST:PORT[,HOST:PORT…]` ([`ClusterUrl`]) the tasks use
//! the client library's cluster connection (one connection per primary; slots learned from
//! the nodes named, `MOVED`/`ASK` followed). Every key and channel of a destination carries
//! its name as a hash tag (`PREFIXq:{NAME}`, `PREFIXqm:{NAME}`, ...), so each script
//! touches one slot and destinations spread over the shards. Topic messages are published
//! with `SPUBLISH` and subscribed with `SSUBSCRIBE` (sharded pub/sub: a message stays on its
//! shard). Pipelines spanning slots are split per slot by the connection (see the
//! `connections` module's `conn`); the reader cannot block over several slots, so it reads
//! each queue without `BLOCK` and polls (see the `connections` module's `reader`). A writer's
//! topic messages reach a node in order per shard only, so duplicates are tracked per writer
//! and slot. [`Config::replicas_ack`] and a prefix with braces are refused
//! ([`Error::Unsupported`]).
//!
//! ## Sentinel, and durability across a failover
//!
//! With [`Config::url`] `redis-sentinel://HOST:PORT[,HOST:PORT…]/SERVICE` ([`SentinelUrl`])
//! every task, each time it connects or reconnects, asks the sentinels in turn for the
//! primary (`SENTINEL get-master-addr-by-name SERVICE`) and uses the address one names only
//! if it answers `ROLE` as a primary. After a failover the tasks' connections to the dead
//! (or demoted) primary fail; they reconnect to the promoted replica, resubscribe, recreate
//! their groups and resume reading and claiming, exactly as after a Redis restart, and the
//! clients stay connected. [`RedisMetrics::mode`], [`RedisMetrics::primary`] and
//! [`RedisMetrics::failovers`] show it.
//!
//! Redis replicates asynchronously: what the primary answered may be missing from the
//! replica promoted after it died. With [`Config::replicas_ack`] `N` above 0 the writer ends
//! each pipeline that writes with `WAIT N` and confirms its SENDs (RECEIPTs, HTTP publish
//! answers, [`RedisEngine::offer_stored`]) and counts its ACKs as done only once `N`
//! replicas have it; the sentinels promote the most up-to-date replica (by the offsets they
//! last saw), so a primary that dies loses nothing a client was told is stored (strictly so
//! when `N` is the number of replicas). When the old primary stays up (a manual failover, a
//! partition), the node moves to the new one within about 0.5 s (it watches the sentinels);
//! a write the old primary confirmed in between, through a replica that was not promoted,
//! can be lost, unless `N` is the number of replicas. While fewer replicas answer, the writer waits (asking again every second) rather
//! than failing the SENDs: they wait like SENDs while Redis is down, bounded by
//! [`Config::max_pending_sends`] and [`Config::max_pending_bytes`]. The cost is a
//! replication round trip per pipeline (SENDs batched together share it); run at least
//! `N + 1` replicas so that writes go on after a failover. What the reader read or claimed is
//! not waited for: after a failover the promoted replica may deliver an entry again (at
//! least once holds; a duplicate, never a loss).
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod cluster_url;
mod codec;
mod connections;
mod redis_engine;
mod resumed;
mod sentinel_url;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

pub use cluster_url::ClusterUrl;
pub use redis_engine::{RedisEngine, RedisEvent, RedisEvents};
pub use sentinel_url::SentinelUrl;
use wsx_stomp::TopicHistory;

/// What can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Redis URL is invalid.
    #[error("invalid redis url: {0}")]
    Url(String),
    /// A setting this mode does not support.
    #[error("not supported: {0}")]
    Unsupported(String),
    /// [`RedisEngine::start`] was called outside a tokio runtime.
    #[error("the redis engine needs a tokio runtime")]
    NoRuntime,
    /// Too many SENDs wait for Redis (it is down or slow): this one is refused
    /// ([`Config::max_pending_sends`]).
    #[error("redis unavailable: {0} messages waiting to be written (max-pending-sends)")]
    Backlog(usize),
    /// The SENDs waiting for Redis hold too many bytes (it is down or slow): this one is
    /// refused ([`Config::max_pending_bytes`]).
    #[error("redis unavailable: {0} bytes waiting to be written (max-pending-bytes)")]
    BacklogBytes(usize),
    /// The queue's stream holds [`Config::max_queue_len`] entries (undelivered or
    /// unacknowledged): this SEND is refused until consumers acknowledge some.
    #[error("queue {destination} is full: {limit} messages waiting or unacknowledged")]
    QueueFull {
        /// The queue, `/queue/NAME`.
        destination: String,
        /// The limit ([`Config::max_queue_len`]).
        limit: usize,
    },
    /// The queue's stream holds [`Config::max_queue_bytes`] bytes of messages (undelivered or
    /// unacknowledged), or would with this one: it is refused.
    #[error(
        "queue {destination} is full: over {limit} bytes waiting or unacknowledged \
         (max-queue-bytes)"
    )]
    QueueBytes {
        /// The queue, `/queue/NAME`.
        destination: String,
        /// The limit ([`Config::max_queue_bytes`]).
        limit: usize,
    },
    /// Redis answered a SEND with an error (or an unexpected reply): the message is not
    /// known to be stored.
    #[error("redis did not store it: {0}")]
    Redis(String),
    /// A message part is too large for the wire format.
    #[error("message too large to store: {0}")]
    TooLarge(String),
    /// Something read from Redis is not a message of this engine.
    #[error("malformed message in redis: {0}")]
    Malformed(String),
    /// A SEND to an application destination (`/app/NAME`): its handlers live in the I/O
    /// layer, which answers such SENDs before they reach the engine.
    #[error("no handler for {0}")]
    NoHandler(String),
}

/// Settings of one node.
#[derive(Debug, Clone)]
pub struct Config {
    /// The Redis server, `redis://host:port[/db]`, or the sentinels of a Sentinel
    /// deployment and its service name, `redis-sentinel://HOST:PORT[,HOST:PORT…]/SERVICE`
    /// ([`SentinelUrl`]): the node then connects to the primary they name, asked again at
    /// every reconnect, so it follows a failover; or nodes of a Redis Cluster,
    /// `redis-cluster://HOST:PORT[,HOST:PORT…]` ([`ClusterUrl`]): see the crate docs,
    /// *Redis Cluster*.
    pub url: String,
    /// This node's consumer name in the queue groups; unique per node (default: random).
    pub node_id: String,
    /// Prefix of every channel and stream key (default `wsx:`).
    pub prefix: String,
    /// The consumer group name used for every queue (default `wsx`).
    pub group: String,
    /// How long a queue entry may sit unacknowledged at a node that stopped refreshing it
    /// before another node takes it over (default 30 s).
    pub claim_timeout: Duration,
    /// How many entries a node fetches ahead for each consumer in `auto` ack mode
    /// (default 64).
    pub prefetch: usize,
    /// SENDs that may wait for Redis before new ones are refused (default 10 000).
    pub max_pending_sends: usize,
    /// Bytes of SENDs (encoded messages) that may wait for Redis before new ones are refused
    /// (default 64 MiB). A single SEND larger than this is accepted when nothing waits.
    pub max_pending_bytes: usize,
    /// Bytes of messages a queue's stream may hold (the encoded entries not acknowledged yet)
    /// before SENDs to it are refused (default 256 MiB), checked by the `XADD` script.
    pub max_queue_bytes: usize,
    /// Bytes of queue entries this node may hold — read or claimed from Redis and not yet
    /// acknowledged or given back, waiting for a local consumer or delivered to one — before
    /// its reader reads (and claims) nothing more until some are released (default 64 MiB).
    /// One read may pass it by at most one entry per queue read: see the crate docs, *Bytes
    /// a node holds*.
    pub max_held_bytes: usize,
    /// How long an empty queue's stream and group stay in Redis after the last consumer of
    /// every node left (default 60 s): then the node that saw its last consumer leave deletes
    /// them (if still empty, nothing pending, and no node consumed in the meantime).
    pub empty_queue_grace: Duration,
    /// How long the writer waits for Redis to answer a pipeline before it writes it again on
    /// a new connection (default 5 s); a pipeline written again never duplicates.
    pub write_timeout: Duration,
    /// Entries a queue's stream may hold — messages not delivered yet or delivered and not
    /// acknowledged (acknowledged entries are deleted) — before SENDs to it are refused
    /// (default 100 000). Nothing is ever trimmed: see the crate docs, *Queue length*.
    pub max_queue_len: usize,
    /// How much history each topic keeps in Redis (default 1000 messages, 1 MiB per topic;
    /// `max_messages: 0` keeps none). See the crate docs, *Topics*.
    pub topic_history: TopicHistory,
    /// Replicas that must have a pipeline's writes before its SENDs are confirmed (a
    /// RECEIPT, an HTTP publish's answer) and its acknowledgements count as done (default 0:
    /// once the primary answered). Above 0 the writer ends each pipeline with `WAIT N` and
    /// waits again, as long as it takes, while fewer replicas answer: see the crate docs,
    /// *Durability across a failover*.
    pub replicas_ack: usize,
    /// First reconnect delay (default 50 ms); doubles up to [`Config::backoff_max`].
    pub backoff_min: Duration,
    /// Longest reconnect delay (default 2 s; in Sentinel mode at most 250 ms, so that a node
    /// reaches the promoted replica soon after a failover).
    pub backoff_max: Duration,
}

impl Config {
    /// Defaults for the server at `url`, with a fresh random node id.
    pub fn new(url: impl Into<String>) -> Self {
        Config {
            url: url.into(),
            node_id: random_node_id(),
            prefix: "wsx:".to_owned(),
            group: "wsx".to_owned(),
            claim_timeout: Duration::from_secs(30),
            prefetch: 64,
            max_pending_sends: 10_000,
            max_queue_len: 100_000,
            max_pending_bytes: 64 << 20,
            max_queue_bytes: 256 << 20,
            max_held_bytes: 64 << 20,
            empty_queue_grace: Duration::from_secs(60),
            write_timeout: Duration::from_secs(5),
            topic_history: TopicHistory::default(),
            replicas_ack: 0,
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(2),
        }
    }

    /// Set the node id.
    pub fn node_id(mut self, id: impl Into<String>) -> Self {
        self.node_id = id.into();
        self
    }

    /// Set the key prefix (nodes of one broker must share it).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Set the claim timeout.
    pub fn claim_timeout(mut self, timeout: Duration) -> Self {
        self.claim_timeout = timeout.max(Duration::from_millis(30));
        self
    }

    /// Set how many SENDs may wait for Redis.
    pub fn max_pending_sends(mut self, n: usize) -> Self {
        self.max_pending_sends = n.max(1);
        self
    }

    /// Set how many entries a queue's stream may hold before SENDs to it are refused.
    pub fn max_queue_len(mut self, n: usize) -> Self {
        self.max_queue_len = n.max(1);
        self
    }

    /// Set how many bytes of SENDs may wait for Redis.
    pub fn max_pending_bytes(mut self, n: usize) -> Self {
        self.max_pending_bytes = n.max(1);
        self
    }

    /// Set how many bytes of messages a queue's stream may hold.
    pub fn max_queue_bytes(mut self, n: usize) -> Self {
        self.max_queue_bytes = n.max(1);
        self
    }

    /// Set how many bytes of queue entries this node may hold before its reader waits.
    pub fn max_held_bytes(mut self, n: usize) -> Self {
        self.max_held_bytes = n.max(1);
        self
    }

    /// Set how long empty queues stay in Redis once nobody consumes them.
    pub fn empty_queue_grace(mut self, grace: Duration) -> Self {
        self.empty_queue_grace = grace.max(Duration::from_millis(10));
        self
    }

    /// Set how long the writer waits for Redis to answer before writing again.
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// Set how many replicas must have a write before it is confirmed (0: the primary
    /// alone).
    pub fn replicas_ack(mut self, n: usize) -> Self {
        self.replicas_ack = n;
        self
    }

    /// Set how much history each topic keeps.
    pub fn topic_history(mut self, history: TopicHistory) -> Self {
        self.topic_history = history;
        self
    }

    /// Whether [`Config::url`] is a Redis Cluster (`redis-cluster://…`).
    pub(crate) fn is_cluster(&self) -> bool {
        ClusterUrl::is_cluster(&self.url)
    }

    /// A destination's name as its keys and channel hold it: as it is, or in cluster mode
    /// with a hash tag, so that all of them are in one hash slot (`{NAME}`: see
    /// `cluster_url::hash_tagged`).
    pub(crate) fn tagged<'a>(&self, name: &'a str) -> std::borrow::Cow<'a, str> {
        if self.is_cluster() {
            std::borrow::Cow::Owned(cluster_url::hash_tagged(name))
        } else {
            std::borrow::Cow::Borrowed(name)
        }
    }

    /// The history stream of topic `name`: `PREFIXts:NAME` (`PREFIXts:{NAME}` in cluster
    /// mode, as every key and channel below).
    pub(crate) fn topic_stream_key(&self, name: &str) -> String {
        format!("{}ts:{}", self.prefix, self.tagged(name))
    }

    /// The companion hash of topic `name` (last offset, bytes retained, writers' last SENDs):
    /// `PREFIXtm:NAME`.
    pub(crate) fn topic_meta_key(&self, name: &str) -> String {
        format!("{}tm:{}", self.prefix, self.tagged(name))
    }

    /// The stream key of queue `name`.
    pub(crate) fn stream_key(&self, name: &str) -> String {
        format!("{}q:{}", self.prefix, self.tagged(name))
    }

    /// The companion hash of a queue's stream (bytes held, writers' last batches, nodes
    /// consuming): `PREFIXqm:NAME`, which no stream key (`PREFIXq:…`) can equal.
    pub(crate) fn meta_key(&self, stream: &str) -> String {
        let name = stream
            .strip_prefix(self.prefix.as_str())
            .and_then(|rest| rest.strip_prefix("q:"))
            .unwrap_or(stream);
        format!("{}qm:{name}", self.prefix)
    }

    /// Set the auto-mode prefetch per consumer.
    pub fn prefetch(mut self, n: usize) -> Self {
        self.prefetch = n.max(1);
        self
    }
}

fn random_node_id() -> String {
    format!("node-{:016x}", random_u64())
}

/// A random number (process id, clock and the standard library's random hash keys).
pub(crate) fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(t.as_nanos());
    }
    h.finish()
}

/// The ids of the entries of one stream this node holds ([`NodeState::owned_ids`]).
#[derive(Debug)]
pub(crate) struct HeldIds {
    /// The stream key.
    pub key: Arc<str>,
    /// Its entries held.
    pub ids: Vec<Arc<str>>,
}

/// Entries held per stream key: entry id to payload size.
type Owned = HashMap<Arc<str>, HashMap<Arc<str>, usize>>;

/// State shared by the engine and its tasks.
#[derive(Debug, Default)]
pub(crate) struct NodeState {
    /// `single`, `sentinel` or `cluster` ([`RedisMetrics::mode`]).
    mode: &'static str,
    /// The address of the Redis the tasks last connected to ([`RedisMetrics::primary`]).
    primary: Mutex<Option<String>>,
    /// Changes of that address ([`RedisMetrics::failovers`]).
    failovers: AtomicU64,
    /// Bumped when the sentinels name another primary than the one the tasks use (see the
    /// `connections` module's `primary`): a task connected under an older value reconnects.
    primary_epoch: AtomicU64,
    /// Times `WAIT` answered with fewer replicas than [`Config::replicas_ack`].
    replica_waits: AtomicU64,
    connected: AtomicBool,
    reconnects: AtomicU64,
    pending_sends: AtomicUsize,
    pending_bytes: AtomicUsize,
    duplicates: AtomicU64,
    send_failures: AtomicU64,
    dropped: AtomicU64,
    malformed: AtomicU64,
    /// Queue entries this node holds (read or claimed, not yet acknowledged or requeued),
    /// per stream key, with the size of their payload: the readers keep their idle time fresh.
    owned: Mutex<Owned>,
    /// The bytes of the entries in `owned` (changed under its lock).
    held_bytes: AtomicUsize,
    /// [`Config::max_held_bytes`]: when a release brings `held_bytes` under it, the reader is
    /// woken.
    held_budget: AtomicUsize,
    /// Stream keys of queues at [`Config::max_queue_len`], as the writer last saw them: SENDs
    /// to them are refused at once. The writer clears a mark once the stream has room again.
    full: Mutex<HashSet<String>>,
    /// What the writer owes Redis besides SENDs (acknowledgements, requeues, ...).
    pub(crate) outbox: connections::Mailbox<connections::Outbox>,
    /// The streams the reader reads for the engine, with their credit.
    pub(crate) wanted: connections::Mailbox<connections::Wanted>,
    /// The channels the subscriber should be subscribed to.
    pub(crate) topics: connections::Mailbox<connections::Topics>,
}

impl NodeState {
    /// The current [`NodeState::primary_epoch`]: read before connecting, compared later.
    pub(crate) fn primary_epoch(&self) -> u64 {
        self.primary_epoch.load(Ordering::Relaxed)
    }

    /// The sentinels name another primary: the tasks reconnect.
    pub(crate) fn bump_primary_epoch(&self) {
        self.primary_epoch.fetch_add(1, Ordering::Relaxed);
    }

    /// The address the tasks last connected to.
    pub(crate) fn primary_addr(&self) -> Option<String> {
        self.primary
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The cluster's primaries (sorted) as last seen: recorded as the node's primary
    /// address, comma-separated, so that a change of the set counts as a failover seen.
    pub(crate) fn set_primaries(&self, primaries: Vec<String>) {
        if !primaries.is_empty() {
            self.set_primary(primaries.join(","));
        }
    }

    /// The tasks connect to `addr`: a failover seen if it differs from the last one.
    pub(crate) fn set_primary(&self, addr: String) {
        let mut primary = self.primary.lock().unwrap_or_else(PoisonError::into_inner);
        if primary.as_ref().is_some_and(|old| *old != addr) {
            self.failovers.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(primary = %addr, "the redis primary changed (failover)");
        }
        if primary.as_deref() != Some(addr.as_str()) {
            *primary = Some(addr);
        }
    }

    /// Whether the writer saw stream `key` at its length limit (and has not seen room since).
    pub(crate) fn is_full(&self, key: &str) -> bool {
        self.full.lock().is_ok_and(|full| full.contains(key))
    }

    /// Mark stream `key` full (or not).
    pub(crate) fn set_full(&self, key: &str, full: bool) {
        if let Ok(mut set) = self.full.lock() {
            if full {
                if !set.contains(key) {
                    set.insert(key.to_owned());
                }
            } else {
                set.remove(key);
            }
        }
    }

    /// Entry `id` of stream `key`, of `size` bytes, now held by this node (read or claimed):
    /// the reader keeps it fresh, and its bytes count against [`Config::max_held_bytes`].
    pub(crate) fn hold(&self, key: &Arc<str>, id: &Arc<str>, size: usize) {
        let mut owned = self.owned.lock().unwrap_or_else(PoisonError::into_inner);
        let old = owned
            .entry(key.clone())
            .or_default()
            .insert(id.clone(), size)
            .unwrap_or(0);
        self.held_bytes.fetch_add(size, Ordering::Relaxed);
        self.held_bytes.fetch_sub(old, Ordering::Relaxed);
    }

    /// Entries of stream `key` no longer held by this node (acknowledged, given back or
    /// dropped): the readers stop refreshing them, and their bytes are released (waking the
    /// reader if that brings the node under [`Config::max_held_bytes`]).
    pub(crate) fn forget(&self, key: &Arc<str>, ids: &[Arc<str>]) {
        let mut owned = self.owned.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(set) = owned.get_mut(key) else {
            return;
        };
        let released: usize = ids.iter().filter_map(|id| set.remove(id)).sum();
        if set.is_empty() {
            owned.remove(key);
        }
        let before = self.held_bytes.fetch_sub(released, Ordering::Relaxed);
        drop(owned);
        let budget = self.held_budget.load(Ordering::Relaxed);
        if released > 0 && before >= budget && before - released < budget {
            self.wanted.notify();
        }
    }

    /// Bytes of the queue entries this node holds.
    pub(crate) fn held_bytes(&self) -> usize {
        self.held_bytes.load(Ordering::Relaxed)
    }

    /// The ids of the entries this node holds, per stream.
    pub(crate) fn owned_ids(&self) -> Vec<HeldIds> {
        self.owned
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(key, ids)| HeldIds {
                key: key.clone(),
                ids: ids.keys().cloned().collect(),
            })
            .collect()
    }

    /// The streams marked full.
    pub(crate) fn full_streams(&self) -> Vec<String> {
        self.full
            .lock()
            .map(|set| set.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// Counters of one node, for metrics. Cheap to clone; readable from any thread.
#[derive(Debug, Clone)]
pub struct RedisMetrics(Arc<NodeState>);

impl RedisMetrics {
    /// Connections to Redis re-established after a loss (all of the node's connections).
    pub fn reconnects(&self) -> u64 {
        self.0.reconnects.load(Ordering::Relaxed)
    }

    /// Whether the writer's connection is up: only the writer sets it. The writer checks an
    /// idle connection every second (`PING`), so this turns false within about a second of
    /// Redis going away, and true again once the writer has reconnected (SENDs or not). The
    /// node's other connections (pub/sub, queue readers) reconnect on their own; see
    /// [`RedisMetrics::reconnects`].
    pub fn connected(&self) -> bool {
        self.0.connected.load(Ordering::Relaxed)
    }

    /// SENDs accepted and not yet written to Redis.
    pub fn pending_sends(&self) -> usize {
        self.0.pending_sends.load(Ordering::Relaxed)
    }

    /// Bytes of the SENDs accepted and not yet written to Redis (encoded messages).
    pub fn pending_bytes(&self) -> usize {
        self.0.pending_bytes.load(Ordering::Relaxed)
    }

    /// Topic messages received twice (a PUBLISH written again after a timeout) and delivered
    /// once.
    pub fn duplicates(&self) -> u64 {
        self.0.duplicates.load(Ordering::Relaxed)
    }

    /// SENDs refused: backlog full, queue full (refused at once, or refused by Redis after
    /// being accepted: see the crate docs), or Redis answered with an error.
    pub fn send_failures(&self) -> u64 {
        self.0.send_failures.load(Ordering::Relaxed)
    }

    /// Topic messages not delivered to a local subscriber whose window was full, or dropped
    /// at this node because its events were not handled fast enough
    /// ([`RedisEvents::CAPACITY`] waiting).
    pub fn dropped(&self) -> u64 {
        self.0.dropped.load(Ordering::Relaxed)
    }

    /// Bytes of the queue entries this node holds: read or claimed from Redis and not yet
    /// acknowledged or given back (waiting for a local consumer, or delivered and not
    /// acknowledged). The reader reads nothing more while it is at [`Config::max_held_bytes`].
    pub fn held_bytes(&self) -> usize {
        self.0.held_bytes()
    }

    /// How the node finds Redis: `single` (`redis://…`), `sentinel`
    /// (`redis-sentinel://…`) or `cluster` (`redis-cluster://…`).
    pub fn mode(&self) -> &'static str {
        self.0.mode
    }

    /// The address (`host:port`) of the Redis the node's tasks last connected to: in
    /// Sentinel mode, the primary the sentinels named; in cluster mode, the primaries,
    /// comma-separated ([`RedisMetrics::primaries`]). `None` before the first connection.
    pub fn primary(&self) -> Option<String> {
        self.0
            .primary
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The primaries the node uses: the one of [`RedisMetrics::primary`], or in cluster
    /// mode every primary serving slots (as of the last check, every 500 ms).
    pub fn primaries(&self) -> Vec<String> {
        self.primary()
            .map(|list| list.split(',').map(str::to_owned).collect())
            .unwrap_or_default()
    }

    /// Times the node found the primary at another address than before (failovers seen; in
    /// cluster mode, times the set of primaries changed).
    pub fn failovers(&self) -> u64 {
        self.0.failovers.load(Ordering::Relaxed)
    }

    /// Times the writer's `WAIT` answered with fewer replicas than
    /// [`Config::replicas_ack`], so that it waited again before confirming the pipeline's
    /// SENDs.
    pub fn replica_waits(&self) -> u64 {
        self.0.replica_waits.load(Ordering::Relaxed)
    }

    /// Messages read from Redis that were not in this engine's format (skipped).
    pub fn malformed(&self) -> u64 {
        self.0.malformed.load(Ordering::Relaxed)
    }
}
