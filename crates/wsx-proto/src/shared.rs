//! [`SharedPayload`]: the part of a broadcast message that many connections send, with its
//! compressed forms cached.
//!
//! A broadcaster (a chat room, a STOMP topic) builds one `SharedPayload` per message and hands
//! a clone to every recipient's connection ([`crate::Connection::send_shared`]), optionally
//! behind a per-recipient head. A connection that uses permessage-deflate without context
//! takeover (the default) asks the payload for its compressed form under that connection's
//! compressor parameters (level and window, see `deflate::CompressKey`); the first one to ask
//! compresses it, the others get the same bytes. Connections without deflate, with context
//! takeover, or for which the message is under `min_size` never touch the cache.
//!
//! The per-recipient head is sent as stored deflate blocks in front of the shared compressed
//! tail: a sync-flushed deflate stream ends on a byte boundary, so
//! `stored(head) ++ compressed(tail)` inflates to `head ++ tail` for a receiver that starts
//! each message with a fresh inflater, and the tail's back-references stay inside the tail.

use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use bytes::Bytes;

use crate::deflate::{CompressKey, compress_fresh};
use crate::error::Error;

/// The most compressed forms one payload keeps; with one server config there is one per
/// window size a message of its length can get (at most 7).
const MAX_FORMS: usize = 8;

/// The bytes of a message (or of its tail) shared by many connections, and their compressed
/// forms, each computed once on first use. Cloning is cheap (a reference count).
#[derive(Debug, Clone)]
pub struct SharedPayload {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    bytes: Bytes,
    /// Whether `bytes` is valid UTF-8, checked on first use.
    utf8: OnceLock<bool>,
    /// Compressed forms (without the sync flush's `00 00 ff ff`), by compressor parameters.
    compressed: Mutex<Vec<(CompressKey, Bytes)>>,
}

impl SharedPayload {
    /// Share `bytes`.
    pub fn new(bytes: Bytes) -> Self {
        SharedPayload {
            inner: Arc::new(Inner {
                bytes,
                utf8: OnceLock::new(),
                compressed: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The bytes.
    pub fn bytes(&self) -> &Bytes {
        &self.inner.bytes
    }

    /// The number of bytes.
    pub fn len(&self) -> usize {
        self.inner.bytes.len()
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.inner.bytes.is_empty()
    }

    /// Whether the bytes are valid UTF-8 (checked once).
    pub fn is_utf8(&self) -> bool {
        *self
            .inner
            .utf8
            .get_or_init(|| simdutf8::basic::from_utf8(&self.inner.bytes).is_ok())
    }

    /// How many compressed forms are cached.
    pub fn compressed_forms(&self) -> usize {
        self.forms().len()
    }

    /// The bytes compressed by a fresh compressor with `key`, and whether this call did the
    /// compressing (`false`: another connection already had). Concurrent callers wait for the
    /// first one instead of compressing too.
    pub(crate) fn compressed(&self, key: CompressKey) -> Result<(Bytes, bool), Error> {
        let mut forms = self.forms();
        if let Some((_, bytes)) = forms.iter().find(|(k, _)| *k == key) {
            return Ok((bytes.clone(), false));
        }
        let bytes = compress_fresh(key, &self.inner.bytes)?;
        if forms.len() < MAX_FORMS {
            forms.push((key, bytes.clone()));
        }
        Ok((bytes, true))
    }

    fn forms(&self) -> std::sync::MutexGuard<'_, Vec<(CompressKey, Bytes)>> {
        self.inner
            .compressed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl From<Bytes> for SharedPayload {
    fn from(bytes: Bytes) -> Self {
        SharedPayload::new(bytes)
    }
}

/// How [`crate::Connection::send_shared`] sent a message, for a broadcaster's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharedSend {
    /// As it is: no permessage-deflate, under `min_size`, or compression off.
    Uncompressed,
    /// With the payload's compressed form shared among connections.
    SharedCompressed {
        /// This call compressed the payload (the first connection with these parameters).
        compressed_now: bool,
    },
    /// Compressed by the connection itself (its compressor keeps context between messages).
    OwnCompressed,
}

#[cfg(test)]
mod tests {
    use flate2::{Decompress, FlushDecompress};

    use super::*;
    use crate::config::Config;
    use crate::connection::Connection;
    use crate::deflate::{DeflateConfig, DeflateParams, PerMessageDeflate};
    use crate::frame::{FrameHeader, OpCode};
    use crate::message::Message;
    use crate::role::Role;

    fn params(server_no_context_takeover: bool, server_bits: u8) -> DeflateParams {
        DeflateParams {
            server_no_context_takeover,
            client_no_context_takeover: true,
            server_max_window_bits: server_bits,
            client_max_window_bits: 15,
        }
    }

    fn config(server_no_context_takeover: bool) -> DeflateConfig {
        DeflateConfig {
            server_no_context_takeover,
            ..DeflateConfig::default()
        }
    }

    /// A server connection with `params`, and a client that reads what it sends.
    fn pair(params: Option<DeflateParams>, config: &DeflateConfig) -> (Connection, Connection) {
        let mut server = Connection::new(Role::Server, Config::default());
        let mut client = Connection::new(Role::Client, Config::default());
        if let Some(p) = params {
            server = server.with_deflate(PerMessageDeflate::new(Role::Server, p, config));
            client = client.with_deflate(PerMessageDeflate::new(Role::Client, p, config));
        }
        (server, client)
    }

    /// Send `head ++ tail` from `server` and return how it went, the frame's RSV1 and payload,
    /// and the message `client` decoded.
    fn send(
        server: &mut Connection,
        client: &mut Connection,
        opcode: OpCode,
        head: &[u8],
        tail: &SharedPayload,
    ) -> (SharedSend, bool, Vec<u8>, Message) {
        let sent = server.send_shared(opcode, head, tail).unwrap();
        let wire = server.take_output();
        let (header, n) = FrameHeader::decode(&wire).unwrap().unwrap();
        assert_eq!(wire.len(), n + header.payload_len as usize, "one frame");
        client.feed(&wire);
        let msg = client.poll_message().unwrap().unwrap();
        (sent, header.rsv1, wire[n..].to_vec(), msg)
    }

    /// Inflate one permessage-deflate payload with a plain zlib raw inflater (RFC 7692 §7.2.2).
    fn zlib_inflate(payload: &[u8]) -> Vec<u8> {
        let mut d = Decompress::new(false);
        let mut input = payload.to_vec();
        input.extend_from_slice(&[0x00, 0x00, 0xff, 0xff]);
        let mut out = Vec::with_capacity(1 << 20);
        d.decompress_vec(&input, &mut out, FlushDecompress::Sync)
            .unwrap();
        assert_eq!(d.total_in() as usize, input.len());
        out
    }

    fn json(len: usize) -> Vec<u8> {
        let mut s = String::from("[");
        let mut i = 0;
        while s.len() < len {
            s.push_str(&format!(
                "{{\"symbol\":\"S{i:03}\",\"price\":{}.{:02},\"volume\":{}}},",
                100 + i * 7 % 13,
                i * 37 % 100,
                i * 1009 % 7919
            ));
            i += 1;
        }
        s.truncate(len - 1);
        s.push(']');
        s.into_bytes()
    }

    #[test]
    fn a_stored_head_and_a_shared_compressed_tail_inflate_as_one_message() {
        let noise: Vec<u8> = (0..100_000_u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let heads: [&[u8]; 4] = [
            b"",
            b"MESSAGE\nsubscription:sub-0\nack:42\n",
            &[b'h'; 70_000],
            "héad ".as_bytes(),
        ];
        let tails = [
            Vec::new(),
            json(1024),
            json(300_000),
            noise,
            b"x".repeat(300),
        ];
        let lean = DeflateConfig {
            min_size: 0,
            ..DeflateConfig::default()
        };
        for bits in [9, 11, 15] {
            for head in heads {
                for tail in &tails {
                    let (mut server, mut client) = pair(Some(params(true, bits)), &lean);
                    let shared = SharedPayload::new(Bytes::from(tail.clone()));
                    let (sent, rsv1, payload, msg) =
                        send(&mut server, &mut client, OpCode::Binary, head, &shared);
                    assert!(matches!(sent, SharedSend::SharedCompressed { .. }));
                    assert!(rsv1);
                    let mut whole = head.to_vec();
                    whole.extend_from_slice(tail);
                    assert_eq!(msg.payload(), &whole[..], "bits {bits}");
                    assert_eq!(zlib_inflate(&payload), whole);
                }
            }
        }
    }

    #[test]
    fn compressed_once_per_parameter_set() {
        let tail = SharedPayload::new(Bytes::from(json(1024)));
        let head = b"MESSAGE\nsubscription:0\n";
        let mut firsts = 0;
        // Windows of 11 bits and more give a 1 KiB message the same 11-bit compressor; 9 and
        // 10 bits are two more parameter sets.
        for bits in [15, 9, 12, 15, 10, 11, 9, 15] {
            let (mut server, mut client) = pair(Some(params(true, bits)), &config(true));
            let (sent, rsv1, payload, msg) =
                send(&mut server, &mut client, OpCode::Text, head, &tail);
            let SharedSend::SharedCompressed { compressed_now } = sent else {
                panic!("{sent:?}");
            };
            firsts += usize::from(compressed_now);
            assert!(rsv1 && payload.len() < 600, "{}", payload.len());
            assert_eq!(msg.payload().len(), head.len() + tail.len());
        }
        assert_eq!(firsts, 3);
        assert_eq!(tail.compressed_forms(), 3);
    }

    #[test]
    fn min_size_no_deflate_and_context_takeover() {
        let big = SharedPayload::new(Bytes::from(json(1024)));
        let small = SharedPayload::new(Bytes::from(json(200)));
        // Under min_size (head and tail together): as it is.
        let (mut server, mut client) = pair(Some(params(true, 15)), &config(true));
        let (sent, rsv1, _, msg) = send(&mut server, &mut client, OpCode::Text, b"", &small);
        assert_eq!((sent, rsv1), (SharedSend::Uncompressed, false));
        assert_eq!(msg.payload(), small.bytes());
        let (sent, ..) = send(&mut server, &mut client, OpCode::Text, &[b' '; 60], &small);
        assert!(matches!(sent, SharedSend::SharedCompressed { .. }));
        assert_eq!(small.compressed_forms(), 1);
        // No deflate.
        let (mut server, mut client) = pair(None, &config(true));
        let (sent, rsv1, payload, _) = send(&mut server, &mut client, OpCode::Text, b"h", &big);
        assert_eq!((sent, rsv1), (SharedSend::Uncompressed, false));
        assert_eq!(&payload[1..], &big.bytes()[..]);
        // Context takeover: the connection compresses itself, and the context carries over.
        let (mut server, mut client) = pair(Some(params(false, 15)), &config(false));
        let (sent, _, first, _) = send(&mut server, &mut client, OpCode::Text, b"h", &big);
        assert_eq!(sent, SharedSend::OwnCompressed);
        let (sent, rsv1, second, msg) = send(&mut server, &mut client, OpCode::Text, b"h", &big);
        assert_eq!((sent, rsv1), (SharedSend::OwnCompressed, true));
        assert!(second.len() < first.len() / 4);
        assert_eq!(&msg.payload()[1..], &big.bytes()[..]);
        // A server compressing with an 8-bit window cannot: as it is.
        let (mut server, mut client) = pair(Some(params(true, 8)), &config(true));
        let (sent, ..) = send(&mut server, &mut client, OpCode::Text, b"", &big);
        assert_eq!(sent, SharedSend::Uncompressed);
        assert_eq!(big.compressed_forms(), 0);
    }

    #[test]
    fn text_must_be_utf8_across_head_and_tail() {
        let (mut server, _) = pair(Some(params(true, 15)), &config(true));
        // A code point split between head and tail is fine.
        let tail = SharedPayload::new(Bytes::from_static(&[0xa9, b'!']));
        assert!(!tail.is_utf8());
        server.send_shared(OpCode::Text, &[0xc3], &tail).unwrap();
        assert!(matches!(
            server.send_shared(OpCode::Text, b"", &tail),
            Err(Error::InvalidSend(_))
        ));
        assert!(matches!(
            server.send_shared(OpCode::Ping, b"", &tail),
            Err(Error::InvalidSend(_))
        ));
    }
}
