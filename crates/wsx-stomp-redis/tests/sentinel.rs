//! Sentinel mode (`redis-sentinel://HOST:PORT[,…]/SERVICE`): the node connects to the
//! primary the sentinels name, follows a failover to the promoted replica, and refuses a bad
//! Sentinel URL at start. The tests start `redis-server`s and sentinels of their own (from
//! PATH); the failover of several nodes under live clients, with the primary killed, is
//! `crates/wsx-cli/tests/stomp_sentinel.rs`.

mod common;

use std::time::Duration;

use common::{
    Node, RedisServer, Sentinel, admin, free_port, origin, publish, replica, unique_prefix,
};
use redis::Value;
use wsx_stomp::Confirmation;
use wsx_stomp_redis::{Config, Error, RedisEngine};

const WAIT: Duration = Duration::from_secs(15);

async fn xlen(port: u16, key: &str) -> i64 {
    redis::cmd("XLEN")
        .arg(key)
        .query_async(&mut admin(&format!("redis://127.0.0.1:{port}")).await)
        .await
        .expect("XLEN")
}

/// Ask the sentinel on `port` `SENTINEL args…`.
async fn sentinel_cmd(port: u16, args: &[&str]) -> Value {
    let mut cmd = redis::cmd("SENTINEL");
    for arg in args {
        cmd.arg(*arg);
    }
    cmd.query_async(&mut admin(&format!("redis://127.0.0.1:{port}")).await)
        .await
        .expect("a sentinel answer")
}

/// The port of the primary the sentinel on `port` names for `service`.
async fn named_primary(port: u16, service: &str) -> Option<u16> {
    match sentinel_cmd(port, &["get-master-addr-by-name", service]).await {
        Value::Array(parts) => match parts.get(1) {
            Some(Value::BulkString(p)) => std::str::from_utf8(p).ok()?.parse().ok(),
            _ => None,
        },
        _ => None,
    }
}

/// Poll `check` every 50 ms until it holds (a panic after [`WAIT`], naming `what`).
async fn until<F: Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "in time: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_connects_to_the_primary_a_sentinel_names() {
    let test = "the_node_connects_to_the_primary_a_sentinel_names";
    if !RedisServer::available(test) {
        return;
    }
    let port = free_port();
    let _primary = RedisServer::start(port);
    let sentinel_port = free_port();
    let _sentinel = Sentinel::start(sentinel_port, "svc", port);

    let url = format!("redis-sentinel://127.0.0.1:1,127.0.0.1:{sentinel_port}/svc");
    let prefix = unique_prefix("sentinel-names");
    let mut node = Node::start(Config::new(&url).prefix(&prefix).node_id("a"));
    let sent = origin(1, 1, "/queue/jobs");
    node.engine
        .offer_from(publish("/queue/jobs", "one"), sent.clone())
        .expect("accepted");
    // The first sentinel is down: the node asks the next one.
    let confirmed = node.confirmation(WAIT).await.expect("confirmed");
    assert_eq!(confirmed, Confirmation::Stored(sent));
    let metrics = node.engine.metrics();
    assert_eq!(metrics.mode(), "sentinel");
    assert_eq!(
        metrics.primary().as_deref(),
        Some(format!("127.0.0.1:{port}").as_str())
    );
    assert_eq!(metrics.failovers(), 0);
    assert_eq!(xlen(port, &format!("{prefix}q:jobs")).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_follows_a_failover_while_the_old_primary_lives_on() {
    let test = "a_node_follows_a_failover_while_the_old_primary_lives_on";
    if !RedisServer::available(test) {
        return;
    }
    // Two replicas: after the failover the promoted one has the other as its replica (the
    // sentinel points it there), so that WAIT 1 is answered again.
    let (old, replicas) = (free_port(), [free_port(), free_port()]);
    let _old = RedisServer::start(old);
    let _replicas = replicas.map(|port| replica(port, old));
    let sentinel_port = free_port();
    let _sentinel = Sentinel::start(sentinel_port, "svc", old);
    until("the sentinel knows the replica", || async {
        matches!(sentinel_cmd(sentinel_port, &["replicas", "svc"]).await,
            Value::Array(known) if known.len() == 2)
    })
    .await;

    let url = format!("redis-sentinel://127.0.0.1:{sentinel_port}/svc");
    let prefix = unique_prefix("sentinel-follows");
    let mut node = Node::start(
        Config::new(&url)
            .prefix(&prefix)
            .node_id("a")
            .replicas_ack(1),
    );
    let before = origin(1, 1, "/queue/jobs");
    node.engine
        .offer_from(publish("/queue/jobs", "before"), before.clone())
        .expect("accepted");
    assert_eq!(
        node.confirmation(WAIT).await,
        Some(Confirmation::Stored(before))
    );

    // A manual failover: a replica is promoted; the old primary stays up, a primary with no
    // reader, until the sentinel turns it into a replica (many seconds later). Without the
    // node's watch of the sentinels, its connections would stay there.
    assert_eq!(
        sentinel_cmd(sentinel_port, &["failover", "svc"]).await,
        Value::Okay
    );
    until("the sentinel names a promoted replica", || async {
        named_primary(sentinel_port, "svc")
            .await
            .is_some_and(|port| replicas.contains(&port))
    })
    .await;
    let new = named_primary(sentinel_port, "svc")
        .await
        .expect("a primary");
    // The old primary is still up (and may still have the other replica for a moment): the
    // node's watch of the sentinels moves its connections to the new one.
    let metrics = node.engine.metrics();
    let new_addr = format!("127.0.0.1:{new}");
    until("the node uses the promoted replica", || async {
        metrics.primary().as_deref() == Some(new_addr.as_str())
    })
    .await;
    let after = origin(1, 2, "/queue/jobs");
    node.engine
        .offer_from(publish("/queue/jobs", "after"), after.clone())
        .expect("accepted");
    assert_eq!(
        node.confirmation(WAIT).await,
        Some(Confirmation::Stored(after))
    );
    assert_eq!(metrics.primary().as_deref(), Some(new_addr.as_str()));
    assert!(metrics.failovers() >= 1);
    // What was confirmed before the failover, and after it, is on the new primary, once. (A
    // SEND the old primary confirmed in the moment between the promotion and the node's
    // switch may be lost: see the crate docs.)
    assert_eq!(xlen(new, &format!("{prefix}q:jobs")).await, 2);
    assert_eq!(metrics.send_failures(), 0);
}

#[tokio::test]
async fn a_bad_sentinel_url_is_refused_at_start() {
    let error = RedisEngine::start(Config::new("redis-sentinel://127.0.0.1:26379"))
        .expect_err("no service name");
    assert!(matches!(error, Error::Url(_)), "{error}");
    assert!(error.to_string().contains("service name"), "{error}");
}
