//! [`RedisEngine`]: the synchronous side, called by the sessions through the
//! [`wsx_stomp::Engine`] trait, and fed what Redis sends back through
//! [`RedisEngine::handle_event`]: deliveries for the local subscribers, and the
//! [`wsx_stomp::Confirmation`]s of the SENDs the sessions made (the writer reports each once
//! Redis has answered it), which the I/O layer hands to [`wsx_stomp::Broker::confirm`].
//!
//! It keeps the local picture: topic subscribers per topic (to know when to subscribe the
//! node's pub/sub connection, and whom to fan out to), queue consumers with their windows and
//! the messages they hold, the entries fetched but not yet handed out — all in a
//! [`wsx_stomp::ConsumerSet`], the bookkeeping shared with the in-memory engine, each
//! message tagged with its stream entry — and, per queue, its stream key, its reader and how
//! many entries it asked the reader for (credit). Everything that needs Redis is a command to
//! the tasks of [`crate::connections`].

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};
use wsx_stomp::{
    Confirmation, Delivery, Destination, DestinationKind, Engine, Message, MessageId, Origin,
    Outcome, Publish, Selector, StreamStart, SubscriberKey,
};
use wsx_stomp::{ConsumerSet, Held};

use crate::codec::Sequence;
use crate::connections::{
    self, Cmd, EntryAck, HistoryPage, HistoryRead, Incoming, StoredEntry, loggable,
};
use crate::resumed::{READ_PAGE, ReadWanted, ResumedSet};
use crate::{Config, Error, NodeState, RedisMetrics, codec};

/// Something Redis sent to this node; pass it to [`RedisEngine::handle_event`].
#[derive(Debug)]
pub struct RedisEvent(Incoming);

/// The stream of [`RedisEvent`]s of one engine (bounded: the tasks wait while it is full).
/// Ends when the engine is dropped.
#[derive(Debug)]
pub struct RedisEvents(mpsc::Receiver<Incoming>);

impl RedisEvents {
    /// Events that may wait here: past it the node's tasks wait, and topic messages are
    /// dropped (counted in [`RedisMetrics::dropped`]).
    pub const CAPACITY: usize = connections::EVENTS_CAPACITY;

    /// The next event; `None` once the engine and its tasks are gone.
    pub async fn recv(&mut self) -> Option<RedisEvent> {
        self.0.recv().await.map(RedisEvent)
    }

    /// The next event if one is waiting.
    pub fn try_recv(&mut self) -> Option<RedisEvent> {
        self.0.try_recv().ok().map(RedisEvent)
    }
}

/// The tag of a message this node holds: its stream entry when it came from a queue, `None`
/// for a topic message.
type Entry = Option<StoredEntry>;

/// A queue with local consumers: its stream, and what the reader reads of it.
#[derive(Debug)]
struct Queue {
    key: Arc<str>,
    /// Entries asked of the reader and not received yet.
    requested: usize,
    /// The entries the reader forwarded, not handled yet.
    inflight: connections::Inflight,
    /// Closed once the reader released the stream after it was stopped.
    done: watch::Receiver<()>,
}

/// Publishers (in cluster mode, publisher and slot pairs) whose last sequence number a node
/// remembers (to drop topic messages written twice); past this many, it forgets them all (a
/// duplicate may then pass once).
const MAX_SEEN_WRITERS: usize = 16_384;

/// The Redis-backed engine of one node. See the crate docs for the guarantees.
pub struct RedisEngine {
    config: Arc<Config>,
    shared: Arc<NodeState>,
    writer: mpsc::Sender<Cmd>,
    /// The last generation of the topic set the subscriber applied.
    topics_applied: watch::Receiver<u64>,
    // Dropping it stops every task.
    _stop: watch::Sender<()>,
    /// This start of the engine (random), in the sequence of every message it writes.
    incarnation: u64,
    next_id: u64,
    /// Per writer incarnation and hash slot of the channel (0 outside cluster mode), the
    /// last topic message sequence number delivered. Per slot in a cluster: messages of one
    /// writer reach a node in order per shard, not across shards.
    seen: HashMap<(u64, u16), u64>,
    /// Local subscriptions, windows, and the messages fetched or held.
    set: ConsumerSet<Entry>,
    /// Queues with local consumers (exactly those with consumers in `set`).
    queues: HashMap<Arc<str>, Queue>,
    /// Streams stopped and perhaps not released yet (see [`RedisEngine::flushed`]).
    stopping: Vec<watch::Receiver<()>>,
    /// Topic subscriptions resumed from an offset.
    resumed: ResumedSet,
}

impl std::fmt::Debug for RedisEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisEngine")
            .field("node_id", &self.config.node_id)
            .field("topics", &self.set.topic_count())
            .field("queues", &self.queues.len())
            .finish_non_exhaustive()
    }
}

impl RedisEngine {
    /// Start a node's engine: spawn its background tasks on the current tokio runtime. Does
    /// not wait for Redis: the tasks connect (and keep reconnecting) on their own, and SENDs
    /// wait for them (see [`Config::max_pending_sends`]). Feed the returned events to
    /// [`RedisEngine::handle_event`].
    pub fn start(config: Config) -> Result<(RedisEngine, RedisEvents), Error> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let primary = connections::Primary::from_url(&config.url)?;
        if primary.is_cluster() {
            if config.replicas_ack > 0 {
                return Err(Error::Unsupported(
                    "--redis-replicas-ack with a Redis Cluster (WAIT is per primary; not \
                     implemented yet)"
                        .to_owned(),
                ));
            }
            if config.prefix.contains(['{', '}']) {
                return Err(Error::Unsupported(
                    "a key prefix with `{` or `}` with a Redis Cluster (the keys of a \
                     destination would not share a hash slot)"
                        .to_owned(),
                ));
            }
        }
        let config = Arc::new(config);
        let shared = Arc::new(NodeState {
            mode: primary.mode(),
            ..NodeState::default()
        });
        shared
            .held_budget
            .store(config.max_held_bytes, Ordering::Relaxed);
        let incarnation = crate::random_u64();
        let (stop, shutdown) = watch::channel(());
        let (events, events_rx) = mpsc::channel(connections::EVENTS_CAPACITY);
        // Room for every SEND the limits let wait, and a few barriers.
        let (writer, writer_rx) = mpsc::channel(config.max_pending_sends.saturating_add(64));
        let (applied, topics_applied) = watch::channel(0);
        runtime.spawn(
            connections::writer::Writer {
                primary: primary.clone(),
                config: config.clone(),
                shared: shared.clone(),
                rx: writer_rx,
                events: events.clone(),
                shutdown: shutdown.clone(),
                incarnation: format!("{incarnation:016x}"),
                timeout: config.write_timeout,
                applied: topics_applied.clone(),
            }
            .run(),
        );
        runtime.spawn(
            connections::subscriber::Subscriber {
                primary: primary.clone(),
                config: config.clone(),
                shared: shared.clone(),
                events: events.clone(),
                applied,
                shutdown: shutdown.clone(),
            }
            .run(),
        );
        runtime.spawn(connections::primary::watch(
            primary.clone(),
            shared.clone(),
            shutdown.clone(),
        ));
        runtime.spawn(
            connections::reader::Reader {
                primary,
                config: config.clone(),
                shared: shared.clone(),
                events,
                client_id: Arc::new(AtomicU64::new(0)),
                largest: AtomicUsize::new(0),
                shutdown,
            }
            .run(),
        );
        let engine = RedisEngine {
            config,
            shared,
            writer,
            topics_applied,
            _stop: stop,
            incarnation,
            next_id: 0,
            seen: HashMap::new(),
            set: ConsumerSet::new(),
            queues: HashMap::new(),
            stopping: Vec::new(),
            resumed: ResumedSet::default(),
        };
        Ok((engine, RedisEvents(events_rx)))
    }

    /// This node's id (its consumer name in the queue groups).
    pub fn node_id(&self) -> &str {
        &self.config.node_id
    }

    /// The node's counters (reconnects, refused SENDs, ...).
    pub fn metrics(&self) -> RedisMetrics {
        RedisMetrics(self.shared.clone())
    }

    /// Resolves once every command issued so far has been carried out by Redis: SENDs written,
    /// ACKs applied, topic (un)subscriptions active, and the queue entries of queues left by
    /// their last local consumer given back to the group — those the engine held, and those
    /// the reader was still fetching (it waits for the reader to release these streams, a
    /// moment: its blocking read is interrupted). Then no entry of a queue without local
    /// consumers is pending at this node. It does not borrow the engine.
    pub fn flushed(&self) -> impl Future<Output = ()> + Send + use<> {
        let generation = self.shared.topics.lock().generation;
        let mut applied = self.topics_applied.clone();
        let stopping: Vec<watch::Receiver<()>> = self
            .stopping
            .iter()
            .filter(|done| done.has_changed().is_ok())
            .cloned()
            .collect();
        let writer = self.writer.clone();
        async move {
            for mut done in stopping {
                // The reader never sends: this ends (with an error) once it is released.
                while done.changed().await.is_ok() {}
            }
            // Behind the entries the reader gave back.
            let (tx, rx) = oneshot::channel();
            if writer.send(Cmd::Barrier(tx)).await.is_ok() {
                let _ = rx.await;
            }
            let _ = applied.wait_for(|g| *g >= generation).await;
        }
    }

    /// Messages held for queue consumers of `destination` on this node, fetched and not
    /// acknowledged yet (handed out or waiting for room).
    pub fn queue_held(&self, destination: &str) -> usize {
        self.set.queue_held(destination)
    }

    /// Local subscriptions on `destination`.
    pub fn subscriber_count(&self, destination: &str) -> usize {
        self.set.subscriber_count(destination)
    }

    /// Publish, or refuse with [`Error::Backlog`] when too many SENDs already wait for Redis,
    /// or with [`Error::QueueFull`] when the queue is known to be at [`Config::max_queue_len`]
    /// (the session should answer the SEND with an ERROR). Accepted SENDs are written to Redis
    /// as soon as it is reachable; local subscribers get the message through Redis like every
    /// other node's. Nobody is told whether Redis stored it (a failure is counted in
    /// [`RedisMetrics::send_failures`] and logged): [`RedisEngine::offer_from`] reports it.
    pub fn offer(&mut self, publish: Publish) -> Result<(), Error> {
        self.offer_inner(publish, None, None)
    }

    /// [`RedisEngine::offer`], and once Redis has answered the write, a
    /// [`Confirmation`] for `origin` among the events ([`RedisEngine::handle_event`]):
    /// [`Confirmation::Stored`] when Redis stored the message (the `PUBLISH` returned, the
    /// queue's `XADD` script returned the new length), [`Confirmation::Failed`] when it refused
    /// it (the queue was found full: another node filled it first) or answered an error. A SEND
    /// accepted while Redis is down is confirmed when it is finally written. A refusal at once
    /// (`Err`) gets no confirmation.
    pub fn offer_from(&mut self, publish: Publish, origin: Origin) -> Result<(), Error> {
        self.offer_inner(publish, Some(origin), None)
    }

    /// [`RedisEngine::offer`] of a queue message (`/queue/NAME`), resolving once Redis stored
    /// it (to `Ok(0)`; a queue has no offsets) or refused it (the error: the queue was found
    /// full, say). Other destinations are refused with [`Error::Redis`].
    pub fn offer_stored(
        &mut self,
        publish: Publish,
    ) -> Result<oneshot::Receiver<Result<u64, Error>>, Error> {
        self.offer_answered(publish, DestinationKind::Queue)
    }

    /// [`RedisEngine::offer`] of a topic message (`/topic/NAME`), resolving to its offset
    /// once Redis stored it (or to the error Redis answered; an offset of 0 when it was
    /// stored by an earlier try of a pipeline written again and its offset is not known).
    /// Other destinations are refused with [`Error::Redis`].
    pub fn offer_with_offset(
        &mut self,
        publish: Publish,
    ) -> Result<oneshot::Receiver<Result<u64, Error>>, Error> {
        self.offer_answered(publish, DestinationKind::Topic)
    }

    /// [`RedisEngine::offer`] of a message to a destination of `kind` whose outcome someone
    /// awaits: the receiver gets Redis's answer.
    fn offer_answered(
        &mut self,
        publish: Publish,
        kind: DestinationKind,
    ) -> Result<oneshot::Receiver<Result<u64, Error>>, Error> {
        if publish.destination.kind() != kind {
            return Err(Error::Redis(format!(
                "{} is not a {kind:?} destination",
                publish.destination
            )));
        }
        let (tx, rx) = oneshot::channel();
        self.offer_inner(publish, None, Some(tx))?;
        Ok(rx)
    }

    fn offer_inner(
        &mut self,
        publish: Publish,
        origin: Option<Origin>,
        reply: Option<oneshot::Sender<Result<u64, Error>>>,
    ) -> Result<(), Error> {
        let pending = self.shared.pending_sends.load(Ordering::Relaxed);
        if pending >= self.config.max_pending_sends {
            return Err(Error::Backlog(pending));
        }
        let stream = match publish.destination.kind() {
            DestinationKind::Topic | DestinationKind::User => None,
            // Application handlers answer these in the I/O layer, before the engine.
            DestinationKind::App => {
                return Err(Error::NoHandler(publish.destination.as_str().to_owned()));
            }
            DestinationKind::Queue => {
                let key = self.config.stream_key(publish.destination.name());
                if self.shared.is_full(&key) {
                    return Err(Error::QueueFull {
                        destination: publish.destination.as_str().to_owned(),
                        limit: self.config.max_queue_len,
                    });
                }
                Some(key)
            }
        };
        let sequence = Sequence {
            incarnation: self.incarnation,
            seq: self.next_id + 1,
        };
        let id = MessageId::new(format!("{}-{}", self.config.node_id, sequence.seq));
        // Only topic messages need the sequence (receivers drop a PUBLISH written twice; the
        // XADD script makes queue SENDs idempotent itself): queue entries keep the format
        // every version of this engine reads.
        let payload = codec::encode(&id, stream.is_none().then_some(sequence), &publish)?;
        let bytes = self.shared.pending_bytes.load(Ordering::Relaxed);
        if pending > 0 && bytes.saturating_add(payload.len()) > self.config.max_pending_bytes {
            return Err(Error::BacklogBytes(bytes));
        }
        let size = payload.len();
        let cmd = match stream {
            None if publish.destination.kind() == DestinationKind::Topic => Cmd::TopicPublish {
                destination: publish.destination.shared().clone(),
                channel: self.channel(&publish.destination),
                seq: sequence.seq,
                payload,
                origin,
                reply,
            },
            None => Cmd::Publish {
                channel: self.channel(&publish.destination),
                payload,
                origin,
            },
            Some(key) => Cmd::XAdd {
                key,
                seq: sequence.seq,
                destination: publish.destination.shared().clone(),
                payload,
                origin,
                reply,
            },
        };
        self.shared.pending_sends.fetch_add(1, Ordering::Relaxed);
        self.shared.pending_bytes.fetch_add(size, Ordering::Relaxed);
        if self.writer.try_send(cmd).is_err() {
            self.shared.pending_sends.fetch_sub(1, Ordering::Relaxed);
            self.shared.pending_bytes.fetch_sub(size, Ordering::Relaxed);
            return Err(Error::Backlog(pending));
        }
        self.next_id += 1;
        Ok(())
    }

    /// Handle what Redis sent: the deliveries it causes go to `out` (then to
    /// [`wsx_stomp::Broker::deliver`]), the outcomes of SENDs made with an origin
    /// ([`Engine::try_publish_from`], [`RedisEngine::offer_from`]) to `confirmations` (then to
    /// [`wsx_stomp::Broker::confirm`], after the deliveries).
    pub fn handle_event(
        &mut self,
        event: RedisEvent,
        out: &mut Vec<Delivery>,
        confirmations: &mut Vec<Confirmation>,
    ) {
        match event.0 {
            Incoming::Confirmed(confirmed) => confirmations.extend(confirmed),
            Incoming::Topic(payload) => self.on_topic(payload, out),
            Incoming::History(page) => self.on_history(page, out),
            Incoming::Entry {
                key,
                id,
                payload,
                claimed,
                inflight,
            } => self.on_entry(key, id, payload, claimed, &inflight, out),
        }
    }

    /// The pub/sub channel of a topic (`{prefix}t:NAME`) or a user destination
    /// (`{prefix}u:PRINCIPAL/queue/NAME`); in cluster mode a shard channel, its name with a
    /// hash tag (`{prefix}t:{NAME}`: the slot of the topic's keys).
    fn channel(&self, destination: &Destination) -> String {
        let prefix = &self.config.prefix;
        match destination.as_str().strip_prefix("/user/") {
            Some(user_path) if destination.kind() == DestinationKind::User => {
                format!("{prefix}u:{}", self.config.tagged(user_path))
            }
            _ => format!("{prefix}t:{}", self.config.tagged(destination.name())),
        }
    }

    fn stream_key(&self, destination: &Destination) -> String {
        self.config.stream_key(destination.name())
    }

    /// Whether a topic message was delivered already (a `PUBLISH` written twice).
    fn seen_before(&mut self, sequence: Option<Sequence>, destination: &Destination) -> bool {
        let Some(sequence) = sequence else {
            return false;
        };
        let slot = if self.config.is_cluster() {
            crate::cluster_url::key_slot(self.channel(destination).as_bytes())
        } else {
            0
        };
        let seen_key = (sequence.incarnation, slot);
        if self.seen.len() >= MAX_SEEN_WRITERS && !self.seen.contains_key(&seen_key) {
            self.seen.clear();
        }
        let last = self.seen.entry(seen_key).or_insert(0);
        if sequence.seq <= *last {
            return true;
        }
        *last = sequence.seq;
        false
    }

    /// Ask the writer for a page of a topic's history.
    fn read_history(&self, wanted: ReadWanted) {
        let name = wanted
            .topic
            .strip_prefix("/topic/")
            .unwrap_or(&wanted.topic);
        self.shared.outbox.read(HistoryRead {
            key: wanted.key,
            epoch: wanted.epoch,
            stream: self.config.topic_stream_key(name),
            meta: self.config.topic_meta_key(name),
            from: wanted.from,
            count: READ_PAGE,
            generation: wanted.generation,
        });
    }

    fn on_history(&mut self, page: HistoryPage, out: &mut Vec<Delivery>) {
        let result = page.result.map(|page| {
            let entries = page
                .entries
                .into_iter()
                .filter_map(|(offset, payload)| match codec::decode(payload) {
                    Ok(wire) => Some((
                        offset,
                        Arc::new(Message::with_offset(wire.id, wire.publish, offset)),
                    )),
                    Err(error) => {
                        self.shared.malformed.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(%error, "skipped a topic history entry");
                        None
                    }
                })
                .collect();
            connections::Page {
                last: page.last,
                oldest: page.oldest,
                entries,
            }
        });
        if let Some(wanted) =
            self.resumed
                .on_page(&page.key, page.epoch, result, &mut self.set, out)
        {
            self.read_history(wanted);
        }
    }

    fn on_topic(&mut self, payload: Bytes, out: &mut Vec<Delivery>) {
        let (offset, payload) = match codec::split_offset(payload) {
            Ok(split) => split,
            Err(error) => {
                self.shared.malformed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%error, "skipped a topic message");
                return;
            }
        };
        let wire = match codec::decode(payload) {
            Ok(wire) => wire,
            Err(error) => {
                self.shared.malformed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%error, "skipped a topic message");
                return;
            }
        };
        let destination = wire.publish.destination.clone();
        if self.set.subscriber_count(destination.as_str()) == 0 {
            return;
        }
        if self.seen_before(wire.sequence, &destination) {
            self.shared.duplicates.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let message = Arc::new(match offset {
            Some(offset) => Message::with_offset(wire.id, wire.publish, offset),
            None => Message::new(wire.id, wire.publish),
        });
        let skipped = self.set.fan_out(destination.as_str(), &message, None, out);
        if skipped > 0 {
            self.shared.dropped.fetch_add(skipped, Ordering::Relaxed);
        }
        if let Some(offset) = offset {
            let reads =
                self.resumed
                    .on_live(destination.as_str(), offset, &message, &mut self.set, out);
            for wanted in reads {
                self.read_history(wanted);
            }
        }
    }

    fn on_entry(
        &mut self,
        key: Arc<str>,
        id: Arc<str>,
        payload: Bytes,
        claimed: bool,
        inflight: &connections::Inflight,
        out: &mut Vec<Delivery>,
    ) {
        let wire = codec::decode(payload.clone());
        let local = wire
            .as_ref()
            .is_ok_and(|wire| self.queues.contains_key(wire.publish.destination.as_str()));
        let shared = &self.shared;
        let taken = connections::take(inflight, &id, |taken| {
            if taken && !local {
                // A foreign entry is dropped; one of a queue without local consumer (any
                // more) goes back to the group. Handed to the writer under the lock: if the
                // stream is being released, before it is (see `flushed`).
                shared.forget(&key, std::slice::from_ref(&id));
                match &wire {
                    Err(_) => shared.outbox.ack(
                        &key,
                        [EntryAck {
                            id: id.clone(),
                            size: payload.len(),
                        }],
                    ),
                    Ok(_) => shared.outbox.requeue(
                        key.clone(),
                        vec![StoredEntry {
                            id: id.clone(),
                            payload: requeued_payload(&payload, claimed),
                        }],
                    ),
                }
            }
            taken
        });
        if !taken {
            // The reader was stopped and gave it back itself.
            return;
        }
        let wire = match wire {
            Ok(wire) => wire,
            Err(error) => {
                self.shared.malformed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%error, key = loggable(&key), id = &*id, "dropped a foreign stream entry");
                return;
            }
        };
        let destination = wire.publish.destination.clone();
        let Some(queue) = self.queues.get_mut(destination.as_str()) else {
            return; // given back above
        };
        if Arc::ptr_eq(inflight, &queue.inflight) {
            // Not an entry of a previous reader of the queue, stopped since.
            queue.requested = queue.requested.saturating_sub(1);
        }
        let held = Held::new(
            Arc::new(Message::new(wire.id, wire.publish)),
            Some(StoredEntry { id, payload }),
        );
        self.set
            .enqueue(&destination, held, wire.redelivered || claimed);
        self.dispatch(destination.as_str(), out);
    }

    fn ack_entries(&self, key: &Arc<str>, entries: Vec<StoredEntry>) {
        if entries.is_empty() {
            return;
        }
        let ids: Vec<Arc<str>> = entries.iter().map(|entry| entry.id.clone()).collect();
        self.shared.forget(key, &ids);
        self.shared.outbox.ack(
            key,
            entries.into_iter().map(|entry| EntryAck {
                size: entry.payload.len(),
                id: entry.id,
            }),
        );
    }

    /// Hand ready entries of queue `name` to consumers with room, round-robin; then ask the
    /// reader for as many more as there is room.
    fn dispatch(&mut self, name: &str, out: &mut Vec<Delivery>) {
        let Some(queue) = self.queues.get_mut(name) else {
            return;
        };
        // Only consumers subscribed without a window (`max_unacked: None`) are acknowledged
        // at dispatch; windowed ones when they ACK (see `Engine::ack`).
        let auto_acked: Vec<StoredEntry> =
            self.set.dispatch(name, out).into_iter().flatten().collect();
        // Room left: ask the reader for that many entries (beyond those already asked for).
        let room = self.set.room(name, self.config.prefetch);
        let want = room.saturating_sub(self.set.queue_depth(name));
        if want > queue.requested {
            connections::reader::grant(&self.shared, &queue.key, want - queue.requested);
            queue.requested = want;
        }
        let key = queue.key.clone();
        self.ack_entries(&key, auto_acked);
    }
}

/// How long after the grace period an empty queue's removal is tried: this node's last
/// record of consuming it is then surely older than the grace period.
const REMOVAL_MARGIN: std::time::Duration = std::time::Duration::from_millis(250);

impl RedisEngine {
    /// Subscribe the node's pub/sub connection to `channel`, or not.
    fn set_topic(&self, channel: String, on: bool) {
        let mut topics = self.shared.topics.lock();
        if on {
            topics.channels.insert(channel);
        } else {
            topics.channels.remove(&channel);
        }
        topics.generation += 1;
        drop(topics);
        self.shared.topics.notify();
    }
}

/// The payload to add when giving an entry back: marked redelivered when it was delivered.
fn requeued_payload(payload: &Bytes, delivered: bool) -> Bytes {
    if delivered {
        codec::mark_redelivered(payload)
    } else {
        payload.clone()
    }
}

impl Engine for RedisEngine {
    fn subscribe(
        &mut self,
        key: SubscriberKey,
        destination: &Destination,
        max_unacked: Option<usize>,
        out: &mut Vec<Delivery>,
    ) {
        // Never fails without a selector.
        let _ = self.subscribe_with_selector(key, destination, max_unacked, None, out);
    }

    /// Selectors work on topics (each node filters what it fans out). On queues they are
    /// refused with [`wsx_stomp::Error::Unsupported`]: a node fetches entries for its consumers
    /// as a whole, and would hold back from the other nodes entries none of its consumers
    /// selects.
    fn subscribe_with_selector(
        &mut self,
        key: SubscriberKey,
        destination: &Destination,
        max_unacked: Option<usize>,
        selector: Option<Selector>,
        out: &mut Vec<Delivery>,
    ) -> Result<(), wsx_stomp::Error> {
        if selector.is_some() && destination.kind() == DestinationKind::Queue {
            return Err(wsx_stomp::Error::Unsupported(format!(
                "selectors on queues ({destination}) with the redis engine; use a topic"
            )));
        }
        if destination.kind() == DestinationKind::App {
            return Err(wsx_stomp::Error::Unsupported(format!(
                "subscriptions to {destination}: /app/ destinations take SEND frames only"
            )));
        }
        if self.set.contains(&key) {
            self.unsubscribe(&key, out);
        }
        let local = self
            .set
            .subscribe_with_selector(key, destination, max_unacked, selector);
        match destination.kind() {
            // User destinations fan out like topics, on every node.
            DestinationKind::Topic | DestinationKind::User => {
                if local == 1 {
                    self.set_topic(self.channel(destination), true);
                }
            }
            DestinationKind::App => {}
            DestinationKind::Queue => {
                let name = destination.shared();
                if !self.queues.contains_key(name) {
                    let stream: Arc<str> = Arc::from(self.stream_key(destination));
                    let connections::reader::Started { inflight, done } =
                        connections::reader::start(&self.shared, stream.clone());
                    self.queues.insert(
                        name.clone(),
                        Queue {
                            key: stream,
                            requested: 0,
                            inflight,
                            done,
                        },
                    );
                }
                self.dispatch(name, out);
            }
        }
        Ok(())
    }

    /// A resumed topic subscription is fed from the topic's history (read on the writer's
    /// connection once its channel is subscribed) and then from the live messages: see
    /// the crate docs, *Topics*.
    fn subscribe_at(
        &mut self,
        key: SubscriberKey,
        destination: &Destination,
        max_unacked: Option<usize>,
        selector: Option<Selector>,
        start: StreamStart,
        out: &mut Vec<Delivery>,
    ) -> Result<(), wsx_stomp::Error> {
        if start == StreamStart::Next || destination.kind() != DestinationKind::Topic {
            return self.subscribe_with_selector(key, destination, max_unacked, selector, out);
        }
        self.subscribe_with_selector(key.clone(), destination, max_unacked, selector, out)?;
        self.set.set_fed(&key, true);
        let generation = self.shared.topics.lock().generation;
        let wanted = self
            .resumed
            .add(key, destination.shared().clone(), start, generation);
        self.read_history(wanted);
        Ok(())
    }

    fn unsubscribe(&mut self, key: &SubscriberKey, out: &mut Vec<Delivery>) {
        self.resumed.remove(key);
        let Some(destination) = self.set.unsubscribe(key) else {
            return;
        };
        let name = destination.as_str();
        let left = self.set.subscriber_count(name);
        match destination.kind() {
            DestinationKind::Topic | DestinationKind::User => {
                if left == 0 {
                    self.set_topic(self.channel(&destination), false);
                }
            }
            DestinationKind::Queue if left == 0 => {
                // The last local consumer left: give what this node holds back to the group,
                // and stop the reader.
                let held = self.set.take_queue(name);
                let stream = match self.queues.remove(name) {
                    Some(queue) => {
                        connections::reader::stop(&self.shared, &queue.key);
                        self.stopping.retain(|done| done.has_changed().is_ok());
                        self.stopping.push(queue.done);
                        queue.key
                    }
                    None => Arc::from(self.stream_key(&destination)),
                };
                // Removed after the grace period if nobody uses it by then.
                let due =
                    tokio::time::Instant::now() + self.config.empty_queue_grace + REMOVAL_MARGIN;
                self.shared
                    .outbox
                    .lock()
                    .removals
                    .insert(stream.clone(), due);
                self.shared.outbox.notify();
                // Marked redelivered if handed out (a consumer's unacknowledged messages).
                let entries: Vec<StoredEntry> = held
                    .into_iter()
                    .filter_map(|(held, redelivered)| {
                        held.tag.map(|entry| StoredEntry {
                            payload: requeued_payload(&entry.payload, redelivered),
                            id: entry.id,
                        })
                    })
                    .collect();
                if !entries.is_empty() {
                    let ids: Vec<Arc<str>> = entries.iter().map(|entry| entry.id.clone()).collect();
                    self.shared.forget(&stream, &ids);
                    self.shared.outbox.requeue(stream, entries);
                }
            }
            DestinationKind::Queue => self.dispatch(name, out),
            DestinationKind::App => {}
        }
    }

    fn publish(&mut self, message: Publish, _out: &mut Vec<Delivery>) {
        let destination = message.destination.clone();
        if let Err(error) = self.offer(message) {
            self.shared.send_failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                error = loggable(&error.to_string()),
                destination = loggable(destination.as_str()),
                "SEND refused"
            );
        }
    }

    fn try_publish(
        &mut self,
        message: Publish,
        _out: &mut Vec<Delivery>,
    ) -> Result<(), wsx_stomp::Error> {
        self.offer(message).map_err(|error| {
            self.shared.send_failures.fetch_add(1, Ordering::Relaxed);
            wsx_stomp::Error::Refused(error.to_string())
        })
    }

    /// Accepted SENDs are [`Outcome::Pending`]: the writer confirms each once Redis has
    /// answered it ([`RedisEngine::offer_from`]), through [`RedisEngine::handle_event`].
    fn try_publish_from(
        &mut self,
        message: Publish,
        origin: Origin,
        _out: &mut Vec<Delivery>,
    ) -> Result<Outcome, wsx_stomp::Error> {
        match self.offer_from(message, origin) {
            Ok(()) => Ok(Outcome::Pending),
            Err(error) => {
                self.shared.send_failures.fetch_add(1, Ordering::Relaxed);
                Err(wsx_stomp::Error::Refused(error.to_string()))
            }
        }
    }

    fn ack(&mut self, key: &SubscriberKey, ids: &[MessageId], out: &mut Vec<Delivery>) {
        let Some((destination, acked)) = self.set.ack(key, ids) else {
            return;
        };
        if self.resumed.contains(key)
            && let Some(wanted) = self.resumed.on_room(key, &mut self.set, out)
        {
            self.read_history(wanted);
        }
        if destination.kind() == DestinationKind::Queue {
            let name = destination.as_str();
            let entries: Vec<StoredEntry> = acked.into_iter().filter_map(|h| h.tag).collect();
            if let Some(queue) = self.queues.get(name) {
                let stream = queue.key.clone();
                self.ack_entries(&stream, entries);
            }
            self.dispatch(name, out);
        }
    }

    fn nack(&mut self, key: &SubscriberKey, ids: &[MessageId], out: &mut Vec<Delivery>) {
        match self.set.nack(key, ids) {
            Some(destination) if destination.kind() == DestinationKind::Queue => {
                self.dispatch(destination.as_str(), out);
            }
            Some(_) if self.resumed.contains(key) => {
                if let Some(wanted) = self.resumed.on_room(key, &mut self.set, out) {
                    self.read_history(wanted);
                }
            }
            _ => {}
        }
    }
}
