//! Keepalive and the close deadline as sans-IO timers: the core keeps the deadlines, the I/O
//! layer keeps the clock.
//!
//! Like quinn-proto's connection timers (and `wsx-stomp`'s session timers), nothing here reads
//! a clock: the I/O layer passes the time in. It drives them with three calls on
//! [`crate::Connection`]:
//!
//! 1. [`Connection::poll_timeout`](crate::Connection::poll_timeout): when to call back, if
//!    ever — ask again after anything that may have changed it (a message queued or received,
//!    a close), and sleep until then;
//! 2. [`Connection::handle_timeout`](crate::Connection::handle_timeout) once that instant has
//!    passed: a keepalive ping is queued (write the output), or a [`Timeout`] is returned;
//! 3. [`Connection::mark_received`](crate::Connection::mark_received) when bytes arrive, while
//!    [`Connection::has_keepalive`](crate::Connection::has_keepalive): silence is measured
//!    from the last of them.
//!
//! The deadlines, in order of precedence:
//! - the **close deadline** ([`TimerConfig::close_timeout`]): from the moment the close
//!   handshake starts (a close frame sent or received, or the connection failed), how long to
//!   wait for it to finish. It is armed by the first `handle_timeout` after that moment
//!   (`poll_timeout` asks for it at once); when it passes, [`Timeout::Close`]: give up and close
//!   the transport.
//! - the **idle timeout** ([`TimerConfig::idle_timeout`]): nothing received for that long:
//!   [`Timeout::Idle`], the connection is failed with 1001 "idle timeout".
//! - **keepalive pings** ([`TimerConfig::ping_interval`]): after that long without receiving
//!   anything, a ping is queued; if its pong does not come within
//!   [`TimerConfig::pong_timeout`], [`Timeout::Pong`], the connection is failed with 1011
//!   "keepalive ping timeout". A pong answers it when its payload is the ping's (an 8-byte
//!   counter).
//!
//! Keepalive stops once our close frame is sent. An idle connection allocates nothing for its
//! timers unless keepalive runs: with only a close timeout ([`TimerSlot::CloseOnly`]) the
//! connection keeps it inline, and the full state ([`Timers`], boxed) is allocated when the
//! close handshake starts.

use std::time::{Duration, Instant};

use crate::close::CloseCode;

/// The timer settings of a connection ([`crate::Connection::with_timers`]). The default has
/// none: set the fields wanted, `TimerConfig { idle_timeout: Some(…), ..Default::default() }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerConfig {
    /// Queue a ping after this long without receiving anything. Default: none.
    pub ping_interval: Option<Duration>,
    /// How long to wait for the pong to a keepalive ping. Default 20 s.
    pub pong_timeout: Duration,
    /// Fail the connection after this long without receiving anything. Default: none.
    pub idle_timeout: Option<Duration>,
    /// How long the close handshake may take once started. Default: none (no deadline).
    pub close_timeout: Option<Duration>,
}

impl Default for TimerConfig {
    fn default() -> Self {
        TimerConfig {
            ping_interval: None,
            pong_timeout: Duration::from_secs(20),
            idle_timeout: None,
            close_timeout: None,
        }
    }
}

impl TimerConfig {
    /// Whether any timer is set.
    pub fn is_empty(&self) -> bool {
        self.ping_interval.is_none() && self.idle_timeout.is_none() && self.close_timeout.is_none()
    }
}

/// A deadline that passed ([`crate::Error::Timeout`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Timeout {
    /// The pong to a keepalive ping did not come in time; the connection is failed with 1011.
    #[error("no pong to a keepalive ping")]
    Pong,
    /// Nothing was received within the idle timeout; the connection is failed with 1001.
    #[error("nothing received within the idle timeout")]
    Idle,
    /// The close handshake did not finish within the close timeout: close the transport.
    #[error("waiting for the peer's close frame")]
    Close,
}

impl Timeout {
    /// What [`Timeout`]'s `Display` says, as a static string.
    pub fn as_str(self) -> &'static str {
        match self {
            Timeout::Pong => "no pong to a keepalive ping",
            Timeout::Idle => "nothing received within the idle timeout",
            Timeout::Close => "waiting for the peer's close frame",
        }
    }

    /// The code and reason of the close frame the connection is failed with (none for
    /// [`Timeout::Close`]: the close frame is already sent).
    pub(crate) fn close_frame(self) -> Option<(CloseCode, &'static str)> {
        match self {
            Timeout::Pong => Some((CloseCode::INTERNAL_ERROR, "keepalive ping timeout")),
            Timeout::Idle => Some((CloseCode::GOING_AWAY, "idle timeout")),
            Timeout::Close => None,
        }
    }
}

/// What [`Timers::handle_timeout`] found due.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Due {
    /// Queue a keepalive ping with this payload.
    Ping([u8; 8]),
    /// A deadline passed.
    Expired(Timeout),
}

/// The timers of one connection, as [`crate::Connection`] holds them.
#[derive(Debug)]
pub(crate) enum TimerSlot {
    /// No timer.
    None,
    /// Only a close timeout, kept inline while the connection is open: `since` is an instant
    /// the I/O layer passed in (never later than its clock), `close_ms` the timeout in
    /// milliseconds (rounded up). [`TimerSlot::handle_timeout`] turns it into
    /// [`TimerSlot::Running`] once the close handshake starts.
    CloseOnly { since: Instant, close_ms: u32 },
    /// The full state: keepalive, or a close deadline being armed or running.
    Running(Box<Timers>),
}

impl TimerSlot {
    pub(crate) fn new(config: TimerConfig, now: Instant) -> Self {
        if config.ping_interval.is_some() || config.idle_timeout.is_some() {
            return TimerSlot::Running(Box::new(Timers::new(config, now)));
        }
        match config.close_timeout {
            None => TimerSlot::None,
            Some(timeout) => {
                let ms = timeout.as_nanos().div_ceil(1_000_000);
                TimerSlot::CloseOnly {
                    since: now,
                    close_ms: u32::try_from(ms).unwrap_or(u32::MAX),
                }
            }
        }
    }

    fn running(&self) -> Option<&Timers> {
        match self {
            TimerSlot::Running(timers) => Some(timers),
            _ => None,
        }
    }

    fn running_mut(&mut self) -> Option<&mut Timers> {
        match self {
            TimerSlot::Running(timers) => Some(timers),
            _ => None,
        }
    }

    pub(crate) fn has_keepalive(&self) -> bool {
        self.running().is_some_and(Timers::has_keepalive)
    }

    pub(crate) fn mark_received(&mut self, now: Instant) {
        if let Some(timers) = self.running_mut() {
            timers.mark_received(now);
        }
    }

    pub(crate) fn on_pong(&mut self, payload: &[u8]) {
        if let Some(timers) = self.running_mut() {
            timers.on_pong(payload);
        }
    }

    pub(crate) fn gave_up(&self) -> bool {
        self.running().is_some_and(Timers::gave_up)
    }

    /// See [`Timers::poll_timeout`]; a close-only slot asks for a call at once when the close
    /// handshake has started, to arm its deadline.
    pub(crate) fn poll_timeout(&self, closing: bool, keepalive: bool) -> Option<Instant> {
        match self {
            TimerSlot::None => None,
            TimerSlot::CloseOnly { since, .. } => closing.then_some(*since),
            TimerSlot::Running(timers) => timers.poll_timeout(closing, keepalive),
        }
    }

    /// See [`Timers::handle_timeout`].
    pub(crate) fn handle_timeout(
        &mut self,
        now: Instant,
        closing: bool,
        keepalive: bool,
    ) -> Option<Due> {
        if let TimerSlot::CloseOnly { close_ms, .. } = *self
            && closing
        {
            let config = TimerConfig {
                close_timeout: Some(Duration::from_millis(u64::from(close_ms))),
                ..TimerConfig::default()
            };
            *self = TimerSlot::Running(Box::new(Timers::new(config, now)));
        }
        self.running_mut()?.handle_timeout(now, closing, keepalive)
    }
}

/// The timer state of one connection (boxed in [`TimerSlot::Running`]).
#[derive(Debug)]
pub(crate) struct Timers {
    config: TimerConfig,
    /// The latest instant the I/O layer passed in: never later than its clock.
    clock: Instant,
    last_rx: Instant,
    /// The keepalive ping waiting for its pong: its counter and when it was queued.
    awaiting: Option<(u64, Instant)>,
    next_ping: u64,
    /// The close deadline, once armed.
    close_deadline: Option<Instant>,
    /// Whether the close deadline passed.
    gave_up: bool,
}

impl Timers {
    pub(crate) fn new(config: TimerConfig, now: Instant) -> Self {
        Timers {
            config,
            clock: now,
            last_rx: now,
            awaiting: None,
            next_ping: 0,
            close_deadline: None,
            gave_up: false,
        }
    }

    pub(crate) fn has_keepalive(&self) -> bool {
        self.config.ping_interval.is_some() || self.config.idle_timeout.is_some()
    }

    /// Bytes arrived at `now`.
    pub(crate) fn mark_received(&mut self, now: Instant) {
        self.last_rx = self.last_rx.max(now);
        self.clock = self.clock.max(now);
    }

    /// A pong arrived: if it answers our ping, stop waiting.
    pub(crate) fn on_pong(&mut self, payload: &[u8]) {
        if let Some((id, _)) = self.awaiting
            && payload == id.to_be_bytes()
        {
            self.awaiting = None;
        }
    }

    /// The keepalive deadline (idle or ping/pong), while keepalive runs.
    fn keepalive_deadline(&self) -> Option<Instant> {
        let idle = self.config.idle_timeout.map(|d| self.last_rx + d);
        let ping = match (self.awaiting, self.config.ping_interval) {
            (Some((_, sent)), _) => Some(sent + self.config.pong_timeout),
            (None, Some(every)) => Some(self.last_rx + every),
            (None, None) => None,
        };
        idle.into_iter().chain(ping).min()
    }

    /// When to call [`Timers::handle_timeout`]: `closing` says whether the close handshake has
    /// started (then only the close deadline counts), `keepalive` whether it still runs.
    pub(crate) fn poll_timeout(&self, closing: bool, keepalive: bool) -> Option<Instant> {
        if self.gave_up {
            return None;
        }
        let close = match (closing, self.close_deadline, self.config.close_timeout) {
            (false, _, _) | (true, None, None) => None,
            (true, Some(at), _) => Some(at),
            // Armed by the next `handle_timeout`: call it at once.
            (true, None, Some(_)) => Some(self.clock),
        };
        let keepalive = if keepalive {
            self.keepalive_deadline()
        } else {
            None
        };
        close.into_iter().chain(keepalive).min()
    }

    /// Act on the deadlines passed at `now` (see [`Timers::poll_timeout`] for the flags).
    pub(crate) fn handle_timeout(
        &mut self,
        now: Instant,
        closing: bool,
        keepalive: bool,
    ) -> Option<Due> {
        self.clock = self.clock.max(now);
        if self.gave_up {
            return None;
        }
        if closing {
            match (self.close_deadline, self.config.close_timeout) {
                (None, Some(timeout)) => self.close_deadline = Some(now + timeout),
                (Some(at), _) if now >= at => {
                    self.gave_up = true;
                    return Some(Due::Expired(Timeout::Close));
                }
                _ => {}
            }
        }
        if !keepalive {
            return None;
        }
        if let Some(idle) = self.config.idle_timeout
            && now >= self.last_rx + idle
        {
            return Some(Due::Expired(Timeout::Idle));
        }
        match (self.awaiting, self.config.ping_interval) {
            (Some((_, sent)), _) if now >= sent + self.config.pong_timeout => {
                Some(Due::Expired(Timeout::Pong))
            }
            (None, Some(every)) if now >= self.last_rx + every => {
                let id = self.next_ping;
                self.next_ping += 1;
                self.awaiting = Some((id, now));
                Some(Due::Ping(id.to_be_bytes()))
            }
            _ => None,
        }
    }

    /// Whether the close deadline passed.
    pub(crate) fn gave_up(&self) -> bool {
        self.gave_up
    }
}
