//! Broker tests as in-memory exchanges between several clients: topics, queues, acknowledgement
//! modes, redelivery, transactions.

mod common;

use common::{Harness, Seen, assert_error, body, send, subscribe};
use wsx_stomp::{Command, ConnId, Frame, SessionConfig, SubscriberKey, Transmit};

fn ack(id: &str) -> Frame {
    Frame::new(Command::Ack).with_header("id", id)
}

fn nack(id: &str) -> Frame {
    Frame::new(Command::Nack).with_header("id", id)
}

fn messages(h: &mut Harness, conn: ConnId) -> Vec<Frame> {
    let frames = h.frames(conn);
    assert!(
        frames.iter().all(|f| f.command == Command::Message),
        "{frames:?}"
    );
    frames
}

fn bodies(frames: &[Frame]) -> Vec<&str> {
    frames.iter().map(body).collect()
}

#[test]
fn topic_fans_out_to_every_subscriber_once() {
    let mut h = Harness::new(SessionConfig::default());
    let subscribers: Vec<ConnId> = (0..3).map(|_| h.connect()).collect();
    for (i, &conn) in subscribers.iter().enumerate() {
        h.send(conn, subscribe(&format!("sub-{i}"), "/topic/news", "auto"));
    }
    let sender = h.connect();
    h.send(
        sender,
        send("/topic/news", "extra!").with_header("x-custom", "1"),
    );
    let mut woken = h.woken.clone();
    woken.sort();
    assert_eq!(woken, subscribers, "every subscriber is woken");
    assert!(h.drain(sender).is_empty());
    let mut ids = Vec::new();
    for (i, &conn) in subscribers.iter().enumerate() {
        let got = messages(&mut h, conn);
        assert_eq!(got.len(), 1, "exactly once");
        let m = &got[0];
        assert_eq!(body(m), "extra!");
        assert_eq!(m.header("subscription"), Some(format!("sub-{i}").as_str()));
        assert_eq!(m.header("destination"), Some("/topic/news"));
        assert_eq!(m.header("x-custom"), Some("1"));
        assert_eq!(m.header("content-type"), Some("text/plain"));
        assert_eq!(m.header("ack"), None, "auto mode needs no ack");
        ids.push(m.header("message-id").unwrap().to_owned());
    }
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "one message, one id");
    // Unsubscribed clients get nothing more.
    h.send(
        subscribers[0],
        Frame::new(Command::Unsubscribe).with_header("id", "sub-0"),
    );
    h.send(sender, send("/topic/news", "second"));
    assert!(h.drain(subscribers[0]).is_empty());
    assert_eq!(bodies(&messages(&mut h, subscribers[1])), ["second"]);
}

#[test]
fn topic_message_is_encoded_once_for_all_subscribers() {
    let mut h = Harness::new(SessionConfig::default());
    let a = h.connect();
    let b = h.connect();
    h.send(a, subscribe("x", "/topic/t", "auto"));
    h.send(b, subscribe("y", "/topic/t", "auto"));
    h.send(a, send("/topic/t", "shared body"));
    let tail = |h: &mut Harness, conn| match h.broker.poll_transmit(conn, h.now) {
        Some(Transmit::TopicMessage(f)) => f.tail().clone(),
        other => panic!("expected a frame, got {other:?}"),
    };
    let ta = tail(&mut h, a);
    let tb = tail(&mut h, b);
    assert_eq!(ta.as_ptr(), tb.as_ptr());
}

#[test]
fn queue_round_robin_between_two_consumers() {
    let mut h = Harness::new(SessionConfig::default());
    let a = h.connect();
    let b = h.connect();
    h.send(a, subscribe("qa", "/queue/jobs", "auto"));
    h.send(b, subscribe("qb", "/queue/jobs", "auto"));
    let producer = h.connect();
    for i in 1..=4 {
        h.send(producer, send("/queue/jobs", &format!("job {i}")));
    }
    assert_eq!(bodies(&messages(&mut h, a)), ["job 1", "job 3"]);
    assert_eq!(bodies(&messages(&mut h, b)), ["job 2", "job 4"]);
}

#[test]
fn queue_keeps_messages_until_a_consumer_comes() {
    let mut h = Harness::new(SessionConfig::default());
    let producer = h.connect();
    h.send(producer, send("/queue/later", "one"));
    h.send(producer, send("/queue/later", "two"));
    assert_eq!(h.broker.engine().queue_depth("/queue/later"), 2);
    let consumer = h.connect();
    h.send(
        consumer,
        subscribe("q", "/queue/later", "auto").with_header("receipt", "r"),
    );
    let got = h.frames(consumer);
    assert_eq!(got[0].command, Command::Receipt, "the receipt comes first");
    assert_eq!(bodies(&got[1..]), ["one", "two"]);
    assert_eq!(h.broker.engine().queue_depth("/queue/later"), 0);
}

#[test]
fn client_individual_ack_and_nack_with_redelivery() {
    let mut h = Harness::new(SessionConfig::default());
    let consumer = h.connect();
    h.send(consumer, subscribe("q", "/queue/work", "client-individual"));
    let producer = h.connect();
    h.send(producer, send("/queue/work", "first"));
    h.send(producer, send("/queue/work", "second"));
    let got = messages(&mut h, consumer);
    assert_eq!(bodies(&got), ["first", "second"]);
    let ack_first = got[0].header("ack").unwrap().to_owned();
    let ack_second = got[1].header("ack").unwrap().to_owned();
    let key = SubscriberKey::new(consumer, "q");
    assert_eq!(h.broker.engine().unacked(&key), 2);

    // NACK the first: it comes back, marked redelivered; the second is untouched.
    h.send(consumer, nack(&ack_first));
    let again = messages(&mut h, consumer);
    assert_eq!(bodies(&again), ["first"]);
    assert_eq!(again[0].header("redelivered"), Some("true"));
    assert_eq!(again[0].header("message-id"), got[0].header("message-id"));
    assert_ne!(
        again[0].header("ack"),
        Some(ack_first.as_str()),
        "a fresh ack id"
    );

    // ACK the second only (not cumulative): the redelivered first stays pending.
    h.send(consumer, ack(&ack_second));
    assert_eq!(h.broker.engine().unacked(&key), 1);
    h.send(consumer, ack(again[0].header("ack").unwrap()));
    assert_eq!(h.broker.engine().unacked(&key), 0);
    assert!(h.drain(consumer).is_empty());
    // An ack id can be used once.
    h.send(consumer, ack(&ack_second));
    assert_error(&h.drain(consumer), "no unacknowledged message with ack id");
}

#[test]
fn nack_goes_to_the_next_consumer_and_leaving_consumers_redeliver() {
    let mut h = Harness::new(SessionConfig::default());
    let a = h.connect();
    let b = h.connect();
    h.send(a, subscribe("qa", "/queue/q", "client-individual"));
    h.send(b, subscribe("qb", "/queue/q", "client-individual"));
    let producer = h.connect();
    h.send(producer, send("/queue/q", "m1"));
    let to_a = messages(&mut h, a);
    assert_eq!(bodies(&to_a), ["m1"]);
    h.send(a, nack(to_a[0].header("ack").unwrap()));
    assert_eq!(h.woken, vec![b]);
    let to_b = messages(&mut h, b);
    assert_eq!(bodies(&to_b), ["m1"]);
    assert_eq!(to_b[0].header("redelivered"), Some("true"));

    // b goes away without acknowledging: a gets the message again.
    h.close(b);
    assert_eq!(h.woken, vec![a]);
    let back = messages(&mut h, a);
    assert_eq!(bodies(&back), ["m1"]);
    assert_eq!(back[0].header("redelivered"), Some("true"));
    assert_eq!(h.broker.connection_count(), 2);
}

#[test]
fn client_ack_is_cumulative() {
    let mut h = Harness::new(SessionConfig::default());
    let consumer = h.connect();
    h.send(consumer, subscribe("s", "/queue/c", "client"));
    let producer = h.connect();
    for i in 1..=3 {
        h.send(producer, send("/queue/c", &format!("m{i}")));
    }
    let got = messages(&mut h, consumer);
    assert_eq!(got.len(), 3);
    let key = SubscriberKey::new(consumer, "s");
    // Acknowledging the second acknowledges the first too.
    h.send(consumer, ack(got[1].header("ack").unwrap()));
    assert_eq!(h.broker.engine().unacked(&key), 1);
    h.send(consumer, ack(got[2].header("ack").unwrap()));
    assert_eq!(h.broker.engine().unacked(&key), 0);
    h.send(consumer, ack(got[0].header("ack").unwrap()));
    assert_error(&h.drain(consumer), "no unacknowledged message");
}

#[test]
fn window_limits_unacknowledged_messages_per_subscription() {
    let mut h = Harness::new(SessionConfig::default().max_unacked(2));
    let consumer = h.connect();
    h.send(consumer, subscribe("s", "/queue/w", "client-individual"));
    let producer = h.connect();
    for i in 1..=3 {
        h.send(producer, send("/queue/w", &format!("m{i}")));
    }
    let got = messages(&mut h, consumer);
    assert_eq!(bodies(&got), ["m1", "m2"]);
    assert_eq!(h.broker.engine().queue_depth("/queue/w"), 1);
    h.send(consumer, ack(got[0].header("ack").unwrap()));
    assert_eq!(bodies(&messages(&mut h, consumer)), ["m3"]);

    // A topic subscriber with a full window misses messages instead.
    let t = h.connect();
    h.send(t, subscribe("t", "/topic/fast", "client"));
    for i in 1..=3 {
        h.send(producer, send("/topic/fast", &format!("t{i}")));
    }
    assert_eq!(bodies(&messages(&mut h, t)), ["t1", "t2"]);
    assert_eq!(h.broker.engine().dropped(), 1);
}

#[test]
fn transaction_commit_applies_sends_and_acks_together() {
    let mut h = Harness::new(SessionConfig::default());
    let listener = h.connect();
    h.send(listener, subscribe("l", "/topic/out", "auto"));
    let worker = h.connect();
    h.send(worker, subscribe("w", "/queue/in", "client-individual"));
    let producer = h.connect();
    h.send(producer, send("/queue/in", "task"));
    let task = messages(&mut h, worker);
    let key = SubscriberKey::new(worker, "w");

    let tx = |f: Frame| f.with_header("transaction", "tx1");
    h.send(worker, tx(Frame::new(Command::Begin)));
    h.send(worker, tx(send("/topic/out", "result a")));
    h.send(worker, tx(ack(task[0].header("ack").unwrap())));
    h.send(worker, tx(send("/topic/out", "result b")));
    assert!(h.drain(listener).is_empty(), "nothing before COMMIT");
    assert_eq!(h.broker.engine().unacked(&key), 1, "the ACK waits too");

    h.send(
        worker,
        tx(Frame::new(Command::Commit)).with_header("receipt", "c"),
    );
    assert_eq!(h.frames(worker)[0].header("receipt-id"), Some("c"));
    assert_eq!(
        bodies(&messages(&mut h, listener)),
        ["result a", "result b"]
    );
    assert_eq!(h.broker.engine().unacked(&key), 0);
}

#[test]
fn transaction_abort_discards_everything() {
    let mut h = Harness::new(SessionConfig::default());
    let listener = h.connect();
    h.send(listener, subscribe("l", "/topic/out", "auto"));
    let worker = h.connect();
    h.send(worker, subscribe("w", "/queue/in", "client"));
    let producer = h.connect();
    h.send(producer, send("/queue/in", "task"));
    let task = messages(&mut h, worker);
    let key = SubscriberKey::new(worker, "w");

    let tx = |f: Frame| f.with_header("transaction", "t");
    h.send(worker, tx(Frame::new(Command::Begin)));
    h.send(worker, tx(send("/topic/out", "never")));
    h.send(worker, tx(ack(task[0].header("ack").unwrap())));
    h.send(worker, tx(Frame::new(Command::Abort)));
    assert!(h.drain(listener).is_empty());
    assert!(h.drain(worker).is_empty());
    assert_eq!(h.broker.engine().unacked(&key), 1, "the ACK was discarded");
    // The transaction is gone.
    h.send(worker, tx(Frame::new(Command::Commit)));
    assert_error(&h.drain(worker), "unknown transaction `t`");
}

#[test]
fn commit_is_all_or_nothing() {
    let mut h = Harness::new(SessionConfig::default());
    let listener = h.connect();
    h.send(listener, subscribe("l", "/topic/out", "auto"));
    let worker = h.connect();
    h.send(worker, subscribe("w", "/queue/in", "client-individual"));
    let producer = h.connect();
    h.send(producer, send("/queue/in", "task"));
    let task = messages(&mut h, worker);
    let ack_id = task[0].header("ack").unwrap().to_owned();

    let tx = |f: Frame| f.with_header("transaction", "t");
    h.send(worker, tx(Frame::new(Command::Begin)));
    h.send(worker, tx(send("/topic/out", "result")));
    h.send(worker, tx(ack(&ack_id)));
    h.send(worker, tx(ack(&ack_id))); // the same delivery twice
    h.send(worker, tx(Frame::new(Command::Commit)));
    assert_error(&h.drain(worker), "cannot commit transaction `t`");
    assert!(h.drain(listener).is_empty(), "the SEND was not applied");
    // The worker's session closed without acknowledging: the task is back in the queue.
    assert_eq!(h.broker.engine().queue_depth("/queue/in"), 1);
}

#[test]
fn stomp_1_1_acks_by_subscription_and_message_id() {
    let mut h = Harness::new(SessionConfig::default());
    let consumer = h.connect_version("1.1");
    h.send(consumer, subscribe("s", "/queue/v11", "client-individual"));
    let producer = h.connect();
    h.send(producer, send("/queue/v11", "a:b"));
    let got = messages(&mut h, consumer);
    assert_eq!(got[0].header("ack"), None, "1.1 has no ack header");
    let id = got[0].header("message-id").unwrap().to_owned();
    h.send(
        consumer,
        Frame::new(Command::Ack)
            .with_header("subscription", "s")
            .with_header("message-id", id.as_str()),
    );
    assert!(h.drain(consumer).is_empty());
    assert_eq!(
        h.broker
            .engine()
            .unacked(&SubscriberKey::new(consumer, "s")),
        0
    );
    h.send(
        consumer,
        Frame::new(Command::Ack).with_header("message-id", id.as_str()),
    );
    assert_error(&h.drain(consumer), "ACK frame has no subscription header");
}

#[test]
fn stomp_1_0_acks_by_message_id_and_subscribes_without_id() {
    let mut h = Harness::new(SessionConfig::default());
    let consumer = h.connect_version("1.0");
    h.send(
        consumer,
        Frame::new(Command::Subscribe)
            .with_header("destination", "/queue/v10")
            .with_header("ack", "client"),
    );
    let producer = h.connect();
    h.send(producer, send("/queue/v10", "old school"));
    let got = messages(&mut h, consumer);
    assert_eq!(got[0].header("subscription"), Some("/queue/v10"));
    let id = got[0].header("message-id").unwrap().to_owned();
    h.send(
        consumer,
        Frame::new(Command::Ack).with_header("message-id", id.as_str()),
    );
    assert!(h.drain(consumer).is_empty());
    h.send(
        consumer,
        Frame::new(Command::Unsubscribe)
            .with_header("destination", "/queue/v10")
            .with_header("receipt", "u"),
    );
    assert_eq!(h.frames(consumer)[0].command, Command::Receipt);
    assert_eq!(h.broker.engine().subscriber_count("/queue/v10"), 0);
}

#[test]
fn headers_a_1_0_client_cannot_read_are_left_out() {
    let mut h = Harness::new(SessionConfig::default());
    let old = h.connect_version("1.0");
    h.send(old, subscribe("s", "/topic/mixed", "auto"));
    let new = h.connect();
    h.send(
        new,
        send("/topic/mixed", "x")
            .with_header("multi", "line\nvalue")
            .with_header("plain", "ok"),
    );
    let got = messages(&mut h, old);
    assert_eq!(got[0].header("multi"), None);
    assert_eq!(got[0].header("plain"), Some("ok"));
}

#[test]
fn error_releases_subscriptions_and_redelivers() {
    let mut h = Harness::new(SessionConfig::default());
    let a = h.connect();
    let b = h.connect();
    h.send(a, subscribe("qa", "/queue/e", "client"));
    let producer = h.connect();
    h.send(producer, send("/queue/e", "m"));
    assert_eq!(messages(&mut h, a).len(), 1);
    // a breaks the protocol before acknowledging; b subscribes later and gets the message.
    h.send_raw(a, b"OOPS\n\n\0");
    let seen = h.drain(a);
    assert!(matches!(seen.last(), Some(Seen::Close)));
    assert_eq!(h.broker.engine().queue_depth("/queue/e"), 1);
    h.send(b, subscribe("qb", "/queue/e", "auto"));
    let got = messages(&mut h, b);
    assert_eq!(got[0].header("redelivered"), Some("true"));
}
