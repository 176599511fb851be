//! `wsx_stomp::StompClient` (feature `client`) against the real broker, in process, on a real
//! socket: sends confirmed by RECEIPT reach topic and queue subscribers, acknowledgements work,
//! and after the connection is cut (through a proxy) the client reconnects with backoff,
//! resubscribes, and its subscriptions get what is published next. Resuming what was published
//! during the outage is tested in `stomp_client_resume.rs`.

mod client_support;
mod common;

use std::sync::Arc;
use std::time::Duration;

use client_support::{Proxy, next, outage, recover};
use common::serve;
use wsx_broker::Broker;
use wsx_stomp::{AckMode, Backoff, Headers, StompClient, SubscribeOptions, Subscription};

fn broker() -> Arc<Broker> {
    Broker::builder().build().expect("a broker")
}

async fn client(url: String) -> StompClient {
    StompClient::builder()
        .url(url)
        .login("tester")
        .backoff(Backoff::new(
            Duration::from_millis(20),
            Duration::from_millis(200),
        ))
        .connect()
        .await
        .expect("connected")
}

/// Nothing more arrives for `subscription` within a moment.
async fn nothing_more(subscription: &mut Subscription) {
    if let Ok(message) = tokio::time::timeout(Duration::from_millis(200), subscription.recv()).await
    {
        panic!("unexpected {message:?}");
    }
}

#[tokio::test]
async fn sends_are_confirmed_and_reach_topic_and_queue_subscribers() {
    let addr = serve(broker()).await;
    let client = client(format!("ws://{addr}/stomp")).await;
    let mut news = client.subscribe("/topic/news").await.expect("subscribed");
    let mut jobs = client
        .subscribe_with(
            "/queue/jobs",
            SubscribeOptions::new().ack(AckMode::ClientIndividual),
        )
        .await
        .expect("subscribed");

    let mut headers = Headers::new();
    headers.push("x-kind", "flash");
    client
        .send("/topic/news", headers, "extra!")
        .await
        .expect("confirmed");
    let message = next(&mut news).await;
    assert_eq!(message.destination(), "/topic/news");
    assert_eq!(message.header("x-kind"), Some("flash"));
    assert_eq!(message.body_text(), Some("extra!"));

    for job in ["one", "two"] {
        client
            .send("/queue/jobs", Headers::new(), job)
            .await
            .expect("confirmed");
    }
    let one = next(&mut jobs).await;
    assert_eq!(one.body_text(), Some("one"));
    client.ack(&one).await.expect("acknowledged");
    let two = next(&mut jobs).await;
    assert_eq!(
        (two.body_text(), two.is_redelivered()),
        (Some("two"), false)
    );
    client.nack(&two).await.expect("refused");
    let again = next(&mut jobs).await;
    assert_eq!(
        (again.body_text(), again.is_redelivered()),
        (Some("two"), true)
    );
    client.ack(&again).await.expect("acknowledged");
    nothing_more(&mut jobs).await;
    client.disconnect().await;
}

#[tokio::test]
async fn after_a_cut_the_client_reconnects_and_resubscribes() {
    let broker = broker();
    let proxy = Proxy::start(serve(broker.clone()).await).await;
    let client = client(proxy.url()).await;
    let mut news = client.subscribe("/topic/news").await.expect("subscribed");
    let mut jobs = client.subscribe("/queue/jobs").await.expect("subscribed");
    client
        .send("/topic/news", Headers::new(), "before")
        .await
        .expect("confirmed");
    assert_eq!(next(&mut news).await.body_text(), Some("before"));

    // The outage: connections cut, new ones refused for a few attempts.
    outage(&proxy, &client).await;
    let error = client
        .send("/topic/news", Headers::new(), "meanwhile")
        .await
        .expect_err("not connected");
    assert!(error.to_string().contains("not connected"), "{error}");
    recover(&proxy, &client).await;

    // Both subscriptions were made again.
    client
        .send("/topic/news", Headers::new(), "after")
        .await
        .expect("confirmed");
    client
        .send("/queue/jobs", Headers::new(), "job")
        .await
        .expect("confirmed");
    assert_eq!(next(&mut news).await.body_text(), Some("after"));
    assert_eq!(next(&mut jobs).await.body_text(), Some("job"));
    nothing_more(&mut news).await;
}
