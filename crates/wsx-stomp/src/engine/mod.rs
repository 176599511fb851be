//! Destination routing behind a trait: topics (publish/subscribe) and queues (enqueue, claim,
//! ack, nack).
//!
//! Sessions drive an [`Engine`] with what their clients do (subscribe, publish, ack, nack,
//! go away) and the engine answers with [`Delivery`] values pushed into an `out` vector: which
//! message goes to which subscription of which connection. The caller hands each delivery to
//! the session owning that connection ([`crate::Session::deliver`]); [`crate::Broker`] does
//! this for engines that live in the same process.
//!
//! The trait is synchronous and does no I/O. [`MemoryEngine`] answers every call at once and
//! deterministically. An engine backed by a shared store (Redis, say) can record the operation,
//! let the I/O layer carry it out, and hand the deliveries it later receives to
//! [`crate::Session::deliver`] directly: nothing requires `out` to be filled during the call.
//!
//! Flow control: a subscription in a client ack mode has a window (`max_unacked`). An engine
//! gives a queue message only to a subscriber with room in its window, and skips a topic
//! subscriber whose window is full (a topic does not keep messages for slow subscribers).
//!
//! Selectors: a subscription made with [`Engine::subscribe_with_selector`] gets only the
//! messages its [`Selector`] matches. A topic skips the subscribers whose selector does not
//! match (that is not a drop); a queue gives each message to the next consumer in turn that
//! has room *and* selects it, and a message no consumer with room selects waits in the queue
//! while the ones behind it go ahead.
//!
//! [`ConsumerSet`] implements that bookkeeping (windows, in-flight messages, round-robin queue
//! dispatch, requeueing on NACK or unsubscribe) once, for [`MemoryEngine`] and for engines
//! outside this crate.

mod consumers;
mod memory;

use std::sync::Arc;

pub use consumers::{ConsumerSet, Held};
pub use memory::MemoryEngine;

use crate::destination::Destination;
use crate::message::{Message, MessageId, Publish};
use crate::selector::Selector;

/// Identifies a connection (one session) to the engine and the I/O layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// One subscription: the connection and the client's subscription `id`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SubscriberKey {
    /// The connection.
    pub conn: ConnId,
    /// The `id` header of the SUBSCRIBE frame.
    pub subscription: Arc<str>,
}

impl SubscriberKey {
    /// The key of subscription `subscription` on `conn`.
    pub fn new(conn: ConnId, subscription: impl Into<Arc<str>>) -> Self {
        SubscriberKey {
            conn,
            subscription: subscription.into(),
        }
    }
}

/// A message to hand to one subscription.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Who gets it.
    pub subscriber: SubscriberKey,
    /// The message, shared with its other deliveries.
    pub message: Arc<Message>,
    /// Whether it was delivered before and came back (NACK, or its consumer went away).
    pub redelivered: bool,
}

/// Destination routing. All methods push the deliveries they cause into `out`.
pub trait Engine {
    /// Start delivering messages sent to `destination` to `key`. `max_unacked` is the
    /// subscriber's window in a client ack mode, `None` in auto mode (deliveries count as
    /// acknowledged at once). A queue may deliver messages waiting for a consumer at once.
    fn subscribe(
        &mut self,
        key: SubscriberKey,
        destination: &Destination,
        max_unacked: Option<usize>,
        out: &mut Vec<Delivery>,
    );

    /// [`Engine::subscribe`] with a [`Selector`]: deliver to `key` only the messages whose
    /// headers match it (`None`: every message). Sessions call this for every SUBSCRIBE and
    /// answer an `Err` with an ERROR. The default supports no selector: it subscribes when
    /// there is none and returns [`crate::Error::Unsupported`] otherwise, so a wrapper engine
    /// must forward this method for selectors to work through it.
    fn subscribe_with_selector(
        &mut self,
        key: SubscriberKey,
        destination: &Destination,
        max_unacked: Option<usize>,
        selector: Option<Selector>,
        out: &mut Vec<Delivery>,
    ) -> Result<(), crate::Error> {
        match selector {
            None => {
                self.subscribe(key, destination, max_unacked, out);
                Ok(())
            }
            Some(_) => Err(crate::Error::Unsupported(
                "this broker's engine does not support selectors".to_owned(),
            )),
        }
    }

    /// Stop delivering to `key`. Queue messages it had not acknowledged go back to the queue
    /// and to other consumers (marked redelivered).
    fn unsubscribe(&mut self, key: &SubscriberKey, out: &mut Vec<Delivery>);

    /// Publish a message: a topic delivers it to every subscriber, a queue to one.
    fn publish(&mut self, message: Publish, out: &mut Vec<Delivery>);

    /// Publish, or refuse with [`crate::Error::Refused`] when the engine cannot take the
    /// message (a shared store unreachable with its backlog full, a queue at its length
    /// limit). Sessions call this for every SEND and answer a refusal with an ERROR frame, so
    /// that nothing is dropped silently. The default accepts everything through
    /// [`Engine::publish`].
    fn try_publish(
        &mut self,
        message: Publish,
        out: &mut Vec<Delivery>,
    ) -> Result<(), crate::Error> {
        self.publish(message, out);
        Ok(())
    }

    /// `key` processed these messages: they leave its window for good.
    fn ack(&mut self, key: &SubscriberKey, ids: &[MessageId], out: &mut Vec<Delivery>);

    /// `key` rejects these messages: queue messages are delivered again (to the next consumer
    /// in turn), topic messages are dropped.
    fn nack(&mut self, key: &SubscriberKey, ids: &[MessageId], out: &mut Vec<Delivery>);
}
