//! The link between this node's chat rooms and the STOMP broker, which carries them to the
//! other nodes (with `--broker redis://…`) and keeps the order and history of their messages.
//!
//! Where it sits in the flow: a room task ([`super::task`]) publishes what its members say
//! through the [`Bridge`] and hears every node's traffic back through in-process subscriptions
//! ([`wsx_broker::Broker::subscribe_with`]). Two topics per room, under the prefix
//! [`RESERVED_PREFIX`] that STOMP clients may subscribe to but not SEND to (the broker refuses it
//! with an ERROR, see [`wsx_broker::BrokerBuilder::reserve`]):
//!
//! - `/topic/wsx.chat.{room}`: the text messages, as JSON bodies `{"name","text","ts"}`. The
//!   topic numbers them (`x-stream-offset`) and keeps its bounded history, so that every node
//!   broadcasts them in the same order with the same offsets, and a member that comes back with
//!   `since` gets what it missed, on any node ([`super::catch_up`]).
//! - `/topic/wsx.chat-live.{room}`: what is only worth having live: presence (`join`, `leave`,
//!   `here` with a node's whole member list, `hello` from a node whose room just started) and
//!   files (the bytes as the body, what describes them in headers). Each event carries the
//!   sending node's id (`x-chat-node`); a node ignores its own, which it already handled
//!   locally.

use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use wsx_broker::{InProcessSubscription, ReceivedMessage};
use wsx_stomp::Headers;

use crate::serve::stomp::Stomp;

/// The destinations only the server publishes to: the rooms' topics.
pub const RESERVED_PREFIX: &str = "/topic/wsx.";
/// The largest file carried to the other nodes: the STOMP body limit (larger files, with a
/// `--max-file-bytes` above it, reach the members of the sender's node only).
pub const MAX_BRIDGED_FILE_BYTES: usize = 1 << 20;

/// The header with the sending node's id on live events.
const NODE_HEADER: &str = "x-chat-node";
/// The header with the kind of a live event.
const EVENT_HEADER: &str = "x-chat-event";
/// The header describing a file (JSON [`FileMeta`]).
const FILE_HEADER: &str = "x-chat-file";
/// The header with a topic message's offset.
const OFFSET_HEADER: &str = "x-stream-offset";
/// The header on the first message of a resumed subscription when history was lost.
const GAP_HEADER: &str = "x-stream-gap";

/// A text message as it travels on a room's message topic.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChatLine {
    /// The sender's name.
    pub name: String,
    /// The text.
    pub text: String,
    /// When the sender's node received it, milliseconds since the Unix epoch.
    pub ts: u64,
}

/// A message of a room's message topic, as a subscription delivered it.
#[derive(Debug)]
pub struct FedLine {
    /// Its offset in the topic (`None` only from a broker without topic offsets).
    pub offset: Option<u64>,
    /// Whether messages before it were lost (the history no longer held them).
    pub gap: bool,
    /// The message.
    pub line: ChatLine,
}

/// What describes a file sent to a room.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileMeta {
    /// The file name (sanitized).
    pub name: String,
    /// Its media type (sanitized).
    pub mime: String,
    /// The sender.
    pub from: String,
    /// When the sender's node received it, milliseconds since the Unix epoch.
    pub ts: u64,
}

/// An event of a room's live topic.
#[derive(Debug)]
pub enum LiveEvent {
    /// A node's room just started: the others announce their members (`here`).
    Hello,
    /// A node's whole member list (sent on `hello` and every
    /// [`super::remote_presence::PRESENCE_REFRESH`]).
    Here(Vec<String>),
    /// A member joined on the node.
    Join(String),
    /// A member left the node.
    Leave(String),
    /// A file.
    File(FileMeta, Bytes),
}

/// Where a subscription to a room's message topic starts.
#[derive(Debug, Clone, Copy)]
pub enum Start {
    /// With the next message published.
    Next,
    /// With the message at this offset (or the oldest one kept, marked as a gap).
    Offset(u64),
    /// With the newest this many messages kept (`x-stream-offset: last=K`).
    Latest(usize),
}

/// This node's side of the rooms' topics.
#[derive(Debug)]
pub struct Bridge {
    broker: Arc<Stomp>,
    /// This node's id on the live topics (random, per process).
    node: String,
}

impl Bridge {
    /// A bridge to `broker`, under a fresh node id.
    pub fn new(broker: Arc<Stomp>) -> Self {
        Bridge {
            broker,
            node: format!("{:016x}", rand::random::<u64>()),
        }
    }

    /// Publish a text message to `room`'s message topic.
    pub fn publish_line(&self, room: &str, line: &ChatLine) -> Result<(), String> {
        let body = serde_json::to_vec(line).map_err(|e| e.to_string())?;
        let mut headers = Headers::new();
        headers.push("content-type", "application/json");
        self.broker
            .publish(&messages_topic(room), headers, body)
            .map_err(|e| e.to_string())
    }

    /// Publish a live event of this node's members to `room`'s live topic.
    pub fn publish_live(&self, room: &str, event: &LiveEvent) -> Result<(), String> {
        let mut headers = Headers::new();
        headers.push(NODE_HEADER, self.node.as_str());
        let (kind, body): (&str, Bytes) = match event {
            LiveEvent::Hello => ("hello", Bytes::new()),
            LiveEvent::Here(names) => ("here", json_body(names)?),
            LiveEvent::Join(name) => ("join", json_body(name)?),
            LiveEvent::Leave(name) => ("leave", json_body(name)?),
            LiveEvent::File(meta, data) => {
                let meta = serde_json::to_string(meta).map_err(|e| e.to_string())?;
                headers.push(FILE_HEADER, meta);
                ("file", data.clone())
            }
        };
        headers.push(EVENT_HEADER, kind);
        self.broker
            .publish(&live_topic(room), headers, body)
            .map_err(|e| e.to_string())
    }

    /// Subscribe to `room`'s message topic from `start`.
    pub fn subscribe_lines(
        &self,
        room: &str,
        start: Start,
    ) -> Result<InProcessSubscription, String> {
        let offset;
        let extra: &[(&str, &str)] = match start {
            Start::Next => &[],
            Start::Offset(n) => {
                offset = format!("offset={n}");
                &[(OFFSET_HEADER, offset.as_str())]
            }
            Start::Latest(k) => {
                offset = format!("last={k}");
                &[(OFFSET_HEADER, offset.as_str())]
            }
        };
        self.broker
            .subscribe_with(&messages_topic(room), extra)
            .map_err(|e| e.to_string())
    }

    /// Subscribe to `room`'s live topic.
    pub fn subscribe_live(&self, room: &str) -> Result<InProcessSubscription, String> {
        self.broker
            .subscribe(&live_topic(room))
            .map_err(|e| e.to_string())
    }

    /// Read a live event of another node: its node id and the event; `None` for this node's
    /// own events and for what does not parse.
    pub fn read_live(&self, message: &ReceivedMessage) -> Option<(String, LiveEvent)> {
        let node = message.headers.get(NODE_HEADER)?;
        if node == self.node {
            return None;
        }
        let event = match message.headers.get(EVENT_HEADER)? {
            "hello" => LiveEvent::Hello,
            "here" => LiveEvent::Here(serde_json::from_slice(&message.body).ok()?),
            "join" => LiveEvent::Join(serde_json::from_slice(&message.body).ok()?),
            "leave" => LiveEvent::Leave(serde_json::from_slice(&message.body).ok()?),
            "file" => LiveEvent::File(
                serde_json::from_str(message.headers.get(FILE_HEADER)?).ok()?,
                message.body.clone(),
            ),
            _ => return None,
        };
        Some((node.to_owned(), event))
    }
}

/// Read a message of a room's message topic; `None` if it does not parse.
pub fn read_line(message: &ReceivedMessage) -> Option<FedLine> {
    Some(FedLine {
        offset: message
            .headers
            .get(OFFSET_HEADER)
            .and_then(|o| o.parse().ok()),
        gap: message.headers.get(GAP_HEADER) == Some("true"),
        line: serde_json::from_slice(&message.body).ok()?,
    })
}

/// `room`'s message topic.
fn messages_topic(room: &str) -> String {
    format!("{RESERVED_PREFIX}chat.{room}")
}

/// `room`'s live topic.
fn live_topic(room: &str) -> String {
    format!("{RESERVED_PREFIX}chat-live.{room}")
}

fn json_body<T: Serialize + ?Sized>(value: &T) -> Result<Bytes, String> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| e.to_string())
}
