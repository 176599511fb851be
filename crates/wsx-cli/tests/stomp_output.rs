//! End-to-end tests of the STOMP broker's output side, with clients on sockets whose receive
//! buffer is 4 KiB: an `ack:auto` queue consumer that reads slowly loses nothing a RECEIPT
//! confirmed (in memory and through Redis), and a client that makes its own output and never
//! reads it grows the server by a bounded amount while others are still served.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Client, Event, Server, WAIT, body, redis_url, unique_prefix};
use tokio::time::Instant;
use wsx_stomp::{Command, Frame};

/// Messages sent, each confirmed by a RECEIPT.
const SENT: usize = 5_000;

/// The topic flooded while the messages are sent, in [`Flood::Topic`] runs.
const FLOOD: &str = "/topic/flood";

/// Whether the slow consumer is also subscribed to a topic that another client floods (so
/// that the server drops it as too slow, and it reconnects).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flood {
    None,
    Topic,
}

/// Consume `queue` in `ack:auto` mode on a 4 KiB socket, slowly (a pause every 32 messages),
/// counting each body in `seen`; reconnect whenever the server closes the connection. With
/// [`Flood::Topic`], also subscribed to [`FLOOD`] (its messages are not counted).
async fn consume_slowly(
    server: Arc<Server>,
    queue: &'static str,
    flood: Flood,
    seen: Arc<Mutex<HashMap<String, usize>>>,
    redelivered: Arc<AtomicUsize>,
) {
    loop {
        let mut client = Client::open_small_window(&server).await;
        client
            .send(
                Frame::new(Command::Connect)
                    .with_header("accept-version", "1.2")
                    .with_header("host", "localhost")
                    .with_header("login", "slow"),
            )
            .await;
        client.expect(Command::Connected).await;
        // No receipts: flood messages and queue messages may come at any moment after each
        // SUBSCRIBE, and the loop below takes whatever comes (an ERROR fails it).
        let mut subscriptions = vec![("s", queue)];
        if flood == Flood::Topic {
            subscriptions.insert(0, ("f", FLOOD));
        }
        for (id, destination) in subscriptions {
            client
                .send(
                    Frame::new(Command::Subscribe)
                        .with_header("id", id)
                        .with_header("destination", destination)
                        .with_header("ack", "auto"),
                )
                .await;
        }
        let mut read = 0usize;
        loop {
            match client.next_within(Duration::from_secs(60)).await {
                Some(Event::Frame(frame)) if frame.header("destination") == Some(FLOOD) => {}
                Some(Event::Frame(frame)) => {
                    assert_eq!(frame.command, Command::Message, "{frame:?}");
                    if frame.header("redelivered") == Some("true") {
                        redelivered.fetch_add(1, Ordering::Relaxed);
                    }
                    *seen
                        .lock()
                        .expect("lock")
                        .entry(body(&frame).to_owned())
                        .or_default() += 1;
                    read += 1;
                    if read.is_multiple_of(32) {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                Some(Event::HeartBeat) => {}
                // Dropped (too slow, say): what it had not written goes back to the queue.
                Some(Event::Closed(_)) | None => break,
            }
        }
    }
}

/// Send [`SENT`] messages to `queue`, each with a receipt, while one slow `ack:auto` consumer
/// reads them; every message a RECEIPT confirmed must arrive at least once. With
/// [`Flood::Topic`], 256 KiB messages go to [`FLOOD`] meanwhile, until the server has dropped
/// the consumer as too slow at least once.
async fn nothing_confirmed_is_lost(server: Server, queue: &'static str, flood: Flood) {
    let server = Arc::new(server);
    let seen = Arc::new(Mutex::new(HashMap::new()));
    let redelivered = Arc::new(AtomicUsize::new(0));
    let consumer = tokio::spawn(consume_slowly(
        server.clone(),
        queue,
        flood,
        seen.clone(),
        redelivered.clone(),
    ));
    let flooder = (flood == Flood::Topic).then(|| {
        let server = server.clone();
        tokio::spawn(async move {
            let mut flooder = Client::connect_anonymous(&server, "flooder").await;
            let chunk = "f".repeat(256 * 1024);
            while server
                .metric_value("wsx_stomp_slow_disconnects_total")
                .await
                == Some(0)
            {
                for _ in 0..8 {
                    flooder.publish(FLOOD, &chunk, &[]).await;
                }
            }
        })
    });

    let mut producer = Client::connect_anonymous(&server, "producer").await;
    let padding = "p".repeat(1000);
    for i in 0..SENT {
        producer.feed(
            Frame::new(Command::Send)
                .with_header("destination", queue)
                .with_header("receipt", format!("r{i}"))
                .with_body(format!("m{i}-{padding}")),
        );
        if i % 100 == 99 {
            producer.flush().await;
        }
    }
    producer.flush().await;
    if let Some(flooder) = flooder {
        tokio::time::timeout(WAIT, flooder)
            .await
            .expect("the consumer dropped as too slow in time")
            .expect("the flooder");
    }
    let mut confirmed = HashSet::new();
    while confirmed.len() < SENT {
        let frame = producer.expect(Command::Receipt).await;
        let id = frame.header("receipt-id").expect("a receipt-id");
        let i: usize = id[1..].parse().expect("r<number>");
        confirmed.insert(format!("m{i}-{padding}"));
    }

    // Wait until the consumer has every confirmed message (or nothing new comes for a while).
    let mut last = (0, Instant::now());
    let missing = loop {
        let (missing, received) = {
            let seen = seen.lock().expect("lock");
            let missing = confirmed.iter().filter(|m| !seen.contains_key(*m)).count();
            (missing, seen.values().sum::<usize>())
        };
        if missing == 0 {
            break 0;
        }
        if received != last.0 {
            last = (received, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(5) {
            break missing;
        }
        assert!(last.1.elapsed() < WAIT, "stuck");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    consumer.abort();
    let seen = seen.lock().expect("lock");
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    println!(
        "{queue}: {SENT} confirmed, {} received once or more, {duplicates} duplicates, {} \
         marked redelivered, {missing} lost",
        seen.len(),
        redelivered.load(Ordering::Relaxed)
    );
    assert_eq!(missing, 0, "confirmed by a RECEIPT and never delivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_auto_consumer_loses_nothing_confirmed_in_memory() {
    nothing_confirmed_is_lost(Server::start(&[]), "/queue/auto-memory", Flood::None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auto_consumer_dropped_as_too_slow_loses_nothing_confirmed() {
    nothing_confirmed_is_lost(Server::start(&[]), "/queue/auto-dropped", Flood::Topic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_auto_consumer_loses_nothing_confirmed_with_redis() {
    let Some(redis) = redis_url("a_slow_auto_consumer_loses_nothing_confirmed_with_redis") else {
        return;
    };
    let prefix = unique_prefix("auto-loss");
    let server = Server::start(&[
        "--broker",
        &redis,
        "--redis-prefix",
        &prefix,
        "--node-id",
        "auto-loss",
    ]);
    nothing_confirmed_is_lost(server, "/queue/auto-redis", Flood::None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_output_never_read_stays_bounded() {
    let server = Server::start(&[]);
    // Warm up the allocator with a served client first.
    let mut other = Client::connect_anonymous(&server, "other").await;
    other.subscribe("t", "/topic/other", "auto").await;
    other.publish_confirmed("/topic/other", "before").await;
    assert_eq!(other.message_body().await, "before");
    let before = server.rss_kib();

    // 64 subscriptions to one topic, then tiny SENDs to it, never reading what comes back.
    let mut attacker = Client::open_small_window(&server).await;
    attacker.feed(
        Frame::new(Command::Connect)
            .with_header("accept-version", "1.2")
            .with_header("host", "localhost"),
    );
    for i in 0..64 {
        attacker.feed(
            Frame::new(Command::Subscribe)
                .with_header("id", format!("{i:0>120}"))
                .with_header("destination", "/topic/amplified"),
        );
    }
    attacker.flush().await;
    // 20,000 SENDs, or as many as the server takes in before it stops reading.
    let writer = tokio::spawn(async move {
        for i in 0..20_000 {
            attacker.feed(
                Frame::new(Command::Send)
                    .with_header("destination", "/topic/amplified")
                    .with_body(format!("{i}")),
            );
            if i % 100 == 99 {
                attacker.flush().await;
            }
        }
        attacker.flush().await;
        attacker
    });
    // The server's size over three seconds, while it takes in what it will.
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut peak = before;
    while Instant::now() < deadline {
        peak = peak.max(server.rss_kib());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let growth_mib = (peak.saturating_sub(before)) / 1024;
    println!("own output never read: RSS {before} KiB before, peak {peak} KiB (+{growth_mib} MiB)");
    assert!(growth_mib < 64, "the server grew by {growth_mib} MiB");

    // Another client is still served.
    other.publish_confirmed("/topic/other", "after").await;
    assert_eq!(other.message_body().await, "after");
    writer.abort();
}

/// A client whose input is paused because it never reads its own output (heart-beats off, so
/// nothing but the idle limit can end it) is closed after the idle limit, not held forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_closed_after_the_idle_limit() {
    let server = Server::start(&["--stomp-idle-timeout", "2"]);
    let mut attacker = Client::open_small_window(&server).await;
    attacker.feed(
        Frame::new(Command::Connect)
            .with_header("accept-version", "1.2")
            .with_header("host", "localhost")
            .with_header("heart-beat", "0,0"),
    );
    for i in 0..64 {
        attacker.feed(
            Frame::new(Command::Subscribe)
                .with_header("id", format!("{i}"))
                .with_header("destination", "/topic/mirror"),
        );
    }
    attacker.flush().await;
    let started = Instant::now();
    // SENDs until the server stops reading them (the writes then block).
    let writer = tokio::spawn(async move {
        for i in 0..100_000 {
            attacker.feed(
                Frame::new(Command::Send)
                    .with_header("destination", "/topic/mirror")
                    .with_body(format!("{i}")),
            );
            if i % 100 == 99 {
                attacker.flush().await;
            }
        }
        attacker
    });
    // The session is there (the server may count it a moment after the client's handshake),
    // then goes away without the client ever reading.
    while server.metric_value("wsx_stomp_sessions").await != Some(1) {
        assert!(started.elapsed() < WAIT, "the session never opened");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    while server.metric_value("wsx_stomp_sessions").await != Some(0) {
        assert!(started.elapsed() < WAIT, "the paused client is still open");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "closed by the idle limit, not before"
    );
    writer.abort();
}
