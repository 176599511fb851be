//! What the session produced and the I/O layer has not written yet: the output budget and
//! the acknowledgement of `ack:auto` queue deliveries once written.
//!
//! Sits between [`Session::poll_transmit`] and the socket. Every transmit the session queues
//! has a number (its position in the session's output, counting from 0); the I/O layer reports
//! how many transmits, in order, it has written to the socket, and how many frame bytes they
//! held ([`Session::written`]).
//!
//! - An `ack:auto` queue subscription has a credit window (`auto_ack_window`): the engine keeps
//!   its deliveries in flight, and the session remembers which transmit carried each. Once the
//!   I/O layer reports that transmit written, the session acknowledges the message to the
//!   engine ([`Engine::ack`]), which refills the window. A delivery never written (the
//!   connection dropped, closed, or the subscription gone) is never acknowledged: the engine
//!   gives it back to the queue, marked redelivered, when the subscription goes.
//! - The bytes of frames queued and not reported written are the session's own output
//!   backlog: past `max_unwritten_bytes` it stops decoding the frames it has buffered
//!   ([`Session::wants_input`] is `false`: the I/O layer stops reading the connection), and
//!   goes on when writes bring it back under. Nothing is dropped.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use super::{Phase, Session, Transmit};
use crate::engine::{Delivery, Engine, SubscriberKey};
use crate::message::MessageId;

/// An `ack:auto` queue delivery waiting to be written.
#[derive(Debug)]
struct AutoDelivery {
    /// The number of the transmit that carries it.
    transmit: u64,
    subscription: Arc<str>,
    /// The subscription's sequence number: a later subscription with the same id is another.
    sub_seq: u64,
    message_id: MessageId,
}

/// The session's output accounting (see the module docs).
#[derive(Debug, Default)]
pub(super) struct Unwritten {
    /// Transmits taken by [`Session::poll_transmit`].
    polled: u64,
    /// Transmits reported written.
    written: u64,
    /// Bytes of frames queued (in the outbox or polled) and not reported written.
    bytes: usize,
    /// [`Transmit::Authenticate`]s in the outbox: they get no number.
    unnumbered: u64,
    /// `ack:auto` queue deliveries not reported written, oldest first.
    auto: VecDeque<AutoDelivery>,
}

impl Unwritten {
    /// Forget the deliveries waiting (the subscriptions were released).
    pub(super) fn release(&mut self) {
        self.auto.clear();
    }

    /// The outbox was emptied without being polled.
    pub(super) fn discard_queued(&mut self) {
        self.unnumbered = 0;
    }
}

impl Transmit {
    /// The bytes it counts for in the output budget: the frame's length, 0 for the others.
    pub fn size(&self) -> usize {
        match self {
            Transmit::Frame(frame)
            | Transmit::TopicMessage(frame)
            | Transmit::KeyedTopicMessage(frame, _) => frame.len(),
            Transmit::HeartBeat | Transmit::Close | Transmit::Authenticate(_) => 0,
        }
    }
}

impl Session {
    /// Queue `transmit`; returns its number.
    pub(super) fn push(&mut self, transmit: Transmit) -> u64 {
        let number = self.output.polled + self.outbox.len() as u64 - self.output.unnumbered;
        if matches!(transmit, Transmit::Authenticate(_)) {
            self.output.unnumbered += 1;
        }
        self.output.bytes = self.output.bytes.saturating_add(transmit.size());
        self.outbox.push_back(transmit);
        number
    }

    /// Count `transmit`, just taken by the I/O layer; `false` for one that is not for the
    /// client ([`Transmit::Authenticate`]), which gets no number.
    pub(super) fn polled(&mut self, transmit: &Transmit) -> bool {
        if matches!(transmit, Transmit::Authenticate(_)) {
            self.output.unnumbered = self.output.unnumbered.saturating_sub(1);
            return false;
        }
        self.output.polled += 1;
        true
    }

    /// Remember that transmit `number` carries `message_id` for the `ack:auto` queue
    /// subscription `subscription` (sequence `sub_seq`).
    pub(super) fn await_written(
        &mut self,
        number: u64,
        subscription: Arc<str>,
        sub_seq: u64,
        message_id: MessageId,
    ) {
        self.output.auto.push_back(AutoDelivery {
            transmit: number,
            subscription,
            sub_seq,
            message_id,
        });
    }

    /// Whether the output backlog is past the budget.
    pub(super) fn over_budget(&self) -> bool {
        self.output.bytes > self.config.max_unwritten_bytes
    }

    /// Whether the session takes input: `false` while it waits for the I/O layer's
    /// authentication ([`Phase::Authenticating`]) and while its unwritten output is past
    /// `max_unwritten_bytes` (then [`Session::receive`] only buffers, and the I/O layer should
    /// stop reading the connection until [`Session::written`] brings it back under).
    pub fn wants_input(&self) -> bool {
        !self.over_budget() && self.phase != Phase::Authenticating
    }

    /// Bytes of frames queued and not reported written.
    pub fn unwritten_bytes(&self) -> usize {
        self.output.bytes
    }

    /// Whether the session needs [`Session::written`] reports soon: it has `ack:auto` queue
    /// deliveries waiting for them (their credit refills only then), or its input is paused.
    /// Otherwise the I/O layer may report later (with its next [`Session::receive`], say).
    pub fn wants_written(&self) -> bool {
        !self.output.auto.is_empty() || self.over_budget()
    }

    /// The I/O layer wrote `transmits` more of the transmits it polled, in order (frames and
    /// heart-beats; the [`Transmit::Close`] needs no report), holding `bytes` bytes of frames
    /// ([`Transmit::size`]), by `now`. The `ack:auto` queue deliveries they carried are
    /// acknowledged to the engine; if that brings the output backlog under the budget, the
    /// frames buffered meanwhile are decoded, and the heart-beat check, suspended while input
    /// was paused (the client's heart-beats wait unread in the socket), starts again from
    /// `now`.
    pub fn written(
        &mut self,
        now: Instant,
        transmits: u64,
        bytes: usize,
        engine: &mut dyn Engine,
        out: &mut Vec<Delivery>,
    ) {
        let was_paused = self.over_budget();
        self.output.written = (self.output.written + transmits).min(self.output.polled);
        self.output.bytes = self.output.bytes.saturating_sub(bytes);
        if was_paused && !self.over_budget() {
            self.timers.last_rx = self.timers.last_rx.max(now);
        }
        let written = self.output.written;
        let mut ids = Vec::new();
        while let Some(first) = self.output.auto.front()
            && first.transmit < written
        {
            // The written deliveries of one subscription in a row, acknowledged together.
            let (subscription, sub_seq) = (first.subscription.clone(), first.sub_seq);
            while let Some(next) = self.output.auto.front()
                && next.transmit < written
                && next.sub_seq == sub_seq
            {
                if let Some(done) = self.output.auto.pop_front() {
                    ids.push(done.message_id);
                }
            }
            // A subscription gone meanwhile gave its messages back to the engine.
            if self
                .subs
                .get(&subscription)
                .is_some_and(|s| s.seq == sub_seq)
            {
                let key = SubscriberKey::new(self.conn, subscription);
                engine.ack(&key, &ids, out);
            }
            ids.clear();
        }
        self.decode_buffered(engine, out);
    }
}
