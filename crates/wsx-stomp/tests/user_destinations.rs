//! User destinations (Spring's convention): a client subscribes to `/user/queue/NAME` and gets
//! what is sent to `/user/{its principal}/queue/NAME`, on every one of its sessions, with
//! `destination:/user/queue/NAME`; nobody subscribes to another principal's. Plus the
//! server-side helpers: [`Broker::publish`] and [`Session::subscription_for`].

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::{Harness, Seen, assert_error, body, send, subscribe};
use wsx_stomp::{
    Command, ConnId, ConnectRequest, Delivery, Destination, DestinationKind, Error, Frame, Headers,
    Message, MessageId, Principal, Publish, Refusal, SessionConfig, SubscriberKey,
};

/// Principals named by their login; allowed to subscribe to topics only and to send to topics
/// and user destinations (`/user/*/queue/**`), except login `mute`.
fn harness() -> Harness {
    let auth = |request: &ConnectRequest<'_>| -> Result<Principal, Refusal> {
        let login = request.login.unwrap_or_default();
        let principal = Principal::new(login).allow_subscribe("/topic/**");
        Ok(match login {
            "mute" => principal.allow_send("/topic/**"),
            _ => principal
                .allow_send("/topic/**")
                .allow_send("/user/*/queue/**"),
        })
    };
    Harness::with_auth(SessionConfig::default(), Arc::new(auth))
}

fn connect_as(h: &mut Harness, login: &str) -> ConnId {
    let (conn, seen) = h.connect_with(
        Frame::new(Command::Connect)
            .with_header("accept-version", "1.2")
            .with_header("host", "localhost")
            .with_header("login", login),
    );
    assert!(
        matches!(&seen[..], [Seen::Frame(f)] if f.command == Command::Connected),
        "{seen:?}"
    );
    conn
}

fn subscribed(h: &mut Harness, conn: ConnId, id: &str, destination: &str) {
    h.send(
        conn,
        subscribe(id, destination, "auto").with_header("receipt", "sub"),
    );
    let frames = h.frames(conn);
    assert!(
        matches!(&frames[..], [f] if f.command == Command::Receipt),
        "{frames:?}"
    );
}

#[test]
fn a_message_to_a_user_reaches_every_session_of_that_user_only() {
    let mut h = harness();
    let alice_web = connect_as(&mut h, "alice");
    let alice_phone = connect_as(&mut h, "alice");
    let bob = connect_as(&mut h, "bob");
    subscribed(&mut h, alice_web, "inbox-1", "/user/queue/inbox");
    subscribed(&mut h, alice_phone, "inbox-2", "/user/queue/inbox");
    subscribed(&mut h, bob, "inbox-3", "/user/queue/inbox");

    let carol = connect_as(&mut h, "carol");
    h.send(carol, send("/user/alice/queue/inbox", "hi alice"));
    assert!(h.frames(carol).is_empty());
    for (conn, id) in [(alice_web, "inbox-1"), (alice_phone, "inbox-2")] {
        let frames = h.frames(conn);
        assert_eq!(frames.len(), 1, "{frames:?}");
        assert_eq!(frames[0].command, Command::Message);
        assert_eq!(body(&frames[0]), "hi alice");
        assert_eq!(frames[0].header("destination"), Some("/user/queue/inbox"));
        assert_eq!(frames[0].header("subscription"), Some(id));
        assert_eq!(frames[0].header("user-id"), Some("carol"));
    }
    assert!(h.frames(bob).is_empty(), "bob's inbox is another one");
}

#[test]
fn a_user_subscribes_to_its_own_destinations_only() {
    let mut h = harness();
    let alice = connect_as(&mut h, "alice");
    // The full form of its own destination is fine (and reached by the same SENDs).
    subscribed(&mut h, alice, "own", "/user/alice/queue/inbox");
    h.send(alice, send("/user/alice/queue/inbox", "note to self"));
    let frames = h.frames(alice);
    assert_eq!(frames[0].header("destination"), Some("/user/queue/inbox"));

    h.send(alice, subscribe("spy", "/user/bob/queue/inbox", "auto"));
    let seen = h.drain(alice);
    assert_error(&seen, "cannot subscribe to another user's destination");
}

#[test]
fn principals_without_a_usable_name_have_no_user_destinations() {
    let mut h = harness();
    for login in ["team/a", ""] {
        let conn = connect_as(&mut h, login);
        h.send(conn, subscribe("s", "/user/queue/inbox", "auto"));
        let seen = h.drain(conn);
        assert_error(&seen, "has no user destinations");
    }
}

#[test]
fn sending_to_a_user_needs_the_send_permission() {
    let mut h = harness();
    let alice = connect_as(&mut h, "alice");
    subscribed(&mut h, alice, "inbox", "/user/queue/inbox");
    let mute = connect_as(&mut h, "mute");
    h.send(mute, send("/user/alice/queue/inbox", "psst"));
    let seen = h.drain(mute);
    assert_error(&seen, "not allowed to send to /user/alice/queue/inbox");
    assert!(h.frames(alice).is_empty());
}

#[test]
fn user_destinations_unsubscribe_and_leave_nothing_behind() {
    let mut h = harness();
    let alice = connect_as(&mut h, "alice");
    subscribed(&mut h, alice, "inbox", "/user/queue/inbox");
    assert_eq!(
        h.broker
            .engine()
            .subscriber_count("/user/alice/queue/inbox"),
        1
    );
    h.send(
        alice,
        Frame::new(Command::Unsubscribe).with_header("id", "inbox"),
    );
    assert_eq!(h.broker.engine().destination_count(), 0);
    // Nobody listens: a SEND to it is not kept (a user destination is a topic).
    let bob = connect_as(&mut h, "bob");
    h.send(bob, send("/user/alice/queue/inbox", "missed"));
    assert!(h.frames(bob).is_empty());
    subscribed(&mut h, alice, "inbox", "/user/queue/inbox");
    assert!(h.frames(alice).is_empty());
}

#[test]
fn the_server_publishes_to_users_topics_and_queues() {
    let mut h = harness();
    let alice = connect_as(&mut h, "alice");
    let bob = connect_as(&mut h, "bob");
    subscribed(&mut h, alice, "inbox", "/user/queue/inbox");
    subscribed(&mut h, bob, "news", "/topic/news");

    let to_alice = Destination::for_user("alice", "/queue/inbox").expect("a user destination");
    let publish = Publish::new(
        to_alice,
        Headers::new(),
        Bytes::from_static(b"from the server"),
    );
    let woken = h.broker.publish(publish).expect("published").to_vec();
    assert_eq!(woken, [alice]);
    let frames = h.frames(alice);
    assert_eq!(body(&frames[0]), "from the server");
    assert_eq!(frames[0].header("destination"), Some("/user/queue/inbox"));
    assert_eq!(frames[0].header("user-id"), None, "no session, no user-id");

    let news = Destination::parse("/topic/news").expect("a topic");
    let woken = h
        .broker
        .publish(Publish::new(
            news,
            Headers::new(),
            Bytes::from_static(b"extra"),
        ))
        .expect("published")
        .to_vec();
    assert_eq!(woken, [bob]);
    assert_eq!(body(&h.frames(bob)[0]), "extra");

    let app = Destination::parse("/app/greet").expect("an app destination");
    let refused = h
        .broker
        .publish(Publish::new(app, Headers::new(), Bytes::new()))
        .map(<[ConnId]>::to_vec);
    assert_eq!(
        refused,
        Err(Error::Refused("no handler for /app/greet".to_owned()))
    );
}

#[test]
fn a_reply_goes_to_the_senders_own_subscription_only() {
    let mut h = harness();
    let sender = connect_as(&mut h, "alice");
    let other_session = connect_as(&mut h, "alice");
    subscribed(&mut h, sender, "replies-a", "/user/queue/replies");
    subscribed(&mut h, other_session, "replies-b", "/user/queue/replies");
    subscribed(&mut h, sender, "news", "/topic/news");

    let replies = Destination::for_user("alice", "/queue/replies").expect("valid");
    let session = h.broker.session(sender).expect("open");
    let id = session
        .subscription_for(&replies)
        .expect("subscribed")
        .clone();
    assert_eq!(&*id, "replies-a");
    assert_eq!(
        session
            .subscription_for(&Destination::parse("/topic/news").expect("valid"))
            .map(|id| &**id),
        Some("news")
    );
    assert_eq!(
        session.subscription_for(&Destination::parse("/topic/other").expect("valid")),
        None
    );

    let message = Message::new(
        MessageId::new("reply-1"),
        Publish::new(replies, Headers::new(), Bytes::from_static(b"welcome")),
    );
    let woken = h
        .broker
        .deliver([Delivery {
            subscriber: SubscriberKey::new(sender, id),
            message: Arc::new(message),
            redelivered: false,
            gap: false,
        }])
        .to_vec();
    assert_eq!(woken, [sender]);
    let frames = h.frames(sender);
    assert_eq!(body(&frames[0]), "welcome");
    assert_eq!(frames[0].header("destination"), Some("/user/queue/replies"));
    assert!(h.frames(other_session).is_empty());
}

#[test]
fn user_and_app_destinations_parse() {
    let user = Destination::parse("/user/alice/queue/in/box").expect("valid");
    assert_eq!(user.kind(), DestinationKind::User);
    assert_eq!(user.principal(), Some("alice"));
    assert_eq!(user.alias(), Some("/user/queue/in/box"));
    assert_eq!(user.delivered_as(), "/user/queue/in/box");
    assert_eq!(user.name(), "in/box");
    assert!(user.kind().fans_out());
    let user_topic = Destination::parse("/user/bob/topic/t").expect("valid");
    assert_eq!(user_topic.alias(), Some("/user/topic/t"));
    assert_eq!(
        Destination::for_user("alice", "/queue/in/box"),
        Some(user.clone())
    );
    for (principal, path) in [
        ("", "/queue/x"),
        ("a/b", "/queue/x"),
        ("a", "/x"),
        ("a", "/app/x"),
    ] {
        assert_eq!(
            Destination::for_user(principal, path),
            None,
            "{principal} {path}"
        );
    }

    let app = Destination::parse("/app/chat.room").expect("valid");
    assert_eq!(app.kind(), DestinationKind::App);
    assert_eq!(app.name(), "chat.room");
    assert_eq!(app.principal(), None);
    assert_eq!(app.delivered_as(), "/app/chat.room");
    assert!(!app.kind().fans_out());

    let topic = Destination::parse("/topic/t").expect("valid");
    assert_eq!((topic.principal(), topic.alias()), (None, None));
    for bad in [
        "/user/queue/x",
        "/user//queue/x",
        "/user/alice",
        "/user/alice/queue/",
        "/user/alice/app/x",
        "/user/alice/user/bob/queue/x",
        "/app/",
    ] {
        assert_eq!(Destination::parse(bad), None, "{bad}");
    }
}

#[test]
fn user_destinations_take_selectors_and_client_acks_like_topics() {
    let mut h = harness();
    let alice = connect_as(&mut h, "alice");
    h.send(
        alice,
        subscribe("urgent", "/user/queue/inbox", "client-individual")
            .with_header("selector", "priority = 'high'")
            .with_header("receipt", "sub"),
    );
    assert_eq!(h.frames(alice)[0].command, Command::Receipt);
    let bob = connect_as(&mut h, "bob");
    h.send(
        bob,
        send("/user/alice/queue/inbox", "later").with_header("priority", "low"),
    );
    h.send(
        bob,
        send("/user/alice/queue/inbox", "now").with_header("priority", "high"),
    );
    let frames = h.frames(alice);
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(body(&frames[0]), "now");
    let ack = frames[0]
        .header("ack")
        .expect("client-individual: an ack id");
    h.send(alice, Frame::new(Command::Ack).with_header("id", ack));
    assert!(h.frames(alice).is_empty());
    let key = SubscriberKey::new(alice, "urgent");
    assert_eq!(h.broker.engine().unacked(&key), 0);
}

#[test]
fn stomp_1_0_unsubscribes_a_user_destination_by_the_destination_it_subscribed_to() {
    let mut h = harness();
    let (alice, _) = h.connect_with(
        Frame::new(Command::Connect)
            .with_header("accept-version", "1.0")
            .with_header("login", "alice"),
    );
    h.send(alice, subscribe("box", "/user/queue/inbox", "auto"));
    h.send(
        alice,
        Frame::new(Command::Unsubscribe)
            .with_header("destination", "/user/queue/inbox")
            .with_header("receipt", "gone"),
    );
    let frames = h.frames(alice);
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0].command, Command::Receipt);
    assert_eq!(
        h.broker.session(alice).expect("open").subscription_count(),
        0
    );
}
