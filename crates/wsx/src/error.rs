//! The one error type of `wsx`.

use std::io;

/// Everything that can go wrong on a WebSocket connection.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The transport failed.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    /// The peer broke the protocol, or the handshake failed; see [`wsx_proto::Error`].
    #[error(transparent)]
    Protocol(#[from] wsx_proto::Error),
    /// The peer closed the TCP connection without a close handshake (close code 1006).
    #[error("the connection was closed without a close handshake")]
    ConnectionReset,
    /// The connection is closed; nothing more can be sent or received.
    #[error("the connection is closed")]
    Closed,
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

impl From<wsx_proto::handshake::HandshakeError> for Error {
    fn from(e: wsx_proto::handshake::HandshakeError) -> Self {
        Error::Protocol(e.into())
    }
}

/// A shorthand for results in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
