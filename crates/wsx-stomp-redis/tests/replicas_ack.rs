//! [`Config::replicas_ack`]: a SEND is confirmed only once that many replicas have it (the
//! writer's `WAIT`), not when the primary alone stored it. The test starts `redis-server`s
//! of its own (from PATH).

mod common;

use std::time::Duration;

use common::{Node, RedisServer, admin, free_port, origin, publish, replica, unique_prefix};
use wsx_stomp::{Confirmation, Engine, Outcome};
use wsx_stomp_redis::Config;

const WAIT: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_is_confirmed_only_once_a_replica_has_it() {
    let test = "a_send_is_confirmed_only_once_a_replica_has_it";
    if !RedisServer::available(test) {
        return;
    }
    let port = free_port();
    let _primary = RedisServer::start(port);
    let url = format!("redis://127.0.0.1:{port}");
    let prefix = unique_prefix("replicas-ack");
    let mut node = Node::start(
        Config::new(&url)
            .prefix(&prefix)
            .node_id("a")
            .replicas_ack(1),
    );
    let mut out = Vec::new();
    let sent = origin(1, 1, "/queue/orders");
    let outcome = node
        .engine
        .try_publish_from(publish("/queue/orders", "first"), sent.clone(), &mut out)
        .expect("accepted");
    assert_eq!(outcome, Outcome::Pending);
    // A server-side publish (an HTTP publish's 202) waits the same way.
    let mut stored = node
        .engine
        .offer_stored(publish("/queue/orders", "second"))
        .expect("accepted");
    // The primary stores it at once, but no replica has it: no confirmation.
    let mut conn = admin(&url).await;
    let key = format!("{prefix}q:orders");
    let deadline = tokio::time::Instant::now() + WAIT;
    while redis::cmd("XLEN")
        .arg(&key)
        .query_async::<i64>(&mut conn)
        .await
        .expect("XLEN")
        == 0
    {
        assert!(tokio::time::Instant::now() < deadline, "stored in time");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        node.confirmation(Duration::from_millis(1500)).await,
        None,
        "no confirmation while no replica has the write"
    );
    assert!(
        stored.try_recv().is_err(),
        "not answered while no replica has it"
    );
    assert!(node.engine.metrics().replica_waits() >= 1);
    assert_eq!(node.engine.metrics().pending_sends(), 2);

    // A replica comes and syncs: the SEND is confirmed.
    let _replica = replica(free_port(), port);
    let confirmed = node
        .confirmation(WAIT)
        .await
        .expect("confirmed once a replica has it");
    assert_eq!(confirmed, Confirmation::Stored(sent));
    let answer = tokio::time::timeout(WAIT, stored)
        .await
        .expect("answered once a replica has it")
        .expect("an answer");
    assert_eq!(answer.expect("stored"), 0);
    node.engine.flushed().await;
    assert_eq!(node.engine.metrics().pending_sends(), 0);
    assert_eq!(node.engine.metrics().send_failures(), 0);
    assert_eq!(node.engine.metrics().mode(), "single");
    assert_eq!(
        node.engine.metrics().primary().as_deref(),
        Some(format!("127.0.0.1:{port}").as_str())
    );
}
