//! The opening handshake (RFC 6455 §4): HTTP/1.1 Upgrade request and response.
//!
//! This is the first step of every connection, before any frame is exchanged:
//!
//! * A client turns a `ws://` / `wss://` URL into a [`WsUrl`] (`url.rs`), builds a
//!   [`ClientRequest`] (`client.rs`), writes [`ClientRequest::encode`] to the transport and feeds
//!   what comes back to [`parse_response`] until it returns a [`ClientResponse`].
//! * A server feeds the bytes it reads to a [`RequestReader`] (`head.rs`; it looks at each byte
//!   once, however the head is cut into reads) or to [`parse_request`] until it returns an
//!   [`HttpRequest`] (`request.rs`), checks it with [`validate_upgrade`], and answers with
//!   an [`AcceptResponse`] (101 Switching Protocols) or [`error_response`] (`response.rs`).
//!
//! Both parsers return how many bytes the HTTP head took: the bytes after it already belong to
//! the WebSocket stream and must be handed to the connection.
//!
//! Nothing here performs I/O; everything works on byte slices.

mod authority;
mod client;
mod head;
pub(crate) mod headers;
mod request;
mod response;
mod url;

pub use authority::{HostPort, HostPortError, bracket, join_host_port, split_host_port, unbracket};
pub use client::{ClientRequest, ClientResponse, parse_response};
pub use head::RequestReader;
pub use headers::{has_token, list_elements, token_list};
pub use request::{HttpRequest, WebSocketRequest, parse_request, validate_upgrade};
pub use response::{AcceptResponse, error_response, http_response, reason_phrase};
pub use url::WsUrl;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha1::{Digest as _, Sha1};

/// The GUID that RFC 6455 §1.3 appends to the client's key to compute `Sec-WebSocket-Accept`.
pub const WEBSOCKET_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The most header lines [`parse_request`] and [`parse_response`] accept; more is
/// [`HandshakeError::TooManyHeaders`] (431).
pub const MAX_HEADERS: usize = 64;

/// A reasonable default for the `max_header_bytes` argument of the parsers: 16 KiB.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 16 * 1024;

/// Why a handshake failed.
///
/// The first group of variants is found by a server checking a client's request (and the
/// parsing variants also by a client reading a response); [`HandshakeError::status`] gives the
/// HTTP status to answer them with. The second group only arises on the client side, checking
/// the server's response or the URL, and has no status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The HTTP head could not be parsed (or a header had an invalid value). 400.
    #[error("malformed HTTP head: {0}")]
    Malformed(String),
    /// The HTTP head was larger than the allowed maximum. 431.
    #[error("HTTP head too large")]
    HeadersTooLarge,
    /// The HTTP head had more than [`MAX_HEADERS`] header lines. 431.
    #[error("too many HTTP headers")]
    TooManyHeaders,
    /// The request method was not `GET`. 405 (with `Allow: GET`).
    #[error("method not allowed: a WebSocket handshake must be a GET request")]
    MethodNotGet,
    /// The request was not HTTP/1.1. 400.
    #[error("a WebSocket handshake must use HTTP/1.1")]
    NotHttp11,
    /// The request had no (or an empty) `Host` header. 400.
    #[error("missing Host header")]
    MissingHost,
    /// The `Upgrade` header is missing or lacks the `websocket` token. 426 (with
    /// `Upgrade: websocket`): the resource is only served over WebSocket.
    #[error("this resource requires a WebSocket upgrade (Upgrade: websocket)")]
    NotUpgrade,
    /// The `Connection` header is missing or lacks the `upgrade` token. 400.
    #[error("missing Connection: Upgrade")]
    MissingConnectionUpgrade,
    /// The `Sec-WebSocket-Key` header is missing. 400.
    #[error("missing Sec-WebSocket-Key header")]
    MissingKey,
    /// The `Sec-WebSocket-Key` is not base64 of exactly 16 bytes (or appears more than once). 400.
    #[error("invalid Sec-WebSocket-Key: must be base64 of 16 bytes")]
    InvalidKey,
    /// `Sec-WebSocket-Version` is missing or not `13`. 426 (with `Sec-WebSocket-Version: 13`,
    /// RFC 6455 §4.4).
    #[error("unsupported WebSocket version: only Sec-WebSocket-Version 13 is supported")]
    UnsupportedVersion,

    /// Client side: the server answered with a status other than 101.
    #[error("server rejected the handshake: {status} {reason}")]
    Rejected {
        /// The status code of the response.
        status: u16,
        /// The reason phrase of the response (possibly empty).
        reason: String,
    },
    /// Client side: the 101 response's `Upgrade` header is missing or lacks `websocket`.
    #[error("server response lacks Upgrade: websocket")]
    MissingUpgradeResponse,
    /// Client side: the 101 response's `Connection` header is missing or lacks `upgrade`.
    #[error("server response lacks Connection: Upgrade")]
    MissingConnectionUpgradeResponse,
    /// Client side: `Sec-WebSocket-Accept` is missing, repeated, or does not match the key sent.
    #[error("missing or wrong Sec-WebSocket-Accept")]
    InvalidAccept,
    /// Client side: the server selected a subprotocol the client did not offer.
    #[error("server selected a subprotocol that was not requested: {0:?}")]
    UnrequestedSubprotocol(String),
    /// Client side: the server sent more than one subprotocol.
    #[error("server selected more than one subprotocol")]
    MultipleSubprotocols,
    /// Client side: the server sent `Sec-WebSocket-Extensions` although the client offered none.
    #[error("server selected an extension that was not requested")]
    UnrequestedExtension,
    /// Client side: the WebSocket URL could not be used.
    #[error("invalid WebSocket URL: {0}")]
    InvalidUrl(String),
}

impl HandshakeError {
    /// The HTTP status a server answers this error with, or `None` for the errors that only
    /// arise on the client side (checking a response or a URL).
    ///
    /// * 400 Bad Request: [`Malformed`](Self::Malformed), [`NotHttp11`](Self::NotHttp11),
    ///   [`MissingHost`](Self::MissingHost),
    ///   [`MissingConnectionUpgrade`](Self::MissingConnectionUpgrade),
    ///   [`MissingKey`](Self::MissingKey), [`InvalidKey`](Self::InvalidKey);
    /// * 405 Method Not Allowed: [`MethodNotGet`](Self::MethodNotGet);
    /// * 426 Upgrade Required: [`NotUpgrade`](Self::NotUpgrade) (a plain HTTP request to a
    ///   WebSocket endpoint) and [`UnsupportedVersion`](Self::UnsupportedVersion);
    /// * 431 Request Header Fields Too Large: [`HeadersTooLarge`](Self::HeadersTooLarge),
    ///   [`TooManyHeaders`](Self::TooManyHeaders).
    ///
    /// [`error_response`] builds the whole response, with the headers each status calls for.
    pub fn status(&self) -> Option<u16> {
        match self {
            HandshakeError::Malformed(_)
            | HandshakeError::NotHttp11
            | HandshakeError::MissingHost
            | HandshakeError::MissingConnectionUpgrade
            | HandshakeError::MissingKey
            | HandshakeError::InvalidKey => Some(400),
            HandshakeError::MethodNotGet => Some(405),
            HandshakeError::NotUpgrade | HandshakeError::UnsupportedVersion => Some(426),
            HandshakeError::HeadersTooLarge | HandshakeError::TooManyHeaders => Some(431),
            HandshakeError::Rejected { .. }
            | HandshakeError::MissingUpgradeResponse
            | HandshakeError::MissingConnectionUpgradeResponse
            | HandshakeError::InvalidAccept
            | HandshakeError::UnrequestedSubprotocol(_)
            | HandshakeError::MultipleSubprotocols
            | HandshakeError::UnrequestedExtension
            | HandshakeError::InvalidUrl(_) => None,
        }
    }
}

/// The `Sec-WebSocket-Accept` value for a `Sec-WebSocket-Key`: base64(SHA-1(key + GUID)).
///
/// `key` is the header value as sent (the base64 text, not the decoded bytes).
pub fn accept_key(key: &[u8]) -> String {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(WEBSOCKET_GUID.as_bytes());
    BASE64.encode(sha.finalize())
}

/// A fresh `Sec-WebSocket-Key`: 16 random bytes, base64-encoded (24 characters).
pub fn generate_key() -> String {
    let bytes: [u8; 16] = rand::random();
    BASE64.encode(bytes)
}

/// Whether `key` is a valid `Sec-WebSocket-Key`: base64 that decodes to exactly 16 bytes.
pub(crate) fn is_valid_key(key: &str) -> bool {
    // 16 bytes are 24 base64 characters; checking the length first bounds the work.
    key.len() == 24 && BASE64.decode(key).is_ok_and(|k| k.len() == 16)
}

/// Copies httparse's headers into owned pairs.
pub(crate) fn own_headers(headers: &[httparse::Header<'_>]) -> Vec<(String, Vec<u8>)> {
    headers
        .iter()
        .map(|h| (h.name.to_owned(), h.value.to_vec()))
        .collect()
}

/// Maps an httparse error to ours.
pub(crate) fn parse_error(e: httparse::Error) -> HandshakeError {
    match e {
        httparse::Error::TooManyHeaders => HandshakeError::TooManyHeaders,
        other => HandshakeError::Malformed(other.to_string()),
    }
}

/// Whether `b` may appear in an HTTP token (header names, methods).
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A header name with every character that is not a token character removed, so that it can be
/// written without breaking the head. Empty if nothing was left.
pub(crate) fn sanitize_name(name: &str) -> String {
    name.chars()
        .filter(|&c| u8::try_from(c).is_ok_and(is_tchar))
        .collect()
}

/// A header value with control characters (but tab) removed (so that it cannot end the header line or inject
/// more), and surrounding whitespace trimmed.
pub(crate) fn sanitize_value(value: &str) -> String {
    value
        .chars()
        .filter(|&c| !(c.is_ascii_control() && c != '\t'))
        .collect::<String>()
        .trim()
        .to_owned()
}

/// Appends `name: value\r\n` to `dst`.
pub(crate) fn push_header(dst: &mut Vec<u8>, name: &str, value: &str) {
    dst.extend_from_slice(name.as_bytes());
    dst.extend_from_slice(b": ");
    dst.extend_from_slice(value.as_bytes());
    dst.extend_from_slice(b"\r\n");
}

/// Appends a user-supplied header after sanitizing it; skipped when the name is left empty.
pub(crate) fn push_user_header(dst: &mut Vec<u8>, name: &str, value: &str) {
    let name = sanitize_name(name);
    if !name.is_empty() {
        push_header(dst, &name, &sanitize_value(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_sample_key() {
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn generated_keys_are_valid_and_differ() {
        let a = generate_key();
        let b = generate_key();
        assert!(is_valid_key(&a), "{a}");
        assert!(is_valid_key(&b), "{b}");
        assert_ne!(a, b);
    }

    #[test]
    fn key_validation() {
        assert!(is_valid_key("dGhlIHNhbXBsZSBub25jZQ=="));
        assert!(!is_valid_key(""));
        assert!(!is_valid_key("not base64 at all!!!!!!!"));
        assert!(!is_valid_key("dGhlIHNhbXBsZSBub25j")); // 15 bytes
        assert!(!is_valid_key("dGhlIHNhbXBsZSBub25jZWVl")); // 18 bytes
    }

    #[test]
    fn statuses() {
        assert_eq!(HandshakeError::Malformed("x".into()).status(), Some(400));
        assert_eq!(HandshakeError::MethodNotGet.status(), Some(405));
        assert_eq!(HandshakeError::NotUpgrade.status(), Some(426));
        assert_eq!(HandshakeError::UnsupportedVersion.status(), Some(426));
        assert_eq!(HandshakeError::HeadersTooLarge.status(), Some(431));
        assert_eq!(HandshakeError::TooManyHeaders.status(), Some(431));
        assert_eq!(HandshakeError::InvalidAccept.status(), None);
    }

    #[test]
    fn sanitizing() {
        assert_eq!(sanitize_value("a\r\nX-Evil: 1"), "aX-Evil: 1");
        assert_eq!(sanitize_name("X-Good\r\nEvil: 1"), "X-GoodEvil1");
        let mut out = Vec::new();
        push_user_header(&mut out, "\r\n", "x");
        assert!(out.is_empty());
    }
}
