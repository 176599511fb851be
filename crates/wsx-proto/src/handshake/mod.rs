//! The opening handshake (RFC 6455 §4): HTTP/1.1 Upgrade request and response.

/// Why a handshake failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// Placeholder.
    #[error("bad request: {0}")]
    BadRequest(&'static str),
}
