//! Conflation keys: a message sent to a topic with `x-conflation-key:KEY` may be replaced, while
//! it waits for a slow subscriber, by a later message with the same key (quote push: only the
//! latest price of each symbol matters).
//!
//! Where it sits in the flow: the session ([`crate::Session::deliver`]) tags the MESSAGE frames
//! of its `ack:auto` topic subscriptions whose message carries the header
//! ([`crate::Transmit::KeyedTopicMessage`]) with a [`ConflationTag`]; the I/O layer, which
//! queues frames for a connection that does not keep up, replaces a waiting frame by the newest
//! one with the same tag instead of counting both. The session itself never drops anything.

use std::sync::Arc;

/// The header that names a message's conflation key.
pub const CONFLATION_KEY: &str = "x-conflation-key";

/// Which waiting MESSAGE frames a new one may replace: those of the same subscription with the
/// same conflation key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConflationTag {
    /// The subscription's id.
    pub subscription: Arc<str>,
    /// The message's `x-conflation-key`.
    pub key: Arc<str>,
}
