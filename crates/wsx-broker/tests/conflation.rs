//! Conflation over real sockets: a subscriber that stops reading while 100 keys update
//! thousands of times stays connected and ends with the latest value of every key, in
//! publication order, with the server holding a bounded backlog for it; a subscriber that
//! keeps up meanwhile gets every message in order.

mod common;

use std::collections::HashMap;

use common::{Client, WAIT, body, serve};
use tokio::sync::watch;
use wsx_broker::Broker;
use wsx_stomp::{Command, Frame};

/// Keys updated in each round.
const KEYS: u64 = 100;
/// Padding of each message body: about 1 KiB a message.
const PAD: usize = 1024;
/// The client's receive buffer: small, so that the server's queue feels a stalled client soon.
const RECEIVE_BUFFER: u32 = 16 * 1024;
/// Messages conflated (replaced while waiting for the stalled subscriber) before publishing
/// stops: a thousand updates of every key past the point where its buffers were full.
const CONFLATED_TARGET: u64 = 1_000 * KEYS;
/// Rounds at most, should conflation never start.
const MAX_ROUNDS: u64 = 5_000;

/// Message number `n` (of key `n % KEYS`), as its body.
fn quote(n: u64) -> String {
    format!("{n} k{} {}", n % KEYS, "x".repeat(PAD))
}

/// The message number of a MESSAGE's body.
fn number(frame: &Frame) -> u64 {
    let text = body(frame);
    let (n, rest) = text.split_once(' ').expect("a quote");
    let n: u64 = n.parse().expect("a number");
    let key = frame.header("x-conflation-key").expect("the key is kept");
    assert!(rest.starts_with(key), "{key} in {text:.20}");
    n
}

/// A counter of the broker's `/metrics` text.
fn counter(broker: &Broker, name: &str) -> u64 {
    let text = broker.metrics().render();
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} in {text}"))
}

/// The largest send buffer the kernel gives a TCP socket (what the server's socket may hold
/// for a client that does not read, besides the broker's own buffers).
fn max_send_buffer() -> u64 {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem")
        .ok()
        .and_then(|text| text.split_whitespace().nth(2)?.parse().ok())
        .unwrap_or(4 << 20)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_subscriber_gets_the_latest_of_every_key_and_a_fast_one_everything() {
    let broker = Broker::builder().build().expect("a broker");
    let addr = serve(broker.clone()).await;
    let mut slow = Client::connect_with_receive_buffer(addr, "slow", RECEIVE_BUFFER).await;
    slow.subscribe("q", "/topic/quotes").await;
    let mut fast = Client::connect(addr, "fast").await;
    fast.subscribe("q", "/topic/quotes").await;
    let mut publisher = Client::connect(addr, "publisher").await;

    // The fast subscriber reads everything, checks the order and tells how far it got.
    let (seen_tx, mut seen) = watch::channel(0u64);
    let reader = tokio::spawn(async move {
        let mut next = 0;
        loop {
            let frame = fast.frame().await;
            assert_eq!(frame.command, Command::Message, "{frame:?}");
            if body(&frame) == "end" {
                return next;
            }
            assert_eq!(number(&frame), next, "in order, nothing missing");
            next += 1;
            let _ = seen_tx.send(next);
        }
    });

    // Rounds of one update per key, each once the fast subscriber got the previous one, until
    // the stalled subscriber's backlog was conflated long enough. It reads nothing meanwhile.
    let mut published = 0;
    let mut rounds = 0;
    while counter(&broker, "wsx_stomp_messages_conflated_total") < CONFLATED_TARGET {
        assert!(rounds < MAX_ROUNDS, "no conflation after {rounds} rounds");
        for _ in 0..KEYS {
            let key = format!("k{}", published % KEYS);
            publisher
                .send_to(
                    "/topic/quotes",
                    &quote(published),
                    &[("x-conflation-key", &key)],
                )
                .await;
            published += 1;
        }
        rounds += 1;
        tokio::time::timeout(WAIT, seen.wait_for(|&n| n >= published))
            .await
            .expect("the fast subscriber keeps up")
            .expect("the reader runs");
    }
    // A message without a key ends the test for both.
    publisher.send_to("/topic/quotes", "end", &[]).await;
    assert_eq!(reader.await.expect("the reader"), published);

    // The stalled subscriber reads now: what it gets is in publication order and ends with
    // the latest message of every key.
    let mut received = 0;
    let mut last = HashMap::new();
    let mut previous = None;
    loop {
        let frame = slow.frame().await;
        assert_eq!(frame.command, Command::Message, "{frame:?}");
        if body(&frame) == "end" {
            break;
        }
        let n = number(&frame);
        assert!(previous < Some(n), "{n} after {previous:?}: in order");
        previous = Some(n);
        last.insert(n % KEYS, n);
        received += 1;
    }
    for key in 0..KEYS {
        assert_eq!(
            last.get(&key),
            Some(&(published - KEYS + key)),
            "the latest value of k{key}"
        );
    }
    // Every message it did not get was replaced by a later one of its key (the fast subscriber
    // never had two of a key waiting), and the server held a bounded backlog for it: its
    // socket's buffer and the broker's write buffer (256 KiB), plus one message per key.
    let conflated = counter(&broker, "wsx_stomp_messages_conflated_total");
    assert_eq!(received + conflated, published);
    let frame_size = PAD as u64;
    let bound = KEYS + (max_send_buffer() + u64::from(RECEIVE_BUFFER) + (512 << 10)) / frame_size;
    assert!(
        received <= bound,
        "{received} messages held for the stalled subscriber (bound {bound}, {published} published)"
    );

    eprintln!("published {published} in {rounds} rounds, received {received}, bound {bound}");
    // Still connected, and nobody was dropped.
    slow.send(
        Frame::new(Command::Send)
            .with_header("destination", "/queue/ping")
            .with_header("receipt", "alive"),
    )
    .await;
    let receipt = slow.frame().await;
    assert_eq!(receipt.command, Command::Receipt, "{receipt:?}");
    assert_eq!(counter(&broker, "wsx_stomp_slow_disconnects_total"), 0);
}
