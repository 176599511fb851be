//! The Rust STOMP client (`wsx_stomp::StompClient`) resuming across a node kill: two
//! `wsx serve` nodes on one Redis, a subscriber on node A that also knows node B, node A
//! killed with SIGKILL while messages are published on B. The client reconnects to B,
//! resubscribes with `x-stream-offset:offset=<last handed + 1>` and gets every message once,
//! in order, with consecutive offsets, then live ones.
//!
//! Needs topic offsets and history in the broker (`x-stream-offset` on MESSAGE, resume on
//! SUBSCRIBE). Redis: `WSX_TEST_REDIS_URL`; without it the test prints a skip line (and fails
//! under `CI=true`).

mod common;

use std::time::Duration;

use common::{Server, WAIT, redis_url, unique_prefix};
use wsx_stomp::{
    Backoff, ConnectionState, Headers, StartOffset, StompClient, SubscribeOptions, Subscription,
};

/// How many messages are published in all; node A dies once the subscriber has handed over
/// [`KILL_AFTER`] of them.
const TOTAL: usize = 400;
const KILL_AFTER: usize = 100;

/// The next message's body and offset (a topic message must have one, and no gap).
async fn next(subscription: &mut Subscription) -> (String, u64) {
    let message = tokio::time::timeout(WAIT, subscription.recv())
        .await
        .expect("a message in time")
        .expect("the client runs");
    assert!(!message.is_gap(), "{message:?}");
    let offset = message
        .offset()
        .unwrap_or_else(|| panic!("a topic message without x-stream-offset: {message:?}"));
    (message.body_text().unwrap_or_default().to_owned(), offset)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_resumes_on_node_b_after_node_a_is_killed() {
    let Some(redis) = redis_url("the_client_resumes_on_node_b_after_node_a_is_killed") else {
        return;
    };
    let prefix = unique_prefix("client-failover");
    let [mut a, b] = ["client-a", "client-b"].map(|name| {
        let shared = ["--broker", &redis, "--redis-prefix", &prefix];
        Server::start(&[&shared[..], &["--node-id", name]].concat())
    });
    let (url_a, url_b) = (a.ws_url("/stomp"), b.ws_url("/stomp"));

    let subscriber = StompClient::builder()
        .url(url_a.as_str())
        .url(url_b.as_str())
        .login("subscriber")
        .backoff(Backoff::new(
            Duration::from_millis(20),
            Duration::from_millis(200),
        ))
        .connect()
        .await
        .expect("connected");
    assert_eq!(
        *subscriber.state().borrow(),
        ConnectionState::Connected {
            url: url_a.clone(),
            connection: 1
        }
    );
    // From the first message of a fresh topic: nothing published is missed, whenever node A's
    // subscription reaches Redis.
    let mut ticks = subscriber
        .subscribe_with(
            "/topic/failover",
            SubscribeOptions::new().start(StartOffset::First),
        )
        .await
        .expect("subscribed");

    let publisher = StompClient::builder()
        .url(url_b.as_str())
        .login("publisher")
        .connect()
        .await
        .expect("connected");
    let publishing = tokio::spawn({
        let publisher = publisher.clone();
        async move {
            for i in 0..TOTAL {
                publisher
                    .send("/topic/failover", Headers::new(), format!("tick-{i}"))
                    .await
                    .expect("confirmed by node B");
            }
        }
    });

    let mut got = Vec::with_capacity(TOTAL + 1);
    while got.len() < KILL_AFTER {
        got.push(next(&mut ticks).await);
    }
    a.kill();
    while got.len() < TOTAL {
        got.push(next(&mut ticks).await);
    }
    publishing.await.expect("the publisher");
    match &*subscriber.state().borrow() {
        ConnectionState::Connected { url, connection } => {
            assert_eq!(url, &url_b);
            assert!(*connection >= 2, "{connection}");
        }
        other => panic!("not connected to node B: {other:?}"),
    }
    // Live messages follow the resumed ones.
    publisher
        .send("/topic/failover", Headers::new(), format!("tick-{TOTAL}"))
        .await
        .expect("confirmed");
    got.push(next(&mut ticks).await);

    let first = got[0].1;
    let expected: Vec<(String, u64)> = (0..=TOTAL as u64)
        .map(|i| (format!("tick-{i}"), first + i))
        .collect();
    assert_eq!(got, expected, "every message once, in order");
    subscriber.disconnect().await;
    publisher.disconnect().await;
}
