//! The session's deadlines beyond heart-beats, in memory with a fake clock: the server's idle
//! limit (which applies even with `heart-beat:0,0`) and the expiry of the principal's
//! credentials (a token's `exp`).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Harness, Seen, assert_error, send, subscribe};
use wsx_stomp::{Command, ConnectRequest, Frame, Principal, Refusal, SessionConfig};

fn connect_frame(heart_beat: &str) -> Frame {
    Frame::new(Command::Connect)
        .with_header("accept-version", "1.2")
        .with_header("host", "localhost")
        .with_header("heart-beat", heart_beat)
}

/// Connect with `heart-beat` and check CONNECTED came back.
fn connect(h: &mut Harness, heart_beat: &str) -> wsx_stomp::ConnId {
    let (conn, seen) = h.connect_with(connect_frame(heart_beat));
    assert!(
        matches!(&seen[..], [Seen::Frame(f)] if f.command == Command::Connected),
        "{seen:?}"
    );
    conn
}

#[test]
fn idle_limit_applies_without_heart_beats() {
    let config = SessionConfig::default().idle_timeout(Some(Duration::from_secs(2)));
    let mut h = Harness::new(config);
    let conn = connect(&mut h, "0,0");
    assert_eq!(
        h.broker.poll_timeout(conn),
        Some(h.now + Duration::from_secs(2))
    );
    assert_eq!(
        h.broker.session(conn).unwrap().receive_deadline(),
        Some(h.now + Duration::from_secs(2))
    );
    // Any input (here an end-of-line) moves the deadline.
    h.advance(Duration::from_millis(1500));
    h.send_raw(conn, b"\n");
    assert_eq!(
        h.broker.poll_timeout(conn),
        Some(h.now + Duration::from_secs(2))
    );
    h.advance(Duration::from_millis(1999));
    h.tick(conn);
    assert!(h.drain(conn).is_empty(), "not due yet");
    h.advance(Duration::from_millis(1));
    h.tick(conn);
    assert_error(
        &h.drain(conn),
        "idle timeout: nothing received from the client within 2 s",
    );
    assert!(h.broker.session(conn).unwrap().is_closed());
    assert_eq!(h.broker.poll_timeout(conn), None);
}

#[test]
fn output_to_the_client_does_not_count_as_activity() {
    let config = SessionConfig::default().idle_timeout(Some(Duration::from_millis(1500)));
    let mut h = Harness::new(config);
    let subscriber = connect(&mut h, "0,0");
    h.send(subscriber, subscribe("s", "/topic/t", "auto"));
    let publisher = connect(&mut h, "0,0");
    for _ in 0..3 {
        h.advance(Duration::from_millis(500));
        h.send(publisher, send("/topic/t", "hi"));
        let seen = h.drain(subscriber);
        assert!(
            matches!(&seen[..], [Seen::Frame(f)] if f.command == Command::Message),
            "{seen:?}"
        );
        h.tick(subscriber);
    }
    // 1.5 s after its SUBSCRIBE: idle, though it received a MESSAGE every 0.5 s.
    assert_error(&h.drain(subscriber), "within 1500 ms");
    // The publisher sent something 0 ms ago.
    h.tick(publisher);
    assert!(h.drain(publisher).is_empty());
}

#[test]
fn heart_beat_check_and_idle_limit_whichever_comes_first() {
    let config = SessionConfig::default()
        .heart_beat(0, 1000)
        .idle_timeout(Some(Duration::from_secs(60)));
    let mut h = Harness::new(config);
    // The client promises a heart-beat every 1 s: the check (1.5 s with the grace) is first.
    let conn = connect(&mut h, "1000,0");
    let deadline = h.broker.session(conn).unwrap().receive_deadline();
    assert_eq!(deadline, Some(h.now + Duration::from_millis(1500)));
    // A client promising one every 10 minutes is still held to the idle limit.
    let conn = connect(&mut h, "600000,0");
    let deadline = h.broker.session(conn).unwrap().receive_deadline();
    assert_eq!(deadline, Some(h.now + Duration::from_secs(60)));
    h.advance(Duration::from_secs(60));
    h.tick(conn);
    assert_error(&h.drain(conn), "idle timeout");
}

#[test]
fn no_idle_limit_when_turned_off() {
    let mut h = Harness::new(SessionConfig::default().idle_timeout(None));
    let conn = connect(&mut h, "0,0");
    assert_eq!(h.broker.poll_timeout(conn), None);
    assert_eq!(h.broker.session(conn).unwrap().receive_deadline(), None);
}

/// Lets everyone in for 5 s from their CONNECT.
fn five_second_tokens(request: &ConnectRequest<'_>) -> Result<Principal, Refusal> {
    Ok(Principal::allow_all("u").expires_at(request.now + Duration::from_secs(5)))
}

#[test]
fn session_ends_when_its_token_expires() {
    let config = SessionConfig::default().idle_timeout(None);
    let mut h = Harness::with_auth(config, Arc::new(five_second_tokens));
    h.advance(Duration::from_secs(1));
    let conn = connect(&mut h, "0,0");
    let expiry = h.now + Duration::from_secs(5);
    assert_eq!(
        h.broker
            .session(conn)
            .unwrap()
            .principal()
            .unwrap()
            .expires_at,
        Some(expiry)
    );
    assert_eq!(h.broker.poll_timeout(conn), Some(expiry));
    // Traffic does not postpone it.
    h.advance(Duration::from_secs(4));
    h.send(
        conn,
        subscribe("s", "/topic/t", "auto").with_header("receipt", "r"),
    );
    assert_eq!(h.frames(conn)[0].command, Command::Receipt);
    assert_eq!(h.broker.poll_timeout(conn), Some(expiry));
    h.advance(Duration::from_millis(999));
    h.tick(conn);
    assert!(h.drain(conn).is_empty(), "not due yet");
    h.advance(Duration::from_millis(1));
    h.tick(conn);
    let error = assert_error(&h.drain(conn), "token expired");
    assert_eq!(error.header("message"), Some("token expired"));
    assert_eq!(h.broker.session(conn).unwrap().subscription_count(), 0);
}

#[test]
fn expiry_comes_before_heart_beats_and_idle() {
    let config = SessionConfig::default()
        .heart_beat(1000, 10_000)
        .idle_timeout(Some(Duration::from_secs(60)));
    let mut h = Harness::with_auth(config, Arc::new(five_second_tokens));
    let conn = connect(&mut h, "10000,1000");
    let start = h.now;
    // The server's heart-beats every second come first…
    assert_eq!(
        h.broker.poll_timeout(conn),
        Some(start + Duration::from_secs(1))
    );
    // …and the expiry is among the deadlines once they have been sent.
    for _ in 0..4 {
        h.advance(Duration::from_secs(1));
        h.tick(conn);
        assert_eq!(h.drain(conn), vec![Seen::HeartBeat]);
    }
    h.advance(Duration::from_secs(1));
    h.send_raw(conn, b"\n");
    h.tick(conn);
    assert_error(&h.drain(conn), "token expired");
}
