//! Limits a [`crate::Connection`] enforces on what the peer sends.

/// Connection limits. Exceeding one fails the connection with close code 1009.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// The largest frame payload accepted, in bytes. Default 16 MiB.
    pub max_frame_size: usize,
    /// The largest message accepted (after decompression), in bytes. Default 64 MiB.
    pub max_message_size: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_frame_size: 16 << 20,
            max_message_size: 64 << 20,
        }
    }
}

impl Config {
    /// Set the largest frame payload accepted.
    pub fn max_frame_size(mut self, bytes: usize) -> Self {
        self.max_frame_size = bytes;
        self
    }

    /// Set the largest message accepted (after decompression).
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }
}
