//! Deadlines: the CONNECT timeout and heart-beats, computed from instants the I/O layer passes
//! in. The session never reads a clock.

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
            Phase::AwaitingConnect => Some(self.timers.opened + self.config.connect_timeout),
            Phase::Connected => match (self.check_deadline(), self.send_deadline()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
            Phase::Closed => None,
        }
    }

    /// The deadline by which the client must have sent something (heart-beat or frame).
    pub fn receive_deadline(&self) -> Option<Instant> {
        (self.phase == Phase::Connected)
            .then(|| self.check_deadline())
            .flatten()
    }

    /// Act on deadlines that passed at `now`: close a session that did not CONNECT in time or
    /// whose client fell silent (ERROR, then [`Transmit::Close`]), or queue a heart-beat when
    /// nothing was sent for the negotiated interval.
    pub fn handle_timeout(
        &mut self,
        now: Instant,
        engine: &mut dyn Engine,
        out: &mut Vec<Delivery>,
    ) {
        match self.phase {
            Phase::AwaitingConnect => {
                if now >= self.timers.opened + self.config.connect_timeout {
                    self.fail(
                        Fail::new("timed out waiting for CONNECT"),
                        None,
                        engine,
                        out,
                    );
                }
            }
            Phase::Connected => {
                if self.check_deadline().is_some_and(|d| now >= d) {
                    let ms = self.heart_beat.check.unwrap_or_default().as_millis();
                    let message = format!("no heart-beat from the client within {ms} ms");
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
        // After a DISCONNECT waiting for confirmations, the client need not send anything.
        if self.unconfirmed.disconnecting() {
            return None;
        }
        let interval = self.heart_beat.check?;
        let grace = interval.saturating_mul(self.config.heart_beat_grace_percent) / 100;
        Some(self.timers.last_rx + interval.saturating_add(grace))
    }

    fn send_deadline(&self) -> Option<Instant> {
        let interval: Duration = self.heart_beat.send?;
        Some(self.timers.last_tx + interval)
    }
}
