//! What a node keeps in Redis and in memory is bounded: unused empty queues are removed after
//! the grace period (not while another node consumes them, not while they hold messages),
//! entries of a dead node are taken over no faster than the consumers' credit, a pipeline
//! written again after a timeout does not duplicate, a queue's bytes are capped, and SENDs
//! waiting for an unreachable Redis are bounded in bytes. Real Redis (`WSX_TEST_REDIS_URL`).

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{
    Node, admin, dest, exists, free_port, key, origin, publish, redis_url, unique_prefix,
};
use wsx_stomp::{Confirmation, Engine};
use wsx_stomp_redis::{Config, Error, RedisEvents};

const WAIT: Duration = Duration::from_secs(10);

async fn xlen(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> i64 {
    redis::cmd("XLEN")
        .arg(key)
        .query_async(conn)
        .await
        .expect("XLEN")
}

/// Wait until `key` exists (`true`) or not (`false`); a panic after `WAIT`.
async fn wait_exists(conn: &mut redis::aio::MultiplexedConnection, key: &str, want: bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while exists(conn, key).await != want {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{key} exists: expected {want}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unused_empty_queues_are_removed_after_the_grace_period_only() {
    let Some(url) = redis_url("unused_empty_queues_are_removed_after_the_grace_period_only") else {
        return;
    };
    const GRACE: Duration = Duration::from_millis(300);
    let prefix = unique_prefix("removal");
    let config = |id: &str| {
        Config::new(&url)
            .prefix(&prefix)
            .node_id(id)
            .empty_queue_grace(GRACE)
    };
    let mut conn = admin(&url).await;
    let mut a = Node::start(config("a"));
    let mut b = Node::start(config("b"));
    let mut out = Vec::new();
    let (alone, shared, filled) = ("/queue/alone", "/queue/shared", "/queue/filled");
    let key_of = |q: &str| format!("{prefix}q:{}", &q["/queue/".len()..]);
    for q in [alone, shared, filled] {
        a.engine.subscribe(key(1, q), &dest(q), Some(4), &mut out);
    }
    b.engine
        .subscribe(key(2, shared), &dest(shared), Some(4), &mut out);
    for q in [alone, shared, filled] {
        wait_exists(&mut conn, &key_of(q), true).await;
    }
    // A's consumers leave; a message waits in `filled` afterwards.
    for q in [alone, shared, filled] {
        a.engine.unsubscribe(&key(1, q), &mut out);
    }
    a.engine.flushed().await;
    a.engine
        .offer(publish(filled, "waiting"))
        .expect("accepted");
    a.engine.flushed().await;
    // `alone`: empty and nobody consumes it: removed, with its companion hash.
    wait_exists(&mut conn, &key_of(alone), false).await;
    assert!(!exists(&mut conn, &format!("{prefix}qm:alone")).await);
    // The others were tried at the same time; give them three more grace periods.
    tokio::time::sleep(3 * GRACE).await;
    assert!(
        exists(&mut conn, &key_of(shared)).await,
        "B still consumes it"
    );
    assert_eq!(xlen(&mut conn, &key_of(filled)).await, 1, "a message waits");
    // B is still served on `shared`.
    a.engine.offer(publish(shared, "for b")).expect("accepted");
    let got = b.collect(1, WAIT).await;
    assert_eq!(&got[0].message.body()[..], b"for b");
    b.engine
        .ack(&key(2, shared), &[got[0].message.id().clone()], &mut out);
    // B leaves too: now it goes.
    b.engine.unsubscribe(&key(2, shared), &mut out);
    b.engine.flushed().await;
    wait_exists(&mut conn, &key_of(shared), false).await;
    // The waiting message is still delivered to the next consumer.
    b.engine
        .subscribe(key(2, filled), &dest(filled), Some(4), &mut out);
    let got = b.collect(1, WAIT).await;
    assert_eq!(&got[0].message.body()[..], b"waiting");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_nodes_entries_are_taken_over_no_faster_than_credit() {
    let Some(url) = redis_url("a_dead_nodes_entries_are_taken_over_no_faster_than_credit") else {
        return;
    };
    const SENT: usize = 40;
    const WINDOW: usize = 5;
    let prefix = unique_prefix("claimcredit");
    let config = |id: &str| {
        Config::new(&url)
            .prefix(&prefix)
            .node_id(id)
            .claim_timeout(Duration::from_millis(400))
    };
    let q = "/queue/claimed";
    let mut out = Vec::new();
    let mut a = Node::start(config("a"));
    a.engine
        .subscribe(key(1, "s"), &dest(q), Some(SENT), &mut out);
    for i in 0..SENT {
        a.engine
            .offer(publish(q, format!("m{i}")))
            .expect("accepted");
    }
    a.collect(SENT, WAIT).await;
    // A dies holding every entry, unacknowledged.
    drop(a);

    let mut b = Node::start(config("b"));
    b.engine
        .subscribe(key(2, "s"), &dest(q), Some(WINDOW), &mut out);
    let first = b.collect(WINDOW, WAIT).await;
    assert!(first.iter().all(|d| d.redelivered));
    // Several claim rounds later, B still holds no more than its window.
    let deadline = tokio::time::Instant::now() + Duration::from_millis(1500);
    while let Some(more) = b
        .next(deadline.saturating_duration_since(tokio::time::Instant::now()))
        .await
    {
        assert!(more.is_empty(), "nothing past the window: {more:?}");
    }
    assert_eq!(
        b.engine.queue_held(q),
        WINDOW,
        "claimed no more than credit"
    );
    // Acknowledging lets the rest through, each once.
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut pending = first;
    while seen.len() < SENT {
        for d in pending.drain(..) {
            *seen
                .entry(String::from_utf8_lossy(d.message.body()).into_owned())
                .or_default() += 1;
            b.engine
                .ack(&key(2, "s"), &[d.message.id().clone()], &mut out);
        }
        pending.append(&mut out);
        if pending.is_empty() && seen.len() < SENT {
            pending = b.collect(1, WAIT).await;
        }
        assert!(b.engine.queue_held(q) <= WINDOW);
    }
    assert!(seen.values().all(|n| *n == 1), "{seen:?}");
}

/// Keep Redis busy in a script for `ms` milliseconds (every client waits).
async fn busy(url: &str, ms: u64) {
    const SCRIPT: &str = "\
local t = redis.call('TIME')
local start = tonumber(t[1]) * 1000000 + tonumber(t[2])
while true do
  local n = redis.call('TIME')
  if tonumber(n[1]) * 1000000 + tonumber(n[2]) - start > tonumber(ARGV[1]) * 1000 then break end
end
return 1";
    let settings = redis::AsyncConnectionConfig::new().set_response_timeout(None);
    let mut conn = redis::Client::open(url)
        .expect("url")
        .get_multiplexed_async_connection_with_config(&settings)
        .await
        .expect("admin connection");
    let _: redis::Value = redis::cmd("EVAL")
        .arg(SCRIPT)
        .arg(0)
        .arg(ms)
        .query_async(&mut conn)
        .await
        .expect("busy script");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_written_again_after_a_timeout_does_not_duplicate() {
    let Some(url) = redis_url("a_pipeline_written_again_after_a_timeout_does_not_duplicate") else {
        return;
    };
    const N: u64 = 30;
    let prefix = unique_prefix("retry");
    let config = |id: &str| Config::new(&url).prefix(&prefix).node_id(id);
    let mut conn = admin(&url).await;
    let mut listener = Node::start(config("listener"));
    let mut out = Vec::new();
    listener
        .engine
        .subscribe(key(9, "t"), &dest("/topic/retry"), None, &mut out);
    listener.engine.flushed().await;
    let mut writer = Node::start(config("writer").write_timeout(Duration::from_millis(100)));
    writer.engine.flushed().await;

    // Redis is busy: the writer's pipeline waits, times out, is written again on a new
    // connection; Redis then runs both copies. (Started again if it was over before this
    // side saw it busy: a loaded machine.)
    let mut probe = admin(&url).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let busy_task = 'busy: loop {
        assert!(tokio::time::Instant::now() < deadline, "never busy");
        let task = tokio::spawn({
            let url = url.clone();
            async move { busy(&url, 900).await }
        });
        while !task.is_finished() {
            let ping = redis::cmd("PING");
            let ping = ping.query_async::<String>(&mut probe);
            if tokio::time::timeout(Duration::from_millis(50), ping)
                .await
                .is_err()
            {
                break 'busy task;
            }
        }
    };
    for seq in 1..=N {
        let origin = origin(1, seq, "/queue/retry");
        writer
            .engine
            .offer_from(publish("/queue/retry", format!("q{seq}")), origin)
            .expect("accepted");
        let origin = origin_topic(seq);
        writer
            .engine
            .offer_from(publish("/topic/retry", format!("t{seq}")), origin)
            .expect("accepted");
    }
    busy_task.await.expect("busy script ran");
    for _ in 0..2 * N {
        match writer.confirmation(WAIT).await {
            Some(Confirmation::Stored(_)) => {}
            other => panic!("expected stored, got {other:?}"),
        }
    }
    assert!(writer.engine.metrics().reconnects() >= 1, "written again");
    assert_eq!(xlen(&mut conn, &format!("{prefix}q:retry")).await, N as i64);
    let got = listener.collect(N as usize, WAIT).await;
    // Anything more (a duplicate) would have arrived by now: the writer is flushed.
    writer.engine.flushed().await;
    listener.engine.flushed().await;
    let late = listener.next(Duration::from_millis(300)).await;
    assert!(
        late.as_ref().is_none_or(Vec::is_empty),
        "duplicate: {late:?}"
    );
    let mut bodies: Vec<String> = got
        .iter()
        .map(|d| String::from_utf8_lossy(d.message.body()).into_owned())
        .collect();
    bodies.sort();
    bodies.dedup();
    assert_eq!(bodies.len(), N as usize);
}

fn origin_topic(seq: u64) -> wsx_stomp::Origin {
    origin(2, seq, "/topic/retry")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_over_its_byte_cap_refuses_sends_naming_it() {
    let Some(url) = redis_url("a_queue_over_its_byte_cap_refuses_sends_naming_it") else {
        return;
    };
    let prefix = unique_prefix("bytecap");
    let mut node = Node::start(Config::new(&url).prefix(&prefix).max_queue_bytes(1000));
    let q = "/queue/capped";
    let body = "x".repeat(400);
    for seq in 1..=3 {
        node.engine
            .offer_from(publish(q, body.clone()), origin(1, seq, q))
            .expect("accepted");
    }
    for _ in 0..2 {
        assert!(matches!(
            node.confirmation(WAIT).await,
            Some(Confirmation::Stored(_))
        ));
    }
    match node.confirmation(WAIT).await {
        Some(Confirmation::Failed(_, why)) => assert!(why.contains("max-queue-bytes"), "{why}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    // Consuming one makes room for one.
    let mut out = Vec::new();
    node.engine
        .subscribe(key(1, "s"), &dest(q), Some(1), &mut out);
    let got = if out.is_empty() {
        node.collect(1, WAIT).await
    } else {
        std::mem::take(&mut out)
    };
    node.engine
        .ack(&key(1, "s"), &[got[0].message.id().clone()], &mut out);
    node.engine.flushed().await;
    node.engine
        .offer_from(publish(q, body), origin(1, 4, q))
        .expect("accepted");
    assert!(matches!(
        node.confirmation(WAIT).await,
        Some(Confirmation::Stored(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_waiting_for_an_unreachable_redis_are_bounded_in_bytes() {
    const MAX: usize = 64 * 1024;
    let url = format!("redis://127.0.0.1:{}", free_port());
    let mut node = Node::start(Config::new(url).max_pending_bytes(MAX));
    let body = "y".repeat(4096);
    let mut accepted = 0;
    let refused = loop {
        match node.engine.offer(publish("/queue/down", body.clone())) {
            Ok(()) => accepted += 1,
            Err(error) => break error,
        }
        assert!(accepted < 10_000, "never refused");
    };
    assert!(matches!(refused, Error::BacklogBytes(_)), "{refused}");
    assert!(refused.to_string().contains("max-pending-bytes"));
    let metrics = node.engine.metrics();
    assert!(
        metrics.pending_bytes() <= MAX,
        "{}",
        metrics.pending_bytes()
    );
    assert!(accepted >= MAX / 4200, "{accepted}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_survive_a_flushed_script_cache() {
    let Some(url) = redis_url("sends_survive_a_flushed_script_cache") else {
        return;
    };
    let prefix = unique_prefix("noscript");
    let mut node = Node::start(Config::new(&url).prefix(&prefix));
    let q = "/queue/scripts";
    node.engine
        .offer_from(publish(q, "before"), origin(1, 1, q))
        .expect("accepted");
    assert!(matches!(
        node.confirmation(WAIT).await,
        Some(Confirmation::Stored(_))
    ));
    let mut conn = admin(&url).await;
    let _: redis::Value = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut conn)
        .await
        .expect("SCRIPT FLUSH");
    node.engine
        .offer_from(publish(q, "after"), origin(1, 2, q))
        .expect("accepted");
    assert!(matches!(
        node.confirmation(WAIT).await,
        Some(Confirmation::Stored(_))
    ));
    assert_eq!(xlen(&mut conn, &format!("{prefix}q:scripts")).await, 2);
}

/// A node whose events are not handled (its broker is busy) holds no more than its event
/// channel's capacity of a topic flood: the rest is dropped there and counted (topics are at
/// most once), not queued without bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_does_not_keep_up_holds_a_bounded_part_of_a_topic_flood() {
    let Some(url) = redis_url("a_node_that_does_not_keep_up_holds_a_bounded_part_of_a_topic_flood")
    else {
        return;
    };
    const MESSAGES: usize = 3 * RedisEvents::CAPACITY;
    let prefix = unique_prefix("flood");
    let config = |id: &str| Config::new(&url).prefix(&prefix).node_id(id);
    let mut out = Vec::new();
    let mut slow = Node::start(config("slow"));
    slow.engine
        .subscribe(key(1, "t"), &dest("/topic/flood"), None, &mut out);
    slow.engine.flushed().await;
    let mut fast = Node::start(config("fast").max_pending_sends(MESSAGES));
    for i in 0..MESSAGES {
        fast.engine
            .offer(publish("/topic/flood", format!("f{i}")))
            .expect("accepted");
    }
    fast.engine.flushed().await;
    // Every message reaches the slow node: it keeps the first CAPACITY, drops the rest.
    let metrics = slow.engine.metrics();
    let expected_drops = (MESSAGES - RedisEvents::CAPACITY) as u64;
    let deadline = tokio::time::Instant::now() + WAIT;
    while metrics.dropped() < expected_drops {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} dropped: the node queued the flood",
            metrics.dropped()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let kept = slow.collect(RedisEvents::CAPACITY, WAIT).await;
    assert_eq!(&kept[0].message.body()[..], b"f0");
    assert_eq!(metrics.dropped(), expected_drops);
    // Handled again, it is served again.
    fast.engine
        .offer(publish("/topic/flood", "after"))
        .expect("accepted");
    let got = slow.collect(1, WAIT).await;
    assert_eq!(&got[0].message.body()[..], b"after");
}
