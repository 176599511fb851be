//! The `selector` header of SUBSCRIBE with the in-memory engine: topics skip subscribers whose
//! selector does not match, queues give each message to the next consumer that selects it
//! (a message nobody selects waits, the others go ahead), and an invalid selector is an ERROR
//! naming the problem.

mod common;

use common::{Harness, assert_error, body, send, subscribe};
use wsx_stomp::{Command, ConnId, Frame, SessionConfig};

fn tagged(destination: &str, name: &str, value: &str, text: &str) -> Frame {
    send(destination, text).with_header(name, value)
}

fn bodies(h: &mut Harness, conn: ConnId) -> Vec<String> {
    h.frames(conn)
        .iter()
        .map(|f| {
            assert_eq!(f.command, Command::Message, "{f:?}");
            body(f).to_owned()
        })
        .collect()
}

#[test]
fn topic_subscribers_get_only_what_they_select() {
    let mut h = Harness::new(SessionConfig::default());
    let all = h.connect();
    let orders = h.connect();
    let eu_or_urgent = h.connect();
    h.send(all, subscribe("s", "/topic/events", "auto"));
    h.send(
        orders,
        subscribe("s", "/topic/events", "client").with_header("selector", "type = 'order'"),
    );
    h.send(
        eu_or_urgent,
        subscribe("s", "/topic/events", "auto").with_header(
            "selector",
            "type = 'order' AND (region = 'eu' OR priority != 'low')",
        ),
    );
    let sender = h.connect();
    h.send(
        sender,
        tagged("/topic/events", "type", "order", "o-eu").with_header("region", "eu"),
    );
    h.send(
        sender,
        tagged("/topic/events", "type", "order", "o-us-low")
            .with_header("region", "us")
            .with_header("priority", "low"),
    );
    h.send(sender, tagged("/topic/events", "type", "quote", "q"));
    h.send(sender, send("/topic/events", "untyped"));
    assert_eq!(bodies(&mut h, all), ["o-eu", "o-us-low", "q", "untyped"]);
    assert_eq!(bodies(&mut h, orders), ["o-eu", "o-us-low"]);
    assert_eq!(bodies(&mut h, eu_or_urgent), ["o-eu"]);
    // Not selecting is not dropping.
    assert_eq!(h.broker.engine().dropped(), 0);
}

#[test]
fn queue_messages_go_to_consumers_that_select_them() {
    let mut h = Harness::new(SessionConfig::default().max_unacked(1));
    let red = h.connect();
    let blue = h.connect();
    h.send(
        red,
        subscribe("s", "/queue/paint", "client-individual")
            .with_header("selector", "color = 'red'"),
    );
    h.send(
        blue,
        subscribe("s", "/queue/paint", "auto").with_header("selector", "color = 'blue'"),
    );
    let sender = h.connect();
    for (color, text) in [
        ("red", "r1"),
        ("green", "g1"),
        ("blue", "b1"),
        ("red", "r2"),
        ("blue", "b2"),
    ] {
        h.send(sender, tagged("/queue/paint", "color", color, text));
    }
    // `red` has a window of one: r2 waits behind r1; nobody selects g1, which waits too while
    // the blue messages behind it go ahead.
    let got = h.frames(red);
    assert_eq!(got.len(), 1);
    assert_eq!(body(&got[0]), "r1");
    assert_eq!(bodies(&mut h, blue), ["b1", "b2"]);
    assert_eq!(h.broker.engine().queue_depth("/queue/paint"), 2);
    // Acknowledging r1 lets r2 through.
    let ack = got[0].header("ack").expect("ack header").to_owned();
    h.send(red, Frame::new(Command::Ack).with_header("id", ack));
    assert_eq!(bodies(&mut h, red), ["r2"]);
    // A consumer without a selector takes what is left.
    let any = h.connect();
    h.send(any, subscribe("s", "/queue/paint", "auto"));
    assert_eq!(bodies(&mut h, any), ["g1"]);
    assert_eq!(h.broker.engine().queue_depth("/queue/paint"), 0);
    h.close(any);
    // Leaving with an unacknowledged message gives it back to a consumer that selects it.
    let red2 = h.connect();
    h.send(
        red2,
        subscribe("s", "/queue/paint", "auto").with_header("selector", "color='red'"),
    );
    h.close(red);
    assert_eq!(bodies(&mut h, red2), ["r2"]);
}

#[test]
fn invalid_selector_is_an_error_naming_the_problem() {
    let mut h = Harness::new(SessionConfig::default());
    for (selector, needle) in [
        (
            "type = order",
            "invalid selector `type = order`: unexpected name `order` at offset 7: expected a quoted value",
        ),
        ("type = 'x", "has no closing quote"),
        ("", "it is empty"),
    ] {
        let conn = h.connect();
        h.send(
            conn,
            subscribe("s", "/topic/t", "auto")
                .with_header("selector", selector)
                .with_header("receipt", "r"),
        );
        let seen = h.drain(conn);
        let error = assert_error(&seen, needle);
        assert_eq!(error.header("receipt-id"), Some("r"));
        assert_eq!(h.broker.engine().subscriber_count("/topic/t"), 0);
    }
}
