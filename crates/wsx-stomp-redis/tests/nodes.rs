//! Two engines ("nodes") on one real Redis (`WSX_TEST_REDIS_URL`): topics fan out to both
//! nodes exactly once, queues deliver each message once across nodes, and a dead node's
//! unacknowledged messages go to the other node after the claim timeout.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{Node, dest, key, publish, redis_url, unique_prefix};
use wsx_stomp::Engine;
use wsx_stomp_redis::Config;

const WAIT: Duration = Duration::from_secs(10);

#[test]
fn engine_and_events_can_move_between_tasks() {
    fn send<T: Send + 'static>() {}
    send::<wsx_stomp_redis::RedisEngine>();
    send::<wsx_stomp_redis::RedisEvents>();
    send::<wsx_stomp_redis::RedisMetrics>();
}

#[test]
fn start_needs_a_runtime_and_a_valid_url() {
    let err = wsx_stomp_redis::RedisEngine::start(Config::new("redis://127.0.0.1:1")).err();
    assert!(matches!(err, Some(wsx_stomp_redis::Error::NoRuntime)));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let _guard = rt.enter();
    let err = wsx_stomp_redis::RedisEngine::start(Config::new("nonsense://x")).err();
    assert!(matches!(err, Some(wsx_stomp_redis::Error::Url(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_message_reaches_every_node_once() {
    let Some(url) = redis_url("topic_message_reaches_every_node_once") else {
        return;
    };
    let prefix = unique_prefix("topic");
    let mut a = Node::start(Config::new(&url).prefix(&prefix));
    let mut b = Node::start(Config::new(&url).prefix(&prefix));
    let mut out = Vec::new();
    a.engine
        .subscribe(key(1, "s"), &dest("/topic/news"), None, &mut out);
    a.engine
        .subscribe(key(2, "s"), &dest("/topic/news"), Some(10), &mut out);
    b.engine
        .subscribe(key(3, "s"), &dest("/topic/news"), None, &mut out);
    assert!(out.is_empty());
    a.engine.flushed().await;
    b.engine.flushed().await;

    a.engine
        .offer(publish("/topic/news", "hello"))
        .expect("accepted");
    a.engine
        .offer(publish("/topic/news", "end"))
        .expect("accepted");

    // Node A: both local subscribers get "hello" once, then "end".
    let got = a.collect(4, WAIT).await;
    let bodies: Vec<(u64, &[u8])> = got
        .iter()
        .map(|d| (d.subscriber.conn.0, &d.message.body()[..]))
        .collect();
    assert_eq!(
        bodies,
        [
            (1, &b"hello"[..]),
            (2, &b"hello"[..]),
            (1, &b"end"[..]),
            (2, &b"end"[..])
        ]
    );
    assert_eq!(
        got[0].message.headers().get("content-type"),
        Some("text/plain")
    );
    assert_eq!(got[0].message.destination().as_str(), "/topic/news");
    // Node B: once each, in order, same message id as on A.
    let got_b = b.collect(2, WAIT).await;
    assert_eq!(&got_b[0].message.body()[..], b"hello");
    assert_eq!(&got_b[1].message.body()[..], b"end");
    assert_eq!(got_b[0].message.id(), got[0].message.id());
    assert!(got_b.iter().all(|d| d.subscriber == key(3, "s")));

    // Unsubscribing everyone on B leaves the channel: B gets nothing more, A still does.
    b.engine.unsubscribe(&key(3, "s"), &mut out);
    b.engine.flushed().await;
    a.engine
        .offer(publish("/topic/news", "late"))
        .expect("accepted");
    let got = a.collect(2, WAIT).await;
    assert!(got.iter().all(|d| &d.message.body()[..] == b"late"));
    assert!(b.next(Duration::from_millis(300)).await.is_none());
    assert_eq!(a.engine.metrics().send_failures(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_delivers_ten_thousand_once_across_nodes() {
    let Some(url) = redis_url("queue_delivers_ten_thousand_once_across_nodes") else {
        return;
    };
    const N: usize = 10_000;
    let prefix = unique_prefix("queue");
    let config = |id: &str| {
        Config::new(&url)
            .prefix(&prefix)
            .node_id(id)
            .max_pending_sends(2 * N)
    };
    let mut a = Node::start(config("a"));
    let mut b = Node::start(config("b"));
    let q = dest("/queue/work");
    let mut out = Vec::new();
    a.engine.subscribe(key(1, "s"), &q, Some(50), &mut out);
    b.engine.subscribe(key(2, "s"), &q, Some(50), &mut out);
    assert!(out.is_empty());
    for i in 0..N {
        let node = if i % 2 == 0 { &mut a } else { &mut b };
        node.engine
            .offer(publish("/queue/work", format!("m{i}")))
            .expect("accepted");
    }

    let mut seen = HashSet::new();
    let mut per_node = [0usize; 2];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while seen.len() < N {
        let (which, event) = tokio::select! {
            e = a.events.recv() => (0, e),
            e = b.events.recv() => (1, e),
            _ = tokio::time::sleep_until(deadline) => panic!("timed out at {} of {N}", seen.len()),
        };
        let event = event.expect("engine alive");
        let node = if which == 0 { &mut a } else { &mut b };
        let mut out = Vec::new();
        node.engine.handle_event(event, &mut out, &mut Vec::new());
        for d in out {
            let body = String::from_utf8(d.message.body().to_vec()).expect("utf8");
            assert!(seen.insert(body.clone()), "{body} delivered twice");
            assert!(!d.redelivered);
            per_node[which] += 1;
            let mut more = Vec::new();
            node.engine
                .ack(&d.subscriber, &[d.message.id().clone()], &mut more);
            assert!(more.is_empty(), "deliveries come from events only");
        }
    }
    assert!(per_node[0] > 0 && per_node[1] > 0, "{per_node:?}");

    // Nothing more is pending: a last message is the next (and only) delivery.
    a.engine
        .offer(publish("/queue/work", "last"))
        .expect("accepted");
    let got = tokio::select! {
        g = a.collect(1, WAIT) => g,
        g = b.collect(1, WAIT) => g,
    };
    assert_eq!(&got[0].message.body()[..], b"last");
    assert_eq!(a.engine.metrics().send_failures(), 0);
    assert_eq!(b.engine.metrics().send_failures(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_node_messages_are_claimed_by_the_other() {
    let Some(url) = redis_url("dead_node_messages_are_claimed_by_the_other") else {
        return;
    };
    let prefix = unique_prefix("claim");
    let config = |id: &str| {
        Config::new(&url)
            .prefix(&prefix)
            .node_id(id)
            // Long enough that a loaded CI machine does not stall A's refresh (every quarter
            // of it) past the timeout; short enough to keep the test quick.
            .claim_timeout(Duration::from_secs(3))
    };
    let mut a = Node::start(config("a"));
    let q = dest("/queue/jobs");
    let mut out = Vec::new();
    a.engine.subscribe(key(1, "s"), &q, Some(10), &mut out);
    for i in 0..5 {
        a.engine
            .offer(publish("/queue/jobs", format!("job{i}")))
            .expect("accepted");
    }
    let held = a.collect(5, WAIT).await;
    let ids: Vec<_> = held.iter().map(|d| d.message.id().clone()).collect();

    // B consumes the same queue; while A lives (and refreshes its entries) B gets nothing,
    // even after more than the claim timeout.
    let mut b = Node::start(config("b"));
    b.engine.subscribe(key(2, "s"), &q, Some(10), &mut out);
    assert!(b.next(Duration::from_millis(4000)).await.is_none());

    // A dies without acknowledging: B takes its messages over, marked redelivered.
    drop(a);
    let got = b.collect(5, WAIT).await;
    let got_ids: Vec<_> = got.iter().map(|d| d.message.id().clone()).collect();
    assert_eq!(got_ids, ids);
    assert!(got.iter().all(|d| d.redelivered));
    let mut more = Vec::new();
    b.engine.ack(&key(2, "s"), &got_ids, &mut more);
    b.engine.flushed().await;
    assert_eq!(b.engine.queue_held("/queue/jobs"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_local_consumer_leaving_requeues_and_nack_redelivers() {
    let Some(url) = redis_url("last_local_consumer_leaving_requeues_and_nack_redelivers") else {
        return;
    };
    let prefix = unique_prefix("requeue");
    let mut a = Node::start(Config::new(&url).prefix(&prefix).node_id("a"));
    let mut b = Node::start(Config::new(&url).prefix(&prefix).node_id("b"));
    let q = dest("/queue/r");
    let mut out = Vec::new();
    a.engine.subscribe(key(1, "s"), &q, Some(1), &mut out);
    a.engine
        .offer(publish("/queue/r", "one"))
        .expect("accepted");
    let first = a.collect(1, WAIT).await;
    assert!(!first[0].redelivered);

    // NACK: the same node hands it out again, marked redelivered.
    a.engine
        .nack(&key(1, "s"), &[first[0].message.id().clone()], &mut out);
    assert_eq!(out.len(), 1);
    assert!(out[0].redelivered);
    assert_eq!(&out[0].message.body()[..], b"one");
    out.clear();

    // The only consumer on A leaves: the message goes back to the group and to B.
    b.engine.subscribe(key(2, "s"), &q, Some(5), &mut out);
    a.engine.unsubscribe(&key(1, "s"), &mut out);
    assert!(out.is_empty());
    let got = b.collect(1, WAIT).await;
    assert_eq!(&got[0].message.body()[..], b"one");
    assert!(got[0].redelivered);
    assert_eq!(got[0].message.id(), first[0].message.id());
}

#[tokio::test]
async fn sends_beyond_the_backlog_are_refused_while_redis_is_unreachable() {
    // Nothing listens on port 1: the writer keeps reconnecting, SENDs wait, then are refused.
    let config = Config::new("redis://127.0.0.1:1").max_pending_sends(2);
    let (mut engine, _events) = wsx_stomp_redis::RedisEngine::start(config).expect("starts");
    engine
        .offer(publish("/queue/a", "1"))
        .expect("waits for redis");
    engine
        .offer(publish("/topic/b", "2"))
        .expect("waits for redis");
    let refused = engine.offer(publish("/queue/a", "3"));
    assert!(matches!(refused, Err(wsx_stomp_redis::Error::Backlog(2))));
    // Through the trait (which cannot fail) the refusal is counted.
    let mut out = Vec::new();
    engine.publish(publish("/queue/a", "4"), &mut out);
    assert!(out.is_empty());
    let metrics = engine.metrics();
    assert_eq!(metrics.send_failures(), 1);
    assert_eq!(metrics.pending_sends(), 2);
    assert!(!metrics.connected());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_destination_reaches_that_users_subscribers_on_every_node() {
    let Some(url) = redis_url("user_destination_reaches_that_users_subscribers_on_every_node")
    else {
        return;
    };
    let prefix = unique_prefix("user");
    let mut a = Node::start(Config::new(&url).prefix(&prefix));
    let mut b = Node::start(Config::new(&url).prefix(&prefix));
    let mut out = Vec::new();
    let alice = dest("/user/alice/queue/inbox");
    a.engine.subscribe(key(1, "in"), &alice, None, &mut out);
    b.engine.subscribe(key(2, "in"), &alice, None, &mut out);
    b.engine
        .subscribe(key(3, "in"), &dest("/user/bob/queue/inbox"), None, &mut out);
    // A topic of the same NAME has a channel of its own: leaving it keeps alice's.
    b.engine
        .subscribe(key(4, "t"), &dest("/topic/inbox"), None, &mut out);
    b.engine.unsubscribe(&key(4, "t"), &mut out);
    assert!(out.is_empty());
    a.engine.flushed().await;
    b.engine.flushed().await;

    a.engine
        .offer(publish("/user/alice/queue/inbox", "hi alice"))
        .expect("accepted");
    for (node, conn) in [(&mut a, 1), (&mut b, 2)] {
        let got = node.collect(1, WAIT).await;
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].subscriber, key(conn, "in"));
        assert_eq!(&got[0].message.body()[..], b"hi alice");
        assert_eq!(got[0].message.destination(), &alice);
        assert!(
            got[0]
                .message
                .encoded_tail(wsx_stomp::Version::V1_2)
                .windows(b"destination:/user/queue/inbox\n".len())
                .any(|w| w == b"destination:/user/queue/inbox\n"),
            "MESSAGE frames carry the destination subscribed to"
        );
    }
    // Bob's subscriber got nothing.
    assert!(b.next(Duration::from_millis(200)).await.is_none());

    let refused = a.engine.offer(publish("/app/greet", "x"));
    assert!(
        matches!(refused, Err(wsx_stomp_redis::Error::NoHandler(ref d)) if d == "/app/greet"),
        "{refused:?}"
    );
}
