//! A node's Redis connections are a fixed, small number whatever the number of queues it
//! consumes: 64 queue subscriptions (and a topic) cost no more connections than one. Its own
//! `redis-server` (counting `CLIENT LIST` on a shared one would count other tests' clients).

mod common;

use std::time::Duration;

use common::{Node, RedisServer, dest, exists, free_port, key, publish};
use wsx_stomp::Engine;
use wsx_stomp_redis::Config;

const WAIT: Duration = Duration::from_secs(10);

/// The clients connected to the server (this admin connection included).
async fn clients(conn: &mut redis::aio::MultiplexedConnection) -> usize {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(conn)
        .await
        .expect("CLIENT LIST");
    list.lines().filter(|line| !line.is_empty()).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_queues_take_no_more_redis_connections_than_one() {
    const NODE_CONNECTIONS: usize = 3;
    if !RedisServer::available("sixty_four_queues_take_no_more_redis_connections_than_one") {
        return;
    }
    let port = free_port();
    let _server = RedisServer::start(port);
    let url = format!("redis://127.0.0.1:{port}");
    let admin = redis::Client::open(url.as_str()).expect("url");
    let mut conn = admin
        .get_multiplexed_async_connection()
        .await
        .expect("admin connection");
    let mut node = Node::start(Config::new(&url).node_id("n"));
    let mut out = Vec::new();
    node.engine
        .subscribe(key(1, "t"), &dest("/topic/news"), None, &mut out);
    node.engine
        .subscribe(key(1, "q0"), &dest("/queue/q0"), Some(4), &mut out);
    node.engine.flushed().await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while !exists(&mut conn, "wsx:q:q0").await || clients(&mut conn).await < 1 + NODE_CONNECTIONS {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the node never connected"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let with_one = clients(&mut conn).await;
    assert_eq!(
        with_one,
        1 + NODE_CONNECTIONS,
        "admin + writer, pub/sub, reader"
    );

    for i in 1..64 {
        let q = format!("/queue/q{i}");
        node.engine
            .subscribe(key(1, &format!("q{i}")), &dest(&q), Some(4), &mut out);
    }
    node.engine.flushed().await;
    // Every queue is read: a message to the last one arrives.
    node.engine
        .offer(publish("/queue/q63", "hello"))
        .expect("accepted");
    let got = node.collect(1, WAIT).await;
    assert_eq!(&got[0].message.body()[..], b"hello");
    for i in 0..64 {
        assert!(exists(&mut conn, &format!("wsx:q:q{i}")).await, "q{i}");
    }
    assert_eq!(
        clients(&mut conn).await,
        with_one,
        "64 queues use the connections of one"
    );
}
