//! Chat load with connection churn, for the soak run (`scripts/soak.sh`): clients that join a
//! room of `wsx serve`'s `/ws/chat/{room}`, talk at a steady pace, read everything the room
//! broadcasts, and leave and come back again and again.
//!
//! ```text
//! chat_load --url ws://HOST:PORT [--url ...] [--clients 50] [--interval-ms 500]
//!           [--lifetime 3..12] [--duration 60] [--room soak]
//! ```
//!
//! Client `i` connects to URL `i mod #URLs`, joins the room as `soakI`, sends a `message` every
//! `--interval-ms` and reads what arrives; after a lifetime between the two bounds of
//! `--lifetime` seconds (spread over the clients) it closes and connects again. After
//! `--duration` seconds one JSON object is printed: connections made, messages sent and
//! received, errors and the first of them. Everything runs on one current-thread runtime.

use std::cell::{Cell, RefCell};
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tokio::task::LocalSet;
use wsx::{ClientBuilder, Message};

const USAGE: &str = "usage: chat_load --url URL [--url URL ...] [--clients N] \
[--interval-ms MS] [--lifetime MIN..MAX] [--duration S] [--room NAME]";

#[derive(Clone, Debug)]
struct Args {
    urls: Vec<String>,
    clients: usize,
    interval: Duration,
    lifetime: (u64, u64),
    duration: f64,
    room: String,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        urls: Vec::new(),
        clients: 50,
        interval: Duration::from_millis(500),
        lifetime: (3, 12),
        duration: 60.0,
        room: "soak".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        fn num<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, String> {
            v.parse().map_err(|_| format!("bad value for {flag}: {v}"))
        }
        match flag.as_str() {
            "--url" => a.urls.push(val()?),
            "--clients" => a.clients = num(&flag, &val()?)?,
            "--interval-ms" => a.interval = Duration::from_millis(num(&flag, &val()?)?),
            "--lifetime" => {
                let v = val()?;
                let (lo, hi) = v
                    .split_once("..")
                    .ok_or_else(|| format!("--lifetime: MIN..MAX, not {v}"))?;
                a.lifetime = (num(&flag, lo)?, num(&flag, hi)?);
            }
            "--duration" => a.duration = num(&flag, &val()?)?,
            "--room" => a.room = val()?,
            "-h" | "--help" => return Err(USAGE.into()),
            _ => return Err(format!("unknown option {flag}\n{USAGE}")),
        }
    }
    if a.urls.is_empty() {
        return Err(format!("--url is required\n{USAGE}"));
    }
    a.clients = a.clients.max(1);
    a.lifetime.1 = a.lifetime.1.max(a.lifetime.0).max(1);
    Ok(a)
}

#[derive(Default)]
struct Counters {
    connections: Cell<u64>,
    sent: Cell<u64>,
    received: Cell<u64>,
    errors: Cell<u64>,
    first_error: RefCell<Option<String>>,
    stop: Cell<bool>,
}

impl Counters {
    fn add(cell: &Cell<u64>) {
        cell.set(cell.get() + 1);
    }

    fn error(&self, what: String) {
        Self::add(&self.errors);
        self.first_error.borrow_mut().get_or_insert(what);
    }
}

/// One connection's life: join, talk and read until `lifetime` is over, then close.
async fn session(args: &Args, i: usize, lifetime: Duration, c: &Counters) -> Result<(), String> {
    let url = format!("{}/ws/chat/{}", args.urls[i % args.urls.len()], args.room);
    let (mut ws, _) = ClientBuilder::new(&url)
        .connect_timeout(Duration::from_secs(20))
        .connect()
        .await
        .map_err(|e| format!("connect {url}: {e}"))?;
    Counters::add(&c.connections);
    let join = serde_json::json!({"type": "join", "name": format!("soak{i}")}).to_string();
    ws.send(Message::text(join))
        .await
        .map_err(|e| format!("join: {e}"))?;
    let end = tokio::time::Instant::now() + lifetime;
    let mut tick = tokio::time::interval(args.interval);
    let mut n = 0u64;
    while !c.stop.get() {
        tokio::select! {
            _ = tokio::time::sleep_until(end) => break,
            _ = tick.tick() => {
                n += 1;
                let text = serde_json::json!({"type": "message", "text": format!("m{n} from {i}")});
                ws.send(Message::text(text.to_string()))
                    .await
                    .map_err(|e| format!("send: {e}"))?;
                Counters::add(&c.sent);
            }
            msg = ws.recv() => match msg {
                Some(Ok(Message::Close(frame))) => return Err(format!("closed by the server: {frame:?}")),
                Some(Ok(m)) if m.is_data() => Counters::add(&c.received),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(format!("websocket: {e}")),
                None => return Err("connection closed".into()),
            },
        }
    }
    let _ = ws.close(wsx::CloseCode::NORMAL, "").await;
    Ok(())
}

async fn client(args: Rc<Args>, i: usize, c: Rc<Counters>) {
    let (lo, hi) = args.lifetime;
    let mut round = 0u64;
    while !c.stop.get() {
        // Lifetimes spread over [lo, hi] seconds, different for each client and round.
        let secs = lo + (i as u64 * 7 + round * 3) % (hi - lo + 1);
        round += 1;
        if let Err(e) = session(&args, i, Duration::from_secs(secs), &c).await
            && !c.stop.get()
        {
            c.error(e);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

async fn run(args: Args) -> serde_json::Value {
    let args = Rc::new(args);
    let counters = Rc::new(Counters::default());
    for i in 0..args.clients {
        tokio::task::spawn_local(client(args.clone(), i, counters.clone()));
    }
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(args.duration)).await;
    counters.stop.set(true);
    let c = &counters;
    serde_json::json!({
        "urls": args.urls,
        "clients": args.clients,
        "duration_s": t0.elapsed().as_secs_f64(),
        "connections": c.connections.get(),
        "sent": c.sent.get(),
        "received": c.received.get(),
        "errors": c.errors.get(),
        "first_error": c.first_error.borrow().clone(),
    })
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("chat_load: tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let out = LocalSet::new().block_on(&rt, run(args));
    println!("{out}");
    // Do not wait for the close handshakes of the clients still connected.
    std::process::exit(0);
}
