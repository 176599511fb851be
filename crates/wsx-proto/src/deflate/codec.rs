//! Compressing and inflating messages once permessage-deflate is negotiated (RFC 7692 §7.2).
//!
//! This is the data step of the deflate flow: the connection asks
//! [`PerMessageDeflate::should_compress`] for each outgoing data message and, if so, sends the
//! output of [`PerMessageDeflate::compress`] with RSV1 set; it feeds each frame payload of an
//! incoming message with RSV1 set to [`PerMessageDeflate::decompress`].

use bytes::{Bytes, BytesMut};
use flate2::{Compress, Decompress, FlushCompress, FlushDecompress, Status};

use super::config::{DeflateConfig, DeflateParams, clamp_bits};
use crate::error::Error;
use crate::pool;
use crate::role::Role;

/// The empty stored block a sync flush ends with: stripped from every compressed message and
/// put back before inflating it (RFC 7692 §7.2.1, §7.2.2).
const SYNC_TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// The lowest level a payload compressed once for many connections is compressed at
/// ([`PerMessageDeflate::broadcast_compression`]): its cost is shared, so it takes zlib's
/// default level rather than the cheap per-connection default of 2 (a higher configured level
/// is kept).
const SHARED_MIN_LEVEL: u32 = 6;

/// The smallest window flate2 (and zlib's raw deflate) supports.
const MIN_ZLIB_WINDOW_BITS: u8 = 9;

/// zlib's `MIN_LOOKAHEAD`: a window of `2^w` bytes reaches back at most `2^w - 262` bytes.
const MIN_LOOKAHEAD: usize = 262;

/// The first output chunk when inflating is this many times the input, within the bounds below.
const INFLATE_RATIO_GUESS: usize = 4;
/// Smallest output chunk when inflating.
const MIN_CHUNK: usize = 256;
/// Largest output chunk when compressing or inflating.
const MAX_CHUNK: usize = 64 * 1024;

/// permessage-deflate state for one connection: a compressor for what we send and a
/// decompressor for what we receive, each created on first use and, when that direction does
/// not keep its context between messages, dropped again after every message.
#[derive(Debug)]
pub struct PerMessageDeflate {
    /// Compression level, 0..=9.
    level: u32,
    /// Messages shorter than this are sent uncompressed.
    min_size: usize,
    /// Our LZ77 window (8..=15); 8 means we never compress (see the module docs).
    compress_bits: u8,
    /// The window we inflate with: the peer's, but at least 9.
    decompress_bits: u8,
    /// Reset (drop) our compressor after every message.
    reset_compressor: bool,
    /// Reset (drop) our decompressor after every message: the peer does not take over context.
    reset_decompressor: bool,
    compressor: Option<pool::Compressor>,
    decompressor: Option<pool::Decompressor>,
    /// A compressed message is being received (its final frame has not come yet).
    inflating: bool,
    /// Bytes inflated so far for the message being received.
    inflated: usize,
}

impl PerMessageDeflate {
    /// Set up the codec for one connection from the negotiated `params` and the user's
    /// `config` (which gives the level and `min_size`, and caps our window and may reset our
    /// compressor even when the peer did not ask).
    ///
    /// Allocates no zlib state: that happens on the first message in each direction.
    pub fn new(role: Role, params: DeflateParams, config: &DeflateConfig) -> Self {
        let (ours, theirs, our_cap, reset_ours, reset_theirs) = match role {
            Role::Server => (
                params.server_max_window_bits,
                params.client_max_window_bits,
                config.server_bits(),
                params.server_no_context_takeover || config.server_no_context_takeover,
                params.client_no_context_takeover,
            ),
            Role::Client => (
                params.client_max_window_bits,
                params.server_max_window_bits,
                config.client_bits(),
                params.client_no_context_takeover || config.client_no_context_takeover,
                params.server_no_context_takeover,
            ),
        };
        PerMessageDeflate {
            level: config.level_clamped(),
            min_size: config.min_size,
            compress_bits: clamp_bits(ours).min(our_cap),
            decompress_bits: clamp_bits(theirs).max(MIN_ZLIB_WINDOW_BITS),
            reset_compressor: reset_ours,
            reset_decompressor: reset_theirs,
            compressor: None,
            decompressor: None,
            inflating: false,
            inflated: 0,
        }
    }

    /// Whether to compress an outgoing message of `payload_len` bytes (and set RSV1).
    ///
    /// False for messages under `min_size`, at level 0, and always when our window would have
    /// to be 8 bits, which zlib cannot produce (see the [module docs](super)).
    pub fn should_compress(&self, payload_len: usize) -> bool {
        self.level > 0 && self.compress_bits >= MIN_ZLIB_WINDOW_BITS && payload_len >= self.min_size
    }

    /// Compress one whole message and append it to `dst`, without the `00 00 ff ff` tail of
    /// the sync flush. An empty payload gives the single byte `0x00`.
    ///
    /// Our compressor is created if needed and dropped afterwards when we do not keep context.
    /// Called although [`should_compress`](Self::should_compress) said no because of an 8-bit
    /// window, it still produces a valid message, made of stored blocks.
    ///
    /// # Errors
    ///
    /// [`Error::Deflate`] if zlib fails; `dst` is then left as it was and the context is lost.
    pub fn compress(&mut self, payload: &[u8], dst: &mut BytesMut) -> Result<(), Error> {
        let start = dst.len();
        let result = self.compress_message(payload, dst, start);
        if result.is_err() {
            dst.truncate(start);
            self.compressor = None;
        } else if self.reset_compressor {
            self.give_back_compressor();
        }
        result
    }

    fn compress_message(
        &mut self,
        payload: &[u8],
        dst: &mut BytesMut,
        start: usize,
    ) -> Result<(), Error> {
        let (level, bits) = self.compressor_settings(payload.len());
        let compressor = &mut self
            .compressor
            .get_or_insert_with(|| pool::compressor(level, bits))
            .stream;
        deflate_message(compressor, payload, dst, start)
    }

    /// How a message that many connections send (a broadcast) is compressed on
    /// this one: not at all (what [`should_compress`](Self::should_compress) says), once for
    /// every connection with the same [`CompressKey`] when our compressor keeps no context
    /// (each message is then a fresh deflate stream, the same bytes whoever sends it), or by
    /// this connection alone when it keeps context.
    ///
    /// `len` is the whole message's length (`min_size` applies to it), `shared_len` that of
    /// the part compressed once (which decides the window).
    pub(crate) fn broadcast_compression(
        &self,
        len: usize,
        shared_len: usize,
    ) -> BroadcastCompression {
        if !self.should_compress(len) {
            BroadcastCompression::None
        } else if self.reset_compressor {
            let (level, bits) = self.compressor_settings(shared_len);
            // Compressed once for many connections: a better ratio is worth the CPU.
            let level = level.max(SHARED_MIN_LEVEL);
            BroadcastCompression::Shared(CompressKey { level, bits })
        } else {
            BroadcastCompression::Own
        }
    }

    /// Level and window for a new compressor for a message of `len` bytes.
    fn compressor_settings(&self, len: usize) -> (u32, u8) {
        if self.compress_bits < MIN_ZLIB_WINDOW_BITS {
            // An 8-bit window cannot be had from zlib; stored blocks hold no back-references,
            // so they are valid under any window.
            return (0, MIN_ZLIB_WINDOW_BITS);
        }
        if !self.reset_compressor {
            return (self.level, self.compress_bits);
        }
        // The context dies with the message: a window larger than the message buys nothing
        // but allocation and zeroing.
        let need = len.saturating_add(MIN_LOOKAHEAD);
        let mut bits = MIN_ZLIB_WINDOW_BITS;
        while bits < self.compress_bits && (1_usize << bits) < need {
            bits += 1;
        }
        (self.level, bits)
    }

    /// Inflate one frame payload of a compressed message, appending to `dst`.
    ///
    /// Call it for each frame of the message in order, with `fin` set on the last one; it then
    /// also inflates the `00 00 ff ff` tail and, when the peer does not keep context, drops the
    /// decompressor. `limit` is the largest size the whole inflated message may have: bytes are
    /// counted from the message's first frame, whatever `dst` held before. `dst` grows in
    /// chunks, never to more than what it held plus `limit` bytes for this message (capacity
    /// grows geometrically but is capped there too), so a small deflate bomb fails after
    /// allocating about `limit`.
    ///
    /// # Errors
    ///
    /// [`Error::MessageTooBig`] as soon as the message would inflate to more than `limit`
    /// bytes; [`Error::Inflate`] for corrupt data. After an error the decompressor is dropped
    /// (the connection is to be failed).
    pub fn decompress(
        &mut self,
        input: &[u8],
        fin: bool,
        dst: &mut BytesMut,
        limit: usize,
    ) -> Result<(), Error> {
        self.inflating = true;
        let mut result = self.inflate(input, dst, limit);
        if fin && result.is_ok() {
            result = self.inflate(&SYNC_TAIL, dst, limit);
        }
        if result.is_err() || fin {
            self.inflating = false;
            self.inflated = 0;
            if result.is_err() {
                self.decompressor = None;
            } else if self.reset_decompressor {
                self.give_back_decompressor();
            }
        }
        result
    }

    fn inflate(&mut self, mut input: &[u8], dst: &mut BytesMut, limit: usize) -> Result<(), Error> {
        let bits = self.decompress_bits;
        let decompressor = &mut self
            .decompressor
            .get_or_insert_with(|| pool::decompressor(bits))
            .stream;
        let mut chunk = input
            .len()
            .saturating_mul(INFLATE_RATIO_GUESS)
            .clamp(MIN_CHUNK, MAX_CHUNK);
        loop {
            let allowance = limit.saturating_sub(self.inflated);
            let (in_before, out_before) = (decompressor.total_in(), decompressor.total_out());
            let (status, out_len) = if allowance == 0 {
                // At the limit: one more byte of output is one too many. Probe for it without
                // growing `dst`.
                let mut probe = [0_u8; 1];
                let status = decompressor.decompress(input, &mut probe, FlushDecompress::None);
                (status, probe.len())
            } else {
                let want = chunk.min(allowance);
                reserve_capped(dst, want, allowance);
                let pos = dst.len();
                dst.resize(pos.saturating_add(want), 0);
                let out = dst.get_mut(pos..).unwrap_or_default();
                let status = decompressor.decompress(input, out, FlushDecompress::None);
                let produced = delta(out_before, decompressor.total_out());
                dst.truncate(pos.saturating_add(produced));
                (status, want)
            };
            let consumed = delta(in_before, decompressor.total_in());
            let produced = delta(out_before, decompressor.total_out());
            let status = status.map_err(|e| Error::Inflate(e.to_string()))?;
            if allowance == 0 && produced > 0 {
                return Err(Error::MessageTooBig {
                    size: u64::try_from(self.inflated.saturating_add(produced)).unwrap_or(u64::MAX),
                    limit,
                });
            }
            self.inflated = self.inflated.saturating_add(produced);
            input = input.get(consumed..).unwrap_or_default();
            if status == Status::StreamEnd {
                // The peer ended the deflate stream with a BFINAL block (RFC 7692 §7.2.3.4).
                // What follows (at least our appended tail) starts a new stream; the old
                // window is gone, so a later back-reference into it fails as corrupt data.
                *decompressor = Decompress::new_with_window_bits(false, bits);
                if input.is_empty() {
                    return Ok(());
                }
                continue;
            }
            if produced == out_len {
                // The output filled up: more may be pending even with no input left.
                chunk = chunk.saturating_mul(2).min(MAX_CHUNK);
                continue;
            }
            if input.is_empty() {
                return Ok(());
            }
            if consumed == 0 && produced == 0 {
                return Err(Error::Inflate("the decompressor made no progress".into()));
            }
        }
    }

    /// Drop the zlib state that no message in progress needs, to save memory on an idle
    /// connection.
    ///
    /// The compressor is always dropped, even when we keep context: the next message then
    /// starts with an empty window, which the peer cannot tell from any other message (only
    /// the ratio suffers). The decompressor is dropped only when the peer resets its context
    /// after every message and no compressed message is being received; otherwise the peer's
    /// next message may refer back into it. With the default no context takeover both ways,
    /// both are already dropped after every message and this does nothing.
    pub fn release_idle(&mut self) {
        self.give_back_compressor();
        if self.reset_decompressor && !self.inflating {
            self.give_back_decompressor();
        }
    }

    /// Hand our compressor (if any) to this thread's stream pool.
    fn give_back_compressor(&mut self) {
        if let Some(compressor) = self.compressor.take() {
            pool::give_compressor(compressor);
        }
    }

    /// Hand our decompressor (if any) to this thread's stream pool.
    fn give_back_decompressor(&mut self) {
        if let Some(decompressor) = self.decompressor.take() {
            pool::give_decompressor(decompressor);
        }
    }
}

/// The parameters of a fresh compressor, which with the input decide its output: connections
/// whose compressors share them produce the same bytes for the same message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CompressKey {
    /// Compression level, 1..=9.
    pub(crate) level: u32,
    /// LZ77 window, 9..=15.
    pub(crate) bits: u8,
}

/// See [`PerMessageDeflate::broadcast_compression`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BroadcastCompression {
    /// Sent uncompressed.
    None,
    /// Compressed once by a fresh compressor with these parameters, and the result shared.
    Shared(CompressKey),
    /// Compressed by this connection's own compressor (it keeps context).
    Own,
}

/// Compress `payload` as one message with a fresh compressor of `key`, without the sync
/// flush's `00 00 ff ff`: the bytes every connection whose
/// [`broadcast_compression`](PerMessageDeflate::broadcast_compression) gives `key` would send.
pub(crate) fn compress_fresh(key: CompressKey, payload: &[u8]) -> Result<Bytes, Error> {
    let mut compressor = pool::compressor(key.level, key.bits);
    let mut dst = BytesMut::new();
    let result = deflate_message(&mut compressor.stream, payload, &mut dst, 0);
    if result.is_ok() {
        pool::give_compressor(compressor);
    }
    result.map(|()| dst.freeze())
}

/// Compress `payload` with a sync flush, appending to `dst` (whose first `start` bytes are not
/// ours), and strip the flush's `00 00 ff ff` (an empty result becomes the single byte `0x00`).
fn deflate_message(
    compressor: &mut Compress,
    payload: &[u8],
    dst: &mut BytesMut,
    start: usize,
) -> Result<(), Error> {
    let mut input = payload;
    let mut chunk = (payload.len() / 2).clamp(MIN_CHUNK, MAX_CHUNK);
    loop {
        let pos = dst.len();
        dst.resize(pos.saturating_add(chunk), 0);
        let (in_before, out_before) = (compressor.total_in(), compressor.total_out());
        let status = compressor.compress(
            input,
            dst.get_mut(pos..).unwrap_or_default(),
            FlushCompress::Sync,
        );
        let consumed = delta(in_before, compressor.total_in());
        let produced = delta(out_before, compressor.total_out());
        dst.truncate(pos.saturating_add(produced));
        status.map_err(|e| Error::Deflate(e.to_string()))?;
        input = input.get(consumed..).unwrap_or_default();
        // A sync flush is complete once zlib returns with output space left over.
        if input.is_empty() && produced < chunk {
            break;
        }
        if consumed == 0 && produced == 0 {
            return Err(Error::Deflate("the compressor made no progress".into()));
        }
        chunk = chunk.saturating_mul(2).min(MAX_CHUNK);
    }
    let out = dst.get(start..).unwrap_or_default();
    if out.ends_with(&SYNC_TAIL) {
        dst.truncate(dst.len().saturating_sub(SYNC_TAIL.len()));
    } else if !out.is_empty() {
        return Err(Error::Deflate(
            "the output does not end with a sync flush".into(),
        ));
    }
    if dst.len() == start {
        // Nothing new to say (an empty payload): one empty stored block header. With the
        // tail the receiver appends, `00 00 00 ff ff`, an empty stored block.
        dst.extend_from_slice(&[0x00]);
    }
    Ok(())
}

/// Append `data` to `dst` as non-final stored deflate blocks (RFC 1951 §3.2.4), each ending on
/// a byte boundary. Put in front of a compressed message (which starts a new block on a byte
/// boundary) it makes one valid message whose inflated form starts with `data`: a
/// per-recipient head needs no compressor, and stored blocks hold no back-references, so they
/// are valid under any window.
pub(crate) fn stored_blocks(data: &[u8], dst: &mut BytesMut) {
    for block in data.chunks(usize::from(u16::MAX)) {
        let len = u16::try_from(block.len()).unwrap_or(u16::MAX);
        // BFINAL 0, BTYPE 00, then padding to the byte boundary: one zero byte.
        dst.extend_from_slice(&[0x00]);
        dst.extend_from_slice(&len.to_le_bytes());
        dst.extend_from_slice(&(!len).to_le_bytes());
        dst.extend_from_slice(block);
    }
}

/// Bytes between two of zlib's running totals (bounded by a slice length, so it fits).
fn delta(before: u64, after: u64) -> usize {
    usize::try_from(after.saturating_sub(before)).unwrap_or(usize::MAX)
}

/// Make room for `want` more bytes in `dst`, growing geometrically like `Vec` but never to
/// more than `cap` bytes beyond its current length, so inflating stays close to the limit.
fn reserve_capped(dst: &mut BytesMut, want: usize, cap: usize) {
    let len = dst.len();
    if dst.capacity().saturating_sub(len) >= want {
        return;
    }
    let needed = len.saturating_add(want);
    let doubled = dst.capacity().saturating_mul(2);
    let target = needed.max(doubled.min(len.saturating_add(cap)));
    if target >= doubled {
        // What `BytesMut::reserve` would allocate anyway (it grows to at least double).
        dst.reserve(target.saturating_sub(len));
    } else {
        // Doubling would overshoot the cap: allocate the exact target and move the data over.
        let mut grown = BytesMut::with_capacity(target);
        grown.extend_from_slice(dst);
        *dst = grown;
    }
}

#[cfg(test)]
mod tests {
    use flate2::{Compress, Compression};

    use super::*;
    use proptest::prelude::*;

    fn params(snct: bool, cnct: bool, sbits: u8, cbits: u8) -> DeflateParams {
        DeflateParams {
            server_no_context_takeover: snct,
            client_no_context_takeover: cnct,
            server_max_window_bits: sbits,
            client_max_window_bits: cbits,
        }
    }

    /// A config that leaves everything to the params and compresses every message.
    fn eager() -> DeflateConfig {
        DeflateConfig {
            min_size: 0,
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            ..DeflateConfig::default()
        }
    }

    /// A server and a client codec for the same params.
    fn pair(p: DeflateParams, config: &DeflateConfig) -> (PerMessageDeflate, PerMessageDeflate) {
        (
            PerMessageDeflate::new(Role::Server, p, config),
            PerMessageDeflate::new(Role::Client, p, config),
        )
    }

    /// Send `msg` from `tx` to `rx`, split into frames of `frame` bytes, and return what `rx`
    /// got.
    fn transfer(
        tx: &mut PerMessageDeflate,
        rx: &mut PerMessageDeflate,
        msg: &[u8],
        frame: usize,
    ) -> Vec<u8> {
        let mut wire = BytesMut::new();
        tx.compress(msg, &mut wire).unwrap();
        let mut out = BytesMut::new();
        let frames: Vec<&[u8]> = if wire.is_empty() {
            vec![&[]]
        } else {
            wire.chunks(frame.max(1)).collect()
        };
        let last = frames.len() - 1;
        for (i, f) in frames.iter().enumerate() {
            rx.decompress(f, i == last, &mut out, usize::MAX).unwrap();
        }
        out.to_vec()
    }

    fn inflate_all(
        rx: &mut PerMessageDeflate,
        wire: &[u8],
        limit: usize,
    ) -> Result<Vec<u8>, Error> {
        let mut out = BytesMut::new();
        rx.decompress(wire, true, &mut out, limit)?;
        Ok(out.to_vec())
    }

    #[test]
    fn rfc7692_hello_examples() {
        let p = DeflateParams::default();
        let (_, mut client) = pair(p, &eager());
        // §7.2.3.1: "Hello" in one message, and split over two frames.
        let hello = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        assert_eq!(inflate_all(&mut client, &hello, 100).unwrap(), b"Hello");
        let mut out = BytesMut::new();
        client
            .decompress(&hello[..3], false, &mut out, 100)
            .unwrap();
        client.decompress(&hello[3..], true, &mut out, 100).unwrap();
        assert_eq!(&out[..], b"Hello");
        // §7.2.3.2: the second "Hello" with context takeover refers back to the first.
        let (_, mut client) = pair(p, &eager());
        assert_eq!(inflate_all(&mut client, &hello, 100).unwrap(), b"Hello");
        assert_eq!(
            inflate_all(&mut client, &[0xf2, 0x00, 0x11, 0x00, 0x00], 100).unwrap(),
            b"Hello"
        );
        // §7.2.3.3: "Hello" in a stored block.
        let (_, mut client) = pair(p, &eager());
        let stored = [
            0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
        ];
        assert_eq!(inflate_all(&mut client, &stored, 100).unwrap(), b"Hello");
        // §7.2.3.5: two deflate blocks in one message.
        let (_, mut client) = pair(p, &eager());
        let two = [
            0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00,
        ];
        assert_eq!(inflate_all(&mut client, &two, 100).unwrap(), b"Hello");
        // §7.2.3.4: a block with BFINAL set; the next message starts a new stream.
        let (_, mut client) = pair(p, &eager());
        let fin = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
        assert_eq!(inflate_all(&mut client, &fin, 100).unwrap(), b"Hello");
        assert_eq!(inflate_all(&mut client, &hello, 100).unwrap(), b"Hello");
    }

    #[test]
    fn compressed_hello_is_raw_deflate() {
        let (mut server, _) = pair(DeflateParams::default(), &eager());
        let mut wire = BytesMut::new();
        server.compress(b"Hello", &mut wire).unwrap();
        // Any raw inflater (here flate2's own, not our codec) reads it once the tail is back.
        let mut raw = Decompress::new(false);
        let mut data = wire.to_vec();
        data.extend_from_slice(&SYNC_TAIL);
        let mut out = vec![0; 64];
        raw.decompress(&data, &mut out, FlushDecompress::Sync)
            .unwrap();
        assert_eq!(&out[..raw.total_out() as usize], b"Hello");
        assert!(!wire.ends_with(&SYNC_TAIL));
    }

    #[test]
    fn empty_message() {
        for reset in [false, true] {
            let p = params(reset, reset, 15, 15);
            let (mut server, mut client) = pair(p, &eager());
            for _ in 0..3 {
                let mut wire = BytesMut::new();
                server.compress(b"", &mut wire).unwrap();
                assert!(!wire.is_empty());
                assert_eq!(inflate_all(&mut client, &wire, 0).unwrap(), b"");
                assert_eq!(transfer(&mut server, &mut client, b"abcabc", 1), b"abcabc");
            }
        }
        // RFC 7692 §7.2.3.6: the single 0x00 byte, and an entirely empty payload.
        let (_, mut client) = pair(DeflateParams::default(), &eager());
        assert_eq!(inflate_all(&mut client, &[0x00], 10).unwrap(), b"");
        assert_eq!(inflate_all(&mut client, &[], 10).unwrap(), b"");
    }

    #[test]
    fn all_takeover_combinations() {
        let messages: Vec<Vec<u8>> = vec![
            b"hello hello hello hello".to_vec(),
            b"".to_vec(),
            br#"{"type":"message","user":"alice","text":"hi there"}"#.to_vec(),
            (0..100_000_u32).map(|i| (i % 251) as u8).collect(),
            br#"{"type":"message","user":"alice","text":"hi there"}"#.to_vec(),
            vec![0; 300_000],
            b"x".to_vec(),
        ];
        for snct in [false, true] {
            for cnct in [false, true] {
                for (sbits, cbits) in [(15, 15), (9, 12), (10, 9), (8, 8), (15, 8)] {
                    let p = params(snct, cnct, sbits, cbits);
                    let (mut server, mut client) = pair(p, &eager());
                    for frame in [usize::MAX, 7] {
                        for m in &messages {
                            assert_eq!(&transfer(&mut server, &mut client, m, frame), m, "{p:?}");
                            assert_eq!(&transfer(&mut client, &mut server, m, frame), m, "{p:?}");
                        }
                    }
                    assert_eq!(server.compressor.is_some(), !snct);
                    assert_eq!(client.compressor.is_some(), !cnct);
                    assert_eq!(server.decompressor.is_some(), !cnct);
                    assert_eq!(client.decompressor.is_some(), !snct);
                }
            }
        }
    }

    #[test]
    fn context_takeover_shrinks_repeats() {
        let msg = br#"{"type":"message","room":"general","user":"alice","text":"hello everyone"}"#;
        let sizes = |reset: bool| {
            let (mut server, _) = pair(params(reset, reset, 15, 15), &eager());
            (0..3)
                .map(|_| {
                    let mut wire = BytesMut::new();
                    server.compress(msg, &mut wire).unwrap();
                    wire.len()
                })
                .collect::<Vec<_>>()
        };
        let kept = sizes(false);
        let reset = sizes(true);
        assert!(kept[1] < reset[1] / 3, "{kept:?} vs {reset:?}");
        assert_eq!(reset[0], reset[1]);
    }

    #[test]
    fn window_8_sends_uncompressed() {
        let config = eager();
        // Server told to use 8 bits: it never compresses; the client still may.
        let (server, client) = pair(params(false, false, 8, 15), &config);
        assert!(!server.should_compress(1000));
        assert!(client.should_compress(1000));
        let (server, client) = pair(params(false, false, 15, 8), &config);
        assert!(server.should_compress(1000));
        assert!(!client.should_compress(1000));
        // Our config's own window of 8 caps what the params allow.
        let config8 = DeflateConfig {
            server_max_window_bits: 8,
            ..eager()
        };
        let server = PerMessageDeflate::new(Role::Server, DeflateParams::default(), &config8);
        assert!(!server.should_compress(1000));
        // Forced anyway, compress emits stored blocks, readable with an 8-bit window.
        let (mut server, mut client) = pair(params(false, false, 8, 8), &config);
        let msg: Vec<u8> = b"abcdefgh".repeat(1000);
        let mut wire = BytesMut::new();
        server.compress(&msg, &mut wire).unwrap();
        assert!(wire.len() > msg.len());
        assert_eq!(inflate_all(&mut client, &wire, usize::MAX).unwrap(), msg);
        // zlib-rs itself can inflate an 8-bit raw stream; flate2 only allows 9..=15, and 9
        // reads what an 8-bit compressor writes.
        assert_eq!(client.decompress_bits, 9);
    }

    #[test]
    fn growth_is_capped() {
        let mut dst = BytesMut::with_capacity(1000);
        dst.extend_from_slice(&[1; 1000]);
        reserve_capped(&mut dst, 500, 600);
        assert_eq!(dst.capacity(), 1600);
        assert_eq!(&dst[..], &[1; 1000][..]);
        reserve_capped(&mut dst, 100, 600);
        assert_eq!(dst.capacity(), 1600);
        let mut dst = BytesMut::new();
        reserve_capped(&mut dst, 300, usize::MAX);
        assert!(dst.capacity() >= 300);
        dst.resize(300, 0);
        reserve_capped(&mut dst, 300, usize::MAX);
        assert!(dst.capacity() >= 600);
    }

    #[test]
    fn codec_is_send() {
        fn send<T: Send>() {}
        send::<PerMessageDeflate>();
    }

    #[test]
    fn should_compress_policy() {
        let config = DeflateConfig {
            min_size: 100,
            ..DeflateConfig::default()
        };
        let (server, _) = pair(DeflateParams::default(), &config);
        assert!(!server.should_compress(0));
        assert!(!server.should_compress(99));
        assert!(server.should_compress(100));
        let (server, _) = pair(
            DeflateParams::default(),
            &DeflateConfig { level: 0, ..config },
        );
        assert!(!server.should_compress(1000));
    }

    #[test]
    fn bomb_fails_at_limit() {
        // 100 MiB of zeros compress to ~100 KiB; inflating must stop at the 1 MiB limit
        // without allocating much more.
        let zeros = vec![0_u8; 1 << 20];
        let mut c = Compress::new_with_window_bits(Compression::new(9), false, 15);
        let mut bomb = Vec::with_capacity(200 << 10);
        for _ in 0..100 {
            c.compress_vec(&zeros, &mut bomb, FlushCompress::None)
                .unwrap();
            bomb.reserve(64 << 10);
        }
        c.compress_vec(&[], &mut bomb, FlushCompress::Sync).unwrap();
        assert!(bomb.len() < 200 << 10, "{}", bomb.len());
        let limit = 1 << 20;
        for frame in [bomb.len(), 10 << 10] {
            let (_, mut client) = pair(DeflateParams::default(), &eager());
            let mut dst = BytesMut::new();
            let mut result = Ok(());
            for (i, f) in bomb.chunks(frame).enumerate() {
                result = client.decompress(f, (i + 1) * frame >= bomb.len(), &mut dst, limit);
                if result.is_err() {
                    break;
                }
            }
            assert_eq!(
                result,
                Err(Error::MessageTooBig {
                    size: limit as u64 + 1,
                    limit
                })
            );
            assert_eq!(dst.len(), limit);
            assert!(dst.capacity() < 2 << 20, "capacity {}", dst.capacity());
            assert!(client.decompressor.is_none());
        }
        // Exactly at the limit is fine; a byte less is not.
        let msg = vec![7_u8; 5000];
        let (mut server, mut client) = pair(DeflateParams::default(), &eager());
        let mut wire = BytesMut::new();
        server.compress(&msg, &mut wire).unwrap();
        assert_eq!(inflate_all(&mut client, &wire, 5000).unwrap(), msg);
        let (_, mut client) = pair(DeflateParams::default(), &eager());
        assert_eq!(
            inflate_all(&mut client, &wire, 4999),
            Err(Error::MessageTooBig {
                size: 5000,
                limit: 4999
            })
        );
    }

    #[test]
    fn limit_counts_the_message_not_dst() {
        let (mut server, mut client) = pair(DeflateParams::default(), &eager());
        let mut dst = BytesMut::from(&[1_u8; 1000][..]);
        let mut wire = BytesMut::new();
        server.compress(&[2; 500], &mut wire).unwrap();
        client.decompress(&wire, true, &mut dst, 500).unwrap();
        assert_eq!(dst.len(), 1500);
        // And the count starts over with the next message.
        let mut wire = BytesMut::new();
        server.compress(&[3; 500], &mut wire).unwrap();
        client.decompress(&wire, true, &mut dst, 500).unwrap();
        assert_eq!(dst.len(), 2000);
    }

    #[test]
    fn corrupt_input() {
        let (_, mut client) = pair(DeflateParams::default(), &eager());
        // BTYPE 11 is reserved.
        assert!(matches!(
            inflate_all(&mut client, &[0xff, 0xff, 0xff], 100),
            Err(Error::Inflate(_))
        ));
        // A stored block whose length check fails.
        let (_, mut client) = pair(DeflateParams::default(), &eager());
        assert!(matches!(
            inflate_all(&mut client, &[0x00, 0x05, 0x00, 0x00, 0x00], 100),
            Err(Error::Inflate(_))
        ));
        // A back-reference with nothing before it.
        let (_, mut client) = pair(DeflateParams::default(), &eager());
        assert!(matches!(
            inflate_all(&mut client, &[0xf2, 0x00, 0x11, 0x00, 0x00], 100),
            Err(Error::Inflate(_))
        ));
        // The decompressor is dropped after an error and a fresh one works again.
        assert!(client.decompressor.is_none());
        assert_eq!(
            inflate_all(
                &mut client,
                &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
                100
            )
            .unwrap(),
            b"Hello"
        );
    }

    #[test]
    fn release_idle_and_lazy_state() {
        let (mut server, mut client) = pair(DeflateParams::default(), &eager());
        assert!(server.compressor.is_none() && server.decompressor.is_none());
        assert_eq!(
            transfer(&mut server, &mut client, b"abcabcabc", 4),
            b"abcabcabc"
        );
        assert!(server.compressor.is_some() && client.decompressor.is_some());
        server.release_idle();
        client.release_idle();
        // Our compressor can go; the decompressor must stay while the peer keeps context.
        assert!(server.compressor.is_none());
        assert!(client.decompressor.is_some());
        assert_eq!(
            transfer(&mut server, &mut client, b"abcabcabc", 4),
            b"abcabcabc"
        );

        let (mut server, mut client) = pair(params(false, true, 15, 15), &eager());
        let mut wire = BytesMut::new();
        client.compress(&[5; 2000], &mut wire).unwrap();
        let mut out = BytesMut::new();
        server
            .decompress(&wire[..1], false, &mut out, usize::MAX)
            .unwrap();
        server.release_idle();
        assert!(server.decompressor.is_some(), "kept mid-message");
        server
            .decompress(&wire[1..], true, &mut out, usize::MAX)
            .unwrap();
        assert_eq!(&out[..], &[5; 2000][..]);
        assert!(server.decompressor.is_none(), "dropped after the message");
    }

    #[test]
    fn per_message_window_follows_size() {
        let (server, _) = pair(params(true, true, 15, 15), &eager());
        assert_eq!(server.compressor_settings(0).1, 9);
        assert_eq!(server.compressor_settings(250).1, 9);
        assert_eq!(server.compressor_settings(251).1, 10);
        assert_eq!(server.compressor_settings(5000).1, 13);
        assert_eq!(server.compressor_settings(1 << 20).1, 15);
        let (server, _) = pair(params(true, true, 11, 15), &eager());
        assert_eq!(server.compressor_settings(1 << 20).1, 11);
        let (server, _) = pair(params(false, false, 12, 15), &eager());
        assert_eq!(server.compressor_settings(0).1, 12);
    }

    /// With the defaults an idle connection holds no zlib state (the sizes it would otherwise
    /// hold are in the module docs).
    #[test]
    fn idle_connection_holds_no_state() {
        let config = DeflateConfig {
            min_size: 0,
            ..DeflateConfig::default()
        };
        let (p, _) = config.server_accept(&[config.client_offer()]).unwrap();
        let mut server = PerMessageDeflate::new(Role::Server, p, &config);
        let mut client = PerMessageDeflate::new(Role::Client, p, &config);
        assert_eq!(
            transfer(&mut server, &mut client, &[1; 10_000], 1000),
            [1; 10_000]
        );
        assert_eq!(
            transfer(&mut client, &mut server, &[1; 10_000], 1000),
            [1; 10_000]
        );
        for codec in [&server, &client] {
            assert!(codec.compressor.is_none() && codec.decompressor.is_none());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn round_trip(
            messages in prop::collection::vec(
                prop_oneof![
                    prop::collection::vec(any::<u8>(), 0..2000),
                    prop::collection::vec(0_u8..4, 0..5000),
                ],
                1..6,
            ),
            snct in any::<bool>(),
            cnct in any::<bool>(),
            sbits in 8_u8..=15,
            cbits in 8_u8..=15,
            level in 0_u32..=9,
            frame in 1_usize..300,
        ) {
            let config = DeflateConfig { level, ..eager() };
            let (mut server, mut client) = pair(params(snct, cnct, sbits, cbits), &config);
            for m in &messages {
                prop_assert_eq!(&transfer(&mut server, &mut client, m, frame), m);
                prop_assert_eq!(&transfer(&mut client, &mut server, m, frame), m);
            }
        }

        #[test]
        fn garbage_never_panics(data in prop::collection::vec(any::<u8>(), 0..500), limit in 0_usize..2000) {
            let (_, mut client) = pair(DeflateParams::default(), &eager());
            let mut dst = BytesMut::new();
            match client.decompress(&data, true, &mut dst, limit) {
                Ok(()) | Err(Error::Inflate(_)) => {}
                Err(Error::MessageTooBig { limit: l, .. }) => prop_assert_eq!(l, limit),
                Err(e) => prop_assert!(false, "unexpected error {e:?}"),
            }
            prop_assert!(dst.len() <= limit);
        }
    }
}
