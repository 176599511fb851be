//! `wsx_stomp::StompClient` resuming a topic subscription on the real broker (in process, real
//! socket, through a proxy that cuts the connection): messages published while the client was
//! away arrive after it reconnects, once each and in order, with consecutive offsets, then live
//! ones. Needs the broker to number topic messages (`x-stream-offset`) and keep their history.

mod client_support;
mod common;

use std::time::Duration;

use client_support::{Proxy, WAIT, outage, recover};
use common::serve;
use wsx_broker::Broker;
use wsx_stomp::{Backoff, Headers, StompClient, Subscription};

async fn bodies_and_offsets(subscription: &mut Subscription, n: usize) -> Vec<(String, u64)> {
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        let message = tokio::time::timeout(WAIT, subscription.recv())
            .await
            .unwrap_or_else(|_| panic!("{} of {n} messages in time: {got:?}", got.len()))
            .expect("the client runs");
        assert!(!message.is_gap(), "{message:?}");
        let offset = message
            .offset()
            .unwrap_or_else(|| panic!("a topic message without x-stream-offset: {message:?}"));
        got.push((message.body_text().unwrap_or_default().to_owned(), offset));
    }
    got
}

/// Publish `tick-I` for each I of `range` to `/topic/ticks`, each confirmed.
async fn publish(publisher: &StompClient, range: std::ops::Range<u32>) {
    for i in range {
        publisher
            .send("/topic/ticks", Headers::new(), format!("tick-{i}"))
            .await
            .expect("confirmed");
    }
}

#[tokio::test]
async fn messages_published_while_the_client_was_away_arrive_once_in_order() {
    let broker = Broker::builder().build().expect("a broker");
    let addr = serve(broker.clone()).await;
    let proxy = Proxy::start(addr).await;
    let subscriber = StompClient::builder()
        .url(proxy.url())
        .backoff(Backoff::new(
            Duration::from_millis(20),
            Duration::from_millis(100),
        ))
        .connect()
        .await
        .expect("connected");
    let publisher = StompClient::builder()
        .url(format!("ws://{addr}/stomp"))
        .connect()
        .await
        .expect("connected");
    let mut ticks = subscriber
        .subscribe("/topic/ticks")
        .await
        .expect("subscribed");

    publish(&publisher, 0..10).await;
    let before = bodies_and_offsets(&mut ticks, 10).await;
    let first = before[0].1;

    // Away: the connection cut, new ones refused while 200 messages are published.
    outage(&proxy, &subscriber).await;
    publish(&publisher, 10..210).await;
    recover(&proxy, &subscriber).await;
    publisher
        .send("/topic/ticks", Headers::new(), "tick-210")
        .await
        .expect("confirmed");

    let mut all = before;
    all.extend(bodies_and_offsets(&mut ticks, 201).await);
    let expected: Vec<(String, u64)> = (0..211u64)
        .map(|i| (format!("tick-{i}"), first + i))
        .collect();
    assert_eq!(all, expected);
    assert_eq!(ticks.last_offset(), Some(first + 210));
}
