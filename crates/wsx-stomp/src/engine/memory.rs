//! The in-process [`Engine`]: synchronous and deterministic.
//!
//! Topics, and user destinations (`/user/{principal}/queue/NAME`, fanned out like topics),
//! keep a list of subscribers in subscription order. Queues keep the messages waiting for a
//! consumer, the consumers in subscription order and a round-robin cursor: each message goes
//! to the next consumer (from the cursor) with room in its window. Messages a consumer
//! NACKs, or had not acknowledged when it went away, go back to the front of their queue,
//! marked redelivered. Subscriptions may have a selector (see [`super::ConsumerSet`] for how
//! topics and queues apply it).
//!
//! A SEND to `/app/NAME` is refused ([`crate::Error::Refused`] `no handler for /app/NAME`):
//! application handlers live in the I/O layer, which answers those SENDs before they reach
//! this engine.
//!
//! Budgets, all refusing a SEND with [`crate::Error::Refused`] (an ERROR naming the limit,
//! never a silent drop) and a SUBSCRIBE with [`crate::Error::DestinationLimit`]:
//!
//! - [`MemoryEngine::with_max_destinations`]: queues and topics known at once. A topic exists
//!   while it has subscribers, a queue while it has consumers or messages; an empty one with
//!   neither is forgotten at once, so names nobody uses cost nothing and cannot use up the
//!   count.
//! - [`MemoryEngine::with_max_queue_bytes`] and [`MemoryEngine::with_max_queue_depth`]: what
//!   one queue holds (waiting, or delivered and not acknowledged), in bytes
//!   ([`crate::Publish::size`]) and in messages.
//! - [`MemoryEngine::with_max_bytes`]: what all queues hold together, in bytes.
//!
//! Topics: every message gets an offset ([`super::StreamStart`], [`super::FIRST_OFFSET`]
//! first) and the latest are kept ([`super::TopicHistory`]: 1000 messages and 1 MiB per topic
//! by default, [`MemoryEngine::with_topic_history`]; and [`MemoryEngine::with_max_history_bytes`]
//! for all topics together, 64 MiB by default). History is trimmed, oldest first, never
//! refused: a publish always goes through. A topic's history and offsets are forgotten once it
//! retains nothing and has no subscriber. Topic history does not count against
//! [`MemoryEngine::with_max_destinations`] (which counts topics with subscribers) nor the
//! queue budgets. A plain subscriber whose window is full misses the message (counted in
//! [`MemoryEngine::dropped`]).
//!
//! A subscription resumed from an offset ([`Engine::subscribe_at`]) is fed from the history:
//! in offset order, as far as its window has room, then, caught up, each new message as it is
//! published; when its window is full it falls behind and catches up from the history as it
//! acknowledges (nothing lost while the history still holds it). Whenever the next offset it
//! needs is no longer retained, it skips to the oldest retained message and that delivery is
//! marked [`super::Delivery::gap`].
//!
//! The consumer bookkeeping (windows, in-flight messages, round-robin dispatch, requeueing) is
//! a [`ConsumerSet`], shared with other engines; this engine tags each queue message with its
//! size and adds message ids, the budgets and the drop counter.

use std::collections::HashMap;
use std::sync::Arc;

use super::consumers::{ConsumerSet, Fed, Held};
use super::stream::{StreamStart, TopicHistory};
use super::topic_log::TopicLogs;
use super::{Delivery, Engine, SubscriberKey};
use crate::destination::{Destination, DestinationKind};
use crate::message::{Message, MessageId, Publish};
use crate::selector::Selector;

/// What one queue holds: messages waiting or delivered and not acknowledged.
#[derive(Debug, Default, Clone, Copy)]
struct QueueHeld {
    messages: usize,
    bytes: usize,
}

/// A subscription resumed from an offset: the next offset it gets, and whether messages were
/// missed before it.
#[derive(Debug)]
struct Resumed {
    topic: Arc<str>,
    next: u64,
    gap: bool,
}

/// An in-memory topic and queue router.
#[derive(Debug)]
pub struct MemoryEngine {
    next_id: u64,
    max_queue_depth: usize,
    max_destinations: usize,
    max_queue_bytes: usize,
    max_bytes: usize,
    dropped: u64,
    /// Queue messages are tagged with their size ([`Message::size`]); topic messages with 0.
    set: ConsumerSet<usize>,
    /// What each queue holds (waiting and unacknowledged); no entry for a queue holding none.
    held: HashMap<Arc<str>, QueueHeld>,
    /// Bytes held by all queues.
    bytes: usize,
    /// Topic offsets and history.
    logs: TopicLogs,
    /// Subscriptions resumed from an offset, fed from `logs`.
    resumed: HashMap<SubscriberKey, Resumed>,
    /// The resumed subscriptions of each topic.
    resumed_by_topic: HashMap<Arc<str>, Vec<SubscriberKey>>,
}

impl Default for MemoryEngine {
    fn default() -> Self {
        MemoryEngine::new()
    }
}

impl MemoryEngine {
    /// Default of [`MemoryEngine::with_max_destinations`].
    pub const DEFAULT_MAX_DESTINATIONS: usize = 100_000;
    /// Default of [`MemoryEngine::with_max_queue_bytes`]: 64 MiB.
    pub const DEFAULT_MAX_QUEUE_BYTES: usize = 64 << 20;
    /// Default of [`MemoryEngine::with_max_bytes`]: 256 MiB.
    pub const DEFAULT_MAX_BYTES: usize = 256 << 20;
    /// Default of [`MemoryEngine::with_max_queue_depth`].
    pub const DEFAULT_MAX_QUEUE_DEPTH: usize = 10_000;
    /// Default of [`MemoryEngine::with_max_history_bytes`]: 64 MiB.
    pub const DEFAULT_MAX_HISTORY_BYTES: usize = 64 << 20;

    /// An empty engine with the default budgets: [`Self::DEFAULT_MAX_DESTINATIONS`] queues and
    /// topics, [`Self::DEFAULT_MAX_QUEUE_DEPTH`] messages and [`Self::DEFAULT_MAX_QUEUE_BYTES`]
    /// per queue, [`Self::DEFAULT_MAX_BYTES`] in all queues.
    pub fn new() -> Self {
        MemoryEngine {
            next_id: 0,
            max_queue_depth: Self::DEFAULT_MAX_QUEUE_DEPTH,
            max_destinations: Self::DEFAULT_MAX_DESTINATIONS,
            max_queue_bytes: Self::DEFAULT_MAX_QUEUE_BYTES,
            max_bytes: Self::DEFAULT_MAX_BYTES,
            dropped: 0,
            set: ConsumerSet::new(),
            held: HashMap::new(),
            bytes: 0,
            logs: TopicLogs::new(TopicHistory::default(), Self::DEFAULT_MAX_HISTORY_BYTES),
            resumed: HashMap::new(),
            resumed_by_topic: HashMap::new(),
        }
    }

    /// Set how much history each topic keeps (default [`TopicHistory::default`]: 1000
    /// messages, 1 MiB).
    pub fn with_topic_history(mut self, history: TopicHistory) -> Self {
        self.logs.set_history(history);
        self
    }

    /// Set how many bytes the history of all topics may hold together (default
    /// [`Self::DEFAULT_MAX_HISTORY_BYTES`]); past it the oldest messages of all topics go
    /// first.
    pub fn with_max_history_bytes(mut self, bytes: usize) -> Self {
        self.logs.set_max_total(bytes);
        self
    }

    /// Bytes of topic history held, all topics together.
    pub fn history_bytes(&self) -> usize {
        self.logs.bytes()
    }

    /// Messages of topic history held, all topics together.
    pub fn history_len(&self) -> usize {
        self.logs.count()
    }

    /// The retained offsets of topic `destination` (`/topic/NAME`): the oldest and the next
    /// to be given out (equal when it retains none); `None` for a topic it knows nothing of.
    pub fn topic_offsets(&self, destination: &str) -> Option<(u64, u64)> {
        self.logs
            .get(destination)
            .map(|log| (log.oldest(), log.next()))
    }

    /// Set how many messages a queue may hold (waiting for a consumer, or delivered and not
    /// acknowledged); a SEND to a full queue is refused.
    pub fn with_max_queue_depth(mut self, depth: usize) -> Self {
        self.max_queue_depth = depth.max(1);
        self
    }

    /// Set how many queues and topics may exist at once; a SUBSCRIBE, or a SEND to a queue,
    /// that would add one more is refused.
    pub fn with_max_destinations(mut self, n: usize) -> Self {
        self.max_destinations = n.max(1);
        self
    }

    /// Set how many bytes one queue may hold ([`crate::Publish::size`] of its messages
    /// waiting or unacknowledged); a SEND that would cross it is refused.
    pub fn with_max_queue_bytes(mut self, bytes: usize) -> Self {
        self.max_queue_bytes = bytes;
        self
    }

    /// Set how many bytes all queues may hold together; a SEND to a queue that would cross it
    /// is refused.
    pub fn with_max_bytes(mut self, bytes: usize) -> Self {
        self.max_bytes = bytes;
        self
    }

    /// Bytes held by queue `destination` (messages waiting or unacknowledged).
    pub fn queue_bytes(&self, destination: &str) -> usize {
        self.held.get(destination).map_or(0, |q| q.bytes)
    }

    /// Bytes held by all queues.
    pub fn held_bytes(&self) -> usize {
        self.bytes
    }

    /// Queues and topics that exist now (see the module docs).
    pub fn destination_count(&self) -> usize {
        self.set.topic_count() + self.set.queue_count()
    }

    /// Messages waiting in queue `destination` (`/queue/NAME`), not delivered yet.
    pub fn queue_depth(&self, destination: &str) -> usize {
        self.set.queue_depth(destination)
    }

    /// Subscriptions (topic subscribers or queue consumers) on `destination`.
    pub fn subscriber_count(&self, destination: &str) -> usize {
        self.set.subscriber_count(destination)
    }

    /// Messages delivered to `key` and not acknowledged yet (client ack modes only).
    pub fn unacked(&self, key: &SubscriberKey) -> usize {
        self.set.unacked(key)
    }

    /// Messages dropped: topic messages for subscribers whose window was full, and messages
    /// refused by a budget when published through [`Engine::publish`] (which cannot refuse;
    /// sessions use [`Engine::try_publish`]).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    fn new_id(&mut self) -> MessageId {
        self.next_id += 1;
        MessageId::new(self.next_id.to_string())
    }

    /// Whether `destination` exists now (a topic with subscribers, a queue with consumers or
    /// messages).
    fn exists(&self, destination: &str) -> bool {
        self.set.subscriber_count(destination) > 0 || self.set.queue_depth(destination) > 0
    }

    /// Refuse a new destination once [`MemoryEngine::with_max_destinations`] exist.
    fn check_room_for(&self, destination: &Destination) -> Result<(), crate::Error> {
        if self.destination_count() >= self.max_destinations && !self.exists(destination.as_str()) {
            return Err(crate::Error::DestinationLimit {
                limit: self.max_destinations,
            });
        }
        Ok(())
    }

    /// Whether queue `destination` and the broker can take one more message of `size` bytes;
    /// the refusal names the budget.
    fn check_queue_budget(&self, destination: &Destination, size: usize) -> Result<(), String> {
        self.check_room_for(destination)
            .map_err(|e| e.to_string())?;
        let held = self
            .held
            .get(destination.as_str())
            .copied()
            .unwrap_or_default();
        if held.bytes + size > self.max_queue_bytes {
            return Err(format!(
                "{destination} is full: it holds {} bytes and the limit per queue is {} bytes",
                held.bytes, self.max_queue_bytes
            ));
        }
        if held.messages >= self.max_queue_depth {
            return Err(format!(
                "{destination} is full: it holds the limit per queue of {} messages",
                self.max_queue_depth
            ));
        }
        if self.bytes + size > self.max_bytes {
            return Err(format!(
                "the broker is full: its queues hold {} bytes and the limit for all queues is \
                 {} bytes",
                self.bytes, self.max_bytes
            ));
        }
        Ok(())
    }

    /// Queue `destination` no longer holds the messages of these sizes (delivered to auto
    /// consumers, or acknowledged).
    fn release(&mut self, destination: &str, sizes: impl IntoIterator<Item = usize>) {
        let (mut freed, mut messages) = (0, 0);
        for size in sizes {
            freed += size;
            messages += 1;
        }
        if messages == 0 {
            return;
        }
        self.bytes = self.bytes.saturating_sub(freed);
        if let Some(held) = self.held.get_mut(destination) {
            held.bytes = held.bytes.saturating_sub(freed);
            held.messages = held.messages.saturating_sub(messages);
            if held.messages == 0 {
                self.held.remove(destination);
            }
        }
    }

    /// Store a topic message (its offset), fan it out to the plain subscribers, feed the
    /// resumed ones; returns its offset.
    fn publish_topic(&mut self, publish: Publish, out: &mut Vec<Delivery>) -> u64 {
        let topic = publish.destination.shared().clone();
        let size = publish.size();
        let id = self.new_id();
        let set = &self.set;
        let message = self.logs.append(
            &topic,
            size,
            |offset| Message::with_offset(id, publish, offset),
            |name| set.subscriber_count(name) > 0,
        );
        self.dropped += self.set.fan_out(&topic, &message, 0, out);
        let keys = self
            .resumed_by_topic
            .get(&topic)
            .cloned()
            .unwrap_or_default();
        for key in keys {
            self.feed(&key, Some(&message), out);
        }
        message.offset().unwrap_or_default()
    }

    /// Publish to a topic (`/topic/NAME`) and return the offset the message got; other
    /// destinations are published as by [`Engine::try_publish`] and give `None`.
    pub fn publish_with_offset(
        &mut self,
        publish: Publish,
        out: &mut Vec<Delivery>,
    ) -> Result<Option<u64>, crate::Error> {
        if publish.destination.kind() == DestinationKind::Topic {
            return Ok(Some(self.publish_topic(publish, out)));
        }
        self.try_publish(publish, out).map(|()| None)
    }

    /// Feed resumed subscription `key` from its topic's history as far as its window has
    /// room. `live` is the message just published (delivered even when history is off, if
    /// it is the one `key` waits for).
    fn feed(&mut self, key: &SubscriberKey, live: Option<&Arc<Message>>, out: &mut Vec<Delivery>) {
        let Some(resumed) = self.resumed.get_mut(key) else {
            return;
        };
        let Some(log) = self.logs.get(&resumed.topic) else {
            return;
        };
        let (oldest, next) = (log.oldest(), log.next());
        while resumed.next < next && self.set.has_room(key) {
            let wanted = resumed.next;
            let message = match log.get(wanted) {
                Some(message) => message,
                None => match live {
                    Some(message) if message.offset() == Some(wanted) => message,
                    _ => {
                        // Trimmed (or never kept): skip to what is retained.
                        resumed.gap = true;
                        resumed.next = oldest.max(wanted + 1);
                        if resumed.next == next
                            && let Some(message) = live
                            && message.offset() == Some(next - 1)
                        {
                            resumed.next = next - 1;
                        }
                        continue;
                    }
                },
            };
            match self.set.deliver_to(key, message, 0, resumed.gap, out) {
                Fed::Delivered => {
                    resumed.gap = false;
                    resumed.next += 1;
                }
                Fed::NotSelected => resumed.next += 1,
                Fed::NoRoom => break,
            }
        }
    }

    /// Forget resumed subscription `key` (unsubscribed).
    fn forget_resumed(&mut self, key: &SubscriberKey) {
        if let Some(resumed) = self.resumed.remove(key)
            && let Some(keys) = self.resumed_by_topic.get_mut(&resumed.topic)
        {
            keys.retain(|k| k != key);
            if keys.is_empty() {
                self.resumed_by_topic.remove(&resumed.topic);
            }
        }
    }

    /// Hand the waiting messages of queue `destination` to its consumers; what auto consumers
    /// got is released.
    fn dispatch(&mut self, destination: &str, out: &mut Vec<Delivery>) {
        let auto_acked = self.set.dispatch(destination, out);
        self.release(destination, auto_acked);
    }
}

impl Engine for MemoryEngine {
    fn subscribe(
        &mut self,
        key: SubscriberKey,
        destination: &Destination,
        max_unacked: Option<usize>,
        out: &mut Vec<Delivery>,
    ) {
        // Only the destination limit can refuse (it then stays unsubscribed); sessions call
        // `subscribe_with_selector`, which reports it.
        let _ = self.subscribe_with_selector(key, destination, max_unacked, None, out);
    }

    fn subscribe_with_selector(
        &mut self,
        key: SubscriberKey,
        destination: &Destination,
        max_unacked: Option<usize>,
        selector: Option<Selector>,
        out: &mut Vec<Delivery>,
    ) -> Result<(), crate::Error> {
        if self.set.contains(&key) {
            self.unsubscribe(&key, out);
        }
        self.check_room_for(destination)?;
        self.set
            .subscribe_with_selector(key, destination, max_unacked, selector);
        if destination.kind() == DestinationKind::Queue {
            self.dispatch(destination.as_str(), out);
        }
        Ok(())
    }

    fn subscribe_at(
        &mut self,
        key: SubscriberKey,
        destination: &Destination,
        max_unacked: Option<usize>,
        selector: Option<Selector>,
        start: StreamStart,
        out: &mut Vec<Delivery>,
    ) -> Result<(), crate::Error> {
        if start == StreamStart::Next || destination.kind() != DestinationKind::Topic {
            return self.subscribe_with_selector(key, destination, max_unacked, selector, out);
        }
        self.subscribe_with_selector(key.clone(), destination, max_unacked, selector, out)?;
        let topic = destination.shared().clone();
        let log = self.logs.ensure(&topic);
        let (oldest, next) = (log.oldest(), log.next());
        let from = start.resolve(oldest, next);
        self.set.set_fed(&key, true);
        self.resumed.insert(
            key.clone(),
            Resumed {
                topic: topic.clone(),
                next: from,
                gap: false,
            },
        );
        self.resumed_by_topic
            .entry(topic)
            .or_default()
            .push(key.clone());
        self.feed(&key, None, out);
        Ok(())
    }

    fn unsubscribe(&mut self, key: &SubscriberKey, out: &mut Vec<Delivery>) {
        self.forget_resumed(key);
        if let Some(destination) = self.set.unsubscribe(key) {
            match destination.kind() {
                DestinationKind::Queue => self.dispatch(destination.as_str(), out),
                DestinationKind::Topic if self.set.subscriber_count(destination.as_str()) == 0 => {
                    self.logs.forget_if_empty(destination.as_str());
                }
                _ => {}
            }
        }
    }

    fn publish(&mut self, publish: Publish, out: &mut Vec<Delivery>) {
        if self.try_publish(publish, out).is_err() {
            self.dropped += 1;
        }
    }

    fn try_publish(
        &mut self,
        publish: Publish,
        out: &mut Vec<Delivery>,
    ) -> Result<(), crate::Error> {
        let destination = publish.destination.clone();
        let name = destination.as_str();
        match destination.kind() {
            DestinationKind::App => {
                return Err(crate::Error::Refused(format!(
                    "no handler for {destination}"
                )));
            }
            DestinationKind::Topic => {
                self.publish_topic(publish, out);
            }
            DestinationKind::User => {
                let message = Arc::new(Message::new(self.new_id(), publish));
                self.dropped += self.set.fan_out(name, &message, 0, out);
            }
            DestinationKind::Queue => {
                let size = publish.size();
                self.check_queue_budget(&destination, size)
                    .map_err(crate::Error::Refused)?;
                let message = Arc::new(Message::new(self.new_id(), publish));
                let held = self.held.entry(destination.shared().clone()).or_default();
                held.bytes += size;
                held.messages += 1;
                self.bytes += size;
                self.set
                    .enqueue(&destination, Held::new(message, size), false);
                self.dispatch(name, out);
            }
        }
        Ok(())
    }

    fn ack(&mut self, key: &SubscriberKey, ids: &[MessageId], out: &mut Vec<Delivery>) {
        if let Some((destination, acked)) = self.set.ack(key, ids) {
            match destination.kind() {
                DestinationKind::Queue => {
                    self.release(destination.as_str(), acked.into_iter().map(|h| h.tag));
                    self.dispatch(destination.as_str(), out);
                }
                _ => self.feed(key, None, out),
            }
        }
    }

    fn nack(&mut self, key: &SubscriberKey, ids: &[MessageId], out: &mut Vec<Delivery>) {
        if let Some(destination) = self.set.nack(key, ids) {
            match destination.kind() {
                DestinationKind::Queue => self.dispatch(destination.as_str(), out),
                _ => self.feed(key, None, out),
            }
        }
    }
}
