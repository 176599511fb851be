//! The connection state machine as an in-memory client/server pair: no sockets.
mod common;

use bytes::Bytes;
use common::drain;
use proptest::prelude::*;
use wsx_proto::{
    CloseCode, CloseFrame, Config, Connection, Error, FrameHeader, MAX_HEADER_LEN, Message, OpCode,
    ProtocolError, Role, apply_mask,
};

/// Every message `conn` produces from `bytes` fed in one piece; the error, if any, last.
fn receive(conn: &mut Connection, bytes: &[u8]) -> (Vec<Message>, Option<Error>) {
    conn.feed(bytes);
    let mut msgs = Vec::new();
    loop {
        match conn.poll_message() {
            Ok(Some(m)) => msgs.push(m),
            Ok(None) => return (msgs, None),
            Err(e) => return (msgs, Some(e)),
        }
    }
}

/// A raw frame as a client would send it (masked), or unmasked with `mask = None`.
fn frame(fin: bool, rsv: u8, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = vec![(if fin { 0x80 } else { 0 }) | (rsv << 4) | opcode];
    let m = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n @ 0..=125 => out.push(m | n as u8),
        n @ 126..=0xFFFF => {
            out.push(m | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(m | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    let mut p = payload.to_vec();
    if let Some(key) = mask {
        out.extend_from_slice(&key);
        apply_mask(&mut p, key, 0);
    }
    out.extend_from_slice(&p);
    out
}

const KEY: Option<[u8; 4]> = Some([1, 2, 3, 4]);

fn server() -> Connection {
    Connection::new(Role::Server, Config::default())
}

/// The close frame a server queued, decoded by a client.
fn close_sent_by(server: &mut Connection) -> Option<CloseFrame> {
    let bytes = drain(server);
    let mut client = Connection::new(Role::Client, Config::default());
    let (msgs, err) = receive(&mut client, &bytes);
    assert!(err.is_none(), "{err:?}");
    match msgs.last() {
        Some(Message::Close(f)) => f.clone(),
        other => panic!("no close frame: {other:?}"),
    }
}

#[test]
fn client_to_server_and_back() {
    let mut client = Connection::new(Role::Client, Config::default());
    let mut server = server();
    client.send(Message::text("hello")).unwrap();
    client.send(Message::binary(vec![1u8, 2, 3])).unwrap();
    client
        .send(Message::Ping(Bytes::from_static(b"p")))
        .unwrap();
    let wire = drain(&mut client);
    let (msgs, err) = receive(&mut server, &wire);
    assert!(err.is_none());
    assert_eq!(
        msgs,
        vec![
            Message::text("hello"),
            Message::binary(vec![1u8, 2, 3]),
            Message::Ping(Bytes::from_static(b"p"))
        ]
    );
    // The server answered the ping by itself.
    let back = drain(&mut server);
    let (msgs, _) = receive(&mut client, &back);
    assert_eq!(msgs, vec![Message::Pong(Bytes::from_static(b"p"))]);
}

#[test]
fn fragmented_with_interleaved_ping() {
    let mut s = server();
    let mut wire = frame(false, 0, 1, "Hel".as_bytes(), KEY);
    wire.extend(frame(true, 0, 9, b"ping", KEY));
    wire.extend(frame(false, 0, 0, "lo, κό".as_bytes(), KEY));
    wire.extend(frame(true, 0, 0, "σμε".as_bytes(), KEY));
    let (msgs, err) = receive(&mut s, &wire);
    assert!(err.is_none());
    assert_eq!(
        msgs,
        vec![
            Message::Ping(Bytes::from_static(b"ping")),
            Message::text("Hello, κόσμε")
        ]
    );
}

#[test]
fn code_point_split_across_frames_is_accepted() {
    let mut s = server();
    let text = "κόσμε".as_bytes();
    let mut wire = frame(false, 0, 1, &text[..1], KEY);
    wire.extend(frame(true, 0, 0, &text[1..], KEY));
    let (msgs, err) = receive(&mut s, &wire);
    assert!(err.is_none());
    assert_eq!(msgs, vec![Message::text("κόσμε")]);
}

fn expect_failure(wire: Vec<u8>, code: CloseCode, check: impl Fn(&Error) -> bool) {
    let mut s = server();
    let (_, err) = receive(&mut s, &wire);
    let err = err.expect("an error");
    assert!(check(&err), "unexpected error {err:?}");
    assert!(s.is_failed() && s.is_closed());
    assert_eq!(close_sent_by(&mut s).map(|f| f.code), Some(code));
    // Nothing more comes out.
    assert!(matches!(s.poll_message(), Ok(None)));
}

#[test]
fn rejections_close_with_the_right_code() {
    use ProtocolError as P;
    let pe = |p: P| move |e: &Error| *e == Error::Protocol(p);
    expect_failure(
        frame(true, 0, 1, b"hi", None),
        CloseCode::PROTOCOL_ERROR,
        pe(P::UnmaskedFrame),
    );
    expect_failure(
        frame(true, 0, 3, b"", KEY),
        CloseCode::PROTOCOL_ERROR,
        pe(P::ReservedOpcode(3)),
    );
    expect_failure(
        frame(true, 0, 0xB, b"", KEY),
        CloseCode::PROTOCOL_ERROR,
        pe(P::ReservedOpcode(0xB)),
    );
    expect_failure(
        frame(true, 2, 1, b"hi", KEY),
        CloseCode::PROTOCOL_ERROR,
        pe(P::ReservedBits),
    );
    expect_failure(
        frame(true, 4, 1, b"hi", KEY),
        CloseCode::PROTOCOL_ERROR,
        pe(P::ReservedBits),
    );
    expect_failure(
        frame(true, 0, 9, &[0; 126], KEY),
        CloseCode::PROTOCOL_ERROR,
        pe(P::ControlFrameTooBig),
    );
    expect_failure(
        frame(false, 0, 9, b"", KEY),
        CloseCode::PROTOCOL_ERROR,
        pe(P::FragmentedControlFrame),
    );
    expect_failure(
        frame(true, 0, 0, b"x", KEY),
        CloseCode::PROTOCOL_ERROR,
        pe(P::UnexpectedContinuation),
    );
    let mut w = frame(false, 0, 1, b"a", KEY);
    w.extend(frame(true, 0, 1, b"b", KEY));
    expect_failure(w, CloseCode::PROTOCOL_ERROR, pe(P::ExpectedContinuation));
    expect_failure(
        frame(true, 0, 8, &[3], KEY),
        CloseCode::PROTOCOL_ERROR,
        pe(P::InvalidClosePayload),
    );
    expect_failure(
        frame(true, 0, 8, &[3, 0xed], KEY),
        CloseCode::PROTOCOL_ERROR,
        pe(P::InvalidCloseCode(1005)),
    );
    expect_failure(
        frame(true, 0, 8, &[0x03, 0xe8, 0xff], KEY),
        CloseCode::INVALID_PAYLOAD,
        |e| *e == Error::InvalidUtf8,
    );
    expect_failure(
        frame(true, 0, 1, b"\xff", KEY),
        CloseCode::INVALID_PAYLOAD,
        |e| *e == Error::InvalidUtf8,
    );
    let mut w = frame(false, 0, 1, b"\xe2\x82", KEY);
    w.extend(frame(true, 0, 0, b"", KEY));
    expect_failure(w, CloseCode::INVALID_PAYLOAD, |e| *e == Error::InvalidUtf8);
    let mut big = vec![0x82, 0xFF];
    big.extend_from_slice(&(1u64 << 63).to_be_bytes());
    big.extend_from_slice(&[1, 2, 3, 4]);
    expect_failure(big, CloseCode::PROTOCOL_ERROR, pe(P::InvalidLength));
}

#[test]
fn masked_frame_to_client_is_rejected() {
    let mut c = Connection::new(Role::Client, Config::default());
    let (_, err) = receive(&mut c, &frame(true, 0, 1, b"hi", KEY));
    assert_eq!(err, Some(Error::Protocol(ProtocolError::MaskedFrame)));
}

#[test]
fn limits_close_with_1009() {
    let cfg = Config::default().max_frame_size(100).max_message_size(150);
    let mut s = Connection::new(Role::Server, cfg);
    let (_, err) = receive(&mut s, &frame(true, 0, 2, &[0; 101], KEY));
    assert!(matches!(
        err,
        Some(Error::FrameTooBig {
            size: 101,
            limit: 100
        })
    ));
    assert_eq!(
        close_sent_by(&mut s).map(|f| f.code),
        Some(CloseCode::MESSAGE_TOO_BIG)
    );

    let mut s = Connection::new(Role::Server, cfg);
    let mut w = frame(false, 0, 2, &[0; 100], KEY);
    w.extend(frame(true, 0, 0, &[0; 60], KEY));
    let (_, err) = receive(&mut s, &w);
    assert!(matches!(
        err,
        Some(Error::MessageTooBig {
            size: 160,
            limit: 150
        })
    ));
    assert_eq!(
        close_sent_by(&mut s).map(|f| f.code),
        Some(CloseCode::MESSAGE_TOO_BIG)
    );
}

#[test]
fn invalid_utf8_fails_before_the_frame_is_complete() {
    let mut s = server();
    let mut payload = b"valid start ".to_vec();
    payload.extend_from_slice(b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80");
    payload.extend_from_slice(&[b'a'; 1000]);
    let wire = frame(true, 0, 1, &payload, KEY);
    // Only the header and the first 40 payload bytes have arrived.
    let header_len = 2 + 2 + 4;
    let (_, err) = receive(&mut s, &wire[..header_len + 40]);
    assert_eq!(err, Some(Error::InvalidUtf8));
}

#[test]
fn close_handshake_initiated_by_server() {
    let mut client = Connection::new(Role::Client, Config::default());
    let mut s = server();
    s.close(Some(CloseFrame::new(CloseCode::GOING_AWAY, "restart")))
        .unwrap();
    assert!(s.send(Message::text("late")).is_err());
    let (msgs, _) = receive(&mut client, &drain(&mut s));
    assert_eq!(
        msgs,
        vec![Message::Close(Some(CloseFrame::new(1001, "restart")))]
    );
    assert!(client.is_closed());
    let (msgs, _) = receive(&mut s, &drain(&mut client));
    assert_eq!(msgs, vec![Message::Close(Some(CloseFrame::new(1001, "")))]);
    assert!(s.is_closed() && !s.is_failed());
}

#[test]
fn sending_invalid_things_is_refused() {
    let mut c = Connection::new(Role::Client, Config::default());
    assert!(matches!(
        c.send(Message::Ping(Bytes::from(vec![0u8; 126]))),
        Err(Error::InvalidSend(_))
    ));
    assert!(matches!(
        c.close(Some(CloseFrame::new(1005, ""))),
        Err(Error::InvalidSend(_))
    ));
    assert!(matches!(
        c.close(Some(CloseFrame::new(1000, "x".repeat(124)))),
        Err(Error::InvalidSend(_))
    ));
    assert!(!c.has_output());
}

#[test]
fn never_panics_on_garbage() {
    for seed in 0u32..2000 {
        let mut x = seed.wrapping_mul(2654435761).wrapping_add(1);
        let bytes: Vec<u8> = (0..64)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        for role in [Role::Server, Role::Client] {
            let mut c = Connection::new(role, Config::default());
            let _ = receive(&mut c, &bytes);
        }
    }
}

#[derive(Debug, Clone)]
enum Item {
    Data {
        text: bool,
        payload: Vec<u8>,
        fragments: Vec<usize>,
        pings: Vec<Vec<u8>>,
    },
    Ping(Vec<u8>),
}

fn item() -> impl Strategy<Value = Item> {
    prop_oneof![
        (
            any::<bool>(),
            "\\PC{0,40}",
            proptest::collection::vec(0usize..60, 0..4),
            proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..10), 0..3)
        )
            .prop_map(|(text, s, fragments, pings)| {
                let payload = if text {
                    s.into_bytes()
                } else {
                    s.bytes().rev().collect()
                };
                Item::Data {
                    text,
                    payload,
                    fragments,
                    pings,
                }
            }),
        proptest::collection::vec(any::<u8>(), 0..125).prop_map(Item::Ping),
    ]
}

fn encode_items(items: &[Item]) -> (Vec<u8>, Vec<Message>) {
    let mut wire = Vec::new();
    let mut expect = Vec::new();
    for it in items {
        match it {
            Item::Ping(p) => {
                wire.extend(frame(true, 0, 9, p, KEY));
                expect.push(Message::Ping(Bytes::from(p.clone())));
            }
            Item::Data {
                text,
                payload,
                fragments,
                pings,
            } => {
                let mut cuts: Vec<usize> =
                    fragments.iter().map(|&c| c.min(payload.len())).collect();
                cuts.sort();
                let mut prev = 0;
                let mut pieces = Vec::new();
                for c in cuts {
                    pieces.push(&payload[prev..c]);
                    prev = c;
                }
                pieces.push(&payload[prev..]);
                for (i, piece) in pieces.iter().enumerate() {
                    let op = if i == 0 { if *text { 1 } else { 2 } } else { 0 };
                    let last = i + 1 == pieces.len();
                    wire.extend(frame(last, 0, op, piece, Some([i as u8, 7, 0x55, 0xAA])));
                    if !last && let Some(p) = pings.get(i) {
                        wire.extend(frame(true, 0, 9, p, KEY));
                        expect.push(Message::Ping(Bytes::from(p.clone())));
                    }
                }
                expect.push(if *text {
                    Message::text(String::from_utf8(payload.clone()).unwrap())
                } else {
                    Message::binary(payload.clone())
                });
            }
        }
    }
    (wire, expect)
}

proptest! {
    /// Feeding the same bytes split at any boundaries gives the same messages.
    #[test]
    fn any_split_gives_the_same_messages(items in proptest::collection::vec(item(), 1..8),
                                         mut cuts in proptest::collection::vec(0usize..2000, 0..20)) {
        let (wire, expect) = encode_items(&items);
        let mut s = server();
        cuts.push(wire.len());
        cuts.sort();
        let mut got = Vec::new();
        let mut prev = 0;
        for c in cuts {
            let c = c.min(wire.len()).max(prev);
            let (msgs, err) = receive(&mut s, &wire[prev..c]);
            prop_assert!(err.is_none(), "{:?}", err);
            got.extend(msgs);
            prev = c;
        }
        prop_assert_eq!(got, expect);
    }

    /// Whatever a client sends, a server receives unchanged.
    #[test]
    fn client_server_round_trip(msgs in proptest::collection::vec(
        prop_oneof![
            "\\PC{0,300}".prop_map(Message::text),
            proptest::collection::vec(any::<u8>(), 0..70000).prop_map(Message::binary),
        ], 1..5)) {
        let mut c = Connection::new(Role::Client, Config::default());
        let mut s = server();
        for m in &msgs {
            c.send(m.clone()).unwrap();
        }
        let (got, err) = receive(&mut s, &drain(&mut c));
        prop_assert!(err.is_none());
        prop_assert_eq!(got, msgs.clone());
        for m in &msgs {
            s.send(m.clone()).unwrap();
        }
        let (got, err) = receive(&mut c, &drain(&mut s));
        prop_assert!(err.is_none());
        prop_assert_eq!(got, msgs);
    }
}

#[test]
fn header_encoding_is_minimal() {
    let mut buf = [0u8; MAX_HEADER_LEN];
    assert_eq!(FrameHeader::new(OpCode::Binary, 125).encode(&mut buf), 2);
    assert_eq!(FrameHeader::new(OpCode::Binary, 126).encode(&mut buf), 4);
    assert_eq!(FrameHeader::new(OpCode::Binary, 65536).encode(&mut buf), 10);
}

#[test]
fn fragmented_sending() {
    let mut c = Connection::new(Role::Client, Config::default());
    let mut s = server();
    let text = "κόσμε".as_bytes();
    c.send_fragment(OpCode::Text, Bytes::copy_from_slice(&text[..1]), false)
        .unwrap();
    assert!(matches!(
        c.send(Message::text("x")),
        Err(Error::InvalidSend(_))
    ));
    c.send(Message::Ping(Bytes::from_static(b"p"))).unwrap();
    c.send_fragment(
        OpCode::Continuation,
        Bytes::copy_from_slice(&text[1..5]),
        false,
    )
    .unwrap();
    c.send_fragment(
        OpCode::Continuation,
        Bytes::copy_from_slice(&text[5..]),
        true,
    )
    .unwrap();
    c.send_fragment(OpCode::Binary, Bytes::from_static(b"ab"), false)
        .unwrap();
    c.send_fragment(OpCode::Continuation, Bytes::from_static(b"cd"), true)
        .unwrap();
    let (msgs, err) = receive(&mut s, &drain(&mut c));
    assert!(err.is_none());
    assert_eq!(
        msgs,
        vec![
            Message::Ping(Bytes::from_static(b"p")),
            Message::text("κόσμε"),
            Message::binary(&b"abcd"[..])
        ]
    );
    assert!(matches!(
        c.send_fragment(OpCode::Continuation, Bytes::new(), true),
        Err(Error::InvalidSend(_))
    ));
    c.send_fragment(OpCode::Text, Bytes::from_static(b"\xe2\x82"), false)
        .unwrap();
    assert!(matches!(
        c.send_fragment(OpCode::Continuation, Bytes::new(), true),
        Err(Error::InvalidSend(_))
    ));
}
