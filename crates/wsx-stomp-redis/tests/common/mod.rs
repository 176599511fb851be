//! Helpers for the Redis engine tests: the server from `WSX_TEST_REDIS_URL` (or a
//! `redis-server` of the test's own), two-node setups with a prefix of their own, and event
//! pumping.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use wsx_stomp::{
    Confirmation, ConnId, Delivery, Destination, Headers, Origin, Publish, SubscriberKey,
};
use wsx_stomp_redis::{Config, RedisEngine, RedisEvents};

/// The Redis URL to test against. `None` (after printing a skip line) when unset outside CI;
/// a panic when unset under `CI=true`.
pub fn redis_url(test: &str) -> Option<String> {
    match std::env::var("WSX_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("WSX_TEST_REDIS_URL is unset under CI=true: Redis tests cannot run");
            }
            eprintln!("skipped {test}: WSX_TEST_REDIS_URL is unset (scripts/test.sh starts Redis)");
            None
        }
    }
}

/// A TCP port nothing listens on (it was free a moment ago).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

/// A `redis-server` of the test's own (from PATH) on a port of its own, without persistence;
/// killed when dropped.
pub struct RedisServer(Child);

impl RedisServer {
    /// How long [`RedisServer::start`] waits for it to accept connections.
    const START_WAIT: Duration = Duration::from_secs(15);

    /// Whether `redis-server` is on PATH: `false` (after printing a skip line) when missing
    /// outside CI; a panic when missing under `CI=true`.
    pub fn available(test: &str) -> bool {
        tool_available("redis-server", test)
    }

    /// Start one on `port` and wait until it accepts connections (a panic if it exits first).
    pub fn start(port: u16) -> RedisServer {
        RedisServer::start_with(port, &[])
    }

    /// [`RedisServer::start`] with more arguments (`--replicaof 127.0.0.1 PORT`).
    pub fn start_with(port: u16, extra: &[&str]) -> RedisServer {
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(std::env::temp_dir())
            .args(extra);
        RedisServer::spawn(command, port)
    }

    /// Run `command` (a redis-server listening on `port`) and wait until it accepts
    /// connections (a panic if it exits first).
    fn spawn(mut command: Command, port: u16) -> RedisServer {
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn redis-server");
        let mut server = RedisServer(child);
        let deadline = std::time::Instant::now() + Self::START_WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = server.0.try_wait() {
                panic!("redis-server on port {port} exited: {status}");
            }
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not listen on port {port} in time"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A replica of the Redis on `primary` (see [`RedisServer::start`]), loading what it
/// replicates without touching the disk.
pub fn replica(port: u16, primary: u16) -> RedisServer {
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

/// A sentinel of the test's own (`redis-server CONF --sentinel`) on `port`, watching the
/// primary on `primary` as `service` (quorum 1, down after 1 s); killed, and its directory
/// removed, when dropped.
pub struct Sentinel {
    // Dropped first: the process is killed before its directory goes.
    _server: RedisServer,
    dir: std::path::PathBuf,
}

impl Sentinel {
    pub fn start(port: u16, service: &str, primary: u16) -> Sentinel {
        let dir = std::env::temp_dir().join(format!("wsx-sentinel-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a directory for the sentinel");
        let conf = dir.join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {}\n\
                 sentinel monitor {service} 127.0.0.1 {primary} 1\n\
                 sentinel down-after-milliseconds {service} 1000\n\
                 sentinel failover-timeout {service} 5000\n",
                dir.display()
            ),
        )
        .expect("write the sentinel configuration");
        // The configuration file comes first.
        let mut command = Command::new("redis-server");
        command.arg(&conf).arg("--sentinel");
        Sentinel {
            _server: RedisServer::spawn(command, port),
            dir,
        }
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Redis Cluster of the test's own (`redis-server --cluster-enabled yes`, joined with
/// `redis-cli --cluster create`, both from PATH): `primaries` primaries with `replicas`
/// replicas each, on free ports (each with its bus port, +10000, free too), a node timeout of
/// 1 s; killed, and its directory removed, when dropped.
pub struct RedisCluster {
    /// The nodes, by port, in the order started (primaries first).
    servers: Vec<(u16, RedisServer)>,
    /// The ports of the nodes started as primaries.
    pub primaries: Vec<u16>,
    dir: std::path::PathBuf,
}

impl RedisCluster {
    /// Whether `redis-server` and `redis-cli` are on PATH: `false` (after printing a skip
    /// line) when missing outside CI; a panic when missing under `CI=true`.
    pub fn available(test: &str) -> bool {
        RedisServer::available(test) && tool_available("redis-cli", test)
    }

    /// Start the nodes, create the cluster and wait until every node says it is ok.
    pub fn start(primaries: usize, replicas: usize) -> RedisCluster {
        let n = primaries * (1 + replicas);
        let ports: Vec<u16> = (0..n).map(|_| cluster_port()).collect();
        let dir =
            std::env::temp_dir().join(format!("wsx-cluster-{}-{}", std::process::id(), ports[0]));
        std::fs::create_dir_all(&dir).expect("a directory for the cluster");
        let servers = ports
            .iter()
            .map(|port| {
                let conf = dir.join(format!("nodes-{port}.conf"));
                let dbfile = format!("wsx-cluster-{port}.rdb");
                let server = RedisServer::start_with(
                    *port,
                    &[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        conf.to_str().expect("utf-8 path"),
                        "--cluster-node-timeout",
                        "1000",
                        // A replica takes over however long ago it heard from its primary.
                        "--cluster-replica-validity-factor",
                        "0",
                        "--dbfilename",
                        &dbfile,
                    ],
                );
                (*port, server)
            })
            .collect();
        let cluster = RedisCluster {
            servers,
            primaries: ports[..primaries].to_vec(),
            dir,
        };
        let status = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(ports.iter().map(|p| format!("127.0.0.1:{p}")))
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .status()
            .expect("run redis-cli --cluster create");
        assert!(status.success(), "redis-cli --cluster create: {status}");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        for port in &ports {
            while !cluster_ok(*port) {
                assert!(
                    std::time::Instant::now() < deadline,
                    "cluster node {port} not ok in time"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        cluster
    }

    /// `redis-cluster://…` naming every node started as a primary.
    pub fn url(&self) -> String {
        let nodes: Vec<String> = self
            .primaries
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        format!("redis-cluster://{}", nodes.join(","))
    }

    /// Kill the node on `port` (SIGKILL).
    pub fn kill(&mut self, port: u16) {
        self.servers.retain(|(p, _)| *p != port);
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        self.servers.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A free port whose cluster bus port (+10000) is free too.
fn cluster_port() -> u16 {
    loop {
        let port = free_port();
        if port < 55_000 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

/// Whether the node on `port` says `cluster_state:ok`.
fn cluster_ok(port: u16) -> bool {
    let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{port}")) else {
        return false;
    };
    let Ok(mut conn) = client.get_connection() else {
        return false;
    };
    redis::cmd("CLUSTER")
        .arg("INFO")
        .query::<String>(&mut conn)
        .is_ok_and(|info| info.contains("cluster_state:ok"))
}

/// A key prefix no other test run shares.
pub fn unique_prefix(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("wsxtest:{test}:{}:{nanos}:", std::process::id())
}

/// One node: an engine and its events.
pub struct Node {
    pub engine: RedisEngine,
    pub events: RedisEvents,
    /// The confirmations of SENDs made with an origin, as they came.
    pub confirmations: Vec<Confirmation>,
}

impl Node {
    pub fn start(config: Config) -> Node {
        let (engine, events) = RedisEngine::start(config).expect("engine starts");
        Node {
            engine,
            events,
            confirmations: Vec::new(),
        }
    }

    /// Wait for the next event and handle it; the deliveries it caused (its confirmations
    /// go to `self.confirmations`).
    pub async fn next(&mut self, timeout: Duration) -> Option<Vec<Delivery>> {
        let event = tokio::time::timeout(timeout, self.events.recv())
            .await
            .ok()??;
        let mut out = Vec::new();
        self.engine
            .handle_event(event, &mut out, &mut self.confirmations);
        Some(out)
    }

    /// Handle events until a confirmation arrived (`None` after `timeout`); deliveries are
    /// dropped.
    pub async fn confirmation(&mut self, timeout: Duration) -> Option<Confirmation> {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.confirmations.is_empty() {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            self.next(left).await?;
        }
        Some(self.confirmations.remove(0))
    }

    /// Collect deliveries until `n` arrived (panics after `timeout`).
    pub async fn collect(&mut self, n: usize, timeout: Duration) -> Vec<Delivery> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut got = Vec::new();
        while got.len() < n {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Some(out) => got.extend(out),
                None => panic!("timed out with {} of {n} deliveries", got.len()),
            }
        }
        got
    }
}

/// The origin of SEND number `seq` of connection `conn` to `destination`, asking for receipt
/// `r{seq}`.
pub fn origin(conn: u64, seq: u64, destination: &str) -> Origin {
    Origin {
        conn: ConnId(conn),
        receipt: Some(format!("r{seq}").into()),
        destination: dest(destination),
        seq,
    }
}

pub fn key(conn: u64, sub: &str) -> SubscriberKey {
    SubscriberKey::new(ConnId(conn), sub)
}

pub fn dest(s: &str) -> Destination {
    Destination::parse(s).expect("valid destination")
}

pub fn publish(destination: &str, body: impl Into<Bytes>) -> Publish {
    let mut headers = Headers::new();
    headers.push("content-type", "text/plain");
    Publish::new(dest(destination), headers, body.into())
}

/// Entries pending in the group at consumer `node` of stream `key` (`XPENDING` summary).
pub async fn pending_at(url: &str, key: &str, node: &str) -> i64 {
    let client = redis::Client::open(url).expect("url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("admin connection");
    let summary: redis::Value = redis::cmd("XPENDING")
        .arg(key)
        .arg("wsx")
        .query_async(&mut conn)
        .await
        .expect("XPENDING");
    // [count, first, last, [[consumer, count], ...]]
    let redis::Value::Array(parts) = summary else {
        panic!("XPENDING answered {summary:?}");
    };
    let Some(redis::Value::Array(consumers)) = parts.get(3) else {
        return 0;
    };
    consumers
        .iter()
        .find_map(|c| match c {
            redis::Value::Array(pair) => match (pair.first(), pair.get(1)) {
                (Some(redis::Value::BulkString(name)), Some(redis::Value::BulkString(n)))
                    if name == node.as_bytes() =>
                {
                    std::str::from_utf8(n).ok()?.parse().ok()
                }
                _ => None,
            },
            _ => None,
        })
        .unwrap_or(0)
}

/// A connection of the test's own to the server.
pub async fn admin(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("admin connection")
}

/// Whether `key` exists.
pub async fn exists(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> bool {
    redis::cmd("EXISTS")
        .arg(key)
        .query_async::<i64>(conn)
        .await
        .expect("EXISTS")
        == 1
}

/// Whether `tool --version` runs: `false` (after printing a skip line) when it does not outside
/// CI; a panic when it does not under `CI=true`.
fn tool_available(tool: &str, test: &str) -> bool {
    let found = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            !std::env::var("CI").is_ok_and(|v| v == "true"),
            "{tool} is missing under CI=true: {test} cannot run"
        );
        eprintln!("skipped {test}: {tool} is not on PATH");
    }
    found
}
