//! What a connection task fed to its WebSocket, and how much of it has been written to the
//! socket since: the [`Written`] reports the session needs ([`crate::hub::Hub::written`]).
//!
//! The WebSocket tells only how many bytes wait in its output buffer. The task notes, for each
//! transmit it feeds, where its bytes end in the stream of bytes it fed (the growth of the
//! buffer while feeding it: its wire size, compressed or not); a transmit counts as written
//! once the bytes fed minus the bytes still buffered reach its end. Output the WebSocket queues
//! by itself (pongs) sits in the same buffer, so the count can only lag: nothing is ever
//! reported written before it was.

use std::collections::VecDeque;

use crate::hub::Written;

/// The transmits fed and not counted written yet, and what was counted written and not
/// reported yet.
#[derive(Debug, Default)]
pub struct Fed {
    /// Per transmit (or run of transmits replaced by conflation), oldest first: where its
    /// bytes end among those fed, its size in the session's budget, and how many transmits
    /// it counts for.
    ends: VecDeque<(u64, usize, u64)>,
    /// Bytes fed so far.
    total: u64,
    unreported: Written,
}

impl Fed {
    /// A transmit was fed: `wire` bytes went into the WebSocket's buffer, counting `size` in
    /// the session's budget.
    pub fn push(&mut self, wire: usize, size: usize) {
        self.total += wire as u64;
        self.ends.push_back((self.total, size, 1));
    }

    /// `count` transmits the queue replaced (conflation, [`crate::hub::Outbound::Replaced`])
    /// stand here: nothing was fed, they count as written once what was fed before is.
    pub fn push_replaced(&mut self, count: u64) {
        self.ends.push_back((self.total, 0, count));
    }

    /// Bytes of transmits replaced in the queue: written for the session's budget now.
    pub fn add_replaced_bytes(&mut self, bytes: usize) {
        self.unreported.bytes += bytes;
    }

    /// Count as written the transmits whose bytes left the buffer, which holds `buffered` bytes
    /// now.
    pub fn update(&mut self, buffered: usize) {
        let written = self.total.saturating_sub(buffered as u64);
        while let Some(&(end, size, count)) = self.ends.front()
            && end <= written
        {
            self.ends.pop_front();
            self.unreported.transmits += count;
            self.unreported.bytes += size;
        }
    }

    /// Whether something was counted written and not reported.
    pub fn has_unreported(&self) -> bool {
        self.unreported != Written::default()
    }

    /// What was counted written since the last call, for a report.
    pub fn take_unreported(&mut self) -> Written {
        std::mem::take(&mut self.unreported)
    }

    /// The buffered amount under which the oldest transmit not counted written yet is: the
    /// level to wait for to report it.
    pub fn next_level(&self) -> Option<usize> {
        let &(end, _, _) = self.ends.front()?;
        let level = self.total - end + 1;
        Some(usize::try_from(level).unwrap_or(usize::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transmits_count_once_their_bytes_left_the_buffer() {
        let mut fed = Fed::default();
        fed.push(10, 8);
        fed.push(5, 0);
        fed.push(20, 18);
        // 35 fed, 35 buffered: nothing written; the first is written below 26 buffered.
        fed.update(35);
        assert!(!fed.has_unreported());
        assert_eq!(fed.next_level(), Some(26));
        fed.update(26);
        assert!(!fed.has_unreported());
        fed.update(25);
        assert_eq!(fed.next_level(), Some(21));
        // A pong of 3 bytes queued by the WebSocket: the count lags, never leads.
        fed.update(20 + 3);
        assert_eq!(
            fed.take_unreported(),
            Written {
                transmits: 1,
                bytes: 8
            }
        );
        fed.update(0);
        assert_eq!(
            fed.take_unreported(),
            Written {
                transmits: 2,
                bytes: 18
            }
        );
        assert_eq!(fed.next_level(), None);
        assert!(!fed.has_unreported());
    }

    #[test]
    fn replaced_transmits_count_in_their_place_and_their_bytes_at_once() {
        let mut fed = Fed::default();
        fed.push(10, 8);
        fed.push_replaced(3);
        fed.push(5, 4);
        fed.add_replaced_bytes(30);
        fed.update(15);
        assert_eq!(
            fed.take_unreported(),
            Written {
                transmits: 0,
                bytes: 30
            }
        );
        fed.update(5);
        assert_eq!(
            fed.take_unreported(),
            Written {
                transmits: 4,
                bytes: 8
            }
        );
        fed.update(0);
        assert_eq!(
            fed.take_unreported(),
            Written {
                transmits: 1,
                bytes: 4
            }
        );
    }
}
