//! Deadlines: the CONNECT timeout (which also bounds the wait for a deferred authentication,
//! [`Phase::Authenticating`]), heart-beats, the server's idle limit and the expiry of the
//! principal's credentials, computed from instants the I/O layer passes in. The session never
//! reads a clock.
//!
//! A connected session ends (ERROR, then [`Transmit::Close`]) at the first of:
//! - the principal's [`crate::Principal::expires_at`] (`message:token expired`);
//! - the negotiated heart-beat check: nothing from the client within its interval plus the
//!   grace ([`SessionConfig::heart_beat_grace_percent`](super::SessionConfig));
//! - the idle limit ([`SessionConfig::idle_timeout`](super::SessionConfig)): nothing from the
//!   client at all, whatever heart-beats were negotiated (`heart-beat:0,0` included).
//!
//! While input is paused because the client does not read its output (see `written.rs`), the
//! heart-beat check is suspended (the client's heart-beats wait unread in the socket) and
//! starts again from the moment input resumes; the idle limit still applies, so a client that
//! never reads is closed after it ("too slow").
//!
//! After a DISCONNECT that waits for confirmations none of these apply: the client need not
//! send anything more.

use std::time::{Duration, Instant};

use super::{Fail, Phase, Session, Transmit};
use crate::engine::{Delivery, Engine};

/// When things last happened.
#[derive(Debug)]
pub(super) struct Timers {
    pub(super) opened: Instant,
    pub(super) last_rx: Instant,
    pub(super) last_tx: Instant,
}

impl Timers {
    pub(super) fn new(now: Instant) -> Self {
        Timers {
            opened: now,
            last_rx: now,
            last_tx: now,
        }
    }
}

impl Session {
    /// When [`Session::handle_timeout`] must next be called, if ever. Drain
    /// [`Session::poll_transmit`] first: a queued transmit postpones the heart-beat.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::AwaitingConnect | Phase::Authenticating => {
                Some(self.timers.opened + self.config.connect_timeout)
            }
            Phase::Connected => [
                self.expiry_deadline(),
                self.check_deadline(),
                self.idle_deadline(),
                self.send_deadline(),
            ]
            .into_iter()
            .flatten()
            .min(),
            Phase::Closed => None,
        }
    }

    /// The deadline by which the client must have sent something (heart-beat or frame): the
    /// heart-beat check or the idle limit, whichever comes first.
    pub fn receive_deadline(&self) -> Option<Instant> {
        if self.phase != Phase::Connected {
            return None;
        }
        match (self.check_deadline(), self.idle_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Act on deadlines that passed at `now`: close a session that did not CONNECT in time,
    /// whose credentials expired or whose client fell silent (ERROR, then
    /// [`Transmit::Close`]), or queue a heart-beat when nothing was sent for the negotiated
    /// interval.
    pub fn handle_timeout(
        &mut self,
        now: Instant,
        engine: &mut dyn Engine,
        out: &mut Vec<Delivery>,
    ) {
        match self.phase {
            Phase::AwaitingConnect | Phase::Authenticating => {
                if now >= self.timers.opened + self.config.connect_timeout {
                    let message = if self.phase == Phase::Authenticating {
                        "timed out authenticating the CONNECT"
                    } else {
                        "timed out waiting for CONNECT"
                    };
                    self.fail(Fail::new(message), None, engine, out);
                }
            }
            Phase::Connected => {
                if self.expiry_deadline().is_some_and(|d| now >= d) {
                    self.fail(Fail::new("token expired"), None, engine, out);
                    return;
                }
                if self.check_deadline().is_some_and(|d| now >= d) {
                    let ms = self.heart_beat.check.unwrap_or_default().as_millis();
                    let message = format!("no heart-beat from the client within {ms} ms");
                    self.fail(Fail::new(message), None, engine, out);
                    return;
                }
                if let Some(limit) = self.config.idle_timeout
                    && self.idle_deadline().is_some_and(|d| now >= d)
                {
                    let message = if self.over_budget() {
                        format!(
                            "too slow: the client did not read its output within {}",
                            human_duration(limit)
                        )
                    } else {
                        format!(
                            "idle timeout: nothing received from the client within {}",
                            human_duration(limit)
                        )
                    };
                    self.fail(Fail::new(message), None, engine, out);
                    return;
                }
                if self.outbox.is_empty() && self.send_deadline().is_some_and(|d| now >= d) {
                    self.outbox.push_back(Transmit::HeartBeat);
                }
            }
            Phase::Closed => {}
        }
    }

    fn check_deadline(&self) -> Option<Instant> {
        // After a DISCONNECT waiting for confirmations, the client need not send anything;
        // while input is paused (the client does not read its output) its heart-beats wait
        // unread in the socket: the check starts again when input resumes.
        if self.unconfirmed.disconnecting() || self.over_budget() {
            return None;
        }
        let interval = self.heart_beat.check?;
        let grace = interval.saturating_mul(self.config.heart_beat_grace_percent) / 100;
        Some(self.timers.last_rx + interval.saturating_add(grace))
    }

    /// When the principal's credentials expire.
    fn expiry_deadline(&self) -> Option<Instant> {
        if self.unconfirmed.disconnecting() {
            return None;
        }
        self.principal.as_ref()?.expires_at
    }

    /// When the client will have sent nothing for the idle limit.
    fn idle_deadline(&self) -> Option<Instant> {
        if self.unconfirmed.disconnecting() {
            return None;
        }
        let limit = self.config.idle_timeout?;
        // A limit too far to represent is no limit.
        self.timers.last_rx.checked_add(limit)
    }

    fn send_deadline(&self) -> Option<Instant> {
        let interval: Duration = self.heart_beat.send?;
        Some(self.timers.last_tx + interval)
    }
}

/// `300 s`, or `1500 ms` when not a whole number of seconds.
fn human_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}
