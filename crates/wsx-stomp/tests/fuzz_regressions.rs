//! Regression tests for what the `stomp_decoder` fuzz target (`fuzz/`, run with
//! `scripts/fuzz.sh`) found: the decoder must give the same result however the bytes are
//! split into chunks. Tests still marked `#[ignore]` document a bug whose fix is pending in
//! `src/decode.rs`; remove the attribute with the fix.

use wsx_stomp::{Decoder, Limits, Version};

/// Feed `chunks` one after the other, polling after each; `Ok(frames)` or the first error.
fn decode_chunks(limits: Limits, chunks: &[&[u8]]) -> Result<usize, wsx_stomp::Error> {
    let mut decoder = Decoder::new(limits);
    decoder.set_version(Version::V1_2);
    let mut frames = 0;
    for chunk in chunks {
        decoder.feed(chunk);
        while decoder.poll_frame()?.is_some() {
            frames += 1;
        }
    }
    Ok(frames)
}

/// Found by `stomp_decoder`. A heart-beat `\r\n` split into `\r` and `\n` is skipped when it
/// arrives whole, but its first half alone is held as the start of a frame and counted against
/// the limits: with `max_frame_size` 0 (or `max_header_line` 0) the lone `\r` already fails
/// with `FrameTooBig` (`HeaderLineTooLong`). Only zero limits are affected.
///
/// Fix: in `Decoder::scan_head`, when no command has been read yet and the unscanned bytes
/// are exactly `\r` (half a heart-beat), return `Ok(false)` before the limit checks.
#[test]
fn split_heart_beat_under_zero_limits() {
    for limits in [
        Limits::default().max_frame_size(0),
        Limits::default().max_header_line(0),
    ] {
        assert_eq!(decode_chunks(limits, &[b"\r\n"]), Ok(0));
        assert_eq!(decode_chunks(limits, &[b"\r", b"\n"]), Ok(0), "{limits:?}");
    }
}

/// The same split with the default limits is a plain heart-beat, and a frame may follow.
#[test]
fn split_heart_beat_then_frame() {
    let chunks: [&[u8]; 3] = [b"\r", b"\n", b"SEND\ndestination:/queue/a\n\nhi\0"];
    assert_eq!(decode_chunks(Limits::default(), &chunks), Ok(1));
}
