//! A small per-thread pool of zlib streams, so that connections that drop their compressor or
//! decompressor after every message (no context takeover, the default) do not pay for setting
//! one up and tearing it down per message.
//!
//! Where it sits: [`super::PerMessageDeflate`] takes a stream from here when a message needs
//! one and gives it back, reset, where it used to drop it. A reset stream is the same as a new
//! one with the same parameters (level and window for a compressor, window for a
//! decompressor), so nothing a peer sees changes. Idle connections still hold no zlib state:
//! the pool is per thread, bounded in count ([`MAX_STREAMS`] of each kind), whatever the number
//! of connections; at the largest window a pooled compressor takes about 370 KiB and a
//! decompressor about 46 KiB, so a thread keeps at most about 1.7 MiB here.

use std::cell::RefCell;

use flate2::{Compress, Compression, Decompress};

/// The most streams of each kind (compressors, decompressors) kept per thread.
pub(crate) const MAX_STREAMS: usize = 4;

/// A compressor with the parameters it was made with (a pooled one is only reused for the
/// same ones).
#[derive(Debug)]
pub(crate) struct Compressor {
    /// The zlib stream.
    pub(crate) stream: Compress,
    level: u32,
    bits: u8,
}

/// A decompressor with its window.
#[derive(Debug)]
pub(crate) struct Decompressor {
    /// The zlib stream.
    pub(crate) stream: Decompress,
    bits: u8,
}

#[derive(Debug, Default)]
struct Pool {
    compressors: Vec<Compressor>,
    decompressors: Vec<Decompressor>,
}

thread_local! {
    static POOL: RefCell<Pool> = const {
        RefCell::new(Pool { compressors: Vec::new(), decompressors: Vec::new() })
    };
}

/// Run `f` on this thread's pool; `None` while the thread is being torn down.
fn with<R>(f: impl FnOnce(&mut Pool) -> R) -> Option<R> {
    POOL.try_with(|p| p.try_borrow_mut().ok().map(|mut p| f(&mut p)))
        .ok()
        .flatten()
}

/// A raw-deflate compressor at `level` with a `bits` window: a pooled one if there is one
/// with these parameters, else a new one.
pub(crate) fn compressor(level: u32, bits: u8) -> Compressor {
    let pooled = with(|p| {
        let i = p
            .compressors
            .iter()
            .position(|c| c.level == level && c.bits == bits)?;
        Some(p.compressors.swap_remove(i))
    })
    .flatten();
    pooled.unwrap_or_else(|| Compressor {
        stream: Compress::new_with_window_bits(Compression::new(level), false, bits),
        level,
        bits,
    })
}

/// A raw-deflate decompressor with a `bits` window, pooled or new.
pub(crate) fn decompressor(bits: u8) -> Decompressor {
    let pooled = with(|p| {
        let i = p.decompressors.iter().position(|d| d.bits == bits)?;
        Some(p.decompressors.swap_remove(i))
    })
    .flatten();
    pooled.unwrap_or_else(|| Decompressor {
        stream: Decompress::new_with_window_bits(false, bits),
        bits,
    })
}

/// Give a compressor back: reset and kept if the pool has room, else dropped.
pub(crate) fn give_compressor(mut compressor: Compressor) {
    compressor.stream.reset();
    with(|p| {
        if p.compressors.len() < MAX_STREAMS {
            p.compressors.push(compressor);
        }
    });
}

/// Give a decompressor back: reset and kept if the pool has room, else dropped.
pub(crate) fn give_decompressor(mut decompressor: Decompressor) {
    decompressor.stream.reset(false);
    with(|p| {
        if p.decompressors.len() < MAX_STREAMS {
            p.decompressors.push(decompressor);
        }
    });
}

#[cfg(test)]
mod tests {
    use flate2::{FlushCompress, FlushDecompress};

    use super::*;

    fn deflate(c: &mut Compress, data: &[u8]) -> Vec<u8> {
        let mut out = vec![0; data.len() + 64];
        let before = c.total_out();
        c.compress(data, &mut out, FlushCompress::Sync)
            .expect("compress");
        out.truncate(usize::try_from(c.total_out() - before).expect("small"));
        out
    }

    #[test]
    fn a_reused_stream_behaves_like_a_new_one() {
        let data = b"the same message, compressed twice, the same message".repeat(8);
        let mut fresh = compressor(2, 11);
        let expected = deflate(&mut fresh.stream, &data);
        give_compressor(fresh);
        let mut reused = compressor(2, 11);
        assert_eq!(deflate(&mut reused.stream, &data), expected);
        give_compressor(reused);

        let mut d = decompressor(15);
        let mut out = vec![0; data.len() + 16];
        d.stream
            .decompress(&expected, &mut out, FlushDecompress::Sync)
            .expect("inflate");
        give_decompressor(d);
        let mut d = decompressor(15);
        let mut again = vec![0; data.len() + 16];
        d.stream
            .decompress(&expected, &mut again, FlushDecompress::Sync)
            .expect("inflate after reuse");
        assert_eq!(out, again);
        assert_eq!(&again[..data.len()], &data[..]);
    }

    #[test]
    fn parameters_must_match_and_the_pool_is_bounded() {
        for _ in 0..MAX_STREAMS + 3 {
            give_compressor(Compressor {
                stream: Compress::new_with_window_bits(Compression::new(1), false, 9),
                level: 1,
                bits: 9,
            });
        }
        let held = with(|p| p.compressors.len()).expect("pool");
        assert!(held <= MAX_STREAMS, "{held}");
        let other = compressor(9, 15);
        assert_eq!((other.level, other.bits), (9, 15));
        let same = compressor(1, 9);
        assert_eq!((same.level, same.bits), (1, 9));
    }
}
