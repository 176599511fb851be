//! What the client's subscriptions hand to the application ([`ClientMessage`]) and how a
//! subscription asks for them ([`SubscribeOptions`], [`StartOffset`]).
//!
//! Topic messages carry an offset (`x-stream-offset`, one more per message of the topic); a
//! subscription records the offset of the last message it handed over and resumes after it
//! when the client reconnects.

use bytes::Bytes;

use crate::headers::Headers;
use crate::session::AckMode;

/// The header naming a topic message's offset, on MESSAGE and (as a start position) SUBSCRIBE.
pub(crate) const OFFSET_HEADER: &str = "x-stream-offset";
/// The header a server sets on the first MESSAGE after a resume that could not start where
/// asked (the offset was no longer retained).
pub(crate) const GAP_HEADER: &str = "x-stream-gap";

/// Where a topic subscription starts (the `x-stream-offset` header of its first SUBSCRIBE).
/// Only `/topic/` destinations use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartOffset {
    /// The oldest message the server retains, then everything after it.
    First,
    /// The newest retained message, then everything after it.
    Last,
    /// Only messages published from now on (the default; no header is sent).
    #[default]
    Next,
    /// The message with this offset and everything after it.
    Offset(u64),
}

impl StartOffset {
    /// The header value: `first`, `last`, `next` or `offset=N`.
    pub fn header_value(self) -> String {
        match self {
            StartOffset::First => "first".to_owned(),
            StartOffset::Last => "last".to_owned(),
            StartOffset::Next => "next".to_owned(),
            StartOffset::Offset(n) => format!("offset={n}"),
        }
    }
}

/// How to subscribe: acknowledgement mode, start position, extra SUBSCRIBE headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeOptions {
    pub(crate) ack: AckMode,
    pub(crate) start: StartOffset,
    pub(crate) headers: Vec<(String, String)>,
}

impl Default for SubscribeOptions {
    fn default() -> Self {
        SubscribeOptions {
            ack: AckMode::Auto,
            start: StartOffset::Next,
            headers: Vec::new(),
        }
    }
}

impl SubscribeOptions {
    /// `ack:auto`, starting at [`StartOffset::Next`], no extra headers.
    pub fn new() -> Self {
        SubscribeOptions::default()
    }

    /// The acknowledgement mode (`client` and `client-individual` need
    /// [`crate::StompClient::ack`]).
    pub fn ack(mut self, mode: AckMode) -> Self {
        self.ack = mode;
        self
    }

    /// Where a topic subscription starts the first time (on reconnection it resumes after the
    /// last message handed over, whatever this says).
    pub fn start(mut self, start: StartOffset) -> Self {
        self.start = start;
        self
    }

    /// An extra SUBSCRIBE header (a `selector`, say). `id`, `destination`, `ack`, `receipt`
    /// and `x-stream-offset` are the client's own and are ignored here.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// A MESSAGE handed to the application by a [`crate::Subscription`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientMessage {
    pub(crate) destination: String,
    pub(crate) headers: Headers,
    pub(crate) body: Bytes,
    pub(crate) offset: Option<u64>,
    pub(crate) gap: bool,
    pub(crate) redelivered: bool,
    pub(crate) ack_id: Option<String>,
    /// The connection it came on (1 for the first).
    pub(crate) connection: u64,
}

impl ClientMessage {
    /// The `destination` header.
    pub fn destination(&self) -> &str {
        &self.destination
    }

    /// Every header of the MESSAGE, as the server sent them.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The value of the first header called `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }

    /// The body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The body as text, if it is UTF-8.
    pub fn body_text(&self) -> Option<&str> {
        std::str::from_utf8(&self.body).ok()
    }

    /// The topic offset (`x-stream-offset`), for topic messages of a server that numbers
    /// them.
    pub fn offset(&self) -> Option<u64> {
        self.offset
    }

    /// Whether messages are missing before this one: the server said so (`x-stream-gap:true`:
    /// the offset asked for was no longer retained), or it is the first message after a resume
    /// and its offset is not the one asked for.
    pub fn is_gap(&self) -> bool {
        self.gap
    }

    /// Whether the server delivered it before (`redelivered:true`, queue messages that went
    /// back to the queue).
    pub fn is_redelivered(&self) -> bool {
        self.redelivered
    }

    /// The connection it came on: 1 for the first, one more per reconnection (see
    /// [`crate::ConnectionState::Connected`]).
    pub fn connection(&self) -> u64 {
        self.connection
    }
}
