//! `wsx serve --broker redis-sentinel://…/SERVICE --redis-replicas-ack 1` across a Redis
//! failover: the test runs its own Redis primary, two replicas and three sentinels (all on
//! free ports on 127.0.0.1, killed when dropped), two `wsx serve` nodes, a producer sending
//! queue messages with receipts and a consumer acknowledging on each node. The primary is
//! killed with SIGKILL mid-stream; every message the producer got a RECEIPT for must be
//! delivered (at least once; duplicates are counted and printed), the clients stay
//! connected, and traffic resumes once the sentinels promoted a replica.
//!
//! Two replicas, not one: with `--redis-replicas-ack 1` a write is confirmed only once a
//! replica has it, and after the failover the promoted replica needs a replica of its own
//! (the other one, which the sentinels point at it) for writes to be confirmed again.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{Client, RedisServer, Server, WAIT, body, free_port, unique_prefix};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use wsx_stomp::{Command, Frame};

const SERVICE: &str = "wsxtest";

/// Messages sent before the primary is killed, and in all.
const BEFORE_KILL: usize = 150;
const TOTAL: usize = 400;

/// SENDs the producer has out without their RECEIPT, at most.
const IN_FLIGHT: usize = 16;

/// A reply of Redis, as far as these checks need it.
#[derive(Debug, Clone, PartialEq)]
enum Resp {
    Text(String),
    Int(i64),
    Nil,
    Array(Vec<Resp>),
}

impl Resp {
    fn text(&self) -> &str {
        match self {
            Resp::Text(t) => t,
            _ => "",
        }
    }
}

/// Send one command to the Redis (or sentinel) on `port` and read its reply.
async fn redis_command(port: u16, args: &[&str]) -> std::io::Result<Resp> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let mut request = format!("*{}\r\n", args.len());
    for arg in args {
        request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
    }
    stream.write_all(request.as_bytes()).await?;
    let mut buf = Vec::new();
    loop {
        if let Some((value, _)) = parse(&buf) {
            return Ok(value);
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(WAIT, stream.read(&mut chunk))
            .await
            .map_err(|_| std::io::Error::other("no reply in time"))??;
        if n == 0 {
            return Err(std::io::Error::other("closed before the reply"));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A whole RESP2 value at the start of `buf`, and its length; `None` if incomplete.
fn parse(buf: &[u8]) -> Option<(Resp, usize)> {
    let end = buf.windows(2).position(|w| w == b"\r\n")?;
    let line = std::str::from_utf8(&buf[1..end]).ok()?;
    let after = end + 2;
    match buf.first()? {
        b'+' | b'-' => Some((Resp::Text(line.to_owned()), after)),
        b':' => Some((Resp::Int(line.parse().ok()?), after)),
        b'$' => {
            let len: i64 = line.parse().ok()?;
            if len < 0 {
                return Some((Resp::Nil, after));
            }
            let len = usize::try_from(len).ok()?;
            let data = buf.get(after..after + len)?;
            buf.get(after + len..after + len + 2)?;
            Some((
                Resp::Text(String::from_utf8_lossy(data).into_owned()),
                after + len + 2,
            ))
        }
        b'*' => {
            let n: i64 = line.parse().ok()?;
            if n < 0 {
                return Some((Resp::Nil, after));
            }
            let mut items = Vec::new();
            let mut at = after;
            for _ in 0..n {
                let (item, used) = parse(&buf[at..])?;
                items.push(item);
                at += used;
            }
            Some((Resp::Array(items), at))
        }
        _ => None,
    }
}

/// Poll `check` every 50 ms until it holds (panics after `within`, naming `what`).
async fn until<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "in time: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The `INFO replication` field `name` of the Redis on `port`.
async fn replication_field(port: u16, name: &str) -> Option<String> {
    let info = redis_command(port, &["INFO", "replication"]).await.ok()?;
    info.text().lines().find_map(|line| {
        line.trim()
            .strip_prefix(name)
            .and_then(|rest| rest.strip_prefix(':'))
            .map(str::to_owned)
    })
}

/// The `SENTINEL master SERVICE` field `name` of the sentinel on `port`.
async fn sentinel_field(port: u16, name: &str) -> Option<String> {
    let Ok(Resp::Array(fields)) = redis_command(port, &["SENTINEL", "master", SERVICE]).await
    else {
        return None;
    };
    fields
        .chunks(2)
        .find(|pair| pair[0].text() == name)
        .and_then(|pair| pair.get(1))
        .map(|v| v.text().to_owned())
}

/// The primary's port the sentinel on `port` names.
async fn primary_port(sentinel: u16) -> Option<u16> {
    let Ok(Resp::Array(addr)) =
        redis_command(sentinel, &["SENTINEL", "get-master-addr-by-name", SERVICE]).await
    else {
        return None;
    };
    addr.get(1)?.text().parse().ok()
}

/// A directory of the test's own for the sentinels' configuration files (removed when
/// dropped).
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!("wsx-{test}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create a temporary directory");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A sentinel on `port` watching the primary on `primary`: the primary is down after 1 s
/// without an answer, two sentinels must agree.
fn sentinel(dir: &TempDir, port: u16, primary: u16) -> RedisServer {
    let conf = dir.0.join(format!("sentinel-{port}.conf"));
    let text = format!(
        "port {port}\nbind 127.0.0.1\ndir {dir}\n\
         sentinel monitor {SERVICE} 127.0.0.1 {primary} 2\n\
         sentinel down-after-milliseconds {SERVICE} 1000\n\
         sentinel failover-timeout {SERVICE} 5000\n\
         sentinel parallel-syncs {SERVICE} 1\n",
        dir = dir.0.display()
    );
    std::fs::write(&conf, text).expect("write the sentinel configuration");
    RedisServer::start_sentinel(port, &conf)
}

/// A replica of the primary on `primary`, loading what it replicates without touching the
/// disk.
fn replica(port: u16, primary: u16) -> RedisServer {
    let primary = primary.to_string();
    let dbfile = format!("wsx-replica-{port}.rdb");
    RedisServer::start_with(
        port,
        &[
            "--replicaof",
            "127.0.0.1",
            &primary,
            "--repl-diskless-load",
            "on-empty-db",
            "--dbfilename",
            &dbfile,
        ],
    )
}

/// Consume `/queue/jobs` on `server` (client-individual, acknowledging each message) and
/// report every body received on `seen`, until aborted. The task ends (panics) only if its
/// connection closes.
async fn consumer(
    server: &Server,
    name: &str,
    seen: mpsc::UnboundedSender<String>,
) -> tokio::task::JoinHandle<()> {
    let mut client = Client::connect_anonymous(server, name).await;
    client
        .subscribe("jobs", "/queue/jobs", "client-individual")
        .await;
    let name = name.to_owned();
    tokio::spawn(async move {
        loop {
            // A close panics here: the test then finds the task finished.
            let frame = client.frame_within(Duration::from_secs(3600)).await;
            let Some(frame) = frame else { continue };
            assert_eq!(frame.command, Command::Message, "{name}: {frame:?}");
            client.feed_ack(&frame);
            client.flush().await;
            if seen.send(body(&frame).to_owned()).is_err() {
                return;
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipted_queue_messages_survive_a_sentinel_failover() {
    let test = "receipted_queue_messages_survive_a_sentinel_failover";
    if !RedisServer::available(test) {
        return;
    }
    let started = Instant::now();
    let dir = TempDir::new("sentinel");
    let primary_port_0 = free_port();
    let mut primary = RedisServer::start(primary_port_0);
    let replica_ports = [free_port(), free_port()];
    let _replicas: Vec<RedisServer> = replica_ports
        .iter()
        .map(|port| replica(*port, primary_port_0))
        .collect();
    until(WAIT, "both replicas in sync", || async {
        replication_field(primary_port_0, "connected_slaves")
            .await
            .as_deref()
            == Some("2")
    })
    .await;
    let sentinel_ports = [free_port(), free_port(), free_port()];
    let _sentinels: Vec<RedisServer> = sentinel_ports
        .iter()
        .map(|port| sentinel(&dir, *port, primary_port_0))
        .collect();
    // Every sentinel knows the two replicas and the two other sentinels (they find each
    // other through the primary's hello channel, every 2 s).
    for port in sentinel_ports {
        until(WAIT, "the sentinels know each other", || async {
            sentinel_field(port, "num-other-sentinels").await.as_deref() == Some("2")
                && sentinel_field(port, "num-slaves").await.as_deref() == Some("2")
        })
        .await;
    }

    let url = format!(
        "redis-sentinel://127.0.0.1:{},127.0.0.1:{},127.0.0.1:{}/{SERVICE}",
        sentinel_ports[0], sentinel_ports[1], sentinel_ports[2]
    );
    let prefix = unique_prefix("sentinel");
    let replicas_ack = "1";
    let extra = ["--redis-replicas-ack", replicas_ack];
    let a = common::cluster_node(&url, &prefix, "sentinel-a", &extra);
    let b = common::cluster_node(&url, &prefix, "sentinel-b", &extra);
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let consumers = [
        consumer(&a, "consumer-a", seen_tx.clone()).await,
        consumer(&b, "consumer-b", seen_tx).await,
    ];
    let mut producer = Client::connect_anonymous(&a, "producer").await;
    let primary_line = format!(
        "wsx_stomp_redis_primary{{mode=\"sentinel\",address=\"127.0.0.1:{primary_port_0}\"}}"
    );
    assert_eq!(a.metric_value(&primary_line).await, Some(1));

    // Send with receipts, IN_FLIGHT at a time; kill the primary once BEFORE_KILL are
    // receipted.
    let mut receipted: HashSet<String> = HashSet::new();
    let mut outstanding: HashMap<String, Instant> = HashMap::new();
    let mut next = 0usize;
    let mut killed_at: Option<Instant> = None;
    let mut first_after_kill: Option<Duration> = None;
    let mut latencies_before = Vec::new();
    while receipted.len() < TOTAL {
        while outstanding.len() < IN_FLIGHT && next < TOTAL {
            let name = format!("m{next}");
            producer.feed(
                Frame::new(Command::Send)
                    .with_header("destination", "/queue/jobs")
                    .with_header("receipt", name.as_str())
                    .with_body(name.clone()),
            );
            outstanding.insert(name, Instant::now());
            next += 1;
        }
        producer.flush().await;
        let frame = producer
            .frame_within(WAIT)
            .await
            .unwrap_or_else(|| panic!("no RECEIPT within {WAIT:?} ({} out)", outstanding.len()));
        assert_eq!(frame.command, Command::Receipt, "{frame:?}");
        let id = frame.header("receipt-id").expect("a receipt-id").to_owned();
        let sent = outstanding.remove(&id).expect("a receipt for a SEND");
        match killed_at {
            None => latencies_before.push(sent.elapsed()),
            Some(at) if sent > at && first_after_kill.is_none() => {
                first_after_kill = Some(at.elapsed());
            }
            Some(_) => {}
        }
        receipted.insert(id);
        if receipted.len() == BEFORE_KILL && killed_at.is_none() {
            primary.kill();
            killed_at = Some(Instant::now());
        }
    }
    let failover = first_after_kill.expect("a message sent after the kill was receipted");

    // Every receipted message is delivered, on one node or the other.
    let mut delivered: HashMap<String, usize> = HashMap::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !receipted.iter().all(|m| delivered.contains_key(m)) {
        let body = tokio::time::timeout_at(deadline, seen.recv())
            .await
            .unwrap_or_else(|_| {
                let missing: Vec<_> = receipted
                    .iter()
                    .filter(|m| !delivered.contains_key(*m))
                    .collect();
                panic!(
                    "{} receipted messages not delivered: {missing:?}",
                    missing.len()
                )
            })
            .expect("the consumers stopped");
        *delivered.entry(body).or_default() += 1;
    }
    let duplicates: usize = delivered.values().map(|n| n - 1).sum();

    // Both nodes followed the failover to a replica, and stayed connected meanwhile (the
    // producer's and the consumers' connections carried traffic after it).
    let promoted = primary_port(sentinel_ports[0])
        .await
        .expect("the sentinels name a primary");
    assert!(replica_ports.contains(&promoted), "promoted {promoted}");
    for node in [&a, &b] {
        common::wait_metric(node, "wsx_stomp_redis_failovers_total", |v| v >= 1).await;
        let line = format!(
            "wsx_stomp_redis_primary{{mode=\"sentinel\",address=\"127.0.0.1:{promoted}\"}}"
        );
        assert_eq!(node.metric_value(&line).await, Some(1), "{line}");
    }
    assert_eq!(
        a.metric_value("wsx_stomp_redis_send_failures_total").await,
        Some(0)
    );
    latencies_before.sort();
    let median = latencies_before[latencies_before.len() / 2];
    eprintln!(
        "{test}: {TOTAL} receipted, all delivered, {duplicates} duplicates; first RECEIPT \
         {failover:?} after the kill; receipt latency before it (median, {IN_FLIGHT} in \
         flight, --redis-replicas-ack {}) {median:?}; test took {:?}",
        replicas_ack,
        started.elapsed()
    );
    for task in &consumers {
        assert!(!task.is_finished(), "a consumer's connection closed");
        task.abort();
    }
    producer.disconnect().await;
}
