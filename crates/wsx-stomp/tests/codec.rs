//! Codec unit tests: every frame kind, escaping per version, framing details, limits, errors.

use std::sync::Arc;

use bytes::Bytes;
use wsx_stomp::{
    Command, Decoder, Destination, Error, Frame, Headers, Limits, Message, MessageId, Publish,
    Version, encode, encode_lossy,
};

fn decode_all(version: Version, bytes: &[u8]) -> Result<Vec<Frame>, Error> {
    let mut decoder = Decoder::new(Limits::default());
    decoder.set_version(version);
    decoder.feed(bytes);
    let mut frames = Vec::new();
    while let Some(frame) = decoder.poll_frame()? {
        frames.push(frame);
    }
    Ok(frames)
}

fn decode_one(version: Version, bytes: &[u8]) -> Frame {
    let mut frames = decode_all(version, bytes).expect("valid frame");
    assert_eq!(frames.len(), 1, "{frames:?}");
    frames.remove(0)
}

fn decode_err(version: Version, bytes: &[u8]) -> Error {
    decode_all(version, bytes).expect_err("invalid input")
}

/// Wire bytes, the command they hold, some headers they hold.
type Case = (
    &'static [u8],
    Command,
    &'static [(&'static str, &'static str)],
);

#[test]
fn client_frames_decode() {
    let cases: &[Case] = &[
        (
            b"CONNECT\naccept-version:1.2\nhost:h\nlogin:u\npasscode:p\nheart-beat:0,0\n\n\0",
            Command::Connect,
            &[("accept-version", "1.2"), ("host", "h"), ("login", "u")],
        ),
        (
            b"STOMP\naccept-version:1.1,1.2\nhost:h\n\n\0",
            Command::Stomp,
            &[("accept-version", "1.1,1.2")],
        ),
        (
            b"SEND\ndestination:/queue/a\ncontent-type:text/plain\n\nhi\0",
            Command::Send,
            &[("destination", "/queue/a"), ("content-type", "text/plain")],
        ),
        (
            b"SUBSCRIBE\nid:0\ndestination:/topic/t\nack:client\n\n\0",
            Command::Subscribe,
            &[("id", "0"), ("ack", "client")],
        ),
        (
            b"UNSUBSCRIBE\nid:0\n\n\0",
            Command::Unsubscribe,
            &[("id", "0")],
        ),
        (
            b"ACK\nid:12\ntransaction:t\n\n\0",
            Command::Ack,
            &[("id", "12"), ("transaction", "t")],
        ),
        (b"NACK\nid:12\n\n\0", Command::Nack, &[("id", "12")]),
        (
            b"BEGIN\ntransaction:t\n\n\0",
            Command::Begin,
            &[("transaction", "t")],
        ),
        (
            b"COMMIT\ntransaction:t\n\n\0",
            Command::Commit,
            &[("transaction", "t")],
        ),
        (
            b"ABORT\ntransaction:t\n\n\0",
            Command::Abort,
            &[("transaction", "t")],
        ),
        (
            b"DISCONNECT\nreceipt:77\n\n\0",
            Command::Disconnect,
            &[("receipt", "77")],
        ),
    ];
    for (bytes, command, headers) in cases {
        let frame = decode_one(Version::V1_2, bytes);
        assert_eq!(frame.command, *command);
        assert!(command.is_client());
        for (name, value) in *headers {
            assert_eq!(frame.header(name), Some(*value), "{command} {name}");
        }
    }
    let send = decode_one(Version::V1_2, cases[2].0);
    assert_eq!(&send.body[..], b"hi");
}

#[test]
fn server_frames_encode_exactly() {
    let connected = Frame::new(Command::Connected)
        .with_header("version", "1.2")
        .with_header("heart-beat", "10000,10000");
    assert_eq!(
        &encode(&connected, Version::V1_2).unwrap()[..],
        b"CONNECTED\nversion:1.2\nheart-beat:10000,10000\n\n\0"
    );
    let message = Frame::new(Command::Message)
        .with_header("subscription", "s:1")
        .with_header("message-id", "9")
        .with_header("destination", "/topic/t")
        .with_body("hey");
    assert_eq!(
        &encode(&message, Version::V1_2).unwrap()[..],
        b"MESSAGE\nsubscription:s\\c1\nmessage-id:9\ndestination:/topic/t\ncontent-length:3\n\nhey\0"
    );
    let receipt = Frame::new(Command::Receipt).with_header("receipt-id", "r1");
    assert_eq!(
        &encode(&receipt, Version::V1_1).unwrap()[..],
        b"RECEIPT\nreceipt-id:r1\n\n\0"
    );
    let error = Frame::new(Command::Error)
        .with_header("message", "bad thing")
        .with_body("detail");
    assert_eq!(
        &encode(&error, Version::V1_0).unwrap()[..],
        b"ERROR\nmessage:bad thing\ncontent-length:6\n\ndetail\0"
    );
    for frame in [connected, message, receipt, error] {
        assert!(frame.command.is_server());
        let again = decode_one(Version::V1_2, &encode(&frame, Version::V1_2).unwrap());
        assert_eq!(again, frame);
    }
}

#[test]
fn escaping_in_1_2() {
    let frame = decode_one(
        Version::V1_2,
        b"SEND\ndestination:/queue/a\nk\\cey:a\\r\\n\\c\\\\b\n\n\0",
    );
    assert_eq!(frame.header("k:ey"), Some("a\r\n:\\b"));
    let encoded = encode(&frame, Version::V1_2).unwrap();
    assert!(
        encoded
            .windows(b"k\\cey:a\\r\\n\\c\\\\b\n".len())
            .any(|w| w == b"k\\cey:a\\r\\n\\c\\\\b\n")
    );
    assert_eq!(
        decode_err(Version::V1_2, b"SEND\nk:a\\tb\n\n\0"),
        Error::InvalidEscape("\\t".into())
    );
    assert_eq!(
        decode_err(Version::V1_2, b"SEND\nk:ab\\\n\n\0"),
        Error::InvalidEscape("\\".into())
    );
}

#[test]
fn escaping_in_1_1() {
    let frame = decode_one(Version::V1_1, b"SEND\nk:a\\n\\c\\\\b\n\n\0");
    assert_eq!(frame.header("k"), Some("a\n:\\b"));
    // 1.1 has no \r escape; a raw \r is written as is and kept.
    assert_eq!(
        decode_err(Version::V1_1, b"SEND\nk:a\\rb\n\n\0"),
        Error::InvalidEscape("\\r".into())
    );
    let frame = Frame::new(Command::Send).with_header("k", "a\rb\r");
    let bytes = encode(&frame, Version::V1_1).unwrap();
    assert_eq!(&bytes[..], b"SEND\nk:a\rb\r\n\n\0");
    assert_eq!(decode_one(Version::V1_1, &bytes), frame);
}

#[test]
fn no_escaping_in_1_0() {
    let frame = decode_one(Version::V1_0, b"SEND\nk:a\\cb:c\n\n\0");
    assert_eq!(frame.header("k"), Some("a\\cb:c"));
    let newline = Frame::new(Command::Send).with_header("k", "a\nb");
    assert!(matches!(
        encode(&newline, Version::V1_0),
        Err(Error::Unencodable { .. })
    ));
    let colon_name = Frame::new(Command::Send).with_header("a:b", "v");
    assert!(encode(&colon_name, Version::V1_0).is_err());
    assert_eq!(
        &encode_lossy(&newline.with_header("ok", "1"), Version::V1_0)[..],
        b"SEND\nok:1\n\n\0"
    );
}

#[test]
fn connect_and_connected_are_never_escaped() {
    let frame = decode_one(Version::V1_2, b"CONNECT\nlogin:a\\cb\npasscode:x:y\n\n\0");
    assert_eq!(frame.header("login"), Some("a\\cb"));
    assert_eq!(frame.header("passcode"), Some("x:y"));
    let connected = Frame::new(Command::Connected).with_header("server", "a\\b:c");
    assert_eq!(
        &encode(&connected, Version::V1_2).unwrap()[..],
        b"CONNECTED\nserver:a\\b:c\n\n\0"
    );
    let newline = Frame::new(Command::Connected).with_header("server", "a\nb");
    assert!(encode(&newline, Version::V1_2).is_err());
}

#[test]
fn repeated_headers_first_wins() {
    let frame = decode_one(Version::V1_2, b"SEND\nfoo:first\nfoo:second\n\n\0");
    assert_eq!(frame.header("foo"), Some("first"));
    assert_eq!(
        frame.headers.get_all("foo").collect::<Vec<_>>(),
        ["first", "second"]
    );
    let again = decode_one(Version::V1_2, &encode(&frame, Version::V1_2).unwrap());
    assert_eq!(again.headers, frame.headers);
}

#[test]
fn content_length_allows_nul_in_body() {
    let frame = decode_one(
        Version::V1_2,
        b"SEND\ndestination:/queue/a\ncontent-length:5\ncontent-length:1\n\na\0b\0c\0",
    );
    assert_eq!(&frame.body[..], b"a\0b\0c");
    assert!(!frame.headers.contains("content-length"));
    let bytes = encode(&frame, Version::V1_2).unwrap();
    assert_eq!(decode_one(Version::V1_2, &bytes), frame);
    assert_eq!(
        decode_err(Version::V1_2, b"SEND\ncontent-length:2\n\nabc\0"),
        Error::MissingNul(2)
    );
    assert_eq!(
        decode_err(Version::V1_2, b"SEND\ncontent-length:-1\n\n\0"),
        Error::InvalidContentLength("-1".into())
    );
}

#[test]
fn crlf_line_endings() {
    let frame = decode_one(
        Version::V1_2,
        b"SEND\r\ndestination:/queue/a\r\nk:v\r\n\r\nbody\0",
    );
    assert_eq!(frame.header("destination"), Some("/queue/a"));
    assert_eq!(frame.header("k"), Some("v"));
    assert_eq!(&frame.body[..], b"body");
    // In 1.1 a header line is only `\n`-terminated; the `\r` is part of the value.
    let frame = decode_one(Version::V1_1, b"SEND\r\nk:v\r\n\r\n\0");
    assert_eq!(frame.header("k"), Some("v\r"));
}

#[test]
fn heart_beats_between_frames_are_skipped() {
    let frames = decode_all(
        Version::V1_2,
        b"\n\r\n\nSEND\n\n\0\n\n\r\nSEND\nk:v\n\nx\0\r\n",
    )
    .unwrap();
    assert_eq!(frames.len(), 2);
    assert_eq!(frames[1].header("k"), Some("v"));
    let mut decoder = Decoder::new(Limits::default());
    decoder.feed(b"\n\n\r");
    assert_eq!(decoder.poll_frame(), Ok(None));
    assert!(decoder.is_idle());
    decoder.feed(b"\nSEND\n\n\0");
    assert!(decoder.poll_frame().unwrap().is_some());
}

#[test]
fn frame_split_byte_by_byte() {
    let bytes = b"SEND\ndestination:/queue/a\ncontent-length:3\n\na\0b\0MESSAGE\n\nz\0";
    let mut decoder = Decoder::new(Limits::default());
    let mut frames = Vec::new();
    for b in bytes {
        decoder.feed(&[*b]);
        while let Some(frame) = decoder.poll_frame().unwrap() {
            frames.push(frame);
        }
    }
    assert_eq!(frames.len(), 2);
    assert_eq!(&frames[0].body[..], b"a\0b");
    assert_eq!(&frames[1].body[..], b"z");
}

#[test]
fn errors_name_the_problem() {
    let small = Limits::default()
        .max_frame_size(100)
        .max_headers(2)
        .max_header_line(20)
        .max_body_size(10);
    let run = |bytes: &[u8]| {
        let mut decoder = Decoder::new(small);
        decoder.feed(bytes);
        loop {
            match decoder.poll_frame() {
                Ok(Some(_)) => continue,
                Ok(None) => return None,
                Err(e) => return Some(e),
            }
        }
    };
    assert_eq!(run(b"FOO\n\n\0"), Some(Error::UnknownCommand("FOO".into())));
    assert_eq!(
        Error::UnknownCommand("FOO".into()).to_string(),
        "unknown command `FOO`"
    );
    assert_eq!(
        run(b"send\n\n\0"),
        Some(Error::UnknownCommand("send".into()))
    );
    assert_eq!(
        run(b"SEND\nno colon\n\n\0"),
        Some(Error::MalformedHeader("no colon".into()))
    );
    assert_eq!(
        run(b"SEND\na:1\nb:2\nc:3\n\n\0"),
        Some(Error::TooManyHeaders { limit: 2 })
    );
    assert!(matches!(
        run(b"SEND\nk:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
        Some(Error::HeaderLineTooLong { limit: 20, .. })
    ));
    assert_eq!(
        run(b"SEND\ncontent-length:11\n\n"),
        Some(Error::BodyTooBig {
            size: 11,
            limit: 10
        })
    );
    assert!(matches!(
        run(b"SEND\n\n0123456789ab"),
        Some(Error::BodyTooBig { limit: 10, .. })
    ));
    assert_eq!(run(b"SEND\nk:\xff\n\n\0"), Some(Error::InvalidUtf8));
    let mut decoder = Decoder::new(Limits::default().max_frame_size(30));
    decoder.feed(b"SEND\nk:0123456789\nk:0123456789\n");
    assert_eq!(decoder.poll_frame(), Err(Error::FrameTooBig { limit: 30 }));
    let big = Limits::default().max_frame_size(30).max_body_size(1000);
    let mut decoder = Decoder::new(big);
    decoder.feed(b"SEND\ncontent-length:100\n\n");
    assert_eq!(decoder.poll_frame(), Err(Error::FrameTooBig { limit: 30 }));
    // The decoder stays failed.
    decoder.feed(b"SEND\n\n\0");
    assert_eq!(decoder.poll_frame(), Err(Error::FrameTooBig { limit: 30 }));
}

#[test]
fn message_tail_is_encoded_once_and_shared() {
    let mut headers = Headers::new();
    headers.push("content-type", "text/plain");
    headers.push("subscription", "spoofed");
    let publish = Publish::new(
        Destination::parse("/topic/news").unwrap(),
        headers,
        Bytes::from_static(b"hello\0world"),
    );
    let message = Arc::new(Message::new(MessageId::new("42"), publish));
    let a = message.encode_for(Version::V1_2, "sub-a", Some("7"), false);
    let b = message.encode_for(Version::V1_2, "sub:b", None, true);
    assert_eq!(a.tail().as_ptr(), b.tail().as_ptr(), "the tail is shared");
    assert!(a.is_utf8(), "NUL is UTF-8");
    let binary = Message::new(
        MessageId::new("43"),
        Publish::new(
            Destination::parse("/queue/bin").unwrap(),
            Headers::new(),
            Bytes::from_static(b"\xff\xfe"),
        ),
    );
    let encoded = binary.encode_for(Version::V1_2, "s", None, false);
    assert!(!encoded.is_utf8());
    assert!(
        !wsx_stomp::EncodedFrame::from_parts(encoded.head().clone(), encoded.tail().clone())
            .is_utf8()
    );
    let fa = decode_one(Version::V1_2, &a.to_bytes());
    let fb = decode_one(Version::V1_2, &b.to_bytes());
    assert_eq!(fa.command, Command::Message);
    assert_eq!(fa.header("subscription"), Some("sub-a"));
    assert_eq!(fa.header("ack"), Some("7"));
    assert_eq!(fa.header("message-id"), Some("42"));
    assert_eq!(fa.header("destination"), Some("/topic/news"));
    assert_eq!(fa.header("content-type"), Some("text/plain"));
    assert_eq!(
        fa.headers.get_all("subscription").count(),
        1,
        "reserved headers dropped"
    );
    assert_eq!(&fa.body[..], b"hello\0world");
    assert_eq!(fb.header("subscription"), Some("sub:b"));
    assert_eq!(fb.header("redelivered"), Some("true"));
    assert_eq!(fb.header("ack"), None);
    // Each version gets its own cached tail.
    let old = message.encode_for(Version::V1_0, "s", None, false);
    assert_ne!(old.tail().as_ptr(), a.tail().as_ptr());
    assert_eq!(decode_one(Version::V1_0, &old.to_bytes()).body, fa.body);
}
