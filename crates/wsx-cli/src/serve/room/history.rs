//! A room's recent text messages on this node, by offset: what a member joining without `since`
//! gets (the last `--history` of them), and what a member joining with a recent enough `since`
//! gets without asking the broker.
//!
//! Offsets come from the room's message topic (see [`super::bridge`]), or from the room itself
//! when it has no broker (`--stomp off`). The ring holds at most `capacity` entries (0 to 200,
//! `--history`), each an encoded frame of at most a few KiB; it also remembers the last offset
//! seen, so that it can tell a duplicate from a new message even when it keeps nothing.

use std::collections::VecDeque;

use super::Outgoing;

/// The last messages of a room, oldest first.
#[derive(Debug)]
pub struct History {
    entries: VecDeque<(u64, Outgoing)>,
    capacity: usize,
    /// The offset of the last message seen (kept or not).
    last: Option<u64>,
}

impl History {
    /// An empty ring of at most `capacity` messages.
    pub fn new(capacity: usize) -> Self {
        History {
            entries: VecDeque::with_capacity(capacity.min(16)),
            capacity,
            last: None,
        }
    }

    /// Record the message at `offset`; `false` (and nothing recorded) when it is not newer than
    /// the last one seen (a duplicate).
    pub fn push(&mut self, offset: u64, frame: &Outgoing) -> bool {
        if self.last.is_some_and(|last| offset <= last) {
            return false;
        }
        self.last = Some(offset);
        if self.capacity > 0 {
            if self.entries.len() >= self.capacity {
                self.entries.pop_front();
            }
            self.entries.push_back((offset, frame.clone()));
        }
        true
    }

    /// The offset the next message gets when the room numbers them itself (from 1, as the
    /// broker's topics do).
    pub fn next_offset(&self) -> u64 {
        self.last.map_or(1, |last| last + 1)
    }

    /// The offset of the last message seen.
    pub fn last(&self) -> Option<u64> {
        self.last
    }

    /// Whether the ring holds every message from `offset` on (a `since` it can answer alone).
    pub fn covers(&self, offset: u64) -> bool {
        match (self.entries.front(), self.last) {
            (Some((first, _)), _) => offset >= *first,
            // Nothing kept: only a `since` past the last message is covered.
            (None, Some(last)) => offset > last,
            (None, None) => false,
        }
    }

    /// The messages kept, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &(u64, Outgoing)> {
        self.entries.iter()
    }

    /// The messages kept from `offset` on, oldest first.
    pub fn since(&self, offset: u64) -> impl Iterator<Item = &(u64, Outgoing)> {
        let at = self.entries.partition_point(|(o, _)| *o < offset);
        self.entries.range(at..)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wsx::Message;

    fn frame(i: u64) -> Outgoing {
        Outgoing::encode(&Message::text(i.to_string())).expect("a text frame encodes")
    }

    #[test]
    fn keeps_the_last_messages_and_skips_duplicates() {
        let mut history = History::new(3);
        assert!(!history.covers(0));
        assert_eq!(history.next_offset(), 1);
        for i in 10..15 {
            assert!(history.push(i, &frame(i)));
        }
        assert!(!history.push(14, &frame(14)));
        assert!(!history.push(3, &frame(3)));
        let kept: Vec<u64> = history.iter().map(|(o, _)| *o).collect();
        assert_eq!(kept, [12, 13, 14]);
        assert!(history.covers(12) && history.covers(20) && !history.covers(11));
        let since: Vec<u64> = history.since(13).map(|(o, _)| *o).collect();
        assert_eq!(since, [13, 14]);
        assert_eq!(history.since(15).count(), 0);
        assert_eq!(history.next_offset(), 15);
    }

    #[test]
    fn without_capacity_it_still_knows_the_last_offset() {
        let mut history = History::new(0);
        assert!(history.push(4, &frame(4)));
        assert!(!history.push(4, &frame(4)));
        assert_eq!(history.iter().count(), 0);
        assert_eq!(history.last(), Some(4));
        assert!(history.covers(5) && !history.covers(4));
    }
}
