//! What a [`crate::Session`] allows and announces: versions, heart-beats, limits.

use std::time::Duration;

use crate::heartbeat::HeartBeatHeader;
use crate::limits::Limits;
use crate::version::Version;

/// Session settings, shared by all sessions of a server (wrap it in an `Arc`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionConfig {
    /// Decoder limits for client frames.
    pub limits: Limits,
    /// Protocol versions the server speaks. Default: 1.0, 1.1 and 1.2.
    pub versions: Vec<Version>,
    /// The server's `heart-beat` header: it can send every `can_send` ms and wants to hear
    /// from the client every `want_receive` ms. Default 10 000, 10 000.
    pub heart_beat: HeartBeatHeader,
    /// How late a client's heart-beat may be, in percent of the negotiated interval, before
    /// the session gives up on it. Default 50 (a 10 s interval times out after 15 s).
    pub heart_beat_grace_percent: u32,
    /// How long a new connection may take to send CONNECT. Default 10 s.
    pub connect_timeout: Duration,
    /// How long a connected client may send nothing at all (no frame, no heart-beat) before
    /// the session ends with an ERROR naming the limit; it applies whatever heart-beats were
    /// negotiated (`heart-beat:0,0` included). Idle means no input: a subscriber that only
    /// receives stays connected by sending heart-beats (or any frame) at least this often.
    /// `None`: no limit. Default 300 s.
    pub idle_timeout: Option<Duration>,
    /// The most subscriptions a connection may hold. Default 64.
    pub max_subscriptions: usize,
    /// The most unacknowledged messages per subscription in a client ack mode (the window
    /// the engine respects). Default 256.
    pub max_unacked: usize,
    /// The most messages of one `ack:auto` *queue* subscription delivered and not yet written
    /// to the socket (its credit window): the engine keeps them in flight, and they are
    /// acknowledged to it only once the I/O layer reports them written
    /// ([`crate::Session::written`]); a consumer that goes away first gives them back to the
    /// queue. `ack:auto` topic subscriptions have no window (at most once). Default 256.
    pub auto_ack_window: usize,
    /// The most bytes of frames a session may have produced and not seen written
    /// ([`crate::Session::written`]): past it the session stops decoding the frames it has
    /// buffered ([`crate::Session::wants_input`] turns `false`, and the I/O layer stops reading
    /// the connection) until writes bring it back under. Nothing is dropped; one frame may pass
    /// the budget by what it produces (at most `max_subscriptions` MESSAGE frames). Default
    /// 1 MiB.
    pub max_unwritten_bytes: usize,
    /// The most transactions a connection may have open. Default 16.
    pub max_transactions: usize,
    /// The most SEND, ACK and NACK frames one transaction may hold. Default 1024.
    pub max_transaction_frames: usize,
    /// The most bytes one transaction may hold: its frames whole (headers and body, see
    /// [`crate::Publish::size`]). Default 8 MiB.
    pub max_transaction_bytes: usize,
    /// The most bytes all open transactions of a connection may hold together (counted like
    /// `max_transaction_bytes`). Default 8 MiB. Crossing either is an ERROR naming the limit,
    /// then the session closes (the transactions are discarded).
    pub max_session_transaction_bytes: usize,
    /// The longest value of a header that names something the session keeps or writes back:
    /// `id` (SUBSCRIBE, UNSUBSCRIBE, ACK, NACK — a subscription id is written on every MESSAGE
    /// delivered), `receipt`, `transaction`, `destination`, `subscription`, `message-id` and
    /// `ack`. Default 256 bytes (RabbitMQ caps queue names at 255). A longer one is an ERROR
    /// naming the header and the limit, then the session closes.
    pub max_name_len: usize,
    /// The `server` header of CONNECTED. Default `wsx-stomp/VERSION`.
    pub server: String,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            limits: Limits::default(),
            versions: Version::ALL.to_vec(),
            heart_beat: HeartBeatHeader {
                can_send: 10_000,
                want_receive: 10_000,
            },
            heart_beat_grace_percent: 50,
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Some(Duration::from_secs(300)),
            max_subscriptions: 64,
            max_unacked: 256,
            auto_ack_window: 256,
            max_unwritten_bytes: 1 << 20,
            max_transactions: 16,
            max_transaction_frames: 1024,
            max_transaction_bytes: 8 << 20,
            max_session_transaction_bytes: 8 << 20,
            max_name_len: 256,
            server: concat!("wsx-stomp/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

impl SessionConfig {
    /// Set the decoder limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Set the versions spoken.
    pub fn versions(mut self, versions: &[Version]) -> Self {
        self.versions = versions.to_vec();
        self
    }

    /// Set the server's heart-beat intervals in milliseconds (0: none).
    pub fn heart_beat(mut self, can_send_ms: u32, want_receive_ms: u32) -> Self {
        self.heart_beat = HeartBeatHeader {
            can_send: can_send_ms,
            want_receive: want_receive_ms,
        };
        self
    }

    /// Set the heart-beat grace, in percent of the interval.
    pub fn heart_beat_grace_percent(mut self, percent: u32) -> Self {
        self.heart_beat_grace_percent = percent;
        self
    }

    /// Set how long a client may take to send CONNECT.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Set how long a connected client may send nothing (`None`: no limit).
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Set the most subscriptions per connection.
    pub fn max_subscriptions(mut self, n: usize) -> Self {
        self.max_subscriptions = n;
        self
    }

    /// Set the most unacknowledged messages per subscription.
    pub fn max_unacked(mut self, n: usize) -> Self {
        self.max_unacked = n;
        self
    }

    /// Set the credit window of `ack:auto` queue subscriptions.
    pub fn auto_ack_window(mut self, n: usize) -> Self {
        self.auto_ack_window = n;
        self
    }

    /// Set the most bytes of output a session may have unwritten before it stops decoding.
    pub fn max_unwritten_bytes(mut self, bytes: usize) -> Self {
        self.max_unwritten_bytes = bytes;
        self
    }

    /// Set the most open transactions per connection.
    pub fn max_transactions(mut self, n: usize) -> Self {
        self.max_transactions = n;
        self
    }

    /// Set the most frames per transaction.
    pub fn max_transaction_frames(mut self, n: usize) -> Self {
        self.max_transaction_frames = n;
        self
    }

    /// Set the most bytes per transaction.
    pub fn max_transaction_bytes(mut self, bytes: usize) -> Self {
        self.max_transaction_bytes = bytes;
        self
    }

    /// Set the most bytes a connection's open transactions hold together.
    pub fn max_session_transaction_bytes(mut self, bytes: usize) -> Self {
        self.max_session_transaction_bytes = bytes;
        self
    }

    /// Set the longest `id`, `receipt`, `transaction`, `destination` (and other naming) header
    /// value.
    pub fn max_name_len(mut self, bytes: usize) -> Self {
        self.max_name_len = bytes;
        self
    }

    /// Set the `server` header.
    pub fn server(mut self, server: impl Into<String>) -> Self {
        self.server = server.into();
        self
    }
}
