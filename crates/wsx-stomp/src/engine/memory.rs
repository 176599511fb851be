//! The in-process [`Engine`]: synchronous and deterministic.
//!
//! Topics keep a list of subscribers in subscription order. Queues keep the messages waiting
//! for a consumer, the consumers in subscription order and a round-robin cursor: each message
//! goes to the next consumer (from the cursor) with room in its window. Messages a consumer
//! NACKs, or had not acknowledged when it went away, go back to the front of their queue,
//! marked redelivered. Subscriptions may have a selector (see [`super::ConsumerSet`] for how
//! topics and queues apply it). A queue holds at most [`MemoryEngine::with_max_queue_depth`] waiting
//! messages; publishing to a full queue drops its oldest waiting message (RabbitMQ's default
//! `drop-head` policy), counted in [`MemoryEngine::dropped`].
//!
//! The consumer bookkeeping (windows, in-flight messages, round-robin dispatch, requeueing) is
//! a [`ConsumerSet`], shared with other engines; this engine adds message ids, the queue
//! length limit and the drop counter.

use std::sync::Arc;

use super::consumers::{ConsumerSet, Held};
use super::{Delivery, Engine, SubscriberKey};
use crate::destination::{Destination, DestinationKind};
use crate::message::{Message, MessageId, Publish};
use crate::selector::Selector;

/// An in-memory topic and queue router.
#[derive(Debug)]
pub struct MemoryEngine {
    next_id: u64,
    max_queue_depth: usize,
    dropped: u64,
    set: ConsumerSet,
}

impl Default for MemoryEngine {
    fn default() -> Self {
        MemoryEngine::new()
    }
}

impl MemoryEngine {
    /// An empty engine; queues hold up to 10 000 waiting messages.
    pub fn new() -> Self {
        MemoryEngine {
            next_id: 0,
            max_queue_depth: 10_000,
            dropped: 0,
            set: ConsumerSet::new(),
        }
    }

    /// Set how many messages a queue holds while waiting for consumers.
    pub fn with_max_queue_depth(mut self, depth: usize) -> Self {
        self.max_queue_depth = depth.max(1);
        self
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

    /// Messages dropped: topic messages for subscribers whose window was full, and the oldest
    /// messages of full queues.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    fn new_id(&mut self) -> MessageId {
        self.next_id += 1;
        MessageId::new(self.next_id.to_string())
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
        // Never fails without a selector.
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
        self.set
            .subscribe_with_selector(key, destination, max_unacked, selector);
        if destination.kind() == DestinationKind::Queue {
            self.set.dispatch(destination.as_str(), out);
        }
        Ok(())
    }

    fn unsubscribe(&mut self, key: &SubscriberKey, out: &mut Vec<Delivery>) {
        if let Some(destination) = self.set.unsubscribe(key)
            && destination.kind() == DestinationKind::Queue
        {
            self.set.dispatch(destination.as_str(), out);
        }
    }

    fn publish(&mut self, publish: Publish, out: &mut Vec<Delivery>) {
        let id = self.new_id();
        let destination = publish.destination.clone();
        let message = Arc::new(Message::new(id, publish));
        let name = destination.as_str();
        match destination.kind() {
            DestinationKind::Topic => {
                self.dropped += self.set.fan_out(name, &message, (), out);
            }
            DestinationKind::Queue => {
                if self.set.queue_depth(name) >= self.max_queue_depth {
                    self.set.pop_oldest(name);
                    self.dropped += 1;
                }
                self.set
                    .enqueue(&destination, Held::new(message, ()), false);
                self.set.dispatch(name, out);
            }
        }
    }

    fn ack(&mut self, key: &SubscriberKey, ids: &[MessageId], out: &mut Vec<Delivery>) {
        if let Some((destination, _)) = self.set.ack(key, ids)
            && destination.kind() == DestinationKind::Queue
        {
            self.set.dispatch(destination.as_str(), out);
        }
    }

    fn nack(&mut self, key: &SubscriberKey, ids: &[MessageId], out: &mut Vec<Delivery>) {
        if let Some(destination) = self.set.nack(key, ids)
            && destination.kind() == DestinationKind::Queue
        {
            self.set.dispatch(destination.as_str(), out);
        }
    }
}
