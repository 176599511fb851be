//! Deferred (asynchronous) authentication: an authenticator that answers
//! [`Admission::Defer`] makes the session hand the CONNECT to the I/O layer
//! ([`Transmit::Authenticate`]) and wait, decoding nothing more, for
//! [`Broker::authenticated`]; then it goes on exactly as the synchronous path. Also what the
//! authenticator sees of the connection ([`ConnectionInfo`]: upgrade headers, cookies,
//! transport).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Harness, Seen, assert_error, body, frames, send, subscribe};
use wsx_stomp::{
    Admission, AuthRequest, Authenticator, Command, ConnId, ConnectRequest, ConnectionInfo,
    DeferredAuth, Frame, Phase, Principal, Refusal, SessionConfig, Transport, Version,
};

fn connect_frame() -> Frame {
    Frame::new(Command::Connect)
        .with_header("accept-version", "1.1,1.2")
        .with_header("host", "vhost")
        .with_header("login", "alice")
        .with_header("passcode", "secret")
        .with_header("heart-beat", "0,0")
        .with_header("Authorization", "Bearer tok")
}

fn deferring(config: SessionConfig) -> Harness {
    Harness::with_auth(config, Arc::new(DeferredAuth))
}

fn info() -> ConnectionInfo {
    ConnectionInfo::new()
        .with_path("/stomp")
        .with_query("a=1")
        .with_header("Cookie", "theme=dark; SESSION=\"abc=1\"")
        .with_header("cookie", "other=2")
        .with_header("X-Forwarded-For", "10.0.0.1")
}

/// Open a connection and send its CONNECT (plus `more` in the same receive); returns the
/// deferred request.
fn connect_deferred(h: &mut Harness, more: &[Frame]) -> (ConnId, AuthRequest) {
    let conn = h.open(info());
    let mut bytes = connect_frame()
        .encode(Version::V1_2)
        .expect("encodable")
        .to_vec();
    for frame in more {
        bytes.extend_from_slice(&frame.encode(Version::V1_2).expect("encodable"));
    }
    h.send_raw(conn, &bytes);
    let seen = h.drain(conn);
    let [Seen::Authenticate(request)] = &seen[..] else {
        panic!("expected only an authentication request, got {seen:?}");
    };
    (conn, request.clone())
}

#[test]
fn the_io_layer_gets_the_connect_and_the_frames_behind_it_wait_for_its_answer() {
    let mut h = deferring(SessionConfig::default());
    let (conn, request) = connect_deferred(
        &mut h,
        &[
            subscribe("s1", "/topic/t", "auto"),
            send("/topic/t", "first").with_header("receipt", "r1"),
        ],
    );
    assert_eq!(request.login.as_deref(), Some("alice"));
    assert_eq!(request.passcode.as_deref(), Some("secret"));
    assert_eq!(request.host.as_deref(), Some("vhost"));
    assert_eq!(request.version, Version::V1_2);
    assert_eq!(request.bearer_token(), Some("tok"));
    assert_eq!(request.headers.get("heart-beat"), Some("0,0"));
    assert_eq!(request.connection, info());
    assert_eq!(request.connect_request().login, Some("alice"));
    assert_eq!(request.now, h.now);
    // The passcode and header values stay out of logs.
    let debug = format!("{request:?}");
    assert!(
        !debug.contains("secret") && !debug.contains("tok"),
        "{debug}"
    );

    let session = h.broker.session(conn).expect("open");
    assert_eq!(session.phase(), Phase::Authenticating);
    assert!(!session.wants_input(), "input paused while authenticating");
    assert!(session.principal().is_none());

    // More frames arrive meanwhile: still nothing decoded.
    h.send(
        conn,
        send("/topic/t", "second").with_header("receipt", "r2"),
    );
    assert!(h.drain(conn).is_empty());

    h.authenticated(conn, Ok(Principal::allow_all("alice")));
    let frames = h.frames(conn);
    let summary: Vec<String> = frames
        .iter()
        .map(|f| match f.command {
            Command::Message => format!("MESSAGE {}", body(f)),
            Command::Receipt => format!("RECEIPT {}", f.header("receipt-id").unwrap_or("")),
            other => other.to_string(),
        })
        .collect();
    assert_eq!(
        summary,
        [
            "CONNECTED",
            "RECEIPT r1",
            "MESSAGE first",
            "RECEIPT r2",
            "MESSAGE second"
        ]
    );
    assert_eq!(frames[0].header("user-id"), Some("alice"));
    assert_eq!(frames[0].header("version"), Some("1.2"));
    let session = h.broker.session(conn).expect("open");
    assert_eq!(session.phase(), Phase::Connected);
    assert!(session.wants_input());
    // A second answer is ignored.
    h.authenticated(conn, Err(Refusal::new("late")));
    assert!(h.drain(conn).is_empty());
}

#[test]
fn a_refusal_is_an_error_and_the_frames_behind_the_connect_are_dropped() {
    let mut h = deferring(SessionConfig::default());
    let (conn, _) = connect_deferred(&mut h, &[subscribe("s1", "/topic/t", "auto")]);
    h.authenticated(
        conn,
        Err(Refusal::new("bad credentials").with_detail("unknown login")),
    );
    let seen = h.drain(conn);
    let error = assert_error(&seen, "bad credentials");
    assert_eq!(common::body(&error), "unknown login");
    assert_eq!(h.broker.engine().subscriber_count("/topic/t"), 0);
}

#[test]
fn the_connect_timeout_runs_while_authenticating_and_a_late_answer_is_ignored() {
    let timeout = Duration::from_secs(5);
    let mut h = deferring(SessionConfig::default().connect_timeout(timeout));
    let (conn, _) = connect_deferred(&mut h, &[]);
    assert_eq!(
        h.broker.poll_timeout(conn),
        Some(h.now + timeout),
        "the CONNECT deadline still holds"
    );
    h.advance(timeout);
    h.tick(conn);
    let seen = h.drain(conn);
    assert_error(&seen, "timed out authenticating the CONNECT");
    h.authenticated(conn, Ok(Principal::allow_all("alice")));
    assert!(h.drain(conn).is_empty());
    assert!(h.broker.session(conn).expect("open").is_closed());
}

#[test]
fn the_wait_does_not_count_against_heart_beats_or_the_idle_limit() {
    let mut h = deferring(SessionConfig::default().idle_timeout(Some(Duration::from_secs(10))));
    let conn = h.open(info());
    h.send(conn, connect_frame().with_header("heart-beat", "0,0"));
    assert!(matches!(&h.drain(conn)[..], [Seen::Authenticate(_)]));
    h.advance(Duration::from_secs(8));
    h.authenticated(conn, Ok(Principal::allow_all("alice")));
    h.frames(conn);
    // Idle is measured from the answer, not from the CONNECT.
    assert_eq!(
        h.broker.poll_timeout(conn),
        Some(h.now + Duration::from_secs(10))
    );
}

#[test]
fn auto_ack_queue_windows_count_transmits_right_after_a_deferred_connect() {
    // Window 1: the second queue message comes only once the first is reported written, which
    // needs the session's transmit numbering to leave the authentication request out.
    let mut h = deferring(SessionConfig::default().auto_ack_window(1));
    let (conn, _) = connect_deferred(&mut h, &[]);
    h.authenticated(conn, Ok(Principal::allow_all("alice")));
    h.send(conn, subscribe("q", "/queue/jobs", "auto"));
    h.send(conn, send("/queue/jobs", "one"));
    h.send(conn, send("/queue/jobs", "two"));
    let first = h.frames(conn);
    let bodies: Vec<&str> = first
        .iter()
        .filter(|f| f.command == Command::Message)
        .map(body)
        .collect();
    assert_eq!(bodies, ["one"], "{first:?}");
    h.written(conn);
    let second = h.frames(conn);
    assert_eq!(second.len(), 1, "{second:?}");
    assert_eq!(body(&second[0]), "two");
}

#[test]
fn an_authenticator_may_decide_per_request() {
    /// Answers at once for a bearer token, defers the others.
    struct Mixed;
    impl Authenticator for Mixed {
        fn authenticate(&self, request: &ConnectRequest<'_>) -> Result<Principal, Refusal> {
            request
                .bearer_token()
                .map(Principal::allow_all)
                .ok_or_else(|| Refusal::new("no token"))
        }
        fn admit(&self, request: &ConnectRequest<'_>) -> Admission {
            match request.bearer_token() {
                Some(_) => self.authenticate(request).into(),
                None => Admission::Defer,
            }
        }
    }
    let mut h = Harness::with_auth(SessionConfig::default(), Arc::new(Mixed));
    let (_, seen) = h.connect_with(connect_frame());
    assert!(
        matches!(&frames(&seen)[..], [f] if f.command == Command::Connected
            && f.header("user-id") == Some("tok")),
        "{seen:?}"
    );
    let (_, seen) = h.connect_with(
        Frame::new(Command::Connect)
            .with_header("accept-version", "1.2")
            .with_header("host", "vhost"),
    );
    assert!(matches!(&seen[..], [Seen::Authenticate(_)]), "{seen:?}");
}

#[test]
fn connection_info_gives_headers_cookies_and_transport() {
    let info = info();
    assert_eq!(info.header("x-forwarded-for"), Some("10.0.0.1"));
    assert_eq!(info.header("Cookie"), Some("theme=dark; SESSION=\"abc=1\""));
    assert_eq!(info.header("missing"), None);
    assert_eq!(info.cookie("theme"), Some("dark"));
    assert_eq!(info.cookie("SESSION"), Some("abc=1"), "quotes removed");
    assert_eq!(info.cookie("other"), Some("2"), "every Cookie header");
    assert_eq!(
        info.cookie("session"),
        None,
        "cookie names are case-sensitive"
    );
    assert_eq!(info.cookie("dark"), None);
    assert_eq!(info.query_param("a"), Some("1"));
    assert_eq!(info.transport, Transport::WebSocket);
    let tcp = ConnectionInfo::new().with_transport(Transport::Tcp);
    assert_eq!(tcp.transport, Transport::Tcp);
    assert_eq!(tcp.cookie("theme"), None);
}
