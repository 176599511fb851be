//! Fuzz target: `wsx_proto::FrameHeader::decode` on arbitrary bytes, and the masking kernels on
//! the payload that follows.
//!
//! Invariants checked, besides "no panic":
//! - a decoded header is at most 14 bytes, within the input, and its length matches its fields
//!   (the minimal encoding, or a longer length form the RFC allows);
//! - decoding only looks at the header: every shorter prefix of a complete header is
//!   "incomplete" (`Ok(None)`), and the bytes after it change nothing;
//! - encoding the decoded header and decoding that gives the same header back;
//! - `apply_mask` (SIMD where available) equals `apply_mask_scalar` for the bytes after the
//!   header, at every offset, whole or in two pieces, and masking twice restores the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsx_proto::FrameHeader;
use wsx_proto::MAX_HEADER_LEN;
use wsx_proto::{apply_mask, apply_mask_scalar};

fuzz_target!(|data: &[u8]| {
    let result = FrameHeader::decode(data);
    let head = &data[..data.len().min(MAX_HEADER_LEN)];
    assert_eq!(
        result,
        FrameHeader::decode(head),
        "decode looked past 14 bytes"
    );
    if let Ok(Some((h, n))) = result {
        assert!(n <= MAX_HEADER_LEN && n <= data.len() && n >= h.encoded_len());
        let ext = match data[1] & 0x7F {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        assert_eq!(n, 2 + ext + if h.mask.is_some() { 4 } else { 0 });
        for cut in 0..n {
            assert_eq!(
                FrameHeader::decode(&data[..cut]),
                Ok(None),
                "prefix {cut} of {n}"
            );
        }
        assert!(h.payload_len >> 63 == 0);
        if h.opcode.is_control() {
            assert!(h.fin && h.payload_len <= 125);
        }
        let mut buf = [0u8; MAX_HEADER_LEN];
        let m = h.encode(&mut buf);
        assert_eq!(m, h.encoded_len());
        assert_eq!(FrameHeader::decode(&buf[..m]), Ok(Some((h, m))));

        let payload = &data[n..];
        let key = h.mask.unwrap_or([data[0], data[1], 0x5a, 0xa5]);
        // In place, at the payload's (unaligned) position in the input.
        let mut whole = data.to_vec();
        apply_mask(&mut whole[n..], key, 0);
        let mut slow0 = payload.to_vec();
        apply_mask_scalar(&mut slow0, key, 0);
        assert_eq!(&whole[n..], &slow0[..], "SIMD masking differs in place");
        for offset in 0..4 {
            let mut fast = payload.to_vec();
            let mut slow = payload.to_vec();
            apply_mask(&mut fast, key, offset);
            apply_mask_scalar(&mut slow, key, offset);
            assert_eq!(fast, slow, "SIMD masking differs at offset {offset}");
            // In two pieces, split where the payload's first byte says.
            let split = usize::from(data[0]).min(payload.len());
            let mut pieces = payload.to_vec();
            let (a, b) = pieces.split_at_mut(split);
            apply_mask(a, key, offset);
            apply_mask(b, key, offset + split);
            assert_eq!(pieces, slow, "masking in pieces differs");
            apply_mask(&mut fast, key, offset);
            assert_eq!(fast, payload, "masking twice did not restore the payload");
        }
    } else if let Err(e) = result {
        // Once an error, always an error: more bytes never make a bad header good.
        let mut longer = data.to_vec();
        longer.extend_from_slice(&[0xFF; MAX_HEADER_LEN]);
        assert_eq!(FrameHeader::decode(&longer), Err(e));
    }
});
