//! Confirmed SENDs: what waits for an engine that stores messages later
//! ([`Outcome::Pending`]), and [`Session::confirm`], which the I/O layer calls with the
//! engine's [`Confirmation`]s.
//!
//! Every SEND goes to [`Engine::try_publish_from`] with an [`Origin`] numbered by the session.
//! A pending one is remembered here with what waits for it:
//!
//! - a SEND outside a transaction: its RECEIPT (if it asked for one) is sent on
//!   [`Confirmation::Stored`];
//! - a SEND published by a COMMIT: the COMMIT's RECEIPT is sent once every pending SEND of the
//!   COMMIT is stored;
//! - a DISCONNECT received while SENDs are pending (its RECEIPT acknowledges every frame
//!   before it): the session releases its subscriptions at once, ignores further input, and
//!   sends the RECEIPT and closes once nothing is pending.
//!
//! A [`Confirmation::Failed`] is answered like a SEND refused at once: an ERROR whose `message`
//! is the engine's reason (with the `receipt-id` of the SEND, or of the COMMIT), then the
//! session closes — whether or not the client asked for a receipt, so that no SEND is dropped
//! silently. Other frames (MESSAGEs, the RECEIPTs of other commands) are not held back.

use std::collections::HashMap;
use std::sync::Arc;

use super::{Fail, Phase, Session};
use crate::engine::{Confirmation, Delivery, Engine, Origin, Outcome};
use crate::message::Publish;

/// What waits for one pending SEND.
#[derive(Debug)]
enum Waiter {
    /// A SEND outside a transaction, and the receipt it asked for.
    Send { receipt: Option<Arc<str>> },
    /// A SEND published by the COMMIT with this number.
    Commit(u64),
}

/// A COMMIT waiting for its SENDs.
#[derive(Debug)]
struct CommitWait {
    transaction: String,
    receipt: Option<Arc<str>>,
    /// Its SENDs not confirmed yet.
    left: usize,
}

/// The SENDs of a session the engine has not confirmed yet, and what waits for them.
#[derive(Debug, Default)]
pub(super) struct Unconfirmed {
    next_seq: u64,
    sends: HashMap<u64, Waiter>,
    commits: HashMap<u64, CommitWait>,
    /// A DISCONNECT waiting for the SENDs before it: its receipt.
    disconnect: Option<Option<String>>,
}

impl Unconfirmed {
    fn next(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    /// Forget everything (the session is over).
    pub(super) fn clear(&mut self) {
        self.sends.clear();
        self.commits.clear();
        self.disconnect = None;
    }

    /// The number of SENDs not confirmed yet.
    pub(super) fn len(&self) -> usize {
        self.sends.len()
    }

    /// Whether a DISCONNECT waits for the pending SENDs.
    pub(super) fn disconnecting(&self) -> bool {
        self.disconnect.is_some()
    }
}

/// The COMMIT being applied: its number, and how many of its SENDs are pending.
#[derive(Debug)]
pub(super) struct CommitTicket {
    id: u64,
    pending: usize,
}

impl Session {
    /// Hand one SEND to the engine with its [`Origin`]. A pending SEND waits for its
    /// confirmation: on its own (with `receipt`), or as part of the COMMIT of `commit`.
    pub(super) fn publish(
        &mut self,
        publish: Publish,
        receipt: Option<&str>,
        commit: Option<&mut CommitTicket>,
        engine: &mut dyn Engine,
        out: &mut Vec<Delivery>,
    ) -> Result<Outcome, crate::Error> {
        let seq = self.unconfirmed.next();
        let receipt: Option<Arc<str>> = receipt.map(Arc::from);
        let origin = Origin {
            conn: self.conn,
            receipt: receipt.clone(),
            destination: publish.destination.clone(),
            seq,
        };
        let outcome = engine.try_publish_from(publish, origin, out)?;
        if outcome == Outcome::Pending {
            let waiter = match commit {
                Some(ticket) => {
                    ticket.pending += 1;
                    Waiter::Commit(ticket.id)
                }
                None => Waiter::Send { receipt },
            };
            self.unconfirmed.sends.insert(seq, waiter);
        }
        Ok(outcome)
    }

    /// A number for a COMMIT about to publish its SENDs.
    pub(super) fn commit_ticket(&mut self) -> CommitTicket {
        CommitTicket {
            id: self.unconfirmed.next(),
            pending: 0,
        }
    }

    /// After the COMMIT of `ticket` published its SENDs: `true` if some are pending (its
    /// RECEIPT then waits for them).
    pub(super) fn commit_pending(
        &mut self,
        ticket: CommitTicket,
        transaction: &str,
        receipt: Option<&str>,
    ) -> bool {
        if ticket.pending == 0 {
            return false;
        }
        self.unconfirmed.commits.insert(
            ticket.id,
            CommitWait {
                transaction: transaction.to_owned(),
                receipt: receipt.map(Arc::from),
                left: ticket.pending,
            },
        );
        true
    }

    /// A DISCONNECT arrived: `true` if it must wait for pending SENDs (the subscriptions are
    /// released now; the RECEIPT and the close come with the last confirmation).
    pub(super) fn defer_disconnect(
        &mut self,
        receipt: Option<String>,
        engine: &mut dyn Engine,
        out: &mut Vec<Delivery>,
    ) -> bool {
        if self.unconfirmed.sends.is_empty() {
            return false;
        }
        self.release(engine, out);
        self.unconfirmed.disconnect = Some(receipt);
        true
    }

    /// SENDs accepted by the engine with [`Outcome::Pending`] and not confirmed yet.
    pub fn unconfirmed_sends(&self) -> usize {
        self.unconfirmed.len()
    }

    /// The engine's outcome of a SEND it answered with [`Outcome::Pending`]: send the RECEIPT
    /// that waited for it (the SEND's, a COMMIT's once all its SENDs are stored, a
    /// DISCONNECT's once nothing is pending, then close), or answer a failure with an ERROR
    /// and close. Confirmations of another connection, of a SEND the session does not know
    /// (confirmed already) or of a closed session are ignored. Returns whether the session
    /// queued transmits.
    pub fn confirm(
        &mut self,
        confirmation: Confirmation,
        engine: &mut dyn Engine,
        out: &mut Vec<Delivery>,
    ) -> bool {
        let origin = confirmation.origin();
        if self.phase == Phase::Closed || origin.conn != self.conn {
            return false;
        }
        let Some(waiter) = self.unconfirmed.sends.remove(&origin.seq) else {
            return false;
        };
        let before = self.outbox.len();
        match (confirmation, waiter) {
            (Confirmation::Stored(_), Waiter::Send { receipt }) => {
                if let Some(receipt) = receipt {
                    self.queue_receipt(&receipt);
                }
            }
            (Confirmation::Failed(_, reason), Waiter::Send { receipt }) => {
                self.fail(Fail::new(reason), receipt.as_deref(), engine, out);
            }
            (Confirmation::Stored(_), Waiter::Commit(id)) => {
                if let Some(commit) = self.unconfirmed.commits.get_mut(&id) {
                    commit.left = commit.left.saturating_sub(1);
                    if commit.left == 0
                        && let Some(commit) = self.unconfirmed.commits.remove(&id)
                        && let Some(receipt) = commit.receipt
                    {
                        self.queue_receipt(&receipt);
                    }
                }
            }
            (Confirmation::Failed(_, reason), Waiter::Commit(id)) => {
                let (message, receipt) = match self.unconfirmed.commits.remove(&id) {
                    Some(commit) => (
                        format!(
                            "transaction `{}` not fully committed: {reason}",
                            commit.transaction
                        ),
                        commit.receipt,
                    ),
                    None => (reason, None),
                };
                self.fail(Fail::new(message), receipt.as_deref(), engine, out);
            }
        }
        if self.phase != Phase::Closed
            && self.unconfirmed.sends.is_empty()
            && let Some(receipt) = self.unconfirmed.disconnect.take()
        {
            if let Some(receipt) = receipt {
                self.queue_receipt(&receipt);
            }
            self.close(None, engine, out);
        }
        self.outbox.len() != before
    }
}
