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
//! Flow control: a subscription in a client ack mode has a window (`max_unacked`), and so does
//! a session's `ack:auto` queue subscription (`auto_ack_window`: the session acknowledges each
//! delivery once the I/O layer wrote it, see [`crate::Session::written`]). An engine gives a
//! queue message only to a subscriber with room in its window, and skips a topic subscriber
//! whose window is full (a topic does not keep messages for slow subscribers).
//!
//! Selectors: a subscription made with [`Engine::subscribe_with_selector`] gets only the
//! messages its [`Selector`] matches. A topic skips the subscribers whose selector does not
//! match (that is not a drop); a queue gives each message to the next consumer in turn that
//! has room *and* selects it, and a message no consumer with room selects waits in the queue
//! while the ones behind it go ahead.
//!
//! Confirmed publishing: a session hands every SEND to [`Engine::try_publish_from`] with its
//! [`Origin`] (connection, the `receipt` it asked for, a sequence number of the session). An
//! engine that stores messages elsewhere may answer [`Outcome::Pending`]: the session then
//! holds back the SEND's RECEIPT (and that of a DISCONNECT or COMMIT behind it) until the
//! engine reports the outcome, later and through the I/O layer, as a [`Confirmation`]:
//! [`Confirmation::Stored`] sends the RECEIPT, [`Confirmation::Failed`] an ERROR (with the
//! `receipt-id`) and closes the session, exactly like a refusal at once. The I/O layer hands
//! confirmations to [`crate::Session::confirm`] ([`crate::Broker::confirm`] routes them by
//! connection). The default answers [`Outcome::Done`] through [`Engine::try_publish`], so
//! engines that store at once ([`MemoryEngine`]) need nothing more.
//!
//! [`ConsumerSet`] implements that bookkeeping (windows, in-flight messages, round-robin queue
//! dispatch, requeueing on NACK or unsubscribe) once, for [`MemoryEngine`] and for engines
//! outside this crate.

mod consumers;
mod memory;
mod stream;
mod topic_log;

use std::sync::Arc;

pub use consumers::{ConsumerSet, Fed, Held};
pub use memory::MemoryEngine;
pub use stream::{FIRST_OFFSET, StreamStart, TopicHistory};

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

/// Where a SEND came from, for its [`Confirmation`]: given to [`Engine::try_publish_from`] and
/// given back unchanged in the confirmation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    /// The connection that sent it.
    pub conn: ConnId,
    /// The receipt the client asked for: the SEND's `receipt` header, or that of the COMMIT
    /// publishing it (sent back as `receipt-id` in the RECEIPT or the ERROR).
    pub receipt: Option<Arc<str>>,
    /// The destination (for the engine's logs and the I/O layer's metrics).
    pub destination: Destination,
    /// The session's number for this SEND, unique within the connection: how the session
    /// matches the confirmation to what waits for it.
    pub seq: u64,
}

/// What [`Engine::try_publish_from`] did with a SEND it accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Stored (and delivered as far as it goes): the session confirms the SEND at once.
    Done,
    /// Accepted, not stored yet: the engine reports the outcome later, as one
    /// [`Confirmation`] for this [`Origin`]; the session holds the SEND's RECEIPT until then.
    Pending,
}

/// The outcome of a SEND answered with [`Outcome::Pending`], reported by the engine through
/// the I/O layer to [`crate::Session::confirm`] (or [`crate::Broker::confirm`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirmation {
    /// The message is stored: the session sends the RECEIPT the SEND asked for.
    Stored(Origin),
    /// The message could not be stored and is not delivered: the session answers with an
    /// ERROR whose `message` is this reason (and `receipt-id`, if a receipt was asked for),
    /// then closes.
    Failed(Origin, String),
}

impl Confirmation {
    /// The SEND it confirms.
    pub fn origin(&self) -> &Origin {
        match self {
            Confirmation::Stored(origin) | Confirmation::Failed(origin, _) => origin,
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
    /// Whether messages were missed before it: the first delivery of a subscription resumed
    /// from an offset older than the topic retains (its MESSAGE carries `x-stream-gap:true`).
    pub gap: bool,
}

impl Delivery {
    /// A first delivery of `message` to `subscriber` (not redelivered, no gap).
    pub fn new(subscriber: SubscriberKey, message: Arc<Message>) -> Self {
        Delivery {
            subscriber,
            message,
            redelivered: false,
            gap: false,
        }
    }
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

    /// [`Engine::subscribe_with_selector`] to a topic, starting at `start` (the SUBSCRIBE's
    /// `x-stream-offset`, see [`StreamStart`]) instead of with the next message published.
    /// A resumed subscription gets the topic's retained messages from there on, in offset
    /// order, then the live ones, with no gap and no duplicate at the seam; the first
    /// delivery is marked [`Delivery::gap`] when messages were missed. `max_unacked` paces
    /// the replay: sessions give a resumed `ack:auto` subscription a window, acknowledged as
    /// frames are written. The default supports only [`StreamStart::Next`] and refuses the
    /// others with [`crate::Error::Unsupported`].
    fn subscribe_at(
        &mut self,
        key: SubscriberKey,
        destination: &Destination,
        max_unacked: Option<usize>,
        selector: Option<Selector>,
        start: StreamStart,
        out: &mut Vec<Delivery>,
    ) -> Result<(), crate::Error> {
        match start {
            StreamStart::Next => {
                self.subscribe_with_selector(key, destination, max_unacked, selector, out)
            }
            _ => Err(crate::Error::Unsupported(
                "this broker's engine keeps no topic history (x-stream-offset)".to_owned(),
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

    /// [`Engine::try_publish`] for a SEND from `origin`, whose outcome the engine may report
    /// later. Sessions call this for every SEND (every one a COMMIT publishes included, with the
    /// COMMIT's receipt). `Ok(Outcome::Done)`: stored at once. `Ok(Outcome::Pending)`:
    /// accepted; the engine must later report exactly one [`Confirmation`] carrying `origin`
    /// (through the I/O layer, to [`crate::Session::confirm`]) — a SEND it cannot store after
    /// all is a [`Confirmation::Failed`], never a silent drop. `Err`: refused at once, as with
    /// [`Engine::try_publish`]. The default calls [`Engine::try_publish`] and answers
    /// [`Outcome::Done`], so a wrapper engine must forward this method for confirmations to
    /// work through it.
    fn try_publish_from(
        &mut self,
        message: Publish,
        origin: Origin,
        out: &mut Vec<Delivery>,
    ) -> Result<Outcome, crate::Error> {
        let _ = origin;
        self.try_publish(message, out).map(|()| Outcome::Done)
    }

    /// `key` processed these messages: they leave its window for good.
    fn ack(&mut self, key: &SubscriberKey, ids: &[MessageId], out: &mut Vec<Delivery>);

    /// `key` rejects these messages: queue messages are delivered again (to the next consumer
    /// in turn), topic messages are dropped.
    fn nack(&mut self, key: &SubscriberKey, ids: &[MessageId], out: &mut Vec<Delivery>);
}
