//! [`Config::replicas_ack`]: a SEND is confirmed only once that many replicas have it (the
//! writer's `WAIT`), not when the primary alone stored it; and the node finds the primary
//! through sentinels that name it (`redis-sentinel://…`), or refuses a bad Sentinel URL at
//! start. The tests start `redis-server`s of their own (from PATH).

mod common;

use std::time::Duration;

use common::{Node, RedisServer, admin, free_port, origin, publish, unique_prefix};
use wsx_stomp::{Confirmation, Engine, Outcome};
use wsx_stomp_redis::{Config, Error, RedisEngine};

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
    let primary_port = port.to_string();
    let replica_port = free_port();
    let dbfile = format!("wsx-replica-{replica_port}.rdb");
    let _replica = RedisServer::start_with(
        replica_port,
        &[
            "--replicaof",
            "127.0.0.1",
            &primary_port,
            "--repl-diskless-load",
            "on-empty-db",
            "--dbfilename",
            &dbfile,
        ],
    );
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_connects_to_the_primary_a_sentinel_names() {
    let test = "the_node_connects_to_the_primary_a_sentinel_names";
    if !RedisServer::available(test) {
        return;
    }
    let port = free_port();
    let _primary = RedisServer::start(port);
    let sentinel_port = free_port();
    let dir = std::env::temp_dir().join(format!("wsx-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a directory");
    let conf = dir.join("sentinel.conf");
    std::fs::write(
        &conf,
        format!(
            "port {sentinel_port}\nbind 127.0.0.1\ndir {}\nsentinel monitor svc 127.0.0.1 {port} 1\n",
            dir.display()
        ),
    )
    .expect("write the configuration");
    // `redis-server CONF --sentinel`: the configuration file comes first.
    let sentinel_child = std::process::Command::new("redis-server")
        .arg(&conf)
        .arg("--sentinel")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn a sentinel");
    struct Kill(std::process::Child, std::path::PathBuf);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
            let _ = std::fs::remove_dir_all(&self.1);
        }
    }
    let _sentinel = Kill(sentinel_child, dir);

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
    let len: i64 = redis::cmd("XLEN")
        .arg(format!("{prefix}q:jobs"))
        .query_async(&mut admin(&format!("redis://127.0.0.1:{port}")).await)
        .await
        .expect("XLEN");
    assert_eq!(len, 1);
}

#[tokio::test]
async fn a_bad_sentinel_url_is_refused_at_start() {
    let error = RedisEngine::start(Config::new("redis-sentinel://127.0.0.1:26379"))
        .expect_err("no service name");
    assert!(matches!(error, Error::Url(_)), "{error}");
    assert!(error.to_string().contains("service name"), "{error}");
}
