//! BEGIN, COMMIT, ABORT: SENDs, ACKs and NACKs carrying a `transaction` header are buffered
//! and applied together on COMMIT, or discarded on ABORT (or when the session ends).
//!
//! A COMMIT's RECEIPT means its SENDs are stored: with an engine that stores later it waits
//! for their confirmations (see [`super::confirm`]); one that fails is an ERROR.
//!
//! COMMIT is all or nothing: every buffered ACK and NACK is resolved against the pending
//! deliveries first (destinations and permissions were checked when the SEND arrived); if one
//! does not match, the COMMIT fails with an ERROR and nothing is applied.

use std::collections::HashSet;

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

/// An open transaction.
#[derive(Debug, Default)]
pub(super) struct Transaction {
    ops: Vec<TxOp>,
    bytes: usize,
}

enum Step {
    Send(Publish),
    Ack(ResolvedAck),
}

impl Session {
    pub(super) fn on_begin(&mut self, frame: &Frame) -> Handled {
        let tx = require(frame, "transaction")?;
        if self.transactions.contains_key(tx) {
            return Err(Fail::new(format!("transaction `{tx}` is already open")));
        }
        if self.transactions.len() >= self.config.max_transactions {
            return Err(Fail::new(format!(
                "limit of {} open transactions reached",
                self.config.max_transactions
            )));
        }
        self.transactions
            .insert(tx.to_owned(), Transaction::default());
        Ok(After::Continue)
    }

    /// Add a frame to open transaction `tx`.
    pub(super) fn buffer(&mut self, tx: &str, op: TxOp) -> Handled {
        let Some(transaction) = self.transactions.get_mut(tx) else {
            return Err(Fail::new(format!("unknown transaction `{tx}`")));
        };
        if transaction.ops.len() >= self.config.max_transaction_frames {
            return Err(Fail::new(format!(
                "transaction `{tx}` holds more than {} frames",
                self.config.max_transaction_frames
            )));
        }
        if let TxOp::Send(publish) = &op {
            transaction.bytes += publish.body.len();
            if transaction.bytes > self.config.max_transaction_bytes {
                return Err(Fail::new(format!(
                    "transaction `{tx}` holds more than {} bytes",
                    self.config.max_transaction_bytes
                )));
            }
        }
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
