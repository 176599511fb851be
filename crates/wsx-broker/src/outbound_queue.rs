//! [`OutboundQueue`]: one connection's queue of outgoing frames, and the slow-consumer policy.
//!
//! A broadcaster (a chat room's task, the STOMP hub) fills the queues of many connections and
//! never waits for any of them; each connection's task drains its own queue into its socket as
//! fast as the client reads. What a client does not read piles up in its queue, so the queue
//! is where a slow client is caught: the entries pushed with [`OutboundQueue::push_counted`]
//! (broadcast traffic nobody else bounds: chat messages and files, `ack:auto` topic messages)
//! may hold at most [`QueueLimits`] entries and bytes. Past either, the consumer is *dropped*:
//! the queue is emptied, takes nothing more, and its task — woken — closes the connection
//! (WebSocket close 1008 "too slow"). The other connections do not notice.
//!
//! Entries pushed with [`OutboundQueue::push`] are not counted: their producer bounds them
//! itself (a STOMP session's own output and its credit windows).
//!
//! An empty queue always takes one counted push, however big (one large file must get
//! through to a client that reads); the byte limit applies from the second entry.
//!
//! Conflation ([`OutboundQueue::push_keyed`]): a counted entry may carry a [`ConflationTag`]
//! (a topic subscription and a message's `x-conflation-key`). A new entry with the tag of one
//! still waiting replaces it: the old one leaves its place, the new one goes to the end, so
//! the queue stays in arrival order and holds at most one entry per tag, and the consumer —
//! however long it does not read — ends with the latest entry of every tag. Keyed entries
//! count against the same [`QueueLimits`] (at most `items` distinct tags waiting, `bytes` in
//! all); past them the consumer is dropped as for any counted entry. The producer's accounting
//! of what was written (the STOMP session's numbered transmits and its output budget) goes on:
//! the entries replaced come out of [`OutboundQueue::drain_into`] as one
//! [`Replaceable::replaced`] stand-in in their place (to count as written once what was
//! before them is), and their bytes in [`Drained::replaced_bytes`] (to count as written at
//! once).
//!
//! Pushing does not wake the consumer: the producer calls [`OutboundQueue::wake`] once it is
//! done (the STOMP hub does so after releasing its lock), and the consumer awaits
//! [`OutboundQueue::ready`].

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;
use wsx_stomp::ConflationTag;

/// How much counted traffic a queue may hold before its consumer counts as too slow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    /// Entries.
    pub items: usize,
    /// Bytes (an empty queue takes one entry of any size).
    pub bytes: usize,
}

/// Why a push was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The consumer does not keep up: it is dropped now (or was before).
    TooSlow,
    /// The consumer is gone ([`OutboundQueue::close`]).
    Gone,
}

/// What [`OutboundQueue::drain_into`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    /// The consumer was dropped as too slow: close the connection.
    pub dropped: bool,
    /// The flag the producer set with [`OutboundQueue::set_flag`] (the STOMP hub: "report
    /// what was written soon").
    pub flag: bool,
    /// The [`Replaceable::accounted_bytes`] of the entries replaced since the last drain:
    /// count them as written now.
    pub replaced_bytes: usize,
}

/// An entry that [`OutboundQueue::push_keyed`] may replace.
pub trait Replaceable: Sized {
    /// What the consumer takes in the place of `count` entries replaced in a row (nothing to
    /// send; they count as written once what was before them is).
    fn replaced(count: u64) -> Self;

    /// The bytes it counts for in its producer's accounting (reported in
    /// [`Drained::replaced_bytes`] once replaced).
    fn accounted_bytes(&self) -> usize;
}

/// What [`OutboundQueue::push_keyed`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyedPush {
    /// Queued: no entry with its tag was waiting.
    Queued,
    /// Queued at the end in the place of the waiting entry with its tag, which is gone.
    Replaced,
}

#[derive(Debug)]
struct Entry<T> {
    item: T,
    size: usize,
    counted: bool,
    /// Its number in the queue (increasing: the queue is sorted by it).
    seq: u64,
    /// Its conflation tag, if it has one.
    tag: Option<ConflationTag>,
    /// Entries replaced that were between it and the entry before it.
    replaced_before: u64,
}

#[derive(Debug)]
struct State<T> {
    entries: VecDeque<Entry<T>>,
    counted_items: usize,
    counted_bytes: usize,
    dropped: bool,
    closed: bool,
    flag: bool,
    /// The number of the next entry.
    next_seq: u64,
    /// The number of the waiting entry of each tag.
    keyed: HashMap<ConflationTag, u64>,
    /// Bytes of the entries replaced since the last drain.
    replaced_bytes: usize,
    /// Makes the stand-in of replaced entries (set by the first keyed push).
    stand_in: Option<fn(u64) -> T>,
}

impl<T> State<T> {
    fn push_back(&mut self, item: T, size: usize, counted: bool, tag: Option<ConflationTag>) {
        if counted {
            self.counted_items = self.counted_items.saturating_add(1);
            self.counted_bytes = self.counted_bytes.saturating_add(size);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        if let Some(tag) = &tag {
            self.keyed.insert(tag.clone(), seq);
        }
        self.entries.push_back(Entry {
            item,
            size,
            counted,
            seq,
            tag,
            replaced_before: 0,
        });
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.keyed.clear();
        self.counted_items = 0;
        self.counted_bytes = 0;
        self.replaced_bytes = 0;
    }
}

/// One connection's outgoing queue: filled without waiting, drained by the connection's task.
#[derive(Debug)]
pub struct OutboundQueue<T> {
    state: Mutex<State<T>>,
    ready: Notify,
    limits: QueueLimits,
}

impl<T> OutboundQueue<T> {
    /// An empty queue with these limits on counted entries.
    pub fn new(limits: QueueLimits) -> Self {
        OutboundQueue {
            state: Mutex::new(State {
                entries: VecDeque::new(),
                counted_items: 0,
                counted_bytes: 0,
                dropped: false,
                closed: false,
                flag: false,
                next_seq: 0,
                keyed: HashMap::new(),
                replaced_bytes: 0,
                stand_in: None,
            }),
            ready: Notify::new(),
            limits,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queue `items` (each with its size in bytes), counted against the limits: all of them, or
    /// none and the consumer dropped ([`Refused::TooSlow`]) when they would pass a limit.
    pub fn push_counted(&self, items: impl IntoIterator<Item = (T, usize)>) -> Result<(), Refused> {
        let items: Vec<(T, usize)> = items.into_iter().collect();
        let mut state = self.lock();
        if state.closed {
            return Err(Refused::Gone);
        }
        if state.dropped {
            return Err(Refused::TooSlow);
        }
        let bytes: usize = items.iter().map(|(_, size)| size).sum();
        let entries = state.counted_items.saturating_add(items.len());
        let over_bytes = state.counted_items > 0
            && state.counted_bytes.saturating_add(bytes) > self.limits.bytes;
        if entries > self.limits.items || over_bytes {
            Self::drop_locked(&mut state);
            return Err(Refused::TooSlow);
        }
        for (item, size) in items {
            state.push_back(item, size, true, None);
        }
        Ok(())
    }

    /// Queue one entry counted like [`OutboundQueue::push_counted`]'s, but taken whatever the
    /// limits: traffic the connection caused itself (its SEND fanned out to its own
    /// subscriptions), which its producer bounds otherwise. It still counts for later pushes.
    pub fn push_counted_past_limits(&self, item: T, size: usize) -> Result<(), Refused> {
        self.push_entry(item, size, true)
    }

    /// Queue one entry its producer bounds itself (not counted against the limits). Refused
    /// only when the consumer is dropped or gone.
    pub fn push(&self, item: T, size: usize) -> Result<(), Refused> {
        self.push_entry(item, size, false)
    }

    /// Queue one counted entry tagged `tag`, replacing the waiting entry with the same tag (see
    /// the module docs). `within_limits`: refused and the consumer dropped when it would pass
    /// the limits (as [`OutboundQueue::push_counted`]); otherwise taken whatever the limits (as
    /// [`OutboundQueue::push_counted_past_limits`]).
    pub fn push_keyed(
        &self,
        item: T,
        size: usize,
        tag: ConflationTag,
        within_limits: bool,
    ) -> Result<KeyedPush, Refused>
    where
        T: Replaceable,
    {
        let mut state = self.lock();
        if state.closed {
            return Err(Refused::Gone);
        }
        if state.dropped {
            return Err(Refused::TooSlow);
        }
        // Where the waiting entry with this tag is, and what it counts for.
        let waiting = state.keyed.get(&tag).copied().and_then(|seq| {
            let at = state.entries.binary_search_by_key(&seq, |e| e.seq).ok()?;
            let old = &state.entries[at];
            Some((
                at,
                usize::from(old.counted),
                if old.counted { old.size } else { 0 },
            ))
        });
        let (freed_items, freed_bytes) = waiting.map_or((0, 0), |(_, items, bytes)| (items, bytes));
        if within_limits {
            let items = state.counted_items - freed_items + 1;
            let bytes = (state.counted_bytes - freed_bytes).saturating_add(size);
            if items > self.limits.items || (items > 1 && bytes > self.limits.bytes) {
                Self::drop_locked(&mut state);
                return Err(Refused::TooSlow);
            }
        }
        let outcome = match waiting.map(|(at, _, _)| at) {
            Some(at) => {
                let Some(old) = state.entries.remove(at) else {
                    return Err(Refused::Gone);
                };
                if old.counted {
                    state.counted_items -= 1;
                    state.counted_bytes -= old.size;
                }
                state.replaced_bytes = state
                    .replaced_bytes
                    .saturating_add(old.item.accounted_bytes());
                state.stand_in = Some(T::replaced);
                let carried = old.replaced_before + 1;
                match state.entries.get_mut(at) {
                    Some(next) => next.replaced_before += carried,
                    None => {
                        state.push_back(item, size, true, Some(tag));
                        if let Some(last) = state.entries.back_mut() {
                            last.replaced_before = carried;
                        }
                        return Ok(KeyedPush::Replaced);
                    }
                }
                KeyedPush::Replaced
            }
            None => KeyedPush::Queued,
        };
        state.push_back(item, size, true, Some(tag));
        Ok(outcome)
    }

    fn push_entry(&self, item: T, size: usize, counted: bool) -> Result<(), Refused> {
        let mut state = self.lock();
        if state.closed {
            return Err(Refused::Gone);
        }
        if state.dropped {
            return Err(Refused::TooSlow);
        }
        state.push_back(item, size, counted, None);
        Ok(())
    }

    /// Wake the consumer (after pushes, or after dropping it).
    pub fn wake(&self) {
        self.ready.notify_one();
    }

    /// Drop the consumer as too slow without a push (the producer decided so): the queue is
    /// emptied; wake the consumer next.
    pub fn drop_consumer(&self) {
        Self::drop_locked(&mut self.lock());
    }

    fn drop_locked(state: &mut State<T>) {
        state.dropped = true;
        state.clear();
    }

    /// Set or clear the producer's flag, returned by the next [`OutboundQueue::drain_into`].
    pub fn set_flag(&self, flag: bool) {
        self.lock().flag = flag;
    }

    /// Move queued entries into `into`, about `budget` bytes of them (at least one when any is
    /// queued and `budget` is not 0), unless the consumer was dropped.
    pub fn drain_into(&self, budget: usize, into: &mut Vec<T>) -> Drained {
        let mut state = self.lock();
        let drained = Drained {
            dropped: state.dropped,
            flag: state.flag,
            replaced_bytes: std::mem::take(&mut state.replaced_bytes),
        };
        let mut moved = 0;
        while moved < budget {
            let Some(entry) = state.entries.pop_front() else {
                break;
            };
            if entry.counted {
                state.counted_items -= 1;
                state.counted_bytes -= entry.size;
            }
            if let Some(tag) = &entry.tag
                && state.keyed.get(tag) == Some(&entry.seq)
            {
                state.keyed.remove(tag);
            }
            if entry.replaced_before > 0
                && let Some(stand_in) = state.stand_in
            {
                into.push(stand_in(entry.replaced_before));
            }
            moved = moved.saturating_add(entry.size.max(1));
            into.push(entry.item);
        }
        drained
    }

    /// Counted entries waiting (those [`QueueLimits::items`] bounds).
    pub fn counted_len(&self) -> usize {
        self.lock().counted_items
    }

    /// Whether entries are waiting.
    pub fn has_items(&self) -> bool {
        !self.lock().entries.is_empty()
    }

    /// Whether the consumer was dropped as too slow.
    pub fn is_dropped(&self) -> bool {
        self.lock().dropped
    }

    /// Resolves once [`OutboundQueue::wake`] was called since the last wake-up.
    pub async fn ready(&self) {
        self.ready.notified().await;
    }

    /// The consumer is gone: empty the queue and refuse every further push with
    /// [`Refused::Gone`].
    pub fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        state.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(items: usize, bytes: usize) -> OutboundQueue<u32> {
        OutboundQueue::new(QueueLimits { items, bytes })
    }

    #[test]
    fn counted_pushes_past_the_entry_limit_drop_the_consumer() {
        let q = queue(2, 1000);
        assert_eq!(q.push_counted([(1, 10), (2, 10)]), Ok(()));
        assert_eq!(q.push_counted([(3, 10)]), Err(Refused::TooSlow));
        assert!(q.is_dropped() && !q.has_items());
        let mut out = Vec::new();
        assert!(q.drain_into(usize::MAX, &mut out).dropped);
        assert!(out.is_empty());
        assert_eq!(q.push(4, 1), Err(Refused::TooSlow));
    }

    #[test]
    fn an_empty_queue_takes_one_entry_of_any_size() {
        let q = queue(10, 100);
        assert_eq!(q.push_counted([(1, 10_000)]), Ok(()));
        assert_eq!(q.push_counted([(2, 1)]), Err(Refused::TooSlow));
        let q = queue(10, 100);
        assert_eq!(q.push_counted([(1, 60)]), Ok(()));
        let mut out = Vec::new();
        q.drain_into(usize::MAX, &mut out);
        assert_eq!(out, [1]);
        // Drained: the bytes count again from zero.
        assert_eq!(q.push_counted([(2, 60)]), Ok(()));
    }

    #[test]
    fn uncounted_entries_pass_the_limits_and_keep_their_order() {
        let q = queue(1, 10);
        for i in 0..5 {
            assert_eq!(q.push(i, 100), Ok(()));
        }
        assert_eq!(q.push_counted([(9, 5)]), Ok(()));
        let mut out = Vec::new();
        let drained = q.drain_into(250, &mut out);
        assert!(!drained.dropped);
        assert_eq!(out, [0, 1, 2]);
        q.drain_into(usize::MAX, &mut out);
        assert_eq!(out, [0, 1, 2, 3, 4, 9]);
    }

    #[test]
    fn own_traffic_counts_without_being_refused() {
        let q = queue(1, 10);
        assert_eq!(q.push_counted_past_limits(1, 100), Ok(()));
        assert_eq!(q.push_counted_past_limits(2, 100), Ok(()));
        // The counted entries are past the limits now: the next checked push drops.
        assert_eq!(q.push_counted([(3, 1)]), Err(Refused::TooSlow));
    }

    #[test]
    fn a_closed_queue_refuses_as_gone() {
        let q = queue(10, 100);
        q.push(1, 1).expect("open");
        q.close();
        assert!(!q.has_items());
        assert_eq!(q.push(2, 1), Err(Refused::Gone));
        assert_eq!(q.push_counted([(3, 1)]), Err(Refused::Gone));
    }

    /// An entry of the keyed tests: a value, or a stand-in for replaced ones.
    #[derive(Debug, PartialEq, Eq)]
    enum Item {
        Value(u32),
        Replaced(u64),
    }

    impl Replaceable for Item {
        fn replaced(count: u64) -> Self {
            Item::Replaced(count)
        }

        fn accounted_bytes(&self) -> usize {
            10
        }
    }

    fn tag(key: &str) -> ConflationTag {
        ConflationTag {
            subscription: "s".into(),
            key: key.into(),
        }
    }

    #[test]
    fn a_keyed_entry_replaces_the_waiting_one_and_goes_to_the_end() {
        use Item::{Replaced, Value};
        let q = OutboundQueue::new(QueueLimits {
            items: 3,
            bytes: 1000,
        });
        assert_eq!(
            q.push_keyed(Value(1), 10, tag("a"), true),
            Ok(KeyedPush::Queued)
        );
        assert_eq!(
            q.push_keyed(Value(2), 10, tag("b"), true),
            Ok(KeyedPush::Queued)
        );
        assert_eq!(q.push(Value(3), 10), Ok(()));
        // Thousands of updates of two keys stay two entries: no consumer dropped.
        for i in 0..1000u32 {
            let key = if i.is_multiple_of(2) { "a" } else { "b" };
            assert_eq!(
                q.push_keyed(Value(100 + i), 10, tag(key), true),
                Ok(KeyedPush::Replaced)
            );
        }
        let mut out = Vec::new();
        let drained = q.drain_into(usize::MAX, &mut out);
        assert!(!drained.dropped);
        assert_eq!(drained.replaced_bytes, 1000 * 10);
        // In arrival order, the latest of each key; the 1000 replaced stand where they were
        // (two before the uncounted entry, the rest after it).
        assert_eq!(
            out,
            [
                Replaced(2),
                Value(3),
                Replaced(998),
                Value(1098),
                Value(1099)
            ]
        );
        // Drained: the tags are free again.
        assert_eq!(
            q.push_keyed(Value(7), 10, tag("a"), true),
            Ok(KeyedPush::Queued)
        );
    }

    #[test]
    fn distinct_keys_count_against_the_limits() {
        let q = OutboundQueue::new(QueueLimits {
            items: 2,
            bytes: 1000,
        });
        assert!(q.push_keyed(Item::Value(1), 10, tag("a"), true).is_ok());
        assert!(q.push_keyed(Item::Value(2), 10, tag("b"), true).is_ok());
        // A third key is a third entry: too slow, as without keys.
        assert_eq!(
            q.push_keyed(Item::Value(3), 10, tag("c"), true),
            Err(Refused::TooSlow)
        );
        assert!(q.is_dropped());
        // So is a replacement that passes the byte limit.
        let q = OutboundQueue::new(QueueLimits {
            items: 10,
            bytes: 100,
        });
        assert!(q.push_keyed(Item::Value(1), 50, tag("a"), true).is_ok());
        assert!(q.push_keyed(Item::Value(2), 40, tag("b"), true).is_ok());
        assert!(q.push_keyed(Item::Value(3), 50, tag("b"), true).is_ok());
        assert_eq!(
            q.push_keyed(Item::Value(4), 51, tag("b"), true),
            Err(Refused::TooSlow)
        );
        // Own traffic passes the limits, and still replaces.
        let q = OutboundQueue::new(QueueLimits { items: 1, bytes: 1 });
        for i in 0..5 {
            assert!(q.push_keyed(Item::Value(i), 10, tag("a"), false).is_ok());
        }
        assert!(q.push_keyed(Item::Value(9), 10, tag("b"), false).is_ok());
        let mut out = Vec::new();
        q.drain_into(usize::MAX, &mut out);
        assert_eq!(out, [Item::Replaced(4), Item::Value(4), Item::Value(9)]);
    }

    #[tokio::test]
    async fn a_push_wakes_the_consumer() {
        let q = std::sync::Arc::new(queue(10, 100));
        let waiter = tokio::spawn({
            let q = q.clone();
            async move {
                q.ready().await;
                q.has_items()
            }
        });
        tokio::task::yield_now().await;
        q.push(1, 1).expect("open");
        q.wake();
        assert!(waiter.await.expect("joins"));
    }
}
