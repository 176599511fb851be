//! The background tasks that talk to Redis; the engine never awaits.
//!
//! [`crate::RedisEngine`] is synchronous (the [`wsx_stomp::Engine`] trait is). It hands work
//! to these tasks and gets [`crate::RedisEvent`]s back, which the I/O layer hands to
//! [`crate::RedisEngine::handle_event`]. A node has **three Redis connections**, whatever the
//! number of topics and queues:
//!
//! - the **writer** ([`writer`]): batches topic SENDs (a script giving each its offset,
//!   keeping the topic's history and publishing it), user-destination `PUBLISH`es, queue
//!   `XADD`s (a script), acknowledgements, requeues, `CLIENT UNBLOCK`s, the removal of empty
//!   queues and the reads of topic history for resumed subscriptions into pipelines; retries a pipeline after a connection loss or timeout, which never duplicates
//!   (see [`writer`]); reports the outcome of every SEND made with an origin;
//! - the **subscriber** ([`subscriber`]): the node's pub/sub connection, subscribed to one
//!   channel per topic with local subscribers;
//! - the **reader** ([`reader`]): one `XREADGROUP` over the streams of every queue with local
//!   consumers with room, reading no more entries per stream than the engine granted credit
//!   for; it keeps the entries this node holds fresh, records that this node consumes each
//!   queue, and takes over (bounded by credit) entries of dead nodes.
//!
//! ## Bounded hand-over
//!
//! Nothing between the engine and the tasks grows without bound:
//!
//! - SENDs go to the writer on a bounded channel, and are counted (messages and bytes)
//!   until written: past [`crate::Config::max_pending_sends`] or
//!   [`crate::Config::max_pending_bytes`] the engine refuses new ones (an ERROR to the client);
//! - everything else the engine asks of the tasks is a *state* they reconcile, in a
//!   [`Mailbox`]: the entries to acknowledge or give back (at most those the node holds, which
//!   credit bounds), the streams to read with their credit (one per queue with local
//!   consumers), the channels to be subscribed to (one per topic with local subscribers);
//! - what the tasks send the engine goes on a bounded channel ([`EVENTS_CAPACITY`]): the
//!   reader and the writer wait while it is full (queue entries are bounded by credit,
//!   confirmations by the pending SENDs); a topic message that finds it full is dropped at
//!   this node and counted ([`crate::RedisMetrics::dropped`]: topics are at most once).
//!
//! In cluster mode each of these is a cluster connection ([`Conn`], the subscriber's over
//! RESP3): one connection per primary, so a node has three per shard (and one more per shard
//! for the 500 ms check of the primaries, see [`primary`]), still whatever the number of
//! topics and queues.
//!
//! Every task reconnects with exponential backoff and counts re-established connections in
//! [`crate::RedisMetrics::reconnects`]. All of them stop when the engine is dropped.

mod conn;
pub(crate) mod primary;
pub(crate) mod reader;
mod scripts;
pub(crate) mod subscriber;
pub(crate) mod writer;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use redis::streams::StreamId;
use redis::{RedisResult, Value};
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::time::Instant;
use wsx_stomp::{Confirmation, Origin, SubscriberKey};

use crate::{Config, NodeState};
pub(crate) use conn::Conn;
pub(crate) use primary::Primary;

/// Events the tasks may have on their way to the engine before they wait (or, topic
/// messages, are dropped): [`crate::RedisEvents::CAPACITY`].
pub(crate) const EVENTS_CAPACITY: usize = 4096;

/// What the engine asks the writer to do, in order, on the bounded channel.
#[derive(Debug)]
pub(crate) enum Cmd {
    /// A topic SEND through the `TOPIC_PUBLISH` script ([`scripts::TOPIC_PUBLISH`]): gets
    /// its offset, kept in the topic's history, published with its offset.
    TopicPublish {
        /// The topic, `/topic/NAME`.
        destination: Arc<str>,
        channel: String,
        /// Its number among this engine's SENDs (they are written in that order).
        seq: u64,
        payload: Bytes,
        /// Whom to confirm the SEND to, once Redis answered.
        origin: Option<Origin>,
        /// Who waits for the offset (a server-side publish).
        reply: Option<oneshot::Sender<Result<u64, crate::Error>>>,
    },
    /// `PUBLISH channel payload` (a user destination SEND).
    Publish {
        channel: String,
        payload: Bytes,
        /// Whom to confirm the SEND to, once Redis answered.
        origin: Option<Origin>,
    },
    /// A queue SEND through the `XADD` script ([`scripts::XADD`]): refused when the stream
    /// holds [`Config::max_queue_len`] entries or [`Config::max_queue_bytes`] bytes.
    XAdd {
        key: String,
        /// Its number among this engine's SENDs (they are written in that order).
        seq: u64,
        /// The queue, `/queue/NAME`, for the log and the refusal.
        destination: Arc<str>,
        payload: Bytes,
        /// Whom to confirm the SEND to, once Redis answered.
        origin: Option<Origin>,
        /// Who waits until Redis stored it (a server-side publish: an HTTP publish's 202),
        /// told `Ok(0)` then.
        reply: Option<oneshot::Sender<Result<u64, crate::Error>>>,
    },
    /// Answer once everything sent before is done.
    Barrier(oneshot::Sender<()>),
}

impl Cmd {
    /// Whether it writes to Redis (a SEND; not a barrier).
    pub(crate) fn writes(&self) -> bool {
        !matches!(self, Cmd::Barrier(_))
    }

    /// The bytes this command counts against [`Config::max_pending_bytes`].
    pub(crate) fn size(&self) -> usize {
        match self {
            Cmd::Publish { payload, .. }
            | Cmd::XAdd { payload, .. }
            | Cmd::TopicPublish { payload, .. } => payload.len(),
            Cmd::Barrier(_) => 0,
        }
    }
}

/// What the tasks report, through [`crate::RedisEvent`].
#[derive(Debug)]
pub(crate) enum Incoming {
    /// A message on a topic channel.
    Topic(Bytes),
    /// A queue entry this node now owns (read or claimed).
    Entry {
        key: Arc<str>,
        id: Arc<str>,
        payload: Bytes,
        /// Taken over from another consumer (`XAUTOCLAIM`): delivered before.
        claimed: bool,
        /// The stream's entries on their way to the engine: the engine takes this one out
        /// ([`take`]) before it handles it, or ignores it when the reader gave it back.
        inflight: Inflight,
    },
    /// The outcomes of SENDs made with an origin, in the order they were written.
    Confirmed(Vec<Confirmation>),
    /// A page of a topic's history, read for a resumed subscription.
    History(HistoryPage),
}

/// A read of a topic's history for a resumed subscription ([`scripts::TOPIC_READ`]), on the
/// writer's connection.
#[derive(Debug, Clone)]
pub(crate) struct HistoryRead {
    /// The subscription it is for, and its number (a later subscription with the same key
    /// is another).
    pub key: SubscriberKey,
    pub epoch: u64,
    pub stream: String,
    pub meta: String,
    /// The first offset wanted; -1: the last one given out.
    pub from: i64,
    pub count: usize,
    /// The topic generation the subscriber must have applied first (the channel subscribed
    /// before the history is read, so that nothing falls between them).
    pub generation: u64,
}

/// What a [`HistoryRead`] found.
#[derive(Debug)]
pub(crate) struct HistoryPage {
    pub key: SubscriberKey,
    pub epoch: u64,
    /// What was read, or why Redis refused.
    pub result: Result<Page<Bytes>, String>,
}

/// A page of a topic's history: the last offset given out, the oldest retained (last + 1
/// when none is), and the entries read (offset, message as `M`).
#[derive(Debug)]
pub(crate) struct Page<M> {
    pub last: u64,
    pub oldest: u64,
    pub entries: Vec<(u64, M)>,
}

pub(crate) type Events = mpsc::Sender<Incoming>;

/// An entry the reader forwarded to the engine (see [`Inflight`]).
#[derive(Debug)]
pub(crate) struct Forwarded {
    /// Its place in the order the reader forwarded entries.
    pub order: u64,
    /// The stored message.
    pub payload: Bytes,
    /// Taken over from another consumer (`XAUTOCLAIM`).
    pub claimed: bool,
}

/// The entries of one stream the reader forwarded to the engine that the engine has not
/// taken yet, by entry id. Whoever removes an entry — the engine handling it, or the reader
/// giving everything left back once the engine stopped reading the stream — is responsible
/// for it.
pub(crate) type Inflight = Arc<Mutex<HashMap<Arc<str>, Forwarded>>>;

/// A queue entry as its stream holds it: id and stored message.
#[derive(Debug, Clone)]
pub(crate) struct StoredEntry {
    /// The stream entry id.
    pub id: Arc<str>,
    /// The stored message (see [`crate::codec`]).
    pub payload: Bytes,
}

/// An entry to acknowledge (and delete): id and the size of its stored message.
#[derive(Debug, Clone)]
pub(crate) struct EntryAck {
    /// The stream entry id.
    pub id: Arc<str>,
    /// The bytes of its stored message (the queue's byte count goes down by it).
    pub size: usize,
}

/// Take entry `id` out of `inflight`: whether it was still there (the engine now owns it).
/// `then` runs under the lock, so what it sends is sent before a stopped stream is released.
pub(crate) fn take<R>(inflight: &Inflight, id: &str, then: impl FnOnce(bool) -> R) -> R {
    let mut map = inflight.lock().unwrap_or_else(PoisonError::into_inner);
    then(map.remove(id).is_some())
}

/// A state shared by the engine and a task, and a wake-up for the task when it changed.
#[derive(Debug, Default)]
pub(crate) struct Mailbox<T> {
    state: Mutex<T>,
    changed: Notify,
}

impl<T> Mailbox<T> {
    /// The state, locked (never across an await).
    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wake the task (a wake-up given while it is busy is kept for its next wait).
    pub(crate) fn notify(&self) {
        self.changed.notify_one();
    }

    /// Resolves at the next wake-up.
    pub(crate) async fn changed(&self) {
        self.changed.notified().await;
    }
}

/// Entries of one stream to acknowledge.
#[derive(Debug)]
pub(crate) struct StreamAcks {
    /// The stream key.
    pub key: Arc<str>,
    /// Its entries to acknowledge.
    pub entries: Vec<EntryAck>,
}

/// Entries of one stream to give back: each added again (this payload) and the original
/// acknowledged.
#[derive(Debug)]
pub(crate) struct Requeue {
    /// The stream key.
    pub key: Arc<str>,
    /// The entries, with the payload to add.
    pub entries: Vec<StoredEntry>,
}

/// What the writer owes Redis besides SENDs. Bounded: entries to acknowledge or give back
/// are entries the node holds (credit bounds them), removals one per queue.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    /// Per stream key: entries to acknowledge (and delete).
    pub acks: HashMap<Arc<str>, Vec<EntryAck>>,
    /// Entries to give back to the group: a copy added, the original acknowledged.
    pub requeues: Vec<Requeue>,
    /// Redis client ids whose blocking read to end (`CLIENT UNBLOCK`).
    pub unblock: Vec<u64>,
    /// Streams to remove if still empty and unused (stream key to when).
    pub removals: HashMap<Arc<str>, Instant>,
    /// Topic history to read (at most one read per resumed subscription).
    pub reads: Vec<HistoryRead>,
}

impl Outbox {
    /// Whether there is anything to write now.
    pub(crate) fn has_work(&self, now: Instant) -> bool {
        !self.acks.is_empty()
            || !self.requeues.is_empty()
            || !self.unblock.is_empty()
            || self.removals.values().any(|due| *due <= now)
            || !self.reads.is_empty()
    }
}

impl Mailbox<Outbox> {
    /// Give entries back to the group of stream `key`.
    pub(crate) fn requeue(&self, key: Arc<str>, entries: Vec<StoredEntry>) {
        if entries.is_empty() {
            return;
        }
        self.lock().requeues.push(Requeue { key, entries });
        self.notify();
    }

    /// Acknowledge entries of stream `key`.
    pub(crate) fn ack(&self, key: &Arc<str>, entries: impl IntoIterator<Item = EntryAck>) {
        let mut outbox = self.lock();
        let list = outbox.acks.entry(key.clone()).or_default();
        let before = list.len();
        list.extend(entries);
        if list.len() == before {
            if list.is_empty() {
                outbox.acks.remove(key);
            }
            return;
        }
        drop(outbox);
        self.notify();
    }

    /// Read a page of topic history.
    pub(crate) fn read(&self, read: HistoryRead) {
        self.lock().reads.push(read);
        self.notify();
    }

    /// End the blocking read of Redis client `id`.
    pub(crate) fn unblock(&self, id: u64) {
        let mut outbox = self.lock();
        if !outbox.unblock.contains(&id) {
            outbox.unblock.push(id);
        }
        drop(outbox);
        self.notify();
    }
}

/// One stream the engine wants read.
#[derive(Debug)]
pub(crate) struct Want {
    /// Entries the reader may still read (or claim) for it.
    pub credit: usize,
    /// Its entries forwarded to the engine and not taken yet.
    pub inflight: Inflight,
    /// Dropped once the stream is released (see [`Wanted::stopped`]).
    pub _done: watch::Sender<()>,
}

/// The streams the reader reads for the engine (one per queue with local consumers), and
/// those the engine stopped reading, which the reader releases: it gives back what it still
/// has of them, then drops their `done`.
#[derive(Debug, Default)]
pub(crate) struct Wanted {
    pub streams: HashMap<Arc<str>, Want>,
    pub stopped: Vec<StoppedStream>,
}

/// A stream the engine stopped reading, for the reader to release.
#[derive(Debug)]
pub(crate) struct StoppedStream {
    /// The stream key.
    pub key: Arc<str>,
    /// What the engine wanted of it.
    pub want: Want,
}

/// The channels the subscriber is to be subscribed to, and a generation counter the engine
/// bumps on every change (the subscriber reports the last generation applied).
#[derive(Debug, Default)]
pub(crate) struct Topics {
    pub channels: HashSet<String>,
    pub generation: u64,
}

/// Connect with backoff until it works or the engine goes away (`None`), to the current
/// primary ([`Primary::connect`]: asked again at every try), or to the cluster.
pub(crate) async fn connect(
    primary: &Primary,
    config: &Config,
    shared: &NodeState,
    response_timeout: Option<Duration>,
    shutdown: &mut watch::Receiver<()>,
    what: &str,
) -> Option<Conn> {
    let mut delay = config.backoff_min;
    loop {
        match primary.connect(shared, response_timeout).await {
            Ok(conn) => return Some(conn),
            Err(error) => {
                tracing::debug!(%error, what, "redis connect failed; retrying in {delay:?}");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.changed() => return None,
        }
        delay = (delay * 2).min(primary.backoff_max(config));
    }
}

/// The error of a command's reply, if it is one.
pub(crate) fn is_server_error(result: &RedisResult<Value>) -> Option<String> {
    match result {
        Ok(Value::ServerError(e)) => Some(format!("{e:?}")),
        Err(e) => Some(e.to_string()),
        Ok(_) => None,
    }
}

/// The stored message of an entry (empty when it has none: the engine reports and
/// acknowledges it).
pub(crate) fn entry_payload(entry: &StreamId) -> Bytes {
    match entry.map.get("m") {
        Some(Value::BulkString(b)) => Bytes::copy_from_slice(b),
        _ => Bytes::new(),
    }
}

/// A name for the log: control characters escaped.
pub(crate) fn loggable(name: &str) -> String {
    name.escape_debug().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_reach_the_log_without_control_characters() {
        let logged = loggable("/queue/a\nFAKE LINE\u{1b}[31m\r\0");
        assert!(!logged.chars().any(char::is_control), "{logged}");
        assert_eq!(loggable("/queue/plain-name"), "/queue/plain-name");
    }

    #[test]
    fn the_outbox_coalesces_acks_and_unblocks_per_stream() {
        let outbox: Mailbox<Outbox> = Mailbox::default();
        let key: Arc<str> = Arc::from("wsx:q:a");
        let ack = |id: &str, size| EntryAck {
            id: Arc::from(id),
            size,
        };
        outbox.ack(&key, [ack("1-0", 10)]);
        outbox.ack(&key, [ack("2-0", 20)]);
        outbox.ack(&key, []);
        outbox.unblock(7);
        outbox.unblock(7);
        let now = Instant::now();
        let state = outbox.lock();
        assert_eq!(state.acks.len(), 1);
        assert_eq!(state.acks[&key].len(), 2);
        assert_eq!(state.unblock, vec![7]);
        assert!(state.has_work(now));
    }
}
