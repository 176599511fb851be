//! The bytes of queue entries a node holds (fetched from Redis and not acknowledged yet) are
//! bounded by `Config::max_held_bytes`, whatever the consumers' windows in messages; ACKs
//! release them and the node fetches more. Real Redis (`WSX_TEST_REDIS_URL`).

mod common;

use std::time::Duration;

use common::{Node, dest, key, origin, publish, redis_url, unique_prefix};
use wsx_stomp::{Confirmation, Delivery, Engine};
use wsx_stomp_redis::Config;

const WAIT: Duration = Duration::from_secs(10);
const BUDGET: usize = 256 << 10;
const BODY: usize = 64 << 10;
const QUEUES: usize = 4;
const PER_QUEUE: usize = 12;
/// An entry: the body and a little encoding around it.
const ENTRY: usize = BODY + 1024;
/// One read may pass the budget by one entry per queue read.
const BOUND: usize = BUDGET + QUEUES * ENTRY;

/// Handle events until none came for `quiet`, checking the held bytes after each; the
/// deliveries.
async fn pump(node: &mut Node, quiet: Duration) -> Vec<Delivery> {
    let mut got = Vec::new();
    while let Some(out) = node.next(quiet).await {
        got.extend(out);
        let held = node.engine.metrics().held_bytes();
        assert!(
            held <= BOUND,
            "held {held} bytes, budget {BUDGET} (bound {BOUND})"
        );
    }
    got
}

/// Acknowledge what was delivered (starting with `delivered`) until `all` messages came, each
/// ACK releasing bytes so that the node fetches more; then nothing is held.
async fn ack_until(node: &mut Node, mut delivered: Vec<Delivery>, all: usize) {
    let mut total = delivered.len();
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + 4 * WAIT;
    loop {
        for d in delivered.drain(..) {
            node.engine
                .ack(&d.subscriber, &[d.message.id().clone()], &mut out);
        }
        delivered.append(&mut out);
        if delivered.is_empty() && total >= all {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{total} of {all} delivered: fetching stopped after the ACKs"
        );
        delivered.extend(pump(node, Duration::from_millis(300)).await);
        total += delivered.len();
    }
    assert_eq!(total, all);
    node.engine.flushed().await;
    assert_eq!(node.engine.metrics().held_bytes(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_holds_no_more_than_its_byte_budget_and_fetches_again_after_acks() {
    let Some(url) =
        redis_url("a_node_holds_no_more_than_its_byte_budget_and_fetches_again_after_acks")
    else {
        return;
    };
    let prefix = unique_prefix("held");
    let mut node = Node::start(
        Config::new(&url)
            .prefix(&prefix)
            .node_id("held")
            .max_held_bytes(BUDGET),
    );
    let queues: Vec<String> = (0..QUEUES).map(|i| format!("/queue/big{i}")).collect();
    // Every queue filled first: 12 × 64 KiB each, 3 MiB in all.
    let mut seq = 0;
    for q in &queues {
        for _ in 0..PER_QUEUE {
            seq += 1;
            node.engine
                .offer_from(publish(q, vec![b'x'; BODY]), origin(1, seq, q))
                .expect("accepted");
        }
    }
    for _ in 0..seq {
        let confirmation = node.confirmation(WAIT).await.expect("confirmed");
        assert!(
            matches!(confirmation, Confirmation::Stored(_)),
            "{confirmation:?}"
        );
    }
    // Consumers with windows far larger than the budget, which do not acknowledge.
    let mut out = Vec::new();
    for (i, q) in queues.iter().enumerate() {
        node.engine
            .subscribe(key(2, &format!("s{i}")), &dest(q), Some(256), &mut out);
    }
    assert!(out.is_empty());
    let delivered = pump(&mut node, Duration::from_millis(1500)).await;
    let held = node.engine.metrics().held_bytes();
    assert!(
        held >= BUDGET,
        "held {held}: the node stopped short of its budget"
    );
    assert!(
        delivered.len() * ENTRY <= BOUND && delivered.len() < QUEUES * PER_QUEUE,
        "{} messages delivered unacknowledged: past the budget",
        delivered.len()
    );
    // Every ACK releases bytes and the node fetches more: in the end everything comes.
    ack_until(&mut node, delivered, QUEUES * PER_QUEUE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_nodes_entries_are_taken_over_within_the_byte_budget() {
    let Some(url) = redis_url("a_dead_nodes_entries_are_taken_over_within_the_byte_budget") else {
        return;
    };
    const SENT: usize = 12;
    let prefix = unique_prefix("heldclaim");
    let config = |id: &str| {
        Config::new(&url)
            .prefix(&prefix)
            .node_id(id)
            .claim_timeout(Duration::from_millis(400))
    };
    let q = "/queue/bigclaimed";
    let mut out = Vec::new();
    let mut a = Node::start(config("a"));
    a.engine
        .subscribe(key(1, "s"), &dest(q), Some(256), &mut out);
    for _ in 0..SENT {
        a.engine
            .offer(publish(q, vec![b'y'; BODY]))
            .expect("accepted");
    }
    a.collect(SENT, WAIT).await;
    // A dies holding every entry (768 KiB), unacknowledged.
    drop(a);

    let mut b = Node::start(config("b").max_held_bytes(BUDGET));
    b.engine
        .subscribe(key(2, "s"), &dest(q), Some(256), &mut out);
    // Several claim rounds: B claims up to its budget (and one entry past it), no more.
    let delivered = pump(&mut b, Duration::from_millis(1500)).await;
    let held = b.engine.metrics().held_bytes();
    assert!(held >= BUDGET, "held {held}: claimed short of the budget");
    assert!(
        held <= BUDGET + ENTRY && delivered.len() < SENT,
        "claimed {} entries, {held} bytes: past the budget",
        delivered.len()
    );
    assert!(delivered.iter().all(|d| d.redelivered));
    // ACKs release bytes: the rest is claimed.
    ack_until(&mut b, delivered, SENT).await;
}
