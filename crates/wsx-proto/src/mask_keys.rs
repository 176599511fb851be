//! Where the masking keys of a client's frames come from.
//!
//! A client masks every frame it sends with a fresh 4-byte key (RFC 6455 §5.3). By default a
//! [`crate::Connection`] draws them from the thread's random generator; a caller can supply its
//! own [`MaskKeySource`] ([`crate::Connection::with_mask_keys`]) — a deterministic one makes the
//! exact bytes of a client's frames testable. A server never masks and never asks.

use std::fmt::Debug;

/// A source of masking keys for a client's frames.
///
/// Shared (behind an `Arc`) by every connection made with the same settings, so it takes
/// `&self`; use interior mutability (an atomic counter, a mutex around a generator) for state.
/// Outside tests the keys must be unpredictable to the peer's network path: RFC 6455 §10.3
/// requires keys that an attacker cannot guess, which the default random source provides.
pub trait MaskKeySource: Send + Sync + Debug {
    /// The key for the next frame.
    fn next_key(&self) -> [u8; 4];
}
