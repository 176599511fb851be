//! ACK and NACK: finding which deliveries a frame covers, and telling the engine.
//!
//! STOMP 1.2 names a delivery by the `ack` header the server put on the MESSAGE (echoed as
//! `id`); 1.1 by `subscription` and `message-id`; 1.0 by `message-id` alone. In `client` mode
//! an ACK or NACK is cumulative: it covers the named delivery and every earlier one of the
//! subscription. In `client-individual` mode it covers one delivery.

use std::collections::HashSet;
use std::sync::Arc;

use super::subscriptions::{AckMode, Subscription};
use super::transactions::TxOp;
use super::{After, Fail, Handled, Session, require};
use crate::engine::{Delivery, Engine, SubscriberKey};
use crate::frame::Frame;
use crate::version::Version;

/// How an ACK or NACK frame names a delivery.
#[derive(Debug)]
pub(super) enum AckTarget {
    /// STOMP 1.2: the `id` header, echoing the MESSAGE's `ack` header.
    AckId(String),
    /// STOMP 1.0/1.1: `message-id`, and the subscription when given.
    Message {
        subscription: Option<String>,
        message_id: String,
    },
}

/// The deliveries an ACK or NACK covers, resolved against the pending ones.
#[derive(Debug)]
pub(super) struct ResolvedAck {
    subscription: Arc<str>,
    /// Ascending.
    ack_ids: Vec<u64>,
    nack: bool,
}

impl ResolvedAck {
    pub(super) fn ack_ids(&self) -> &[u64] {
        &self.ack_ids
    }
}

impl Session {
    pub(super) fn on_ack(
        &mut self,
        frame: &Frame,
        nack: bool,
        engine: &mut dyn Engine,
        out: &mut Vec<Delivery>,
    ) -> Handled {
        let target = self.ack_target(frame)?;
        if let Some(tx) = frame.header("transaction") {
            return self.buffer(tx, TxOp::Ack { target, nack });
        }
        let resolved = self.resolve_ack(&target, nack, &HashSet::new())?;
        self.apply_ack(resolved, engine, out);
        Ok(After::Continue)
    }

    fn ack_target(&self, frame: &Frame) -> Result<AckTarget, Fail> {
        Ok(match self.version {
            Version::V1_2 => AckTarget::AckId(require(frame, "id")?.to_owned()),
            Version::V1_1 => AckTarget::Message {
                subscription: Some(require(frame, "subscription")?.to_owned()),
                message_id: require(frame, "message-id")?.to_owned(),
            },
            Version::V1_0 => AckTarget::Message {
                subscription: frame.header("subscription").map(str::to_owned),
                message_id: require(frame, "message-id")?.to_owned(),
            },
        })
    }

    /// The pending deliveries `target` covers, leaving out the `consumed` ack ids (already
    /// covered by earlier frames of the same transaction).
    pub(super) fn resolve_ack(
        &self,
        target: &AckTarget,
        nack: bool,
        consumed: &HashSet<u64>,
    ) -> Result<ResolvedAck, Fail> {
        let (sub, ack_id) = self.locate(target, consumed)?;
        let ack_ids = match sub.ack {
            AckMode::Client => sub
                .pending
                .iter()
                .map(|p| p.ack_id)
                .take_while(|&id| id <= ack_id)
                .filter(|id| !consumed.contains(id))
                .collect(),
            AckMode::ClientIndividual | AckMode::Auto => vec![ack_id],
        };
        Ok(ResolvedAck {
            subscription: sub.id.clone(),
            ack_ids,
            nack,
        })
    }

    fn locate(
        &self,
        target: &AckTarget,
        consumed: &HashSet<u64>,
    ) -> Result<(&Subscription, u64), Fail> {
        match target {
            AckTarget::AckId(text) => text
                .parse::<u64>()
                .ok()
                .filter(|id| !consumed.contains(id))
                .and_then(|id| {
                    let sub = self.subs.get(self.ack_index.get(&id)?)?;
                    Some((sub, id))
                })
                .ok_or_else(|| {
                    Fail::new(format!("no unacknowledged message with ack id `{text}`"))
                }),
            AckTarget::Message {
                subscription,
                message_id,
            } => {
                let mut candidates: Vec<&Subscription> = match subscription {
                    Some(id) => self.subs.get(id.as_str()).into_iter().collect(),
                    None => self.subs.values().collect(),
                };
                candidates.sort_by_key(|s| s.seq);
                candidates
                    .into_iter()
                    .find_map(|sub| {
                        sub.pending
                            .iter()
                            .find(|p| {
                                p.message_id.as_str() == message_id && !consumed.contains(&p.ack_id)
                            })
                            .map(|p| (sub, p.ack_id))
                    })
                    .ok_or_else(|| Fail::new(format!("no unacknowledged message `{message_id}`")))
            }
        }
    }

    /// Remove the covered deliveries from the subscription and tell the engine.
    pub(super) fn apply_ack(
        &mut self,
        resolved: ResolvedAck,
        engine: &mut dyn Engine,
        out: &mut Vec<Delivery>,
    ) {
        let Some(sub) = self.subs.get_mut(&resolved.subscription) else {
            return;
        };
        let mut message_ids = Vec::with_capacity(resolved.ack_ids.len());
        sub.pending.retain(|p| {
            let covered = resolved.ack_ids.binary_search(&p.ack_id).is_ok();
            if covered {
                message_ids.push(p.message_id.clone());
            }
            !covered
        });
        for id in &resolved.ack_ids {
            self.ack_index.remove(id);
        }
        let key = SubscriberKey::new(self.conn, resolved.subscription);
        if resolved.nack {
            engine.nack(&key, &message_ids, out);
        } else {
            engine.ack(&key, &message_ids, out);
        }
    }
}
