//! Selectors with the Redis engine: topic subscribers get only what they select (on a real
//! Redis, `WSX_TEST_REDIS_URL`); a selector on a queue is refused.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{Node, dest, key, redis_url, unique_prefix};
use wsx_stomp::{Engine, Headers, Publish, Selector};
use wsx_stomp_redis::Config;

const WAIT: Duration = Duration::from_secs(10);

fn typed(destination: &str, kind: &str, body: &'static str) -> Publish {
    let mut headers = Headers::new();
    headers.push("type", kind);
    Publish::new(
        dest(destination),
        headers,
        Bytes::from_static(body.as_bytes()),
    )
}

fn selector(text: &str) -> Option<Selector> {
    Some(Selector::parse(text).expect("valid selector"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selector_on_a_queue_is_refused() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut node = Node::start(Config::new(format!("redis://127.0.0.1:{port}")));
    let mut out = Vec::new();
    let refused = node.engine.subscribe_with_selector(
        key(1, "q"),
        &dest("/queue/jobs"),
        Some(10),
        selector("type = 'a'"),
        &mut out,
    );
    match refused {
        Err(wsx_stomp::Error::Unsupported(why)) => {
            assert!(why.contains("selectors on queues (/queue/jobs)"), "{why}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(node.engine.subscriber_count("/queue/jobs"), 0);
    // Without a selector, or on a topic, it subscribes.
    node.engine
        .subscribe_with_selector(key(1, "q"), &dest("/queue/jobs"), None, None, &mut out)
        .expect("no selector");
    node.engine
        .subscribe_with_selector(
            key(1, "t"),
            &dest("/topic/news"),
            None,
            selector("type = 'a'"),
            &mut out,
        )
        .expect("topic selector");
    assert_eq!(node.engine.subscriber_count("/queue/jobs"), 1);
    assert_eq!(node.engine.subscriber_count("/topic/news"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_subscribers_get_only_what_they_select() {
    let Some(url) = redis_url("topic_subscribers_get_only_what_they_select") else {
        return;
    };
    let prefix = unique_prefix("selector");
    let mut node = Node::start(Config::new(&url).prefix(&prefix));
    let mut out = Vec::new();
    let t = dest("/topic/events");
    node.engine
        .subscribe_with_selector(key(1, "s"), &t, None, None, &mut out)
        .expect("subscribes");
    node.engine
        .subscribe_with_selector(key(2, "s"), &t, Some(10), selector("type = 'a'"), &mut out)
        .expect("subscribes");
    node.engine
        .subscribe_with_selector(key(3, "s"), &t, None, selector("type != 'a'"), &mut out)
        .expect("subscribes");
    node.engine.flushed().await;
    for (kind, body) in [("a", "one"), ("b", "two"), ("a", "three")] {
        node.engine
            .offer(typed("/topic/events", kind, body))
            .expect("accepted");
    }
    let got = node.collect(6, WAIT).await;
    let seen: Vec<(u64, &[u8])> = got
        .iter()
        .map(|d| (d.subscriber.conn.0, &d.message.body()[..]))
        .collect();
    assert_eq!(
        seen,
        [
            (1, &b"one"[..]),
            (2, b"one"),
            (1, b"two"),
            (3, b"two"),
            (1, b"three"),
            (2, b"three"),
        ]
    );
    assert_eq!(node.engine.metrics().dropped(), 0);
}
