//! Settings for a WebSocket connection, shared by clients and servers.

use std::time::Duration;

use wsx_proto::deflate::DeflateConfig;

/// Connection settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WebSocketConfig {
    /// Limits on frames and messages from the peer (defaults: 16 MiB frames, 64 MiB messages).
    pub limits: wsx_proto::Config,
    /// permessage-deflate policy; `None` disables compression (neither offered nor accepted).
    pub compression: Option<DeflateConfig>,
    /// The largest HTTP request or response head accepted during the handshake. Default 16 KiB.
    pub max_header_bytes: usize,
    /// How long the client waits for the server to close TCP after the close handshake, and
    /// either side waits for the peer's close frame after sending its own. Default 5 s.
    pub close_timeout: Duration,
    /// Queued output above which `send` and the `Sink` wait for the transport before queuing
    /// more. Default 64 KiB.
    pub write_buffer_high_water: usize,
}

impl Default for WebSocketConfig {
    fn default() -> Self {
        WebSocketConfig {
            limits: wsx_proto::Config::default(),
            compression: None,
            max_header_bytes: 16 * 1024,
            close_timeout: Duration::from_secs(5),
            write_buffer_high_water: 64 * 1024,
        }
    }
}

impl WebSocketConfig {
    /// Set the largest frame accepted from the peer.
    pub fn max_frame_size(mut self, bytes: usize) -> Self {
        self.limits.max_frame_size = bytes;
        self
    }

    /// Set the largest message accepted from the peer (after decompression).
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.limits.max_message_size = bytes;
        self
    }

    /// Enable permessage-deflate with the given policy (offered by clients, accepted by servers).
    pub fn compression(mut self, deflate: DeflateConfig) -> Self {
        self.compression = Some(deflate);
        self
    }

    /// Set the close timeout.
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }
}
