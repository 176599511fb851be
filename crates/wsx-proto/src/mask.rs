//! Masking (RFC 6455 §5.3): XOR a payload with a 4-byte key, in place.

/// XOR `buf` in place with `key`, starting at byte `offset` of the key's 4-byte cycle
/// (`offset` is the number of payload bytes already masked before `buf`, modulo 4).
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    apply_mask_scalar(buf, key, offset)
}

/// The reference scalar implementation.
pub fn apply_mask_scalar(buf: &mut [u8], key: [u8; 4], offset: usize) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b ^= key[(i + offset) & 3];
    }
}
