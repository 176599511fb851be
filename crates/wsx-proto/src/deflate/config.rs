//! The user's permessage-deflate policy ([`DeflateConfig`]) and the outcome of a negotiation
//! ([`DeflateParams`]).
//!
//! A [`DeflateConfig`] goes into the handshake: the client turns it into an offer
//! ([`DeflateConfig::client_offer`]) and checks the server's answer with it
//! ([`DeflateConfig::client_accept`]); the server matches the client's offers against it
//! ([`DeflateConfig::server_accept`]). Both ends come out with the same [`DeflateParams`], which
//! with the config builds the per-connection [`PerMessageDeflate`](super::PerMessageDeflate).

/// Smallest LZ77 window (base-2 logarithm) RFC 7692 allows.
pub(crate) const MIN_WINDOW_BITS: u8 = 8;
/// Largest LZ77 window (base-2 logarithm): 32 KiB, the deflate maximum.
pub(crate) const MAX_WINDOW_BITS: u8 = 15;

/// How to use permessage-deflate (RFC 7692): what to offer or accept, and when to compress.
///
/// Each field reads differently on the two sides of the handshake; the field docs give both.
/// Out-of-range values are clamped when used: `level` to 9 and the window sizes to `8..=15`.
///
/// # Defaults and memory
///
/// [`Default`] suits a server holding thousands of mostly idle chat connections. Measured with
/// the zlib-rs backend of flate2 (the one this crate builds with), one compressor takes
/// 371 KiB with a 15-bit window (245 KiB even at 9 bits: zlib-rs' hash table is a fixed
/// 128 KiB and flate2 offers no `memLevel` knob) and one decompressor 46 KiB whatever its window.
/// Keeping both contexts between messages would therefore cost about 417 KiB per connection,
/// 4 GiB for 10 000 connections. So the default asks for no context takeover in both
/// directions: each compressor and decompressor lives only while a message is being processed
/// and an idle connection holds no zlib state at all. The price is a worse ratio on small
/// messages (a 117-byte JSON chat message compresses to ~19 bytes with context, to ~106
/// without), which is why messages under `min_size` are not compressed. Allocating a
/// compressor per message costs about 10-20 µs; the window used for a message is cut down to
/// what its length needs, which makes that allocation smaller for small messages.
///
/// | field | default | why |
/// |---|---|---|
/// | `level` | 2 | with zlib-rs, level 1 only uses fixed Huffman codes (a 512-byte JSON message: 205 bytes against 175 for levels 2-9), while 2 reaches level 6's ratio on messages up to 4 KiB at about 2/3 of its CPU time |
/// | `min_size` | 256 | without context, shorter messages shrink by only a few dozen bytes, less than a TCP/TLS packet's overhead, for the cost of setting up a compressor |
/// | window bits | 15 | the best ratio on large messages; only allocated while a message is compressed |
/// | no context takeover | `true` both ways | an idle connection holds no zlib state (see above) |
///
/// A client with few connections, or a server with few long-lived busy ones, gets much better
/// ratios on small messages by setting both `*_no_context_takeover` fields to `false` and
/// lowering `min_size` to 32 or so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeflateConfig {
    /// Compression level, 0 (store only) to 9 (best). Level 0 means messages are never
    /// compressed (we still negotiate, and inflate what the peer sends).
    pub level: u32,
    /// Messages shorter than this many bytes are sent uncompressed (RFC 7692 lets the sender
    /// choose per message).
    pub min_size: usize,
    /// As a server: the largest LZ77 window (base-2 log, 8 to 15) we compress with; we announce
    /// it when it is under 15 and lower it when the client asks for less. As a client: the
    /// window we ask the server to use, sent as `server_max_window_bits` when under 15.
    pub server_max_window_bits: u8,
    /// As a client: the window (8 to 15) we compress with; we always offer
    /// `client_max_window_bits` (with this value when under 15) so the server may lower it.
    /// As a server: the largest window we allow the client; under 15, offers that do not let us
    /// limit the client's window are declined.
    pub client_max_window_bits: u8,
    /// As a server: reset our compressor after every message and tell the client so (it may
    /// then drop its decompressor between messages). As a client: ask the server for that.
    pub server_no_context_takeover: bool,
    /// As a client: reset our compressor after every message and say so in the offer. As a
    /// server: ask the client to do that, so our decompressor need not be kept between
    /// messages.
    pub client_no_context_takeover: bool,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        DeflateConfig {
            level: 2,
            min_size: 256,
            server_max_window_bits: MAX_WINDOW_BITS,
            client_max_window_bits: MAX_WINDOW_BITS,
            server_no_context_takeover: true,
            client_no_context_takeover: true,
        }
    }
}

impl DeflateConfig {
    /// The compression level, clamped to `0..=9`.
    pub(crate) fn level_clamped(&self) -> u32 {
        self.level.min(9)
    }

    /// `server_max_window_bits`, clamped to `8..=15`.
    pub(crate) fn server_bits(&self) -> u8 {
        clamp_bits(self.server_max_window_bits)
    }

    /// `client_max_window_bits`, clamped to `8..=15`.
    pub(crate) fn client_bits(&self) -> u8 {
        clamp_bits(self.client_max_window_bits)
    }
}

/// Clamp window bits into the range RFC 7692 allows.
pub(crate) fn clamp_bits(bits: u8) -> u8 {
    bits.clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS)
}

/// The parameters both ends agreed on in the handshake, seen the same way from both sides.
///
/// "Server" and "client" name the direction: `server_*` applies to what the server compresses
/// (and the client decompresses), `client_*` to the other direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeflateParams {
    /// The server resets its compressor after every message, so the client may reset its
    /// decompressor too.
    pub server_no_context_takeover: bool,
    /// The client resets its compressor after every message, so the server may reset its
    /// decompressor too.
    pub client_no_context_takeover: bool,
    /// Largest LZ77 window (base-2 log, 8 to 15) the server compresses with.
    pub server_max_window_bits: u8,
    /// Largest LZ77 window (base-2 log, 8 to 15) the client compresses with.
    pub client_max_window_bits: u8,
}

impl Default for DeflateParams {
    /// What a bare `permessage-deflate` offer accepted as it is means: full 15-bit windows and
    /// context takeover in both directions.
    fn default() -> Self {
        DeflateParams {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: MAX_WINDOW_BITS,
            client_max_window_bits: MAX_WINDOW_BITS,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamping() {
        let c = DeflateConfig {
            level: 42,
            server_max_window_bits: 3,
            client_max_window_bits: 200,
            ..DeflateConfig::default()
        };
        assert_eq!(c.level_clamped(), 9);
        assert_eq!(c.server_bits(), 8);
        assert_eq!(c.client_bits(), 15);
    }

    #[test]
    fn defaults() {
        let c = DeflateConfig::default();
        assert!((1..=6).contains(&c.level));
        assert!(c.server_no_context_takeover && c.client_no_context_takeover);
        assert_eq!((c.server_bits(), c.client_bits()), (15, 15));
        let p = DeflateParams::default();
        assert_eq!(
            (p.server_max_window_bits, p.client_max_window_bits),
            (15, 15)
        );
    }
}
