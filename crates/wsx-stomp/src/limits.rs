//! Limits the [`crate::Decoder`] enforces on what a peer sends.
//!
//! Each is checked as soon as the bytes received cross it (a `content-length` over the body
//! limit fails before the body arrives), so a peer cannot make the decoder buffer more than
//! [`Limits::max_frame_size`] bytes for one frame.

/// Decoder limits. Crossing one fails decoding with the matching [`crate::Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// The largest frame (command, headers, body, NUL) in bytes. Default 1 MiB + 64 KiB.
    pub max_frame_size: usize,
    /// The most headers in one frame. Default 64.
    pub max_headers: usize,
    /// The longest command or header line in bytes (escaped, without line ending).
    /// Default 8 KiB (room for a large JWT in a CONNECT header).
    pub max_header_line: usize,
    /// The most bytes of the command and header lines of one frame together (escaped, line
    /// endings and the blank line ending the headers included). Default 16 KiB: a CONNECT with a large token fits, and SEND headers
    /// — stored with the message and passed on to every subscriber — have no need of more
    /// (the body is for data). Crossing it fails with [`crate::Error::HeadersTooBig`]. A
    /// MESSAGE carries the SEND's headers plus a few of the server's (`subscription`,
    /// `message-id`, `ack`: under 1 KiB with the session's default
    /// [`crate::SessionConfig::max_name_len`]), so a client decoding MESSAGE frames should
    /// allow 1 KiB more than the server does.
    pub max_header_bytes: usize,
    /// The largest body in bytes. Default 1 MiB.
    pub max_body_size: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_size: (1 << 20) + (64 << 10),
            max_headers: 64,
            max_header_line: 8 << 10,
            max_header_bytes: 16 << 10,
            max_body_size: 1 << 20,
        }
    }
}

impl Limits {
    /// Set the largest frame.
    pub fn max_frame_size(mut self, bytes: usize) -> Self {
        self.max_frame_size = bytes;
        self
    }

    /// Set the most headers per frame.
    pub fn max_headers(mut self, n: usize) -> Self {
        self.max_headers = n;
        self
    }

    /// Set the longest header line.
    pub fn max_header_line(mut self, bytes: usize) -> Self {
        self.max_header_line = bytes;
        self
    }

    /// Set the most bytes of the command and header lines of one frame.
    pub fn max_header_bytes(mut self, bytes: usize) -> Self {
        self.max_header_bytes = bytes;
        self
    }

    /// Set the largest body.
    pub fn max_body_size(mut self, bytes: usize) -> Self {
        self.max_body_size = bytes;
        self
    }
}
