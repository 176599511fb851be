//! The per-thread pools: empty buffers and idle zlib streams, kept so that connections that go
//! idle between messages neither allocate per message nor hold memory while idle.
//!
//! Where it sits: a [`Connection`](crate::Connection) that goes idle gives its empty read
//! buffer, and its output queue its staging buffer, back here
//! ([`Connection::release_idle_buffers`](crate::Connection::release_idle_buffers)); when it
//! becomes active again it borrows them. permessage-deflate takes a compressor or decompressor
//! from here when a message needs one and gives it back, reset, where it used to drop it (a
//! reset stream is the same as a new one with the same parameters, so nothing a peer sees
//! changes).
//!
//! Every kind of thing is held in one [`IdleList`], bounded in count whatever the number of
//! connections: [`MAX_BUFFERS`] buffers of each [`Class`] (each at most [`MAX_CAPACITY`] bytes
//! of room: the owners track whether a buffer grew past it and free it instead) and
//! [`MAX_STREAMS`] streams of each kind. A thread thus keeps at most about 1 MiB of buffers and
//! 1.7 MiB of zlib state (at the largest window a compressor takes about 370 KiB, a
//! decompressor about 46 KiB). A pooled buffer may still share its allocation with [`Bytes`]
//! handed out earlier (they stay valid: the pooled buffer only owns its free room).
//!
//! [`Bytes`]: bytes::Bytes

use std::cell::RefCell;

use bytes::BytesMut;
use flate2::{Compress, Compression, Decompress};

/// The most buffers kept per thread and [`Class`]. A current-thread runtime echoing messages
/// needs one of each (the active connection's); the rest absorbs bursts.
pub(crate) const MAX_BUFFERS: usize = 8;
/// Buffers with more room than this are freed, not kept.
pub(crate) const MAX_CAPACITY: usize = 64 * 1024;
/// The most zlib streams of each kind (compressors, decompressors) kept per thread.
pub(crate) const MAX_STREAMS: usize = 4;

/// Idle things of one kind, at most `MAX` of them: what is given back beyond that is dropped.
#[derive(Debug)]
pub(crate) struct IdleList<T, const MAX: usize> {
    idle: Vec<T>,
}

impl<T, const MAX: usize> IdleList<T, MAX> {
    /// An empty list (allocates nothing).
    const fn new() -> Self {
        IdleList { idle: Vec::new() }
    }

    /// The most recently given item, if any.
    #[inline]
    fn pop(&mut self) -> Option<T> {
        self.idle.pop()
    }

    /// The first item that `fits`, if any.
    fn take_first(&mut self, fits: impl Fn(&T) -> bool) -> Option<T> {
        let i = self.idle.iter().position(fits)?;
        Some(self.idle.swap_remove(i))
    }

    /// Whether one more item would be kept.
    #[inline]
    fn has_room(&self) -> bool {
        self.idle.len() < MAX
    }

    /// Keep `item` if there is room (else drop it).
    #[inline]
    fn give(&mut self, item: T) {
        if self.has_room() {
            self.idle.push(item);
        }
    }

    /// How many items are kept.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.idle.len()
    }
}

/// What a buffer is for.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Class {
    /// A connection's read buffer.
    Read = 0,
    /// An output queue's staging buffer.
    Staging = 1,
}

impl Class {
    /// The least room a pooled buffer of this class has. For reading, the room under which
    /// the read path reserves more anyway; a fresh staging buffer is allocated with it.
    pub(crate) const fn min_capacity(self) -> usize {
        match self {
            Class::Read => 4 * 1024,
            Class::Staging => 1024,
        }
    }
}

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

/// One thread's pool: buffers by [`Class`], and zlib streams.
#[derive(Debug)]
pub(crate) struct Pool {
    buffers: [IdleList<BytesMut, MAX_BUFFERS>; 2],
    compressors: IdleList<Compressor, MAX_STREAMS>,
    decompressors: IdleList<Decompressor, MAX_STREAMS>,
}

impl Pool {
    /// An empty buffer of `class` (with at least [`Class::min_capacity`] of room), or an
    /// unallocated one when there is none.
    #[inline]
    pub(crate) fn take(&mut self, class: Class) -> BytesMut {
        self.buffers[class as usize].pop().unwrap_or_default()
    }

    /// Give a buffer back (one whose allocation is at most about [`MAX_CAPACITY`]; the
    /// caller tracks that): emptied and kept if there is room in the pool and the buffer
    /// can hold [`Class::min_capacity`] bytes without allocating; otherwise freed.
    /// `slot` is left unallocated either way.
    #[inline]
    pub(crate) fn give(&mut self, class: Class, slot: &mut BytesMut) {
        let list = &mut self.buffers[class as usize];
        slot.clear();
        // `try_reclaim` only does work (moving the buffer's start back) when room is short.
        if list.has_room()
            && slot.try_reclaim(class.min_capacity())
            && slot.capacity() <= MAX_CAPACITY
        {
            list.give(std::mem::take(slot));
        } else {
            *slot = BytesMut::new();
        }
    }

    /// Free every pooled buffer and stream.
    #[cfg(test)]
    pub(crate) fn clear(&mut self) {
        *self = Pool::new();
    }

    /// How many buffers of `class` the pool holds.
    #[cfg(test)]
    pub(crate) fn len(&self, class: Class) -> usize {
        self.buffers[class as usize].len()
    }

    const fn new() -> Self {
        Pool {
            buffers: [IdleList::new(), IdleList::new()],
            compressors: IdleList::new(),
            decompressors: IdleList::new(),
        }
    }
}

thread_local! {
    static POOL: RefCell<Pool> = const { RefCell::new(Pool::new()) };
}

/// Run `f` on this thread's pool; `None` while the thread is being torn down (or,
/// defensively, if the pool is already borrowed).
#[inline]
pub(crate) fn with<R>(f: impl FnOnce(&mut Pool) -> R) -> Option<R> {
    POOL.try_with(|p| p.try_borrow_mut().ok().map(|mut p| f(&mut p)))
        .ok()
        .flatten()
}

/// A raw-deflate compressor at `level` with a `bits` window: a pooled one if there is one
/// with these parameters, else a new one.
pub(crate) fn compressor(level: u32, bits: u8) -> Compressor {
    with(|p| {
        p.compressors
            .take_first(|c| c.level == level && c.bits == bits)
    })
    .flatten()
    .unwrap_or_else(|| Compressor {
        stream: Compress::new_with_window_bits(Compression::new(level), false, bits),
        level,
        bits,
    })
}

/// A raw-deflate decompressor with a `bits` window, pooled or new.
pub(crate) fn decompressor(bits: u8) -> Decompressor {
    with(|p| p.decompressors.take_first(|d| d.bits == bits))
        .flatten()
        .unwrap_or_else(|| Decompressor {
            stream: Decompress::new_with_window_bits(false, bits),
            bits,
        })
}

/// Give a compressor back: reset and kept if the pool has room, else dropped.
pub(crate) fn give_compressor(mut compressor: Compressor) {
    compressor.stream.reset();
    with(|p| p.compressors.give(compressor));
}

/// Give a decompressor back: reset and kept if the pool has room, else dropped.
pub(crate) fn give_decompressor(mut decompressor: Decompressor) {
    decompressor.stream.reset(false);
    with(|p| p.decompressors.give(decompressor));
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

    #[test]
    fn an_idle_list_keeps_at_most_its_bound() {
        let mut list = IdleList::<u32, 2>::new();
        for i in 0..5 {
            list.give(i);
        }
        assert_eq!(list.len(), 2);
        assert_eq!(list.take_first(|&i| i == 1), Some(1));
        assert_eq!(list.pop(), Some(0));
        assert_eq!(list.pop(), None);
    }
}
