//! The application's own traffic: publishing from Rust ([`Broker::publish`]), sending to a
//! user ([`Broker::send_to_user`]) and consuming in a Rust task
//! ([`Broker::subscribe`] → [`InProcessSubscription`]).
//!
//! Where it sits in the flow: a publish goes to the hub's sans-IO broker and its engine like a
//! client's SEND (no session: no `user-id`, no receipt), so with Redis it reaches every node.
//! An in-process subscription is a session of the engine like any client's, opened by the
//! broker itself (let in without the authenticator, see [`crate::authenticator`]): queue
//! semantics, redelivery and, with Redis, claims apply to it as to a WebSocket client. Its
//! frames go through the hub into a connection queue, which [`InProcessSubscription::next`]
//! reads instead of a socket.
//!
//! The session's principal is `wsx-broker` (so `/user/queue/NAME` is
//! `/user/wsx-broker/queue/NAME`); it has no heart-beats and no idle limit.
//!
//! Bounds: a queue is consumed in `client-individual` mode, at most 256 messages
//! unacknowledged (the session's window); acknowledge each with [`ReceivedMessage::ack`] or
//! give it back with [`ReceivedMessage::nack`] (another consumer, or this one, gets it again,
//! marked redelivered). A topic or user destination is consumed in `auto` mode: at most
//! [`crate::hub::LINK_QUEUE_LEN`] (1024) messages wait to be taken; past that the consumer is
//! too slow and dropped, and [`InProcessSubscription::next`] returns `None`.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use wsx_stomp::{
    Command, ConnId, Decoder, Destination, DestinationKind, Frame, Headers, Limits, Publish,
    Version,
};

use crate::broker::Broker;
use crate::error::Error;
use crate::hub::{ConnectionQueue, Outbound, Written};

/// The subscription id of an in-process session's one subscription.
const SUBSCRIPTION_ID: &str = "0";
/// The receipt that confirms the SUBSCRIBE.
const SUBSCRIBED: &str = "subscribed";

impl Broker {
    /// Publish a message from the server to a topic, queue or user destination
    /// (`/user/{principal}/queue/NAME`), delivered like a client's SEND (on every node with
    /// Redis). Refused (`Error::Refused`) for anything else (`/app/` included) and when the
    /// engine refuses it (a budget crossed).
    pub fn publish(
        &self,
        destination: &str,
        headers: Headers,
        body: impl Into<Bytes>,
    ) -> Result<(), Error> {
        let parsed = Destination::parse(destination)
            .filter(|d| d.kind() != DestinationKind::App)
            .ok_or_else(|| {
                Error::Refused(format!(
                    "`{destination}`: expected /topic/NAME, /queue/NAME or \
                     /user/PRINCIPAL/queue/NAME"
                ))
            })?;
        self.publish_to(parsed, headers, body.into())
    }

    /// Publish a message from the server to topic `destination` (`/topic/NAME`) and return
    /// the offset it got in the topic (its subscribers see it as `x-stream-offset`), once it
    /// is stored: at once in memory, once Redis answered with `--broker redis://…` (which
    /// may be after Redis comes back, within the broker's `max-pending-sends`). Refused
    /// (`Error::Refused`) for anything but a topic, and when the engine refuses the message.
    /// An offset of 0 (never given to a message) means stored but not known: Redis was asked
    /// twice (a write retried after a timeout) and answered the second time.
    pub async fn publish_with_offset(
        &self,
        destination: &str,
        headers: Headers,
        body: impl Into<Bytes>,
    ) -> Result<u64, Error> {
        let parsed = Destination::parse(destination)
            .filter(|d| d.kind() == DestinationKind::Topic)
            .ok_or_else(|| Error::Refused(format!("`{destination}`: expected /topic/NAME")))?;
        let publish = Publish::new(parsed, headers, body.into());
        let pending = self
            .hub
            .publish_through(DestinationKind::Topic, |engine, out| {
                engine.backend_mut().publish_with_offset(publish, out)
            })
            .map_err(Error::Refused)?;
        pending.stored().await.map_err(Error::Refused)
    }

    /// Send a message to every session of `principal` subscribed to `/user/queue/NAME`, on
    /// every node: `path` is `/queue/NAME` (or `/topic/NAME`), the message goes to
    /// `/user/{principal}/queue/NAME`.
    pub fn send_to_user(
        &self,
        principal: &str,
        path: &str,
        headers: Headers,
        body: impl Into<Bytes>,
    ) -> Result<(), Error> {
        let destination = Destination::for_user(principal, path).ok_or_else(|| {
            Error::Refused(format!(
                "user `{principal}`, `{path}`: expected a principal without `/` and /queue/NAME"
            ))
        })?;
        self.publish_to(destination, headers, body.into())
    }

    /// Publish through the hub; the engine's refusal is the application's error.
    fn publish_to(
        &self,
        destination: Destination,
        headers: Headers,
        body: Bytes,
    ) -> Result<(), Error> {
        self.hub
            .publish(Publish::new(destination, headers, body))
            .map_err(|e| Error::Refused(e.to_string()))
    }

    /// Consume `destination` in a Rust task: a session of the broker's own, subscribed to it
    /// (see the module docs for the modes and bounds). Refused (`Error::Refused`) when the
    /// session refuses the subscription (not a destination, `/app/`, a budget).
    pub fn subscribe(self: &Arc<Self>, destination: &str) -> Result<InProcessSubscription, Error> {
        self.subscribe_with(destination, &[])
    }

    /// [`Broker::subscribe`] with `extra` headers on the SUBSCRIBE (such as
    /// `x-stream-offset: offset=N`, where to start in a topic's history).
    pub fn subscribe_with(
        self: &Arc<Self>,
        destination: &str,
        extra: &[(&str, &str)],
    ) -> Result<InProcessSubscription, Error> {
        let (conn, queue, _) = self.hub.open(self.in_process_info.clone());
        let session = Arc::new(InProcessSession {
            broker: self.clone(),
            conn,
            queue,
        });
        let mut subscription = InProcessSubscription {
            session,
            decoder: Decoder::new(Limits::default()),
            received: VecDeque::new(),
            ended: None,
            subscribed: false,
        };
        subscription.decoder.set_version(Version::V1_2);
        let queue_mode =
            Destination::parse(destination).is_some_and(|d| d.kind() == DestinationKind::Queue);
        subscription.session.send(
            &Frame::new(Command::Connect)
                .with_header("accept-version", "1.2")
                .with_header("heart-beat", "0,0"),
        );
        let mut subscribe = Frame::new(Command::Subscribe);
        for (name, value) in extra {
            subscribe = subscribe.with_header(*name, *value);
        }
        subscription.session.send(
            &subscribe
                .with_header("id", SUBSCRIPTION_ID)
                .with_header("destination", destination)
                .with_header(
                    "ack",
                    if queue_mode {
                        "client-individual"
                    } else {
                        "auto"
                    },
                )
                .with_header("receipt", SUBSCRIBED),
        );
        // The hub answers within the calls: CONNECTED, then the RECEIPT (or an ERROR), maybe
        // queue messages before it.
        subscription.fetch_queued();
        match (&subscription.ended, subscription.subscribed) {
            (_, true) => Ok(subscription),
            (Some(reason), false) => Err(Error::Refused(reason.clone())),
            (None, false) => Err(Error::Refused(format!(
                "`{destination}`: the subscription was not confirmed"
            ))),
        }
    }
}

/// The session behind an in-process subscription; closed once the subscription and every
/// message it received are dropped (unacknowledged queue messages then go to other consumers).
#[derive(Debug)]
struct InProcessSession {
    broker: Arc<Broker>,
    conn: ConnId,
    queue: Arc<ConnectionQueue>,
}

impl InProcessSession {
    /// Hand a frame to the session, as if the client had sent it.
    fn send(&self, frame: &Frame) {
        if let Ok(bytes) = frame.encode(Version::V1_2) {
            self.broker
                .hub
                .receive(self.conn, &bytes, Written::default());
        }
    }
}

impl Drop for InProcessSession {
    fn drop(&mut self) {
        self.broker.hub.close(self.conn);
        self.queue.close();
    }
}

/// A Rust consumer of one destination ([`Broker::subscribe`]).
#[derive(Debug)]
pub struct InProcessSubscription {
    session: Arc<InProcessSession>,
    decoder: Decoder,
    received: VecDeque<ReceivedMessage>,
    /// Why the session ended, once it has.
    ended: Option<String>,
    /// Whether the SUBSCRIBE was confirmed.
    subscribed: bool,
}

impl InProcessSubscription {
    /// The next message; `None` once the subscription ended (dropped as too slow, or the
    /// broker shut down: [`Broker::close_sessions`]). Cancel-safe.
    pub async fn next(&mut self) -> Option<ReceivedMessage> {
        loop {
            if let Some(message) = self.received.pop_front() {
                return Some(message);
            }
            if self.ended.is_some() {
                return None;
            }
            self.fetch_queued();
            if self.received.is_empty() && self.ended.is_none() {
                let mut closing = self.session.broker.closing.subscribe();
                tokio::select! {
                    () = self.session.queue.ready() => {}
                    _ = closing.wait_for(|closing| *closing) => {
                        self.ended = Some("server shutting down".to_owned());
                    }
                }
            }
        }
    }

    /// Why the subscription ended (`None` while it runs).
    pub fn end_reason(&self) -> Option<&str> {
        self.ended.as_deref()
    }

    /// Take what the hub queued (only when nothing waits here, so that at most one queue's
    /// worth is held), report it written, and decode it.
    fn fetch_queued(&mut self) {
        let mut outs = Vec::new();
        let drained = self.session.queue.drain_into(usize::MAX, &mut outs);
        if drained.dropped {
            self.ended = Some("too slow".to_owned());
        }
        let mut written = Written {
            transmits: 0,
            bytes: drained.replaced_bytes,
        };
        for out in &outs {
            match out {
                Outbound::Frame(frame) => {
                    written.transmits += 1;
                    written.bytes += out.budget_size();
                    self.decoder.feed(&frame.to_bytes());
                }
                Outbound::HeartBeat => written.transmits += 1,
                Outbound::Replaced(count) => written.transmits += count,
                Outbound::Close(reason) => {
                    self.ended = Some(reason.clone().unwrap_or_else(|| "closed".to_owned()));
                }
            }
        }
        if written != Written::default() {
            self.session.broker.hub.written(self.session.conn, written);
        }
        while let Ok(Some(frame)) = self.decoder.poll_frame() {
            match frame.command {
                Command::Message => self
                    .received
                    .push_back(ReceivedMessage::new(frame, self.session.clone())),
                Command::Receipt if frame.header("receipt-id") == Some(SUBSCRIBED) => {
                    self.subscribed = true;
                }
                Command::Error => {
                    self.ended = Some(frame.header("message").unwrap_or("error").to_owned());
                }
                _ => {}
            }
        }
    }
}

/// A message an [`InProcessSubscription`] received.
#[derive(Debug)]
pub struct ReceivedMessage {
    /// The destination it was sent to.
    pub destination: String,
    /// Its headers (`message-id`, `destination`, `redelivered`, the sender's own …).
    pub headers: Headers,
    /// Its body.
    pub body: Bytes,
    /// The `ack` id of a queue message (`None` in `auto` mode).
    ack_id: Option<String>,
    session: Arc<InProcessSession>,
}

impl ReceivedMessage {
    fn new(frame: Frame, session: Arc<InProcessSession>) -> Self {
        ReceivedMessage {
            destination: frame.header("destination").unwrap_or_default().to_owned(),
            ack_id: frame.header("ack").map(str::to_owned),
            headers: frame.headers,
            body: frame.body,
            session,
        }
    }

    /// The body as text, if it is UTF-8.
    pub fn body_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.body).ok()
    }

    /// Whether it was delivered before and came back (a NACK, or its consumer went away).
    pub fn redelivered(&self) -> bool {
        self.headers.get("redelivered") == Some("true")
    }

    /// Acknowledge it: the queue forgets it (nothing to do for a topic message).
    pub fn ack(self) {
        self.answer(Command::Ack);
    }

    /// Give it back: the queue delivers it again (to any consumer), marked redelivered
    /// (nothing to do for a topic message).
    pub fn nack(self) {
        self.answer(Command::Nack);
    }

    fn answer(&self, command: Command) {
        if let Some(id) = &self.ack_id {
            self.session
                .send(&Frame::new(command).with_header("id", id.clone()));
        }
    }
}
