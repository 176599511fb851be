//! Which end of the connection we are: it decides who masks frames and who closes TCP first.

/// The side of a WebSocket connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The side that sent the HTTP Upgrade request. It masks every frame it sends.
    Client,
    /// The side that accepted the Upgrade. It never masks, and closes the TCP connection first.
    Server,
}

impl Role {
    /// Whether frames sent by this role must be masked (RFC 6455 §5.1).
    pub fn masks_outgoing(self) -> bool {
        matches!(self, Role::Client)
    }
}
