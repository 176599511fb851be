//! An engine that stores SENDs later ([`Engine::try_publish_from`] answering
//! [`Outcome::Pending`], then a [`Confirmation`] through the broker): a SEND's RECEIPT waits
//! until the message is stored; a failure is an ERROR with the SEND's `receipt-id`, then close
//! (with or without a receipt); a DISCONNECT's or a COMMIT's RECEIPT waits for the SENDs before
//! it; other frames are not held back.

mod common;

use std::collections::VecDeque;
use std::sync::Arc;

use common::{Harness, Seen, assert_error, body, frames, send, subscribe};
use wsx_stomp::{
    Command, Confirmation, ConnId, Delivery, Destination, Engine, Error, Frame, MemoryEngine,
    Origin, Outcome, Publish,
};

/// A [`MemoryEngine`] that stores SENDs to destinations named `slow…` only when the test says
/// so ([`Deferring::store`] / [`Deferring::fail`]); the others at once.
#[derive(Debug, Default)]
struct Deferring {
    inner: MemoryEngine,
    waiting: VecDeque<(Publish, Origin)>,
}

impl Deferring {
    /// Store the oldest waiting SEND: its deliveries and its confirmation.
    fn store(&mut self) -> (Vec<Delivery>, Confirmation) {
        let (publish, origin) = self.waiting.pop_front().expect("a waiting SEND");
        let mut out = Vec::new();
        self.inner.publish(publish, &mut out);
        (out, Confirmation::Stored(origin))
    }

    /// Fail the oldest waiting SEND.
    fn fail(&mut self, reason: &str) -> Confirmation {
        let (_, origin) = self.waiting.pop_front().expect("a waiting SEND");
        Confirmation::Failed(origin, reason.to_owned())
    }
}

impl Engine for Deferring {
    common::forward_to_inner!();

    fn try_publish_from(
        &mut self,
        message: Publish,
        origin: Origin,
        out: &mut Vec<Delivery>,
    ) -> Result<Outcome, Error> {
        assert_eq!(origin.destination, message.destination);
        if message.destination.name().starts_with("slow") {
            self.waiting.push_back((message, origin));
            return Ok(Outcome::Pending);
        }
        self.inner.publish(message, out);
        Ok(Outcome::Done)
    }
}

fn harness() -> Harness<Deferring> {
    Harness::routing_through(Deferring::default())
}

/// Store the oldest waiting SEND: route its deliveries, then its confirmation.
fn store(h: &mut Harness<Deferring>) {
    let (out, confirmation) = h.broker.engine_mut().store();
    h.broker.deliver(out);
    h.confirm(vec![confirmation]);
}

fn unconfirmed(h: &Harness<Deferring>, conn: ConnId) -> usize {
    h.broker.session(conn).expect("session").unconfirmed_sends()
}

fn receipt_ids(frames: &[Frame]) -> Vec<&str> {
    frames
        .iter()
        .map(|f| {
            assert_eq!(f.command, Command::Receipt, "{f:?}");
            f.header("receipt-id").expect("receipt-id")
        })
        .collect()
}

#[test]
fn a_send_receipt_waits_until_the_message_is_stored() {
    let mut h = harness();
    let consumer = h.connect();
    h.send(consumer, subscribe("s", "/queue/slow", "auto"));
    let conn = h.connect();
    h.send(
        conn,
        send("/queue/slow", "one").with_header("receipt", "r1"),
    );
    assert!(h.frames(conn).is_empty(), "no receipt before it is stored");
    assert!(h.frames(consumer).is_empty());
    assert_eq!(unconfirmed(&h, conn), 1);
    let origin = &h.broker.engine().waiting[0].1;
    assert_eq!(origin.conn, conn);
    assert_eq!(origin.receipt.as_deref(), Some("r1"));

    store(&mut h);
    assert!(h.woken.contains(&conn), "the sender is woken");
    assert_eq!(receipt_ids(&h.frames(conn)), ["r1"]);
    assert_eq!(unconfirmed(&h, conn), 0);
    let got = h.frames(consumer);
    assert_eq!(got.len(), 1);
    assert_eq!(body(&got[0]), "one");

    // A SEND the engine stores at once is confirmed at once, as before.
    h.send(
        conn,
        send("/queue/fast", "two").with_header("receipt", "r2"),
    );
    assert_eq!(receipt_ids(&h.frames(conn)), ["r2"]);
    assert_eq!(unconfirmed(&h, conn), 0);
}

#[test]
fn other_frames_are_not_held_back_by_a_pending_send() {
    let mut h = harness();
    let conn = h.connect();
    h.send(
        conn,
        send("/topic/slow", "mine").with_header("receipt", "r1"),
    );
    // A later SUBSCRIBE and a fast SEND are answered at once.
    h.send(
        conn,
        subscribe("s", "/topic/news", "auto").with_header("receipt", "r2"),
    );
    h.send(conn, send("/topic/fast", "x").with_header("receipt", "r3"));
    assert_eq!(receipt_ids(&h.frames(conn)), ["r2", "r3"]);
    // Messages for its subscriptions flow meanwhile.
    let other = h.connect();
    h.send(other, send("/topic/news", "hello"));
    let got = h.frames(conn);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].command, Command::Message);
    assert_eq!(body(&got[0]), "hello");
    store(&mut h);
    assert_eq!(receipt_ids(&h.frames(conn)), ["r1"]);
}

#[test]
fn receipts_follow_the_order_of_the_confirmations() {
    let mut h = harness();
    let conn = h.connect();
    h.send(conn, send("/queue/slow-a", "1").with_header("receipt", "a"));
    h.send(conn, send("/queue/slow-b", "2"));
    h.send(conn, send("/queue/slow-c", "3").with_header("receipt", "c"));
    assert_eq!(unconfirmed(&h, conn), 3);
    let (out_a, first) = h.broker.engine_mut().store();
    let (out_b, second) = h.broker.engine_mut().store();
    let (out_c, third) = h.broker.engine_mut().store();
    assert!(out_a.is_empty() && out_b.is_empty() && out_c.is_empty());
    h.confirm(vec![third]);
    assert_eq!(receipt_ids(&h.frames(conn)), ["c"]);
    h.confirm(vec![second, first]);
    assert_eq!(receipt_ids(&h.frames(conn)), ["a"]);
    assert_eq!(unconfirmed(&h, conn), 0);
}

#[test]
fn a_failed_send_is_an_error_with_its_receipt_then_close() {
    let mut h = harness();
    let consumer = h.connect();
    h.send(consumer, subscribe("s", "/queue/jobs", "client-individual"));
    let conn = h.connect();
    h.send(
        conn,
        send("/queue/slow", "lost").with_header("receipt", "r1"),
    );
    assert!(h.frames(conn).is_empty());
    let failed = h
        .broker
        .engine_mut()
        .fail("message refused: queue /queue/slow is full");
    h.confirm(vec![failed]);
    assert_eq!(h.woken, [conn]);
    let error = assert_error(&h.drain(conn), "message refused: queue /queue/slow is full");
    assert_eq!(error.header("receipt-id"), Some("r1"));
    let session = h.broker.session(conn).expect("session");
    assert!(session.is_closed());
    assert_eq!(
        session.close_reason(),
        Some("message refused: queue /queue/slow is full")
    );
    assert!(h.frames(consumer).is_empty());
}

#[test]
fn a_failed_send_without_receipt_is_still_an_error() {
    let mut h = harness();
    let conn = h.connect();
    h.send(conn, send("/topic/slow", "lost"));
    h.send(
        conn,
        send("/topic/fast", "kept").with_header("receipt", "r2"),
    );
    assert_eq!(receipt_ids(&h.frames(conn)), ["r2"]);
    let failed = h.broker.engine_mut().fail("message refused: redis said no");
    h.confirm(vec![failed]);
    let error = assert_error(&h.drain(conn), "message refused: redis said no");
    assert_eq!(error.header("receipt-id"), None);
}

#[test]
fn a_disconnect_receipt_waits_for_the_pending_sends() {
    let mut h = harness();
    let conn = h.connect();
    h.send(conn, subscribe("s", "/queue/jobs", "client-individual"));
    h.send(conn, send("/queue/slow-1", "a"));
    h.send(
        conn,
        send("/queue/slow-2", "b").with_header("receipt", "r2"),
    );
    h.send(
        conn,
        Frame::new(Command::Disconnect).with_header("receipt", "bye"),
    );
    assert!(
        h.drain(conn).is_empty(),
        "nothing before the SENDs are stored"
    );
    let session = h.broker.session(conn).expect("session");
    assert!(!session.is_closed());
    assert_eq!(
        session.subscription_count(),
        0,
        "released at the DISCONNECT"
    );
    assert_eq!(h.broker.engine().inner.subscriber_count("/queue/jobs"), 0);
    // Input after DISCONNECT is ignored.
    h.send(
        conn,
        send("/queue/fast", "late").with_header("receipt", "late"),
    );
    assert!(h.drain(conn).is_empty());
    assert_eq!(h.broker.engine().inner.queue_depth("/queue/fast"), 0);

    store(&mut h);
    assert!(h.drain(conn).is_empty(), "one SEND still pending");
    store(&mut h);
    let seen = h.drain(conn);
    assert_eq!(receipt_ids(&frames(&seen)), ["r2", "bye"]);
    assert_eq!(seen.last(), Some(&Seen::Close));
    let session = h.broker.session(conn).expect("session");
    assert!(session.is_closed());
    assert_eq!(session.close_reason(), None);
}

#[test]
fn a_disconnect_waiting_for_a_send_that_fails_gets_the_error() {
    let mut h = harness();
    let conn = h.connect();
    h.send(conn, send("/queue/slow", "a").with_header("receipt", "r1"));
    h.send(
        conn,
        Frame::new(Command::Disconnect).with_header("receipt", "bye"),
    );
    assert!(h.drain(conn).is_empty());
    let failed = h.broker.engine_mut().fail("message refused: no room");
    h.confirm(vec![failed]);
    let error = assert_error(&h.drain(conn), "message refused: no room");
    assert_eq!(error.header("receipt-id"), Some("r1"), "not `bye`");
}

#[test]
fn a_disconnect_with_nothing_pending_closes_at_once() {
    let mut h = harness();
    let conn = h.connect();
    h.send(conn, send("/queue/slow", "a"));
    store(&mut h);
    h.send(
        conn,
        Frame::new(Command::Disconnect).with_header("receipt", "bye"),
    );
    let seen = h.drain(conn);
    assert_eq!(receipt_ids(&frames(&seen)), ["bye"]);
    assert_eq!(seen.last(), Some(&Seen::Close));
}

fn begin(tx: &str) -> Frame {
    Frame::new(Command::Begin).with_header("transaction", tx)
}

fn commit(tx: &str, receipt: &str) -> Frame {
    Frame::new(Command::Commit)
        .with_header("transaction", tx)
        .with_header("receipt", receipt)
}

#[test]
fn a_commit_receipt_waits_for_its_sends() {
    let mut h = harness();
    let conn = h.connect();
    h.send(conn, begin("t1"));
    h.send(
        conn,
        send("/queue/slow-a", "1").with_header("transaction", "t1"),
    );
    h.send(
        conn,
        send("/queue/fast", "2").with_header("transaction", "t1"),
    );
    h.send(
        conn,
        send("/queue/slow-b", "3").with_header("transaction", "t1"),
    );
    h.send(conn, commit("t1", "c1"));
    assert!(h.frames(conn).is_empty());
    assert_eq!(unconfirmed(&h, conn), 2);
    assert_eq!(h.broker.engine().inner.queue_depth("/queue/fast"), 1);
    for (_, origin) in &h.broker.engine().waiting {
        assert_eq!(
            origin.receipt.as_deref(),
            Some("c1"),
            "the COMMIT's receipt"
        );
    }
    store(&mut h);
    assert!(h.frames(conn).is_empty(), "one SEND of the COMMIT left");
    store(&mut h);
    assert_eq!(receipt_ids(&h.frames(conn)), ["c1"]);

    // A COMMIT whose SENDs are all stored at once is confirmed at once.
    h.send(conn, begin("t2"));
    h.send(
        conn,
        send("/queue/fast", "4").with_header("transaction", "t2"),
    );
    h.send(conn, commit("t2", "c2"));
    assert_eq!(receipt_ids(&h.frames(conn)), ["c2"]);
}

#[test]
fn a_commit_with_a_send_that_fails_is_an_error() {
    let mut h = harness();
    let conn = h.connect();
    h.send(conn, begin("t1"));
    h.send(
        conn,
        send("/queue/slow-a", "1").with_header("transaction", "t1"),
    );
    h.send(
        conn,
        send("/queue/slow-b", "2").with_header("transaction", "t1"),
    );
    h.send(conn, commit("t1", "c1"));
    store(&mut h);
    assert!(h.frames(conn).is_empty());
    let failed = h.broker.engine_mut().fail("message refused: full");
    h.confirm(vec![failed]);
    let error = assert_error(
        &h.drain(conn),
        "transaction `t1` not fully committed: message refused: full",
    );
    assert_eq!(error.header("receipt-id"), Some("c1"));
}

#[test]
fn confirmations_for_connections_gone_are_ignored() {
    let mut h = harness();
    let conn = h.connect();
    h.send(conn, send("/queue/slow", "a").with_header("receipt", "r1"));
    h.send(conn, send("/queue/slow", "b").with_header("receipt", "r2"));
    h.close(conn);
    store(&mut h);
    assert!(h.woken.is_empty());
    let failed = h.broker.engine_mut().fail("late");
    h.confirm(vec![failed]);
    assert!(h.woken.is_empty());
    // Stored anyway: the client may get it twice if it sends again (at least once).
    assert_eq!(h.broker.engine().inner.queue_depth("/queue/slow"), 1);

    // And a confirmation that does not match any pending SEND of a live session.
    let live = h.connect();
    let stray = Origin {
        conn: live,
        receipt: Some(Arc::from("x")),
        destination: Destination::parse("/queue/slow").expect("valid"),
        seq: 12345,
    };
    h.confirm(vec![Confirmation::Stored(stray.clone())]);
    h.confirm(vec![Confirmation::Failed(stray, "no".to_owned())]);
    assert!(h.woken.is_empty());
    assert!(h.frames(live).is_empty());
    assert!(!h.broker.session(live).expect("session").is_closed());
}
