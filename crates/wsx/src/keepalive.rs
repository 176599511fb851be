//! Keepalive: pings after a quiet period, a deadline for their pong, and an idle deadline.
//!
//! Checked by [`crate::WebSocket`] while it receives: one timer is armed for the earliest
//! deadline; when it fires, [`Keepalive::poll`] says what to do (send a ping, or give up).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::time::{Instant, Sleep};

use crate::config::WebSocketConfig;

/// What the keepalive timer asks for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum KeepaliveAction {
    /// Send this ping.
    Ping(Bytes),
    /// The pong did not come in time.
    PongTimeout,
    /// Nothing was received for the idle timeout.
    IdleTimeout,
}

/// Keepalive state of one connection.
#[derive(Debug)]
pub(crate) struct Keepalive {
    ping_interval: Option<Duration>,
    pong_timeout: Duration,
    idle_timeout: Option<Duration>,
    timer: Pin<Box<Sleep>>,
    last_rx: Instant,
    last_ping: Instant,
    awaiting: Option<u64>,
    next_id: u64,
}

impl Keepalive {
    /// Keepalive for `config`, or `None` when it asks for neither pings nor an idle timeout.
    pub(crate) fn new(config: &WebSocketConfig) -> Option<Self> {
        if config.ping_interval.is_none() && config.idle_timeout.is_none() {
            return None;
        }
        let now = Instant::now();
        let mut k = Keepalive {
            ping_interval: config.ping_interval,
            pong_timeout: config.pong_timeout,
            idle_timeout: config.idle_timeout,
            timer: Box::pin(tokio::time::sleep_until(now)),
            last_rx: now,
            last_ping: now,
            awaiting: None,
            next_id: 0,
        };
        k.rearm();
        Some(k)
    }

    /// Bytes arrived.
    pub(crate) fn on_receive(&mut self) {
        self.last_rx = Instant::now();
    }

    /// A pong arrived: if it answers our ping, stop waiting.
    pub(crate) fn on_pong(&mut self, payload: &[u8]) {
        if let Some(id) = self.awaiting
            && payload == id.to_be_bytes()
        {
            self.awaiting = None;
            self.rearm();
        }
    }

    fn next_deadline(&self) -> Instant {
        let far = self.last_rx + Duration::from_secs(86_400);
        let idle = self.idle_timeout.map(|d| self.last_rx + d).unwrap_or(far);
        let ping = match (self.awaiting, self.ping_interval) {
            (Some(_), _) => self.last_ping + self.pong_timeout,
            (None, Some(every)) => self.last_rx.max(self.last_ping) + every,
            (None, None) => far,
        };
        idle.min(ping)
    }

    fn rearm(&mut self) {
        let at = self.next_deadline();
        self.timer.as_mut().reset(at);
    }

    /// Check the deadlines; `Pending` while none has passed (the timer will wake the task).
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<KeepaliveAction> {
        loop {
            if self.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let now = Instant::now();
            if let Some(idle) = self.idle_timeout
                && now >= self.last_rx + idle
            {
                return Poll::Ready(KeepaliveAction::IdleTimeout);
            }
            if self.awaiting.is_some() && now >= self.last_ping + self.pong_timeout {
                return Poll::Ready(KeepaliveAction::PongTimeout);
            }
            if let (None, Some(every)) = (self.awaiting, self.ping_interval)
                && now >= self.last_rx.max(self.last_ping) + every
            {
                let id = self.next_id;
                self.next_id += 1;
                self.awaiting = Some(id);
                self.last_ping = now;
                self.rearm();
                return Poll::Ready(KeepaliveAction::Ping(Bytes::copy_from_slice(
                    &id.to_be_bytes(),
                )));
            }
            // Activity moved a deadline: wait for the new one.
            self.rearm();
        }
    }
}
