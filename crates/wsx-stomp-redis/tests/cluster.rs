//! Cluster mode (`redis-cluster://HOST:PORT[,…]`): on a Redis Cluster of three primaries the
//! tests start themselves (`redis-server`, `redis-cli --cluster create`, from PATH; skipped
//! without them outside CI), two nodes share topics and queues whose keys spread over the
//! shards, each destination's keys in one slot; topics go through sharded pub/sub (each
//! channel subscribed on its own shard only, nothing through classic pub/sub); and a bad
//! Cluster URL or an unsupported setting is refused at start. The `wsx serve` nodes on a
//! cluster are `crates/wsx-cli/tests/stomp_cluster.rs` and `stomp_resume.rs`.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::{Node, RedisCluster, admin, dest, key, publish, unique_prefix};
use wsx_stomp::Engine;
use wsx_stomp_redis::{Config, Error, RedisEngine};

const WAIT: Duration = Duration::from_secs(20);

/// `KEYS PREFIX*` on the node on `port` alone (no redirection).
async fn keys_on(port: u16, prefix: &str) -> Vec<String> {
    redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut admin(&format!("redis://127.0.0.1:{port}")).await)
        .await
        .expect("KEYS")
}

/// The shard channels the node on `port` has subscribers for (`PUBSUB SHARDCHANNELS`), and
/// its classic channels (`PUBSUB CHANNELS`), under `prefix`.
async fn channels_on(port: u16, prefix: &str) -> (Vec<String>, Vec<String>) {
    let mut conn = admin(&format!("redis://127.0.0.1:{port}")).await;
    let pattern = format!("{prefix}*");
    let shard = redis::cmd("PUBSUB")
        .arg("SHARDCHANNELS")
        .arg(&pattern)
        .query_async(&mut conn)
        .await
        .expect("PUBSUB SHARDCHANNELS");
    let classic = redis::cmd("PUBSUB")
        .arg("CHANNELS")
        .arg(&pattern)
        .query_async(&mut conn)
        .await
        .expect("PUBSUB CHANNELS");
    (shard, classic)
}

/// `CLUSTER KEYSLOT key`, asked of the node on `port`.
async fn slot(port: u16, key: &str) -> i64 {
    redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(key)
        .query_async(&mut admin(&format!("redis://127.0.0.1:{port}")).await)
        .await
        .expect("CLUSTER KEYSLOT")
}

#[test]
fn a_bad_cluster_url_or_an_unsupported_setting_is_refused_at_start() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let _guard = rt.enter();
    for url in [
        "redis-cluster://",
        "redis-cluster://h",
        "redis-cluster://h:0",
        "redis-cluster://h:7000/1",
    ] {
        let err = RedisEngine::start(Config::new(url)).err();
        assert!(matches!(err, Some(Error::Url(_))), "{url}: {err:?}");
    }
    let err = RedisEngine::start(Config::new("redis-cluster://h:7000").replicas_ack(1)).err();
    assert!(
        matches!(&err, Some(Error::Unsupported(why)) if why.contains("replicas-ack")),
        "{err:?}"
    );
    let err = RedisEngine::start(Config::new("redis-cluster://h:7000").prefix("a{b}:")).err();
    assert!(matches!(err, Some(Error::Unsupported(_))), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_and_queues_spread_over_the_shards() {
    let test = "topics_and_queues_spread_over_the_shards";
    if !RedisCluster::available(test) {
        return;
    }
    let cluster = RedisCluster::start(3, 0);
    let url = cluster.url();
    let prefix = unique_prefix("cluster-spread");
    let config = |id: &str| Config::new(&url).prefix(&prefix).node_id(id);
    let mut a = Node::start(config("a"));
    let mut b = Node::start(config("b"));
    const TOPICS: usize = 8;
    const QUEUES: usize = 8;
    const PER_QUEUE: usize = 50;

    // Topics: one subscriber on each node per topic, one message per topic: each subscriber
    // gets its topic's message once.
    let mut out = Vec::new();
    for t in 0..TOPICS {
        let topic = dest(&format!("/topic/t{t}"));
        a.engine
            .subscribe(key(1, &format!("t{t}")), &topic, None, &mut out);
        b.engine
            .subscribe(key(2, &format!("t{t}")), &topic, None, &mut out);
    }
    a.engine.flushed().await;
    b.engine.flushed().await;
    for t in 0..TOPICS {
        a.engine
            .offer(publish(&format!("/topic/t{t}"), format!("news {t}")))
            .expect("accepted");
    }
    for node in [&mut a, &mut b] {
        let got = node.collect(TOPICS, WAIT).await;
        let mut seen = HashSet::new();
        for d in &got {
            let topic = d.message.destination().as_str().to_owned();
            let t = topic.strip_prefix("/topic/t").expect("a topic of the test");
            assert_eq!(&d.message.body()[..], format!("news {t}").as_bytes());
            assert_eq!(&*d.subscriber.subscription, format!("t{t}"));
            assert!(seen.insert(topic), "{d:?} twice");
        }
        assert!(node.next(Duration::from_millis(200)).await.is_none());
        // Messages of one writer on several shards come in any order: none is taken for a
        // duplicate.
        assert_eq!(node.engine.metrics().duplicates(), 0);
    }
    // Sharded pub/sub: each topic's channel is subscribed on one primary only (the shard of
    // its slot), the channels are on more than one shard, and none is a classic channel.
    let mut shard_of: HashMap<String, u16> = HashMap::new();
    for port in &cluster.primaries {
        let (shard, classic) = channels_on(*port, &prefix).await;
        assert!(classic.is_empty(), "classic pub/sub used: {classic:?}");
        for channel in shard {
            assert_eq!(slot(*port, &channel).await, {
                let topic = channel.rsplit_once(":t:").expect("a topic channel").1;
                slot(*port, &format!("{prefix}ts:{topic}")).await
            });
            assert!(shard_of.insert(channel, *port).is_none(), "on two shards");
        }
    }
    assert_eq!(shard_of.len(), TOPICS, "{shard_of:?}");
    let shards: HashSet<u16> = shard_of.values().copied().collect();
    assert!(shards.len() > 1, "every topic on one shard: {shard_of:?}");

    // Queues: consumers on both nodes, messages sent from both, each delivered once and
    // acknowledged.
    for q in 0..QUEUES {
        let queue = dest(&format!("/queue/q{q}"));
        a.engine
            .subscribe(key(3, &format!("q{q}")), &queue, Some(10), &mut out);
        b.engine
            .subscribe(key(4, &format!("q{q}")), &queue, Some(10), &mut out);
    }
    assert!(out.is_empty());
    for i in 0..QUEUES * PER_QUEUE {
        let node = if i % 2 == 0 { &mut a } else { &mut b };
        node.engine
            .offer(publish(&format!("/queue/q{}", i % QUEUES), format!("m{i}")))
            .expect("accepted");
    }
    let mut seen = HashSet::new();
    let mut per_node = [0usize; 2];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while seen.len() < QUEUES * PER_QUEUE {
        let (which, event) = tokio::select! {
            e = a.events.recv() => (0, e),
            e = b.events.recv() => (1, e),
            _ = tokio::time::sleep_until(deadline) => panic!("timed out at {}", seen.len()),
        };
        let node = if which == 0 { &mut a } else { &mut b };
        let mut delivered = Vec::new();
        node.engine.handle_event(
            event.expect("engine alive"),
            &mut delivered,
            &mut Vec::new(),
        );
        for d in delivered {
            let body = String::from_utf8(d.message.body().to_vec()).expect("utf8");
            let i: usize = body[1..].parse().expect("mN");
            assert_eq!(
                d.message.destination().as_str(),
                format!("/queue/q{}", i % QUEUES)
            );
            assert!(seen.insert(body.clone()), "{body} delivered twice");
            per_node[which] += 1;
            node.engine
                .ack(&d.subscriber, &[d.message.id().clone()], &mut Vec::new());
        }
    }
    assert!(per_node[0] > 0 && per_node[1] > 0, "{per_node:?}");
    a.engine.flushed().await;
    b.engine.flushed().await;
    // Each queue's stream and companion hash are on one primary, in one slot; the queues are
    // on more than one primary; acknowledged entries are gone.
    let mut queue_shards = HashSet::new();
    for q in 0..QUEUES {
        let stream = format!("{prefix}q:{{q{q}}}");
        let meta = format!("{prefix}qm:{{q{q}}}");
        let port = cluster.primaries[0];
        assert_eq!(slot(port, &stream).await, slot(port, &meta).await);
        let mut holders = Vec::new();
        for port in &cluster.primaries {
            let keys = keys_on(*port, &prefix).await;
            if keys.contains(&stream) {
                assert!(keys.contains(&meta), "{meta} not beside {stream}");
                holders.push(*port);
            }
        }
        assert_eq!(holders.len(), 1, "{stream} on {holders:?}");
        queue_shards.insert(holders[0]);
        let len: i64 = redis::cmd("XLEN")
            .arg(&stream)
            .query_async(&mut admin(&format!("redis://127.0.0.1:{}", holders[0])).await)
            .await
            .expect("XLEN");
        assert_eq!(len, 0, "{stream} keeps acknowledged entries");
    }
    assert!(queue_shards.len() > 1, "every queue on one shard");

    // The metrics name the mode and the three primaries.
    let metrics = a.engine.metrics();
    assert_eq!(metrics.mode(), "cluster");
    let mut primaries = metrics.primaries();
    primaries.sort();
    let mut expected: Vec<String> = cluster
        .primaries
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect();
    expected.sort();
    assert_eq!(primaries, expected);
    assert_eq!(metrics.send_failures(), 0);
    assert_eq!(b.engine.metrics().send_failures(), 0);
}

/// `CLUSTER NODES` of the node on `port`: per node, its port, whether it is a primary, its id
/// and (a replica) its primary's id.
async fn cluster_nodes(port: u16) -> Vec<(u16, bool, String, String)> {
    let text: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query_async(&mut admin(&format!("redis://127.0.0.1:{port}")).await)
        .await
        .expect("CLUSTER NODES");
    text.lines()
        .filter_map(|line| {
            let parts: Vec<&str> = line.split(' ').collect();
            let addr = parts.get(1)?.split('@').next()?;
            let node_port = addr.rsplit_once(':')?.1.parse().ok()?;
            let flags = parts.get(2)?;
            let primary = flags.contains("master") && !flags.contains("fail");
            Some((
                node_port,
                primary,
                parts.first()?.to_string(),
                parts.get(3)?.to_string(),
            ))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_failover_is_followed() {
    let test = "a_shard_failover_is_followed";
    if !RedisCluster::available(test) {
        return;
    }
    let mut cluster = RedisCluster::start(3, 1);
    let url = cluster.url();
    let prefix = unique_prefix("cluster-failover");
    let mut node = Node::start(Config::new(&url).prefix(&prefix).node_id("a"));
    let queue = dest("/queue/jobs");
    let mut out = Vec::new();
    node.engine
        .subscribe(key(1, "s"), &queue, Some(100), &mut out);
    for i in 0..20u64 {
        node.engine
            .offer_from(
                publish("/queue/jobs", format!("before {i}")),
                common::origin(1, i, "/queue/jobs"),
            )
            .expect("accepted");
    }
    let before = node.collect(20, WAIT).await;
    for d in &before {
        node.engine
            .ack(&d.subscriber, &[d.message.id().clone()], &mut Vec::new());
    }
    // The primary of the queue's slot, and its replica.
    let stream = format!("{prefix}q:{{jobs}}");
    let nodes = cluster_nodes(cluster.primaries[0]).await;
    // `redis-cli` picks which nodes are primaries: ask the cluster.
    let primaries: Vec<u16> = nodes.iter().filter(|n| n.1).map(|n| n.0).collect();
    assert_eq!(primaries.len(), 3, "{nodes:?}");
    let mut owner = None;
    for port in &primaries {
        if keys_on(*port, &prefix).await.contains(&stream) {
            owner = Some(*port);
        }
    }
    let owner = owner.expect("a primary holds the queue");
    let owner_id = nodes
        .iter()
        .find(|n| n.0 == owner)
        .map(|n| n.2.clone())
        .expect("the owner in CLUSTER NODES");
    let replica = nodes
        .iter()
        .find(|n| n.3 == owner_id)
        .map(|n| n.0)
        .expect("the owner has a replica");
    let failovers = node.engine.metrics().failovers();
    cluster.kill(owner);
    let killed = tokio::time::Instant::now();

    // Its replica is promoted; SENDs made meanwhile are stored there and delivered.
    let alive = *primaries
        .iter()
        .find(|p| **p != owner)
        .expect("another primary");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !cluster_nodes(alive)
        .await
        .iter()
        .any(|n| n.0 == replica && n.1)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "replica not promoted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let promoted = killed.elapsed();
    for i in 0..20u64 {
        node.engine
            .offer_from(
                publish("/queue/jobs", format!("after {i}")),
                common::origin(1, 100 + i, "/queue/jobs"),
            )
            .expect("accepted");
    }
    let mut got = HashSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    while got.len() < 20 {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let delivered = node
            .next(left)
            .await
            .unwrap_or_else(|| panic!("{} of 20 delivered after the failover", got.len()));
        for d in delivered {
            let body = String::from_utf8(d.message.body().to_vec()).expect("utf8");
            if body.starts_with("after ") {
                got.insert(body);
            }
            node.engine
                .ack(&d.subscriber, &[d.message.id().clone()], &mut Vec::new());
        }
    }
    eprintln!(
        "shard failover: replica promoted {promoted:?} after the kill, 20 SENDs made then \
         delivered {:?} after the kill",
        killed.elapsed()
    );
    let stored = node
        .confirmations
        .iter()
        .filter(|c| matches!(c, wsx_stomp::Confirmation::Stored(o) if o.seq >= 100))
        .count();
    assert!(stored > 0, "{:?}", node.confirmations);
    // The metrics name the promoted replica among the primaries.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let metrics = node.engine.metrics();
    while !metrics
        .primaries()
        .contains(&format!("127.0.0.1:{replica}"))
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            metrics.primaries()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(metrics.failovers() > failovers);
    assert!(!metrics.primaries().contains(&format!("127.0.0.1:{owner}")));
}

/// Ask the node on `port` `CLUSTER args…`.
async fn cluster_cmd(port: u16, args: &[&str]) -> redis::Value {
    let mut cmd = redis::cmd("CLUSTER");
    for arg in args {
        cmd.arg(*arg);
    }
    cmd.query_async(&mut admin(&format!("redis://127.0.0.1:{port}")).await)
        .await
        .unwrap_or_else(|e| panic!("CLUSTER {args:?} on {port}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_whose_slot_moves_to_another_primary_keeps_working() {
    let test = "a_queue_whose_slot_moves_to_another_primary_keeps_working";
    if !RedisCluster::available(test) {
        return;
    }
    let cluster = RedisCluster::start(3, 0);
    let url = cluster.url();
    let prefix = unique_prefix("cluster-reshard");
    let mut node = Node::start(Config::new(&url).prefix(&prefix).node_id("a"));
    let mut out = Vec::new();
    node.engine
        .subscribe(key(1, "s"), &dest("/queue/moving"), Some(100), &mut out);
    let send = |node: &mut Node, text: String| {
        node.engine
            .offer(publish("/queue/moving", text))
            .expect("accepted");
    };
    for i in 0..10 {
        send(&mut node, format!("before {i}"));
    }
    for d in node.collect(10, WAIT).await {
        node.engine
            .ack(&d.subscriber, &[d.message.id().clone()], &mut Vec::new());
    }
    node.engine.flushed().await;
    // Move the queue's slot (stream and hash) to another primary, as a resharding does.
    let stream = format!("{prefix}q:{{moving}}");
    let slot = slot(cluster.primaries[0], &stream).await.to_string();
    let mut from = None;
    for port in &cluster.primaries {
        if keys_on(*port, &prefix).await.contains(&stream) {
            from = Some(*port);
        }
    }
    let from = from.expect("a primary holds the queue");
    let to = *cluster
        .primaries
        .iter()
        .find(|p| **p != from)
        .expect("another primary");
    let id = |v: redis::Value| match v {
        redis::Value::BulkString(b) => String::from_utf8(b).expect("utf8"),
        redis::Value::SimpleString(s) => s,
        other => panic!("{other:?}"),
    };
    let from_id = id(cluster_cmd(from, &["MYID"]).await);
    let to_id = id(cluster_cmd(to, &["MYID"]).await);
    cluster_cmd(to, &["SETSLOT", &slot, "IMPORTING", &from_id]).await;
    cluster_cmd(from, &["SETSLOT", &slot, "MIGRATING", &to_id]).await;
    let keys: Vec<String> = redis::cmd("CLUSTER")
        .arg("GETKEYSINSLOT")
        .arg(&slot)
        .arg(100)
        .query_async(&mut admin(&format!("redis://127.0.0.1:{from}")).await)
        .await
        .expect("GETKEYSINSLOT");
    assert!(keys.contains(&stream), "{keys:?}");
    let mut migrate = redis::cmd("MIGRATE");
    migrate
        .arg("127.0.0.1")
        .arg(to)
        .arg("")
        .arg(0)
        .arg(5000)
        .arg("KEYS")
        .arg(&keys);
    let _: redis::Value = migrate
        .query_async(&mut admin(&format!("redis://127.0.0.1:{from}")).await)
        .await
        .expect("MIGRATE");
    for port in &cluster.primaries {
        cluster_cmd(*port, &["SETSLOT", &slot, "NODE", &to_id]).await;
    }
    assert!(keys_on(to, &prefix).await.contains(&stream));
    // SENDs after the move are stored on the new primary (MOVED followed) and delivered.
    for i in 0..10 {
        send(&mut node, format!("after {i}"));
    }
    let got = node.collect(10, WAIT).await;
    let bodies: HashSet<String> = got
        .iter()
        .map(|d| String::from_utf8(d.message.body().to_vec()).expect("utf8"))
        .collect();
    let expected: HashSet<String> = (0..10).map(|i| format!("after {i}")).collect();
    assert_eq!(bodies, expected);
    for d in &got {
        node.engine
            .ack(&d.subscriber, &[d.message.id().clone()], &mut Vec::new());
    }
    node.engine.flushed().await;
    assert_eq!(node.engine.metrics().send_failures(), 0);
    let len: i64 = redis::cmd("XLEN")
        .arg(&stream)
        .query_async(&mut admin(&format!("redis://127.0.0.1:{to}")).await)
        .await
        .expect("XLEN");
    assert_eq!(len, 0, "acknowledged on the new primary");
}
