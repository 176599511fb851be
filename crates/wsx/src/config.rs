//! Settings for a WebSocket connection, shared by clients and servers.

use std::sync::Arc;
use std::time::Duration;

use wsx_proto::MaskKeySource;
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
    /// The output budget of one connection: the most output queued (not yet taken by the
    /// transport) before the [`Backpressure`] policy applies to new messages. Default 1 MiB.
    ///
    /// Everything counts: the application's messages, pongs and close frames the connection
    /// queues itself. On a server, while the queued output is at or over the budget the
    /// connection reads nothing from the peer (it only writes, and keeps its keepalive and
    /// idle timers running): a peer that sends without reading is slowed down by TCP flow
    /// control instead of making the server queue answers without bound, and one that does not
    /// read for the idle timeout is dropped. The queue can exceed the budget by what answers a
    /// single message (an echo of it). Pongs are at most one pending when the output is backed
    /// up ([`wsx_proto::PONG_COALESCE_AT`]). A client keeps reading (so two peers
    /// that both queue more than they read cannot wait on each other forever).
    pub max_write_buffer: usize,
    /// What happens when a message is queued while the output buffer is full. Default: wait.
    pub backpressure: Backpressure,
    /// Send a ping after this long without receiving anything. Default: none.
    pub ping_interval: Option<Duration>,
    /// How long to wait for the pong to a keepalive ping before failing the connection (close
    /// 1011, [`crate::Error::Timeout`]). Default 20 s.
    pub pong_timeout: Duration,
    /// Close the connection (1001, [`crate::Error::Timeout`]) after this long without
    /// receiving anything. Default: none.
    pub idle_timeout: Option<Duration>,
    /// Where a client takes the masking keys of its frames from. Default (`None`): the
    /// thread's random generator. A fixed source makes a client's bytes reproducible in
    /// tests; see [`MaskKeySource`] for why real clients keep the default.
    pub mask_keys: Option<Arc<dyn MaskKeySource>>,
}

/// The policy when the outgoing buffer is full ([`WebSocketConfig::max_write_buffer`]).
///
/// Whatever the policy, a server stops reading from the peer while its output is full (see
/// [`WebSocketConfig::max_write_buffer`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backpressure {
    /// `send` and the `Sink` wait until the transport has taken enough. `feed`, which cannot
    /// wait, still queues: an application that queues on its own initiative (a broadcast, not
    /// an answer to the peer) waits for room itself, with [`crate::WebSocket::flush`] or
    /// [`crate::WebSocket::poll_recv_or_drained`], or uses `Fail`/`Close`.
    #[default]
    Wait,
    /// Queuing fails with [`crate::Error::BufferFull`]; the connection stays open.
    Fail,
    /// The connection is closed with this code (1008 or 1013 are usual) and queuing fails with
    /// [`crate::Error::BufferFull`].
    Close(wsx_proto::CloseCode),
}

impl Default for WebSocketConfig {
    fn default() -> Self {
        WebSocketConfig {
            limits: wsx_proto::Config::default(),
            compression: None,
            max_header_bytes: 16 * 1024,
            close_timeout: Duration::from_secs(5),
            max_write_buffer: 1 << 20,
            backpressure: Backpressure::Wait,
            ping_interval: None,
            pong_timeout: Duration::from_secs(20),
            idle_timeout: None,
            mask_keys: None,
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

    /// Set the output buffer bound and the policy when it is full.
    pub fn backpressure(mut self, max_write_buffer: usize, policy: Backpressure) -> Self {
        self.max_write_buffer = max_write_buffer;
        self.backpressure = policy;
        self
    }

    /// Send keepalive pings after `interval` of silence and fail the connection when the pong
    /// takes longer than `pong_timeout`.
    pub fn keepalive(mut self, interval: Duration, pong_timeout: Duration) -> Self {
        self.ping_interval = Some(interval);
        self.pong_timeout = pong_timeout;
        self
    }

    /// Close the connection after `timeout` without receiving anything.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = Some(timeout);
        self
    }

    /// Set the largest HTTP head accepted during the handshake (431 past it on a server).
    pub fn max_header_bytes(mut self, bytes: usize) -> Self {
        self.max_header_bytes = bytes;
        self
    }

    /// Take a client's masking keys from `source` (see [`WebSocketConfig::mask_keys`]).
    pub fn mask_keys(mut self, source: impl MaskKeySource + 'static) -> Self {
        self.mask_keys = Some(Arc::new(source));
        self
    }

    /// Set the close timeout.
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }
}
