//! The encoder: [`Frame`]s to bytes, and the two-part [`EncodedFrame`] used to share one
//! MESSAGE among many subscribers.
//!
//! A frame is written as `COMMAND\n`, one `name:value\n` per header (escaped for the version),
//! `content-length:N\n` when the body is not empty, a blank line, the body and a NUL. Lines end
//! in `\n` only, which every version accepts.
//!
//! [`encode`] refuses a header the version cannot represent; [`encode_lossy`] drops it instead,
//! which is what a broker wants when it relays a header a 1.2 client wrote to a 1.0 client.

use bytes::{BufMut, Bytes, BytesMut};
use wsx_proto::SharedPayload;

use crate::command::Command;
use crate::error::{Error, quote};
use crate::escape::Escaping;
use crate::frame::Frame;
use crate::version::Version;

/// Encode `frame` for a peer speaking `version`.
pub fn encode(frame: &Frame, version: Version) -> Result<Bytes, Error> {
    let mut buf = BytesMut::new();
    encode_into(frame, version, &mut buf)?;
    Ok(buf.freeze())
}

/// Append the encoding of `frame` to `buf`. On error `buf` is left unchanged.
pub fn encode_into(frame: &Frame, version: Version, buf: &mut BytesMut) -> Result<(), Error> {
    let escaping = Escaping::for_frame(version, frame.command);
    for (name, value) in frame.headers.iter() {
        escaping
            .check(name, value)
            .map_err(|reason| Error::Unencodable {
                name: quote(name.as_bytes()),
                reason,
            })?;
    }
    write_frame(frame, escaping, buf);
    Ok(())
}

/// Encode `frame` for `version`, leaving out headers the version cannot represent.
pub fn encode_lossy(frame: &Frame, version: Version) -> Bytes {
    let mut buf = BytesMut::new();
    write_frame(frame, Escaping::for_frame(version, frame.command), &mut buf);
    buf.freeze()
}

fn write_frame(frame: &Frame, escaping: Escaping, buf: &mut BytesMut) {
    buf.reserve(frame_len_hint(frame, escaping));
    write_command(frame.command, buf);
    write_tail(frame.headers.iter(), &frame.body, escaping, buf);
}

fn frame_len_hint(frame: &Frame, escaping: Escaping) -> usize {
    let headers: usize = frame
        .headers
        .iter()
        .map(|(n, v)| escaping.escaped_len(n) + escaping.escaped_len(v) + 2)
        .sum();
    frame.command.as_str().len() + headers + frame.body.len() + 40
}

/// Write `COMMAND\n`.
pub(crate) fn write_command(command: Command, buf: &mut BytesMut) {
    buf.put_slice(command.as_str().as_bytes());
    buf.put_u8(b'\n');
}

/// Write one header line, or nothing if `escaping` cannot represent it.
pub(crate) fn write_header(name: &str, value: &str, escaping: Escaping, buf: &mut BytesMut) {
    if escaping.check(name, value).is_err() {
        return;
    }
    escaping.escape_into(name, buf);
    buf.put_u8(b':');
    escaping.escape_into(value, buf);
    buf.put_u8(b'\n');
}

/// Write headers (skipping `content-length` and unrepresentable ones), the framing
/// `content-length`, the blank line, the body and the NUL.
pub(crate) fn write_tail<'a>(
    headers: impl Iterator<Item = (&'a str, &'a str)>,
    body: &[u8],
    escaping: Escaping,
    buf: &mut BytesMut,
) {
    for (name, value) in headers {
        if name != "content-length" {
            write_header(name, value, escaping, buf);
        }
    }
    if !body.is_empty() {
        buf.put_slice(b"content-length:");
        buf.put_slice(body.len().to_string().as_bytes());
        buf.put_u8(b'\n');
    }
    buf.put_u8(b'\n');
    buf.put_slice(body);
    buf.put_u8(0);
}

/// An encoded frame in two parts: a small `head` (command line and per-recipient headers) and
/// a `tail` (the other headers, blank line, body, NUL) that can be shared.
///
/// The broker encodes the tail of a MESSAGE once per protocol version and shares it (a
/// reference-counted [`Bytes`]) among all subscribers; only the head, with `subscription`, `ack`
/// and `redelivered`, is written per subscriber. The trade-off: a transport that needs the
/// frame in one buffer pays one copy of the tail per subscriber ([`EncodedFrame::to_bytes`]),
/// while one that can write both parts (vectored writes, or a WebSocket message sent as two
/// fragments) copies nothing.
///
/// [`EncodedFrame::is_utf8`] tells whether the bytes are valid UTF-8 (headers always are; the
/// body may not be), so the transport can pick a text or binary WebSocket message without
/// scanning the frame again; for a shared MESSAGE it is computed once per message.
///
/// A MESSAGE's tail also comes as a [`SharedPayload`] ([`EncodedFrame::shared_tail`]), shared
/// by every subscriber's frame, so a WebSocket transport compresses it once per
/// permessage-deflate parameter set rather than once per subscriber.
#[derive(Debug, Clone)]
pub struct EncodedFrame {
    head: Bytes,
    tail: Bytes,
    utf8: bool,
    /// The same bytes as `tail`, with its compressed forms, when the tail is shared.
    shared: Option<SharedPayload>,
}

impl PartialEq for EncodedFrame {
    /// The same bytes (whether the tail is shared does not matter).
    fn eq(&self, other: &Self) -> bool {
        self.head == other.head && self.tail == other.tail && self.utf8 == other.utf8
    }
}

impl Eq for EncodedFrame {}

impl EncodedFrame {
    /// A frame already in one buffer.
    pub fn whole(bytes: Bytes) -> Self {
        let utf8 = std::str::from_utf8(&bytes).is_ok();
        EncodedFrame {
            head: Bytes::new(),
            tail: bytes,
            utf8,
            shared: None,
        }
    }

    /// A frame made of `head` followed by `tail`.
    pub fn from_parts(head: Bytes, tail: Bytes) -> Self {
        let utf8 = std::str::from_utf8(&head).is_ok() && std::str::from_utf8(&tail).is_ok();
        EncodedFrame {
            head,
            tail,
            utf8,
            shared: None,
        }
    }

    /// `from_parts` for a head that is UTF-8 and a shared tail whose UTF-8-ness is known.
    pub(crate) fn from_known_parts(head: Bytes, tail: &SharedPayload, tail_is_utf8: bool) -> Self {
        debug_assert!(std::str::from_utf8(&head).is_ok());
        EncodedFrame {
            head,
            tail: tail.bytes().clone(),
            utf8: tail_is_utf8,
            shared: Some(tail.clone()),
        }
    }

    /// Whether the whole frame is valid UTF-8 (it may go in a text WebSocket message).
    pub fn is_utf8(&self) -> bool {
        self.utf8
    }

    /// The per-recipient first part (may be empty).
    pub fn head(&self) -> &Bytes {
        &self.head
    }

    /// The shared second part.
    pub fn tail(&self) -> &Bytes {
        &self.tail
    }

    /// The shared second part with its compressed forms, for a MESSAGE whose tail every
    /// subscriber shares (the same bytes as [`EncodedFrame::tail`]).
    pub fn shared_tail(&self) -> Option<&SharedPayload> {
        self.shared.as_ref()
    }

    /// The total length in bytes.
    pub fn len(&self) -> usize {
        self.head.len() + self.tail.len()
    }

    /// Whether the frame has no bytes (never true for a frame this crate encodes).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The frame in one buffer: free if it has one part, one copy otherwise.
    pub fn to_bytes(&self) -> Bytes {
        if self.head.is_empty() {
            return self.tail.clone();
        }
        let mut buf = BytesMut::with_capacity(self.len());
        buf.put_slice(&self.head);
        buf.put_slice(&self.tail);
        buf.freeze()
    }
}
