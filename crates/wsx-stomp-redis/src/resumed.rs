//! Topic subscriptions resumed from an offset (`x-stream-offset`), on the Redis engine.
//!
//! Sits inside [`crate::RedisEngine`], between what arrives from Redis — live topic messages
//! on the node's pub/sub connection, pages of a topic's history read on the writer's
//! connection ([`crate::connections::HistoryRead`]) — and the node's
//! [`wsx_stomp::ConsumerSet`], where a resumed subscription is *fed* one message at a time
//! ([`wsx_stomp::ConsumerSet::deliver_to`]) under its window.
//!
//! The seam: a resumed subscription is registered for live messages first (its topic's
//! channel is subscribed — the first read waits until the subscriber applied it), then reads
//! the history from the requested offset. Everything it gets, live or read, goes into a
//! buffer ordered by offset; it delivers from the buffer in offset order while its window has
//! room, dropping anything older than the next offset it expects (no duplicate). When the
//! next offset it expects is not in the buffer but is known to exist (a later live message
//! arrived: a gap in pub/sub, or the buffer was full) it reads the history from there (no
//! gap). When the history no longer has it, it skips to the oldest retained message and
//! marks that delivery [`wsx_stomp::Delivery::gap`]. One read at a time per subscription, at
//! most [`READ_PAGE`] entries; the buffer holds at most [`BUFFER_MESSAGES`] messages and
//! [`BUFFER_BYTES`] bytes (what does not fit is read again from the history later).
//!
//! A live message lost in pub/sub (the pub/sub connection reconnecting) while the
//! subscription is caught up is noticed with the next live message of the topic, which then
//! waits while the missing ones are read.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::connections::Page;
use wsx_stomp::{ConsumerSet, Delivery, Fed, Message, StreamStart, SubscriberKey};

/// Entries one history read asks for, at most.
pub(crate) const READ_PAGE: usize = 256;
/// Messages a resumed subscription buffers, at most.
pub(crate) const BUFFER_MESSAGES: usize = 1024;
/// Bytes a resumed subscription buffers, at most (one larger message is let in alone).
pub(crate) const BUFFER_BYTES: usize = 2 << 20;

/// A read of the history wanted: for `key` (with `epoch`), from offset `from` (-1: the last).
#[derive(Debug)]
pub(crate) struct ReadWanted {
    pub key: SubscriberKey,
    pub epoch: u64,
    pub topic: Arc<str>,
    pub from: i64,
    pub generation: u64,
}

#[derive(Debug)]
struct Resumed {
    topic: Arc<str>,
    start: StreamStart,
    epoch: u64,
    /// The topic generation its channel subscription is part of.
    generation: u64,
    /// The next offset to deliver; `None` until the first read resolved the start.
    next: Option<u64>,
    gap: bool,
    reading: bool,
    /// The highest offset known to exist.
    known_last: u64,
    buffer: BTreeMap<u64, Arc<Message>>,
    buffer_bytes: usize,
}

impl Resumed {
    fn insert(&mut self, offset: u64, message: Arc<Message>) {
        if self.next.is_some_and(|next| offset < next) || self.buffer.contains_key(&offset) {
            return;
        }
        let size = message.size();
        if !self.buffer.is_empty()
            && (self.buffer.len() >= BUFFER_MESSAGES || self.buffer_bytes + size > BUFFER_BYTES)
        {
            return; // read again from the history when its turn comes
        }
        self.buffer_bytes += size;
        self.buffer.insert(offset, message);
    }

    fn pop_first(&mut self) {
        if let Some((_, message)) = self.buffer.pop_first() {
            self.buffer_bytes -= message.size();
        }
    }
}

/// The node's resumed subscriptions.
#[derive(Debug, Default)]
pub(crate) struct ResumedSet {
    subs: HashMap<SubscriberKey, Resumed>,
    by_topic: HashMap<Arc<str>, Vec<SubscriberKey>>,
    epochs: u64,
}

impl ResumedSet {
    /// Whether `key` is a resumed subscription.
    pub(crate) fn contains(&self, key: &SubscriberKey) -> bool {
        self.subs.contains_key(key)
    }

    /// Add `key` (already in the set, fed) to `topic`, starting at `start`: returns the first
    /// read.
    pub(crate) fn add(
        &mut self,
        key: SubscriberKey,
        topic: Arc<str>,
        start: StreamStart,
        generation: u64,
    ) -> ReadWanted {
        self.remove(&key);
        self.epochs += 1;
        let from = match start {
            StreamStart::First => 0,
            StreamStart::Last => -1,
            StreamStart::Latest(k) => -i64::try_from(k).unwrap_or(i64::MAX),
            StreamStart::Next => -1,
            StreamStart::Offset(n) => i64::try_from(n).unwrap_or(i64::MAX),
        };
        self.subs.insert(
            key.clone(),
            Resumed {
                topic: topic.clone(),
                start,
                epoch: self.epochs,
                generation,
                next: None,
                gap: false,
                reading: true,
                known_last: 0,
                buffer: BTreeMap::new(),
                buffer_bytes: 0,
            },
        );
        self.by_topic
            .entry(topic.clone())
            .or_default()
            .push(key.clone());
        ReadWanted {
            key,
            epoch: self.epochs,
            topic,
            from,
            generation,
        }
    }

    /// Forget `key`.
    pub(crate) fn remove(&mut self, key: &SubscriberKey) {
        if let Some(resumed) = self.subs.remove(key)
            && let Some(keys) = self.by_topic.get_mut(&resumed.topic)
        {
            keys.retain(|k| k != key);
            if keys.is_empty() {
                self.by_topic.remove(&resumed.topic);
            }
        }
    }

    /// A live message of `topic` at `offset`: buffered for each resumed subscription, which
    /// delivers what it can. Returns the reads wanted.
    pub(crate) fn on_live<T: Clone + Default>(
        &mut self,
        topic: &str,
        offset: u64,
        message: &Arc<Message>,
        set: &mut ConsumerSet<T>,
        out: &mut Vec<Delivery>,
    ) -> Vec<ReadWanted> {
        let keys = self.by_topic.get(topic).cloned().unwrap_or_default();
        let mut reads = Vec::new();
        for key in keys {
            if let Some(resumed) = self.subs.get_mut(&key) {
                resumed.known_last = resumed.known_last.max(offset);
                resumed.insert(offset, message.clone());
            }
            reads.extend(self.pump(&key, set, out));
        }
        reads
    }

    /// A page of history for `key` (`epoch`): `last` offset given out, `oldest` retained,
    /// `entries`. Returns the next read wanted, if any.
    pub(crate) fn on_page<T: Clone + Default>(
        &mut self,
        key: &SubscriberKey,
        epoch: u64,
        page: Result<Page<Arc<Message>>, String>,
        set: &mut ConsumerSet<T>,
        out: &mut Vec<Delivery>,
    ) -> Option<ReadWanted> {
        let resumed = self.subs.get_mut(key).filter(|r| r.epoch == epoch)?;
        resumed.reading = false;
        let Page {
            last,
            oldest,
            entries,
        } = match page {
            Ok(page) => page,
            Err(why) => {
                // Give up on the history: deliver on from what is buffered, marked as a gap.
                tracing::warn!(why, "reading a topic's history failed");
                let next = resumed
                    .buffer
                    .keys()
                    .next()
                    .copied()
                    .unwrap_or(resumed.known_last + 1);
                resumed.gap |= resumed.next.is_none_or(|n| n < next);
                resumed.next = Some(next);
                resumed.known_last = next.saturating_sub(1).max(resumed.known_last);
                return self.pump(key, set, out);
            }
        };
        let mut next = resumed
            .next
            .unwrap_or_else(|| resumed.start.resolve(oldest, last + 1));
        resumed.known_last = resumed.known_last.max(last);
        let found =
            entries.iter().any(|(offset, _)| *offset == next) || resumed.buffer.contains_key(&next);
        if !found && next <= last {
            // Not retained (any more): skip to what is, marked as a gap.
            let buffered = resumed.buffer.range(next..).next().map(|(o, _)| *o);
            let first_read = entries.first().map(|(o, _)| *o);
            let resume_at = [Some(oldest.max(next)), buffered, first_read]
                .into_iter()
                .flatten()
                .filter(|o| *o > next)
                .min()
                .unwrap_or(last + 1);
            resumed.gap = true;
            next = resume_at;
        }
        resumed.next = Some(next);
        for (offset, message) in entries {
            resumed.insert(offset, message);
        }
        self.pump(key, set, out)
    }

    /// `key` has room again (an ACK): deliver what it can.
    pub(crate) fn on_room<T: Clone + Default>(
        &mut self,
        key: &SubscriberKey,
        set: &mut ConsumerSet<T>,
        out: &mut Vec<Delivery>,
    ) -> Option<ReadWanted> {
        self.pump(key, set, out)
    }

    /// Deliver from the buffer in offset order while `key` has room; ask for a read when the
    /// next offset is known to exist and is not buffered.
    fn pump<T: Clone + Default>(
        &mut self,
        key: &SubscriberKey,
        set: &mut ConsumerSet<T>,
        out: &mut Vec<Delivery>,
    ) -> Option<ReadWanted> {
        let resumed = self.subs.get_mut(key)?;
        let mut next = resumed.next?;
        let mut need_read = false;
        loop {
            while resumed
                .buffer
                .first_key_value()
                .is_some_and(|(o, _)| *o < next)
            {
                resumed.pop_first();
            }
            if !set.has_room(key) {
                break;
            }
            match resumed.buffer.first_key_value() {
                Some((&offset, message)) if offset == next => {
                    match set.deliver_to(key, message, T::default(), resumed.gap, out) {
                        Fed::Delivered => resumed.gap = false,
                        Fed::NotSelected => {}
                        Fed::NoRoom => break,
                    }
                    next += 1;
                    resumed.pop_first();
                }
                Some(_) => {
                    need_read = true;
                    break;
                }
                None => {
                    need_read = next <= resumed.known_last;
                    break;
                }
            }
        }
        resumed.next = Some(next);
        if !need_read || resumed.reading {
            return None;
        }
        resumed.reading = true;
        Some(ReadWanted {
            key: key.clone(),
            epoch: resumed.epoch,
            topic: resumed.topic.clone(),
            from: i64::try_from(next).unwrap_or(i64::MAX),
            generation: resumed.generation,
        })
    }
}
