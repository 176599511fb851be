//! Masking (RFC 6455 §5.3): XOR a payload with a 4-byte key, in place.
//!
//! Where it sits in the flow: every frame a client sends is masked with a fresh random key. The
//! client side of a connection masks each outgoing payload right after encoding its frame header;
//! the server side unmasks each received client frame in place, right after the frame decoder
//! has split off the header and before the payload is assembled into a message, validated as
//! UTF-8 or inflated. Servers never mask (see [`Role`](crate::Role)).
//!
//! Because a payload may arrive (or be produced) in several pieces, [`apply_mask`] takes an
//! `offset`: the number of payload bytes already masked before `buf`. Only `offset % 4` matters.
//!
//! # Kernels
//!
//! Masking is the one per-byte pass over every received client payload, so it is worth making
//! fast. [`apply_mask`] first rotates the key so that it starts at `offset`, then picks a kernel:
//!
//! * buffers shorter than 64 bytes (`SIMD_MIN_LEN`), and every buffer on targets without a SIMD
//!   kernel: a portable word-at-a-time loop (`u64` XOR via `from_ne_bytes`/`to_ne_bytes`, no
//!   `unsafe`), with a byte loop for the last `< 8` bytes;
//! * x86_64: AVX2 (32-byte vectors) when the CPU supports it, detected once at run time with
//!   [`is_x86_feature_detected!`] and cached in an atomic; otherwise SSE2 (16-byte vectors),
//!   which every x86_64 CPU has. If the crate is compiled with AVX2 enabled
//!   (`-C target-feature=+avx2` or a `target-cpu` that has it) the check disappears;
//! * aarch64: NEON (16-byte vectors), which every aarch64 CPU has.
//!
//! The SIMD kernels run their main loop on vector-aligned addresses, four vectors per iteration,
//! then single vectors. The unaligned head and the leftover tail need no byte loops: the first
//! and last full vectors of the buffer are loaded before anything is stored and written back
//! masked at the end (details above the `x86` module in the source).
//!
//! [`apply_mask_scalar`] is the obviously correct byte loop that the tests compare everything
//! against.
//!
//! The only `unsafe` code is in the SIMD kernels, around the intrinsics, each block with the
//! reason it is sound.

/// Buffers shorter than this are masked with the portable word loop even where SIMD is
/// available: below it, the vector setup (key broadcasts, the extra head and tail vectors) costs
/// more than it saves. Measured on x86_64, the crossover is around 64 to 128 bytes.
const SIMD_MIN_LEN: usize = 64;

/// XOR `buf` in place with `key`, starting at byte `offset` of the key's 4-byte cycle.
///
/// `offset` is the number of payload bytes already masked before `buf` (only `offset % 4`
/// matters), so a payload can be masked in pieces:
///
/// ```
/// use wsx_proto::apply_mask;
///
/// let key = [0x37, 0xfa, 0x21, 0x3d];
/// let mut whole = *b"Hello";
/// apply_mask(&mut whole, key, 0);
///
/// let mut pieces = *b"Hello";
/// let (head, tail) = pieces.split_at_mut(3);
/// apply_mask(head, key, 0);
/// apply_mask(tail, key, 3);
///
/// assert_eq!(whole, [0x7f, 0x9f, 0x4d, 0x51, 0x58]);
/// assert_eq!(pieces, whole);
/// ```
///
/// Masking is its own inverse: applying the same key and offset again restores the input.
/// This picks the fastest kernel for the length of `buf` and the CPU (see the
/// documentation of `mask.rs`); all of them give the same result as [`apply_mask_scalar`].
#[inline]
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let key = rotate_key(key, offset);
    if buf.len() < SIMD_MIN_LEN {
        mask_word(buf, key);
    } else {
        mask_simd(buf, key);
    }
}

/// The reference implementation: a plain byte loop, XORing byte `i` of `buf` with
/// `key[(offset + i) % 4]`.
///
/// Same contract and result as [`apply_mask`], only slower; kept as the yardstick for tests.
pub fn apply_mask_scalar(buf: &mut [u8], key: [u8; 4], offset: usize) {
    for (i, b) in buf.iter_mut().enumerate() {
        // Wrapping is harmless: 2^64 is a multiple of 4, so the index modulo 4 is unchanged.
        *b ^= key[offset.wrapping_add(i) & 3];
    }
}

/// The key as seen from payload byte `offset`:
/// `rotate_key(key, offset)[i] == key[(offset + i) % 4]`.
///
/// All kernels below take an already rotated key and mask from its byte 0.
#[inline]
fn rotate_key(key: [u8; 4], offset: usize) -> [u8; 4] {
    // Little-endian: byte `i` of the array is bits `8 * i..8 * i + 8` of the word, so rotating
    // the word right by `8 * n` bits moves byte `n` to position 0. One `ror` instruction, where
    // `<[u8; 4]>::rotate_left` with a run-time amount goes through the generic slice rotation.
    let shift = 8 * (offset & 3) as u32;
    u32::from_le_bytes(key).rotate_right(shift).to_le_bytes()
}

/// The key repeated `N` times, for loading into a vector register or a `u64`. In memory this is
/// `key, key, key, ...` whatever the byte order, since `from_ne_bytes` keeps the byte layout.
#[cfg(any(
    all(target_arch = "x86_64", target_feature = "sse2"),
    all(target_arch = "aarch64", target_feature = "neon")
))]
#[inline]
fn splat_key<const N: usize>(key: [u8; 4]) -> [u32; N] {
    [u32::from_ne_bytes(key); N]
}

/// Portable kernel: eight bytes at a time as a `u64`, then a byte loop for the rest.
///
/// The key is already rotated (byte 0 of `buf` is XORed with `key[0]`). Native byte order is
/// fine for both the load and the store since they cancel out: XOR works bytewise.
#[inline]
fn mask_word(buf: &mut [u8], key: [u8; 4]) {
    // Both halves hold the key, so the in-memory layout is `key, key` in either byte order.
    let k = u64::from(u32::from_ne_bytes(key)) * 0x0000_0001_0000_0001;
    let mut words = buf.chunks_exact_mut(8);
    for chunk in &mut words {
        // `chunks_exact_mut(8)` only yields 8-byte chunks, so the conversion cannot fail and
        // compiles down to a plain (unaligned) 64-bit load.
        let bytes: [u8; 8] = (*chunk).try_into().expect("8-byte chunk");
        chunk.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ k).to_ne_bytes());
    }
    // 8 is a multiple of 4, so the remainder starts at key byte 0 again.
    for (i, b) in words.into_remainder().iter_mut().enumerate() {
        *b ^= key[i & 3];
    }
}

/// Where a SIMD kernel's aligned main loop starts: the number of bytes before the first
/// `align`-aligned address in `buf`, at most `align` (`align` is a power of two, the vector size).
///
/// Those head bytes are covered by the kernel's first, unaligned vector. `align_offset` may in
/// principle return `usize::MAX` ("cannot align"); clamping to `align` keeps that correct, the
/// main loop then just runs unaligned.
#[cfg(any(
    all(target_arch = "x86_64", target_feature = "sse2"),
    all(target_arch = "aarch64", target_feature = "neon")
))]
#[inline]
fn aligned_start(buf: &[u8], align: usize) -> usize {
    buf.as_ptr().align_offset(align).min(align)
}

/// The best kernel for this target and CPU, for buffers of at least `SIMD_MIN_LEN` bytes.
/// The key is already rotated.
#[inline]
fn mask_simd(buf: &mut [u8], key: [u8; 4]) {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    x86::mask(buf, key);

    #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
    aarch64::mask_neon(buf, key);

    #[cfg(not(any(
        all(target_arch = "x86_64", target_feature = "sse2"),
        all(target_arch = "aarch64", target_feature = "neon")
    )))]
    mask_word(buf, key);
}

// How the SIMD kernels avoid byte loops at both ends (for a buffer of at least one vector, `V`
// bytes):
//
// 1. Before storing anything, load the first `V` bytes (`head`) and the last `V` bytes (`tail`)
//    of the buffer, both unaligned.
// 2. Run the main loop from the first `V`-aligned address, `skip` bytes in (`skip < V`, or
//    `skip == V` if `align_offset` gives up), with the key rotated by `skip`: four vectors per
//    iteration, then single vectors. The `< V` bytes left at the end are not touched by it.
// 3. Store `head ^ key` at the start and `tail ^ key rotated by len - V` at the end. These cover
//    the skipped head and the leftover tail. Where they overlap the main loop (or each other)
//    they write the very same bytes it did (original byte XOR the key byte for that position,
//    since `head` and `tail` were loaded before any store), so nothing is masked twice.

/// x86_64 kernels: SSE2 (baseline on x86_64) and AVX2 (detected at run time).
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
mod x86 {
    use core::arch::x86_64::{
        __m128i, __m256i, _mm_loadu_si128, _mm_storeu_si128, _mm_xor_si128, _mm256_loadu_si256,
        _mm256_storeu_si256, _mm256_xor_si256,
    };
    use std::sync::atomic::{AtomicU8, Ordering};

    use super::{aligned_start, mask_word, rotate_key, splat_key};

    /// [`LEVEL`] value: not detected yet.
    const UNKNOWN: u8 = 0;
    /// [`LEVEL`] value: use the SSE2 kernel.
    const SSE2: u8 = 1;
    /// [`LEVEL`] value: use the AVX2 kernel.
    const AVX2: u8 = 2;

    /// The kernel to use, detected on first use. Every thread that races on the first call
    /// computes the same value, so a relaxed load/store is all the synchronisation needed.
    static LEVEL: AtomicU8 = AtomicU8::new(UNKNOWN);

    /// Which kernel to use: one relaxed atomic load on the hot path (nothing at all when the
    /// crate is compiled with AVX2 enabled).
    #[inline]
    fn level() -> u8 {
        if cfg!(target_feature = "avx2") {
            return AVX2;
        }
        match LEVEL.load(Ordering::Relaxed) {
            UNKNOWN => detect(),
            level => level,
        }
    }

    /// Runs CPU feature detection and caches the result in [`LEVEL`].
    #[cold]
    #[inline(never)]
    fn detect() -> u8 {
        let level = if std::is_x86_feature_detected!("avx2") {
            AVX2
        } else {
            SSE2
        };
        LEVEL.store(level, Ordering::Relaxed);
        level
    }

    /// Whether the AVX2 kernel is selected on this CPU (for the dispatch test).
    #[cfg(test)]
    pub(super) fn has_avx2() -> bool {
        level() == AVX2
    }

    /// Masks `buf` (key already rotated) with the best kernel this CPU supports.
    #[inline]
    pub(super) fn mask(buf: &mut [u8], key: [u8; 4]) {
        if level() == AVX2 {
            // SAFETY: `level()` only returns `AVX2` when AVX2 is enabled at compile time or
            // `is_x86_feature_detected!("avx2")` confirmed it on this CPU.
            unsafe { mask_avx2(buf, key) }
        } else {
            mask_sse2(buf, key);
        }
    }

    /// SSE2 kernel, 16-byte vectors (see the comment above this module for the scheme); buffers
    /// shorter than 16 bytes go to the word loop. The key is already rotated.
    ///
    /// Safe to call: SSE2 is part of the x86_64 baseline, and this module only exists when the
    /// target has it enabled.
    pub(super) fn mask_sse2(buf: &mut [u8], key: [u8; 4]) {
        const V: usize = 16;
        let len = buf.len();
        if len < V {
            return mask_word(buf, key);
        }
        let skip = aligned_start(buf, V);
        let head_key: [u32; V / 4] = splat_key(key);
        let body_key: [u32; V / 4] = splat_key(rotate_key(key, skip));
        let tail_key: [u32; V / 4] = splat_key(rotate_key(key, len - V));

        let src = buf.as_ptr();
        // SAFETY: SSE2 is enabled for this target (module `cfg`). The three key arrays are 16
        // bytes each, and `len >= 16`, so the 16-byte unaligned loads at `src` and
        // `src + len - 16` read only bytes of `buf`; `loadu` needs no alignment.
        let (k_head, k_body, k_tail, head, tail) = unsafe {
            (
                _mm_loadu_si128(head_key.as_ptr().cast::<__m128i>()),
                _mm_loadu_si128(body_key.as_ptr().cast::<__m128i>()),
                _mm_loadu_si128(tail_key.as_ptr().cast::<__m128i>()),
                _mm_loadu_si128(src.cast::<__m128i>()),
                _mm_loadu_si128(src.add(len - V).cast::<__m128i>()),
            )
        };

        let mut quads = buf[skip..].chunks_exact_mut(4 * V);
        for chunk in &mut quads {
            let p = chunk.as_mut_ptr().cast::<__m128i>();
            // SAFETY: `chunk` is exactly 64 bytes of a `&mut [u8]` we hold exclusively, so the
            // four 16-byte loads and stores at `p`, `p + 1`, `p + 2`, `p + 3` (in units of 16
            // bytes) stay inside it; `loadu`/`storeu` need no alignment. SSE2 is enabled.
            unsafe {
                let a = _mm_loadu_si128(p);
                let b = _mm_loadu_si128(p.add(1));
                let c = _mm_loadu_si128(p.add(2));
                let d = _mm_loadu_si128(p.add(3));
                _mm_storeu_si128(p, _mm_xor_si128(a, k_body));
                _mm_storeu_si128(p.add(1), _mm_xor_si128(b, k_body));
                _mm_storeu_si128(p.add(2), _mm_xor_si128(c, k_body));
                _mm_storeu_si128(p.add(3), _mm_xor_si128(d, k_body));
            }
        }
        for chunk in quads.into_remainder().chunks_exact_mut(V) {
            let p = chunk.as_mut_ptr().cast::<__m128i>();
            // SAFETY: `chunk` is exactly 16 bytes we hold exclusively; one 16-byte load and
            // store at its start stay inside it. SSE2 is enabled.
            unsafe { _mm_storeu_si128(p, _mm_xor_si128(_mm_loadu_si128(p), k_body)) }
        }

        let dst = buf.as_mut_ptr();
        // SAFETY: `len >= 16`, so the 16-byte unaligned stores at `dst` and `dst + len - 16`
        // write only bytes of `buf`, which we hold exclusively. SSE2 is enabled.
        unsafe {
            _mm_storeu_si128(dst.cast::<__m128i>(), _mm_xor_si128(head, k_head));
            _mm_storeu_si128(
                dst.add(len - V).cast::<__m128i>(),
                _mm_xor_si128(tail, k_tail),
            );
        }
    }

    /// AVX2 kernel, 32-byte vectors (see the comment above this module for the scheme); buffers
    /// shorter than 32 bytes go to the SSE2 kernel. The key is already rotated.
    ///
    /// # Safety
    ///
    /// The CPU must support AVX2 (check with `is_x86_feature_detected!("avx2")`).
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn mask_avx2(buf: &mut [u8], key: [u8; 4]) {
        const V: usize = 32;
        let len = buf.len();
        if len < V {
            return mask_sse2(buf, key);
        }
        let skip = aligned_start(buf, V);
        let head_key: [u32; V / 4] = splat_key(key);
        let body_key: [u32; V / 4] = splat_key(rotate_key(key, skip));
        let tail_key: [u32; V / 4] = splat_key(rotate_key(key, len - V));

        let src = buf.as_ptr();
        // SAFETY: the caller guarantees AVX2. The three key arrays are 32 bytes each, and
        // `len >= 32`, so the 32-byte unaligned loads at `src` and `src + len - 32` read only
        // bytes of `buf`; `loadu` needs no alignment.
        let (k_head, k_body, k_tail, head, tail) = unsafe {
            (
                _mm256_loadu_si256(head_key.as_ptr().cast::<__m256i>()),
                _mm256_loadu_si256(body_key.as_ptr().cast::<__m256i>()),
                _mm256_loadu_si256(tail_key.as_ptr().cast::<__m256i>()),
                _mm256_loadu_si256(src.cast::<__m256i>()),
                _mm256_loadu_si256(src.add(len - V).cast::<__m256i>()),
            )
        };

        let mut quads = buf[skip..].chunks_exact_mut(4 * V);
        for chunk in &mut quads {
            let p = chunk.as_mut_ptr().cast::<__m256i>();
            // SAFETY: `chunk` is exactly 128 bytes of a `&mut [u8]` we hold exclusively, so the
            // four 32-byte loads and stores at `p`, `p + 1`, `p + 2`, `p + 3` (in units of 32
            // bytes) stay inside it; `loadu`/`storeu` need no alignment. The caller guarantees
            // AVX2.
            unsafe {
                let a = _mm256_loadu_si256(p);
                let b = _mm256_loadu_si256(p.add(1));
                let c = _mm256_loadu_si256(p.add(2));
                let d = _mm256_loadu_si256(p.add(3));
                _mm256_storeu_si256(p, _mm256_xor_si256(a, k_body));
                _mm256_storeu_si256(p.add(1), _mm256_xor_si256(b, k_body));
                _mm256_storeu_si256(p.add(2), _mm256_xor_si256(c, k_body));
                _mm256_storeu_si256(p.add(3), _mm256_xor_si256(d, k_body));
            }
        }
        for chunk in quads.into_remainder().chunks_exact_mut(V) {
            let p = chunk.as_mut_ptr().cast::<__m256i>();
            // SAFETY: `chunk` is exactly 32 bytes we hold exclusively; one 32-byte load and
            // store at its start stay inside it. The caller guarantees AVX2.
            unsafe { _mm256_storeu_si256(p, _mm256_xor_si256(_mm256_loadu_si256(p), k_body)) }
        }

        let dst = buf.as_mut_ptr();
        // SAFETY: `len >= 32`, so the 32-byte unaligned stores at `dst` and `dst + len - 32`
        // write only bytes of `buf`, which we hold exclusively. The caller guarantees AVX2.
        unsafe {
            _mm256_storeu_si256(dst.cast::<__m256i>(), _mm256_xor_si256(head, k_head));
            _mm256_storeu_si256(
                dst.add(len - V).cast::<__m256i>(),
                _mm256_xor_si256(tail, k_tail),
            );
        }
    }
}

/// aarch64 kernel: NEON, part of the aarch64 baseline.
#[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
mod aarch64 {
    use core::arch::aarch64::{veorq_u8, vld1q_u8, vst1q_u8};

    use super::{aligned_start, mask_word, rotate_key, splat_key};

    /// NEON kernel, 16-byte vectors (see the comment above the x86 module for the scheme);
    /// buffers shorter than 16 bytes go to the word loop. The key is already rotated.
    ///
    /// Safe to call: this module only exists when NEON is enabled for the target.
    pub(super) fn mask_neon(buf: &mut [u8], key: [u8; 4]) {
        const V: usize = 16;
        let len = buf.len();
        if len < V {
            return mask_word(buf, key);
        }
        let skip = aligned_start(buf, V);
        let head_key: [u32; V / 4] = splat_key(key);
        let body_key: [u32; V / 4] = splat_key(rotate_key(key, skip));
        let tail_key: [u32; V / 4] = splat_key(rotate_key(key, len - V));

        let src = buf.as_ptr();
        // SAFETY: NEON is enabled (module `cfg`). The three key arrays are 16 bytes each, and
        // `len >= 16`, so the 16-byte loads at `src` and `src + len - 16` read only bytes of
        // `buf`; `vld1q_u8` needs only `u8` alignment.
        let (k_head, k_body, k_tail, head, tail) = unsafe {
            (
                vld1q_u8(head_key.as_ptr().cast::<u8>()),
                vld1q_u8(body_key.as_ptr().cast::<u8>()),
                vld1q_u8(tail_key.as_ptr().cast::<u8>()),
                vld1q_u8(src),
                vld1q_u8(src.add(len - V)),
            )
        };

        let mut quads = buf[skip..].chunks_exact_mut(4 * V);
        for chunk in &mut quads {
            let p = chunk.as_mut_ptr();
            // SAFETY: `chunk` is exactly 64 bytes of a `&mut [u8]` we hold exclusively, so the
            // four 16-byte loads and stores at byte offsets 0, 16, 32 and 48 stay inside it;
            // `vld1q_u8`/`vst1q_u8` need only `u8` alignment. NEON is enabled.
            unsafe {
                let a = vld1q_u8(p);
                let b = vld1q_u8(p.add(V));
                let c = vld1q_u8(p.add(2 * V));
                let d = vld1q_u8(p.add(3 * V));
                vst1q_u8(p, veorq_u8(a, k_body));
                vst1q_u8(p.add(V), veorq_u8(b, k_body));
                vst1q_u8(p.add(2 * V), veorq_u8(c, k_body));
                vst1q_u8(p.add(3 * V), veorq_u8(d, k_body));
            }
        }
        for chunk in quads.into_remainder().chunks_exact_mut(V) {
            let p = chunk.as_mut_ptr();
            // SAFETY: `chunk` is exactly 16 bytes we hold exclusively; one 16-byte load and
            // store at its start stay inside it. NEON is enabled.
            unsafe { vst1q_u8(p, veorq_u8(vld1q_u8(p), k_body)) }
        }

        let dst = buf.as_mut_ptr();
        // SAFETY: `len >= 16`, so the 16-byte stores at `dst` and `dst + len - 16` write only
        // bytes of `buf`, which we hold exclusively. NEON is enabled.
        unsafe {
            vst1q_u8(dst, veorq_u8(head, k_head));
            vst1q_u8(dst.add(len - V), veorq_u8(tail, k_tail));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A deterministic, non-trivial test pattern.
    fn pattern(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i.wrapping_mul(31) ^ (i >> 3)) as u8)
            .collect()
    }

    /// Checks a kernel (taking an already rotated key) against [`apply_mask_scalar`] for every
    /// length up to 300 and a few large ones, every start offset (misalignment) in `0..64`
    /// and every key offset in `0..4`, and checks that bytes outside the slice are untouched.
    fn check_kernel(name: &str, kernel: impl Fn(&mut [u8], [u8; 4])) {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        let lengths = (0..=300).chain([511, 512, 513, 1000, 4096, 4099]);
        for len in lengths {
            // 64 bytes of slack on both sides: the sub-slice starts at 0..64.
            let original = pattern(len + 128);
            for start in 0..64 {
                for offset in 0..4 {
                    let mut expected = original.clone();
                    apply_mask_scalar(&mut expected[start..start + len], key, offset);
                    let mut actual = original.clone();
                    kernel(&mut actual[start..start + len], rotate_key(key, offset));
                    assert!(
                        actual == expected,
                        "{name}: len {len}, start {start}, offset {offset}"
                    );
                }
            }
        }
    }

    #[test]
    fn mask_rfc6455_example() {
        // RFC 6455 §5.7: a masked "Hello" from a client.
        let key = [0x37, 0xfa, 0x21, 0x3d];
        let masked = [0x7f, 0x9f, 0x4d, 0x51, 0x58];

        let mut buf = *b"Hello";
        apply_mask(&mut buf, key, 0);
        assert_eq!(buf, masked);
        apply_mask(&mut buf, key, 0);
        assert_eq!(&buf, b"Hello");

        let mut buf = *b"Hello";
        apply_mask_scalar(&mut buf, key, 0);
        assert_eq!(buf, masked);
    }

    #[test]
    fn mask_in_pieces_matches_whole() {
        let key = [1, 2, 3, 4];
        let original = pattern(1000);
        let mut whole = original.clone();
        apply_mask(&mut whole, key, 0);
        for split in [0, 1, 2, 3, 5, 63, 64, 65, 129, 999, 1000] {
            let mut pieces = original.clone();
            let (a, b) = pieces.split_at_mut(split);
            apply_mask(a, key, 0);
            apply_mask(b, key, split);
            assert_eq!(pieces, whole, "split at {split}");
        }
    }

    #[test]
    fn mask_twice_is_identity() {
        let key = [0xde, 0xad, 0xbe, 0xef];
        for len in [0, 1, 7, 8, 63, 64, 65, 200, 4096 + 3] {
            for offset in 0..4 {
                let original = pattern(len);
                let mut buf = original.clone();
                apply_mask(&mut buf, key, offset);
                if len > 0 {
                    assert_ne!(buf, original);
                }
                apply_mask(&mut buf, key, offset);
                assert_eq!(buf, original, "len {len}, offset {offset}");
            }
        }
    }

    #[test]
    fn mask_only_offset_mod_4_matters() {
        let key = [9, 8, 7, 6];
        let original = pattern(300);
        let mut reference = original.clone();
        apply_mask(&mut reference, key, 1);
        for offset in [5, 9, 1001, usize::MAX - 2] {
            let mut buf = original.clone();
            apply_mask(&mut buf, key, offset);
            assert_eq!(buf, reference, "offset {offset}");
            let mut buf = original.clone();
            apply_mask_scalar(&mut buf, key, offset);
            assert_eq!(buf, reference, "scalar, offset {offset}");
        }
    }

    #[test]
    fn mask_rotate_key() {
        let key = [10, 11, 12, 13];
        for offset in 0..8 {
            let rotated = rotate_key(key, offset);
            for (i, &byte) in rotated.iter().enumerate() {
                assert_eq!(byte, key[(offset + i) % 4]);
            }
        }
    }

    #[test]
    fn mask_kernel_dispatch() {
        check_kernel("apply_mask", |buf, key| apply_mask(buf, key, 0));
    }

    #[test]
    fn mask_kernel_word() {
        check_kernel("word", mask_word);
    }

    #[test]
    fn mask_kernel_simd_entry() {
        check_kernel("mask_simd", mask_simd);
    }

    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    #[test]
    fn mask_kernel_sse2() {
        check_kernel("sse2", x86::mask_sse2);
    }

    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    #[test]
    fn mask_kernel_avx2() {
        if !std::is_x86_feature_detected!("avx2") {
            eprintln!("skipping: this CPU has no AVX2");
            return;
        }
        check_kernel("avx2", |buf, key| {
            // SAFETY: AVX2 support was just checked with `is_x86_feature_detected!`.
            unsafe { x86::mask_avx2(buf, key) }
        });
    }

    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    #[test]
    fn mask_dispatch_matches_cpu() {
        // Twice: the first call may detect, the second reads the cached value.
        for _ in 0..2 {
            assert_eq!(x86::has_avx2(), std::is_x86_feature_detected!("avx2"));
        }
    }

    #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
    #[test]
    fn mask_kernel_neon() {
        check_kernel("neon", aarch64::mask_neon);
    }

    proptest! {
        #[test]
        fn mask_matches_scalar(
            data in proptest::collection::vec(any::<u8>(), 0..5000),
            key in any::<[u8; 4]>(),
            offset in 0usize..8,
            start in 0usize..64,
        ) {
            let start = start.min(data.len());
            let mut expected = data.clone();
            apply_mask_scalar(&mut expected[start..], key, offset);
            let mut actual = data.clone();
            apply_mask(&mut actual[start..], key, offset);
            prop_assert_eq!(&actual[..start], &data[..start]);
            prop_assert_eq!(actual, expected);
        }
    }

    /// Rough throughput of each kernel: masks consecutive `len`-byte slices of a buffer of at
    /// least 64 KiB (starting `start` bytes in) until 512 MiB have been masked. Run with
    /// `cargo test --release -p wsx-proto mask_throughput -- --ignored --nocapture`.
    #[test]
    #[ignore = "timing, not a test; run in release"]
    fn mask_throughput() {
        use std::hint::black_box;
        use std::time::Instant;

        fn time(name: &str, len: usize, start: usize, kernel: impl Fn(&mut [u8])) {
            let mut buf = pattern(len.max(64 << 10) + 64);
            let frames = buf[start..].len() / len;
            let total: usize = 512 << 20;
            let rounds = (total / (frames * len)).max(1);
            let t = Instant::now();
            for _ in 0..rounds {
                for frame in buf[start..].chunks_exact_mut(len) {
                    kernel(black_box(frame));
                }
            }
            let secs = t.elapsed().as_secs_f64();
            let calls = (rounds * frames) as f64;
            let gbps = calls * len as f64 / secs / 1e9;
            let ns = secs * 1e9 / calls;
            eprintln!("{name:>8} len {len:>7} start {start:>2}: {gbps:6.1} GB/s {ns:9.1} ns/call");
        }

        let key = [0x37, 0xfa, 0x21, 0x3d];
        let cases = [
            (1 << 20, 0),
            (1 << 20, 3),
            (4096, 1),
            (256, 1),
            (128, 1),
            (96, 1),
            (64, 0),
            (64, 1),
            (16, 1),
        ];
        for (len, start) in cases {
            time("scalar", len, start, |b| apply_mask_scalar(b, key, 1));
            time("word", len, start, |b| mask_word(b, key));
            #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
            {
                time("sse2", len, start, |b| x86::mask_sse2(b, key));
                if std::is_x86_feature_detected!("avx2") {
                    // SAFETY: AVX2 support was just checked with `is_x86_feature_detected!`.
                    time("avx2", len, start, |b| unsafe { x86::mask_avx2(b, key) });
                }
            }
            #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
            time("neon", len, start, |b| aarch64::mask_neon(b, key));
            time("dispatch", len, start, |b| apply_mask(b, key, 1));
        }
    }
}
