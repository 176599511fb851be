//! The per-connection STOMP session: the server side of one client, sans IO.
//!
//! The I/O layer owns one [`Session`] per WebSocket connection and drives it:
//!
//! 1. [`Session::receive`] with the payload of every WebSocket message (frames may be split
//!    across messages or packed several to one; heart-beats are end-of-lines).
//! 2. [`Session::poll_transmit`] until `None`, sending each [`Transmit::Frame`] and
//!    [`Transmit::TopicMessage`] as one WebSocket message, a [`Transmit::HeartBeat`] as `"\n"`,
//!    and closing the connection on [`Transmit::Close`].
//! 3. [`Session::written`] as transmits reach the socket (how many, in order, and their frame
//!    bytes): `ack:auto` queue deliveries are acknowledged to the engine only then, and the
//!    session stops decoding input while too much of its output is unwritten
//!    ([`Session::wants_input`]: the I/O layer then stops reading the connection). See
//!    [`written`].
//! 4. [`Session::poll_timeout`] for the next deadline, and [`Session::handle_timeout`] when it
//!    passes (the session has no clock: every call that needs the time takes `now`).
//! 5. [`Session::shutdown`] when the connection goes away.
//!
//! With an authenticator that defers ([`crate::Admission::Defer`]), the CONNECT produces a
//! [`Transmit::Authenticate`] instead of CONNECTED: the I/O layer authenticates the client
//! (asynchronously) and answers with [`Session::authenticated`]; input is not decoded
//! meanwhile ([`Phase::Authenticating`], see `connect.rs`).
//!
//! Calls that change subscriptions or publish take the [`Engine`] and a `Vec<Delivery>` the
//! engine fills; each delivery goes to the session of its connection through
//! [`Session::deliver`] (the [`crate::Broker`] does this routing for in-process engines).
//!
//! A SEND's RECEIPT means the engine stored the message: when the engine answers a SEND with
//! [`crate::Outcome::Pending`], the RECEIPT waits for its [`crate::Confirmation`], which the
//! I/O layer hands to [`Session::confirm`]; a failure is answered with an ERROR (see
//! [`confirm`]).
//!
//! A client's protocol error (bad frame, missing header, unknown subscription, refused
//! destination, limit crossed) is answered with an ERROR frame whose `message` header names the
//! problem (and `receipt-id` if the frame asked for a receipt); then the session closes:
//! its subscriptions are released and [`Transmit::Close`] follows the ERROR.

mod acks;
mod config;
mod confirm;
mod connect;
mod subscriptions;
mod timers;
mod transactions;
mod written;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

pub use config::SessionConfig;
pub use subscriptions::AckMode;

use crate::auth::{AuthRequest, Authenticator, ConnectionInfo, Principal};
use crate::command::Command;
use crate::conflation::ConflationTag;
use crate::decode::Decoder;
use crate::destination::Destination;
use crate::encode::{EncodedFrame, encode_lossy};
use crate::engine::{ConnId, Delivery, Engine, SubscriberKey};
use crate::error::escape_controls;
use crate::frame::Frame;
use crate::heartbeat::{HeartBeat, HeartBeatHeader};
use crate::version::Version;
use confirm::Unconfirmed;
use subscriptions::Subscription;
use timers::Timers;
use transactions::Transactions;
use written::Unwritten;

/// What the I/O layer must do next for a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transmit {
    /// Send this frame, as one WebSocket message. How many of these wait is bounded by the
    /// session: its own answers by its output budget, queue and client-mode deliveries by
    /// their windows.
    Frame(EncodedFrame),
    /// Send this MESSAGE of an `ack:auto` topic subscription, as one WebSocket message. A
    /// topic does not wait for slow subscribers, so nothing bounds how many of these other
    /// connections' traffic queues: the I/O layer must, and drop a subscriber that falls too
    /// far behind.
    TopicMessage(EncodedFrame),
    /// A [`Transmit::TopicMessage`] whose message carries `x-conflation-key`: while it waits
    /// for a slow client, the I/O layer may replace it by a later one with the same tag (and
    /// count the one replaced as written in its [`Session::written`] reports, in its place).
    KeyedTopicMessage(EncodedFrame, ConflationTag),
    /// Send a heart-beat: one end-of-line, `"\n"`.
    HeartBeat,
    /// Close the WebSocket connection: the session is over and everything before was sent.
    Close,
    /// Authenticate this client and answer with [`Session::authenticated`] (or
    /// [`crate::Broker::authenticated`]): the [`crate::Authenticator`] deferred to the I/O
    /// layer ([`crate::Admission::Defer`]). Nothing is sent to the client for it, and it does
    /// not count as a transmit in [`Session::written`] reports.
    Authenticate(Box<AuthRequest>),
}

/// Where a session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for CONNECT (or STOMP).
    AwaitingConnect,
    /// CONNECT received, waiting for the I/O layer's answer to [`Transmit::Authenticate`]
    /// ([`Session::authenticated`]); input is buffered, not decoded.
    Authenticating,
    /// Connected: the client may subscribe, send, acknowledge. After a DISCONNECT that waits
    /// for the engine to confirm earlier SENDs, the session stays here (subscriptions released,
    /// input ignored) until the last confirmation.
    Connected,
    /// Over (ERROR sent, DISCONNECT processed, timed out or shut down); input is ignored.
    Closed,
}

/// The server side of one STOMP connection.
pub struct Session {
    conn: ConnId,
    info: ConnectionInfo,
    config: Arc<SessionConfig>,
    auth: Arc<dyn Authenticator>,
    decoder: Decoder,
    phase: Phase,
    version: Version,
    heart_beat: HeartBeat,
    /// The CONNECT's `heart-beat`, kept while [`Phase::Authenticating`].
    client_heart_beat: HeartBeatHeader,
    principal: Option<Principal>,
    subs: HashMap<Arc<str>, Subscription>,
    next_sub_seq: u64,
    ack_index: HashMap<u64, Arc<str>>,
    next_ack: u64,
    transactions: Transactions,
    unconfirmed: Unconfirmed,
    outbox: VecDeque<Transmit>,
    output: Unwritten,
    timers: Timers,
    close_reason: Option<String>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("conn", &self.conn)
            .field("phase", &self.phase)
            .field("version", &self.version)
            .field("subscriptions", &self.subs.len())
            .field("outbox", &self.outbox.len())
            .field("unconfirmed", &self.unconfirmed.len())
            .finish_non_exhaustive()
    }
}

/// A client's protocol error, on its way to becoming an ERROR frame.
#[derive(Debug)]
struct Fail {
    message: String,
    detail: Option<String>,
    headers: Vec<(&'static str, String)>,
}

impl Fail {
    fn new(message: impl Into<String>) -> Self {
        Fail {
            message: message.into(),
            detail: None,
            headers: Vec::new(),
        }
    }
}

/// What to do after a frame was handled.
enum After {
    /// Send the receipt, if asked for.
    Continue,
    /// The receipt waits for the engine's confirmations ([`Session::confirm`]).
    Deferred,
    /// Send the receipt, if asked for, and close (or wait for pending SENDs first).
    Disconnect,
}

type Handled = Result<After, Fail>;

/// Headers whose values name something the session keeps, or writes back on every MESSAGE or
/// RECEIPT: at most [`SessionConfig::max_name_len`] bytes.
const NAME_HEADERS: [&str; 7] = [
    "id",
    "receipt",
    "transaction",
    "destination",
    "subscription",
    "message-id",
    "ack",
];

/// The first value of header `name`, or a failure naming the command and header.
fn require<'f>(frame: &'f Frame, name: &str) -> Result<&'f str, Fail> {
    frame
        .header(name)
        .ok_or_else(|| Fail::new(format!("{} frame has no {name} header", frame.command)))
}

fn parse_destination(text: &str) -> Result<Destination, Fail> {
    Destination::parse(text).ok_or_else(|| {
        Fail::new(format!(
            "unknown destination `{text}`: use /topic/NAME, /queue/NAME, \
             /user/{{principal}}/queue/NAME or /app/NAME"
        ))
    })
}

impl Session {
    /// A session for connection `conn`, opened at `now`, waiting for CONNECT.
    pub fn new(
        conn: ConnId,
        info: ConnectionInfo,
        config: Arc<SessionConfig>,
        auth: Arc<dyn Authenticator>,
        now: Instant,
    ) -> Self {
        Session {
            conn,
            info,
            decoder: Decoder::new(config.limits),
            config,
            auth,
            phase: Phase::AwaitingConnect,
            // Until CONNECT agrees one, errors are written the 1.0 way (no escaping).
            version: Version::V1_0,
            heart_beat: HeartBeat::default(),
            client_heart_beat: HeartBeatHeader::default(),
            principal: None,
            subs: HashMap::new(),
            next_sub_seq: 0,
            ack_index: HashMap::new(),
            next_ack: 1,
            transactions: Transactions::default(),
            unconfirmed: Unconfirmed::default(),
            outbox: VecDeque::new(),
            output: Unwritten::default(),
            timers: Timers::new(now),
            close_reason: None,
        }
    }

    /// The connection id.
    pub fn conn(&self) -> ConnId {
        self.conn
    }

    /// Where the session is in its life.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Whether the session is over.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// The negotiated version (`None` before CONNECT).
    pub fn version(&self) -> Option<Version> {
        (self.principal.is_some()).then_some(self.version)
    }

    /// The negotiated heart-beat intervals (none before CONNECT, and always none in 1.0).
    pub fn heart_beat(&self) -> HeartBeat {
        self.heart_beat
    }

    /// The authenticated client.
    pub fn principal(&self) -> Option<&Principal> {
        self.principal.as_ref()
    }

    /// What the I/O layer said about the connection.
    pub fn connection_info(&self) -> &ConnectionInfo {
        &self.info
    }

    /// Why the session closed: the ERROR message, or `None` after a DISCONNECT or shutdown.
    pub fn close_reason(&self) -> Option<&str> {
        self.close_reason.as_deref()
    }

    /// The number of active subscriptions.
    pub fn subscription_count(&self) -> usize {
        self.subs.len()
    }

    /// The id of this connection's (first) subscription to `destination`, if any: a user
    /// destination's is found by its full form (`/user/alice/queue/replies`, see
    /// [`Destination::for_user`]), whichever form the client subscribed with. For the I/O
    /// layer to deliver to this connection only (a reply to its `/user/queue/replies`, say),
    /// with [`Session::deliver`] and a [`SubscriberKey`] of this id.
    pub fn subscription_for(&self, destination: &Destination) -> Option<&Arc<str>> {
        self.subs
            .values()
            .filter(|s| s.destination == *destination)
            .min_by_key(|s| s.seq)
            .map(|s| &s.id)
    }

    /// Transmits waiting for [`Session::poll_transmit`] (a growing number means a slow client).
    pub fn queued_transmits(&self) -> usize {
        self.outbox.len()
    }

    /// Handle bytes received at `now` (the payload of a WebSocket message): decode and process
    /// every complete frame, as long as the output backlog stays within its budget (the rest
    /// waits for [`Session::written`]; see [`Session::wants_input`]). Any bytes count as a sign
    /// of life for heart-beats.
    pub fn receive(
        &mut self,
        now: Instant,
        bytes: &[u8],
        engine: &mut dyn Engine,
        out: &mut Vec<Delivery>,
    ) {
        // After a DISCONNECT that waits for pending SENDs, input is ignored too.
        if self.phase == Phase::Closed || self.unconfirmed.disconnecting() {
            return;
        }
        self.timers.last_rx = now;
        self.decoder.feed(bytes);
        self.decode_buffered(engine, out);
    }

    /// Decode and handle the buffered frames while the session is open and its output backlog
    /// within budget. What a frame delivers to this session's own subscriptions is queued
    /// before the next frame is looked at, so that it counts against the budget.
    fn decode_buffered(&mut self, engine: &mut dyn Engine, out: &mut Vec<Delivery>) {
        while !matches!(self.phase, Phase::Closed | Phase::Authenticating)
            && !self.unconfirmed.disconnecting()
            && !self.over_budget()
        {
            let before = out.len();
            match self.decoder.poll_frame() {
                Ok(Some(frame)) => self.handle_frame(frame, engine, out),
                Ok(None) => break,
                Err(error) => self.fail(Fail::new(error.to_string()), None, engine, out),
            }
            self.deliver_own(out, before);
        }
    }

    /// Queue the deliveries for this session among `out[from..]` now; the others (and those it
    /// refuses) stay in `out`, in order, for the caller to route.
    fn deliver_own(&mut self, out: &mut Vec<Delivery>, from: usize) {
        if !out[from..].iter().any(|d| d.subscriber.conn == self.conn) {
            return;
        }
        let produced: Vec<Delivery> = out.drain(from..).collect();
        for delivery in produced {
            if delivery.subscriber.conn != self.conn {
                out.push(delivery);
            } else if let Some(refused) = self.deliver(delivery) {
                out.push(refused);
            }
        }
    }

    /// The next thing to send, if any; `now` is when it will be sent (it resets the heart-beat
    /// send timer).
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        let transmit = self.outbox.pop_front()?;
        if self.polled(&transmit) {
            self.timers.last_tx = now;
        }
        Some(transmit)
    }

    /// The connection is gone (or the server drops it): release subscriptions (unacknowledged
    /// queue messages go to other consumers), discard transactions and pending output.
    pub fn shutdown(&mut self, engine: &mut dyn Engine, out: &mut Vec<Delivery>) {
        self.release(engine, out);
        self.unconfirmed.clear();
        self.outbox.clear();
        self.output.discard_queued();
        self.phase = Phase::Closed;
    }

    fn handle_frame(&mut self, frame: Frame, engine: &mut dyn Engine, out: &mut Vec<Delivery>) {
        if let Some(fail) = self.oversized_name(&frame) {
            // Not even the receipt is echoed: it may be the header that is too long.
            self.fail(fail, None, engine, out);
            return;
        }
        let receipt = frame.header("receipt").map(str::to_owned);
        let command = frame.command;
        match self.dispatch(frame, engine, out) {
            Ok(After::Continue) => {
                if let Some(receipt) = receipt
                    && !matches!(command, Command::Connect | Command::Stomp)
                {
                    self.queue_receipt(&receipt);
                }
            }
            // Sent with the confirmations.
            Ok(After::Deferred) => {}
            Ok(After::Disconnect) => {
                if self.defer_disconnect(receipt.clone(), engine, out) {
                    return;
                }
                if let Some(receipt) = receipt {
                    self.queue_receipt(&receipt);
                }
                self.close(None, engine, out);
            }
            Err(fail) => self.fail(fail, receipt.as_deref(), engine, out),
        }
    }

    /// A failure if a header of [`NAME_HEADERS`] is longer than
    /// [`SessionConfig::max_name_len`].
    fn oversized_name(&self, frame: &Frame) -> Option<Fail> {
        let limit = self.config.max_name_len;
        let (name, value) = frame
            .headers
            .iter()
            .find(|(name, value)| value.len() > limit && NAME_HEADERS.contains(name))?;
        Some(Fail::new(format!(
            "{} header `{name}` is {} bytes long: the limit for ids, receipts, transactions \
             and destinations is {limit} bytes",
            frame.command,
            value.len()
        )))
    }

    fn dispatch(
        &mut self,
        frame: Frame,
        engine: &mut dyn Engine,
        out: &mut Vec<Delivery>,
    ) -> Handled {
        use Command::*;
        match (self.phase, frame.command) {
            (_, command @ (Connected | Message | Receipt | Error)) => Err(Fail::new(format!(
                "{command} is a server frame; a client may not send it"
            ))),
            (Phase::AwaitingConnect, Connect | Stomp) => self.on_connect(&frame),
            (Phase::AwaitingConnect, command) => Err(Fail::new(format!(
                "expected CONNECT or STOMP, got {command}"
            ))),
            // Not decoded while authenticating (see `decode_buffered`).
            (Phase::Authenticating, command) => Err(Fail::new(format!(
                "{command} arrived before the CONNECT was answered"
            ))),
            (_, Connect | Stomp) => Err(Fail::new("already connected")),
            (_, Send) => self.on_send(frame, engine, out),
            (_, Subscribe) => self.on_subscribe(&frame, engine, out),
            (_, Unsubscribe) => self.on_unsubscribe(&frame, engine, out),
            (_, Ack) => self.on_ack(&frame, false, engine, out),
            (_, Nack) => self.on_ack(&frame, true, engine, out),
            (_, Begin) => self.on_begin(&frame),
            (_, Commit) => self.on_commit(&frame, engine, out),
            (_, Abort) => self.on_abort(&frame),
            (_, Disconnect) => Ok(After::Disconnect),
        }
    }

    fn queue_frame(&mut self, frame: &Frame) {
        let bytes = encode_lossy(frame, self.version);
        self.push(Transmit::Frame(EncodedFrame::whole(bytes)));
    }

    fn queue_receipt(&mut self, receipt: &str) {
        self.queue_frame(&Frame::new(Command::Receipt).with_header("receipt-id", receipt));
    }

    /// Answer a protocol error with ERROR, then close.
    fn fail(
        &mut self,
        fail: Fail,
        receipt: Option<&str>,
        engine: &mut dyn Engine,
        out: &mut Vec<Delivery>,
    ) {
        // Client text quoted in the message must not carry control characters into the
        // ERROR frame (1.0 cannot escape a newline) or the server's logs (the close reason).
        let message = escape_controls(&fail.message);
        let mut frame = Frame::new(Command::Error).with_header("message", message.clone());
        if let Some(receipt) = receipt {
            frame.headers.push("receipt-id", receipt);
        }
        for (name, value) in fail.headers {
            frame.headers.push(name, value);
        }
        if let Some(detail) = fail.detail {
            frame = frame
                .with_header("content-type", "text/plain")
                .with_body(detail);
        }
        self.queue_frame(&frame);
        self.close(Some(message), engine, out);
    }

    /// End the session after what is queued: release everything, then [`Transmit::Close`].
    fn close(&mut self, reason: Option<String>, engine: &mut dyn Engine, out: &mut Vec<Delivery>) {
        if self.phase == Phase::Closed {
            return;
        }
        self.release(engine, out);
        self.unconfirmed.clear();
        self.phase = Phase::Closed;
        self.close_reason = reason;
        self.push(Transmit::Close);
    }

    /// Give every subscription back to the engine (in subscription order) and drop
    /// transactions.
    fn release(&mut self, engine: &mut dyn Engine, out: &mut Vec<Delivery>) {
        self.transactions.clear();
        self.ack_index.clear();
        self.output.release();
        let mut subs: Vec<Subscription> = self.subs.drain().map(|(_, s)| s).collect();
        subs.sort_by_key(|s| s.seq);
        for sub in subs {
            engine.unsubscribe(&SubscriberKey::new(self.conn, sub.id), out);
        }
    }
}
