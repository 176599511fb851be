//! The one error type of `wsx`.
//!
//! Its variants fall in three groups, as rustls splits its errors:
//!
//! - **The peer misbehaved**: [`Error::Protocol`] (framing, UTF-8, size limits, compressed data,
//!   the handshake). The connection is failed with the close code
//!   [`wsx_proto::Error::close_code`] gives, or the handshake with an HTTP status.
//! - **The transport or the network failed**: [`Error::Io`], [`Error::ConnectionReset`],
//!   [`Error::Timeout`], [`Error::Proxy`].
//! - **The application misused the API**: [`Error::Closed`] (sending on a closed connection),
//!   [`Error::InvalidSend`] (a message that may not be sent), [`Error::InvalidUrl`]; and
//!   [`Error::BufferFull`] when the backpressure policy refuses to queue more. Nothing is sent
//!   to the peer for these: the call fails and the connection is as it was.

use std::io;

/// Everything that can go wrong on a WebSocket connection.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The transport failed.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    /// The peer broke the protocol, or the handshake failed; see [`wsx_proto::Error`]. Never
    /// holds [`wsx_proto::Error::Closed`] or [`wsx_proto::Error::InvalidSend`]: those are
    /// [`Error::Closed`] and [`Error::InvalidSend`] here.
    #[error(transparent)]
    Protocol(wsx_proto::Error),
    /// The peer closed the TCP connection without a close handshake (close code 1006).
    #[error("the connection was closed without a close handshake")]
    ConnectionReset,
    /// The connection is closed (or closing: our close frame is sent), so nothing more can be
    /// sent; or the thing asked for was already handed out (a [`WsSender`](crate::WsSender)
    /// whose connection ended, an upgrade future polled again). The one "closed" error of
    /// `wsx`: the core's [`wsx_proto::Error::Closed`] arrives as this.
    #[error("the connection is closed")]
    Closed,
    /// The application tried to send something not allowed (a control frame payload over 125
    /// bytes, a close code that may not be sent, a close reason over 123 bytes); nothing was
    /// sent.
    #[error("invalid message to send: {0}")]
    InvalidSend(&'static str),
    /// The outgoing buffer is full and the backpressure policy refuses to queue more.
    #[error("the outgoing buffer is full")]
    BufferFull,
    /// A deadline passed.
    #[error("timed out: {0}")]
    Timeout(&'static str),
    /// The URL could not be used.
    #[error("invalid URL: {0}")]
    InvalidUrl(String),
    /// The proxy refused the tunnel or the credentials, or broke its protocol
    /// (see [`ProxyConfig`](crate::ProxyConfig)); the message says which proxy and why.
    #[error("proxy: {0}")]
    Proxy(String),
    /// The HTTP/2 connection failed or the peer broke HTTP/2 (feature `http2`): a
    /// `GOAWAY` with an error, a refused or reset stream before its response, a malformed
    /// response.
    #[error("HTTP/2: {0}")]
    Http2(String),
    /// The server does not carry WebSockets over HTTP/2 (feature `http2`): it did not choose
    /// `h2` in TLS ALPN, or does not advertise `SETTINGS_ENABLE_CONNECT_PROTOCOL` (RFC 8441).
    /// Connect over HTTP/1.1 instead.
    #[error(
        "the server does not accept WebSockets over HTTP/2 (no ALPN h2, or no SETTINGS_ENABLE_CONNECT_PROTOCOL)"
    )]
    NoExtendedConnect,
}

impl Error {
    /// The handshake error behind this error, if any.
    pub fn as_handshake(&self) -> Option<&wsx_proto::handshake::HandshakeError> {
        match self {
            Error::Protocol(wsx_proto::Error::Handshake(h)) => Some(h),
            _ => None,
        }
    }
}

impl From<wsx_proto::Error> for Error {
    /// API misuse reported by the core becomes [`Error::Closed`] or [`Error::InvalidSend`];
    /// everything else is [`Error::Protocol`].
    fn from(e: wsx_proto::Error) -> Self {
        match e {
            wsx_proto::Error::Closed => Error::Closed,
            wsx_proto::Error::Timeout(t) => Error::Timeout(t.as_str()),
            wsx_proto::Error::InvalidSend(why) => Error::InvalidSend(why),
            e => Error::Protocol(e),
        }
    }
}

impl From<wsx_proto::handshake::HandshakeError> for Error {
    fn from(e: wsx_proto::handshake::HandshakeError) -> Self {
        Error::Protocol(e.into())
    }
}

/// A shorthand for results in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
