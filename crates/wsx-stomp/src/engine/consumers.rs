//! [`ConsumerSet`]: the local consumer bookkeeping every [`super::Engine`] needs, as a building
//! block for engines.
//!
//! Sits inside an engine, below the [`super::Engine`] calls and above whatever stores the
//! messages: [`super::MemoryEngine`] keeps everything in it; an engine backed by a shared
//! store (such as `wsx-stomp-redis`) keeps in it the subscriptions of its own node and the
//! messages it fetched, and tags each message with what it needs to acknowledge it in the
//! store later.
//!
//! What it keeps: topic subscribers per topic, in subscription order; per queue, the consumers
//! in subscription order, a round-robin cursor, and the messages waiting for a consumer
//! (`ready`, each with its redelivered flag); per subscription, its window (`max_unacked`,
//! `None` in auto ack mode) and the messages it holds unacknowledged (client ack modes only).
//!
//! The rules, the same for every engine built on it:
//!
//! - [`ConsumerSet::dispatch`] hands ready messages to consumers with room in their window, in
//!   turn from the cursor: each message goes to the next consumer (from the cursor) with room,
//!   and the cursor moves past it.
//! - Unsubscribing a queue consumer keeps the cursor on the consumer that was next in turn, and
//!   puts the messages it held back at the front of the queue, in order, marked redelivered;
//!   a NACK does the same with the rejected messages.
//! - [`ConsumerSet::fan_out`] gives a topic message to every subscriber with room and counts
//!   the subscribers skipped because their window was full.
//! - A subscription with a [`Selector`] gets only the messages it selects: a topic skips it
//!   for the others (not counted as skipped); a queue gives each message to the next consumer
//!   in turn with room that selects it, and while a queue has consumers with selectors,
//!   dispatch scans the waiting messages: one no consumer with room selects stays in its place
//!   and the ones behind it go ahead (without selectors only the oldest message is looked at).
//!
//! It never talks to anything: the engine decides what to do with what the calls return (for
//! example, acknowledge in its store the messages [`ConsumerSet::dispatch`] gave to auto-mode
//! consumers).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use super::{Delivery, SubscriberKey};
use crate::destination::{Destination, DestinationKind};
use crate::headers::Headers;
use crate::message::{Message, MessageId};
use crate::selector::Selector;

/// A message held by the set (waiting in a queue or delivered and unacknowledged), with the
/// engine's own data about it (`()` for an in-memory engine; a store id, say, otherwise).
#[derive(Debug, Clone)]
pub struct Held<T> {
    /// The message.
    pub message: Arc<Message>,
    /// The engine's data about this copy of the message.
    pub tag: T,
}

impl<T> Held<T> {
    /// `message` with `tag`.
    pub fn new(message: Arc<Message>, tag: T) -> Self {
        Held { message, tag }
    }
}

#[derive(Debug)]
struct Consumer<T> {
    destination: Destination,
    window: Option<usize>,
    in_flight: Vec<Held<T>>,
    selector: Option<Selector>,
    /// Fed by the engine one message at a time ([`ConsumerSet::deliver_to`]), skipped by
    /// [`ConsumerSet::fan_out`]: a topic subscription resuming from an offset.
    fed: bool,
}

impl<T> Consumer<T> {
    fn has_room(&self) -> bool {
        self.window.is_none_or(|w| self.in_flight.len() < w)
    }

    fn selects(&self, headers: &Headers) -> bool {
        self.selector.as_ref().is_none_or(|s| s.matches(headers))
    }
}

/// Give `held` to consumer `key`: into its window in a client ack mode, else its tag into
/// `auto_acked`; the delivery into `out`.
fn assign<T>(
    consumers: &mut HashMap<SubscriberKey, Consumer<T>>,
    key: SubscriberKey,
    held: Held<T>,
    redelivered: bool,
    out: &mut Vec<Delivery>,
    auto_acked: &mut Vec<T>,
) {
    let message = held.message.clone();
    match consumers.get_mut(&key) {
        Some(consumer) if consumer.window.is_some() => consumer.in_flight.push(held),
        _ => auto_acked.push(held.tag),
    }
    out.push(Delivery {
        subscriber: key,
        message,
        redelivered,
        gap: false,
    });
}

/// What [`ConsumerSet::deliver_to`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fed {
    /// Delivered.
    Delivered,
    /// Not delivered: the subscription's window is full (or it is not subscribed).
    NoRoom,
    /// Not delivered: its selector does not select the message (skip it).
    NotSelected,
}

#[derive(Debug)]
struct Queue<T> {
    ready: VecDeque<(Held<T>, bool)>,
    consumers: Vec<SubscriberKey>,
    cursor: usize,
    /// Consumers with a selector.
    selective: usize,
}

impl<T> Default for Queue<T> {
    fn default() -> Self {
        Queue {
            ready: VecDeque::new(),
            consumers: Vec::new(),
            cursor: 0,
            selective: 0,
        }
    }
}

impl<T> Queue<T> {
    /// Put messages back at the front, in their original order, marked redelivered.
    fn requeue(&mut self, messages: Vec<Held<T>>) {
        for held in messages.into_iter().rev() {
            self.ready.push_front((held, true));
        }
    }
}

/// Subscriptions, windows, in-flight messages and queue dispatch of one engine (or one node's
/// part of a shared engine). See the module docs for the rules.
#[derive(Debug)]
pub struct ConsumerSet<T = ()> {
    topics: HashMap<Arc<str>, Vec<SubscriberKey>>,
    queues: HashMap<Arc<str>, Queue<T>>,
    consumers: HashMap<SubscriberKey, Consumer<T>>,
}

impl<T> Default for ConsumerSet<T> {
    fn default() -> Self {
        ConsumerSet {
            topics: HashMap::new(),
            queues: HashMap::new(),
            consumers: HashMap::new(),
        }
    }
}

impl<T> ConsumerSet<T> {
    /// An empty set.
    pub fn new() -> Self {
        ConsumerSet::default()
    }

    /// Whether `key` is subscribed.
    pub fn contains(&self, key: &SubscriberKey) -> bool {
        self.consumers.contains_key(key)
    }

    /// The destination `key` is subscribed to.
    pub fn destination(&self, key: &SubscriberKey) -> Option<&Destination> {
        self.consumers.get(key).map(|c| &c.destination)
    }

    /// Add subscription `key` to `destination`, last in turn, with window `max_unacked`
    /// (`None`: auto ack mode; a window of 0 counts as 1). Returns how many local
    /// subscriptions `destination` has now. It delivers nothing: call
    /// [`ConsumerSet::dispatch`] for a queue. An engine should [`ConsumerSet::unsubscribe`] a
    /// key already subscribed first (and act on it); if it did not, this does it, putting the
    /// messages the old subscription held back in its queue.
    pub fn subscribe(
        &mut self,
        key: SubscriberKey,
        destination: &Destination,
        max_unacked: Option<usize>,
    ) -> usize {
        self.subscribe_with_selector(key, destination, max_unacked, None)
    }

    /// [`ConsumerSet::subscribe`] with a selector: `key` gets only the messages it selects.
    pub fn subscribe_with_selector(
        &mut self,
        key: SubscriberKey,
        destination: &Destination,
        max_unacked: Option<usize>,
        selector: Option<Selector>,
    ) -> usize {
        if self.contains(&key) {
            self.unsubscribe(&key);
        }
        let selective = usize::from(selector.is_some());
        self.consumers.insert(
            key.clone(),
            Consumer {
                destination: destination.clone(),
                window: max_unacked.map(|w| w.max(1)),
                in_flight: Vec::new(),
                selector,
                fed: false,
            },
        );
        let name = destination.shared().clone();
        match destination.kind() {
            // A user destination fans out like a topic (nobody subscribes to `/app/`).
            DestinationKind::Topic | DestinationKind::User | DestinationKind::App => {
                let subscribers = self.topics.entry(name).or_default();
                subscribers.push(key);
                subscribers.len()
            }
            DestinationKind::Queue => {
                let queue = self.queues.entry(name).or_default();
                queue.consumers.push(key);
                queue.selective += selective;
                queue.consumers.len()
            }
        }
    }

    /// Remove subscription `key`; its destination, or `None` if it was not subscribed. A queue
    /// consumer's unacknowledged messages go back to the front of the queue, marked
    /// redelivered (call [`ConsumerSet::dispatch`] to hand them to the other consumers, or
    /// [`ConsumerSet::take_queue`] when none is left); a topic subscriber's are forgotten.
    pub fn unsubscribe(&mut self, key: &SubscriberKey) -> Option<Destination> {
        let consumer = self.consumers.remove(key)?;
        let destination = consumer.destination;
        let name = destination.as_str();
        match destination.kind() {
            // A user destination fans out like a topic (nobody subscribes to `/app/`).
            DestinationKind::Topic | DestinationKind::User | DestinationKind::App => {
                if let Some(subscribers) = self.topics.get_mut(name) {
                    subscribers.retain(|k| k != key);
                    if subscribers.is_empty() {
                        self.topics.remove(name);
                    }
                }
            }
            DestinationKind::Queue => {
                let queue = self.queues.entry(destination.shared().clone()).or_default();
                if let Some(i) = queue.consumers.iter().position(|k| k == key) {
                    queue.consumers.remove(i);
                    if consumer.selector.is_some() {
                        queue.selective = queue.selective.saturating_sub(1);
                    }
                    if i < queue.cursor {
                        queue.cursor -= 1;
                    }
                    if queue.cursor >= queue.consumers.len() {
                        queue.cursor = 0;
                    }
                }
                queue.requeue(consumer.in_flight);
            }
        }
        Some(destination)
    }

    /// Add a message at the back of queue `destination` (not delivered yet: call
    /// [`ConsumerSet::dispatch`]).
    pub fn enqueue(&mut self, destination: &Destination, held: Held<T>, redelivered: bool) {
        self.queues
            .entry(destination.shared().clone())
            .or_default()
            .ready
            .push_back((held, redelivered));
    }

    /// Remove the oldest message waiting in queue `destination` (to drop it).
    pub fn pop_oldest(&mut self, destination: &str) -> Option<Held<T>> {
        let queue = self.queues.get_mut(destination)?;
        let (held, _) = queue.ready.pop_front()?;
        if queue.ready.is_empty() && queue.consumers.is_empty() {
            self.queues.remove(destination);
        }
        Some(held)
    }

    /// Remove queue `destination` and return the messages waiting in it, in order, with their
    /// redelivered flags (for an engine giving them back to its store when its last local
    /// consumer left). Its consumers, if any, stay subscribed with an empty queue.
    pub fn take_queue(&mut self, destination: &str) -> Vec<(Held<T>, bool)> {
        match self.queues.get_mut(destination) {
            Some(queue) if queue.consumers.is_empty() => self
                .queues
                .remove(destination)
                .map(|q| q.ready.into())
                .unwrap_or_default(),
            Some(queue) => queue.ready.drain(..).collect(),
            None => Vec::new(),
        }
    }

    /// Hand the waiting messages of queue `destination` to consumers with room, in turn from
    /// the cursor, pushing the deliveries into `out`. Messages given to a consumer in a client
    /// ack mode stay in its window until [`ConsumerSet::ack`] or [`ConsumerSet::nack`]; the
    /// tags of those given to auto-mode consumers (acknowledged by delivery) are returned. A
    /// queue with no message and no consumer left is forgotten.
    pub fn dispatch(&mut self, destination: &str, out: &mut Vec<Delivery>) -> Vec<T> {
        let mut auto_acked = Vec::new();
        let Some(queue) = self.queues.get_mut(destination) else {
            return auto_acked;
        };
        let consumers = &mut self.consumers;
        if queue.selective == 0 {
            // The oldest message goes to the next consumer with room.
            while !queue.ready.is_empty() && !queue.consumers.is_empty() {
                let n = queue.consumers.len();
                let chosen = (0..n).map(|step| (queue.cursor + step) % n).find(|&i| {
                    consumers
                        .get(&queue.consumers[i])
                        .is_some_and(Consumer::has_room)
                });
                let Some(i) = chosen else { break };
                let Some((held, redelivered)) = queue.ready.pop_front() else {
                    break;
                };
                queue.cursor = (i + 1) % n;
                let key = queue.consumers[i].clone();
                assign(consumers, key, held, redelivered, out, &mut auto_acked);
            }
        } else {
            // Each waiting message, oldest first, goes to the next consumer with room that
            // selects it; one nobody selects stays.
            let mut at = 0;
            while at < queue.ready.len()
                && queue
                    .consumers
                    .iter()
                    .any(|k| consumers.get(k).is_some_and(Consumer::has_room))
            {
                let n = queue.consumers.len();
                let headers = queue.ready[at].0.message.headers();
                let chosen = (0..n).map(|step| (queue.cursor + step) % n).find(|&i| {
                    consumers
                        .get(&queue.consumers[i])
                        .is_some_and(|c| c.has_room() && c.selects(headers))
                });
                let Some(i) = chosen else {
                    at += 1;
                    continue;
                };
                let Some((held, redelivered)) = queue.ready.remove(at) else {
                    break;
                };
                queue.cursor = (i + 1) % n;
                let key = queue.consumers[i].clone();
                assign(consumers, key, held, redelivered, out, &mut auto_acked);
            }
        }
        if queue.ready.is_empty() && queue.consumers.is_empty() {
            self.queues.remove(destination);
        }
        auto_acked
    }

    /// Room left in the windows of queue `destination`'s consumers: the sum of what each
    /// client-mode window can still take, counting `auto` for each auto-mode consumer.
    pub fn room(&self, destination: &str, auto: usize) -> usize {
        self.queues.get(destination).map_or(0, |queue| {
            queue
                .consumers
                .iter()
                .filter_map(|k| self.consumers.get(k))
                .map(|c| match c.window {
                    Some(w) => w.saturating_sub(c.in_flight.len()),
                    None => auto,
                })
                .sum()
        })
    }

    /// `key` processed these messages: they leave its window. Returns its destination and the
    /// messages removed, or `None` if `key` is not subscribed.
    pub fn ack(
        &mut self,
        key: &SubscriberKey,
        ids: &[MessageId],
    ) -> Option<(Destination, Vec<Held<T>>)> {
        let consumer = self.consumers.get_mut(key)?;
        let (acked, kept): (Vec<_>, Vec<_>) = consumer
            .in_flight
            .drain(..)
            .partition(|h| ids.contains(h.message.id()));
        consumer.in_flight = kept;
        Some((consumer.destination.clone(), acked))
    }

    /// `key` rejects these messages: they leave its window; a queue's go back to the front of
    /// the queue, in order, marked redelivered (call [`ConsumerSet::dispatch`]), a topic's are
    /// forgotten. Returns its destination, or `None` if `key` is not subscribed.
    pub fn nack(&mut self, key: &SubscriberKey, ids: &[MessageId]) -> Option<Destination> {
        let consumer = self.consumers.get_mut(key)?;
        let (rejected, kept): (Vec<_>, Vec<_>) = consumer
            .in_flight
            .drain(..)
            .partition(|h| ids.contains(h.message.id()));
        consumer.in_flight = kept;
        let destination = consumer.destination.clone();
        if destination.kind() == DestinationKind::Queue {
            self.queues
                .entry(destination.shared().clone())
                .or_default()
                .requeue(rejected);
        }
        Some(destination)
    }

    /// Mark subscription `key` as fed by the engine ([`ConsumerSet::deliver_to`]):
    /// [`ConsumerSet::fan_out`] skips it.
    pub fn set_fed(&mut self, key: &SubscriberKey, fed: bool) {
        if let Some(consumer) = self.consumers.get_mut(key) {
            consumer.fed = fed;
        }
    }

    /// Whether subscription `key` has room in its window (`false` if not subscribed).
    pub fn has_room(&self, key: &SubscriberKey) -> bool {
        self.consumers.get(key).is_some_and(Consumer::has_room)
    }

    /// Messages delivered to `key` and not acknowledged yet (client ack modes only).
    pub fn unacked(&self, key: &SubscriberKey) -> usize {
        self.consumers.get(key).map_or(0, |c| c.in_flight.len())
    }

    /// Messages waiting in queue `destination` for a consumer with room.
    pub fn queue_depth(&self, destination: &str) -> usize {
        self.queues.get(destination).map_or(0, |q| q.ready.len())
    }

    /// Messages of queue `destination` held here: waiting, or delivered and unacknowledged.
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

    /// Subscriptions (topic subscribers or queue consumers) on `destination`.
    pub fn subscriber_count(&self, destination: &str) -> usize {
        self.topics.get(destination).map_or(0, Vec::len)
            + self
                .queues
                .get(destination)
                .map_or(0, |q| q.consumers.len())
    }

    /// Topics with at least one subscriber.
    pub fn topic_count(&self) -> usize {
        self.topics.len()
    }

    /// Queues with consumers or waiting messages.
    pub fn queue_count(&self) -> usize {
        self.queues.len()
    }
}

impl<T: Clone> ConsumerSet<T> {
    /// Deliver a topic message to every subscriber of `destination` with room in its window,
    /// in subscription order, pushing the deliveries into `out` (client-mode subscribers hold
    /// it until they ACK or NACK it). Returns how many subscribers were skipped because their
    /// window was full (a topic keeps no message for them).
    pub fn fan_out(
        &mut self,
        destination: &str,
        message: &Arc<Message>,
        tag: T,
        out: &mut Vec<Delivery>,
    ) -> u64 {
        let Some(subscribers) = self.topics.get(destination) else {
            return 0;
        };
        let mut skipped = 0;
        for key in subscribers {
            let Some(consumer) = self.consumers.get_mut(key) else {
                continue;
            };
            if consumer.fed || !consumer.selects(message.headers()) {
                continue;
            }
            if !consumer.has_room() {
                skipped += 1;
                continue;
            }
            if consumer.window.is_some() {
                consumer
                    .in_flight
                    .push(Held::new(message.clone(), tag.clone()));
            }
            out.push(Delivery {
                subscriber: key.clone(),
                message: message.clone(),
                redelivered: false,
                gap: false,
            });
        }
        skipped
    }

    /// Deliver one topic message to subscription `key` (fed by the engine: see
    /// [`ConsumerSet::set_fed`]) if it selects it and has room, with `gap` (see
    /// [`Delivery::gap`]).
    pub fn deliver_to(
        &mut self,
        key: &SubscriberKey,
        message: &Arc<Message>,
        tag: T,
        gap: bool,
        out: &mut Vec<Delivery>,
    ) -> Fed {
        let Some(consumer) = self.consumers.get_mut(key) else {
            return Fed::NoRoom;
        };
        if !consumer.has_room() {
            return Fed::NoRoom;
        }
        if !consumer.selects(message.headers()) {
            return Fed::NotSelected;
        }
        if consumer.window.is_some() {
            consumer.in_flight.push(Held::new(message.clone(), tag));
        }
        out.push(Delivery {
            subscriber: key.clone(),
            message: message.clone(),
            redelivered: false,
            gap,
        });
        Fed::Delivered
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::ConnId;
    use crate::headers::Headers;
    use crate::message::Publish;

    fn dest(s: &str) -> Destination {
        Destination::parse(s).expect("valid")
    }

    fn key(conn: u64) -> SubscriberKey {
        SubscriberKey::new(ConnId(conn), "s")
    }

    fn held(n: u32) -> Held<u32> {
        let publish = Publish::new(dest("/queue/q"), Headers::new(), bytes::Bytes::new());
        Held::new(
            Arc::new(Message::new(MessageId::new(n.to_string()), publish)),
            n,
        )
    }

    #[test]
    fn round_robin_with_windows_and_auto_tags() {
        let q = dest("/queue/q");
        let mut set = ConsumerSet::new();
        assert_eq!(set.subscribe(key(1), &q, Some(1)), 1);
        assert_eq!(set.subscribe(key(2), &q, None), 2);
        for n in 0..4 {
            set.enqueue(&q, held(n), false);
        }
        let mut out = Vec::new();
        // 1 takes one (window 1), 2 (auto) takes the rest.
        assert_eq!(set.dispatch("/queue/q", &mut out), [1, 2, 3]);
        let to: Vec<u64> = out.iter().map(|d| d.subscriber.conn.0).collect();
        assert_eq!(to, [1, 2, 2, 2]);
        assert_eq!(set.unacked(&key(1)), 1);
        assert_eq!(set.room("/queue/q", 7), 7);
        // Leaving puts the held message back, marked redelivered.
        assert_eq!(set.unsubscribe(&key(1)), Some(q.clone()));
        assert_eq!(set.queue_depth("/queue/q"), 1);
        let taken = set.take_queue("/queue/q");
        assert_eq!(taken.len(), 1);
        assert!(taken[0].1, "redelivered");
        assert_eq!(taken[0].0.tag, 0);
        assert_eq!(set.subscriber_count("/queue/q"), 1);
    }
}
