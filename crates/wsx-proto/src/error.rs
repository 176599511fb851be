//! The one error type of `wsx-proto`, with the detail enums it carries.
//!
//! As rustls splits its errors, the variants say whose fault it is:
//!
//! - **The peer misbehaved** (or sent something we cannot handle): [`Error::Protocol`],
//!   [`Error::InvalidUtf8`], [`Error::FrameTooBig`], [`Error::MessageTooBig`],
//!   [`Error::Inflate`], [`Error::Handshake`], [`Error::Extension`]. Each maps to a close code
//!   ([`Error::close_code`]: the connection is failed with it) or, during the handshake, to an
//!   HTTP status ([`crate::handshake::HandshakeError::status`]).
//! - **We failed**: [`Error::Deflate`] (1011).
//! - **A deadline passed**: [`Error::Timeout`] (keepalive: 1011 or 1001; the close handshake:
//!   give up).
//! - **The API was misused**: [`Error::InvalidSend`] and [`Error::Closed`]. Nothing is sent to
//!   the peer and the connection is unchanged; [`Error::close_code`] is `None`.

use crate::close::CloseCode;
use crate::handshake::HandshakeError;
use crate::timers::Timeout;

/// Everything that can go wrong in the protocol core.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The peer broke the framing rules of RFC 6455; the connection is failed with 1002.
    #[error("protocol error: {0}")]
    Protocol(#[from] ProtocolError),
    /// A text message or close reason was not valid UTF-8; the connection is failed with 1007.
    #[error("invalid UTF-8 in a text message or close reason")]
    InvalidUtf8,
    /// A frame was larger than the configured maximum; the connection is failed with 1009.
    #[error("frame of {size} bytes exceeds the limit of {limit} bytes")]
    FrameTooBig {
        /// The size the frame header announced (or the size reached so far).
        size: u64,
        /// The configured limit.
        limit: usize,
    },
    /// A message (after decompression) was larger than the configured maximum; failed with 1009.
    #[error("message of at least {size} bytes exceeds the limit of {limit} bytes")]
    MessageTooBig {
        /// The size reached when the limit was crossed.
        size: u64,
        /// The configured limit.
        limit: usize,
    },
    /// The opening handshake failed.
    #[error("handshake failed: {0}")]
    Handshake(#[from] HandshakeError),
    /// permessage-deflate negotiation failed (client side: the server's answer cannot be honoured).
    #[error("extension negotiation failed: {0}")]
    Extension(String),
    /// A compressed message could not be inflated; the connection is failed with 1007.
    #[error("permessage-deflate: invalid compressed data: {0}")]
    Inflate(String),
    /// Compressing an outgoing message failed; the connection is failed with 1011.
    #[error("permessage-deflate: compression failed: {0}")]
    Deflate(String),
    /// A deadline of the connection's timers passed ([`crate::Connection::handle_timeout`]):
    /// a keepalive failure fails the connection (1011 for a missing pong, 1001 when idle); when
    /// the close handshake did not finish in time, the transport should be closed.
    #[error("timeout: {0}")]
    Timeout(#[from] Timeout),
    /// API misuse: the application tried to send something not allowed (for example a control
    /// frame payload over 125 bytes, or an invalid close code).
    #[error("invalid message to send: {0}")]
    InvalidSend(&'static str),
    /// API misuse: the connection is closed (or closing: our close frame is sent) and cannot
    /// send data any more. The one "closed" error of the core; `wsx` reports it as
    /// `wsx::Error::Closed`.
    #[error("the connection is closed")]
    Closed,
}

impl Error {
    /// The close code to fail the connection with, if this error comes from the peer.
    pub fn close_code(&self) -> Option<CloseCode> {
        match self {
            Error::Protocol(_) => Some(CloseCode::PROTOCOL_ERROR),
            Error::InvalidUtf8 | Error::Inflate(_) => Some(CloseCode::INVALID_PAYLOAD),
            Error::FrameTooBig { .. } | Error::MessageTooBig { .. } => {
                Some(CloseCode::MESSAGE_TOO_BIG)
            }
            Error::Deflate(_) => Some(CloseCode::INTERNAL_ERROR),
            Error::Timeout(t) => t.close_frame().map(|(code, _)| code),
            _ => None,
        }
    }
}

/// A violation of the framing rules of RFC 6455 by the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// An opcode reserved for future use (3-7, 0xB-0xF).
    #[error("reserved opcode {0:#x}")]
    ReservedOpcode(u8),
    /// An RSV bit that no negotiated extension defines.
    #[error("reserved bits set that no extension defines")]
    ReservedBits,
    /// A control frame with a payload over 125 bytes.
    #[error("control frame payload over 125 bytes")]
    ControlFrameTooBig,
    /// A control frame without the FIN bit.
    #[error("fragmented control frame")]
    FragmentedControlFrame,
    /// A 64-bit payload length with the most significant bit set.
    #[error("payload length with the most significant bit set")]
    InvalidLength,
    /// A length not in its minimal encoding is allowed by the RFC; this is only for lengths that
    /// do not fit the platform.
    #[error("payload length does not fit in memory")]
    LengthOverflow,
    /// A client sent an unmasked frame to a server.
    #[error("client frame is not masked")]
    UnmaskedFrame,
    /// A server sent a masked frame to a client.
    #[error("server frame is masked")]
    MaskedFrame,
    /// A continuation frame with no message in progress.
    #[error("continuation frame without a message to continue")]
    UnexpectedContinuation,
    /// A new data frame while a fragmented message was still in progress.
    #[error("new data frame while a fragmented message is in progress")]
    ExpectedContinuation,
    /// A close frame with a one-byte payload.
    #[error("close frame with a one-byte payload")]
    InvalidClosePayload,
    /// A close frame with a code that may not be sent on the wire.
    #[error("invalid close code {0}")]
    InvalidCloseCode(u16),
    /// RSV1 (compressed) on a continuation or control frame.
    #[error("compressed bit on a continuation or control frame")]
    CompressedControlOrContinuation,
    /// Data arrived after the peer's close frame.
    #[error("data after the close frame")]
    DataAfterClose,
}
