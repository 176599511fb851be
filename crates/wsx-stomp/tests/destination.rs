//! Destinations, access patterns, and the memory engine driven directly.

use bytes::Bytes;
use wsx_stomp::engine::Engine;
use wsx_stomp::{
    ConnId, Destination, DestinationKind, DestinationPattern, Headers, MemoryEngine, Publish,
    SubscriberKey,
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

#[test]
fn memory_engine_drops_the_oldest_message_of_a_full_queue() {
    let mut engine = MemoryEngine::new().with_max_queue_depth(2);
    let mut out = Vec::new();
    for body in ["a", "b", "c"] {
        engine.publish(publish("/queue/full", body), &mut out);
    }
    assert_eq!(engine.queue_depth("/queue/full"), 2);
    assert_eq!(engine.dropped(), 1);
    let key = SubscriberKey::new(ConnId(1), "s");
    engine.subscribe(
        key,
        &Destination::parse("/queue/full").unwrap(),
        None,
        &mut out,
    );
    let bodies: Vec<&[u8]> = out.iter().map(|d| &d.message.body()[..]).collect();
    assert_eq!(bodies, [&b"b"[..], b"c"]);
}
