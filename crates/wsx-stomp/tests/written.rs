//! The output side of a session: `ack:auto` queue deliveries acknowledged only once written
//! (a credit window refilled by [`wsx_stomp::Broker::written`]), given back to the queue when
//! their consumer goes before they were written, and input paused while the session's own
//! output is past its budget.

mod common;

use common::{Harness, body, send, subscribe};
use wsx_stomp::{Command, ConnId, Frame, SessionConfig};

fn bodies(frames: &[Frame]) -> Vec<String> {
    frames.iter().map(|f| body(f).to_owned()).collect()
}

fn publish(h: &mut Harness, producer: ConnId, destination: &str, n: std::ops::Range<usize>) {
    for i in n {
        h.send(producer, send(destination, &format!("m{i}")));
    }
}

/// A server with a window of 4 for `ack:auto` queue subscriptions, one client subscribed
/// (`auto`) to `destination` and one that has sent it `sent` messages `m0`, `m1`, …
fn subscribed_and_sent(destination: &str, sent: usize) -> (Harness, ConnId, ConnId) {
    let mut h = Harness::new(SessionConfig::default().auto_ack_window(4));
    let subscriber = h.connect();
    h.written(subscriber);
    h.send(subscriber, subscribe("s", destination, "auto"));
    let producer = h.connect();
    publish(&mut h, producer, destination, 0..sent);
    (h, subscriber, producer)
}

#[test]
fn auto_queue_consumers_get_a_window_refilled_by_writes() {
    let (mut h, consumer, producer) = subscribed_and_sent("/queue/jobs", 10);
    let first = h.frames(consumer);
    assert_eq!(bodies(&first), ["m0", "m1", "m2", "m3"], "a window of 4");
    assert_eq!(first[0].header("ack"), None, "auto mode: nothing to ACK");
    // Taken from the session is not written: nothing more until the writes are reported.
    publish(&mut h, producer, "/queue/jobs", 10..11);
    assert!(h.frames(consumer).is_empty());
    h.written(consumer);
    assert_eq!(
        h.woken,
        Vec::<ConnId>::new(),
        "the refill is the consumer's own output"
    );
    assert_eq!(bodies(&h.frames(consumer)), ["m4", "m5", "m6", "m7"]);
    h.written(consumer);
    assert_eq!(bodies(&h.frames(consumer)), ["m8", "m9", "m10"]);
    assert_eq!(h.broker.engine().queue_depth("/queue/jobs"), 0);
}

#[test]
fn auto_topic_subscribers_have_no_window() {
    let (mut h, subscriber, _) = subscribed_and_sent("/topic/news", 10);
    assert_eq!(
        h.frames(subscriber).len(),
        10,
        "at most once, never held back"
    );
}

#[test]
fn unwritten_auto_deliveries_go_back_to_the_queue_when_the_consumer_goes() {
    let (mut h, gone, _) = subscribed_and_sent("/queue/jobs", 6);
    // Two MESSAGE frames reach the socket, two are taken but not written (the connection is
    // dropped as too slow, say).
    assert_eq!(h.frames(gone).len(), 4);
    h.written_partly(gone, 2);
    h.close(gone);

    let next = h.connect();
    h.send(next, subscribe("t", "/queue/jobs", "client-individual"));
    let got = h.frames(next);
    assert_eq!(
        bodies(&got),
        ["m2", "m3", "m4", "m5"],
        "m0 and m1 were written"
    );
    let redelivered: Vec<Option<&str>> = got.iter().map(|f| f.header("redelivered")).collect();
    // m2 and m3 were taken but not written; m4 and m5 went into the window the two writes
    // refilled, and were not even taken.
    assert_eq!(
        redelivered,
        [Some("true"); 4],
        "what was not written comes back marked redelivered"
    );
}

#[test]
fn an_unsubscribed_auto_consumer_gives_back_what_was_not_written() {
    let (mut h, consumer, _) = subscribed_and_sent("/queue/jobs", 3);
    assert_eq!(h.frames(consumer).len(), 3);
    h.send(
        consumer,
        Frame::new(Command::Unsubscribe).with_header("id", "s"),
    );
    // A new subscription with the same id: the old writes acknowledge nothing of it.
    h.send(consumer, subscribe("s", "/queue/jobs", "auto"));
    let again = h.frames(consumer);
    assert_eq!(bodies(&again), ["m0", "m1", "m2"]);
    assert!(
        again
            .iter()
            .all(|f| f.header("redelivered") == Some("true"))
    );
    h.written(consumer);
    assert_eq!(h.broker.engine().queue_depth("/queue/jobs"), 0);
    h.close(consumer);
    let next = h.connect();
    h.send(next, subscribe("t", "/queue/jobs", "auto"));
    assert!(h.frames(next).is_empty(), "written, so acknowledged");
}

#[test]
fn input_waits_while_the_own_output_is_past_its_budget() {
    let mut h = Harness::new(SessionConfig::default().max_unwritten_bytes(1000));
    let client = h.connect();
    for id in ["a", "b", "c", "d"] {
        h.send(client, subscribe(id, "/topic/echo", "auto"));
    }
    // Ten SENDs in one WebSocket message, each fanned out to the sender's four subscriptions
    // (about 4 × 300 bytes: past the budget after each one).
    let body = "x".repeat(250);
    let mut packed = Vec::new();
    for i in 0..10 {
        let frame = send("/topic/echo", &format!("{i}{body}"));
        packed.extend(frame.encode(wsx_stomp::Version::V1_2).expect("encodable"));
    }
    h.send_raw(client, &packed);
    let mut rounds = 0;
    let mut total = 0;
    loop {
        let got = h.frames(client);
        assert!(got.len() <= 4, "one frame's worth at a time: {}", got.len());
        total += got.len();
        let session = h.broker.session(client).expect("open");
        if total == 40 {
            assert!(session.wants_input() || session.unwritten_bytes() > 1000);
            break;
        }
        assert_eq!(got.len(), 4);
        assert!(!session.wants_input(), "paused while over budget");
        h.written(client);
        rounds += 1;
        assert!(rounds <= 10, "every SEND decoded once");
    }
    h.written(client);
    let session = h.broker.session(client).expect("open");
    assert!(session.wants_input(), "resumed once written");
    assert_eq!(session.unwritten_bytes(), 0);
}

#[test]
fn the_heart_beat_check_waits_while_input_is_paused() {
    // The server wants a heart-beat every second (1.5 s with the grace); no idle limit.
    let config = SessionConfig::default()
        .max_unwritten_bytes(1000)
        .heart_beat(0, 1000)
        .idle_timeout(None);
    let mut h = Harness::new(config);
    let (client, seen) = h.connect_with(
        Frame::new(Command::Connect)
            .with_header("accept-version", "1.2")
            .with_header("heart-beat", "1000,0"),
    );
    assert_eq!(common::frames(&seen)[0].command, Command::Connected);
    h.written(client);
    for id in ["a", "b", "c", "d"] {
        h.send(client, subscribe(id, "/topic/echo", "auto"));
    }
    h.send(client, send("/topic/echo", &"x".repeat(300)));
    assert_eq!(h.frames(client).len(), 4);
    let session = h.broker.session(client).expect("open");
    assert!(!session.wants_input(), "paused: past the budget");
    // Paused: the client's heart-beats wait unread in the socket, so silence is not its fault.
    assert_eq!(session.receive_deadline(), None);
    h.advance(std::time::Duration::from_secs(5));
    h.tick(client);
    assert!(h.frames(client).is_empty(), "not closed while paused");
    // Input resumes now: the check starts again from here.
    h.written(client);
    let session = h.broker.session(client).expect("open");
    assert!(session.wants_input());
    assert_eq!(
        session.receive_deadline(),
        Some(h.now + std::time::Duration::from_millis(1500))
    );
}

#[test]
fn a_commit_fanning_out_past_the_output_budget_to_its_own_subscriptions_is_an_error() {
    let mut h = Harness::new(SessionConfig::default().max_unwritten_bytes(64 * 1024));
    let client = h.connect();
    for i in 0..64 {
        h.send(client, subscribe(&format!("{i:0>200}"), "/topic/x", "auto"));
    }
    h.send(
        client,
        Frame::new(Command::Begin).with_header("transaction", "t"),
    );
    // 1,024 tiny SENDs: far under the transaction limits, but 65,536 MESSAGE frames to the
    // client's own subscriptions in the one COMMIT frame.
    for _ in 0..1024 {
        h.send(
            client,
            send("/topic/x", "x").with_header("transaction", "t"),
        );
    }
    h.written(client);
    h.send(
        client,
        Frame::new(Command::Commit).with_header("transaction", "t"),
    );
    let seen = h.drain(client);
    let error = common::assert_error(&seen, "output budget");
    assert!(
        error
            .header("message")
            .is_some_and(|m| m.contains("own subscriptions")),
        "{error:?}"
    );
    assert!(
        common::frames(&seen)
            .iter()
            .all(|f| f.command != Command::Message),
        "nothing applied"
    );

    // A transaction whose own deliveries fit is committed.
    let mut h = Harness::new(SessionConfig::default().max_unwritten_bytes(64 * 1024));
    let client = h.connect();
    h.send(client, subscribe("s", "/topic/chat", "auto"));
    h.send(
        client,
        Frame::new(Command::Begin).with_header("transaction", "t"),
    );
    for i in 0..10 {
        h.send(
            client,
            send("/topic/chat", &format!("m{i}")).with_header("transaction", "t"),
        );
    }
    h.send(
        client,
        Frame::new(Command::Commit).with_header("transaction", "t"),
    );
    assert_eq!(h.frames(client).len(), 10);
}
