//! The one error type of the STOMP client ([`crate::StompClient`]).
//!
//! The codec's [`crate::Error`] says what is wrong with bytes; a client also fails for reasons
//! that have nothing to do with bytes — no server reachable, a connection lost before a RECEIPT
//! came, the server refusing a frame — so it has its own type, which wraps the codec's. It is
//! `Clone` because one connection loss fails every send waiting on it with the same error.

/// Everything that can go wrong in [`crate::StompClient`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The builder was given no URL.
    #[error("no URL to connect to: add one with StompClientBuilder::url")]
    NoUrl,
    /// Opening the WebSocket to a URL, or the STOMP CONNECT on it, failed (refused TCP
    /// connection, handshake error, timeout, the connection closing before CONNECTED).
    #[error("cannot connect to {url}: {reason}")]
    Connect {
        /// The URL tried.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The server answered CONNECT with an ERROR (bad credentials, say).
    #[error("the server at {url} refused the connection: {message}")]
    Refused {
        /// The URL tried.
        url: String,
        /// The `message` header of the ERROR.
        message: String,
    },
    /// The server answered a frame of ours (a SEND, a SUBSCRIBE) with an ERROR. The server
    /// closes the connection after an ERROR; the client reconnects.
    #[error("the server refused the frame: {message}")]
    Server {
        /// The `message` header of the ERROR.
        message: String,
    },
    /// The connection was lost before the RECEIPT of a frame came: the server may or may not
    /// have taken it. The client does not resend it (that could deliver it twice); the
    /// application decides.
    #[error(
        "the connection was lost before the server confirmed the frame (it may or may not have \
         been taken): {reason}"
    )]
    ConnectionLost {
        /// Why the connection ended.
        reason: String,
    },
    /// The client is between connections (reconnecting, waiting out its backoff): frames that
    /// need a connection fail at once instead of waiting.
    #[error("not connected: the client is reconnecting")]
    NotConnected,
    /// An ACK or NACK of a message that came on an earlier connection: the server has already
    /// put it back, and delivers it again on the new connection.
    #[error(
        "the message came on a connection that has since closed: the server delivers it again, \
         acknowledge the new copy"
    )]
    StaleAck,
    /// An ACK or NACK of a message of an `auto` subscription, which has nothing to acknowledge.
    #[error("the message's subscription acknowledges automatically (ack mode auto)")]
    NotAckable,
    /// The client has stopped: [`crate::StompClient::disconnect`] was called, or it gave up
    /// reconnecting (see [`crate::StompClientBuilder::max_reconnect_attempts`]).
    #[error("the client is closed")]
    Closed,
    /// A frame could not be encoded (a header the protocol version cannot represent).
    #[error(transparent)]
    Codec(#[from] crate::Error),
}
