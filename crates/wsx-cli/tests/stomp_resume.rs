//! Ordered topics end to end (`wsx serve`): every topic MESSAGE carries `x-stream-offset`, and
//! a SUBSCRIBE with `x-stream-offset: first | last | next | offset=N` resumes from the topic's
//! history, with no gap and no duplicate at the seam, `x-stream-gap:true` when what it asked
//! for is no longer retained.
//!
//! On two nodes sharing Redis (`WSX_TEST_REDIS_URL`, skipped without it outside CI): a
//! subscriber on node A leaves, 500 messages are published (250 over STOMP on node B, then 250
//! with `POST /api/publish` on node A, each answered with its offset), node A is killed with
//! SIGKILL, and the subscriber resumes on node B with `offset=N`. The same on a Redis Cluster
//! of three primaries of the tests' own (`redis-server`, `redis-cli --cluster create`, from
//! PATH). On one node in memory: the same without the kill.

mod common;

use std::time::Duration;

use common::{
    Client, RedisCluster, Server, WAIT, body, cluster_node, http_post, redis_url, unique_prefix,
};
use tokio::time::Instant;
use wsx_stomp::{Command, Frame};

/// SUBSCRIBE to `topic` from `start` (`x-stream-offset`), `ack:auto`, and wait for the receipt.
async fn resume(client: &mut Client, id: &str, topic: &str, start: &str) {
    let receipt = format!("sub-{id}");
    client
        .send(
            Frame::new(Command::Subscribe)
                .with_header("id", id)
                .with_header("destination", topic)
                .with_header("ack", "auto")
                .with_header("x-stream-offset", start)
                .with_header("receipt", receipt.as_str()),
        )
        .await;
    client.expect_receipt(&receipt).await;
}

/// A MESSAGE's offset, body and gap flag.
fn seen(frame: &Frame) -> (u64, String, bool) {
    assert_eq!(frame.command, Command::Message, "{frame:?}");
    let offset = frame
        .header("x-stream-offset")
        .and_then(|o| o.parse().ok())
        .unwrap_or_else(|| panic!("no x-stream-offset: {frame:?}"));
    (
        offset,
        body(frame).to_owned(),
        frame.header("x-stream-gap") == Some("true"),
    )
}

/// The next `n` messages.
async fn take(client: &mut Client, n: usize) -> Vec<(u64, String, bool)> {
    let mut got = Vec::with_capacity(n);
    for _ in 0..n {
        let frame = client.expect(Command::Message).await;
        got.push(seen(&frame));
    }
    got
}

/// Publish `warmup-N` until `subscriber` gets one (its node's channel subscription is live
/// in Redis); returns the offset of the last warm-up it got.
async fn warm_up(publisher: &mut Client, topic: &str, subscriber: &mut Client) -> u64 {
    let deadline = Instant::now() + WAIT;
    let mut n = 0;
    loop {
        assert!(
            Instant::now() < deadline,
            "no warm-up message arrived in time"
        );
        publisher
            .publish_confirmed(topic, &format!("warmup-{n}"))
            .await;
        n += 1;
        let mut last = None;
        while let Some(frame) = subscriber.frame_within(Duration::from_millis(50)).await {
            let (offset, text, _) = seen(&frame);
            assert!(text.starts_with("warmup-"), "{text}");
            last = Some(offset);
        }
        if let Some(last) = last {
            // Later warm-ups may still be on their way: wait for the one just published.
            let mut last = last;
            while let Some(frame) = subscriber.frame_within(Duration::from_millis(300)).await {
                last = seen(&frame).0;
            }
            return last;
        }
    }
}

/// Publish `count` messages `m{i}` (the last one confirmed: all are stored then).
async fn publish_many(publisher: &mut Client, topic: &str, count: usize) {
    for i in 0..count - 1 {
        publisher.publish(topic, &format!("m{i}"), &[]).await;
    }
    publisher
        .publish_confirmed(topic, &format!("m{}", count - 1))
        .await;
}

const TOPIC: &str = "/topic/resume";

/// Publish `m{from}`..`m{to - 1}` to `topic` with `POST /api/publish` on `server` (a loopback
/// client: no auth needed), one after the other; each answer's offset is checked against
/// `first_offset`, counting up.
async fn publish_over_http(
    server: &Server,
    topic: &str,
    from: usize,
    to: usize,
    first_offset: u64,
) {
    for (i, offset) in (from..to).zip(first_offset..) {
        let path = format!("/api/publish?destination={topic}");
        let response = http_post(server.addr, &path, &[], format!("m{i}").as_bytes()).await;
        assert_eq!(response.status, 200, "{}", response.body);
        assert!(
            response.body.contains(&format!("\"offset\":{offset}")),
            "m{i}: {}",
            response.body
        );
    }
}

/// The first half of the scenario: a subscriber on `a` gets live messages, leaves, and 500
/// messages are published: 250 over STOMP on `b`, 250 over HTTP on `a`. Returns the
/// publisher and the last offset the subscriber got.
async fn leave_and_miss(a: &Server, b: &Server) -> (Client, u64) {
    let mut publisher = Client::connect_anonymous(b, "publisher").await;
    let mut subscriber = Client::connect_anonymous(a, "subscriber").await;
    subscriber.subscribe("s", TOPIC, "auto").await;
    let last_seen = warm_up(&mut publisher, TOPIC, &mut subscriber).await;
    drop(subscriber);
    publish_many(&mut publisher, TOPIC, 250).await;
    publish_over_http(a, TOPIC, 250, 500, last_seen + 251).await;
    (publisher, last_seen)
}

/// The second half: the subscriber resumes on `b` with `offset=N` and gets exactly the
/// missed messages in order, then live ones, nothing twice.
async fn resume_and_catch_up(b: &Server, mut publisher: Client, last_seen: u64) {
    let mut resumed = Client::connect_anonymous(b, "resumed").await;
    resume(
        &mut resumed,
        "s",
        TOPIC,
        &format!("offset={}", last_seen + 1),
    )
    .await;
    let got = take(&mut resumed, 500).await;
    let expected: Vec<(u64, String, bool)> = (0..500u64)
        .map(|i| (last_seen + 1 + i, format!("m{i}"), false))
        .collect();
    assert_eq!(got, expected);
    publisher.publish_confirmed(TOPIC, "live-1").await;
    publisher.publish_confirmed(TOPIC, "live-2").await;
    assert_eq!(
        take(&mut resumed, 2).await,
        [
            (last_seen + 501, "live-1".to_owned(), false),
            (last_seen + 502, "live-2".to_owned(), false)
        ]
    );
    assert!(
        resumed
            .frame_within(Duration::from_millis(300))
            .await
            .is_none(),
        "no duplicate after the live messages"
    );
}

/// `first`, `last`, `next` and a gap, on a topic retaining 10 messages of 20.
async fn starts_and_gap(a: &Server, b: &Server) {
    let topic = "/topic/starts";
    let mut publisher = Client::connect_anonymous(a, "publisher").await;
    publish_many(&mut publisher, topic, 20).await;
    let m = |offset: u64, gap: bool| (offset, format!("m{}", offset - 1), gap);

    let mut first = Client::connect_anonymous(b, "first").await;
    resume(&mut first, "s", topic, "first").await;
    assert_eq!(
        take(&mut first, 10).await,
        (11..=20).map(|o| m(o, false)).collect::<Vec<_>>()
    );
    let mut last = Client::connect_anonymous(b, "last").await;
    resume(&mut last, "s", topic, "last").await;
    assert_eq!(take(&mut last, 1).await, [m(20, false)]);
    let mut gap = Client::connect_anonymous(b, "gap").await;
    resume(&mut gap, "s", topic, "offset=3").await;
    let got = take(&mut gap, 10).await;
    assert_eq!(got[0], m(11, true), "the oldest retained, marked as a gap");
    assert_eq!(got[1..], (12..=20).map(|o| m(o, false)).collect::<Vec<_>>());
    let mut next = Client::connect_anonymous(b, "next").await;
    resume(&mut next, "s", topic, "next").await;

    publisher.publish_confirmed(topic, "m20").await;
    for client in [&mut first, &mut last, &mut gap, &mut next] {
        assert_eq!(take(client, 1).await, [m(21, false)]);
        assert!(
            client
                .frame_within(Duration::from_millis(200))
                .await
                .is_none()
        );
    }
}

#[tokio::test]
async fn a_subscriber_resumes_on_another_node_after_its_node_is_killed() {
    let Some(redis) = redis_url("a_subscriber_resumes_on_another_node_after_its_node_is_killed")
    else {
        return;
    };
    let prefix = unique_prefix("resume-kill");
    let mut a = cluster_node(&redis, &prefix, "resume-a", &[]);
    let b = cluster_node(&redis, &prefix, "resume-b", &[]);
    let (publisher, last_seen) = leave_and_miss(&a, &b).await;
    a.kill(); // SIGKILL: no graceful shutdown
    resume_and_catch_up(&b, publisher, last_seen).await;
}

#[tokio::test]
async fn first_last_next_and_a_gap_across_nodes() {
    let Some(redis) = redis_url("first_last_next_and_a_gap_across_nodes") else {
        return;
    };
    let prefix = unique_prefix("resume-starts");
    let a = cluster_node(&redis, &prefix, "starts-a", &["--topic-history", "10"]);
    let b = cluster_node(&redis, &prefix, "starts-b", &["--topic-history", "10"]);
    starts_and_gap(&a, &b).await;
}

#[tokio::test]
async fn on_a_redis_cluster_a_subscriber_resumes_on_another_node_after_its_node_is_killed() {
    let test = "on_a_redis_cluster_a_subscriber_resumes_on_another_node_after_its_node_is_killed";
    if !RedisCluster::available(test) {
        return;
    }
    let cluster = RedisCluster::start(3);
    let redis = cluster.url();
    let prefix = unique_prefix("cluster-resume-kill");
    let mut a = cluster_node(&redis, &prefix, "resume-a", &[]);
    let b = cluster_node(&redis, &prefix, "resume-b", &[]);
    let (publisher, last_seen) = leave_and_miss(&a, &b).await;
    a.kill(); // SIGKILL: no graceful shutdown
    resume_and_catch_up(&b, publisher, last_seen).await;
}

#[tokio::test]
async fn on_a_redis_cluster_first_last_next_and_a_gap_across_nodes() {
    let test = "on_a_redis_cluster_first_last_next_and_a_gap_across_nodes";
    if !RedisCluster::available(test) {
        return;
    }
    let cluster = RedisCluster::start(3);
    let redis = cluster.url();
    let prefix = unique_prefix("cluster-resume-starts");
    let a = cluster_node(&redis, &prefix, "starts-a", &["--topic-history", "10"]);
    let b = cluster_node(&redis, &prefix, "starts-b", &["--topic-history", "10"]);
    starts_and_gap(&a, &b).await;
}

#[tokio::test]
async fn a_subscriber_resumes_on_one_node_in_memory() {
    let server = Server::start(&[]);
    let (publisher, last_seen) = leave_and_miss(&server, &server).await;
    resume_and_catch_up(&server, publisher, last_seen).await;
}

#[tokio::test]
async fn first_last_next_and_a_gap_in_memory() {
    let server = Server::start(&["--topic-history", "10"]);
    starts_and_gap(&server, &server).await;
}

#[tokio::test]
async fn replaying_a_full_history_does_not_trip_the_slow_consumer_limit() {
    let server = Server::start(&[]);
    let mut publisher = Client::connect_anonymous(&server, "publisher").await;
    publish_many(&mut publisher, "/topic/full", 1000).await;
    let mut resumed = Client::connect_anonymous(&server, "resumed").await;
    resume(&mut resumed, "s", "/topic/full", "first").await;
    let got = take(&mut resumed, 1000).await;
    assert_eq!(
        got.iter().map(|(o, _, _)| *o).collect::<Vec<_>>(),
        (1..=1000).collect::<Vec<u64>>()
    );
    publisher.publish_confirmed("/topic/full", "after").await;
    assert_eq!(take(&mut resumed, 1).await[0].0, 1001);
}

#[tokio::test]
async fn an_invalid_x_stream_offset_is_an_error_naming_the_header() {
    let server = Server::start(&[]);
    let mut client = Client::connect_anonymous(&server, "bad").await;
    client
        .send(
            Frame::new(Command::Subscribe)
                .with_header("id", "s")
                .with_header("destination", "/topic/t")
                .with_header("x-stream-offset", "offset=-4"),
        )
        .await;
    let message = client.expect_error_then_close().await;
    assert!(message.contains("x-stream-offset"), "{message}");
}
