//! A node whose last consumer of a queue leaves gives back every entry it held or was still
//! fetching before `RedisEngine::flushed` resolves: another node gets them at once, not after
//! the claim timeout. Its own test binary: many rounds, timing-sensitive.

mod common;

use std::time::Duration;

use common::{Node, dest, key, pending_at, publish, redis_url, unique_prefix};
use wsx_stomp::Engine;
use wsx_stomp_redis::Config;

const WAIT: Duration = Duration::from_secs(10);

/// The only consumer of a queue on node A holds unacknowledged messages and leaves (its
/// reader still blocked in Redis with credit to spare, so it could take the copies given
/// back). Once `flushed()` resolves nothing is pending at A any more — whether or not A's
/// events are still handled meanwhile — and B's consumer gets every message at once, far
/// under the claim timeout. Repeated to catch the race between the requeue and the reader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaving_consumer_hands_everything_over_once_flushed() {
    let Some(url) = redis_url("a_leaving_consumer_hands_everything_over_once_flushed") else {
        return;
    };
    const ROUNDS: usize = 24;
    const HELD: usize = 3;
    let prefix = unique_prefix("handover");
    let config = |id: &str| {
        Config::new(&url)
            .prefix(&prefix)
            .node_id(id)
            .claim_timeout(Duration::from_secs(30))
    };
    let mut b = Node::start(config("b"));
    let mut out = Vec::new();
    for round in 0..ROUNDS {
        let queue = format!("/queue/handover{round}");
        let stream = format!("{prefix}q:handover{round}");
        let node_a = format!("a{round}");
        let mut a = Node::start(config(&node_a));
        // Room for more than it gets: A's reader stays blocked in XREADGROUP with credit.
        a.engine
            .subscribe(key(1, "s"), &dest(&queue), Some(10), &mut out);
        for i in 0..HELD {
            a.engine
                .offer(publish(&queue, format!("r{round}-m{i}")))
                .expect("accepted");
        }
        let held = a.collect(HELD, WAIT).await;
        let mut held: Vec<String> = held
            .iter()
            .map(|d| String::from_utf8_lossy(d.message.body()).into_owned())
            .collect();
        held.sort();
        b.engine
            .subscribe(key(2, "s"), &dest(&queue), Some(10), &mut out);
        b.engine.flushed().await;

        a.engine.unsubscribe(&key(1, "s"), &mut out);
        assert!(out.is_empty());
        let flushed = a.engine.flushed();
        if round % 2 == 0 {
            // Like `wsx serve`: A's events are still handled until the flush is done.
            tokio::pin!(flushed);
            loop {
                tokio::select! {
                    () = &mut flushed => break,
                    event = a.events.recv() => {
                        let event = event.expect("engine alive");
                        let mut got = Vec::new();
                        a.engine.handle_event(event, &mut got, &mut Vec::new());
                        assert!(got.is_empty(), "no local consumer left: {got:?}");
                    }
                }
            }
        } else {
            // A's events are no longer handled (a node stopping).
            tokio::time::timeout(WAIT, flushed)
                .await
                .expect("flushed in time");
        }
        assert_eq!(
            pending_at(&url, &stream, &node_a).await,
            0,
            "round {round}: entries still pending at the node that left"
        );
        drop(a);

        let got = b.collect(HELD, Duration::from_secs(5)).await;
        let mut bodies: Vec<String> = got
            .iter()
            .map(|d| String::from_utf8_lossy(d.message.body()).into_owned())
            .collect();
        bodies.sort();
        assert_eq!(bodies, held, "round {round}");
        assert!(got.iter().all(|d| d.redelivered), "round {round}: {got:?}");
        let ids: Vec<_> = got.iter().map(|d| d.message.id().clone()).collect();
        b.engine.ack(&key(2, "s"), &ids, &mut out);
        b.engine.unsubscribe(&key(2, "s"), &mut out);
        b.engine.flushed().await;
        assert!(out.is_empty());
        assert_eq!(pending_at(&url, &stream, "b").await, 0, "round {round}");
    }
}
