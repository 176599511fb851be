//! SUBSCRIBE, UNSUBSCRIBE, SEND, and turning engine deliveries into MESSAGE frames.
//!
//! A SEND's `user-id` header is the session's: the verified principal's name replaces the
//! client's value, or the header is removed for an unverified principal (see
//! [`Principal`]).
//!
//! User destinations (Spring's convention, see [`crate::Destination`]): a SUBSCRIBE to
//! `/user/queue/NAME` subscribes to `/user/{principal}/queue/NAME` of the session's principal
//! (an ERROR if its name is empty or holds a `/`), always allowed; one to another principal's
//! `/user/{name}/…` is an ERROR. The MESSAGE frames carry `destination:/user/queue/NAME`. A
//! SEND to `/user/{name}/queue/NAME` needs [`Principal::may_send`], like any SEND, and fans out
//! to every session of `name` subscribed to it. `/app/NAME` takes SENDs only (an ERROR on
//! SUBSCRIBE): they go to the engine like any SEND, for the I/O layer's application handlers.
//!
//! A SUBSCRIBE's `selector` header is parsed here ([`Selector::parse`]; an invalid one is an
//! ERROR naming the problem) and handed to the engine, which filters before delivering
//! ([`Engine::subscribe_with_selector`]; an engine that cannot filter refuses with an ERROR).
//!
//! A SUBSCRIBE's `x-stream-offset` header (`first`, `last`, `next`, `last=K`, `offset=N`: see
//! [`StreamStart`]) resumes a topic subscription from the topic's history
//! ([`Engine::subscribe_at`]); an invalid value is an ERROR naming the header, and so is the
//! header on anything but a `/topic/` destination (queues and user destinations keep no
//! offsets: a client asking for a replay there would silently get none). `next` is the same
//! as no header. A resumed `ack:auto` subscription is paced: it gets a window
//! (`auto_ack_window`) acknowledged as its frames are written, like an `ack:auto` queue
//! subscription, so that replaying the history never overruns the connection (its MESSAGEs
//! are ordinary frames, not topic messages the I/O layer may count as a slow consumer's).

use std::collections::VecDeque;
use std::sync::Arc;

use super::transactions::TxOp;
use super::{After, Fail, Handled, Phase, Session, Transmit, parse_destination, require};
use crate::auth::Principal;
use crate::conflation::{CONFLATION_KEY, ConflationTag};
use crate::destination::{Destination, DestinationKind};
use crate::engine::{Delivery, Engine, Outcome, StreamStart, SubscriberKey};
use crate::frame::Frame;
use crate::message::{MessageId, Publish, STREAM_OFFSET};
use crate::selector::Selector;
use crate::version::Version;

/// The header naming the sender of a message, set by the session from its [`Principal`].
const USER_ID: &str = "user-id";

/// How a subscription acknowledges messages (the `ack` header of SUBSCRIBE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AckMode {
    /// Messages count as acknowledged when written to the socket (the default): a queue
    /// subscription's deliveries stay with the engine until then (see `auto_ack_window`), a
    /// topic's are sent at most once.
    Auto,
    /// The client ACKs; an ACK covers the message and every earlier one of the subscription.
    Client,
    /// The client ACKs or NACKs each message on its own.
    ClientIndividual,
}

impl AckMode {
    /// Parse `auto`, `client` or `client-individual`.
    pub fn parse(value: &str) -> Option<AckMode> {
        match value {
            "auto" => Some(AckMode::Auto),
            "client" => Some(AckMode::Client),
            "client-individual" => Some(AckMode::ClientIndividual),
            _ => None,
        }
    }

    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            AckMode::Auto => "auto",
            AckMode::Client => "client",
            AckMode::ClientIndividual => "client-individual",
        }
    }
}

/// One active subscription of the session.
#[derive(Debug)]
pub(super) struct Subscription {
    pub(super) id: Arc<str>,
    /// Subscription order, for deterministic iteration.
    pub(super) seq: u64,
    pub(super) destination: Destination,
    pub(super) ack: AckMode,
    /// Deliveries not acknowledged yet, oldest first (so by increasing `ack_id`).
    pub(super) pending: VecDeque<Pending>,
    /// An `ack:auto` subscription with a window: acknowledged to the engine once written
    /// (queues, and topics resumed from an offset).
    pub(super) acks_on_write: bool,
}

/// A delivery waiting for ACK or NACK.
#[derive(Debug)]
pub(super) struct Pending {
    pub(super) ack_id: u64,
    pub(super) message_id: MessageId,
}

impl Session {
    pub(super) fn on_subscribe(
        &mut self,
        frame: &Frame,
        engine: &mut dyn Engine,
        out: &mut Vec<Delivery>,
    ) -> Handled {
        let text = require(frame, "destination")?;
        let id: Arc<str> = match frame.header("id") {
            Some(id) => id.into(),
            // STOMP 1.0 makes the id optional; the destination then names the subscription.
            None if self.version == Version::V1_0 => text.into(),
            None => return Err(Fail::new("SUBSCRIBE frame has no id header")),
        };
        let ack = match frame.header("ack") {
            None => AckMode::Auto,
            Some(value) => AckMode::parse(value).ok_or_else(|| {
                Fail::new(format!(
                    "invalid ack mode `{value}`: use auto, client or client-individual"
                ))
            })?,
        };
        if self.subs.contains_key(&id) {
            return Err(Fail::new(format!(
                "subscription id `{id}` is already in use"
            )));
        }
        if self.subs.len() >= self.config.max_subscriptions {
            return Err(Fail::new(format!(
                "subscription limit of {} reached",
                self.config.max_subscriptions
            )));
        }
        let destination = self.subscription_destination(text)?;
        // A principal's own user destinations (the only ones it gets here) are private to it:
        // always allowed.
        let allowed = destination.kind() == DestinationKind::User
            || self
                .principal
                .as_ref()
                .is_some_and(|p| p.may_subscribe(destination.as_str()));
        if !allowed {
            return Err(Fail::new(format!(
                "not allowed to subscribe to {destination}"
            )));
        }
        let selector = match frame.header("selector") {
            Some(text) => Some(Selector::parse(text).map_err(|e| Fail::new(e.to_string()))?),
            None => None,
        };
        let start = match frame.header(STREAM_OFFSET) {
            None => StreamStart::Next,
            Some(_) if destination.kind() != DestinationKind::Topic => {
                return Err(Fail::new(format!(
                    "{STREAM_OFFSET} applies to /topic/ destinations only, not {destination}"
                )));
            }
            Some(value) => StreamStart::parse(value).ok_or_else(|| {
                Fail::new(format!(
                    "invalid {STREAM_OFFSET} `{value}`: use first, last, next, last=K or offset=N"
                ))
            })?,
        };
        // An auto-mode queue subscription's deliveries stay in flight until written (credit
        // window), and so do a resumed topic subscription's (paced replay); a plain auto-mode
        // topic subscription has none (at most once).
        let resumed = start != StreamStart::Next;
        let window = match ack {
            AckMode::Auto if destination.kind().fans_out() && !resumed => None,
            AckMode::Auto => Some(self.config.auto_ack_window),
            _ => Some(self.config.max_unacked),
        };
        engine
            .subscribe_at(
                SubscriberKey::new(self.conn, id.clone()),
                &destination,
                window,
                selector,
                start,
                out,
            )
            .map_err(|e| Fail::new(e.to_string()))?;
        self.next_sub_seq += 1;
        self.subs.insert(
            id.clone(),
            Subscription {
                id: id.clone(),
                seq: self.next_sub_seq,
                destination: destination.clone(),
                ack,
                pending: VecDeque::new(),
                acks_on_write: ack == AckMode::Auto && window.is_some(),
            },
        );
        Ok(After::Continue)
    }

    /// The destination a SUBSCRIBE to `text` subscribes to: `/user/queue/NAME` (or
    /// `/user/topic/NAME`) is this session's principal's user destination
    /// `/user/{principal}/queue/NAME`; `/user/{principal}/…` must be its own; `/app/…` takes
    /// no subscriptions.
    fn subscription_destination(&self, text: &str) -> Result<Destination, Fail> {
        if let Some(path) = text.strip_prefix("/user")
            && Destination::parse(path).is_some_and(|d| {
                matches!(d.kind(), DestinationKind::Topic | DestinationKind::Queue)
            })
        {
            let name = self.principal.as_ref().map_or("", |p| p.name.as_str());
            return Destination::for_user(name, path).ok_or_else(|| {
                Fail::new(format!(
                    "cannot subscribe to {text}: principal `{name}` has no user destinations \
                     (its name is empty or holds a `/`)"
                ))
            });
        }
        let destination = parse_destination(text)?;
        match destination.kind() {
            DestinationKind::User
                if destination.principal() != self.principal.as_ref().map(|p| p.name.as_str()) =>
            {
                Err(Fail::new(format!(
                    "cannot subscribe to another user's destination: {destination}"
                )))
            }
            DestinationKind::App => Err(Fail::new(format!(
                "cannot subscribe to {destination}: /app/ destinations take SEND frames only"
            ))),
            _ => Ok(destination),
        }
    }

    pub(super) fn on_unsubscribe(
        &mut self,
        frame: &Frame,
        engine: &mut dyn Engine,
        out: &mut Vec<Delivery>,
    ) -> Handled {
        let id: Arc<str> = match (frame.header("id"), frame.header("destination")) {
            (Some(id), _) => id.into(),
            // STOMP 1.0 may name the subscription by its destination.
            (None, Some(destination)) if self.version == Version::V1_0 => self
                .subs
                .values()
                .filter(|s| {
                    s.destination.as_str() == destination
                        || s.destination.alias() == Some(destination)
                })
                .min_by_key(|s| s.seq)
                .map_or_else(|| destination.into(), |s| s.id.clone()),
            (None, _) => return Err(Fail::new("UNSUBSCRIBE frame has no id header")),
        };
        let Some(sub) = self.subs.remove(&id) else {
            return Err(Fail::new(format!("no subscription with id `{id}`")));
        };
        for pending in &sub.pending {
            self.ack_index.remove(&pending.ack_id);
        }
        engine.unsubscribe(&SubscriberKey::new(self.conn, sub.id), out);
        Ok(After::Continue)
    }

    pub(super) fn on_send(
        &mut self,
        frame: Frame,
        engine: &mut dyn Engine,
        out: &mut Vec<Delivery>,
    ) -> Handled {
        let destination = parse_destination(require(&frame, "destination")?)?;
        if !self
            .principal
            .as_ref()
            .is_some_and(|p| p.may_send(destination.as_str()))
        {
            return Err(Fail::new(format!("not allowed to send to {destination}")));
        }
        let transaction = frame.header("transaction").map(str::to_owned);
        let receipt = frame.header("receipt").map(str::to_owned);
        let mut headers = frame.headers;
        // Subscribers see who sent it, never a name the client made up (see `Principal`).
        headers.retain(|name, _| name != USER_ID);
        if let Some(user) = self.principal.as_ref().and_then(Principal::user_id) {
            headers.push(USER_ID, user);
        }
        let publish = Publish::new(destination, headers, frame.body);
        match transaction {
            Some(tx) => self.buffer(&tx, TxOp::Send(publish)),
            None => match self
                .publish(publish, receipt.as_deref(), None, engine, out)
                .map_err(|refused| Fail::new(refused.to_string()))?
            {
                Outcome::Done => Ok(After::Continue),
                Outcome::Pending => Ok(After::Deferred),
            },
        }
    }

    /// Queue a MESSAGE for one of this session's subscriptions.
    ///
    /// Returns the delivery back if the session cannot take it (closed, or no such
    /// subscription any more): the caller should give it back to the engine (for example by
    /// unsubscribing the stale subscriber, which requeues its unacknowledged messages).
    pub fn deliver(&mut self, delivery: Delivery) -> Option<Delivery> {
        if self.phase != Phase::Connected
            || self.unconfirmed.disconnecting()
            || delivery.subscriber.conn != self.conn
        {
            return Some(delivery);
        }
        let Some(sub) = self.subs.get_mut(&delivery.subscriber.subscription) else {
            return Some(delivery);
        };
        let mut ack = None;
        let mut awaits_written = None;
        if sub.ack == AckMode::Auto {
            if sub.acks_on_write {
                awaits_written = Some((sub.id.clone(), sub.seq));
            }
        } else {
            let ack_id = self.next_ack;
            self.next_ack += 1;
            sub.pending.push_back(Pending {
                ack_id,
                message_id: delivery.message.id().clone(),
            });
            self.ack_index.insert(ack_id, sub.id.clone());
            // 1.2 acknowledges by the `ack` header; 1.0 and 1.1 by message-id.
            if self.version == Version::V1_2 {
                ack = Some(ack_id.to_string());
            }
        }
        let frame = delivery.message.encode_delivery(
            self.version,
            &sub.id,
            ack.as_deref(),
            delivery.redelivered,
            delivery.gap,
        );
        let topic = sub.ack == AckMode::Auto && !sub.acks_on_write;
        let key = delivery.message.headers().get(CONFLATION_KEY);
        let transmit = match (topic, key) {
            (true, Some(key)) => Transmit::KeyedTopicMessage(
                frame,
                ConflationTag {
                    subscription: sub.id.clone(),
                    key: Arc::from(key),
                },
            ),
            (true, None) => Transmit::TopicMessage(frame),
            (false, _) => Transmit::Frame(frame),
        };
        let number = self.push(transmit);
        if let Some((subscription, sub_seq)) = awaits_written {
            let id = delivery.message.id().clone();
            self.await_written(number, subscription, sub_seq, id);
        }
        None
    }
}
