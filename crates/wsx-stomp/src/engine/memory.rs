//! The in-process [`Engine`]: synchronous and deterministic.
//!
//! Topics keep a list of subscribers in subscription order. Queues keep the messages waiting
//! for a consumer, the consumers in subscription order and a round-robin cursor: each message
//! goes to the next consumer (from the cursor) with room in its window. Messages a consumer
//! NACKs, or had not acknowledged when it went away, go back to the front of their queue,
//! marked redelivered. A queue holds at most [`MemoryEngine::with_max_queue_depth`] waiting
//! messages; publishing to a full queue drops its oldest waiting message (RabbitMQ's default
//! `drop-head` policy), counted in [`MemoryEngine::dropped`].

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use super::{Delivery, Engine, SubscriberKey};
use crate::destination::{Destination, DestinationKind};
use crate::message::{Message, MessageId, Publish};

/// An in-memory topic and queue router.
#[derive(Debug)]
pub struct MemoryEngine {
    next_id: u64,
    max_queue_depth: usize,
    dropped: u64,
    topics: HashMap<Arc<str>, Vec<SubscriberKey>>,
    queues: HashMap<Arc<str>, Queue>,
    consumers: HashMap<SubscriberKey, Consumer>,
}

#[derive(Debug)]
struct Consumer {
    destination: Destination,
    window: Option<usize>,
    in_flight: Vec<Arc<Message>>,
}

impl Consumer {
    fn has_room(&self) -> bool {
        self.window.is_none_or(|w| self.in_flight.len() < w)
    }
}

#[derive(Debug, Default)]
struct Queue {
    ready: VecDeque<(Arc<Message>, bool)>,
    consumers: Vec<SubscriberKey>,
    cursor: usize,
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
            topics: HashMap::new(),
            queues: HashMap::new(),
            consumers: HashMap::new(),
        }
    }

    /// Set how many messages a queue holds while waiting for consumers.
    pub fn with_max_queue_depth(mut self, depth: usize) -> Self {
        self.max_queue_depth = depth.max(1);
        self
    }

    /// Messages waiting in queue `destination` (`/queue/NAME`), not delivered yet.
    pub fn queue_depth(&self, destination: &str) -> usize {
        self.queues.get(destination).map_or(0, |q| q.ready.len())
    }

    /// Subscriptions (topic subscribers or queue consumers) on `destination`.
    pub fn subscriber_count(&self, destination: &str) -> usize {
        self.topics.get(destination).map_or(0, Vec::len)
            + self
                .queues
                .get(destination)
                .map_or(0, |q| q.consumers.len())
    }

    /// Messages delivered to `key` and not acknowledged yet (client ack modes only).
    pub fn unacked(&self, key: &SubscriberKey) -> usize {
        self.consumers.get(key).map_or(0, |c| c.in_flight.len())
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

    /// Hand waiting messages of queue `name` to consumers with room, round-robin.
    fn dispatch(&mut self, name: &str, out: &mut Vec<Delivery>) {
        let Some(queue) = self.queues.get_mut(name) else {
            return;
        };
        while !queue.ready.is_empty() && !queue.consumers.is_empty() {
            let n = queue.consumers.len();
            let chosen = (0..n).map(|step| (queue.cursor + step) % n).find(|&i| {
                self.consumers
                    .get(&queue.consumers[i])
                    .is_some_and(Consumer::has_room)
            });
            let Some(i) = chosen else { break };
            let Some((message, redelivered)) = queue.ready.pop_front() else {
                break;
            };
            queue.cursor = (i + 1) % n;
            let key = queue.consumers[i].clone();
            if let Some(consumer) = self.consumers.get_mut(&key)
                && consumer.window.is_some()
            {
                consumer.in_flight.push(message.clone());
            }
            out.push(Delivery {
                subscriber: key,
                message,
                redelivered,
            });
        }
        if queue.ready.is_empty() && queue.consumers.is_empty() {
            self.queues.remove(name);
        }
    }

    /// Put messages back at the front of their queue, in their original order.
    fn requeue(&mut self, destination: &Destination, messages: Vec<Arc<Message>>) {
        let queue = self.queues.entry(destination.shared().clone()).or_default();
        for message in messages.into_iter().rev() {
            queue.ready.push_front((message, true));
        }
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
            DestinationKind::Topic => self.topics.entry(name).or_default().push(key),
            DestinationKind::Queue => {
                self.queues.entry(name).or_default().consumers.push(key);
                self.dispatch(destination.as_str(), out);
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
                    }
                }
            }
            DestinationKind::Queue => {
                if let Some(queue) = self.queues.get_mut(name)
                    && let Some(i) = queue.consumers.iter().position(|k| k == key)
                {
                    queue.consumers.remove(i);
                    if i < queue.cursor {
                        queue.cursor -= 1;
                    }
                    if queue.cursor >= queue.consumers.len() {
                        queue.cursor = 0;
                    }
                }
                self.requeue(&destination, consumer.in_flight);
                self.dispatch(name, out);
            }
        }
    }

    fn publish(&mut self, publish: Publish, out: &mut Vec<Delivery>) {
        let id = self.new_id();
        let destination = publish.destination.clone();
        let message = Arc::new(Message::new(id, publish));
        let name = destination.as_str();
        match destination.kind() {
            DestinationKind::Topic => {
                let Some(subscribers) = self.topics.get(name) else {
                    return;
                };
                for key in subscribers {
                    let Some(consumer) = self.consumers.get_mut(key) else {
                        continue;
                    };
                    if !consumer.has_room() {
                        self.dropped += 1;
                        continue;
                    }
                    if consumer.window.is_some() {
                        consumer.in_flight.push(message.clone());
                    }
                    out.push(Delivery {
                        subscriber: key.clone(),
                        message: message.clone(),
                        redelivered: false,
                    });
                }
            }
            DestinationKind::Queue => {
                let queue = self.queues.entry(destination.shared().clone()).or_default();
                if queue.ready.len() >= self.max_queue_depth {
                    queue.ready.pop_front();
                    self.dropped += 1;
                }
                queue.ready.push_back((message, false));
                self.dispatch(name, out);
            }
        }
    }

    fn ack(&mut self, key: &SubscriberKey, ids: &[MessageId], out: &mut Vec<Delivery>) {
        let Some(consumer) = self.consumers.get_mut(key) else {
            return;
        };
        consumer.in_flight.retain(|m| !ids.contains(m.id()));
        if consumer.destination.kind() == DestinationKind::Queue {
            let name = consumer.destination.shared().clone();
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
            .partition(|m| ids.contains(m.id()));
        consumer.in_flight = kept;
        if consumer.destination.kind() == DestinationKind::Queue {
            let destination = consumer.destination.clone();
            self.requeue(&destination, rejected);
            self.dispatch(destination.as_str(), out);
        }
    }
}
