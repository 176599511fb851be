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
//! Pushing does not wake the consumer: the producer calls [`OutboundQueue::wake`] once it is
//! done (the STOMP hub does so after releasing its lock), and the consumer awaits
//! [`OutboundQueue::ready`].

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;

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
}

#[derive(Debug)]
struct Entry<T> {
    item: T,
    size: usize,
    counted: bool,
}

#[derive(Debug)]
struct State<T> {
    entries: VecDeque<Entry<T>>,
    counted_items: usize,
    counted_bytes: usize,
    dropped: bool,
    closed: bool,
    flag: bool,
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
        state.counted_items = entries;
        state.counted_bytes = state.counted_bytes.saturating_add(bytes);
        for (item, size) in items {
            state.entries.push_back(Entry {
                item,
                size,
                counted: true,
            });
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

    fn push_entry(&self, item: T, size: usize, counted: bool) -> Result<(), Refused> {
        let mut state = self.lock();
        if state.closed {
            return Err(Refused::Gone);
        }
        if state.dropped {
            return Err(Refused::TooSlow);
        }
        if counted {
            state.counted_items = state.counted_items.saturating_add(1);
            state.counted_bytes = state.counted_bytes.saturating_add(size);
        }
        state.entries.push_back(Entry {
            item,
            size,
            counted,
        });
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
        state.entries.clear();
        state.counted_items = 0;
        state.counted_bytes = 0;
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
            moved = moved.saturating_add(entry.size.max(1));
            into.push(entry.item);
        }
        drained
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
        state.entries.clear();
        state.counted_items = 0;
        state.counted_bytes = 0;
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
