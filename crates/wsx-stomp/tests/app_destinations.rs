//! Application destinations (`/app/NAME`): a SUBSCRIBE is an ERROR; a SEND goes to the engine
//! like any SEND. The runtime's engine wrapper answers it [`Outcome::Pending`] and confirms
//! later (its handler ran), which this test engine emulates; [`MemoryEngine`] itself refuses
//! it (`no handler for /app/...`).

mod common;

use std::collections::VecDeque;

use common::{Harness, Seen, assert_error, send, subscribe};
use wsx_stomp::{
    Command, Confirmation, Delivery, DestinationKind, Engine, Error, MemoryEngine, Origin, Outcome,
    Publish,
};

/// A [`MemoryEngine`] behind an application handler: SENDs to `/app/` wait for the test to
/// confirm them; the others go to the memory engine.
#[derive(Debug, Default)]
struct Handlers {
    inner: MemoryEngine,
    handled: VecDeque<(Publish, Origin)>,
}

impl Engine for Handlers {
    common::forward_to_inner!();

    fn try_publish_from(
        &mut self,
        message: Publish,
        origin: Origin,
        out: &mut Vec<Delivery>,
    ) -> Result<Outcome, Error> {
        if message.destination.kind() == DestinationKind::App {
            self.handled.push_back((message, origin));
            return Ok(Outcome::Pending);
        }
        self.inner.try_publish_from(message, origin, out)
    }
}

fn harness() -> Harness<Handlers> {
    Harness::routing_through(Handlers::default())
}

fn next_handled(h: &mut Harness<Handlers>) -> (Publish, Origin) {
    h.broker
        .engine_mut()
        .handled
        .pop_front()
        .expect("a SEND for the handler")
}

#[test]
fn a_pending_app_send_without_receipt_sends_nothing_and_keeps_the_session() {
    let mut h = harness();
    let conn = h.connect();
    h.send(conn, send("/app/greet", "Ada"));
    assert!(h.frames(conn).is_empty());
    let (publish, origin) = next_handled(&mut h);
    assert_eq!(publish.destination.as_str(), "/app/greet");
    assert_eq!(&publish.body[..], b"Ada");
    assert_eq!(origin.conn, conn);
    assert_eq!(h.broker.session(conn).expect("open").unconfirmed_sends(), 1);
    h.confirm(vec![Confirmation::Stored(origin)]);
    assert!(h.frames(conn).is_empty());
    assert_eq!(h.broker.session(conn).expect("open").unconfirmed_sends(), 0);
    // Still connected: the next frame is answered.
    h.send(
        conn,
        subscribe("s", "/topic/t", "auto").with_header("receipt", "r"),
    );
    let frames = h.frames(conn);
    assert_eq!(frames[0].command, Command::Receipt);
}

#[test]
fn a_pending_app_send_with_receipt_gets_it_once_confirmed() {
    let mut h = harness();
    let conn = h.connect();
    h.send(
        conn,
        send("/app/greet", "Ada").with_header("receipt", "greet-1"),
    );
    assert!(
        h.frames(conn).is_empty(),
        "the RECEIPT waits for the handler"
    );
    let (_, origin) = next_handled(&mut h);
    assert_eq!(origin.receipt.as_deref(), Some("greet-1"));
    h.confirm(vec![Confirmation::Stored(origin)]);
    let frames = h.frames(conn);
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0].command, Command::Receipt);
    assert_eq!(frames[0].header("receipt-id"), Some("greet-1"));
}

#[test]
fn a_failed_app_send_is_an_error_with_its_receipt() {
    let mut h = harness();
    let conn = h.connect();
    h.send(
        conn,
        send("/app/greet", "").with_header("receipt", "greet-2"),
    );
    let (_, origin) = next_handled(&mut h);
    h.confirm(vec![Confirmation::Failed(
        origin,
        "greet: a name is required".to_owned(),
    )]);
    let seen = h.drain(conn);
    let error = assert_error(&seen, "greet: a name is required");
    assert_eq!(error.header("receipt-id"), Some("greet-2"));
}

#[test]
fn subscribing_to_an_app_destination_is_an_error() {
    let mut h = harness();
    let conn = h.connect();
    h.send(conn, subscribe("s", "/app/greet", "auto"));
    let seen = h.drain(conn);
    assert_error(&seen, "/app/ destinations take SEND frames only");
}

#[test]
fn the_memory_engine_has_no_handlers() {
    let mut h = Harness::new(Default::default());
    let conn = h.connect();
    h.send(conn, send("/app/greet", "Ada").with_header("receipt", "r"));
    let seen = h.drain(conn);
    let error = assert_error(&seen, "no handler for /app/greet");
    assert_eq!(error.header("receipt-id"), Some("r"));
    assert!(matches!(seen.last(), Some(Seen::Close)));
}
