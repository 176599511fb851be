//! `wsx serve --demo-quotes`: the synthetic quote feed on `/topic/quotes`, seen by a real STOMP
//! client over a `wsx` WebSocket, its page at `/quotes`, and the server's shutdown with the feed
//! running.

mod common;

use std::collections::HashMap;
use std::process::Command as Process;

use common::{Client, Event, Server, WAIT, body, http};
use serde_json::Value;
use wsx::CloseCode;
use wsx_stomp::{Command, Frame};

/// The feed's symbols.
const SYMBOLS: usize = 50;

/// Check one MESSAGE of the feed and return its symbol and price.
fn check_quote(frame: &Frame) -> (String, f64) {
    assert_eq!(frame.command, Command::Message, "{frame:?}");
    assert_eq!(frame.header("destination"), Some("/topic/quotes"));
    assert_eq!(frame.header("subscription"), Some("q"));
    assert_eq!(frame.header("content-type"), Some("application/json"));
    let quote: Value = serde_json::from_str(body(frame)).expect("a JSON body");
    let symbol = quote["symbol"].as_str().expect("a symbol").to_owned();
    assert!(
        symbol.len() == 4 && symbol.bytes().all(|b| b.is_ascii_uppercase()),
        "{quote}"
    );
    assert_eq!(
        frame.header("x-conflation-key"),
        Some(symbol.as_str()),
        "the conflation key is the symbol"
    );
    let price = quote["price"].as_f64().expect("a price");
    let change = quote["change"].as_f64().expect("a change");
    let change_pct = quote["change_pct"].as_f64().expect("a change_pct");
    assert!(price.is_finite() && price >= 1.0, "{quote}");
    assert!(change.is_finite() && change_pct.is_finite(), "{quote}");
    // change is against the opening price: price - change, with change_pct consistent with it.
    let open = price - change;
    assert!(open > 0.0, "{quote}");
    assert!((change / open * 100.0 - change_pct).abs() < 0.02, "{quote}");
    assert!(
        quote["ts"]
            .as_u64()
            .is_some_and(|ts| ts > 1_600_000_000_000),
        "{quote}"
    );
    (symbol, price)
}

#[tokio::test]
async fn feed_publishes_fifty_symbols_with_conflation_keys() {
    let server = Server::start(&["--demo-quotes", "--demo-quotes-rate", "500"]);
    let mut client = Client::connect_anonymous(&server, "watcher").await;
    client.subscribe("q", "/topic/quotes", "auto").await;

    // Every round of the feed updates each symbol once: 50 symbols within two rounds.
    let mut last_price: HashMap<String, f64> = HashMap::new();
    let mut updates = 0;
    while last_price.len() < SYMBOLS || updates < 2 * SYMBOLS {
        let frame = client
            .frame_within(WAIT)
            .await
            .expect("the feed keeps publishing");
        let (symbol, price) = check_quote(&frame);
        if let Some(previous) = last_price.insert(symbol.clone(), price) {
            // A random-walk step: at most 0.5 % (plus rounding to cents).
            assert!(
                (price - previous).abs() <= previous * 0.005 + 0.011,
                "{symbol}: {previous} -> {price}"
            );
        }
        updates += 1;
        assert!(
            updates <= 4 * SYMBOLS,
            "{} distinct symbols after {updates} updates",
            last_price.len()
        );
    }
    assert_eq!(last_price.len(), SYMBOLS, "{last_price:?}");
    client.disconnect().await;
}

#[tokio::test]
async fn quote_page_is_served() {
    let server = Server::start(&["--demo-quotes"]);
    let page = http(server.addr, "GET", "/quotes").await;
    assert_eq!(page.status, 200);
    assert!(
        page.head.contains("content-type: text/html"),
        "{}",
        page.head
    );
    assert!(
        page.head.contains("content-security-policy:"),
        "{}",
        page.head
    );
    assert!(page.body.contains("<title>wsx quotes</title>"));
    assert!(page.body.contains("/stomp.js") && page.body.contains("/quotes.js"));
    let script = http(server.addr, "GET", "/quotes.js").await;
    assert_eq!(script.status, 200);
    assert!(script.body.contains("x-stream-offset"));
}

#[tokio::test]
async fn demo_quotes_needs_the_stomp_broker() {
    let out = Process::new(env!("CARGO_BIN_EXE_wsx"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--stomp",
            "off",
            "--demo-quotes",
        ])
        .output()
        .expect("run wsx serve");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--demo-quotes needs the STOMP broker"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "it never listened: {out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_feed_and_exits_0() {
    let mut server = Server::start(&["--demo-quotes", "--demo-quotes-rate", "1000"]);
    let mut client = Client::connect_anonymous(&server, "watcher").await;
    client.subscribe("q", "/topic/quotes", "auto").await;
    check_quote(&client.expect(Command::Message).await);

    let killed = Process::new("kill")
        .args(["-TERM", &server.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(killed.success());
    // Quotes until the close: the session ends with 1001, the process with 0.
    let close = loop {
        match client.next().await {
            Event::Frame(frame) => {
                check_quote(&frame);
            }
            Event::HeartBeat => {}
            Event::Closed(close) => break close,
        }
    };
    let close = close.expect("a close frame");
    assert_eq!(close.code, CloseCode::GOING_AWAY, "{close:?}");
    let status = server.wait_exit().await;
    assert_eq!(status.code(), Some(0), "{status:?}");
}
