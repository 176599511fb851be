//! `RedisMetrics::connected` tells whether the writer's connection is up, and nothing else
//! changes it: across a Redis restart it turns false, then true again once Redis is back —
//! without any SEND to notice — and stays true, even though the queue readers (one of them
//! started while Redis was down) failed to connect meanwhile. Its own test binary: it runs a
//! `redis-server` of its own (from PATH) and restarts it.

mod common;

use std::time::Duration;

use common::{Node, RedisServer, dest, free_port, key, publish};
use tokio::time::Instant;
use wsx_stomp::Engine;
use wsx_stomp_redis::Config;

const WAIT: Duration = Duration::from_secs(10);

/// Poll `connected()` until it is `want`.
async fn wait_connected(node: &Node, want: bool, what: &str) {
    let metrics = node.engine.metrics();
    let deadline = Instant::now() + WAIT;
    while metrics.connected() != want {
        assert!(
            Instant::now() < deadline,
            "{what}: connected() stayed {}",
            !want
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connected_follows_the_writer_across_a_redis_restart() {
    if !RedisServer::available("connected_follows_the_writer_across_a_redis_restart") {
        return;
    }
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let server = RedisServer::start(port);
    let mut config = Config::new(&url).node_id("n");
    config.backoff_max = Duration::from_millis(200);
    let mut node = Node::start(config);
    let mut out = Vec::new();
    for (i, queue) in ["/queue/one", "/queue/two"].into_iter().enumerate() {
        node.engine
            .subscribe(key(1, &format!("s{i}")), &dest(queue), None, &mut out);
    }
    node.engine
        .subscribe(key(1, "t"), &dest("/topic/t"), None, &mut out);
    node.engine.flushed().await;
    assert!(node.engine.metrics().connected());

    // Redis goes away: the idle writer notices (it checks its connection) without a SEND.
    drop(server);
    wait_connected(&node, false, "after redis went away").await;
    // A reader started now fails to connect, over and over, as the others do.
    node.engine
        .subscribe(key(1, "s2"), &dest("/queue/three"), None, &mut out);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!node.engine.metrics().connected());

    // Redis is back (empty): connected again, without a SEND, and it stays so while every
    // reader reconnects (their backoff is at most 200 ms).
    let _server = RedisServer::start(port);
    wait_connected(&node, true, "after redis came back").await;
    let metrics = node.engine.metrics();
    let until = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < until {
        assert!(metrics.connected(), "connected() fell back to false");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Traffic flows on every queue, the one whose reader started during the outage included.
    for queue in ["/queue/one", "/queue/two", "/queue/three"] {
        node.engine.offer(publish(queue, queue)).expect("accepted");
    }
    let got = node.collect(3, WAIT).await;
    let mut bodies: Vec<&[u8]> = got.iter().map(|d| &d.message.body()[..]).collect();
    bodies.sort();
    assert_eq!(
        bodies,
        [&b"/queue/one"[..], &b"/queue/three"[..], &b"/queue/two"[..]]
    );
    assert!(metrics.connected());
    assert!(metrics.reconnects() >= 1);
    assert_eq!(metrics.send_failures(), 0);
}
