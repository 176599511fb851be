//! Ordered topics: offsets, where a resumed subscription starts, and how much history a
//! topic keeps.
//!
//! Every message published to `/topic/NAME` gets an offset: [`FIRST_OFFSET`] for the topic's
//! first message, then one more per message, in the order the engine stored them (the same on
//! every node of a shared engine). Its MESSAGE frames carry it as `x-stream-offset:N`. A topic
//! keeps its latest messages, bounded by a [`TopicHistory`] (count and bytes per topic; an
//! engine adds a total bound of its own), and a SUBSCRIBE may ask to start in that history
//! with `x-stream-offset` ([`StreamStart`], RabbitMQ's STOMP convention for streams).
//!
//! Sits between the session, which parses the header ([`StreamStart::parse`]) and hands it to
//! [`super::Engine::subscribe_at`], and the engines, which keep the history and feed resumed
//! subscriptions from it.

/// The offset of a topic's first message. Offsets start at 1, so `offset=0` and `offset=1`
/// both mean the first message ever published.
pub const FIRST_OFFSET: u64 = 1;

/// Where a topic subscription starts: the `x-stream-offset` header of its SUBSCRIBE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum StreamStart {
    /// `first`: the oldest message the topic retains, then everything after it.
    First,
    /// `last`: the newest message the topic retains (if any), then the live ones.
    Last,
    /// `last=K` (K >= 1; an extension of RabbitMQ's forms): the newest `K` messages the topic
    /// retains (fewer if it retains fewer, never marked as a gap), then the live ones.
    /// `last=1` is `last`.
    Latest(u64),
    /// `next` (the default, also without the header): only messages published from now on.
    #[default]
    Next,
    /// `offset=N`: message `N` and everything after it. When `N` is older than the oldest
    /// message retained, delivery starts at the oldest and marks it `x-stream-gap:true`; an
    /// `N` past the next offset to be given out is taken as `next`.
    Offset(u64),
}

impl StreamStart {
    /// Parse `first`, `last`, `next`, `last=K` or `offset=N`.
    pub fn parse(value: &str) -> Option<StreamStart> {
        let number = |n: &str| {
            Some(n)
                .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|n| n.parse::<u64>().ok())
        };
        match value {
            "first" => Some(StreamStart::First),
            "last" => Some(StreamStart::Last),
            "next" => Some(StreamStart::Next),
            _ => match value.split_once('=')? {
                ("offset", n) => number(n).map(StreamStart::Offset),
                ("last", k) => number(k).filter(|k| *k >= 1).map(StreamStart::Latest),
                _ => None,
            },
        }
    }

    /// The first offset to deliver, for a topic whose retained messages are `oldest..next`
    /// (`oldest == next` when it retains none) and whose next message gets `next`.
    pub fn resolve(self, oldest: u64, next: u64) -> u64 {
        match self {
            StreamStart::First => oldest,
            StreamStart::Last if oldest < next => next - 1,
            StreamStart::Last | StreamStart::Next => next,
            StreamStart::Latest(k) => next.saturating_sub(k).max(oldest),
            StreamStart::Offset(n) if n > next => next,
            StreamStart::Offset(n) => n.max(FIRST_OFFSET),
        }
    }
}

/// How much history each topic keeps: its latest `max_messages` messages, and no more than
/// `max_bytes` of them ([`crate::Publish::size`]); the oldest go first. `max_messages: 0`
/// keeps none (offsets are still given out; a resumed subscription then only gets live
/// messages, with a gap reported if it asked for older ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicHistory {
    /// Messages kept per topic.
    pub max_messages: usize,
    /// Bytes kept per topic.
    pub max_bytes: usize,
}

impl TopicHistory {
    /// Default of [`TopicHistory::max_messages`].
    pub const DEFAULT_MAX_MESSAGES: usize = 1000;
    /// Default of [`TopicHistory::max_bytes`]: 1 MiB.
    pub const DEFAULT_MAX_BYTES: usize = 1 << 20;

    /// Whether it keeps anything.
    pub fn enabled(&self) -> bool {
        self.max_messages > 0 && self.max_bytes > 0
    }
}

impl Default for TopicHistory {
    fn default() -> Self {
        TopicHistory {
            max_messages: Self::DEFAULT_MAX_MESSAGES,
            max_bytes: Self::DEFAULT_MAX_BYTES,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_five_forms_and_nothing_else() {
        assert_eq!(StreamStart::parse("first"), Some(StreamStart::First));
        assert_eq!(StreamStart::parse("last"), Some(StreamStart::Last));
        assert_eq!(StreamStart::parse("next"), Some(StreamStart::Next));
        assert_eq!(
            StreamStart::parse("offset=42"),
            Some(StreamStart::Offset(42))
        );
        assert_eq!(StreamStart::parse("last=50"), Some(StreamStart::Latest(50)));
        for bad in [
            "",
            "offset=",
            "last=",
            "last=0",
            "last=-2",
            "first=3",
            "next=1",
            "offset=-1",
            "offset=+1",
            "offset=1x",
            "First",
            "12",
        ] {
            assert_eq!(StreamStart::parse(bad), None, "{bad}");
        }
        assert_eq!(StreamStart::parse("offset=99999999999999999999999"), None);
    }

    #[test]
    fn resolves_against_what_is_retained() {
        // Retains 5..10, next is 10.
        assert_eq!(StreamStart::First.resolve(5, 10), 5);
        assert_eq!(StreamStart::Last.resolve(5, 10), 9);
        assert_eq!(StreamStart::Next.resolve(5, 10), 10);
        assert_eq!(StreamStart::Offset(7).resolve(5, 10), 7);
        assert_eq!(StreamStart::Offset(2).resolve(5, 10), 2);
        assert_eq!(StreamStart::Offset(50).resolve(5, 10), 10);
        assert_eq!(StreamStart::Offset(0).resolve(1, 1), 1);
        assert_eq!(StreamStart::Latest(1).resolve(5, 10), 9);
        assert_eq!(StreamStart::Latest(3).resolve(5, 10), 7);
        assert_eq!(StreamStart::Latest(50).resolve(5, 10), 5);
        // Retains nothing.
        assert_eq!(StreamStart::Last.resolve(10, 10), 10);
        assert_eq!(StreamStart::Latest(4).resolve(10, 10), 10);
        assert_eq!(StreamStart::First.resolve(10, 10), 10);
    }
}
