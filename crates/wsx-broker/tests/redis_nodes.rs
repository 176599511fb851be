//! Two broker nodes sharing one Redis (`WSX_TEST_REDIS_URL`, each test under its own key
//! prefix; skipped without it outside CI): a user destination sent on node A reaches the
//! principal's sessions on A and B; an app handler on A publishing to a topic reaches a
//! subscriber on B; an in-process subscription on B consumes a queue message sent on A.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Client, body, redis_url, serve, unique_prefix};
use wsx_broker::{AppMessage, Broker, BrokerOptions, BrokerUrl, RedisSettings};
use wsx_stomp::{Frame, Headers};

/// A node of the broker at `url` under `prefix`, with an `/app/shout` route publishing the
/// body to `/topic/shouts`.
fn node(url: &str, prefix: &str) -> Arc<Broker> {
    let broker_url: BrokerUrl = url.parse().expect("a Redis URL");
    let options = BrokerOptions {
        broker: &broker_url,
        redis: RedisSettings {
            prefix: prefix.to_owned(),
            ..RedisSettings::default()
        },
        ..BrokerOptions::default()
    };
    Broker::builder()
        .options(options)
        .route("/app/shout", |message: AppMessage| async move {
            let text = message.body_str().unwrap_or_default().to_owned();
            message.publish("/topic/shouts", Headers::new(), text)?;
            Ok(())
        })
        .build()
        .expect("a node")
}

/// Send `warmup-N` with `send` until every client got one: the nodes' Redis subscriptions
/// are then in place.
async fn warm_up(send: impl Fn(usize), clients: &mut [&mut Client]) {
    let mut warm = vec![false; clients.len()];
    for i in 0.. {
        assert!(i < 200, "the nodes never got the warm-up messages");
        send(i);
        for (client, warm) in clients.iter_mut().zip(&mut warm) {
            while !*warm {
                match client.frame_within(Duration::from_millis(50)).await {
                    Some(frame) if body(&frame).starts_with("warmup-") => *warm = true,
                    Some(frame) => panic!("unexpected {frame:?}"),
                    None => break,
                }
            }
        }
        if warm.iter().all(|w| *w) {
            return;
        }
    }
}

/// The next frame that is not a warm-up message.
async fn real_frame(client: &mut Client) -> Frame {
    loop {
        let frame = client.frame().await;
        if !body(&frame).starts_with("warmup-") {
            return frame;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_destination_reaches_the_principal_on_both_nodes() {
    let Some(url) = redis_url("a_user_destination_reaches_the_principal_on_both_nodes") else {
        return;
    };
    let prefix = unique_prefix("user_dest");
    let (a, b) = (node(&url, &prefix), node(&url, &prefix));
    let (addr_a, addr_b) = (serve(a.clone()).await, serve(b.clone()).await);
    let mut alice_a = Client::connect(addr_a, "alice").await;
    let mut alice_b = Client::connect(addr_b, "alice").await;
    let mut bob_b = Client::connect(addr_b, "bob").await;
    for client in [&mut alice_a, &mut alice_b, &mut bob_b] {
        client.subscribe("n", "/user/queue/notes").await;
    }
    let sender = a.clone();
    warm_up(
        move |i| {
            sender
                .send_to_user(
                    "alice",
                    "/queue/notes",
                    Headers::new(),
                    format!("warmup-{i}"),
                )
                .expect("sent");
        },
        &mut [&mut alice_a, &mut alice_b],
    )
    .await;
    a.send_to_user("alice", "/queue/notes", Headers::new(), "hello alice")
        .expect("sent");
    for alice in [&mut alice_a, &mut alice_b] {
        let frame = real_frame(alice).await;
        assert_eq!(frame.header("destination"), Some("/user/queue/notes"));
        assert_eq!(body(&frame), "hello alice");
    }
    // A client's SEND to another principal's user destination (allowed: no JWT) too.
    bob_b
        .send_to("/user/alice/queue/notes", "from bob", &[("receipt", "r")])
        .await;
    assert_eq!(bob_b.frame().await.header("receipt-id"), Some("r"));
    for alice in [&mut alice_a, &mut alice_b] {
        assert_eq!(body(&real_frame(alice).await), "from bob");
    }
    assert!(
        bob_b
            .frame_within(Duration::from_millis(200))
            .await
            .is_none(),
        "bob gets none of alice's messages"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_handler_on_one_node_publishes_to_the_other() {
    let Some(url) = redis_url("an_app_handler_on_one_node_publishes_to_the_other") else {
        return;
    };
    let prefix = unique_prefix("app_route");
    let (a, b) = (node(&url, &prefix), node(&url, &prefix));
    let (addr_a, addr_b) = (serve(a.clone()).await, serve(b).await);
    let mut listener = Client::connect(addr_b, "listener").await;
    listener.subscribe("s", "/topic/shouts").await;
    let publisher = a.clone();
    warm_up(
        move |i| {
            publisher
                .publish("/topic/shouts", Headers::new(), format!("warmup-{i}"))
                .expect("published");
        },
        &mut [&mut listener],
    )
    .await;
    let mut shouter = Client::connect(addr_a, "shouter").await;
    shouter
        .send_to("/app/shout", "hey there", &[("receipt", "r")])
        .await;
    assert_eq!(shouter.frame().await.header("receipt-id"), Some("r"));
    let frame = real_frame(&mut listener).await;
    assert_eq!(frame.header("destination"), Some("/topic/shouts"));
    assert_eq!(body(&frame), "hey there");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_process_consumer_on_one_node_gets_a_queue_message_sent_on_the_other() {
    let Some(url) =
        redis_url("an_in_process_consumer_on_one_node_gets_a_queue_message_sent_on_the_other")
    else {
        return;
    };
    let prefix = unique_prefix("in_process");
    let (a, b) = (node(&url, &prefix), node(&url, &prefix));
    let addr_a = serve(a).await;
    let mut work = b.subscribe("/queue/work").expect("subscribed");
    let mut producer = Client::connect(addr_a, "producer").await;
    producer
        .send_to("/queue/work", "task-1", &[("receipt", "r")])
        .await;
    assert_eq!(producer.frame().await.header("receipt-id"), Some("r"));
    let message = tokio::time::timeout(common::WAIT, work.next())
        .await
        .expect("in time")
        .expect("a message");
    assert_eq!(message.body_str(), Some("task-1"));
    message.ack();
}
