//! Redis drops every connection of the engines mid-stream (`CLIENT KILL TYPE normal` and
//! `TYPE pubsub`): the engines reconnect, resubscribe, and traffic resumes; a queue SEND made
//! while the connections were down is still delivered. Its own test binary: it kills every
//! client of the server, which must not hit the other tests.

mod common;

use std::time::Duration;

use common::{Node, dest, key, publish, redis_url, unique_prefix};
use wsx_stomp::Engine;
use wsx_stomp_redis::Config;

const WAIT: Duration = Duration::from_secs(15);

async fn kill_all_clients(url: &str) {
    let client = redis::Client::open(url).expect("url");
    let mut admin = client
        .get_multiplexed_async_connection()
        .await
        .expect("admin connection");
    for kind in ["normal", "pubsub"] {
        let killed: i64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("TYPE")
            .arg(kind)
            .query_async(&mut admin)
            .await
            .expect("CLIENT KILL");
        eprintln!("killed {killed} {kind} connections");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engines_reconnect_and_traffic_resumes() {
    let Some(url) = redis_url("engines_reconnect_and_traffic_resumes") else {
        return;
    };
    let prefix = unique_prefix("reconnect");
    let mut a = Node::start(Config::new(&url).prefix(&prefix).node_id("a"));
    let mut b = Node::start(Config::new(&url).prefix(&prefix).node_id("b"));
    let mut out = Vec::new();
    b.engine
        .subscribe(key(1, "t"), &dest("/topic/live"), None, &mut out);
    b.engine
        .subscribe(key(1, "q"), &dest("/queue/live"), None, &mut out);
    b.engine.flushed().await;

    // Traffic flows before.
    a.engine
        .offer(publish("/topic/live", "before"))
        .expect("accepted");
    a.engine
        .offer(publish("/queue/live", "q-before"))
        .expect("accepted");
    let got = b.collect(2, WAIT).await;
    let mut bodies: Vec<&[u8]> = got.iter().map(|d| &d.message.body()[..]).collect();
    bodies.sort();
    assert_eq!(bodies, [&b"before"[..], &b"q-before"[..]]);

    kill_all_clients(&url).await;

    // A queue SEND right after the kill is written once A reconnects and reaches B.
    a.engine
        .offer(publish("/queue/live", "q-after"))
        .expect("accepted");
    let mut queue_done = false;
    let mut topic_done = false;
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut n = 0;
    // Topics are at-most-once: publish until one arrives (the subscription is back).
    while !(queue_done && topic_done) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "traffic did not resume (queue {queue_done}, topic {topic_done})"
        );
        if !topic_done {
            n += 1;
            a.engine
                .offer(publish("/topic/live", format!("after{n}")))
                .expect("accepted");
        }
        while let Some(out) = b.next(Duration::from_millis(200)).await {
            for d in out {
                let body = &d.message.body()[..];
                if body == b"q-after" {
                    assert!(!queue_done, "queue message delivered twice");
                    queue_done = true;
                } else if body.starts_with(b"after") {
                    topic_done = true;
                } else {
                    panic!("unexpected {:?}", String::from_utf8_lossy(body));
                }
            }
            if queue_done && topic_done {
                break;
            }
        }
    }
    // Redis loses the queue (stream and group, as after a restart without persistence): the
    // reader recreates the group and new messages flow again.
    let client = redis::Client::open(url.as_str()).expect("url");
    let mut admin = client
        .get_multiplexed_async_connection()
        .await
        .expect("admin connection");
    let removed: i64 = redis::cmd("DEL")
        .arg(format!("{prefix}q:live"))
        .query_async(&mut admin)
        .await
        .expect("DEL");
    assert_eq!(removed, 1);
    a.engine
        .offer(publish("/queue/live", "q-recreated"))
        .expect("accepted");
    let got = b.collect(1, WAIT).await;
    assert_eq!(&got[0].message.body()[..], b"q-recreated");

    assert!(a.engine.metrics().reconnects() >= 1);
    assert!(b.engine.metrics().reconnects() >= 2, "pub/sub and reader");
    assert!(a.engine.metrics().connected());
    assert_eq!(a.engine.metrics().send_failures(), 0);
}
