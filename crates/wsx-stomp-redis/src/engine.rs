//! [`RedisEngine`]: the synchronous side, called by the sessions through the
//! [`wsx_stomp::Engine`] trait, and fed what Redis sends back through
//! [`RedisEngine::handle_event`].
//!
//! It keeps the local picture: topic subscribers per topic (to know when to subscribe the
//! node's pub/sub connection, and whom to fan out to), queue consumers with their windows and
//! the messages they hold, the entries fetched but not yet handed out, and how many entries it
//! asked each queue reader for (credit). Everything that needs Redis is a command to the tasks
//! of [`crate::io`].

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use redis::Client;
use tokio::sync::{mpsc, oneshot, watch};
use wsx_stomp::{
    Delivery, Destination, DestinationKind, Engine, Message, MessageId, Publish, SubscriberKey,
};

use crate::io::{self, Cmd, Incoming, SubCmd};
use crate::{Config, Error, RedisMetrics, Shared, codec};

/// Something Redis sent to this node; pass it to [`RedisEngine::handle_event`].
#[derive(Debug)]
pub struct RedisEvent(Incoming);

/// The stream of [`RedisEvent`]s of one engine. Ends when the engine is dropped.
#[derive(Debug)]
pub struct RedisEvents(mpsc::UnboundedReceiver<Incoming>);

impl RedisEvents {
    /// The next event; `None` once the engine and its tasks are gone.
    pub async fn recv(&mut self) -> Option<RedisEvent> {
        self.0.recv().await.map(RedisEvent)
    }

    /// The next event if one is waiting.
    pub fn try_recv(&mut self) -> Option<RedisEvent> {
        self.0.try_recv().ok().map(RedisEvent)
    }
}

/// A message this node holds, with its stream entry when it came from a queue.
#[derive(Debug)]
struct Held {
    message: Arc<Message>,
    entry: Option<(Arc<str>, Bytes)>,
}

#[derive(Debug)]
struct Consumer {
    destination: Destination,
    window: Option<usize>,
    in_flight: Vec<Held>,
}

impl Consumer {
    fn has_room(&self) -> bool {
        self.window.is_none_or(|w| self.in_flight.len() < w)
    }
}

#[derive(Debug)]
struct Queue {
    key: Arc<str>,
    consumers: Vec<SubscriberKey>,
    cursor: usize,
    /// Fetched entries not handed out yet, with their redelivered flag.
    ready: VecDeque<(Held, bool)>,
    /// Entries asked of the reader and not received yet.
    requested: usize,
    /// Credit to the reader; dropping it stops the reader.
    reader: mpsc::UnboundedSender<usize>,
}

/// The Redis-backed engine of one node. See the crate docs for the guarantees.
pub struct RedisEngine {
    config: Arc<Config>,
    shared: Arc<Shared>,
    client: Client,
    runtime: tokio::runtime::Handle,
    writer: mpsc::UnboundedSender<Cmd>,
    sub: mpsc::UnboundedSender<SubCmd>,
    events: io::Events,
    shutdown: watch::Receiver<()>,
    // Dropping it stops every task.
    _stop: watch::Sender<()>,
    next_id: u64,
    topics: HashMap<Arc<str>, Vec<SubscriberKey>>,
    queues: HashMap<Arc<str>, Queue>,
    consumers: HashMap<SubscriberKey, Consumer>,
}

impl std::fmt::Debug for RedisEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisEngine")
            .field("node_id", &self.config.node_id)
            .field("topics", &self.topics.len())
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
        let client = Client::open(config.url.as_str()).map_err(|e| Error::Url(e.to_string()))?;
        let config = Arc::new(config);
        let shared = Arc::new(Shared::default());
        let (stop, shutdown) = watch::channel(());
        let (events, events_rx) = mpsc::unbounded_channel();
        let (writer, writer_rx) = mpsc::unbounded_channel();
        let (sub, sub_rx) = mpsc::unbounded_channel();
        runtime.spawn(io::writer(
            client.clone(),
            config.clone(),
            shared.clone(),
            writer_rx,
            shutdown.clone(),
        ));
        runtime.spawn(io::subscriber(
            client.clone(),
            config.clone(),
            shared.clone(),
            sub_rx,
            events.clone(),
            shutdown.clone(),
        ));
        let engine = RedisEngine {
            config,
            shared,
            client,
            runtime,
            writer,
            sub,
            events,
            shutdown,
            _stop: stop,
            next_id: 0,
            topics: HashMap::new(),
            queues: HashMap::new(),
            consumers: HashMap::new(),
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
    /// ACKs applied, topic (un)subscriptions active. It does not borrow the engine.
    pub fn flushed(&self) -> impl Future<Output = ()> + Send + 'static {
        let (w_tx, w_rx) = oneshot::channel();
        let (s_tx, s_rx) = oneshot::channel();
        let _ = self.writer.send(Cmd::Barrier(w_tx));
        let _ = self.sub.send(SubCmd::Barrier(s_tx));
        async move {
            let _ = w_rx.await;
            let _ = s_rx.await;
        }
    }

    /// Messages held for queue consumers of `destination` on this node, fetched and not
    /// acknowledged yet (handed out or waiting for room).
    pub fn queue_held(&self, destination: &str) -> usize {
        self.queues.get(destination).map_or(0, |q| {
            q.ready.len()
                + q.consumers
                    .iter()
                    .filter_map(|k| self.consumers.get(k))
                    .map(|c| c.in_flight.len())
                    .sum::<usize>()
        })
    }

    /// Local subscriptions on `destination`.
    pub fn subscriber_count(&self, destination: &str) -> usize {
        self.topics.get(destination).map_or(0, Vec::len)
            + self
                .queues
                .get(destination)
                .map_or(0, |q| q.consumers.len())
    }

    /// Publish, or refuse with [`Error::Backlog`] when too many SENDs already wait for Redis
    /// (the session should answer the SEND with an ERROR). Accepted SENDs are written to Redis
    /// as soon as it is reachable; local subscribers get the message through Redis like every
    /// other node's.
    pub fn offer(&mut self, publish: Publish) -> Result<(), Error> {
        let pending = self.shared.pending_sends.load(Ordering::Relaxed);
        if pending >= self.config.max_pending_sends {
            return Err(Error::Backlog(pending));
        }
        self.next_id += 1;
        let id = MessageId::new(format!("{}-{}", self.config.node_id, self.next_id));
        let payload = codec::encode(&id, false, &publish)?;
        let cmd = match publish.destination.kind() {
            DestinationKind::Topic => Cmd::Publish {
                channel: self.channel(&publish.destination),
                payload,
            },
            DestinationKind::Queue => Cmd::XAdd {
                key: self.stream_key(&publish.destination),
                payload,
            },
        };
        self.shared.pending_sends.fetch_add(1, Ordering::Relaxed);
        if self.writer.send(cmd).is_err() {
            self.shared.pending_sends.fetch_sub(1, Ordering::Relaxed);
            return Err(Error::Backlog(pending));
        }
        Ok(())
    }

    /// Handle what Redis sent: the deliveries it causes go to `out` (then to
    /// [`wsx_stomp::Broker::deliver`]).
    pub fn handle_event(&mut self, event: RedisEvent, out: &mut Vec<Delivery>) {
        match event.0 {
            Incoming::Topic(payload) => self.on_topic(payload, out),
            Incoming::Entry {
                key,
                id,
                payload,
                claimed,
            } => self.on_entry(key, id, payload, claimed, out),
        }
    }

    fn channel(&self, destination: &Destination) -> String {
        format!("{}t:{}", self.config.prefix, destination.name())
    }

    fn stream_key(&self, destination: &Destination) -> String {
        format!("{}q:{}", self.config.prefix, destination.name())
    }

    fn on_topic(&mut self, payload: Bytes, out: &mut Vec<Delivery>) {
        let wire = match codec::decode(payload) {
            Ok(wire) => wire,
            Err(error) => {
                self.shared.malformed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%error, "skipped a topic message");
                return;
            }
        };
        let Some(subscribers) = self.topics.get(wire.publish.destination.as_str()) else {
            return;
        };
        let message = Arc::new(Message::new(wire.id, wire.publish));
        for key in subscribers {
            let Some(consumer) = self.consumers.get_mut(key) else {
                continue;
            };
            if !consumer.has_room() {
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            if consumer.window.is_some() {
                consumer.in_flight.push(Held {
                    message: message.clone(),
                    entry: None,
                });
            }
            out.push(Delivery {
                subscriber: key.clone(),
                message: message.clone(),
                redelivered: false,
            });
        }
    }

    fn on_entry(
        &mut self,
        key: Arc<str>,
        id: Arc<str>,
        payload: Bytes,
        claimed: bool,
        out: &mut Vec<Delivery>,
    ) {
        let wire = match codec::decode(payload.clone()) {
            Ok(wire) => wire,
            Err(error) => {
                self.shared.malformed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%error, key = &*key, id = &*id, "dropped a foreign stream entry");
                self.forget(&key, std::slice::from_ref(&id));
                let _ = self.writer.send(Cmd::Ack { key, ids: vec![id] });
                return;
            }
        };
        let name = wire.publish.destination.shared().clone();
        let Some(queue) = self.queues.get_mut(&name) else {
            // No local consumer any more: give it back to the group.
            self.forget(&key, std::slice::from_ref(&id));
            let _ = self.writer.send(Cmd::Requeue {
                key,
                entries: vec![(id, payload)],
            });
            return;
        };
        queue.requested = queue.requested.saturating_sub(1);
        let held = Held {
            message: Arc::new(Message::new(wire.id, wire.publish)),
            entry: Some((id, payload)),
        };
        queue.ready.push_back((held, wire.redelivered || claimed));
        self.dispatch(&name, out);
    }

    /// Entries no longer held by this node: the reader stops refreshing them.
    fn forget(&self, key: &Arc<str>, ids: &[Arc<str>]) {
        if let Ok(mut owned) = self.shared.owned.lock()
            && let Some(set) = owned.get_mut(key)
        {
            for id in ids {
                set.remove(id);
            }
            if set.is_empty() {
                owned.remove(key);
            }
        }
    }

    fn ack_entries(&self, key: &Arc<str>, ids: Vec<Arc<str>>) {
        if ids.is_empty() {
            return;
        }
        self.forget(key, &ids);
        let _ = self.writer.send(Cmd::Ack {
            key: key.clone(),
            ids,
        });
    }

    /// Hand ready entries of queue `name` to consumers with room, round-robin; then ask the
    /// reader for as many more as there is room.
    fn dispatch(&mut self, name: &str, out: &mut Vec<Delivery>) {
        let Some(queue) = self.queues.get_mut(name) else {
            return;
        };
        let mut auto_acked = Vec::new();
        while !queue.ready.is_empty() && !queue.consumers.is_empty() {
            let n = queue.consumers.len();
            let chosen = (0..n).map(|step| (queue.cursor + step) % n).find(|&i| {
                self.consumers
                    .get(&queue.consumers[i])
                    .is_some_and(Consumer::has_room)
            });
            let Some(i) = chosen else { break };
            let Some((held, redelivered)) = queue.ready.pop_front() else {
                break;
            };
            queue.cursor = (i + 1) % n;
            let key = queue.consumers[i].clone();
            let message = held.message.clone();
            match self.consumers.get_mut(&key) {
                Some(consumer) if consumer.window.is_some() => consumer.in_flight.push(held),
                _ => auto_acked.extend(held.entry.map(|(id, _)| id)),
            }
            out.push(Delivery {
                subscriber: key,
                message,
                redelivered,
            });
        }
        // Room left: ask the reader for that many entries (beyond those already asked for).
        let room: usize = queue
            .consumers
            .iter()
            .filter_map(|k| self.consumers.get(k))
            .map(|c| match c.window {
                Some(w) => w.saturating_sub(c.in_flight.len()),
                None => self.config.prefetch,
            })
            .sum();
        let want = room.saturating_sub(queue.ready.len());
        if want > queue.requested {
            io::grant(&queue.reader, want - queue.requested);
            queue.requested = want;
        }
        let key = queue.key.clone();
        self.ack_entries(&key, auto_acked);
    }

    fn spawn_reader(&self, key: Arc<str>) -> mpsc::UnboundedSender<usize> {
        let (tx, rx) = mpsc::unbounded_channel();
        let reader = io::Reader {
            client: self.client.clone(),
            config: self.config.clone(),
            shared: self.shared.clone(),
            key,
            credit: rx,
            events: self.events.clone(),
            shutdown: self.shutdown.clone(),
        };
        self.runtime.spawn(reader.run());
        tx
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
        if self.consumers.contains_key(&key) {
            self.unsubscribe(&key, out);
        }
        self.consumers.insert(
            key.clone(),
            Consumer {
                destination: destination.clone(),
                window: max_unacked.map(|w| w.max(1)),
                in_flight: Vec::new(),
            },
        );
        let name = destination.shared().clone();
        match destination.kind() {
            DestinationKind::Topic => {
                let subscribers = self.topics.entry(name).or_default();
                subscribers.push(key);
                if subscribers.len() == 1 {
                    let _ = self.sub.send(SubCmd::Subscribe(self.channel(destination)));
                }
            }
            DestinationKind::Queue => {
                if !self.queues.contains_key(&name) {
                    let stream: Arc<str> = Arc::from(self.stream_key(destination));
                    let reader = self.spawn_reader(stream.clone());
                    self.queues.insert(
                        name.clone(),
                        Queue {
                            key: stream,
                            consumers: Vec::new(),
                            cursor: 0,
                            ready: VecDeque::new(),
                            requested: 0,
                            reader,
                        },
                    );
                }
                if let Some(queue) = self.queues.get_mut(&name) {
                    queue.consumers.push(key);
                }
                self.dispatch(&name, out);
            }
        }
    }

    fn unsubscribe(&mut self, key: &SubscriberKey, out: &mut Vec<Delivery>) {
        let Some(consumer) = self.consumers.remove(key) else {
            return;
        };
        let destination = consumer.destination;
        let name = destination.as_str();
        match destination.kind() {
            DestinationKind::Topic => {
                if let Some(subscribers) = self.topics.get_mut(name) {
                    subscribers.retain(|k| k != key);
                    if subscribers.is_empty() {
                        self.topics.remove(name);
                        let _ = self
                            .sub
                            .send(SubCmd::Unsubscribe(self.channel(&destination)));
                    }
                }
            }
            DestinationKind::Queue => {
                let Some(queue) = self.queues.get_mut(name) else {
                    return;
                };
                if let Some(i) = queue.consumers.iter().position(|k| k == key) {
                    queue.consumers.remove(i);
                    if i < queue.cursor {
                        queue.cursor -= 1;
                    }
                    if queue.cursor >= queue.consumers.len() {
                        queue.cursor = 0;
                    }
                }
                for held in consumer.in_flight.into_iter().rev() {
                    queue.ready.push_front((held, true));
                }
                if queue.consumers.is_empty() {
                    // The last local consumer left: give what this node holds back to the
                    // group, and stop the reader.
                    if let Some(queue) = self.queues.remove(name) {
                        let entries: Vec<(Arc<str>, Bytes)> = queue
                            .ready
                            .into_iter()
                            .filter_map(|(held, _)| held.entry)
                            .collect();
                        if !entries.is_empty() {
                            let ids: Vec<Arc<str>> =
                                entries.iter().map(|(id, _)| id.clone()).collect();
                            self.forget(&queue.key, &ids);
                            let _ = self.writer.send(Cmd::Requeue {
                                key: queue.key,
                                entries,
                            });
                        }
                    }
                } else {
                    self.dispatch(name, out);
                }
            }
        }
    }

    fn publish(&mut self, message: Publish, _out: &mut Vec<Delivery>) {
        let destination = message.destination.clone();
        if let Err(error) = self.offer(message) {
            self.shared.send_failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%error, %destination, "SEND refused");
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

    fn ack(&mut self, key: &SubscriberKey, ids: &[MessageId], out: &mut Vec<Delivery>) {
        let Some(consumer) = self.consumers.get_mut(key) else {
            return;
        };
        let (acked, kept): (Vec<_>, Vec<_>) = consumer
            .in_flight
            .drain(..)
            .partition(|h| ids.contains(h.message.id()));
        consumer.in_flight = kept;
        if consumer.destination.kind() == DestinationKind::Queue {
            let name = consumer.destination.shared().clone();
            let entry_ids: Vec<Arc<str>> = acked
                .into_iter()
                .filter_map(|h| h.entry.map(|(id, _)| id))
                .collect();
            if let Some(queue) = self.queues.get(&name) {
                let stream = queue.key.clone();
                self.ack_entries(&stream, entry_ids);
            }
            self.dispatch(&name, out);
        }
    }

    fn nack(&mut self, key: &SubscriberKey, ids: &[MessageId], out: &mut Vec<Delivery>) {
        let Some(consumer) = self.consumers.get_mut(key) else {
            return;
        };
        let (rejected, kept): (Vec<_>, Vec<_>) = consumer
            .in_flight
            .drain(..)
            .partition(|h| ids.contains(h.message.id()));
        consumer.in_flight = kept;
        if consumer.destination.kind() == DestinationKind::Queue {
            let name = consumer.destination.shared().clone();
            if let Some(queue) = self.queues.get_mut(&name) {
                for held in rejected.into_iter().rev() {
                    queue.ready.push_front((held, true));
                }
            }
            self.dispatch(&name, out);
        }
    }
}
