//! Shared pieces of the wsx fuzz targets (`fuzz/fuzz_targets/*.rs`).
//!
//! Where this sits: the targets feed fuzzer-chosen input to the sans-IO parsers of `wsx-proto`
//! (frame headers, the HTTP handshake, permessage-deflate, the whole [`Connection`]) and to the
//! STOMP [`Decoder`](wsx_stomp::Decoder). Most targets mix raw bytes with structured input
//! built here (well-formed frames with fuzzer-chosen fields, compressed messages), so that the
//! fuzzer gets past the first checks and reaches the deep states quickly.
//!
//! Run them with `scripts/fuzz.sh SECONDS`.

use std::io::IoSlice;

use arbitrary::Arbitrary;
use wsx_proto::Connection;
use wsx_proto::deflate::{DeflateConfig, DeflateParams};
use wsx_proto::apply_mask_scalar;

/// How a frame's payload length is written on the wire: minimal, or a longer form the RFC also
/// accepts (a 16-bit or 64-bit length for a short payload).
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LenForm {
    /// The shortest encoding.
    Minimal,
    /// Always the 16-bit extended length (when the length fits).
    Ext16,
    /// Always the 64-bit extended length.
    Ext64,
}

/// Encode a frame byte by byte, with any opcode nibble and RSV bits, masked with `mask` if
/// given (the payload is masked with the scalar reference loop).
pub fn raw_frame(
    fin: bool,
    rsv: u8,
    opcode: u8,
    mask: Option<[u8; 4]>,
    form: LenForm,
    payload: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 14);
    out.push((if fin { 0x80 } else { 0 }) | ((rsv & 7) << 4) | (opcode & 0x0F));
    let m = if mask.is_some() { 0x80 } else { 0 };
    let len = payload.len();
    match (form, len) {
        (LenForm::Minimal, 0..=125) => out.push(m | len as u8),
        (LenForm::Minimal | LenForm::Ext16, 0..=0xFFFF) => {
            out.push(m | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(m | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    if let Some(key) = mask {
        out.extend_from_slice(&key);
    }
    let body = out.len();
    out.extend_from_slice(payload);
    if let Some(key) = mask {
        apply_mask_scalar(&mut out[body..], key, 0);
    }
    out
}

/// Everything `conn` has queued for writing, taken in writes of at most `max_write` bytes
/// (0: unlimited), marked written.
pub fn drain(conn: &mut Connection, max_write: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while conn.has_output() {
        let mut slices = [IoSlice::new(&[]); 8];
        let n = conn.output_chunks(&mut slices);
        assert!(n > 0, "has_output() but output_chunks() gave nothing");
        assert_eq!(
            &slices[0][..],
            conn.output_first_chunk(),
            "output_first_chunk() is not the first slice of output_chunks()"
        );
        if n < slices.len() {
            let total: usize = slices[..n].iter().map(|s| s.len()).sum();
            assert_eq!(
                total,
                conn.buffered_amount(),
                "output_chunks() and buffered_amount() disagree"
            );
        }
        let mut taken = 0;
        for s in &slices[..n] {
            let room = if max_write == 0 {
                s.len()
            } else {
                (max_write - taken).min(s.len())
            };
            out.extend_from_slice(&s[..room]);
            taken += room;
            if max_write != 0 && taken == max_write {
                break;
            }
        }
        assert!(taken > 0, "has_output() but output_chunks() gave no bytes");
        let before = conn.buffered_amount();
        conn.advance_output(taken);
        assert_eq!(
            conn.buffered_amount(),
            before - taken,
            "advance_output miscounted"
        );
    }
    out
}

/// Fuzzer-chosen permessage-deflate parameters and policy for a codec pair.
#[derive(Arbitrary, Debug, Clone)]
pub struct DeflateSetup {
    /// `server_no_context_takeover` negotiated.
    pub server_nct: bool,
    /// `client_no_context_takeover` negotiated.
    pub client_nct: bool,
    /// Negotiated server window, mapped into 8..=15.
    pub server_bits: u8,
    /// Negotiated client window, mapped into 8..=15.
    pub client_bits: u8,
    /// Our config's level (clamped by the library).
    pub level: u8,
    /// Our config's `min_size`.
    pub min_size: u16,
    /// Our config's own `server_no_context_takeover` (our compressor policy as a server).
    pub cfg_server_nct: bool,
    /// Our config's own `client_no_context_takeover`.
    pub cfg_client_nct: bool,
    /// Our config's window caps (any byte: the library clamps).
    pub cfg_server_bits: u8,
    /// See `cfg_server_bits`.
    pub cfg_client_bits: u8,
}

impl DeflateSetup {
    /// The negotiated parameters, with windows in the range a negotiation can give.
    pub fn params(&self) -> DeflateParams {
        DeflateParams {
            server_no_context_takeover: self.server_nct,
            client_no_context_takeover: self.client_nct,
            server_max_window_bits: 8 + self.server_bits % 8,
            client_max_window_bits: 8 + self.client_bits % 8,
        }
    }

    /// Our side's config.
    pub fn config(&self) -> DeflateConfig {
        DeflateConfig {
            level: u32::from(self.level % 11),
            min_size: usize::from(self.min_size),
            server_max_window_bits: self.cfg_server_bits,
            client_max_window_bits: self.cfg_client_bits,
            server_no_context_takeover: self.cfg_server_nct,
            client_no_context_takeover: self.cfg_client_nct,
        }
    }

    /// The peer's config: compress everything, at the fuzzer's level, full windows.
    pub fn peer_config(&self) -> DeflateConfig {
        DeflateConfig {
            level: u32::from(self.level % 10).max(1),
            min_size: 0,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
            server_no_context_takeover: false,
            client_no_context_takeover: false,
        }
    }
}

/// A payload for structured input: raw bytes, valid UTF-8, or a long compressible run.
#[derive(Arbitrary, Debug, Clone)]
pub enum Payload {
    /// Any bytes.
    Bytes(Vec<u8>),
    /// Valid UTF-8.
    Text(String),
    /// `len` copies of `byte` (compresses very well: small deflate bombs).
    Run {
        /// The byte.
        byte: u8,
        /// How many.
        len: u16,
    },
    /// A close payload: code and reason.
    Close {
        /// The status code.
        code: u16,
        /// The reason.
        reason: String,
    },
}

impl Payload {
    /// The bytes.
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            Payload::Bytes(b) => b.clone(),
            Payload::Text(s) => s.as_bytes().to_vec(),
            Payload::Run { byte, len } => vec![*byte; usize::from(*len)],
            Payload::Close { code, reason } => {
                let mut v = code.to_be_bytes().to_vec();
                v.extend_from_slice(reason.as_bytes());
                v
            }
        }
    }
}
