//! The application's own traffic over real sockets: `Broker::publish` to a topic,
//! `Broker::send_to_user` to every session of a principal, and in-process subscriptions
//! consuming a queue with ACK and NACK (redelivery) and a topic.

mod common;

use std::time::Duration;

use common::{Client, WAIT, body, serve};
use wsx_broker::{Broker, Error, InProcessSubscription, ReceivedMessage};
use wsx_stomp::Headers;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_and_send_to_user_reach_the_clients() {
    let broker = Broker::builder().build().expect("a broker");
    let addr = serve(broker.clone()).await;
    let mut news = Client::connect(addr, "reader").await;
    news.subscribe("n", "/topic/news").await;
    let mut alice_1 = Client::connect(addr, "alice").await;
    alice_1.subscribe("u", "/user/queue/notes").await;
    let mut alice_2 = Client::connect(addr, "alice").await;
    alice_2.subscribe("u", "/user/queue/notes").await;
    let mut bob = Client::connect(addr, "bob").await;
    bob.subscribe("u", "/user/queue/notes").await;

    let mut headers = Headers::new();
    headers.push("x-kind", "flash");
    broker
        .publish("/topic/news", headers, "extra")
        .expect("published");
    let message = news.frame().await;
    assert_eq!(message.header("x-kind"), Some("flash"));
    assert_eq!(body(&message), "extra");
    assert_eq!(message.header("user-id"), None, "no session: no user-id");

    broker
        .send_to_user("alice", "/queue/notes", Headers::new(), "for alice")
        .expect("sent");
    for alice in [&mut alice_1, &mut alice_2] {
        let message = alice.frame().await;
        assert_eq!(message.header("destination"), Some("/user/queue/notes"));
        assert_eq!(body(&message), "for alice");
    }
    assert!(
        bob.frame_within(Duration::from_millis(200)).await.is_none(),
        "bob gets nothing"
    );

    for bad in ["/app/greet", "/nowhere", "/user/queue/notes"] {
        assert!(
            matches!(
                broker.publish(bad, Headers::new(), "x"),
                Err(Error::Refused(_))
            ),
            "{bad}"
        );
    }
    assert!(
        broker
            .send_to_user("a/b", "/queue/x", Headers::new(), "x")
            .is_err()
    );
}

/// The next message of `subscription`; panics if none comes in time.
async fn next(subscription: &mut InProcessSubscription) -> ReceivedMessage {
    tokio::time::timeout(WAIT, subscription.next())
        .await
        .expect("a message in time")
        .expect("the subscription runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_process_consumer_acks_and_nacks_queue_messages() {
    let broker = Broker::builder().build().expect("a broker");
    let addr = serve(broker.clone()).await;
    let mut jobs = broker.subscribe("/queue/jobs").expect("subscribed");
    let mut producer = Client::connect(addr, "producer").await;
    producer
        .send_to("/queue/jobs", "job-1", &[("receipt", "1")])
        .await;
    producer
        .send_to("/queue/jobs", "job-2", &[("receipt", "2")])
        .await;
    assert_eq!(producer.frames(2).await.len(), 2);

    let first = next(&mut jobs).await;
    assert_eq!(first.body_str(), Some("job-1"));
    assert_eq!(first.destination, "/queue/jobs");
    assert!(!first.redelivered());
    assert_eq!(first.headers.get("user-id"), None);
    let second = next(&mut jobs).await;
    assert_eq!(second.body_str(), Some("job-2"));
    // Give job-1 back: it comes again, marked redelivered.
    first.nack();
    second.ack();
    let again = next(&mut jobs).await;
    assert_eq!(again.body_str(), Some("job-1"));
    assert!(again.redelivered());
    again.ack();

    // Everything acknowledged: a client consumer gets nothing once the in-process one goes.
    drop(jobs);
    let mut consumer = Client::connect(addr, "consumer").await;
    consumer.subscribe("q", "/queue/jobs").await;
    assert!(
        consumer
            .frame_within(Duration::from_millis(200))
            .await
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unacknowledged_message_goes_to_another_consumer_when_the_subscription_ends() {
    let broker = Broker::builder().build().expect("a broker");
    let addr = serve(broker.clone()).await;
    let mut jobs = broker.subscribe("/queue/work").expect("subscribed");
    broker
        .publish("/queue/work", Headers::new(), "w1")
        .expect("published");
    let held = next(&mut jobs).await;
    assert_eq!(held.body_str(), Some("w1"));
    drop(held);
    drop(jobs);
    let mut consumer = Client::connect(addr, "consumer").await;
    consumer.subscribe("q", "/queue/work").await;
    let message = consumer.frame().await;
    assert_eq!(body(&message), "w1");
    assert_eq!(message.header("redelivered"), Some("true"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_process_consumer_of_a_topic_and_refused_subscriptions() {
    let broker = Broker::builder().build().expect("a broker");
    let addr = serve(broker.clone()).await;
    let mut events = broker.subscribe("/topic/events").expect("subscribed");
    let mut client = Client::connect(addr, "sender").await;
    for i in 0..3 {
        client.send_to("/topic/events", &format!("e{i}"), &[]).await;
    }
    for i in 0..3 {
        let message = next(&mut events).await;
        assert_eq!(message.body_str(), Some(format!("e{i}").as_str()));
        assert!(message.headers.get("message-id").is_some());
        message.ack();
    }
    assert!(events.end_reason().is_none());
    for bad in ["/app/x", "/nowhere", "/user/alice/queue/x"] {
        assert!(
            matches!(broker.subscribe(bad), Err(Error::Refused(_))),
            "{bad}"
        );
    }
    // The broker shuts down: the subscription ends.
    broker.close_sessions();
    assert!(
        tokio::time::timeout(WAIT, events.next())
            .await
            .expect("ends in time")
            .is_none()
    );
    assert_eq!(events.end_reason(), Some("server shutting down"));
}
