//! Keepalive and the close deadline as sans-IO timers (`Connection::poll_timeout` /
//! `handle_timeout`), driven with made-up instants: an in-memory client/server pair, no clock
//! and no sockets.

use std::time::{Duration, Instant};

mod common;

use common::drain;
use wsx_proto::{
    CloseCode, CloseFrame, Config, Connection, Error, Message, Role, Timeout, TimerConfig,
};

/// Move what `from` queued to `to` (received at `now`), and return the messages `to` got.
fn transfer(from: &mut Connection, to: &mut Connection, now: Instant) -> Vec<Message> {
    let bytes = drain(from);
    if !bytes.is_empty() {
        to.feed(&bytes);
        to.mark_received(now);
    }
    let mut msgs = Vec::new();
    while let Some(m) = to.poll_message().unwrap() {
        msgs.push(m);
    }
    msgs
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn without_timers_there_is_no_deadline() {
    let mut conn = Connection::new(Role::Server, Config::default());
    assert_eq!(conn.poll_timeout(), None);
    assert!(!conn.has_keepalive());
    conn.close(None).unwrap();
    assert_eq!(conn.poll_timeout(), None);
    assert_eq!(conn.handle_timeout(Instant::now()), Ok(()));
}

#[test]
fn pings_after_silence_and_a_pong_resets_the_wait() {
    let t0 = Instant::now();
    let config = TimerConfig {
        ping_interval: Some(secs(10)),
        pong_timeout: secs(5),
        ..TimerConfig::default()
    };
    let mut server = Connection::new(Role::Server, Config::default()).with_timers(config, t0);
    let mut client = Connection::new(Role::Client, Config::default());
    assert!(server.has_keepalive());
    assert_eq!(server.poll_timeout(), Some(t0 + secs(10)));

    // Bytes from the client postpone the ping.
    client.send(Message::text("hi")).unwrap();
    assert_eq!(
        transfer(&mut client, &mut server, t0 + secs(4)),
        [Message::text("hi")]
    );
    assert_eq!(server.poll_timeout(), Some(t0 + secs(14)));
    // Early: nothing happens.
    assert_eq!(server.handle_timeout(t0 + secs(13)), Ok(()));
    assert!(!server.has_output());

    // Silence: a ping, then the pong is awaited for 5 s.
    assert_eq!(server.handle_timeout(t0 + secs(14)), Ok(()));
    let got = transfer(&mut server, &mut client, t0 + secs(14));
    assert_eq!(got, [Message::Ping(0u64.to_be_bytes().to_vec().into())]);
    assert_eq!(server.poll_timeout(), Some(t0 + secs(19)));
    // The client answered by itself; the pong ends the wait and the silence restarts.
    let got = transfer(&mut client, &mut server, t0 + secs(15));
    assert!(matches!(&got[..], [Message::Pong(_)]));
    assert_eq!(server.poll_timeout(), Some(t0 + secs(25)));
    assert_eq!(server.handle_timeout(t0 + secs(19)), Ok(()));
    assert!(!server.has_output());
    // The next ping carries the next counter.
    server.handle_timeout(t0 + secs(25)).unwrap();
    let got = transfer(&mut server, &mut client, t0 + secs(25));
    assert_eq!(got, [Message::Ping(1u64.to_be_bytes().to_vec().into())]);
}

#[test]
fn a_missing_pong_fails_with_1011_then_the_close_deadline_gives_up() {
    let t0 = Instant::now();
    let config = TimerConfig {
        ping_interval: Some(secs(10)),
        pong_timeout: secs(5),
        close_timeout: Some(secs(3)),
        ..TimerConfig::default()
    };
    let mut server = Connection::new(Role::Server, Config::default()).with_timers(config, t0);
    let mut client = Connection::new(Role::Client, Config::default());
    server.handle_timeout(t0 + secs(10)).unwrap();
    transfer(&mut server, &mut client, t0 + secs(10));
    // A pong with another payload does not count.
    client
        .send(Message::Pong(b"other".to_vec().into()))
        .unwrap();
    client.send(Message::Ping(b"x".to_vec().into())).unwrap();
    let _ = drain(&mut client); // the client's automatic pong is lost
    assert_eq!(server.poll_timeout(), Some(t0 + secs(15)));

    assert_eq!(
        server.handle_timeout(t0 + secs(15)),
        Err(Error::Timeout(Timeout::Pong))
    );
    assert!(server.is_failed() && server.is_close_sent());
    let got = transfer(&mut server, &mut client, t0 + secs(15));
    assert_eq!(
        got,
        [Message::Close(Some(CloseFrame::new(
            CloseCode::INTERNAL_ERROR,
            "keepalive ping timeout"
        )))]
    );
    // The close deadline runs from the failure; the peer's answer is not awaited past it.
    assert_eq!(server.poll_timeout(), Some(t0 + secs(18)));
    assert_eq!(server.handle_timeout(t0 + secs(17)), Ok(()));
    assert_eq!(
        server.handle_timeout(t0 + secs(18)),
        Err(Error::Timeout(Timeout::Close))
    );
    assert!(server.is_closed());
    assert_eq!(server.poll_timeout(), None);
}

#[test]
fn the_idle_timeout_fails_with_1001() {
    let t0 = Instant::now();
    let config = TimerConfig {
        idle_timeout: Some(secs(30)),
        ..TimerConfig::default()
    };
    let mut server = Connection::new(Role::Server, Config::default()).with_timers(config, t0);
    let mut client = Connection::new(Role::Client, Config::default());
    client.send(Message::binary(vec![1u8; 3])).unwrap();
    transfer(&mut client, &mut server, t0 + secs(20));
    assert_eq!(server.poll_timeout(), Some(t0 + secs(50)));
    assert_eq!(
        server.handle_timeout(t0 + secs(50)),
        Err(Error::Timeout(Timeout::Idle))
    );
    let got = transfer(&mut server, &mut client, t0 + secs(50));
    assert_eq!(
        got,
        [Message::Close(Some(CloseFrame::new(
            CloseCode::GOING_AWAY,
            "idle timeout"
        )))]
    );
}

#[test]
fn the_close_deadline_starts_with_the_close_handshake() {
    let t0 = Instant::now();
    let config = TimerConfig {
        close_timeout: Some(secs(5)),
        ..TimerConfig::default()
    };
    let mut server = Connection::new(Role::Server, Config::default()).with_timers(config, t0);
    assert!(!server.has_keepalive());
    assert_eq!(server.poll_timeout(), None);
    server.close(None).unwrap();
    // Armed by the next call, made at once (the core has no clock to read).
    let due = server.poll_timeout().unwrap();
    assert!(due <= t0);
    assert_eq!(server.handle_timeout(t0 + secs(100)), Ok(()));
    assert_eq!(server.poll_timeout(), Some(t0 + secs(105)));
    // The peer answers in time: the handshake completes, the deadline no longer matters.
    let mut client = Connection::new(Role::Client, Config::default());
    transfer(&mut server, &mut client, t0 + secs(101));
    transfer(&mut client, &mut server, t0 + secs(102));
    assert!(server.is_closed() && !server.is_failed());
}
