//! BEGIN, COMMIT, ABORT: SENDs, ACKs and NACKs carrying a `transaction` header are buffered
//! and applied together on COMMIT, or discarded on ABORT (or when the session ends).
//!
//! A COMMIT's RECEIPT means its SENDs are stored: with an engine that stores later it waits
//! for their confirmations (see [`super::confirm`]); one that fails is an ERROR.
//!
//! What a transaction holds is counted in whole frames (headers and body, [`Publish::size`];
//! an ACK or NACK by its ids): at most [`crate::SessionConfig::max_transaction_bytes`] per
//! transaction and [`crate::SessionConfig::max_session_transaction_bytes`] for all open
//! transactions of the session; crossing either is an ERROR naming the limit.
//!
//! COMMIT is all or nothing: every buffered ACK and NACK is resolved against the pending
//! deliveries first (destinations and permissions were checked when the SEND arrived); if one
//! does not match, the COMMIT fails with an ERROR and nothing is applied.
//!
//! A COMMIT is one frame, and the session's output budget
//! ([`crate::SessionConfig::max_unwritten_bytes`]) is checked between frames: so a COMMIT
//! whose SENDs would deliver more than that budget to the session's *own* subscriptions at
//! once (a thousand SENDs to a topic it subscribed to 64 times, say) is refused with an ERROR
//! naming the budget before anything is applied.

use std::collections::{HashMap, HashSet};

use super::acks::{AckTarget, ResolvedAck};
use super::{After, Fail, Handled, Session, require};
use crate::engine::{Delivery, Engine};
use crate::frame::Frame;
use crate::message::Publish;

/// A buffered frame.
#[derive(Debug)]
pub(super) enum TxOp {
    Send(Publish),
    Ack { target: AckTarget, nack: bool },
}

impl TxOp {
    /// What the buffered frame holds, in bytes: a SEND's [`Publish::size`]; an ACK's ids plus
    /// [`Publish::OVERHEAD`].
    fn size(&self) -> usize {
        match self {
            TxOp::Send(publish) => publish.size(),
            TxOp::Ack { target, .. } => {
                Publish::OVERHEAD
                    + match target {
                        AckTarget::AckId(id) => id.len(),
                        AckTarget::Message {
                            subscription,
                            message_id,
                        } => subscription.as_ref().map_or(0, String::len) + message_id.len(),
                    }
            }
        }
    }
}

/// An open transaction.
#[derive(Debug, Default)]
pub(super) struct Transaction {
    ops: Vec<TxOp>,
    bytes: usize,
}

/// The open transactions of a session, by name, and the bytes they hold together.
#[derive(Debug, Default)]
pub(super) struct Transactions {
    open: HashMap<String, Transaction>,
    bytes: usize,
}

impl Transactions {
    /// Take transaction `tx` out (to commit or abort it).
    fn remove(&mut self, tx: &str) -> Option<Transaction> {
        let transaction = self.open.remove(tx)?;
        self.bytes = self.bytes.saturating_sub(transaction.bytes);
        Some(transaction)
    }

    /// Discard every open transaction.
    pub(super) fn clear(&mut self) {
        self.open.clear();
        self.bytes = 0;
    }

    /// The number of open transactions.
    pub(super) fn len(&self) -> usize {
        self.open.len()
    }
}

enum Step {
    Send(Publish),
    Ack(ResolvedAck),
}

/// Per MESSAGE frame, what its subscriber-specific head (`subscription`, `message-id`, …)
/// takes beyond the subscription id, for [`Session::own_fan_out_bytes`].
const HEAD_ESTIMATE: usize = 64;

impl Session {
    /// About how many bytes the SENDs among `steps` would deliver to this session's own
    /// subscriptions (each SEND counted once per own subscription to its destination).
    fn own_fan_out_bytes(&self, steps: &[Step]) -> usize {
        steps
            .iter()
            .filter_map(|step| match step {
                Step::Send(publish) => Some(publish),
                Step::Ack(_) => None,
            })
            .flat_map(|publish| {
                self.subs
                    .values()
                    .filter(move |sub| sub.destination == publish.destination)
                    .map(move |sub| publish.size() + sub.id.len() + HEAD_ESTIMATE)
            })
            .fold(0, usize::saturating_add)
    }

    pub(super) fn on_begin(&mut self, frame: &Frame) -> Handled {
        let tx = require(frame, "transaction")?;
        if self.transactions.open.contains_key(tx) {
            return Err(Fail::new(format!("transaction `{tx}` is already open")));
        }
        if self.transactions.len() >= self.config.max_transactions {
            return Err(Fail::new(format!(
                "limit of {} open transactions reached",
                self.config.max_transactions
            )));
        }
        self.transactions
            .open
            .insert(tx.to_owned(), Transaction::default());
        Ok(After::Continue)
    }

    /// Add a frame to open transaction `tx`.
    pub(super) fn buffer(&mut self, tx: &str, op: TxOp) -> Handled {
        let Some(transaction) = self.transactions.open.get_mut(tx) else {
            return Err(Fail::new(format!("unknown transaction `{tx}`")));
        };
        if transaction.ops.len() >= self.config.max_transaction_frames {
            return Err(Fail::new(format!(
                "transaction `{tx}` holds more than {} frames",
                self.config.max_transaction_frames
            )));
        }
        let size = op.size();
        if transaction.bytes + size > self.config.max_transaction_bytes {
            return Err(Fail::new(format!(
                "transaction `{tx}` would hold more than {} bytes (the limit per transaction, \
                 headers included)",
                self.config.max_transaction_bytes
            )));
        }
        if self.transactions.bytes + size > self.config.max_session_transaction_bytes {
            return Err(Fail::new(format!(
                "open transactions would hold more than {} bytes (the limit per connection, \
                 headers included)",
                self.config.max_session_transaction_bytes
            )));
        }
        transaction.bytes += size;
        self.transactions.bytes += size;
        transaction.ops.push(op);
        Ok(After::Continue)
    }

    pub(super) fn on_commit(
        &mut self,
        frame: &Frame,
        engine: &mut dyn Engine,
        out: &mut Vec<Delivery>,
    ) -> Handled {
        let tx = require(frame, "transaction")?;
        let Some(transaction) = self.transactions.remove(tx) else {
            return Err(Fail::new(format!("unknown transaction `{tx}`")));
        };
        let mut consumed = HashSet::new();
        let mut steps = Vec::with_capacity(transaction.ops.len());
        for op in transaction.ops {
            match op {
                TxOp::Send(publish) => steps.push(Step::Send(publish)),
                TxOp::Ack { target, nack } => {
                    let resolved =
                        self.resolve_ack(&target, nack, &consumed)
                            .map_err(|fail| Fail {
                                message: format!(
                                    "cannot commit transaction `{tx}`: {}",
                                    fail.message
                                ),
                                ..fail
                            })?;
                    consumed.extend(resolved.ack_ids().iter().copied());
                    steps.push(Step::Ack(resolved));
                }
            }
        }
        let own = self.own_fan_out_bytes(&steps);
        if own > self.config.max_unwritten_bytes {
            return Err(Fail::new(format!(
                "transaction `{tx}` would deliver about {own} bytes to this connection's own \
                 subscriptions at once: more than its output budget of {} bytes",
                self.config.max_unwritten_bytes
            )));
        }
        let total = steps.len();
        let receipt = frame.header("receipt");
        let mut ticket = self.commit_ticket();
        for (done, step) in steps.into_iter().enumerate() {
            match step {
                Step::Send(publish) => {
                    self.publish(publish, receipt, Some(&mut ticket), engine, out)
                        .map_err(|refused| {
                            Fail::new(format!(
                                "transaction `{tx}` partly committed ({done} of {total} steps): {refused}"
                            ))
                        })?;
                }
                Step::Ack(resolved) => self.apply_ack(resolved, engine, out),
            }
        }
        if self.commit_pending(ticket, tx, receipt) {
            // The RECEIPT waits for the SENDs the engine has not stored yet.
            return Ok(After::Deferred);
        }
        Ok(After::Continue)
    }

    pub(super) fn on_abort(&mut self, frame: &Frame) -> Handled {
        let tx = require(frame, "transaction")?;
        match self.transactions.remove(tx) {
            Some(_) => Ok(After::Continue),
            None => Err(Fail::new(format!("unknown transaction `{tx}`"))),
        }
    }
}
