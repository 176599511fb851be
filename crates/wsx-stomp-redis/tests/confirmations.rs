//! SENDs made with an origin ([`Engine::try_publish_from`], [`RedisEngine::offer_from`]) are
//! confirmed once Redis has answered them: stored (only then: not while Redis is unreachable,
//! and as soon as it is back), or failed when the queue length script refuses the entry
//! (another node filled the queue first) or Redis answers an error — never dropped silently.
//!
//! The first test starts a `redis-server` of its own (from PATH) on a port the engine already
//! tries to reach; the others use `WSX_TEST_REDIS_URL`.

mod common;

use std::time::Duration;

use common::{Node, RedisServer, admin, free_port, origin, publish, redis_url, unique_prefix};
use wsx_stomp::{Confirmation, Engine, Outcome};
use wsx_stomp_redis::{Config, Error, RedisEngine};

const WAIT: Duration = Duration::from_secs(15);

async fn xlen(url: &str, key: &str) -> i64 {
    redis::cmd("XLEN")
        .arg(key)
        .query_async(&mut admin(url).await)
        .await
        .expect("XLEN")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_is_confirmed_only_once_redis_has_stored_it() {
    let test = "a_send_is_confirmed_only_once_redis_has_stored_it";
    if !RedisServer::available(test) {
        return;
    }
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let prefix = unique_prefix("confirm-later");
    let mut node = Node::start(Config::new(&url).prefix(&prefix).node_id("a"));
    let mut out = Vec::new();
    // Nothing listens yet: both SENDs are accepted and wait in the writer.
    let queued = origin(1, 1, "/queue/orders");
    let outcome = node
        .engine
        .try_publish_from(publish("/queue/orders", "first"), queued.clone(), &mut out)
        .expect("accepted while redis is down");
    assert_eq!(outcome, Outcome::Pending);
    let topic = origin(1, 2, "/topic/news");
    node.engine
        .offer_from(publish("/topic/news", "second"), topic.clone())
        .expect("accepted while redis is down");
    assert!(out.is_empty());
    assert_eq!(
        node.confirmation(Duration::from_millis(500)).await,
        None,
        "no confirmation while redis is unreachable"
    );
    assert_eq!(node.engine.metrics().pending_sends(), 2);

    // Redis comes up: the writer connects, writes both, and confirms them in order.
    let _redis = RedisServer::start(port);
    let first = node
        .confirmation(WAIT)
        .await
        .expect("confirmed once redis is up");
    assert_eq!(first, Confirmation::Stored(queued));
    // The entry is in Redis by the time the confirmation is handled.
    assert_eq!(xlen(&url, &format!("{prefix}q:orders")).await, 1);
    let second = node.confirmation(WAIT).await.expect("the topic SEND");
    assert_eq!(second, Confirmation::Stored(topic));
    assert_eq!(node.engine.metrics().pending_sends(), 0);
    assert_eq!(node.engine.metrics().send_failures(), 0);
    // SENDs without an origin are not confirmed.
    node.engine
        .offer(publish("/queue/orders", "third"))
        .expect("accepted");
    node.engine.flushed().await;
    assert_eq!(xlen(&url, &format!("{prefix}q:orders")).await, 2);
    assert_eq!(node.confirmation(Duration::from_millis(200)).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_the_queue_script_refuses_is_failed() {
    let Some(url) = redis_url("a_send_the_queue_script_refuses_is_failed") else {
        return;
    };
    let prefix = unique_prefix("confirm-full");
    let stream = format!("{prefix}q:jobs");
    let config = |id: &str| {
        Config::new(&url)
            .prefix(&prefix)
            .node_id(id)
            .max_queue_len(2)
    };
    let mut a = Node::start(config("a"));
    let mut b = Node::start(config("b"));
    // A fills the queue; B does not know it yet, accepts a SEND, and the script refuses it.
    for body in ["m0", "m1"] {
        let seq = if body == "m0" { 1 } else { 2 };
        a.engine
            .offer_from(publish("/queue/jobs", body), origin(7, seq, "/queue/jobs"))
            .expect("room left");
    }
    for seq in [1, 2] {
        assert_eq!(
            a.confirmation(WAIT).await,
            Some(Confirmation::Stored(origin(7, seq, "/queue/jobs")))
        );
    }
    assert_eq!(xlen(&url, &stream).await, 2);

    let lost = origin(9, 1, "/queue/jobs");
    let mut out = Vec::new();
    let outcome = b
        .engine
        .try_publish_from(publish("/queue/jobs", "too many"), lost.clone(), &mut out)
        .expect("B does not know the queue is full");
    assert_eq!(outcome, Outcome::Pending);
    match b.confirmation(WAIT).await {
        Some(Confirmation::Failed(failed, reason)) => {
            assert_eq!(failed, lost);
            assert_eq!(
                reason,
                "message refused: queue /queue/jobs is full: 2 messages waiting or unacknowledged"
            );
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    assert_eq!(
        xlen(&url, &stream).await,
        2,
        "nothing trimmed, nothing added"
    );
    assert_eq!(b.engine.metrics().send_failures(), 1);
    // From then on B refuses at once (no confirmation: the session answers the `Err`).
    assert!(matches!(
        b.engine
            .offer_from(publish("/queue/jobs", "again"), origin(9, 2, "/queue/jobs")),
        Err(Error::QueueFull { limit: 2, .. })
    ));
    b.engine.flushed().await;
    assert_eq!(b.confirmation(Duration::from_millis(200)).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_redis_answers_with_an_error_is_failed() {
    let Some(url) = redis_url("a_send_redis_answers_with_an_error_is_failed") else {
        return;
    };
    let prefix = unique_prefix("confirm-error");
    // The queue's key holds a string: the script's XLEN fails with WRONGTYPE.
    let _: () = redis::cmd("SET")
        .arg(format!("{prefix}q:broken"))
        .arg("not a stream")
        .query_async(&mut admin(&url).await)
        .await
        .expect("SET");
    let (mut engine, mut events) =
        RedisEngine::start(Config::new(&url).prefix(&prefix).node_id("e")).expect("starts");
    let broken = origin(3, 1, "/queue/broken");
    let fine = origin(3, 2, "/queue/fine");
    engine
        .offer_from(publish("/queue/broken", "x"), broken.clone())
        .expect("accepted");
    engine
        .offer_from(publish("/queue/fine", "y"), fine.clone())
        .expect("accepted");
    let mut confirmations = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while confirmations.len() < 2 {
        let event = tokio::time::timeout_at(deadline, events.recv())
            .await
            .expect("confirmed in time")
            .expect("engine alive");
        engine.handle_event(event, &mut Vec::new(), &mut confirmations);
    }
    match &confirmations[0] {
        Confirmation::Failed(failed, reason) => {
            assert_eq!(failed, &broken);
            assert!(
                reason.starts_with("message refused: redis did not store it:"),
                "{reason}"
            );
            assert!(reason.contains("WRONGTYPE"), "{reason}");
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    assert_eq!(confirmations[1], Confirmation::Stored(fine));
    assert_eq!(engine.metrics().send_failures(), 1);
}
