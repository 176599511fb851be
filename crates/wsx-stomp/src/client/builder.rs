//! [`StompClientBuilder`]: the servers to try, credentials, heart-beats, backoff and buffer
//! sizes of a [`crate::StompClient`].

use std::time::Duration;

use super::backoff::Backoff;
use super::error::ClientError;
use super::handle::StompClient;
use crate::heartbeat::HeartBeatHeader;
use crate::limits::Limits;

/// How many messages wait in a [`crate::Subscription`] by default before the client stops
/// reading from the connection.
pub const DEFAULT_SUBSCRIPTION_BUFFER: usize = 1024;
/// How long opening a connection (TCP, WebSocket handshake, CONNECT, resubscribing) may take
/// by default before the client tries the next URL.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The default heart-beats: the client offers to send one every 10 s and asks for one every
/// 10 s.
pub const DEFAULT_HEART_BEAT: Duration = Duration::from_secs(10);

/// The settings of a client, fixed when it starts.
#[derive(Debug, Clone)]
pub(crate) struct ClientConfig {
    pub(crate) urls: Vec<String>,
    pub(crate) login: Option<String>,
    pub(crate) passcode: Option<String>,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) heart_beat: HeartBeatHeader,
    pub(crate) backoff: Backoff,
    pub(crate) connect_timeout: Duration,
    pub(crate) limits: Limits,
    pub(crate) subscription_buffer: usize,
    pub(crate) max_reconnect_attempts: Option<u32>,
}

/// Builds a [`crate::StompClient`]; made by [`crate::StompClient::builder`].
#[derive(Debug, Clone)]
pub struct StompClientBuilder {
    config: ClientConfig,
}

fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

impl Default for StompClientBuilder {
    fn default() -> Self {
        let defaults = Limits::default();
        StompClientBuilder {
            config: ClientConfig {
                urls: Vec::new(),
                login: None,
                passcode: None,
                headers: Vec::new(),
                heart_beat: HeartBeatHeader {
                    can_send: millis(DEFAULT_HEART_BEAT),
                    want_receive: millis(DEFAULT_HEART_BEAT),
                },
                backoff: Backoff::default(),
                connect_timeout: DEFAULT_CONNECT_TIMEOUT,
                // A MESSAGE carries the SEND's headers plus the server's own: room for them.
                limits: defaults
                    .max_header_bytes(defaults.max_header_bytes + 1024)
                    .max_frame_size(defaults.max_frame_size + 1024),
                subscription_buffer: DEFAULT_SUBSCRIPTION_BUFFER,
                max_reconnect_attempts: None,
            },
        }
    }
}

impl StompClientBuilder {
    /// A server to connect to (`ws://host:port/stomp`, or `wss://`). Several URLs are tried in
    /// turn: when one node dies the client carries on with the next.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.config.urls.push(url.into());
        self
    }

    /// The CONNECT `login` header.
    pub fn login(mut self, login: impl Into<String>) -> Self {
        self.config.login = Some(login.into());
        self
    }

    /// The CONNECT `passcode` header.
    pub fn passcode(mut self, passcode: impl Into<String>) -> Self {
        self.config.passcode = Some(passcode.into());
        self
    }

    /// An extra CONNECT header (`Authorization: Bearer …`, say).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.headers.push((name.into(), value.into()));
        self
    }

    /// Heart-beats: the client can send one every `send` and wants one from the server every
    /// `receive` (zero: none). The server's answer decides; the client sends an end-of-line at
    /// the negotiated interval and drops a connection that stays silent for twice the
    /// server's. Default 10 s both ways.
    pub fn heart_beat(mut self, send: Duration, receive: Duration) -> Self {
        self.config.heart_beat = HeartBeatHeader {
            can_send: millis(send),
            want_receive: millis(receive),
        };
        self
    }

    /// The delays between connection attempts (default: [`Backoff::default`]).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.config.backoff = backoff;
        self
    }

    /// How long opening one connection may take (default [`DEFAULT_CONNECT_TIMEOUT`]).
    pub fn connect_timeout(mut self, limit: Duration) -> Self {
        self.config.connect_timeout = limit;
        self
    }

    /// Decoder limits for what the server sends (default: [`Limits::default`] with 1 KiB
    /// more room for headers, which a MESSAGE adds to the SEND's).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.config.limits = limits;
        self
    }

    /// How many messages may wait in each subscription (at least 1; default
    /// [`DEFAULT_SUBSCRIPTION_BUFFER`]).
    pub fn subscription_buffer(mut self, messages: usize) -> Self {
        self.config.subscription_buffer = messages.max(1);
        self
    }

    /// Stop after this many failed attempts in a row (the client then is
    /// [`crate::ConnectionState::Closed`]). Default: never stop.
    pub fn max_reconnect_attempts(mut self, attempts: u32) -> Self {
        self.config.max_reconnect_attempts = Some(attempts);
        self
    }

    /// Start the client and wait for its first connection.
    ///
    /// # Errors
    ///
    /// [`ClientError::NoUrl`] without a URL; the error of the last URL when each of them
    /// failed once ([`ClientError::Connect`], [`ClientError::Refused`]). Once connected, the
    /// client reconnects by itself.
    pub async fn connect(self) -> Result<StompClient, ClientError> {
        if self.config.urls.is_empty() {
            return Err(ClientError::NoUrl);
        }
        StompClient::start(self.config).await
    }
}
