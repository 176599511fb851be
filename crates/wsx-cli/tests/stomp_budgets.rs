//! End-to-end regression tests of what a STOMP client can make `wsx serve` hold through what it
//! sends (issue 12): a long subscription id, a transaction of header-only SENDs, a queue filled
//! past its byte budget. Each attack is answered with an ERROR naming the limit, the server's
//! memory stays bounded (RSS read from `/proc/PID/status`) and another client is still served.

mod common;

use common::{Client, Server};
use wsx_stomp::{Command, Frame};

/// The most a test attack may grow the server's resident memory.
const MAX_RSS_GROWTH_KB: u64 = 64 << 10;

/// A second client, connected before the attack: it must still be served after it.
async fn still_served(bystander: &mut Client, destination: &str) {
    bystander
        .subscribe("after", "/topic/bystander", "auto")
        .await;
    bystander.publish_confirmed(destination, "still-here").await;
    bystander.publish("/topic/bystander", "hello", &[]).await;
    assert_eq!(bystander.message_body().await, "hello");
}

/// Send `frame` with receipt `receipt`: `None` once its RECEIPT arrived, or the `message` of
/// the ERROR that came instead (the connection then closes).
async fn send_or_error(client: &mut Client, frame: Frame, receipt: &str) -> Option<String> {
    client.send(frame.with_header("receipt", receipt)).await;
    let answer = client.frame().await;
    match answer.command {
        Command::Receipt => {
            assert_eq!(answer.header("receipt-id"), Some(receipt));
            None
        }
        Command::Error => {
            let message = answer.header("message").unwrap_or_default().to_owned();
            let close = client.expect_closed().await;
            assert!(close.is_some(), "a close frame after the ERROR");
            Some(message)
        }
        other => panic!("expected RECEIPT or ERROR, got {other}"),
    }
}

/// Send the frames `make` returns for 0, 1, 2… (each with a receipt) until one is answered
/// with an ERROR, at most `max`: how many were accepted, and the ERROR's message.
async fn send_until_error(
    client: &mut Client,
    max: usize,
    mut make: impl FnMut(usize) -> Frame,
) -> (usize, String) {
    for n in 0..max {
        if let Some(message) = send_or_error(client, make(n), &format!("r{n}")).await {
            return (n, message);
        }
    }
    panic!("no ERROR after {max} frames");
}

/// Open a transaction, then send header-only SENDs in it (`n` headers of `len` bytes) until
/// the ERROR, at most `max`: how many were accepted, the ERROR's message, and how much the
/// server's RSS grew meanwhile (KiB).
async fn fill_transaction(
    server: &Server,
    client: &mut Client,
    n: usize,
    len: usize,
    max: usize,
) -> (usize, String, u64) {
    let before = server.rss_kib();
    client
        .send(Frame::new(Command::Begin).with_header("transaction", "t"))
        .await;
    let (sent, error) = send_until_error(client, max, |_| header_only_send("t", n, len)).await;
    (sent, error, server.rss_kib().saturating_sub(before))
}

/// A header-only SEND in transaction `tx`: `n` custom headers of `len` bytes each.
fn header_only_send(tx: &str, n: usize, len: usize) -> Frame {
    let mut frame = Frame::new(Command::Send)
        .with_header("destination", "/topic/sink")
        .with_header("transaction", tx);
    for i in 0..n {
        frame = frame.with_header(format!("h{i}"), "v".repeat(len));
    }
    frame
}

/// Issue 12, row 1: SUBSCRIBE with 8,000-byte ids (written back on every MESSAGE) was
/// accepted; now the first one is an ERROR naming the limit.
#[tokio::test]
async fn a_long_subscription_id_is_an_error() {
    let server = Server::start(&[]);
    let mut bystander = Client::connect_anonymous(&server, "bystander").await;
    let mut attacker = Client::connect_anonymous(&server, "attacker").await;
    let id = "i".repeat(8000);
    let subscribe = Frame::new(Command::Subscribe)
        .with_header("id", id.as_str())
        .with_header("destination", "/topic/t");
    let error = send_or_error(&mut attacker, subscribe, "sub")
        .await
        .expect("an ERROR, not a RECEIPT");
    assert!(
        error.contains("header `id` is 8000 bytes long") && error.contains("256 bytes"),
        "{error}"
    );
    still_served(&mut bystander, "/queue/after").await;
}

/// Issue 12, row 2 as reported: one transaction of header-only SENDs with 60 headers of 8 KB
/// each grew the server by 94 MiB (only bodies were counted). Now such a frame is over the
/// header budget of a frame: the first one is an ERROR.
#[tokio::test]
async fn header_only_sends_of_the_issue_are_an_error() {
    let server = Server::start(&[]);
    let mut bystander = Client::connect_anonymous(&server, "bystander").await;
    let mut attacker = Client::connect_anonymous(&server, "attacker").await;
    // 200 frames of 480 KB would be 96 MB.
    let (sent, error, growth) = fill_transaction(&server, &mut attacker, 60, 8000, 200).await;
    assert_eq!(sent, 0);
    assert!(
        error.contains("frame headers exceed the limit of 16384 bytes"),
        "{error}"
    );
    assert!(growth < MAX_RSS_GROWTH_KB, "RSS grew by {growth} KiB");
    still_served(&mut bystander, "/queue/after").await;
}

/// Issue 12, row 2 within the header budget: header-only SENDs of 14 KB each fill a
/// transaction until its byte limit (8 MiB, headers counted), long before its 1,024 frames.
#[tokio::test]
async fn a_transaction_counts_headers() {
    let server = Server::start(&[]);
    let mut bystander = Client::connect_anonymous(&server, "bystander").await;
    let mut attacker = Client::connect_anonymous(&server, "attacker").await;
    let (sent, error, growth) = fill_transaction(&server, &mut attacker, 14, 1000, 1024).await;
    assert!(
        error.contains("would hold more than 8388608 bytes (the limit per transaction"),
        "{error}"
    );
    assert!(
        (500..700).contains(&sent),
        "{sent} frames of ~14 KB before the ERROR"
    );
    assert!(growth < MAX_RSS_GROWTH_KB, "RSS grew by {growth} KiB");
    still_served(&mut bystander, "/queue/after").await;
}

/// `--stomp-max-queue-bytes`: a SEND that would put a queue with no consumer past it is an
/// ERROR naming the limit; what the queue holds is kept (nothing dropped) and other clients
/// are served.
#[tokio::test]
async fn a_queue_past_its_byte_budget_refuses_sends() {
    let server = Server::start(&["--stomp-max-queue-bytes", "1000000"]);
    let mut consumer = Client::connect_anonymous(&server, "consumer").await;
    let mut producer = Client::connect_anonymous(&server, "producer").await;
    let body = "x".repeat(10_000);
    let (sent, error) = send_until_error(&mut producer, 200, |n| {
        Frame::new(Command::Send)
            .with_header("destination", "/queue/jobs")
            .with_header("n", n.to_string())
            .with_body(body.clone())
    })
    .await;
    assert!(
        error.contains("/queue/jobs is full") && error.contains("limit per queue is 1000000 bytes"),
        "{error}"
    );
    assert!((90..100).contains(&sent), "{sent} messages of 10 KB");
    // Everything accepted is still there, in order.
    still_served(&mut consumer, "/queue/other").await;
    consumer.subscribe("jobs", "/queue/jobs", "auto").await;
    for n in 0..sent {
        let message = consumer.expect(Command::Message).await;
        assert_eq!(message.header("n"), Some(n.to_string().as_str()));
    }
    // Drained: the queue takes messages again.
    let mut producer = Client::connect_anonymous(&server, "producer").await;
    producer.publish_confirmed("/queue/jobs", "again").await;
    assert_eq!(consumer.message_body().await, "again");
}

/// `--stomp-max-broker-bytes`: the queues of the in-memory broker share one byte budget.
#[tokio::test]
async fn queues_share_the_broker_byte_budget() {
    let server = Server::start(&["--stomp-max-broker-bytes", "1000000"]);
    let mut bystander = Client::connect_anonymous(&server, "bystander").await;
    let mut producer = Client::connect_anonymous(&server, "producer").await;
    let body = "x".repeat(10_000);
    let (sent, error) = send_until_error(&mut producer, 200, |n| {
        Frame::new(Command::Send)
            .with_header("destination", format!("/queue/q{}", n % 10))
            .with_body(body.clone())
    })
    .await;
    assert!(
        error.contains("the broker is full")
            && error.contains("limit for all queues is 1000000 bytes"),
        "{error}"
    );
    assert!((90..100).contains(&sent), "{sent} messages of 10 KB");
    // Topics keep nothing: they are still served.
    still_served(&mut bystander, "/topic/anything").await;
}
