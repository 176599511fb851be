//! The wire form of a message inside Redis: one compact binary record, the payload of a
//! `PUBLISH` (topics) or the `m` field of a stream entry (queues).
//!
//! Sits between the engine ([`crate::RedisEngine`]), which encodes what a client SENDs and
//! decodes what comes back from Redis, and the background tasks, which only move the bytes.
//!
//! Layout (all lengths big-endian):
//!
//! ```text
//! u8  version (1)
//! u8  flags (bit 0: redelivered, bit 1: sender's sequence follows)
//! [u64 sender's incarnation, u64 sequence number]   (with flag bit 1)
//! u16 len + message id
//! u16 len + destination
//! u16 header count, then per header: u32 len + name, u32 len + value
//! body (the rest)
//! ```

use bytes::{Buf, BufMut, Bytes, BytesMut};
use wsx_stomp::{Destination, Headers, MessageId, Publish};

use crate::Error;

const VERSION: u8 = 1;
const FLAG_REDELIVERED: u8 = 1;
const FLAG_SEQUENCE: u8 = 2;

/// Who wrote a message, and its number among that writer's SENDs: an engine's incarnation
/// (random per start) and a sequence number that grows in the order its writer writes. A
/// receiver drops what it has already seen (a `PUBLISH` written again after a timeout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sequence {
    pub incarnation: u64,
    pub seq: u64,
}

/// A message as stored in Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Wire {
    pub id: MessageId,
    pub redelivered: bool,
    pub sequence: Option<Sequence>,
    pub publish: Publish,
}

/// Encode `publish` under `id`.
pub(crate) fn encode(
    id: &MessageId,
    sequence: Option<Sequence>,
    publish: &Publish,
) -> Result<Bytes, Error> {
    let too_long = |what: &str| Error::TooLarge(what.to_owned());
    let mut buf = BytesMut::with_capacity(80 + publish.body.len());
    buf.put_u8(VERSION);
    match sequence {
        Some(sequence) => {
            buf.put_u8(FLAG_SEQUENCE);
            buf.put_u64(sequence.incarnation);
            buf.put_u64(sequence.seq);
        }
        None => buf.put_u8(0),
    }
    let id = id.as_str().as_bytes();
    buf.put_u16(u16::try_from(id.len()).map_err(|_| too_long("message id"))?);
    buf.put_slice(id);
    let dest = publish.destination.as_str().as_bytes();
    buf.put_u16(u16::try_from(dest.len()).map_err(|_| too_long("destination"))?);
    buf.put_slice(dest);
    buf.put_u16(u16::try_from(publish.headers.len()).map_err(|_| too_long("header count"))?);
    for (name, value) in publish.headers.iter() {
        buf.put_u32(u32::try_from(name.len()).map_err(|_| too_long("header name"))?);
        buf.put_slice(name.as_bytes());
        buf.put_u32(u32::try_from(value.len()).map_err(|_| too_long("header value"))?);
        buf.put_slice(value.as_bytes());
    }
    buf.put_slice(&publish.body);
    Ok(buf.freeze())
}

/// Split a topic message as its channel carries it (`oOFFSET:` + stored message, see
/// [`crate::connections`]' `TOPIC_PUBLISH` script) into its offset and the stored message; a
/// message without the prefix (a user destination's) has no offset.
pub(crate) fn split_offset(payload: Bytes) -> Result<(Option<u64>, Bytes), Error> {
    if payload.first() != Some(&b'o') {
        return Ok((None, payload));
    }
    let colon = payload
        .iter()
        .take(22)
        .position(|&b| b == b':')
        .ok_or_else(|| Error::Malformed("offset prefix".to_owned()))?;
    let offset = std::str::from_utf8(&payload[1..colon])
        .ok()
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| Error::Malformed("offset".to_owned()))?;
    Ok((Some(offset), payload.slice(colon + 1..)))
}

/// Re-encode a stored payload with the redelivered flag set (for a requeued copy).
pub(crate) fn mark_redelivered(payload: &Bytes) -> Bytes {
    let mut copy = BytesMut::from(&payload[..]);
    if copy.len() >= 2 {
        copy[1] |= FLAG_REDELIVERED;
    }
    copy.freeze()
}

/// Decode a payload read from Redis. Anything else in a channel or stream is reported, never
/// trusted.
pub(crate) fn decode(mut payload: Bytes) -> Result<Wire, Error> {
    let bad = |why: &str| Error::Malformed(why.to_owned());
    if payload.remaining() < 2 {
        return Err(bad("truncated"));
    }
    if payload.get_u8() != VERSION {
        return Err(bad("unknown version"));
    }
    let flags = payload.get_u8();
    let redelivered = flags & FLAG_REDELIVERED != 0;
    let mut sequence = None;
    if flags & FLAG_SEQUENCE != 0 {
        if payload.remaining() < 16 {
            return Err(bad("sequence"));
        }
        sequence = Some(Sequence {
            incarnation: payload.get_u64(),
            seq: payload.get_u64(),
        });
    }
    let id = take_str16(&mut payload).ok_or_else(|| bad("message id"))?;
    let dest = take_str16(&mut payload).ok_or_else(|| bad("destination"))?;
    let destination = Destination::parse(&dest).ok_or_else(|| bad("destination"))?;
    if payload.remaining() < 2 {
        return Err(bad("header count"));
    }
    let count = payload.get_u16();
    let mut headers = Headers::with_capacity(usize::from(count));
    for _ in 0..count {
        let name = take_str32(&mut payload).ok_or_else(|| bad("header name"))?;
        let value = take_str32(&mut payload).ok_or_else(|| bad("header value"))?;
        headers.push(name, value);
    }
    Ok(Wire {
        id: MessageId::new(id),
        redelivered,
        sequence,
        publish: Publish::new(destination, headers, payload),
    })
}

fn take_str16(payload: &mut Bytes) -> Option<String> {
    if payload.remaining() < 2 {
        return None;
    }
    let len = usize::from(payload.get_u16());
    take_str(payload, len)
}

fn take_str32(payload: &mut Bytes) -> Option<String> {
    if payload.remaining() < 4 {
        return None;
    }
    let len = usize::try_from(payload.get_u32()).ok()?;
    take_str(payload, len)
}

fn take_str(payload: &mut Bytes, len: usize) -> Option<String> {
    if payload.remaining() < len {
        return None;
    }
    String::from_utf8(payload.split_to(len).to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut headers = Headers::new();
        headers.push("content-type", "text/plain");
        headers.push("x-k", "a:b\nc");
        let publish = Publish::new(
            Destination::parse("/queue/jobs").expect("valid"),
            headers,
            Bytes::from_static(b"he\0llo"),
        );
        let id = MessageId::new("node-1");
        let sequence = Sequence {
            incarnation: 7,
            seq: 42,
        };
        let payload = encode(&id, Some(sequence), &publish).expect("encodes");
        let wire = decode(payload.clone()).expect("decodes");
        assert_eq!(wire.id, id);
        assert_eq!(wire.sequence, Some(sequence));
        assert!(!wire.redelivered);
        assert_eq!(wire.publish, publish);
        assert!(
            decode(mark_redelivered(&payload))
                .expect("decodes")
                .redelivered
        );
        for cut in 0..payload.len() - 6 {
            let _ = decode(payload.slice(..cut)); // never panics
        }
        assert!(decode(Bytes::from_static(b"\x09\0")).is_err());
        let plain = encode(&id, None, &publish).expect("encodes");
        assert_eq!(decode(plain.clone()).expect("decodes").sequence, None);
        let mut published = b"o42:".to_vec();
        published.extend_from_slice(&plain);
        let (offset, stored) = split_offset(Bytes::from(published)).expect("splits");
        assert_eq!((offset, &stored), (Some(42), &plain));
        assert_eq!(split_offset(plain.clone()).expect("plain").0, None);
        assert!(split_offset(Bytes::from_static(b"oxx:1")).is_err());
        assert!(split_offset(Bytes::from_static(b"o12")).is_err());
    }
}
