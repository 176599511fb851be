//! What a client can make a session hold through what it sends, and who a message says it is
//! from: caps on naming headers (`id`, `receipt`, `transaction`, `destination`…) and on the
//! header bytes of a frame, transactions counted in whole frames per transaction and per
//! connection, the `user-id` of a SEND set by the server, control characters escaped in ERROR
//! messages.

mod common;

use std::sync::Arc;

use common::{Harness, Seen, assert_error, frames, send, subscribe};
use wsx_stomp::{
    Command, ConnectRequest, Decoder, Error, Frame, Limits, Principal, Refusal, SessionConfig,
    Version,
};

fn begin(tx: &str) -> Frame {
    Frame::new(Command::Begin).with_header("transaction", tx)
}

/// A SEND with no body and `n` custom headers of `len` bytes each.
fn header_only_send(destination: &str, tx: &str, n: usize, len: usize) -> Frame {
    let mut frame = Frame::new(Command::Send)
        .with_header("destination", destination)
        .with_header("transaction", tx);
    for i in 0..n {
        frame = frame.with_header(format!("h{i}"), "v".repeat(len));
    }
    frame
}

#[test]
fn long_ids_receipts_transactions_and_destinations_are_errors() {
    let long = "i".repeat(257);
    let fits = "i".repeat(256);
    let cases = [
        (
            subscribe(&long, "/topic/t", "auto"),
            "SUBSCRIBE header `id` is 257 bytes",
        ),
        (
            send("/queue/q", "x").with_header("receipt", long.as_str()),
            "header `receipt` is 257 bytes",
        ),
        (begin(&long), "BEGIN header `transaction` is 257 bytes"),
        (
            send(&format!("/topic/{long}"), "x"),
            "header `destination` is 264 bytes",
        ),
        (
            Frame::new(Command::Ack).with_header("id", long.as_str()),
            "ACK header `id` is 257 bytes",
        ),
    ];
    let mut h = Harness::new(SessionConfig::default());
    for (frame, needle) in cases {
        let conn = h.connect();
        h.send(conn, frame);
        let error = assert_error(&h.drain(conn), needle);
        let message = error.header("message").unwrap_or_default();
        assert!(
            message.contains("limit") && message.contains("256 bytes"),
            "{message}"
        );
        // The too-long receipt is not echoed.
        assert_eq!(error.header("receipt-id"), None);
        assert!(h.broker.session(conn).expect("session").is_closed());
    }
    // At the limit: fine, and the id is on every MESSAGE.
    let conn = h.connect();
    h.send(
        conn,
        subscribe(&fits, "/topic/t", "auto").with_header("receipt", fits.as_str()),
    );
    let answer = h.frames(conn);
    assert_eq!(answer[0].header("receipt-id"), Some(fits.as_str()));
    h.send(conn, send("/topic/t", "hello"));
    let message = &h.frames(conn)[0];
    assert_eq!(message.header("subscription"), Some(fits.as_str()));
    // The limit is a setting.
    let mut h = Harness::new(SessionConfig::default().max_name_len(8));
    let conn = h.connect();
    h.send(conn, subscribe("123456789", "/topic/t", "auto"));
    assert_error(&h.drain(conn), "is 9 bytes long: the limit");
}

#[test]
fn the_header_bytes_of_a_frame_are_capped() {
    // 3 lines of 7 KiB: each under the 8 KiB line limit, together over the 16 KiB of headers.
    let frame = header_only_send("/queue/q", "t", 3, 7 << 10);
    let bytes = frame.encode(Version::V1_2).expect("encodable");
    let mut decoder = Decoder::new(Limits::default());
    decoder.feed(&bytes);
    assert_eq!(
        decoder.poll_frame(),
        Err(Error::HeadersTooBig { limit: 16 << 10 })
    );
    // Also while the last line is still arriving (no newline yet).
    let mut decoder = Decoder::new(Limits::default().max_header_bytes(100));
    decoder.feed(b"SEND\ndestination:/queue/q\nh:");
    decoder.feed(&[b'v'; 90]);
    assert_eq!(
        decoder.poll_frame(),
        Err(Error::HeadersTooBig { limit: 100 })
    );
    // Through a session: an ERROR naming the limit.
    let mut h = Harness::new(SessionConfig::default());
    let conn = h.connect();
    h.send(conn, frame);
    assert_error(
        &h.drain(conn),
        "frame headers exceed the limit of 16384 bytes",
    );
    // Two 7 KiB headers fit.
    let conn = h.connect();
    h.send(conn, begin("t"));
    h.send(conn, header_only_send("/queue/q", "t", 2, 7 << 10));
    assert_eq!(h.drain(conn), []);
}

#[test]
fn transactions_count_headers_not_only_bodies() {
    // Header-only SENDs: 10 headers of 1000 bytes each, no body.
    let frame = || header_only_send("/queue/q", "t", 10, 1000);
    let config = SessionConfig::default().max_transaction_bytes(100_000);
    let mut h = Harness::new(config);
    let conn = h.connect();
    h.send(conn, begin("t"));
    let mut accepted = 0;
    loop {
        h.send(conn, frame());
        let seen = h.drain(conn);
        if seen.is_empty() {
            accepted += 1;
            continue;
        }
        assert_error(
            &seen,
            "transaction `t` would hold more than 100000 bytes (the limit per transaction",
        );
        break;
    }
    // Each frame counts about 10 × 1000 header bytes.
    assert_eq!(accepted, 9);
}

#[test]
fn open_transactions_of_a_connection_share_one_budget() {
    let config = SessionConfig::default()
        .max_transaction_bytes(60_000)
        .max_session_transaction_bytes(100_000);
    let mut h = Harness::new(config);
    let conn = h.connect();
    h.send(conn, begin("a"));
    h.send(conn, begin("b"));
    for _ in 0..5 {
        h.send(conn, header_only_send("/queue/q", "a", 10, 1000));
    }
    // A COMMIT or ABORT gives the bytes back.
    h.send(
        conn,
        Frame::new(Command::Abort).with_header("transaction", "a"),
    );
    h.send(conn, begin("a"));
    for _ in 0..5 {
        h.send(conn, header_only_send("/queue/q", "a", 10, 1000));
    }
    assert_eq!(h.drain(conn), []);
    for _ in 0..4 {
        h.send(conn, header_only_send("/queue/q", "b", 10, 1000));
    }
    assert_eq!(h.drain(conn), []);
    // 5 + 5 frames of ~10 KB: the second transaction is under its own limit, not the total.
    h.send(conn, header_only_send("/queue/q", "b", 10, 1000));
    assert_error(
        &h.drain(conn),
        "open transactions would hold more than 100000 bytes (the limit per connection",
    );
}

fn user_auth(request: &ConnectRequest<'_>) -> Result<Principal, Refusal> {
    match request.login {
        Some("alice") => Ok(Principal::allow_all("alice")),
        _ => Ok(Principal::allow_all("guest").unverified()),
    }
}

#[test]
fn user_id_is_the_verified_senders_or_none() {
    let mut h = Harness::with_auth(SessionConfig::default(), Arc::new(user_auth));
    let login = |name: &str| {
        Frame::new(Command::Connect)
            .with_header("accept-version", "1.2")
            .with_header("host", "localhost")
            .with_header("login", name)
    };
    let (alice, _) = h.connect_with(login("alice"));
    let (guest, _) = h.connect_with(login("mallory"));
    let reader = h.connect();
    h.send(reader, subscribe("s", "/topic/t", "auto"));
    // Alice claims to be bob: subscribers see alice.
    h.send(alice, send("/topic/t", "a").with_header("user-id", "bob"));
    h.send(alice, send("/topic/t", "b"));
    // An unverified client's claim is removed.
    h.send(guest, send("/topic/t", "c").with_header("user-id", "alice"));
    let got = h.frames(reader);
    let users: Vec<Vec<&str>> = got
        .iter()
        .map(|m| m.headers.get_all("user-id").collect())
        .collect();
    assert_eq!(users, [vec!["alice"], vec!["alice"], vec![]]);
    // Inside a transaction too.
    h.send(alice, begin("t"));
    h.send(
        alice,
        send("/topic/t", "d")
            .with_header("transaction", "t")
            .with_header("user-id", "bob"),
    );
    h.send(
        alice,
        Frame::new(Command::Commit).with_header("transaction", "t"),
    );
    let got = h.frames(reader);
    assert_eq!(
        got[0].headers.get_all("user-id").collect::<Vec<_>>(),
        ["alice"]
    );
}

#[test]
fn control_characters_in_client_text_are_escaped_in_errors() {
    let mut h = Harness::new(SessionConfig::default());
    let conn = h.connect();
    h.send(
        conn,
        Frame::new(Command::Unsubscribe).with_header("id", "x\u{1b}[2J\ny"),
    );
    let seen = h.drain(conn);
    let error = assert_error(&seen, "no subscription with id `x\\u{1b}[2J\\ny`");
    assert!(
        !error
            .header("message")
            .unwrap_or_default()
            .contains('\u{1b}')
    );
    assert_eq!(
        h.broker.session(conn).unwrap().close_reason(),
        error.header("message")
    );
    // Unknown commands quoted by the decoder too.
    let conn = h.connect();
    h.send_raw(conn, b"HELLO\x07\n\n\0");
    let seen = h.drain(conn);
    assert_error(&seen, "unknown command `HELLO\\u{7}`");
    assert!(matches!(seen.as_slice(), [Seen::Frame(_), Seen::Close]));
    assert_eq!(frames(&seen).len(), 1);
}
