//! An engine that refuses SENDs ([`Engine::try_publish`] returning `Err`): the session answers
//! with an ERROR naming the refusal (and the receipt the SEND asked for), then closes; a
//! COMMIT holding a refused SEND fails the same way; an engine without selector support refuses
//! a SUBSCRIBE with a `selector`.

mod common;

use common::{Harness, assert_error, send, subscribe};
use wsx_stomp::{Command, Delivery, Engine, Error, Frame, MemoryEngine, Publish};

/// A [`MemoryEngine`] refusing every message sent to a destination named `full…`.
#[derive(Debug, Default)]
struct Refusing {
    inner: MemoryEngine,
    refused: usize,
}

impl Engine for Refusing {
    common::forward_to_inner!();

    fn try_publish(&mut self, message: Publish, out: &mut Vec<Delivery>) -> Result<(), Error> {
        if message.destination.name().starts_with("full") {
            self.refused += 1;
            return Err(Error::Refused(format!(
                "{} is at its length limit",
                message.destination
            )));
        }
        self.inner.publish(message, out);
        Ok(())
    }
}

fn harness() -> Harness<Refusing> {
    Harness::routing_through(Refusing::default())
}

#[test]
fn refused_send_is_an_error_with_the_receipt_then_close() {
    let mut h = harness();
    let conn = h.connect();
    // An accepted SEND gets its receipt.
    h.send(conn, send("/queue/ok", "fine").with_header("receipt", "r0"));
    let frames = h.frames(conn);
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].command, Command::Receipt);
    assert_eq!(frames[0].header("receipt-id"), Some("r0"));
    assert_eq!(h.broker.engine().inner.queue_depth("/queue/ok"), 1);

    h.send(
        conn,
        send("/queue/full", "nope").with_header("receipt", "r1"),
    );
    let seen = h.drain(conn);
    let error = assert_error(&seen, "message refused: /queue/full is at its length limit");
    assert_eq!(error.header("receipt-id"), Some("r1"));
    assert!(h.broker.session(conn).expect("session").is_closed());
    assert_eq!(h.broker.engine().refused, 1);
    assert_eq!(h.broker.engine().inner.queue_depth("/queue/full"), 0);
}

#[test]
fn commit_with_a_refused_send_is_an_error() {
    let mut h = harness();
    let conn = h.connect();
    h.send(
        conn,
        Frame::new(Command::Begin).with_header("transaction", "t1"),
    );
    h.send(
        conn,
        send("/queue/ok", "one").with_header("transaction", "t1"),
    );
    h.send(
        conn,
        send("/queue/full", "two").with_header("transaction", "t1"),
    );
    h.send(
        conn,
        send("/queue/ok", "three").with_header("transaction", "t1"),
    );
    assert!(h.frames(conn).is_empty(), "buffered, nothing refused yet");
    assert_eq!(h.broker.engine().refused, 0);

    h.send(
        conn,
        Frame::new(Command::Commit)
            .with_header("transaction", "t1")
            .with_header("receipt", "c1"),
    );
    let seen = h.drain(conn);
    let error = assert_error(
        &seen,
        "transaction `t1` partly committed (1 of 3 steps): message refused: /queue/full",
    );
    assert_eq!(error.header("receipt-id"), Some("c1"));
    assert!(h.broker.session(conn).expect("session").is_closed());
    // The step before the refusal was applied, the ones after it were not.
    assert_eq!(h.broker.engine().inner.queue_depth("/queue/ok"), 1);
    assert_eq!(h.broker.engine().refused, 1);
}

#[test]
fn engine_without_selector_support_refuses_a_selector() {
    // `Refusing` does not implement `subscribe_with_selector`: the default refuses selectors.
    let mut h = harness();
    let conn = h.connect();
    h.send(conn, subscribe("plain", "/topic/t", "auto"));
    assert!(h.frames(conn).is_empty(), "no selector: subscribed");
    h.send(
        conn,
        subscribe("picky", "/topic/t", "auto").with_header("selector", "type = 'a'"),
    );
    let seen = h.drain(conn);
    assert_error(
        &seen,
        "not supported: this broker's engine does not support selectors",
    );
    assert_eq!(h.broker.engine().inner.subscriber_count("/topic/t"), 0);
}
