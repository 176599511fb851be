//! Session tests as in-memory client/server exchanges: CONNECT negotiation, heart-beats and
//! timers, authentication, receipts, limits and protocol errors.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Harness, Seen, assert_error, frames, send, subscribe};
use wsx_stomp::{
    Command, ConnectRequest, ConnectionInfo, Frame, HeartBeat, Limits, Principal, Refusal,
    SessionConfig, Version,
};

fn connect_frame(accept_version: Option<&str>) -> Frame {
    let frame = Frame::new(Command::Connect).with_header("host", "localhost");
    match accept_version {
        Some(v) => frame.with_header("accept-version", v),
        None => frame,
    }
}

#[test]
fn connect_negotiates_the_highest_common_version() {
    let mut h = Harness::new(SessionConfig::default());
    for (offered, expected) in [
        (Some("1.0,1.1,1.2"), Version::V1_2),
        (Some("1.1,1.0"), Version::V1_1),
        (Some("1.2, 3.0"), Version::V1_2),
        (None, Version::V1_0),
    ] {
        let (conn, seen) = h.connect_with(connect_frame(offered));
        let connected = &frames(&seen)[0];
        assert_eq!(connected.command, Command::Connected);
        let announced = connected.header("version");
        if expected == Version::V1_0 {
            assert_eq!(announced, None, "1.0 CONNECTED has no version header");
            assert_eq!(connected.header("heart-beat"), None);
        } else {
            assert_eq!(announced, Some(expected.as_str()));
        }
        assert!(connected.header("session").is_some());
        assert!(
            connected
                .header("server")
                .unwrap()
                .starts_with("wsx-stomp/")
        );
        assert_eq!(h.broker.session(conn).unwrap().version(), Some(expected));
    }
    // STOMP is CONNECT's other name.
    let (_, seen) = h.connect_with(
        Frame::new(Command::Stomp)
            .with_header("accept-version", "1.2")
            .with_header("host", "h"),
    );
    assert_eq!(frames(&seen)[0].header("version"), Some("1.2"));
}

#[test]
fn no_common_version_is_an_error_listing_supported_ones() {
    let mut h = Harness::new(SessionConfig::default().versions(&[Version::V1_1, Version::V1_2]));
    let (conn, seen) = h.connect_with(connect_frame(Some("2.0")));
    let error = assert_error(&seen, "no common protocol version");
    assert_eq!(error.header("version"), Some("1.1,1.2"));
    assert!(h.broker.session(conn).unwrap().is_closed());
    // Without accept-version the client speaks 1.0, which this server does not.
    let (_, seen) = h.connect_with(connect_frame(None));
    assert_error(&seen, "this server supports 1.1,1.2");
}

#[test]
fn heart_beats_are_negotiated_and_exposed() {
    let config = SessionConfig::default().heart_beat(2000, 3000);
    let mut h = Harness::new(config);
    let (conn, seen) =
        h.connect_with(connect_frame(Some("1.2")).with_header("heart-beat", "1000,5000"));
    assert_eq!(frames(&seen)[0].header("heart-beat"), Some("2000,3000"));
    let session = h.broker.session(conn).unwrap();
    assert_eq!(
        session.heart_beat(),
        HeartBeat {
            // max(sx, cy): the server sends every 5 s.
            send: Some(Duration::from_millis(5000)),
            // max(cx, sy): the client must send every 3 s.
            check: Some(Duration::from_millis(3000)),
        }
    );
    // Zeros switch a direction off.
    let (conn, _) = h.connect_with(connect_frame(Some("1.2")).with_header("heart-beat", "0,0"));
    assert_eq!(
        h.broker.session(conn).unwrap().heart_beat(),
        HeartBeat::default()
    );
    // Only the server's idle limit is left (see tests/deadlines.rs).
    assert_eq!(
        h.broker.poll_timeout(conn),
        Some(h.now + SessionConfig::default().idle_timeout.unwrap())
    );
    // 1.0 has no heart-beats.
    let (conn, _) = h.connect_with(connect_frame(None).with_header("heart-beat", "1000,1000"));
    assert_eq!(
        h.broker.session(conn).unwrap().heart_beat(),
        HeartBeat::default()
    );
    // A malformed value is an error.
    let (_, seen) = h.connect_with(connect_frame(Some("1.2")).with_header("heart-beat", "fast"));
    assert_error(&seen, "invalid heart-beat header `fast`");
}

#[test]
fn server_sends_heart_beats_when_idle() {
    let mut h = Harness::new(SessionConfig::default().heart_beat(1000, 0));
    let (conn, _) = h.connect_with(connect_frame(Some("1.2")).with_header("heart-beat", "0,1000"));
    let start = h.now;
    assert_eq!(
        h.broker.poll_timeout(conn),
        Some(start + Duration::from_secs(1))
    );
    h.advance(Duration::from_millis(999));
    h.tick(conn);
    assert!(h.drain(conn).is_empty(), "not due yet");
    h.advance(Duration::from_millis(1));
    h.tick(conn);
    assert_eq!(h.drain(conn), vec![Seen::HeartBeat]);
    assert_eq!(
        h.broker.poll_timeout(conn),
        Some(h.now + Duration::from_secs(1))
    );
    // Any frame sent resets the timer.
    h.advance(Duration::from_millis(500));
    h.send(
        conn,
        subscribe("s", "/topic/t", "auto").with_header("receipt", "r"),
    );
    assert_eq!(h.frames(conn)[0].command, Command::Receipt);
    assert_eq!(
        h.broker.poll_timeout(conn),
        Some(h.now + Duration::from_secs(1))
    );
}

#[test]
fn silent_client_times_out_and_traffic_keeps_it_alive() {
    // The client promises a heart-beat every 1 s; the grace is 50 %.
    let mut h = Harness::new(SessionConfig::default().heart_beat(0, 1000));
    let (conn, _) = h.connect_with(connect_frame(Some("1.2")).with_header("heart-beat", "1000,0"));
    let session = h.broker.session(conn).unwrap();
    assert_eq!(
        session.receive_deadline(),
        Some(h.now + Duration::from_millis(1500))
    );
    h.advance(Duration::from_millis(1400));
    h.send_raw(conn, b"\n"); // a heart-beat
    assert!(h.drain(conn).is_empty());
    h.advance(Duration::from_millis(1400));
    h.tick(conn);
    assert!(
        h.drain(conn).is_empty(),
        "the heart-beat moved the deadline"
    );
    h.advance(Duration::from_millis(100));
    h.tick(conn);
    assert_error(
        &h.drain(conn),
        "no heart-beat from the client within 1000 ms",
    );
}

#[test]
fn connect_must_come_in_time() {
    let config = SessionConfig::default().connect_timeout(Duration::from_secs(3));
    let mut h = Harness::new(config);
    let conn = h.open(ConnectionInfo::new());
    assert_eq!(
        h.broker.poll_timeout(conn),
        Some(h.now + Duration::from_secs(3))
    );
    h.advance(Duration::from_secs(3));
    h.tick(conn);
    assert_error(&h.drain(conn), "timed out waiting for CONNECT");
    assert_eq!(h.broker.poll_timeout(conn), None);
}

fn token_auth(request: &ConnectRequest<'_>) -> Result<Principal, Refusal> {
    let token = request
        .bearer_token()
        .or_else(|| request.connection.query_param("token"));
    match token {
        Some("reader") => Ok(Principal::new("reader").allow_subscribe("/topic/public.*")),
        Some("writer") => Ok(Principal::new("writer")
            .allow_subscribe("/topic/**")
            .allow_send("/topic/**")),
        Some(_) => Err(Refusal::new("invalid token").with_detail("the token is not known")),
        None => Err(Refusal::new("authentication required")),
    }
}

#[test]
fn auth_sees_headers_and_query_and_can_refuse() {
    let mut h = Harness::with_auth(SessionConfig::default(), Arc::new(token_auth));
    // Refused: ERROR with the refusal's message, detail as body, then close.
    let (conn, seen) =
        h.connect_with(connect_frame(Some("1.2")).with_header("Authorization", "Bearer nope"));
    let error = assert_error(&seen, "invalid token");
    assert_eq!(common::body(&error), "the token is not known");
    assert!(h.broker.session(conn).unwrap().is_closed());
    let (_, seen) = h.connect_with(connect_frame(Some("1.2")));
    assert_error(&seen, "authentication required");

    // The token in the WebSocket URL's query string.
    let conn = h.open(
        ConnectionInfo::new()
            .with_path("/stomp")
            .with_query("x=1&token=reader"),
    );
    h.send(conn, connect_frame(Some("1.2")));
    let connected = h.frames(conn);
    assert_eq!(connected[0].header("user-id"), Some("reader"));
    assert_eq!(
        h.broker.session(conn).unwrap().principal().unwrap().name,
        "reader"
    );
    // Allowed patterns are enforced.
    h.send(conn, subscribe("a", "/topic/public.news", "auto"));
    assert!(h.drain(conn).is_empty());
    h.send(conn, subscribe("b", "/topic/private.news", "auto"));
    assert_error(
        &h.drain(conn),
        "not allowed to subscribe to /topic/private.news",
    );

    let (conn, _) =
        h.connect_with(connect_frame(Some("1.2")).with_header("authorization", "bearer reader"));
    h.send(conn, send("/topic/public.news", "hi"));
    assert_error(&h.drain(conn), "not allowed to send to /topic/public.news");
}

#[test]
fn unknown_command_is_an_error_naming_it() {
    let mut h = Harness::new(SessionConfig::default());
    let conn = h.connect();
    h.send_raw(conn, b"FROBNICATE\nx:y\n\n\0");
    assert_error(&h.drain(conn), "unknown command `FROBNICATE`");
    let session = h.broker.session(conn).unwrap();
    assert_eq!(session.close_reason(), Some("unknown command `FROBNICATE`"));
    // Input after the ERROR is ignored.
    h.send_raw(conn, b"SEND\ndestination:/topic/t\n\n\0");
    assert!(h.drain(conn).is_empty());
}

#[test]
fn frames_before_connect_and_server_frames_are_errors() {
    let mut h = Harness::new(SessionConfig::default());
    let conn = h.open(ConnectionInfo::new());
    h.send(conn, send("/topic/t", "x"));
    assert_error(&h.drain(conn), "expected CONNECT or STOMP, got SEND");
    let conn = h.connect();
    h.send(conn, Frame::new(Command::Message));
    assert_error(&h.drain(conn), "MESSAGE is a server frame");
    let conn = h.connect();
    h.send(conn, connect_frame(Some("1.2")));
    assert_error(&h.drain(conn), "already connected");
}

#[test]
fn missing_headers_and_bad_destinations_are_errors() {
    let mut h = Harness::new(SessionConfig::default());
    let cases = [
        (
            Frame::new(Command::Send),
            "SEND frame has no destination header",
        ),
        (
            Frame::new(Command::Subscribe).with_header("destination", "/topic/t"),
            "SUBSCRIBE frame has no id header",
        ),
        (
            send("/elsewhere/x", "b"),
            "unknown destination `/elsewhere/x`",
        ),
        (
            subscribe("s", "/topic/t", "sometimes"),
            "invalid ack mode `sometimes`",
        ),
        (Frame::new(Command::Ack), "ACK frame has no id header"),
        (
            Frame::new(Command::Begin),
            "BEGIN frame has no transaction header",
        ),
        (
            Frame::new(Command::Commit).with_header("transaction", "nope"),
            "unknown transaction `nope`",
        ),
        (
            Frame::new(Command::Unsubscribe).with_header("id", "nope"),
            "no subscription with id `nope`",
        ),
    ];
    for (frame, message) in cases {
        let conn = h.connect();
        h.send(conn, frame);
        assert_error(&h.drain(conn), message);
    }
}

#[test]
fn receipts_for_any_frame_and_on_errors() {
    let mut h = Harness::new(SessionConfig::default());
    let conn = h.connect();
    let frames_with_receipts = [
        subscribe("s", "/topic/t", "auto").with_header("receipt", "r1"),
        send("/topic/other", "x").with_header("receipt", "r2"),
        Frame::new(Command::Begin)
            .with_header("transaction", "t")
            .with_header("receipt", "r3"),
        Frame::new(Command::Abort)
            .with_header("transaction", "t")
            .with_header("receipt", "r4"),
        Frame::new(Command::Unsubscribe)
            .with_header("id", "s")
            .with_header("receipt", "r5"),
    ];
    for (i, frame) in frames_with_receipts.into_iter().enumerate() {
        h.send(conn, frame);
        let got = h.frames(conn);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].command, Command::Receipt);
        assert_eq!(
            got[0].header("receipt-id"),
            Some(format!("r{}", i + 1).as_str())
        );
    }
    // DISCONNECT: RECEIPT, then close.
    h.send(
        conn,
        Frame::new(Command::Disconnect).with_header("receipt", "bye"),
    );
    let seen = h.drain(conn);
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(frames(&seen)[0].header("receipt-id"), Some("bye"));
    assert_eq!(seen[1], Seen::Close);
    assert_eq!(h.broker.session(conn).unwrap().close_reason(), None);
    // An ERROR answers the receipt of the frame that caused it.
    let conn = h.connect();
    h.send(
        conn,
        Frame::new(Command::Ack)
            .with_header("id", "99")
            .with_header("receipt", "r9"),
    );
    let error = assert_error(&h.drain(conn), "no unacknowledged message with ack id `99`");
    assert_eq!(error.header("receipt-id"), Some("r9"));
}

#[test]
fn disconnect_without_receipt_just_closes() {
    let mut h = Harness::new(SessionConfig::default());
    let conn = h.connect();
    h.send(conn, Frame::new(Command::Disconnect));
    assert_eq!(h.drain(conn), vec![Seen::Close]);
}

#[test]
fn subscription_limit() {
    let mut h = Harness::new(SessionConfig::default().max_subscriptions(2));
    let conn = h.connect();
    h.send(conn, subscribe("a", "/topic/a", "auto"));
    h.send(conn, subscribe("b", "/queue/b", "client"));
    assert!(h.drain(conn).is_empty());
    assert_eq!(h.broker.session(conn).unwrap().subscription_count(), 2);
    h.send(conn, subscribe("c", "/topic/c", "auto"));
    assert_error(&h.drain(conn), "subscription limit of 2 reached");
    // Closing released the subscriptions in the engine.
    assert_eq!(h.broker.engine().subscriber_count("/topic/a"), 0);
    assert_eq!(h.broker.engine().subscriber_count("/queue/b"), 0);
}

#[test]
fn duplicate_subscription_id_is_an_error() {
    let mut h = Harness::new(SessionConfig::default());
    let conn = h.connect();
    h.send(conn, subscribe("a", "/topic/a", "auto"));
    h.send(conn, subscribe("a", "/topic/b", "auto"));
    assert_error(&h.drain(conn), "subscription id `a` is already in use");
}

#[test]
fn decoder_limits_become_errors() {
    let config = SessionConfig::default().limits(Limits::default().max_body_size(8));
    let mut h = Harness::new(config);
    let conn = h.connect();
    h.send(conn, send("/topic/t", "more than eight bytes"));
    assert_error(
        &h.drain(conn),
        "body of at least 21 bytes exceeds the limit of 8 bytes",
    );
}

#[test]
fn transaction_limits() {
    let config = SessionConfig::default()
        .max_transactions(1)
        .max_transaction_frames(2);
    let mut h = Harness::new(config);
    let conn = h.connect();
    let begin = |tx: &str| Frame::new(Command::Begin).with_header("transaction", tx);
    h.send(conn, begin("t1"));
    h.send(conn, begin("t2"));
    assert_error(&h.drain(conn), "limit of 1 open transactions reached");
    let conn = h.connect();
    h.send(conn, begin("t1"));
    h.send(conn, begin("t1"));
    assert_error(&h.drain(conn), "transaction `t1` is already open");
    let conn = h.connect();
    h.send(conn, begin("t"));
    for _ in 0..3 {
        h.send(conn, send("/topic/x", "b").with_header("transaction", "t"));
    }
    assert_error(&h.drain(conn), "transaction `t` holds more than 2 frames");
}

#[test]
fn frames_split_and_packed_across_messages() {
    let mut h = Harness::new(SessionConfig::default());
    let conn = h.open(ConnectionInfo::new());
    let connect = b"CONNECT\naccept-version:1.2\nhost:h\n\n\0";
    let (a, b) = connect.split_at(10);
    h.send_raw(conn, a);
    assert!(h.drain(conn).is_empty());
    h.send_raw(conn, b);
    assert_eq!(h.frames(conn)[0].command, Command::Connected);
    // Two frames and heart-beats in one message.
    h.send_raw(
        conn,
        b"\nSUBSCRIBE\nid:1\ndestination:/topic/t\nreceipt:a\n\n\0\r\nSEND\ndestination:/topic/t\n\nhi\0\n",
    );
    let got = h.frames(conn);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].command, Command::Receipt);
    assert_eq!(got[1].command, Command::Message);
    assert_eq!(&got[1].body[..], b"hi");
}
