//! The connection states of a [`crate::StompClient`], which the application can watch
//! ([`crate::StompClient::state`]).

/// Where the client's connection stands.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionState {
    /// Opening a connection (WebSocket handshake, CONNECT, resubscribing).
    Connecting,
    /// Connected and every subscription (re)subscribed: the server confirmed each SUBSCRIBE.
    Connected {
        /// The URL of the server.
        url: String,
        /// Which connection this is: 1 for the first, one more for each reconnection.
        connection: u64,
    },
    /// The connection was lost, or an attempt failed; the client retries after its backoff.
    Disconnected {
        /// Why.
        reason: String,
    },
    /// The client stopped: disconnected on request, or gave up reconnecting.
    Closed,
}
