//! Property tests: decode(encode(frames)) == frames for arbitrary frames, however the byte
//! stream is cut into chunks and with heart-beats between frames; arbitrary or corrupted input
//! gives errors, never panics (in the decoder and in a whole session).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use proptest::prelude::*;
use wsx_stomp::{
    AllowAll, Command, ConnId, ConnectionInfo, Decoder, Escaping, Frame, Headers, Limits,
    MemoryEngine, Session, SessionConfig, Version, encode,
};

fn version() -> impl Strategy<Value = Version> {
    prop::sample::select(Version::ALL.to_vec())
}

fn command() -> impl Strategy<Value = Command> {
    prop::sample::select(Command::ALL.to_vec())
}

/// Text drawn from the characters that matter to STOMP framing, plus some ordinary ones.
fn text() -> impl Strategy<Value = String> {
    let chars = prop::sample::select(vec![
        'a', 'b', 'z', '0', '-', '/', ' ', ':', '\n', '\r', '\\', '\0', 'é', '€', '😀', 'c', 'n',
    ]);
    prop::collection::vec(chars, 0..12).prop_map(|c| c.into_iter().collect())
}

/// Make a header representable with `escaping` (raw headers cannot hold every character).
fn representable(escaping: Escaping, mut name: String, mut value: String) -> (String, String) {
    if escaping == Escaping::Raw {
        name.retain(|c| c != '\n' && c != ':');
        value.retain(|c| c != '\n');
        while value.ends_with('\r') {
            value.pop();
        }
    }
    // The codec owns content-length.
    if name == "content-length" {
        name.push('x');
    }
    (name, value)
}

fn frame_for(version: Version) -> impl Strategy<Value = Frame> {
    (
        command(),
        prop::collection::vec((text(), text()), 0..6),
        prop::collection::vec(any::<u8>(), 0..40),
    )
        .prop_map(move |(command, headers, body)| {
            let escaping = Escaping::for_frame(version, command);
            let headers: Headers = headers
                .into_iter()
                .map(|(n, v)| representable(escaping, n, v))
                .collect();
            Frame {
                command,
                headers,
                body: Bytes::from(body),
            }
        })
}

fn frames_and_version() -> impl Strategy<Value = (Version, Vec<Frame>)> {
    version().prop_flat_map(|v| (Just(v), prop::collection::vec(frame_for(v), 1..5)))
}

/// Cut `bytes` at the given (arbitrary) points.
fn chunks(bytes: &[u8], cuts: &[prop::sample::Index]) -> Vec<Vec<u8>> {
    let mut points: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
    points.sort_unstable();
    let mut out = Vec::new();
    let mut start = 0;
    for p in points {
        out.push(bytes[start..p].to_vec());
        start = p;
    }
    out.push(bytes[start..].to_vec());
    out
}

fn decode_chunks(version: Version, chunks: &[Vec<u8>]) -> Result<Vec<Frame>, wsx_stomp::Error> {
    let mut decoder = Decoder::new(Limits::default());
    decoder.set_version(version);
    let mut frames = Vec::new();
    for chunk in chunks {
        decoder.feed(chunk);
        while let Some(frame) = decoder.poll_frame()? {
            frames.push(frame);
        }
    }
    assert!(decoder.is_idle());
    Ok(frames)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn roundtrip_one_frame((version, frames) in frames_and_version()) {
        let frame = &frames[0];
        let bytes = encode(frame, version).expect("representable");
        let decoded = decode_chunks(version, &[bytes.to_vec()]).expect("decodes");
        prop_assert_eq!(decoded, vec![frame.clone()]);
    }

    #[test]
    fn roundtrip_packed_split_and_with_heart_beats(
        (version, frames) in frames_and_version(),
        beats in prop::collection::vec(prop::sample::select(vec!["", "\n", "\r\n", "\n\n\r\n"]), 5),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let mut stream = Vec::new();
        for (i, frame) in frames.iter().enumerate() {
            stream.extend_from_slice(beats[i % beats.len()].as_bytes());
            stream.extend_from_slice(&encode(frame, version).expect("representable"));
        }
        stream.extend_from_slice(beats[4].as_bytes());
        let decoded = decode_chunks(version, &chunks(&stream, &cuts)).expect("decodes");
        prop_assert_eq!(decoded, frames);
    }

    #[test]
    fn escaping_roundtrips(escaping in prop::sample::select(vec![Escaping::V1_1, Escaping::V1_2]), s in text()) {
        let mut buf = bytes::BytesMut::new();
        escaping.escape_into(&s, &mut buf);
        prop_assert_eq!(buf.len(), escaping.escaped_len(&s));
        prop_assert!(!buf.contains(&b'\n') && !buf.contains(&b':'));
        prop_assert_eq!(escaping.unescape(&buf).expect("valid"), s);
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        data in prop::collection::vec(any::<u8>(), 0..512),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
        version in version(),
    ) {
        let limits = Limits::default().max_frame_size(256).max_headers(4).max_header_line(64).max_body_size(128);
        let mut decoder = Decoder::new(limits);
        decoder.set_version(version);
        'feed: for chunk in chunks(&data, &cuts) {
            decoder.feed(&chunk);
            loop {
                match decoder.poll_frame() {
                    Ok(Some(frame)) => prop_assert!(frame.body.len() <= 128),
                    Ok(None) => break,
                    Err(_) => break 'feed,
                }
            }
        }
        prop_assert!(decoder.buffered() <= 256 + 512);
    }

    #[test]
    fn corrupted_frames_never_panic(
        (version, frames) in frames_and_version(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let mut stream = Vec::new();
        for frame in &frames {
            stream.extend_from_slice(&encode(frame, version).expect("representable"));
        }
        for (at, byte) in flips {
            let i = at.index(stream.len());
            stream[i] = byte;
        }
        let _ = decode_chunks_lenient(version, &stream);
    }

    #[test]
    fn sessions_survive_arbitrary_input(
        prefix in prop::sample::select(vec![
            &b""[..],
            &b"CONNECT\naccept-version:1.2\n\n\0"[..],
            &b"CONNECT\naccept-version:1.1\n\n\0SUBSCRIBE\nid:1\ndestination:/queue/a\nack:client\n\n\0"[..],
        ]),
        data in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        let mut engine = MemoryEngine::new();
        let mut out = Vec::new();
        let now = Instant::now();
        let mut session = Session::new(
            ConnId(1),
            ConnectionInfo::new(),
            Arc::new(SessionConfig::default()),
            Arc::new(AllowAll),
            now,
        );
        session.receive(now, prefix, &mut engine, &mut out);
        session.receive(now, &data, &mut engine, &mut out);
        for delivery in out.drain(..) {
            let _ = session.deliver(delivery);
        }
        while session.poll_transmit(now).is_some() {}
        session.handle_timeout(now, &mut engine, &mut out);
        session.shutdown(&mut engine, &mut out);
    }
}

fn decode_chunks_lenient(version: Version, bytes: &[u8]) -> Vec<Frame> {
    let mut decoder = Decoder::new(Limits::default());
    decoder.set_version(version);
    decoder.feed(bytes);
    let mut frames = Vec::new();
    while let Ok(Some(frame)) = decoder.poll_frame() {
        frames.push(frame);
    }
    frames
}
