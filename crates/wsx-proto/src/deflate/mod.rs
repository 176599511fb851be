//! permessage-deflate (RFC 7692): compressing message payloads with deflate.
//!
//! Where it sits in the flow:
//!
//! 1. **Handshake.** The user's policy is a [`DeflateConfig`]. A client sends
//!    [`DeflateConfig::client_offer`] in `Sec-WebSocket-Extensions` and checks the server's
//!    answer with [`DeflateConfig::client_accept`]; a server picks an offer with
//!    [`DeflateConfig::server_accept`] and sends back the answer it returns. Both come out with
//!    the same [`DeflateParams`].
//! 2. **Messages.** The connection builds one [`PerMessageDeflate`] from its role, the params
//!    and the config. For each outgoing data message it asks
//!    [`should_compress`](PerMessageDeflate::should_compress) and, if so, sends what
//!    [`compress`](PerMessageDeflate::compress) produces with RSV1 set on the first frame;
//!    each frame payload of an incoming message with RSV1 goes through
//!    [`decompress`](PerMessageDeflate::decompress) before UTF-8 validation, under the message
//!    size limit.
//!
//! 3. **Broadcasts.** A message many connections send ([`crate::SharedPayload`], queued with
//!    [`crate::Connection::send_shared`]) is compressed once per distinct set of compressor
//!    parameters (level and window) and the result shared by every connection whose compressor
//!    keeps no context; a per-connection head in front of it goes out as stored blocks (see
//!    [`crate::SharedPayload`]). A connection that keeps context compresses it itself.
//!
//! # Memory
//!
//! Heap bytes held by one zlib state, measured with flate2 1.1.11 on zlib-rs 0.6.8 (a
//! counting global allocator around `Compress::new_with_window_bits` and
//! `Decompress::new_with_window_bits` in a scratch program):
//!
//! | state | 15-bit window | 9-bit window |
//! |---|---|---|
//! | compressor (any level) | 380 032 bytes (371 KiB) | 251 008 bytes (245 KiB) |
//! | decompressor | 47 552 bytes (46 KiB) | 47 552 bytes (46 KiB) |
//!
//! zlib-rs always allocates a 64 Ki-entry hash table (128 KiB) and a 32 KiB inflate window,
//! and flate2 has no `memLevel` knob, so shrinking windows saves little; not keeping the state
//! between messages saves all of it. Each direction's state is created on the first message
//! that needs it and dropped after every message when that direction has no context takeover,
//! so with the defaults (no context takeover both ways) an idle connection holds no zlib state
//! at all. With context takeover in both directions a connection that has sent and received a
//! compressed message holds about 417 KiB. When a compressor only lives for one message, its
//! window is cut down to what the message needs (`2^w >= len + 262`, at least 9 bits). See
//! [`DeflateConfig`] for the defaults and the reasons for them.
//!
//! # 8-bit windows
//!
//! RFC 7692 allows window sizes from 8 to 15 bits, but zlib cannot produce a raw deflate
//! stream with an 8-bit window: zlib ≥ 1.2.9 and zlib-rs reject `windowBits = -8` for
//! raw deflate (zlib-rs' `deflateInit2` returns `Z_STREAM_ERROR`; only the zlib-wrapped format
//! silently turns 8 into 9), and flate2's `new_with_window_bits` panics outside `9..=15` for
//! both directions. We still accept the parameter in every position:
//!
//! - When *our* compressor would have to use 8 bits (a client asked our server for
//!   `server_max_window_bits=8`, a server answered our client with `client_max_window_bits=8`,
//!   or our own config says 8), we send every message uncompressed, which RFC 7692 allows per
//!   message (RSV1 clear): [`PerMessageDeflate::should_compress`] returns `false`. Called
//!   anyway, [`PerMessageDeflate::compress`] emits stored blocks, which have no
//!   back-references and so are valid under any window.
//! - When the *peer* compresses with 8 bits, we inflate with 9: an inflater with a larger
//!   window reads any stream made for a smaller one (and old zlib versions that accepted -8
//!   really compressed with 9).
//!
//! For every other size we ask for exactly the peer's window. zlib-rs allocates a full
//! 32 KiB inflate window whatever the size asked for, and so neither saves memory with a small
//! window nor rejects a peer that refers back further than it agreed to; such a stream is
//! simply read.
//!
//! # Limits of the implementation
//!
//! A peer may end a message with a `BFINAL` block (RFC 7692 §7.2.3.4). We then start a new
//! deflate stream for what follows, without the old window: with context takeover, a later
//! message that refers back into earlier messages fails as corrupt data rather than being
//! misread. Implementations that end messages with zlib's sync flush never send one.

mod codec;
mod config;
mod negotiate;

pub use codec::PerMessageDeflate;
pub(crate) use codec::{BroadcastCompression, CompressKey, compress_fresh, stored_blocks};
pub use config::{DeflateConfig, DeflateParams};
