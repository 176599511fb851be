//! `Broker::publish_with_offset`: a server-side topic publish answers the offset the message
//! got, once stored — in memory, and on a node sharing Redis (`WSX_TEST_REDIS_URL`, skipped
//! without it outside CI) — and a WebSocket subscriber sees that offset as `x-stream-offset`.

mod common;

use common::{Client, body, redis_url, serve, unique_prefix};
use wsx_broker::{Broker, BrokerOptions, BrokerUrl, Error, RedisSettings};
use wsx_stomp::Headers;

async fn offsets_reach_the_subscriber(broker: std::sync::Arc<Broker>) {
    let addr = serve(broker.clone()).await;
    let mut reader = Client::connect(addr, "reader").await;
    reader.subscribe("p", "/topic/prices").await;
    let mut offsets = Vec::new();
    for i in 0..3 {
        let offset = broker
            .publish_with_offset("/topic/prices", Headers::new(), format!("p{i}"))
            .await
            .expect("stored");
        offsets.push(offset);
    }
    assert!(offsets[0] >= 1);
    assert_eq!(offsets[1], offsets[0] + 1);
    assert_eq!(offsets[2], offsets[0] + 2);
    // With Redis the subscription may go live after the first publishes: compare what came.
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let frame = reader.frame().await;
        let offset: u64 = frame
            .header("x-stream-offset")
            .and_then(|o| o.parse().ok())
            .expect("x-stream-offset");
        seen.push((offset, body(&frame).to_owned()));
        if body(&frame) == "p2" {
            break;
        }
    }
    for (offset, text) in seen {
        let i: usize = text[1..].parse().expect("p{i}");
        assert_eq!(offset, offsets[i], "{text}");
    }
    let refused = broker
        .publish_with_offset("/queue/jobs", Headers::new(), "x")
        .await;
    assert!(matches!(refused, Err(Error::Refused(_))), "{refused:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_side_topic_publish_answers_its_offset_in_memory() {
    let broker = Broker::builder().build().expect("a broker");
    offsets_reach_the_subscriber(broker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_side_topic_publish_answers_its_offset_with_redis() {
    let Some(url) = redis_url("a_server_side_topic_publish_answers_its_offset_with_redis") else {
        return;
    };
    let broker_url: BrokerUrl = url.parse().expect("a Redis URL");
    let options = BrokerOptions {
        broker: &broker_url,
        redis: RedisSettings {
            prefix: unique_prefix("publish_offset"),
            ..RedisSettings::default()
        },
        ..BrokerOptions::default()
    };
    let broker = Broker::builder().options(options).build().expect("a node");
    offsets_reach_the_subscriber(broker).await;
}
