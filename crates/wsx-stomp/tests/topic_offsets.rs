//! Ordered topics on the in-process engine: offsets on every topic MESSAGE, resuming with
//! `x-stream-offset` (`first`, `last`, `next`, `offset=N`), gaps, a paced replay, and the
//! history bounds (per topic by count and bytes, and in total).

mod common;

use std::sync::Arc;

use common::{Harness, assert_error, body, send, subscribe};
use wsx_stomp::{AllowAll, Command, Frame, MemoryEngine, SessionConfig, TopicHistory};

fn harness(engine: MemoryEngine) -> Harness {
    Harness::with_engine(engine, SessionConfig::default(), Arc::new(AllowAll))
}

fn publish(h: &mut Harness, n: std::ops::RangeInclusive<u32>) {
    let sender = h.connect();
    for i in n {
        h.send(sender, send("/topic/t", &format!("m{i}")));
    }
    h.close(sender);
}

fn resume(h: &mut Harness, start: &str) -> wsx_stomp::ConnId {
    let conn = h.connect();
    h.send(
        conn,
        subscribe("s", "/topic/t", "auto").with_header("x-stream-offset", start),
    );
    conn
}

/// (offset, body, gap) of each MESSAGE.
fn seen(frames: &[Frame]) -> Vec<(u64, String, bool)> {
    frames
        .iter()
        .map(|f| {
            assert_eq!(f.command, Command::Message, "{f:?}");
            let offset = f
                .header("x-stream-offset")
                .and_then(|o| o.parse().ok())
                .expect("x-stream-offset");
            (
                offset,
                body(f).to_owned(),
                f.header("x-stream-gap") == Some("true"),
            )
        })
        .collect()
}

fn offsets(frames: &[Frame]) -> Vec<u64> {
    seen(frames).into_iter().map(|(o, _, _)| o).collect()
}

#[test]
fn every_topic_message_carries_its_offset_starting_at_1() {
    let mut h = harness(MemoryEngine::new());
    let plain = h.connect();
    h.send(plain, subscribe("s", "/topic/t", "auto"));
    publish(&mut h, 1..=3);
    let got = seen(&h.frames(plain));
    assert_eq!(
        got,
        [
            (1, "m1".into(), false),
            (2, "m2".into(), false),
            (3, "m3".into(), false)
        ]
    );
    // Queue messages carry none.
    let q = h.connect();
    h.send(q, subscribe("q", "/queue/q", "auto"));
    h.send(q, send("/queue/q", "x"));
    let frames = h.frames(q);
    assert_eq!(frames[0].header("x-stream-offset"), None);
}

#[test]
fn first_last_next_last_k_and_offset() {
    let mut h = harness(MemoryEngine::new());
    publish(&mut h, 1..=5);
    let first = resume(&mut h, "first");
    assert_eq!(offsets(&h.frames(first)), [1, 2, 3, 4, 5]);
    let last = resume(&mut h, "last");
    assert_eq!(offsets(&h.frames(last)), [5]);
    let next = resume(&mut h, "next");
    assert!(h.frames(next).is_empty());
    let from3 = resume(&mut h, "offset=3");
    assert_eq!(offsets(&h.frames(from3)), [3, 4, 5]);
    let beyond = resume(&mut h, "offset=100");
    assert!(h.frames(beyond).is_empty());
    let last2 = resume(&mut h, "last=2");
    assert_eq!(
        seen(&h.frames(last2)),
        [(4, "m4".into(), false), (5, "m5".into(), false)]
    );
    let last9 = resume(&mut h, "last=9");
    assert_eq!(offsets(&h.frames(last9)), [1, 2, 3, 4, 5]);
    // Then all go on live, no duplicate.
    publish(&mut h, 6..=6);
    for conn in [first, last, next, from3, beyond, last2, last9] {
        assert_eq!(offsets(&h.frames(conn)), [6]);
    }
}

#[test]
fn an_offset_older_than_retained_starts_at_the_oldest_with_a_gap() {
    let history = TopicHistory {
        max_messages: 3,
        ..TopicHistory::default()
    };
    let mut h = harness(MemoryEngine::new().with_topic_history(history));
    publish(&mut h, 1..=10);
    let conn = resume(&mut h, "offset=2");
    let got = seen(&h.frames(conn));
    assert_eq!(
        got,
        [
            (8, "m8".into(), true),
            (9, "m9".into(), false),
            (10, "m10".into(), false)
        ]
    );
    assert_eq!(h.broker.engine().topic_offsets("/topic/t"), Some((8, 11)));
}

#[test]
fn history_off_still_counts_offsets_and_reports_the_gap_on_the_next_live_message() {
    let history = TopicHistory {
        max_messages: 0,
        ..TopicHistory::default()
    };
    let mut h = harness(MemoryEngine::new().with_topic_history(history));
    let plain = h.connect();
    h.send(plain, subscribe("s", "/topic/t", "auto"));
    publish(&mut h, 1..=4);
    assert_eq!(offsets(&h.frames(plain)), [1, 2, 3, 4]);
    let conn = resume(&mut h, "offset=2");
    assert!(h.frames(conn).is_empty());
    publish(&mut h, 5..=5);
    assert_eq!(seen(&h.frames(conn)), [(5, "m5".into(), true)]);
    assert_eq!(h.broker.engine().history_len(), 0);
}

#[test]
fn a_replay_is_paced_by_the_auto_ack_window_and_stays_gapless_with_live_traffic() {
    let config = SessionConfig::default().auto_ack_window(4);
    let mut h = Harness::with_engine(MemoryEngine::new(), config, Arc::new(AllowAll));
    publish(&mut h, 1..=10);
    let conn = resume(&mut h, "first");
    assert_eq!(offsets(&h.frames(conn)), [1, 2, 3, 4]);
    // Live messages meanwhile wait in the history.
    publish(&mut h, 11..=12);
    assert!(h.frames(conn).is_empty());
    let mut all = vec![1, 2, 3, 4];
    for _ in 0..5 {
        h.written(conn);
        all.extend(offsets(&h.frames(conn)));
    }
    assert_eq!(all, (1..=12).collect::<Vec<u64>>());
    publish(&mut h, 13..=13);
    h.written(conn);
    assert_eq!(offsets(&h.frames(conn)), [13]);
}

#[test]
fn client_ack_resume_is_paced_by_max_unacked() {
    let config = SessionConfig::default().max_unacked(2);
    let mut h = Harness::with_engine(MemoryEngine::new(), config, Arc::new(AllowAll));
    publish(&mut h, 1..=5);
    let conn = h.connect();
    h.send(
        conn,
        subscribe("s", "/topic/t", "client").with_header("x-stream-offset", "offset=1"),
    );
    let frames = h.frames(conn);
    assert_eq!(offsets(&frames), [1, 2]);
    let ack = frames[1].header("ack").expect("ack").to_owned();
    h.send(conn, Frame::new(Command::Ack).with_header("id", ack));
    assert_eq!(offsets(&h.frames(conn)), [3, 4]);
}

#[test]
fn invalid_or_misplaced_x_stream_offset_is_an_error_naming_the_header() {
    let mut h = harness(MemoryEngine::new());
    let conn = h.connect();
    h.send(
        conn,
        subscribe("s", "/topic/t", "auto").with_header("x-stream-offset", "offset=abc"),
    );
    assert_error(&h.drain(conn), "x-stream-offset");
    let conn = h.connect();
    h.send(
        conn,
        subscribe("s", "/queue/q", "auto").with_header("x-stream-offset", "first"),
    );
    assert_error(&h.drain(conn), "x-stream-offset");
}

#[test]
fn a_sender_cannot_forge_offset_or_gap_headers() {
    let mut h = harness(MemoryEngine::new());
    let conn = h.connect();
    h.send(conn, subscribe("s", "/topic/t", "auto"));
    h.send(
        conn,
        send("/topic/t", "x")
            .with_header("x-stream-offset", "999")
            .with_header("x-stream-gap", "true"),
    );
    assert_eq!(seen(&h.frames(conn)), [(1, "x".into(), false)]);
}

#[test]
fn history_is_bounded_per_topic_in_bytes_and_in_total() {
    let history = TopicHistory {
        max_messages: 1000,
        max_bytes: 10_000,
    };
    let engine = MemoryEngine::new()
        .with_topic_history(history)
        .with_max_history_bytes(50_000);
    let mut h = harness(engine);
    let sender = h.connect();
    let big = "x".repeat(900);
    for _ in 0..100 {
        h.send(sender, send("/topic/t", &big));
    }
    let per_message = h.broker.engine().history_bytes() / h.broker.engine().history_len();
    assert!(h.broker.engine().history_bytes() <= 10_000);
    assert_eq!(h.broker.engine().history_len(), 10_000 / per_message);
    // Many topics: the total holds, the newest survive.
    for i in 0..200 {
        h.send(sender, send(&format!("/topic/many-{i}"), &big));
    }
    assert!(h.broker.engine().history_bytes() <= 50_000);
    assert!(h.broker.engine().topic_offsets("/topic/many-199").is_some());
    // Topics trimmed to nothing with no subscriber are forgotten.
    assert_eq!(h.broker.engine().topic_offsets("/topic/many-0"), None);
    assert!(h.broker.engine().history_len() <= 50_000 / per_message);
}
