//! Fuzz target: the STOMP frame decoder (`wsx_stomp::Decoder`) fed arbitrary bytes in
//! arbitrary chunks, under each version's rules and small or default limits.
//!
//! Invariants checked, besides "no panic":
//! - frames respect the limits (body size, header count);
//! - once `poll_frame` fails it keeps failing with the same error, and feeding changes nothing;
//! - what is decoded does not depend on how the bytes were split: one decoder fed everything at
//!   once gives the same frames, and fails if and only if the chunked one does (which error
//!   is the first one noticed may depend on how much had arrived);
//! - a decoded frame that `encode` accepts decodes back to itself.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use wsx_stomp::{Decoder, Error, Frame, Limits, Version};

#[derive(Arbitrary, Debug)]
struct Input {
    version: u8,
    small: Option<(u16, u8, u16, u16)>,
    bytes: Vec<u8>,
    chunks: Vec<u16>,
}

fn decode_all(decoder: &mut Decoder, out: &mut Vec<Result<Frame, Error>>) {
    loop {
        match decoder.poll_frame() {
            Ok(Some(f)) => out.push(Ok(f)),
            Ok(None) => return,
            Err(e) => {
                out.push(Err(e));
                return;
            }
        }
    }
}

fuzz_target!(|input: Input| {
    let version = Version::ALL[usize::from(input.version % 3)];
    let limits = match input.small {
        None => Limits::default(),
        // At least 1 byte of frame and line: with 0, the first half of a heart-beat `\r\n`
        // split across two chunks already crosses the limit (reported, see
        // crates/wsx-stomp/tests/fuzz_regressions.rs).
        Some((frame, headers, line, body)) => Limits::default()
            .max_frame_size(usize::from(frame).max(1))
            .max_headers(usize::from(headers))
            .max_header_line(usize::from(line).max(1))
            .max_body_size(usize::from(body)),
    };

    let mut chunked = Decoder::new(limits);
    chunked.set_version(version);
    let mut events = Vec::new();
    let mut at = 0;
    for size in input.chunks.iter().take(128) {
        let n = (usize::from(*size) % 512).min(input.bytes.len() - at);
        chunked.feed(&input.bytes[at..at + n]);
        at += n;
        if matches!(events.last(), Some(Err(_))) {
            continue;
        }
        decode_all(&mut chunked, &mut events);
    }
    chunked.feed(&input.bytes[at..]);
    if !matches!(events.last(), Some(Err(_))) {
        decode_all(&mut chunked, &mut events);
    }
    if let Some(Err(e)) = events.last() {
        chunked.feed(b"SEND\n\n\0");
        assert_eq!(
            chunked.poll_frame().as_ref(),
            Err(e),
            "a failed decoder recovered"
        );
    }

    let mut whole = Decoder::new(limits);
    whole.set_version(version);
    whole.feed(&input.bytes);
    let mut at_once = Vec::new();
    decode_all(&mut whole, &mut at_once);
    // An error is the first limit or rule violation noticed, which depends on how much had
    // arrived (a 1-byte chunk over a 0-byte frame limit is FrameTooBig before the line it
    // starts is too long): compare the frames, and that both failed.
    let frames = |v: &[Result<Frame, Error>]| -> (Vec<Frame>, bool) {
        let ok = v.iter().filter_map(|r| r.as_ref().ok()).cloned().collect();
        (ok, v.iter().any(Result::is_err))
    };
    assert_eq!(
        frames(&events),
        frames(&at_once),
        "frames depend on how the input was split: {events:?} vs {at_once:?}"
    );

    for frame in events.iter().filter_map(|e| e.as_ref().ok()) {
        assert!(frame.body.len() <= limits.max_body_size);
        assert!(frame.headers.len() <= limits.max_headers);
        let Ok(encoded) = frame.encode(version) else {
            continue;
        };
        let mut again = Decoder::new(
            Limits::default()
                .max_frame_size(usize::MAX)
                .max_body_size(usize::MAX)
                .max_header_line(usize::MAX)
                .max_headers(usize::MAX),
        );
        again.set_version(version);
        again.feed(&encoded);
        match again.poll_frame() {
            Ok(Some(f)) => assert_eq!(&f, frame, "re-encoding changed the frame"),
            other => panic!("re-encoded frame {encoded:?} decodes to {other:?}"),
        }
    }
});
