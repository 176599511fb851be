//! End-to-end tests of `wsx serve --broker redis://…`: several real `wsx serve` processes (the
//! nodes) on one Redis form one STOMP broker. Topics reach the subscribers of every node once,
//! queue messages are consumed once across the nodes, the queue messages a killed node held go
//! to another node after `--redis-claim-timeout`, the nodes ride out a Redis restart, a SEND's
//! RECEIPT waits until Redis has stored the message (none while Redis is down), and a SEND the
//! engine cannot take is answered with an ERROR.
//!
//! Redis: `WSX_TEST_REDIS_URL` (scripts/test.sh starts one), each test under a key prefix of
//! its own; the restart test starts its own `redis-server` (from PATH). Without them the tests
//! print a skip line, or fail under `CI=true`. The topic, queue and killed-node tests run
//! again, unchanged, with `--broker redis-cluster://…` on a Redis Cluster of three primaries
//! of their own (`redis-server`, `redis-cli --cluster create`, from PATH).

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{
    Client, RedisCluster, RedisServer, Server, WAIT, body, cluster_node as node, free_port,
    redis_url, unique_prefix, wait_metric,
};
use tokio::time::Instant;
use wsx_stomp::{Command, Frame};

/// Publish `warmup-N` messages to `topic` until every subscriber got one: the nodes'
/// subscriptions are then live in Redis (a SUBSCRIBE's receipt does not wait for Redis).
/// Later warm-ups may still arrive; callers skip them.
async fn warm_up(publisher: &mut Client, topic: &str, subscribers: &mut [&mut Client]) {
    let deadline = Instant::now() + WAIT;
    let mut warm = vec![false; subscribers.len()];
    let mut n = 0;
    while warm.contains(&false) {
        assert!(
            Instant::now() < deadline,
            "no warm-up message reached every subscriber of {topic} in time"
        );
        publisher.publish(topic, &format!("warmup-{n}"), &[]).await;
        n += 1;
        for (subscriber, warm) in subscribers.iter_mut().zip(&mut warm) {
            while let Some(frame) = subscriber.frame_within(Duration::from_millis(50)).await {
                assert_eq!(frame.command, Command::Message, "{frame:?}");
                assert!(body(&frame).starts_with("warmup-"), "{frame:?}");
                *warm = true;
            }
        }
    }
}

#[tokio::test]
async fn a_topic_message_reaches_the_subscribers_of_both_nodes_once() {
    if let Some(redis) = redis_url("a_topic_message_reaches_the_subscribers_of_both_nodes_once") {
        a_topic_message_reaches_the_subscribers_of_both_nodes_once_on(&redis).await;
    }
}

#[tokio::test]
async fn on_a_redis_cluster_a_topic_message_reaches_the_subscribers_of_both_nodes_once() {
    let test = "on_a_redis_cluster_a_topic_message_reaches_the_subscribers_of_both_nodes_once";
    if RedisCluster::available(test) {
        let cluster = RedisCluster::start(3);
        a_topic_message_reaches_the_subscribers_of_both_nodes_once_on(&cluster.url()).await;
        // `/metrics` names the mode and every primary.
        let server = node(&cluster.url(), &unique_prefix("metrics"), "metrics", &[]);
        let wanted: Vec<String> = cluster
            .ports()
            .iter()
            .map(|p| {
                format!("wsx_stomp_redis_primary{{mode=\"cluster\",address=\"127.0.0.1:{p}\"}} 1")
            })
            .collect();
        let deadline = Instant::now() + WAIT;
        loop {
            let body = common::http(server.addr, "GET", "/metrics").await.body;
            if wanted.iter().all(|line| body.lines().any(|l| l == line)) {
                break;
            }
            assert!(Instant::now() < deadline, "{wanted:?} not in {body}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn a_topic_message_reaches_the_subscribers_of_both_nodes_once_on(redis: &str) {
    let prefix = unique_prefix("topic");
    let a = node(redis, &prefix, "topic-a", &[]);
    let b = node(redis, &prefix, "topic-b", &[]);
    let mut on_a = Client::connect_anonymous(&a, "sub-a").await;
    let mut on_b = Client::connect_anonymous(&b, "sub-b").await;
    on_a.subscribe("s", "/topic/news", "auto").await;
    on_b.subscribe("s", "/topic/news", "auto").await;
    let mut publisher = Client::connect_anonymous(&a, "publisher").await;
    warm_up(&mut publisher, "/topic/news", &mut [&mut on_a, &mut on_b]).await;

    publisher.publish_confirmed("/topic/news", "breaking").await;
    // The marker comes after the message on every subscriber's connection: once it is in,
    // no copy of the message is still on its way.
    publisher.publish_confirmed("/topic/news", "end").await;
    for (name, subscriber) in [("A", &mut on_a), ("B", &mut on_b)] {
        let mut copies = 0;
        loop {
            let frame = subscriber.expect(Command::Message).await;
            assert_eq!(frame.header("destination"), Some("/topic/news"));
            match body(&frame) {
                "breaking" => copies += 1,
                "end" => break,
                other => assert!(other.starts_with("warmup-"), "{other}"),
            }
        }
        assert_eq!(copies, 1, "the subscriber on node {name}");
    }
    assert_eq!(a.metric_value("wsx_stomp_redis_connected").await, Some(1));
    publisher.disconnect().await;
}

/// Consume until `total` reaches `goal` (every consumer counts into it), acknowledging each
/// message; returns the client (still connected) and the bodies it got.
async fn consume(
    mut client: Client,
    total: Arc<AtomicUsize>,
    goal: usize,
) -> (Client, Vec<String>) {
    let deadline = Instant::now() + 3 * WAIT;
    let mut got = Vec::new();
    let mut unflushed = 0;
    while total.load(Ordering::SeqCst) < goal {
        assert!(
            Instant::now() < deadline,
            "{} of {goal} messages consumed in time",
            total.load(Ordering::SeqCst)
        );
        // Take what is readable at once; write the ACKs before waiting for more.
        let frame = match client.frame_within(Duration::ZERO).await {
            Some(frame) => frame,
            None => {
                if unflushed > 0 {
                    client.flush().await;
                    unflushed = 0;
                }
                match client.frame_within(Duration::from_millis(100)).await {
                    Some(frame) => frame,
                    None => continue,
                }
            }
        };
        assert_eq!(frame.command, Command::Message, "{frame:?}");
        got.push(body(&frame).to_owned());
        client.feed_ack(&frame);
        unflushed += 1;
        if unflushed >= 64 {
            client.flush().await;
            unflushed = 0;
        }
        total.fetch_add(1, Ordering::SeqCst);
    }
    client.flush().await;
    (client, got)
}

/// Send `count` messages `{tag}-{i}` to `queue` in batches; the last one with a receipt.
async fn produce(client: &mut Client, queue: &str, tag: &str, count: usize) {
    for i in 0..count {
        let mut frame = Frame::new(Command::Send)
            .with_header("destination", queue)
            .with_body(format!("{tag}-{i}"));
        if i + 1 == count {
            frame = frame.with_header("receipt", "last");
        }
        client.feed(frame);
        if i % 500 == 499 {
            client.flush().await;
        }
    }
    client.flush().await;
    client.expect_receipt("last").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_messages_are_consumed_once_across_the_nodes() {
    if let Some(redis) = redis_url("queue_messages_are_consumed_once_across_the_nodes") {
        queue_messages_are_consumed_once_across_the_nodes_on(&redis).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_redis_cluster_queue_messages_are_consumed_once_across_the_nodes() {
    let test = "on_a_redis_cluster_queue_messages_are_consumed_once_across_the_nodes";
    if RedisCluster::available(test) {
        let cluster = RedisCluster::start(3);
        queue_messages_are_consumed_once_across_the_nodes_on(&cluster.url()).await;
    }
}

async fn queue_messages_are_consumed_once_across_the_nodes_on(redis: &str) {
    const EACH: usize = 5_000;
    let prefix = unique_prefix("queue");
    let a = node(redis, &prefix, "queue-a", &[]);
    let b = node(redis, &prefix, "queue-b", &[]);
    let mut consumer_a = Client::connect_anonymous(&a, "consumer-a").await;
    let mut consumer_b = Client::connect_anonymous(&b, "consumer-b").await;
    consumer_a
        .subscribe("s", "/queue/work", "client-individual")
        .await;
    consumer_b
        .subscribe("s", "/queue/work", "client-individual")
        .await;
    let total = Arc::new(AtomicUsize::new(0));
    let goal = 2 * EACH;
    let task_a = tokio::spawn(consume(consumer_a, total.clone(), goal));
    let task_b = tokio::spawn(consume(consumer_b, total.clone(), goal));

    let mut producer_a = Client::connect_anonymous(&a, "producer-a").await;
    let mut producer_b = Client::connect_anonymous(&b, "producer-b").await;
    tokio::join!(
        produce(&mut producer_a, "/queue/work", "a", EACH),
        produce(&mut producer_b, "/queue/work", "b", EACH),
    );
    let (mut consumer_a, got_a) = task_a.await.expect("consumer on A");
    let (mut consumer_b, got_b) = task_b.await.expect("consumer on B");

    let mut seen = HashSet::new();
    for body in got_a.iter().chain(&got_b) {
        assert!(seen.insert(body.as_str()), "{body} delivered twice");
    }
    assert_eq!(seen.len(), goal);
    for tag in ["a", "b"] {
        for i in 0..EACH {
            assert!(
                seen.contains(format!("{tag}-{i}").as_str()),
                "{tag}-{i} lost"
            );
        }
    }
    assert!(
        !got_a.is_empty() && !got_b.is_empty(),
        "both nodes consume: {} on A, {} on B",
        got_a.len(),
        got_b.len()
    );
    // Everything was acknowledged: nothing comes again.
    for consumer in [&mut consumer_a, &mut consumer_b] {
        if let Some(extra) = consumer.frame_within(Duration::from_millis(300)).await {
            panic!("delivered again: {extra:?}");
        }
    }
    let published = a
        .metric_value("wsx_stomp_messages_published_total{kind=\"queue\"}")
        .await
        .expect("the metric")
        + b.metric_value("wsx_stomp_messages_published_total{kind=\"queue\"}")
            .await
            .expect("the metric");
    assert_eq!(published, goal as u64);
}

#[tokio::test]
async fn a_killed_nodes_unacknowledged_messages_go_to_another_node() {
    if let Some(redis) = redis_url("a_killed_nodes_unacknowledged_messages_go_to_another_node") {
        a_killed_nodes_unacknowledged_messages_go_to_another_node_on(&redis).await;
    }
}

#[tokio::test]
async fn on_a_redis_cluster_a_killed_nodes_unacknowledged_messages_go_to_another_node() {
    let test = "on_a_redis_cluster_a_killed_nodes_unacknowledged_messages_go_to_another_node";
    if RedisCluster::available(test) {
        let cluster = RedisCluster::start(3);
        a_killed_nodes_unacknowledged_messages_go_to_another_node_on(&cluster.url()).await;
    }
}

async fn a_killed_nodes_unacknowledged_messages_go_to_another_node_on(redis: &str) {
    let prefix = unique_prefix("claim");
    let claim = ["--redis-claim-timeout", "1"];
    let mut a = node(redis, &prefix, "claim-a", &claim);
    let b = node(redis, &prefix, "claim-b", &claim);
    let mut doomed = Client::connect_anonymous(&a, "doomed").await;
    doomed
        .subscribe("s", "/queue/jobs", "client-individual")
        .await;
    let mut producer = Client::connect_anonymous(&b, "producer").await;
    for i in 0..5 {
        producer
            .publish_confirmed("/queue/jobs", &format!("job-{i}"))
            .await;
    }
    let mut held = HashSet::new();
    for _ in 0..5 {
        let frame = doomed.expect(Command::Message).await;
        held.insert(body(&frame).to_owned());
    }
    // A consumer on B, while A holds every message without acknowledging them.
    let mut survivor = Client::connect_anonymous(&b, "survivor").await;
    survivor
        .subscribe("s", "/queue/jobs", "client-individual")
        .await;
    assert!(
        survivor
            .frame_within(Duration::from_millis(200))
            .await
            .is_none(),
        "A holds them"
    );

    a.kill();
    drop(doomed);
    let mut redelivered = HashSet::new();
    while redelivered.len() < held.len() {
        let frame = survivor
            .frame_within(WAIT)
            .await
            .expect("the killed node's messages are redelivered in time");
        assert_eq!(frame.command, Command::Message, "{frame:?}");
        assert_eq!(frame.header("redelivered"), Some("true"), "{frame:?}");
        redelivered.insert(body(&frame).to_owned());
        survivor.feed_ack(&frame);
    }
    survivor.flush().await;
    assert_eq!(redelivered, held);
    assert!(
        b.metric_value("wsx_stomp_redeliveries_total")
            .await
            .is_some_and(|n| n >= 5)
    );
    survivor.disconnect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_stopped_gracefully_hands_its_messages_over_at_once() {
    let Some(redis) = redis_url("a_node_stopped_gracefully_hands_its_messages_over_at_once") else {
        return;
    };
    let prefix = unique_prefix("handover");
    // The default claim timeout (30 s) is longer than any wait here: the messages must be
    // given back by the stopping node, not claimed.
    let mut a = node(&redis, &prefix, "handover-a", &[]);
    let b = node(&redis, &prefix, "handover-b", &[]);
    let mut leaving = Client::connect_anonymous(&a, "leaving").await;
    leaving
        .subscribe("s", "/queue/tasks", "client-individual")
        .await;
    let mut producer = Client::connect_anonymous(&b, "producer").await;
    for i in 0..3 {
        producer
            .publish_confirmed("/queue/tasks", &format!("task-{i}"))
            .await;
    }
    let mut held = HashSet::new();
    for _ in 0..3 {
        let frame = leaving.expect(Command::Message).await;
        held.insert(body(&frame).to_owned());
    }
    let mut staying = Client::connect_anonymous(&b, "staying").await;
    staying
        .subscribe("s", "/queue/tasks", "client-individual")
        .await;

    let killed = std::process::Command::new("kill")
        .args(["-TERM", &a.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(killed.success());
    let close = leaving.expect_closed().await.expect("a close frame");
    assert_eq!(close.code, wsx::CloseCode::GOING_AWAY);
    let mut handed_over = HashSet::new();
    while handed_over.len() < held.len() {
        let frame = staying
            .frame_within(WAIT)
            .await
            .expect("the stopped node's messages are handed over in time");
        assert_eq!(frame.command, Command::Message, "{frame:?}");
        assert_eq!(frame.header("redelivered"), Some("true"), "{frame:?}");
        handed_over.insert(body(&frame).to_owned());
        staying.feed_ack(&frame);
    }
    staying.flush().await;
    assert_eq!(handed_over, held);
    let status = a.wait_exit().await;
    assert_eq!(status.code(), Some(0), "{status:?}");
    staying.disconnect().await;
}

#[tokio::test]
async fn the_nodes_ride_out_a_redis_restart() {
    if !RedisServer::available("the_nodes_ride_out_a_redis_restart") {
        return;
    }
    let port = free_port();
    let mut redis = RedisServer::start(port);
    let url = redis.url();
    let prefix = unique_prefix("restart");
    let a = node(&url, &prefix, "restart-a", &[]);
    let b = node(&url, &prefix, "restart-b", &[]);
    let mut topic = Client::connect_anonymous(&b, "topic").await;
    topic.subscribe("t", "/topic/status", "auto").await;
    let mut queue = Client::connect_anonymous(&b, "queue").await;
    queue
        .subscribe("q", "/queue/orders", "client-individual")
        .await;
    let mut publisher = Client::connect_anonymous(&a, "publisher").await;
    warm_up(&mut publisher, "/topic/status", &mut [&mut topic]).await;
    publisher.publish_confirmed("/queue/orders", "before").await;
    let before = queue.expect(Command::Message).await;
    assert_eq!(body(&before), "before");
    queue.feed_ack(&before);
    queue.flush().await;

    redis.kill();
    // Accepted while Redis is down: written once it is back, and confirmed then.
    publisher
        .publish("/queue/orders", "during", &[("receipt", "r-during")])
        .await;
    let _redis = RedisServer::start(port);
    publisher.expect_receipt("r-during").await;
    // The clients stayed connected: topic messages get through again once the nodes have
    // reconnected (with backoff) and B's pub/sub connection has resubscribed.
    warm_up(&mut publisher, "/topic/status", &mut [&mut topic]).await;
    publisher.publish_confirmed("/queue/orders", "after").await;
    let mut wanted: HashSet<&str> = ["during", "after"].into();
    while !wanted.is_empty() {
        let frame = queue
            .frame_within(WAIT)
            .await
            .unwrap_or_else(|| panic!("{wanted:?} not delivered after the restart"));
        assert_eq!(frame.command, Command::Message, "{frame:?}");
        wanted.remove(body(&frame));
        queue.feed_ack(&frame);
    }
    queue.flush().await;
    for node in [&a, &b] {
        wait_metric(node, "wsx_stomp_redis_reconnects_total", |v| v > 0).await;
    }
    wait_metric(&a, "wsx_stomp_redis_pending_sends", |v| v == 0).await;
    // The subscribers' connections stayed open throughout (they received after the
    // restart); late warm-ups may still be on their way to `topic`, so only the publisher
    // says goodbye.
    drop((topic, queue));
    publisher.disconnect().await;
}

#[tokio::test]
async fn a_send_receipt_waits_until_redis_has_stored_the_message() {
    if !RedisServer::available("a_send_receipt_waits_until_redis_has_stored_the_message") {
        return;
    }
    let port = free_port();
    let mut redis = RedisServer::start(port);
    let url = redis.url();
    let prefix = unique_prefix("receipt");
    let server = node(&url, &prefix, "receipt-a", &[]);
    let mut consumer = Client::connect_anonymous(&server, "consumer").await;
    consumer
        .subscribe("q", "/queue/receipts", "client-individual")
        .await;
    let mut sender = Client::connect_anonymous(&server, "sender").await;
    // With Redis up the receipt comes, and the message after it is stored.
    sender.publish_confirmed("/queue/receipts", "before").await;
    let before = consumer.expect(Command::Message).await;
    assert_eq!(body(&before), "before");
    consumer.feed_ack(&before);
    consumer.flush().await;
    wait_metric(&server, "wsx_stomp_redis_pending_sends", |v| v == 0).await;

    redis.kill();
    sender
        .publish("/queue/receipts", "during", &[("receipt", "r-during")])
        .await;
    // A SUBSCRIBE after it is answered at once: only the SEND's receipt waits for Redis.
    sender.subscribe("t", "/topic/other", "auto").await;
    assert!(
        sender
            .frame_within(Duration::from_millis(500))
            .await
            .is_none(),
        "no receipt while redis is down"
    );
    assert!(
        consumer
            .frame_within(Duration::from_millis(100))
            .await
            .is_none()
    );
    assert_eq!(
        server.metric_value("wsx_stomp_redis_pending_sends").await,
        Some(1)
    );
    assert_eq!(
        server
            .metric_value("wsx_stomp_messages_published_total{kind=\"queue\"}")
            .await,
        Some(1),
        "only the stored one counts"
    );

    let _redis = RedisServer::start(port);
    let receipt = sender
        .frame_within(WAIT)
        .await
        .expect("the receipt once redis is back");
    assert_eq!(receipt.command, Command::Receipt, "{receipt:?}");
    assert_eq!(receipt.header("receipt-id"), Some("r-during"));
    let during = consumer
        .frame_within(WAIT)
        .await
        .expect("the message is delivered once redis is back");
    assert_eq!(during.command, Command::Message, "{during:?}");
    assert_eq!(body(&during), "during");
    consumer.feed_ack(&during);
    consumer.flush().await;
    assert_eq!(
        server
            .metric_value("wsx_stomp_messages_published_total{kind=\"queue\"}")
            .await,
        Some(2)
    );
    assert_eq!(
        server
            .metric_value("wsx_stomp_redis_send_failures_total")
            .await,
        Some(0)
    );
    sender.disconnect().await;
    consumer.disconnect().await;
}

#[tokio::test]
async fn a_send_the_engine_refuses_gets_an_error() {
    // Nothing listens on this port: every SEND waits for Redis, and the backlog holds one.
    let unreachable = format!("redis://127.0.0.1:{}", free_port());
    let server = node(
        &unreachable,
        "wsx:",
        "refusing",
        &["--redis-max-pending-sends", "1"],
    );
    let mut client = Client::connect_anonymous(&server, "sender").await;
    // Accepted, never stored: its receipt never comes.
    client
        .publish("/queue/q", "waits", &[("receipt", "r1")])
        .await;
    client
        .publish("/queue/q", "refused", &[("receipt", "r2")])
        .await;
    let error = client.expect(Command::Error).await;
    assert_eq!(error.header("receipt-id"), Some("r2"), "{error:?}");
    let message = error.header("message").expect("a message header");
    assert!(message.contains("refused"), "{message}");
    client.expect_closed().await.expect("a close frame");
    assert_eq!(
        server.metric_value("wsx_stomp_redis_connected").await,
        Some(0)
    );
    assert_eq!(
        server.metric_value("wsx_stomp_redis_pending_sends").await,
        Some(1)
    );
    assert_eq!(
        server
            .metric_value("wsx_stomp_redis_send_failures_total")
            .await,
        Some(1)
    );
    // Neither was stored: nothing counts as published.
    assert_eq!(
        server
            .metric_value("wsx_stomp_messages_published_total{kind=\"queue\"}")
            .await,
        Some(0)
    );
}

#[tokio::test]
async fn the_memory_broker_has_no_redis_metrics() {
    let server = Server::start(&["--broker", "memory"]);
    let text = common::http(server.addr, "GET", "/metrics").await.body;
    assert!(text.contains("wsx_stomp_sessions 0\n"), "{text}");
    assert!(!text.contains("wsx_stomp_redis_"), "{text}");
}

#[test]
fn an_invalid_broker_url_is_a_usage_error() {
    for (value, expected) in [
        ("redis://localhost:port", "the port must be a number"),
        (
            "amqp://localhost",
            "expected `memory`, `redis://HOST:PORT[/DB]`, `redis-sentinel://",
        ),
        ("redis-cluster://127.0.0.1", "every node needs HOST:PORT"),
        (
            "redis-cluster://127.0.0.1:7000/1",
            "a Cluster URL has no database",
        ),
        (
            "redis-sentinel://127.0.0.1:26379",
            "the service name is missing",
        ),
        (
            "redis-sentinel://127.0.0.1/mymaster",
            "every sentinel needs HOST:PORT",
        ),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_wsx"))
            .args(["serve", "--listen", "127.0.0.1:0", "--broker", value])
            .output()
            .expect("run wsx");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("--broker"), "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
        assert!(out.stdout.is_empty(), "did not start");
    }
}
