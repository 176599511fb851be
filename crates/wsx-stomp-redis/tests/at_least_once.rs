//! At least once with windowed consumers (`max_unacked: Some(n)`, what the sessions use for
//! `ack:auto` too, acknowledging once the frame is written): every message Redis confirmed
//! is delivered, and acknowledged in Redis only when the consumer ACKs, even when a consumer
//! holding unacknowledged messages goes away — it unsubscribes, or its whole node dies.
//! Real Redis (`WSX_TEST_REDIS_URL`).

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::{Node, dest, key, origin, publish, redis_url, unique_prefix};
use wsx_stomp::{Confirmation, Delivery, Engine};
use wsx_stomp_redis::Config;

const WAIT: Duration = Duration::from_secs(15);
const N: u64 = 300;
const WINDOW: usize = 4;
const QUEUE: &str = "/queue/alo";

fn body(d: &Delivery) -> String {
    String::from_utf8_lossy(d.message.body()).into_owned()
}

/// How the dropped consumer goes away.
#[derive(Clone, Copy, PartialEq)]
enum Gone {
    Unsubscribed,
    NodeDied,
}

async fn nothing_confirmed_is_lost(gone: Gone, test: &str) {
    let Some(url) = redis_url(test) else {
        return;
    };
    let prefix = unique_prefix(test);
    let config = |id: &str| {
        Config::new(&url)
            .prefix(&prefix)
            .node_id(id)
            .claim_timeout(Duration::from_millis(1000))
    };
    let mut slow = Node::start(config("slow"));
    let mut doomed = Some(Node::start(config("doomed")));
    let mut out = Vec::new();
    let (slow_key, doomed_key) = (key(1, "s"), key(2, "s"));
    slow.engine
        .subscribe(slow_key.clone(), &dest(QUEUE), Some(WINDOW), &mut out);
    if let Some(doomed) = doomed.as_mut() {
        doomed
            .engine
            .subscribe(doomed_key.clone(), &dest(QUEUE), Some(WINDOW), &mut out);
        doomed.engine.flushed().await;
    }
    slow.engine.flushed().await;
    for seq in 1..=N {
        slow.engine
            .offer_from(publish(QUEUE, format!("m{seq}")), origin(9, seq, QUEUE))
            .expect("accepted");
    }

    let mut acked: HashSet<String> = HashSet::new();
    let mut delivered_to_doomed = 0;
    let mut held_by_doomed: HashMap<String, ()> = HashMap::new();
    let mut redelivered_seen: HashSet<String> = HashSet::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while acked.len() < N as usize {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        assert!(!left.is_zero(), "only {} of {N} acknowledged", acked.len());
        let got = match doomed.as_mut() {
            Some(doomed) => tokio::select! {
                got = slow.next(left) => got.map(|d| (d, true)),
                got = doomed.next(left) => got.map(|d| (d, false)),
            },
            None => slow.next(left).await.map(|d| (d, true)),
        };
        let Some((deliveries, at_slow)) = got else {
            continue;
        };
        for d in deliveries {
            let b = body(&d);
            if at_slow {
                if d.redelivered {
                    redelivered_seen.insert(b.clone());
                }
                // Slow: one ACK at a time, after a moment.
                tokio::time::sleep(Duration::from_millis(1)).await;
                acked.insert(b);
                let mut more = Vec::new();
                slow.engine
                    .ack(&slow_key, &[d.message.id().clone()], &mut more);
                out.extend(more);
            } else {
                delivered_to_doomed += 1;
                if delivered_to_doomed <= 6
                    && let Some(doomed) = doomed.as_mut()
                {
                    acked.insert(b);
                    doomed
                        .engine
                        .ack(&doomed_key, &[d.message.id().clone()], &mut out);
                } else {
                    held_by_doomed.insert(b, ());
                }
            }
        }
        // Deliveries caused by ACKs (more room) are handled like the others.
        for d in std::mem::take(&mut out) {
            let b = body(&d);
            if d.subscriber == slow_key {
                if d.redelivered {
                    redelivered_seen.insert(b.clone());
                }
                acked.insert(b);
                let mut more = Vec::new();
                slow.engine
                    .ack(&slow_key, &[d.message.id().clone()], &mut more);
                out.extend(more);
            } else if doomed.is_some() {
                held_by_doomed.insert(b, ());
            }
        }
        if held_by_doomed.len() >= WINDOW
            && let Some(mut node) = doomed.take()
        {
            // Gone mid-way, holding a full window unacknowledged.
            if gone == Gone::Unsubscribed {
                node.engine.unsubscribe(&doomed_key, &mut out);
                node.engine.flushed().await;
            }
            drop(node);
        }
    }
    while slow.confirmations.len() < N as usize {
        assert!(slow.next(WAIT).await.is_some(), "every SEND confirmed");
    }
    assert!(
        slow.confirmations
            .iter()
            .all(|c| matches!(c, Confirmation::Stored(_)))
    );
    assert!(!held_by_doomed.is_empty(), "the doomed consumer held some");
    for b in held_by_doomed.keys() {
        assert!(acked.contains(b), "{b} lost");
        assert!(redelivered_seen.contains(b), "{b} not marked redelivered");
    }
    let all: HashSet<String> = (1..=N).map(|i| format!("m{i}")).collect();
    assert_eq!(acked, all);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_confirmed_is_lost_when_a_windowed_consumer_unsubscribes_mid_way() {
    nothing_confirmed_is_lost(Gone::Unsubscribed, "alo_unsubscribed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_confirmed_is_lost_when_a_windowed_consumers_node_dies_mid_way() {
    nothing_confirmed_is_lost(Gone::NodeDied, "alo_node_died").await;
}
