//! The outgoing byte queue: encoded frames waiting to be written.
//!
//! Small frames are copied into one contiguous staging buffer so that a batch of them goes out
//! in a single write; large unmasked payloads are queued as the caller's [`Bytes`] without a
//! copy, for a vectored write. The I/O layer takes the queued bytes as [`IoSlice`]s
//! ([`OutputQueue::chunks`]) and reports how much it wrote ([`OutputQueue::advance`]).
//!
//! Buffers are recycled through a small per-thread pool (`pool.rs`): an idle connection gives its
//! empty read and staging buffers back and an active one borrows them, so a connection that
//! goes idle after every message (the usual request/response pattern) allocates nothing per
//! message, while an idle connection still holds no buffer.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, Bytes, BytesMut};

use crate::frame::{FrameHeader, MAX_HEADER_LEN};
use crate::mask::apply_mask;
use crate::pool::{self, Class};

/// Payloads at least this long are queued by reference instead of copied (unmasked only).
const ZERO_COPY_MIN: usize = 16 * 1024;

/// Queued output bytes, in order: `chunks`, then `staging`.
#[derive(Debug, Default)]
pub struct OutputQueue {
    chunks: VecDeque<Bytes>,
    staging: BytesMut,
    /// Whether `staging` grew past what the buffer pool keeps (freed, not pooled, when idle).
    staging_oversized: bool,
    len: usize,
}

impl OutputQueue {
    /// Queue one frame: its header (with `header.mask` applied to the payload if set) and
    /// `payload`; `shared`, when given, holds the same bytes (see
    /// [`OutputQueue::push_frame_parts`]).
    #[inline]
    pub fn push_frame(&mut self, header: &FrameHeader, payload: &[u8], shared: Option<&Bytes>) {
        self.push_frame_parts(header, &[], payload, shared);
    }

    /// Queue one frame whose payload is `head` followed by `tail` (the header's length covers
    /// both); `shared`, when given, holds the same bytes as `tail`. Unmasked, a large shared
    /// tail is queued as it is, without a copy; otherwise (masked: a client) both parts are
    /// copied, and masked as one payload.
    pub fn push_frame_parts(
        &mut self,
        header: &FrameHeader,
        head: &[u8],
        tail: &[u8],
        shared: Option<&Bytes>,
    ) {
        let mut hdr = [0u8; MAX_HEADER_LEN];
        let n = header.encode(&mut hdr);
        self.len += n + head.len() + tail.len();
        match (header.mask, shared) {
            (None, Some(bytes)) if bytes.len() >= ZERO_COPY_MIN => {
                self.reserve_staging(n + head.len());
                self.staging.extend_from_slice(&hdr[..n]);
                self.staging.extend_from_slice(head);
                self.flush_staging();
                self.chunks.push_back(bytes.clone());
            }
            (mask, _) => {
                self.reserve_staging(n + head.len() + tail.len());
                self.staging.extend_from_slice(&hdr[..n]);
                let start = self.staging.len();
                self.staging.extend_from_slice(head);
                self.staging.extend_from_slice(tail);
                if let Some(key) = mask {
                    apply_mask(&mut self.staging[start..], key, 0);
                }
            }
        }
    }

    /// Queue bytes that are already a complete encoded frame (or several).
    pub fn push_encoded(&mut self, bytes: Bytes) {
        self.len += bytes.len();
        if bytes.len() >= ZERO_COPY_MIN {
            self.flush_staging();
            self.chunks.push_back(bytes);
        } else {
            self.reserve_staging(bytes.len());
            self.staging.extend_from_slice(&bytes);
        }
    }

    /// Make room for `need` more bytes in the staging buffer, borrowing one from the pool (or
    /// allocating at least [`Class::min_capacity`]) when there is none.
    #[inline]
    fn reserve_staging(&mut self, need: usize) {
        if self.staging.capacity() == 0 {
            pool::with(|p| self.take_staging(p));
            if self.staging.capacity() == 0 {
                self.staging
                    .reserve(need.max(Class::Staging.min_capacity()));
            }
        }
        if self.staging.capacity() - self.staging.len() < need {
            self.staging.reserve(need);
            self.staging_oversized |= self.staging.capacity() > pool::MAX_CAPACITY;
        }
    }

    fn flush_staging(&mut self) {
        if !self.staging.is_empty() {
            self.chunks.push_back(self.staging.split().freeze());
        }
    }

    /// The number of bytes queued.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Fill `dst` with the queued bytes in order; returns how many slices were filled.
    pub fn chunks<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for chunk in self
            .chunks
            .iter()
            .map(|c| &c[..])
            .chain(std::iter::once(&self.staging[..]))
        {
            if n == dst.len() {
                break;
            }
            if !chunk.is_empty() {
                dst[n] = IoSlice::new(chunk);
                n += 1;
            }
        }
        n
    }

    /// The first contiguous run of queued bytes.
    pub fn first_chunk(&self) -> &[u8] {
        self.chunks
            .front()
            .map(|c| &c[..])
            .unwrap_or(&self.staging[..])
    }

    /// Drop `n` bytes from the front, after they were written.
    pub fn advance(&mut self, mut n: usize) {
        if n >= self.len {
            // Everything was written (the usual case): no need to walk the queue, and the
            // staging buffer keeps its room from the start.
            if !self.chunks.is_empty() {
                self.chunks.clear();
            }
            self.staging.clear();
            self.len = 0;
            return;
        }
        self.len -= n;
        while n > 0 {
            match self.chunks.front_mut() {
                Some(front) if front.len() <= n => {
                    n -= front.len();
                    self.chunks.pop_front();
                }
                Some(front) => {
                    front.advance(n);
                    n = 0;
                }
                None => {
                    self.staging.advance(n);
                    n = 0;
                }
            }
        }
    }

    /// Release the staging buffer's memory if nothing is queued (to this thread's buffer pool,
    /// if it has room).
    pub fn release_if_empty(&mut self) {
        if self.release_if_empty_keeping_staging() && pool::with(|p| self.give_staging(p)).is_none()
        {
            self.staging = BytesMut::new();
        }
    }

    /// If nothing is queued: release the queue's memory except a staging buffer that may go
    /// to the buffer pool (it has room and did not grow past what the pool keeps), and return
    /// whether there is such a buffer (to pass on with [`OutputQueue::give_staging`]).
    #[inline]
    pub(crate) fn release_if_empty_keeping_staging(&mut self) -> bool {
        if self.len != 0 {
            return false;
        }
        if self.chunks.capacity() != 0 {
            self.chunks = VecDeque::new();
        }
        if self.staging_oversized {
            self.staging = BytesMut::new();
            self.staging_oversized = false;
        }
        self.staging.capacity() != 0
    }

    /// Hand the staging buffer to the pool.
    #[inline]
    pub(crate) fn give_staging(&mut self, pool: &mut pool::Pool) {
        pool.give(Class::Staging, &mut self.staging);
    }

    /// Whether there is no staging buffer (it was released, or never allocated).
    pub(crate) fn lacks_staging(&self) -> bool {
        self.staging.capacity() == 0
    }

    /// Borrow a staging buffer from the pool (there is none: see
    /// [`OutputQueue::lacks_staging`]).
    #[inline]
    pub(crate) fn take_staging(&mut self, pool: &mut pool::Pool) {
        self.staging = pool.take(Class::Staging);
        self.staging_oversized = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::OpCode;

    #[test]
    fn small_frames_coalesce_and_large_are_shared() {
        let mut q = OutputQueue::default();
        q.push_frame(&FrameHeader::new(OpCode::Text, 2), b"hi", None);
        q.push_frame(&FrameHeader::new(OpCode::Text, 2), b"yo", None);
        let big = Bytes::from(vec![7u8; ZERO_COPY_MIN]);
        q.push_frame(
            &FrameHeader::new(OpCode::Binary, big.len() as u64),
            &big,
            Some(&big),
        );
        q.push_frame(&FrameHeader::new(OpCode::Ping, 0), b"", None);
        let mut slices = [IoSlice::new(&[]); 8];
        let n = q.chunks(&mut slices);
        assert_eq!(n, 3);
        assert_eq!(&slices[0][..], b"\x81\x02hi\x81\x02yo\x82\x7e\x40\x00");
        assert_eq!(slices[1].as_ptr(), big.as_ptr());
        assert_eq!(&slices[2][..], b"\x89\x00");
        let total = q.len();
        assert_eq!(total, 8 + 4 + ZERO_COPY_MIN + 2);
        q.advance(6);
        assert_eq!(q.first_chunk()[0], b'y');
        q.advance(total - 6);
        assert!(q.is_empty());
        let mut fresh = [IoSlice::new(&[]); 8];
        assert_eq!(q.chunks(&mut fresh), 0);
    }
}
