//! The in-process engine's topic history: per topic, the offset counter and the latest
//! messages, bounded per topic ([`TopicHistory`]) and in total.
//!
//! Sits inside [`super::MemoryEngine`]: a topic SEND is appended here first (which gives it
//! its offset), then fanned out; resumed subscriptions are fed from here.
//!
//! Bounds: a topic keeps at most [`TopicHistory::max_messages`] messages and
//! [`TopicHistory::max_bytes`] bytes ([`crate::Publish::size`]); all topics together at most
//! the total given to [`TopicLogs::new`], trimming the oldest message of all topics first
//! (in publish order). Trimming never refuses a publish. A topic's log is forgotten once it
//! retains nothing and nobody subscribes to it (its offsets then start again at
//! [`FIRST_OFFSET`]), so names nobody uses cost nothing.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use super::stream::{FIRST_OFFSET, TopicHistory};
use crate::message::Message;

/// One topic: the next offset and the retained messages (`oldest..next`, contiguous).
#[derive(Debug)]
pub(super) struct TopicLog {
    next: u64,
    entries: VecDeque<(Arc<Message>, usize)>,
    bytes: usize,
}

impl TopicLog {
    fn new() -> Self {
        TopicLog {
            next: FIRST_OFFSET,
            entries: VecDeque::new(),
            bytes: 0,
        }
    }

    /// The offset the next message gets.
    pub(super) fn next(&self) -> u64 {
        self.next
    }

    /// The offset of the oldest retained message (`next` when none is).
    pub(super) fn oldest(&self) -> u64 {
        self.next - self.entries.len() as u64
    }

    /// The retained message at `offset`.
    pub(super) fn get(&self, offset: u64) -> Option<&Arc<Message>> {
        let i = usize::try_from(offset.checked_sub(self.oldest())?).ok()?;
        self.entries.get(i).map(|(m, _)| m)
    }

    fn pop_oldest(&mut self) -> usize {
        match self.entries.pop_front() {
            Some((_, size)) => {
                self.bytes -= size;
                size
            }
            None => 0,
        }
    }
}

/// Every topic's log (see the module docs).
#[derive(Debug)]
pub(super) struct TopicLogs {
    history: TopicHistory,
    max_total: usize,
    logs: HashMap<Arc<str>, TopicLog>,
    /// Retained messages of all topics in publish order (topic, offset); entries trimmed by
    /// a per-topic bound stay until popped or compacted.
    order: VecDeque<(Arc<str>, u64)>,
    /// Messages retained in all topics.
    count: usize,
    /// Bytes retained in all topics.
    bytes: usize,
}

impl TopicLogs {
    pub(super) fn new(history: TopicHistory, max_total: usize) -> Self {
        TopicLogs {
            history,
            max_total,
            logs: HashMap::new(),
            order: VecDeque::new(),
            count: 0,
            bytes: 0,
        }
    }

    pub(super) fn set_history(&mut self, history: TopicHistory) {
        self.history = history;
    }

    pub(super) fn set_max_total(&mut self, bytes: usize) {
        self.max_total = bytes;
    }

    /// Bytes retained in all topics.
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Messages retained in all topics.
    pub(super) fn count(&self) -> usize {
        self.count
    }

    pub(super) fn get(&self, topic: &str) -> Option<&TopicLog> {
        self.logs.get(topic)
    }

    /// The log of `topic`, created (empty, next offset [`FIRST_OFFSET`]) if need be.
    pub(super) fn ensure(&mut self, topic: &Arc<str>) -> &TopicLog {
        self.logs.entry(topic.clone()).or_insert_with(TopicLog::new)
    }

    /// Store a message of `size` bytes in `topic`: `make` builds it with its offset. Trims
    /// what the bounds no longer allow (the new message included, when history is off), and
    /// forgets the logs left empty of topics for which `subscribed` is false.
    pub(super) fn append(
        &mut self,
        topic: &Arc<str>,
        size: usize,
        make: impl FnOnce(u64) -> Message,
        subscribed: impl Fn(&str) -> bool,
    ) -> Arc<Message> {
        let log = self.logs.entry(topic.clone()).or_insert_with(TopicLog::new);
        let offset = log.next;
        log.next += 1;
        let message = Arc::new(make(offset));
        if !self.history.enabled() || size > self.history.max_bytes || size > self.max_total {
            // Nothing older can stay before it (contiguous): drop them all.
            while !log.entries.is_empty() {
                self.bytes -= log.pop_oldest();
                self.count -= 1;
            }
            if !subscribed(topic) {
                self.logs.remove(topic);
            }
            return message;
        }
        log.entries.push_back((message.clone(), size));
        log.bytes += size;
        self.bytes += size;
        self.count += 1;
        self.order.push_back((topic.clone(), offset));
        while log.entries.len() > self.history.max_messages || log.bytes > self.history.max_bytes {
            self.bytes -= log.pop_oldest();
            self.count -= 1;
        }
        while self.bytes > self.max_total {
            let Some((name, offset)) = self.order.pop_front() else {
                break;
            };
            if let Some(log) = self.logs.get_mut(&name)
                && log.oldest() == offset
                && !log.entries.is_empty()
            {
                self.bytes -= log.pop_oldest();
                self.count -= 1;
                if log.entries.is_empty() && !subscribed(&name) {
                    self.logs.remove(&name);
                }
            }
        }
        // Entries for messages trimmed by a per-topic bound: compact once they are most.
        if self.order.len() > 2 * self.count + 64 {
            let logs = &self.logs;
            self.order.retain(|(name, offset)| {
                logs.get(name)
                    .is_some_and(|log| *offset >= log.oldest() && *offset < log.next)
            });
        }
        message
    }

    /// Forget `topic`'s log if it retains nothing (call when it has no subscriber left).
    pub(super) fn forget_if_empty(&mut self, topic: &str) {
        if self
            .logs
            .get(topic)
            .is_some_and(|log| log.entries.is_empty())
        {
            self.logs.remove(topic);
        }
    }
}
