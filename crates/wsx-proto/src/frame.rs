//! Frame headers (RFC 6455 §5.2): decoding what arrives, encoding what we send.
//!
//! The connection ([`crate::connection`]) decodes a header from the front of its read buffer,
//! checks it against the role and the negotiated extensions, then takes the payload as a slice of
//! the same buffer. Only the structural rules every endpoint applies live here: reserved opcodes,
//! control frame size and fragmentation, and the 64-bit length's top bit.

use crate::error::ProtocolError;

/// The longest a frame header can be: 2 bytes, 8 bytes of extended length, 4 bytes of mask key.
pub const MAX_HEADER_LEN: usize = 14;

/// The largest payload a control frame may carry.
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// A frame's opcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum OpCode {
    /// 0x0: continues a fragmented message.
    Continuation = 0x0,
    /// 0x1: the first frame of a text message.
    Text = 0x1,
    /// 0x2: the first frame of a binary message.
    Binary = 0x2,
    /// 0x8: close.
    Close = 0x8,
    /// 0x9: ping.
    Ping = 0x9,
    /// 0xA: pong.
    Pong = 0xA,
}

impl OpCode {
    /// The opcode for a 4-bit value, or an error for the reserved ones.
    pub fn from_u8(v: u8) -> Result<OpCode, ProtocolError> {
        Ok(match v {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            other => return Err(ProtocolError::ReservedOpcode(other)),
        })
    }

    /// Whether this is a control opcode (close, ping, pong).
    pub fn is_control(self) -> bool {
        (self as u8) & 0x8 != 0
    }
}

/// A decoded or to-be-encoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// The final fragment of a message.
    pub fin: bool,
    /// RSV1: "compressed" under permessage-deflate.
    pub rsv1: bool,
    /// RSV2: defined by no extension we support.
    pub rsv2: bool,
    /// RSV3: defined by no extension we support.
    pub rsv3: bool,
    /// The opcode.
    pub opcode: OpCode,
    /// The masking key, present on every client-to-server frame.
    pub mask: Option<[u8; 4]>,
    /// The payload length.
    pub payload_len: u64,
}

impl FrameHeader {
    /// A final, unmasked frame header without RSV bits.
    pub fn new(opcode: OpCode, payload_len: u64) -> Self {
        FrameHeader {
            fin: true,
            rsv1: false,
            rsv2: false,
            rsv3: false,
            opcode,
            mask: None,
            payload_len,
        }
    }

    /// Decode a header from the front of `buf`.
    ///
    /// `Ok(None)` means `buf` does not yet hold the whole header. On success, returns the
    /// header and its length in bytes.
    #[inline]
    pub fn decode(buf: &[u8]) -> Result<Option<(FrameHeader, usize)>, ProtocolError> {
        let [b0, b1, rest @ ..] = buf else {
            return Ok(None);
        };
        let (b0, b1) = (*b0, *b1);
        let opcode = OpCode::from_u8(b0 & 0x0F)?;
        let fin = b0 & 0x80 != 0;
        let len7 = b1 & 0x7F;
        if opcode.is_control() {
            if !fin {
                return Err(ProtocolError::FragmentedControlFrame);
            }
            if len7 as usize > MAX_CONTROL_PAYLOAD {
                return Err(ProtocolError::ControlFrameTooBig);
            }
        }
        // Slice patterns and `split_first_chunk` check each length once, without per-byte
        // bounds checks.
        let (payload_len, rest) = match len7 {
            126 => {
                let Some((len, rest)) = rest.split_first_chunk::<2>() else {
                    return Ok(None);
                };
                (u64::from(u16::from_be_bytes(*len)), rest)
            }
            127 => {
                let Some((len, rest)) = rest.split_first_chunk::<8>() else {
                    return Ok(None);
                };
                (u64::from_be_bytes(*len), rest)
            }
            n => (u64::from(n), rest),
        };
        let mask = if b1 & 0x80 != 0 {
            let Some((key, _)) = rest.split_first_chunk::<4>() else {
                return Ok(None);
            };
            Some(*key)
        } else {
            None
        };
        if payload_len >> 63 != 0 {
            return Err(ProtocolError::InvalidLength);
        }
        let header_len = buf.len() - rest.len() + if mask.is_some() { 4 } else { 0 };
        let header = FrameHeader {
            fin,
            rsv1: b0 & 0x40 != 0,
            rsv2: b0 & 0x20 != 0,
            rsv3: b0 & 0x10 != 0,
            opcode,
            mask,
            payload_len,
        };
        Ok(Some((header, header_len)))
    }

    /// The encoded length of this header.
    pub fn encoded_len(&self) -> usize {
        let ext = match self.payload_len {
            0..=125 => 0,
            126..=0xFFFF => 2,
            _ => 8,
        };
        2 + ext + if self.mask.is_some() { 4 } else { 0 }
    }

    /// Encode into `dst`, returning the number of bytes written (the minimal length encoding).
    pub fn encode(&self, dst: &mut [u8; MAX_HEADER_LEN]) -> usize {
        let b0 = (self.opcode as u8)
            | (u8::from(self.fin) << 7)
            | (u8::from(self.rsv1) << 6)
            | (u8::from(self.rsv2) << 5)
            | (u8::from(self.rsv3) << 4);
        let mask_bit = u8::from(self.mask.is_some()) << 7;
        dst[0] = b0;
        let mut at = match self.payload_len {
            n @ 0..=125 => {
                dst[1] = mask_bit | n as u8;
                2
            }
            n @ 126..=0xFFFF => {
                dst[1] = mask_bit | 126;
                dst[2..4].copy_from_slice(&(n as u16).to_be_bytes());
                4
            }
            n => {
                dst[1] = mask_bit | 127;
                dst[2..10].copy_from_slice(&n.to_be_bytes());
                10
            }
        };
        if let Some(key) = self.mask {
            dst[at..at + 4].copy_from_slice(&key);
            at += 4;
        }
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn opcode_strategy() -> impl Strategy<Value = OpCode> {
        prop_oneof![
            Just(OpCode::Continuation),
            Just(OpCode::Text),
            Just(OpCode::Binary),
            Just(OpCode::Close),
            Just(OpCode::Ping),
            Just(OpCode::Pong),
        ]
    }

    proptest! {
        #[test]
        fn round_trip(fin in any::<bool>(), rsv in 0u8..8, opcode in opcode_strategy(),
                      mask in proptest::option::of(any::<[u8; 4]>()),
                      len in prop_oneof![0u64..=125, 126u64..=0xFFFF, 0x1_0000u64..(1u64 << 63)]) {
            let fin = fin || opcode.is_control();
            let len = if opcode.is_control() { len % 126 } else { len };
            let h = FrameHeader { fin, rsv1: rsv & 4 != 0, rsv2: rsv & 2 != 0, rsv3: rsv & 1 != 0, opcode, mask, payload_len: len };
            let mut buf = [0u8; MAX_HEADER_LEN];
            let n = h.encode(&mut buf);
            prop_assert_eq!(n, h.encoded_len());
            for cut in 0..n {
                prop_assert_eq!(FrameHeader::decode(&buf[..cut]), Ok(None));
            }
            prop_assert_eq!(FrameHeader::decode(&buf[..n]), Ok(Some((h, n))));
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..20)) {
            let _ = FrameHeader::decode(&bytes);
        }
    }

    #[test]
    fn rejections() {
        for op in [3u8, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
            assert_eq!(
                FrameHeader::decode(&[0x80 | op, 0]),
                Err(ProtocolError::ReservedOpcode(op))
            );
        }
        assert_eq!(
            FrameHeader::decode(&[0x09, 0]),
            Err(ProtocolError::FragmentedControlFrame)
        );
        assert_eq!(
            FrameHeader::decode(&[0x89, 126, 0, 126]),
            Err(ProtocolError::ControlFrameTooBig)
        );
        let mut big = vec![0x82, 127];
        big.extend_from_slice(&(1u64 << 63).to_be_bytes());
        assert_eq!(FrameHeader::decode(&big), Err(ProtocolError::InvalidLength));
    }

    #[test]
    fn rfc_examples() {
        // A single-frame unmasked text message "Hello".
        let (h, n) = FrameHeader::decode(&[0x81, 0x05, 0x48]).unwrap().unwrap();
        assert_eq!(
            (h.fin, h.opcode, h.payload_len, h.mask, n),
            (true, OpCode::Text, 5, None, 2)
        );
        // Masked.
        let (h, n) = FrameHeader::decode(&[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d])
            .unwrap()
            .unwrap();
        assert_eq!((h.mask, n), (Some([0x37, 0xfa, 0x21, 0x3d]), 6));
        // 256 bytes binary, 16-bit length.
        let (h, n) = FrameHeader::decode(&[0x82, 0x7E, 0x01, 0x00])
            .unwrap()
            .unwrap();
        assert_eq!((h.payload_len, n), (256, 4));
    }
}
