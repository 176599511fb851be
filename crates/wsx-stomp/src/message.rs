//! Messages as the broker routes them: what a SEND publishes ([`Publish`]), and the stored,
//! shared [`Message`] an engine hands to subscribers.
//!
//! A [`Message`] is created once per SEND and shared (`Arc`) by every delivery. Its MESSAGE
//! frame is encoded in two parts (see [`crate::EncodedFrame`]): the tail (`message-id`,
//! `destination`, the sender's headers, body) is encoded at most once per protocol version and
//! cached; each delivery only writes the head (`subscription`, `ack`, `redelivered`).

use std::fmt;
use std::sync::{Arc, OnceLock};

use bytes::{Bytes, BytesMut};
use wsx_proto::SharedPayload;

use crate::EncodedFrame;
use crate::command::Command;
use crate::destination::Destination;
use crate::encode::{write_command, write_header, write_tail};
use crate::escape::Escaping;
use crate::headers::Headers;
use crate::version::Version;

/// The broker-wide id of a message (the `message-id` header). Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(Arc<str>);

impl MessageId {
    /// An id from its text.
    pub fn new(id: impl Into<Arc<str>>) -> Self {
        MessageId(id.into())
    }

    /// The id text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Headers a SEND may not pass on to subscribers: the broker sets them itself, or they only
/// concern the SEND frame.
pub const RESERVED_HEADERS: [&str; 10] = [
    "destination",
    "message-id",
    "subscription",
    "ack",
    "redelivered",
    "transaction",
    "receipt",
    "content-length",
    STREAM_OFFSET,
    STREAM_GAP,
];

/// The header of a topic MESSAGE that carries its offset in the topic (see
/// [`crate::StreamStart`]), and of a SUBSCRIBE that says where to start.
pub const STREAM_OFFSET: &str = "x-stream-offset";

/// The header (`true`) of the first MESSAGE of a resumed subscription when the offset asked
/// for was older than what the topic retains: messages were missed.
pub const STREAM_GAP: &str = "x-stream-gap";

/// What a client publishes: the destination, the headers to pass on, the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    /// Where the message goes.
    pub destination: Destination,
    /// Headers passed on to subscribers (no [`RESERVED_HEADERS`]).
    pub headers: Headers,
    /// The body.
    pub body: Bytes,
}

impl Publish {
    /// What every message costs to hold beyond its text (allocations, ids, bookkeeping),
    /// counted by [`Publish::size`] so that budgets see empty messages too.
    pub const OVERHEAD: usize = 128;

    /// A message for `destination`; [`RESERVED_HEADERS`] are removed from `headers`.
    pub fn new(destination: Destination, mut headers: Headers, body: Bytes) -> Self {
        headers.retain(|name, _| !RESERVED_HEADERS.contains(&name));
        Publish {
            destination,
            headers,
            body,
        }
    }

    /// The bytes the message holds, as budgets count them (transactions, queues): the
    /// destination, every header (name, value and 2 for the colon and newline), the body, and
    /// [`Publish::OVERHEAD`].
    pub fn size(&self) -> usize {
        let headers: usize = self
            .headers
            .iter()
            .map(|(name, value)| name.len() + value.len() + 2)
            .sum();
        Self::OVERHEAD + self.destination.as_str().len() + headers + self.body.len()
    }
}

/// A published message with its id, shared by all its deliveries.
#[derive(Debug)]
pub struct Message {
    id: MessageId,
    publish: Publish,
    /// Its offset in its topic (topic messages only).
    offset: Option<u64>,
    /// Per version: the encoded tail (shared, with its compressed forms) and whether it is
    /// UTF-8.
    tails: [OnceLock<(SharedPayload, bool)>; 3],
}

impl Message {
    /// The stored form of `publish`, under `id`.
    pub fn new(id: MessageId, publish: Publish) -> Self {
        Message {
            id,
            publish,
            offset: None,
            tails: Default::default(),
        }
    }

    /// The stored form of a topic message with its `offset` in the topic: its MESSAGE frames
    /// carry `x-stream-offset:OFFSET`.
    pub fn with_offset(id: MessageId, publish: Publish, offset: u64) -> Self {
        Message {
            offset: Some(offset),
            ..Message::new(id, publish)
        }
    }

    /// Its offset in its topic, if it has one.
    pub fn offset(&self) -> Option<u64> {
        self.offset
    }

    /// The message id.
    pub fn id(&self) -> &MessageId {
        &self.id
    }

    /// The destination it was sent to.
    pub fn destination(&self) -> &Destination {
        &self.publish.destination
    }

    /// The sender's headers.
    pub fn headers(&self) -> &Headers {
        &self.publish.headers
    }

    /// The body.
    pub fn body(&self) -> &Bytes {
        &self.publish.body
    }

    /// The bytes it holds, as budgets count them ([`Publish::size`]).
    pub fn size(&self) -> usize {
        self.publish.size()
    }

    /// The shared part of the MESSAGE frame for `version`, encoded on first use. Headers the
    /// version cannot represent (a newline in a 1.0 value) are left out.
    pub fn encoded_tail(&self, version: Version) -> Bytes {
        self.tail(version).0.bytes().clone()
    }

    fn tail(&self, version: Version) -> &(SharedPayload, bool) {
        let slot = match version {
            Version::V1_0 => &self.tails[0],
            Version::V1_1 => &self.tails[1],
            Version::V1_2 => &self.tails[2],
        };
        slot.get_or_init(|| {
            let escaping = Escaping::for_frame(version, Command::Message);
            let mut buf = BytesMut::with_capacity(self.publish.body.len() + 128);
            let offset = self.offset.map(|o| o.to_string());
            let fixed = [
                ("message-id", self.id.as_str()),
                ("destination", self.publish.destination.delivered_as()),
            ];
            let offset = offset.as_deref().map(|o| (STREAM_OFFSET, o));
            let headers = fixed
                .into_iter()
                .chain(offset)
                .chain(self.publish.headers.iter());
            write_tail(headers, &self.publish.body, escaping, &mut buf);
            // Headers are strings; only the body can break UTF-8.
            let utf8 = std::str::from_utf8(&self.publish.body).is_ok();
            (SharedPayload::new(buf.freeze()), utf8)
        })
    }

    /// The MESSAGE frame for one subscriber: a fresh head with `subscription`, `ack` (when
    /// given) and `redelivered:true` (when set), plus the shared tail.
    pub fn encode_for(
        &self,
        version: Version,
        subscription: &str,
        ack: Option<&str>,
        redelivered: bool,
    ) -> EncodedFrame {
        self.encode_delivery(version, subscription, ack, redelivered, false)
    }

    /// [`Message::encode_for`], with `x-stream-gap:true` in the head when `gap` is set (the
    /// first message of a resumed subscription that missed messages).
    pub fn encode_delivery(
        &self,
        version: Version,
        subscription: &str,
        ack: Option<&str>,
        redelivered: bool,
        gap: bool,
    ) -> EncodedFrame {
        let escaping = Escaping::for_frame(version, Command::Message);
        let mut head = BytesMut::with_capacity(32 + subscription.len());
        write_command(Command::Message, &mut head);
        write_header("subscription", subscription, escaping, &mut head);
        if let Some(ack) = ack {
            write_header("ack", ack, escaping, &mut head);
        }
        if redelivered {
            write_header("redelivered", "true", escaping, &mut head);
        }
        if gap {
            write_header(STREAM_GAP, "true", escaping, &mut head);
        }
        let (tail, utf8) = self.tail(version);
        EncodedFrame::from_known_parts(head.freeze(), tail, *utf8)
    }
}
