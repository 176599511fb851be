//! A resuming STOMP client: subscribes to a topic, publishes a tick to it every second, and
//! prints what it receives (with offsets) and every connection state change. Kill and restart
//! the server (or one of several nodes) to watch it reconnect and resume.
//!
//! ```text
//! wsx serve --listen 127.0.0.1:8080 &
//! cargo run -p wsx-stomp --features client --example stomp_client -- \
//!     ws://127.0.0.1:8080/stomp [ws://127.0.0.1:8081/stomp …]
//! ```
//!
//! The topic is `/topic/demo` unless `STOMP_TOPIC` says otherwise.

use std::time::Duration;

use wsx_stomp::{Backoff, ConnectionState, Headers, StompClient};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut urls: Vec<String> = std::env::args().skip(1).collect();
    if urls.is_empty() {
        urls.push("ws://127.0.0.1:8080/stomp".to_owned());
    }
    let topic = std::env::var("STOMP_TOPIC").unwrap_or_else(|_| "/topic/demo".to_owned());

    let mut builder = StompClient::builder()
        .login("example")
        .heart_beat(Duration::from_secs(5), Duration::from_secs(5))
        .backoff(Backoff::new(
            Duration::from_millis(200),
            Duration::from_secs(5),
        ));
    for url in &urls {
        builder = builder.url(url);
    }
    let client = builder.connect().await?;
    println!("connected to {}", urls.join(" or "));

    let mut state = client.state();
    tokio::spawn(async move {
        while state.changed().await.is_ok() {
            let now = state.borrow_and_update().clone();
            println!("state: {now:?}");
            if now == ConnectionState::Closed {
                break;
            }
        }
    });

    let mut subscription = client.subscribe(&topic).await?;
    let publisher = client.clone();
    let publish_to = topic.clone();
    tokio::spawn(async move {
        for tick in 0u64.. {
            let body = format!("tick {tick}");
            match publisher.send(&publish_to, Headers::new(), body).await {
                Ok(()) => {}
                Err(e) => println!("tick {tick} not confirmed: {e}"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });

    while let Some(message) = subscription.recv().await {
        let offset = message
            .offset()
            .map_or_else(|| "-".to_owned(), |offset| offset.to_string());
        let gap = if message.is_gap() {
            " (gap before)"
        } else {
            ""
        };
        println!(
            "{} #{offset}{gap}: {}",
            message.destination(),
            message.body_text().unwrap_or("<binary>")
        );
    }
    Ok(())
}
