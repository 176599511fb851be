//! Refusals: SENDs refused once the backlog for an unreachable Redis is full, and queues
//! bounded by `Config::max_queue_len` (refused, never trimmed) on a real Redis
//! (`WSX_TEST_REDIS_URL`).

mod common;

use std::time::Duration;

use common::{Node, dest, key, publish, redis_url, unique_prefix};
use wsx_stomp::Engine;
use wsx_stomp_redis::{Config, Error};

const WAIT: Duration = Duration::from_secs(10);

/// A local port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_publish_is_refused_once_the_backlog_is_full() {
    let url = format!("redis://127.0.0.1:{}", closed_port());
    let mut node = Node::start(Config::new(url).max_pending_sends(2));
    let mut out = Vec::new();
    node.engine
        .try_publish(publish("/queue/a", "1"), &mut out)
        .expect("first SEND waits for redis");
    node.engine
        .try_publish(publish("/topic/b", "2"), &mut out)
        .expect("second SEND waits for redis");
    for destination in ["/queue/a", "/topic/b"] {
        match node.engine.try_publish(publish(destination, "3"), &mut out) {
            Err(wsx_stomp::Error::Refused(why)) => {
                assert!(why.contains("2 messages waiting"), "{why}");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
    assert!(matches!(
        node.engine.offer(publish("/queue/a", "4")),
        Err(Error::Backlog(2))
    ));
    assert!(out.is_empty());
    let metrics = node.engine.metrics();
    assert_eq!(metrics.pending_sends(), 2);
    assert_eq!(
        metrics.send_failures(),
        2,
        "try_publish refusals are counted"
    );
    assert!(!metrics.connected());
}

async fn xlen(url: &str, key: &str) -> i64 {
    let client = redis::Client::open(url).expect("url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("admin connection");
    redis::cmd("XLEN")
        .arg(key)
        .query_async(&mut conn)
        .await
        .expect("XLEN")
}

/// Offer until the engine accepts (its writer clears the full mark every 500 ms).
async fn offer_until_accepted(node: &mut Node, body: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match node.engine.offer(publish("/queue/jobs", body.to_owned())) {
            Ok(()) => return,
            Err(Error::QueueFull { .. }) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the queue stayed full for {}",
                    node.engine.node_id()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(other) => panic!("unexpected refusal {other}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_queue_refuses_sends_until_consumers_ack() {
    let Some(url) = redis_url("full_queue_refuses_sends_until_consumers_ack") else {
        return;
    };
    let prefix = unique_prefix("maxlen");
    let stream = format!("{prefix}q:jobs");
    let config = |id: &str| {
        Config::new(&url)
            .prefix(&prefix)
            .node_id(id)
            .max_queue_len(5)
    };
    let mut a = Node::start(config("a"));
    let mut b = Node::start(config("b"));
    let mut out = Vec::new();

    // No consumer: five SENDs fill the stream; the fifth write tells A it is full.
    for i in 0..5 {
        a.engine
            .try_publish(publish("/queue/jobs", format!("m{i}")), &mut out)
            .expect("room left");
    }
    a.engine.flushed().await;
    assert_eq!(xlen(&url, &stream).await, 5);
    match a.engine.try_publish(publish("/queue/jobs", "m5"), &mut out) {
        Err(wsx_stomp::Error::Refused(why)) => {
            assert!(why.contains("queue /queue/jobs is full"), "{why}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(matches!(
        a.engine.offer(publish("/queue/jobs", "m5")),
        Err(Error::QueueFull { limit: 5, .. })
    ));
    // Other queues and topics are not affected.
    a.engine
        .offer(publish("/queue/other", "x"))
        .expect("another queue has room");
    a.engine
        .offer(publish("/topic/jobs", "x"))
        .expect("topics are not bounded");
    assert_eq!(a.engine.metrics().send_failures(), 1);

    // B has not written to the queue since it filled: it accepts a SEND that Redis then
    // refuses (the documented window): counted, nothing trimmed, and B refuses from then on.
    b.engine
        .offer(publish("/queue/jobs", "lost"))
        .expect("B does not know yet");
    b.engine.flushed().await;
    assert_eq!(b.engine.metrics().send_failures(), 1);
    assert!(matches!(
        b.engine.offer(publish("/queue/jobs", "m6")),
        Err(Error::QueueFull { .. })
    ));
    assert_eq!(xlen(&url, &stream).await, 5);

    // A consumer takes all five and acknowledges two: both nodes accept SENDs again.
    let consumer = key(1, "s");
    b.engine
        .subscribe(consumer.clone(), &dest("/queue/jobs"), Some(10), &mut out);
    let got = b.collect(5, WAIT).await;
    let bodies: Vec<&[u8]> = got.iter().map(|d| &d.message.body()[..]).collect();
    assert_eq!(bodies, [&b"m0"[..], b"m1", b"m2", b"m3", b"m4"]);
    let ids = [got[0].message.id().clone(), got[1].message.id().clone()];
    b.engine.ack(&consumer, &ids, &mut out);
    b.engine.flushed().await;
    assert_eq!(
        xlen(&url, &stream).await,
        3,
        "acknowledged entries are deleted"
    );
    offer_until_accepted(&mut a, "again-a").await;
    offer_until_accepted(&mut b, "again-b").await;
    let mut got: Vec<Vec<u8>> = b
        .collect(2, WAIT)
        .await
        .iter()
        .map(|d| d.message.body().to_vec())
        .collect();
    got.sort();
    assert_eq!(got, [b"again-a".to_vec(), b"again-b".to_vec()]);
    assert_eq!(xlen(&url, &stream).await, 5);
    assert_eq!(a.engine.metrics().send_failures(), 1);
    assert_eq!(b.engine.metrics().send_failures(), 1);
}
