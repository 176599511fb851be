//! Destinations, access patterns, and the memory engine driven directly.

use bytes::Bytes;
use wsx_stomp::Engine;
use wsx_stomp::{
    ConnId, Destination, DestinationKind, DestinationPattern, Error, Headers, MemoryEngine,
    Publish, SubscriberKey,
};

#[test]
fn destinations_parse() {
    let topic = Destination::parse("/topic/a/b").unwrap();
    assert_eq!(topic.kind(), DestinationKind::Topic);
    assert_eq!(topic.name(), "a/b");
    assert_eq!(topic.as_str(), "/topic/a/b");
    assert_eq!(
        Destination::parse("/queue/q").unwrap().kind(),
        DestinationKind::Queue
    );
    for bad in ["/topic/", "/queue/", "topic/x", "/exchange/x", ""] {
        assert_eq!(Destination::parse(bad), None, "{bad}");
    }
}

#[test]
fn patterns_match_segments_and_everything() {
    let cases = [
        ("/topic/*", "/topic/news", true),
        ("/topic/*", "/topic/news/eu", false),
        ("/topic/**", "/topic/news/eu", true),
        ("/topic/news.*", "/topic/news.eu", true),
        ("/topic/news.*", "/topic/sports.eu", false),
        ("**", "/queue/anything", true),
        ("/queue/user-*-in", "/queue/user-42-in", true),
        ("/queue/user-*-in", "/queue/user-42-out", false),
        ("/queue/exact", "/queue/exact", true),
        ("/queue/exact", "/queue/exactly", false),
        ("*", "", true),
        ("", "", true),
        ("", "/x", false),
    ];
    for (pattern, destination, expected) in cases {
        assert_eq!(
            DestinationPattern::new(pattern).matches(destination),
            expected,
            "{pattern} vs {destination}"
        );
    }
    // Many stars against a long near-miss stay fast (no backtracking).
    let pattern = DestinationPattern::new("*a*a*a*a*a*a*a*a*a*a*b");
    assert!(!pattern.matches(&"a".repeat(5000)));
}

fn publish(destination: &str, body: &'static str) -> Publish {
    Publish::new(
        Destination::parse(destination).unwrap(),
        Headers::new(),
        Bytes::from_static(body.as_bytes()),
    )
}

#[test]
fn memory_engine_is_deterministic_round_robin() {
    let mut engine = MemoryEngine::new();
    let mut out = Vec::new();
    let queue = Destination::parse("/queue/q").unwrap();
    let keys: Vec<SubscriberKey> = (1..=3)
        .map(|c| SubscriberKey::new(ConnId(c), "s"))
        .collect();
    for key in &keys {
        engine.subscribe(key.clone(), &queue, None, &mut out);
    }
    for body in ["1", "2", "3", "4", "5", "6"] {
        engine.publish(publish("/queue/q", body), &mut out);
    }
    let order: Vec<(u64, &[u8])> = out
        .iter()
        .map(|d| (d.subscriber.conn.0, &d.message.body()[..]))
        .collect();
    assert_eq!(
        order,
        [
            (1, &b"1"[..]),
            (2, b"2"),
            (3, b"3"),
            (1, b"4"),
            (2, b"5"),
            (3, b"6")
        ]
    );
    // Removing a consumer keeps the rotation going among the others.
    out.clear();
    engine.unsubscribe(&keys[0], &mut out);
    engine.publish(publish("/queue/q", "7"), &mut out);
    engine.publish(publish("/queue/q", "8"), &mut out);
    let conns: Vec<u64> = out.iter().map(|d| d.subscriber.conn.0).collect();
    assert_eq!(conns, [2, 3]);
}

fn dest(s: &str) -> Destination {
    Destination::parse(s).unwrap()
}

fn refusal(result: Result<(), Error>) -> String {
    match result {
        Err(Error::Refused(text)) => text,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn memory_engine_refuses_a_send_to_a_full_queue() {
    let mut engine = MemoryEngine::new().with_max_queue_depth(2);
    let mut out = Vec::new();
    for body in ["a", "b"] {
        engine
            .try_publish(publish("/queue/full", body), &mut out)
            .unwrap();
    }
    let text = refusal(engine.try_publish(publish("/queue/full", "c"), &mut out));
    assert!(
        text.contains("/queue/full is full") && text.contains("2 messages"),
        "{text}"
    );
    // Nothing was dropped: the consumer gets the two accepted messages.
    assert_eq!(engine.queue_depth("/queue/full"), 2);
    let key = SubscriberKey::new(ConnId(1), "s");
    engine.subscribe(key, &dest("/queue/full"), None, &mut out);
    let bodies: Vec<&[u8]> = out.iter().map(|d| &d.message.body()[..]).collect();
    assert_eq!(bodies, [&b"a"[..], b"b"]);
    // The infallible `publish` counts what a budget turns down.
    engine.publish(publish("/queue/other", "d"), &mut out);
    assert_eq!(engine.dropped(), 0);
}

#[test]
fn memory_engine_queue_byte_budget_counts_unacked_messages_until_acked() {
    let size = publish("/queue/q", "0123456789").size();
    let mut engine = MemoryEngine::new().with_max_queue_bytes(3 * size);
    let mut out = Vec::new();
    let key = SubscriberKey::new(ConnId(1), "s");
    // A client-ack consumer with a window of 2: what it holds unacknowledged still counts.
    engine.subscribe(key.clone(), &dest("/queue/q"), Some(2), &mut out);
    for _ in 0..3 {
        engine
            .try_publish(publish("/queue/q", "0123456789"), &mut out)
            .unwrap();
    }
    assert_eq!(out.len(), 2);
    assert_eq!(engine.queue_bytes("/queue/q"), 3 * size);
    assert_eq!(engine.held_bytes(), 3 * size);
    let text = refusal(engine.try_publish(publish("/queue/q", "0123456789"), &mut out));
    assert!(
        text.contains("/queue/q is full") && text.contains("limit per queue"),
        "{text}"
    );
    // Another queue is not affected.
    engine
        .try_publish(publish("/queue/other", "0123456789"), &mut out)
        .unwrap();
    // An ACK frees the bytes (the third message moves into the window).
    let ids = [out[0].message.id().clone()];
    out.clear();
    engine.ack(&key, &ids, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(engine.queue_bytes("/queue/q"), 2 * size);
    engine
        .try_publish(publish("/queue/q", "0123456789"), &mut out)
        .unwrap();
    // An auto consumer takes everything: nothing is held any more.
    engine.unsubscribe(&key, &mut out);
    engine.subscribe(
        SubscriberKey::new(ConnId(2), "a"),
        &dest("/queue/q"),
        None,
        &mut out,
    );
    assert_eq!(engine.queue_bytes("/queue/q"), 0);
    let other = publish("/queue/other", "0123456789").size();
    assert_eq!(
        engine.held_bytes(),
        other,
        "/queue/other still holds its message"
    );
}

#[test]
fn memory_engine_broker_byte_budget_spans_queues() {
    let size = publish("/queue/a", "x").size();
    let mut engine = MemoryEngine::new().with_max_bytes(2 * size);
    let mut out = Vec::new();
    engine
        .try_publish(publish("/queue/a", "x"), &mut out)
        .unwrap();
    engine
        .try_publish(publish("/queue/b", "x"), &mut out)
        .unwrap();
    let text = refusal(engine.try_publish(publish("/queue/c", "x"), &mut out));
    assert!(
        text.contains("the broker is full") && text.contains("all queues"),
        "{text}"
    );
    // Topics keep nothing, so they are not refused.
    engine
        .try_publish(publish("/topic/t", "x"), &mut out)
        .unwrap();
    assert_eq!(engine.held_bytes(), 2 * size);
}

#[test]
fn memory_engine_caps_destinations_and_forgets_empty_ones() {
    let mut engine = MemoryEngine::new().with_max_destinations(2);
    let mut out = Vec::new();
    let t = SubscriberKey::new(ConnId(1), "t");
    engine
        .subscribe_with_selector(t.clone(), &dest("/topic/t"), None, None, &mut out)
        .unwrap();
    engine
        .try_publish(publish("/queue/a", "x"), &mut out)
        .unwrap();
    assert_eq!(engine.destination_count(), 2);
    // A third destination, by SUBSCRIBE or by SEND to a queue, is refused.
    let refused = engine.subscribe_with_selector(
        SubscriberKey::new(ConnId(1), "u"),
        &dest("/topic/u"),
        None,
        None,
        &mut out,
    );
    assert_eq!(refused, Err(Error::DestinationLimit { limit: 2 }));
    let text = refusal(engine.try_publish(publish("/queue/b", "x"), &mut out));
    assert!(text.contains("limit of 2 destinations"), "{text}");
    // Existing ones still work; a SEND to a topic nobody listens to creates nothing.
    engine
        .try_publish(publish("/queue/a", "y"), &mut out)
        .unwrap();
    engine
        .try_publish(publish("/topic/nobody", "x"), &mut out)
        .unwrap();
    let second = SubscriberKey::new(ConnId(2), "t");
    engine
        .subscribe_with_selector(second.clone(), &dest("/topic/t"), None, None, &mut out)
        .unwrap();
    // Empty destinations are forgotten at once: the topic without subscribers, the queue
    // once drained by an auto consumer that then leaves.
    engine.unsubscribe(&t, &mut out);
    engine.unsubscribe(&second, &mut out);
    let drain = SubscriberKey::new(ConnId(3), "q");
    engine.subscribe(drain.clone(), &dest("/queue/a"), None, &mut out);
    engine.unsubscribe(&drain, &mut out);
    assert_eq!(engine.destination_count(), 0);
    assert_eq!(engine.held_bytes(), 0);
    // So new names fit again.
    engine
        .try_publish(publish("/queue/b", "x"), &mut out)
        .unwrap();
    engine
        .try_publish(publish("/queue/c", "x"), &mut out)
        .unwrap();
    assert_eq!(engine.destination_count(), 2);
}
