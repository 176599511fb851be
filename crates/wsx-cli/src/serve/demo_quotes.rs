//! `wsx serve --demo-quotes`: a synthetic quote feed published on the server's own STOMP broker
//! to [`TOPIC`], for the live table of the `/quotes` page (`web/quotes.html`).
//!
//! Where it sits in the flow: [`spawn`] starts one task beside the server; it publishes with
//! [`wsx_broker::Broker::publish`] like a client's SEND, so every `/stomp` subscriber of the
//! topic (on every node, with `--broker redis://…`) gets each update. Run it on one node of a
//! cluster only: every node with the flag publishes its own feed.
//!
//! The feed: [`SYMBOLS`] (50 made-up tickers), each a random walk from its opening price
//! (steps of at most ±0.5 %). Updates come at a fixed rate, `--demo-quotes-rate` per second in
//! total ([`DEFAULT_RATE`], 20/s). They go through the symbols in rounds: every round updates
//! each symbol once, in a new random order, so every symbol changes at least every
//! `2 × 50 / rate` seconds (5 s at the default) and a page that subscribes with
//! `x-stream-offset: next` has a full table within one round (2.5 s) even without history.
//!
//! Each update is one MESSAGE with `content-type:application/json`,
//! `x-conflation-key:SYMBOL` (a subscriber that cannot keep up gets the newest quote of each
//! symbol instead of being disconnected) and the body
//! `{"symbol":"ACME","price":123.45,"change":1.23,"change_pct":1.01,"ts":1700000000000}`
//! (`change` against the opening price, `ts` in milliseconds since the Unix epoch).
//!
//! The task stops when the server's shutdown begins, before the broker closes its sessions. A
//! publish the broker refuses (a budget crossed) is skipped and logged (once per run of
//! refusals).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};
use wsx_stomp::Headers;

use super::stomp::Stomp;

/// The topic the feed publishes to.
pub const TOPIC: &str = "/topic/quotes";
/// The default of `--demo-quotes-rate`: updates per second, all symbols together.
pub const DEFAULT_RATE: u32 = 20;
/// The largest `--demo-quotes-rate`.
pub const MAX_RATE: u32 = 10_000;
/// The largest step of one update, as a fraction of the price (0.5 %).
const MAX_STEP: f64 = 0.005;
/// The lowest price a symbol walks down to.
const MIN_PRICE: f64 = 1.0;
/// The most ticks of the timer per second (one per 10 ms); faster rates publish several
/// updates per tick.
const MAX_TICKS_PER_SEC: u32 = 100;

/// The 50 symbols of the feed and their opening prices: made-up tickers, not real companies.
pub const SYMBOLS: [(&str, f64); 50] = [
    ("ACME", 123.40),
    ("AERO", 58.10),
    ("ALFA", 17.25),
    ("AMBR", 212.00),
    ("APEX", 94.75),
    ("ARCH", 33.60),
    ("ASTR", 401.20),
    ("ATLS", 76.30),
    ("AURA", 12.80),
    ("AXIS", 148.90),
    ("BOLT", 64.45),
    ("BRIX", 22.10),
    ("CEDR", 51.70),
    ("CIRC", 310.50),
    ("COBL", 8.95),
    ("CRUX", 187.35),
    ("DELT", 45.20),
    ("DUNE", 29.80),
    ("ECHO", 133.00),
    ("EMBR", 71.15),
    ("FLUX", 256.60),
    ("FORG", 39.90),
    ("GALE", 18.40),
    ("GLYF", 97.25),
    ("HALO", 142.10),
    ("HELX", 63.85),
    ("IRIS", 27.55),
    ("JADE", 88.00),
    ("KILN", 14.30),
    ("LUMA", 175.40),
    ("LYNX", 52.95),
    ("MAPL", 36.20),
    ("MESA", 119.80),
    ("NOVA", 244.70),
    ("ONYX", 67.35),
    ("OPAL", 23.45),
    ("ORBT", 158.20),
    ("PIKE", 41.10),
    ("PRSM", 99.99),
    ("QUIL", 11.60),
    ("RIDG", 84.30),
    ("SAGE", 47.75),
    ("SLTE", 205.10),
    ("SPRK", 31.25),
    ("TIDE", 72.40),
    ("TRAX", 138.65),
    ("UMBR", 19.90),
    ("VALE", 56.55),
    ("WISP", 26.15),
    ("ZEPH", 361.80),
];

/// One quote, as published (the JSON body).
#[derive(Debug, Clone, Serialize)]
struct Quote {
    symbol: &'static str,
    price: f64,
    change: f64,
    change_pct: f64,
    ts: u64,
}

/// The state of the random walk.
#[derive(Debug)]
struct Feed {
    /// Current price of each symbol of [`SYMBOLS`] (same order).
    prices: Vec<f64>,
    /// The order of the current round (indexes into [`SYMBOLS`]).
    round: Vec<usize>,
    /// The next position in `round`.
    next: usize,
}

impl Feed {
    fn new() -> Self {
        Feed {
            prices: SYMBOLS.iter().map(|&(_, open)| open).collect(),
            round: (0..SYMBOLS.len()).collect(),
            next: SYMBOLS.len(),
        }
    }

    /// Move the next symbol of the round one random step and return its quote.
    fn step(&mut self, rng: &mut impl Rng) -> Quote {
        if self.next >= self.round.len() {
            self.round.shuffle(rng);
            self.next = 0;
        }
        let i = self.round[self.next];
        self.next += 1;
        let (symbol, open) = SYMBOLS[i];
        let step = rng.random_range(-MAX_STEP..=MAX_STEP);
        let price = round2((self.prices[i] * (1.0 + step)).max(MIN_PRICE));
        self.prices[i] = price;
        let change = round2(price - open);
        Quote {
            symbol,
            price,
            change,
            change_pct: round2(change / open * 100.0),
            ts: unix_millis(),
        }
    }
}

/// `x` rounded to cents.
fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The timer's period and the updates published per tick for `rate` updates per second.
fn schedule(rate: u32) -> (Duration, u32) {
    let rate = rate.clamp(1, MAX_RATE);
    let per_tick = rate.div_ceil(MAX_TICKS_PER_SEC);
    (Duration::from_secs(1) * per_tick / rate, per_tick)
}

/// Start the feed: `rate` updates per second to [`TOPIC`] on `broker`, until `shutdown`
/// turns true. Await the handle to know it stopped.
pub fn spawn(broker: Arc<Stomp>, rate: u32, mut shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let (period, per_tick) = schedule(rate);
        info!(
            "demo quotes: {} symbols, {rate} updates/s to {TOPIC} (page at /quotes)",
            SYMBOLS.len()
        );
        let mut feed = Feed::new();
        // Seeded from the thread's generator: `StdRng` may be held across the awaits.
        let mut rng = StdRng::from_rng(&mut rand::rng());
        let mut timer = tokio::time::interval(period);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut refusing = false;
        loop {
            tokio::select! {
                _ = timer.tick() => {}
                () = super::wait_shutdown(&mut shutdown) => break,
            }
            for _ in 0..per_tick {
                let quote = feed.step(&mut rng);
                let body = match serde_json::to_vec(&quote) {
                    Ok(body) => body,
                    Err(e) => {
                        warn!("demo quotes: cannot encode a quote: {e}");
                        continue;
                    }
                };
                let mut headers = Headers::with_capacity(2);
                headers.push("content-type", "application/json");
                headers.push("x-conflation-key", quote.symbol);
                match broker.publish(TOPIC, headers, body) {
                    Ok(()) => refusing = false,
                    Err(e) if !refusing => {
                        warn!(
                            "demo quotes: publish refused: {e} (skipping updates until one passes)"
                        );
                        refusing = true;
                    }
                    Err(_) => {}
                }
            }
        }
        info!("demo quotes: stopped");
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn fifty_distinct_symbols() {
        let names: HashSet<_> = SYMBOLS.iter().map(|(s, _)| *s).collect();
        assert_eq!(names.len(), 50);
        assert!(SYMBOLS.iter().all(|&(_, open)| open > MIN_PRICE));
    }

    #[test]
    fn every_round_updates_each_symbol_once() {
        let mut feed = Feed::new();
        let mut rng = rand::rng();
        for _ in 0..3 {
            let round: HashSet<_> = (0..SYMBOLS.len())
                .map(|_| feed.step(&mut rng).symbol)
                .collect();
            assert_eq!(round.len(), SYMBOLS.len());
        }
    }

    #[test]
    fn steps_stay_small_and_change_is_against_the_open() {
        let mut feed = Feed::new();
        let mut rng = rand::rng();
        for _ in 0..1000 {
            let before = feed.prices.clone();
            let q = feed.step(&mut rng);
            let i = SYMBOLS
                .iter()
                .position(|(s, _)| *s == q.symbol)
                .unwrap_or(0);
            assert!(
                (q.price - before[i]).abs() <= before[i] * MAX_STEP + 0.01,
                "{q:?}"
            );
            assert!((q.change - (q.price - SYMBOLS[i].1)).abs() < 0.011, "{q:?}");
        }
    }

    #[test]
    fn schedule_matches_the_rate() {
        assert_eq!(schedule(20), (Duration::from_millis(50), 1));
        assert_eq!(schedule(100), (Duration::from_millis(10), 1));
        assert_eq!(schedule(1000), (Duration::from_millis(10), 10));
        assert_eq!(schedule(1), (Duration::from_secs(1), 1));
        let (period, per_tick) = schedule(250);
        assert_eq!(per_tick, 3);
        assert_eq!(period, Duration::from_millis(12)); // 3 per 12 ms: 250/s
    }
}
