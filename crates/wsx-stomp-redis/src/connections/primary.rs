//! Where the tasks connect: the one Redis of `redis://…`, the primary the sentinels of
//! `redis-sentinel://…` name ([`crate::SentinelUrl`]), or the primaries of the Redis Cluster
//! of `redis-cluster://…` ([`crate::ClusterUrl`]), learned from its seed nodes.
//!
//! Every task asks [`Primary::client`] each time it (re)connects, so after a failover it
//! connects to the promoted replica: the sentinels are asked in turn
//! (`SENTINEL get-master-addr-by-name SERVICE`) and the address one names is used only if
//! it says it is a primary (`ROLE`), so a sentinel that has not seen the failover yet does
//! not send the node to the demoted one. The address in use is kept in the node's state for
//! the metrics, which count a change of address as a failover seen.
//!
//! A connection to a primary that was demoted while it stayed up (a manual failover, a
//! network partition) does not fail by itself until the sentinels turn it into a replica,
//! which can take many seconds: meanwhile the node would write where no one reads (and,
//! with [`crate::Config::replicas_ack`], wait for replicas it no longer has). So in
//! Sentinel mode [`watch`] asks the sentinels every [`WATCH_EVERY`]; when they name another
//! primary (and it answers as one) it bumps the node's primary epoch, and each task
//! connected under an older epoch drops its connection and connects again (the writer at its
//! next check or `WAIT`, the reader before its next read, the subscriber within
//! [`WATCH_EVERY`]).
//!
//! In cluster mode the client library's cluster connection follows the slots itself
//! (`MOVED`/`ASK`, a refresh of its slot map when a node fails); [`watch`] only asks the
//! cluster for its primaries (`CLUSTER SLOTS`) every [`WATCH_EVERY`], for the metrics, and
//! counts a change of the set of primaries as a failover seen.

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::cluster::ClusterClient;
use redis::{AsyncConnectionConfig, Client, ConnectionAddr, RedisResult, Value};

use super::Conn;
use crate::{ClusterUrl, Config, Error, NodeState, SentinelUrl};

/// How long connecting to a node may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a sentinel, or the primary it names, may take to connect and to answer.
const ASK_TIMEOUT: Duration = Duration::from_secs(1);

/// The longest reconnect delay in Sentinel mode: while the sentinels still name the dead
/// primary, a node asks them again this often, so that it reaches the promoted replica soon
/// after the promotion (asking costs a sentinel two short connections).
pub(crate) const SENTINEL_BACKOFF_MAX: Duration = Duration::from_millis(250);

/// How often [`watch`] asks the sentinels which primary they name.
pub(crate) const WATCH_EVERY: Duration = Duration::from_millis(500);

/// The Redis the tasks connect to.
#[derive(Debug, Clone)]
pub(crate) enum Primary {
    /// `redis://…`: always this one.
    Single(Client),
    /// `redis-sentinel://…`: the primary the sentinels name at each connect.
    Sentinel {
        /// A client per sentinel, in the URL's order.
        sentinels: Vec<Client>,
        service: String,
    },
    /// `redis-cluster://…`: its seed nodes (`redis://HOST:PORT`), from which the client
    /// library learns the slots and their primaries.
    Cluster {
        /// The seed nodes, as `redis://` URLs.
        seeds: Vec<String>,
    },
}

impl Primary {
    /// The target of `url` (`redis://…` or `redis-sentinel://…`).
    pub(crate) fn from_url(url: &str) -> Result<Primary, Error> {
        if ClusterUrl::is_cluster(url) {
            let parsed: ClusterUrl = url.parse()?;
            let seeds = parsed
                .nodes
                .iter()
                .map(|(host, port)| match host.contains(':') {
                    true => format!("redis://[{host}]:{port}"),
                    false => format!("redis://{host}:{port}"),
                })
                .collect();
            return Ok(Primary::Cluster { seeds });
        }
        if !SentinelUrl::is_sentinel(url) {
            let client = Client::open(url).map_err(|e| Error::Url(e.to_string()))?;
            return Ok(Primary::Single(client));
        }
        let parsed: SentinelUrl = url.parse()?;
        let sentinels = parsed
            .sentinels
            .into_iter()
            .map(|(host, port)| Client::open(ConnectionAddr::Tcp(host, port)))
            .collect::<RedisResult<Vec<_>>>()
            .map_err(|e| Error::Url(e.to_string()))?;
        Ok(Primary::Sentinel {
            sentinels,
            service: parsed.service,
        })
    }

    /// The longest reconnect delay: [`Config::backoff_max`], at most
    /// [`SENTINEL_BACKOFF_MAX`] in Sentinel mode.
    pub(crate) fn backoff_max(&self, config: &Config) -> Duration {
        match self {
            Primary::Single(_) | Primary::Cluster { .. } => config.backoff_max,
            Primary::Sentinel { .. } => config.backoff_max.min(SENTINEL_BACKOFF_MAX),
        }
    }

    /// The mode, for the metrics: `single` or `sentinel`.
    pub(crate) fn mode(&self) -> &'static str {
        match self {
            Primary::Single(_) => "single",
            Primary::Sentinel { .. } => "sentinel",
            Primary::Cluster { .. } => "cluster",
        }
    }

    /// Whether this is a Redis Cluster.
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self, Primary::Cluster { .. })
    }

    /// A client for the cluster's nodes, answering within `response_timeout`; with `push`,
    /// over RESP3, its pushes (sharded pub/sub messages) handed to `push`.
    pub(crate) fn cluster_client(
        seeds: &[String],
        response_timeout: Option<Duration>,
        push: Option<impl redis::aio::AsyncPushSender>,
    ) -> RedisResult<ClusterClient> {
        let mut builder = ClusterClient::builder(seeds.iter().map(String::as_str))
            .connection_timeout(CONNECT_TIMEOUT)
            // Failures are the tasks' to retry (with their backoff): the client library
            // retries a command a few times only, over about a second.
            .retries(3);
        if let Some(timeout) = response_timeout {
            builder = builder.response_timeout(timeout);
        }
        if let Some(push) = push {
            builder = builder
                .use_protocol(redis::ProtocolVersion::RESP3)
                .push_sender(push);
        }
        builder.build()
    }

    /// Connect once: to the current primary, or to the cluster (its primaries recorded in
    /// `shared`).
    pub(crate) async fn connect(
        &self,
        shared: &NodeState,
        response_timeout: Option<Duration>,
    ) -> RedisResult<Conn> {
        if let Primary::Cluster { seeds } = self {
            let client = Primary::cluster_client(seeds, response_timeout, None::<NoPush>)?;
            let mut conn = Conn::Cluster(client.get_async_connection().await?);
            if let Ok(primaries) = cluster_primaries(&mut conn).await {
                shared.set_primaries(primaries);
            }
            return Ok(conn);
        }
        let settings = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(response_timeout);
        let client = self.client(shared).await?;
        Ok(Conn::Single(
            client
                .get_multiplexed_async_connection_with_config(&settings)
                .await?,
        ))
    }

    /// A client for the current primary (asking the sentinels in Sentinel mode); records its
    /// address in `shared`.
    pub(crate) async fn client(&self, shared: &NodeState) -> RedisResult<Client> {
        let client = self.resolve().await?;
        shared.set_primary(client.get_connection_info().addr().to_string());
        Ok(client)
    }

    /// A client for the current primary.
    async fn resolve(&self) -> RedisResult<Client> {
        let client = match self {
            Primary::Single(client) => client.clone(),
            Primary::Cluster { .. } => {
                return Err(no_primary("a cluster has several primaries"));
            }
            Primary::Sentinel { sentinels, service } => {
                let mut last_error = None;
                let mut found = None;
                for sentinel in sentinels {
                    match ask(sentinel, service).await {
                        Ok(client) => {
                            found = Some(client);
                            break;
                        }
                        Err(error) => {
                            tracing::debug!(%error, sentinel = %sentinel.get_connection_info().addr(), "no primary from this sentinel");
                            last_error = Some(error);
                        }
                    }
                }
                match (found, last_error) {
                    (Some(client), _) => client,
                    (None, Some(error)) => return Err(error),
                    (None, None) => return Err(no_primary("no sentinel configured")),
                }
            }
        };
        Ok(client)
    }
}

/// In Sentinel mode, until the engine goes away: every [`WATCH_EVERY`], bump the node's
/// primary epoch if the sentinels name another primary than the one the tasks last
/// connected to (see the module docs).
pub(crate) async fn watch(
    primary: Primary,
    shared: std::sync::Arc<NodeState>,
    mut shutdown: tokio::sync::watch::Receiver<()>,
) {
    if matches!(primary, Primary::Single(_)) {
        return;
    }
    if let Primary::Cluster { seeds } = &primary {
        return watch_cluster(seeds, &shared, &mut shutdown).await;
    }
    loop {
        tokio::select! {
            _ = tokio::time::sleep(WATCH_EVERY) => {}
            _ = shutdown.changed() => return,
        }
        let named = tokio::select! {
            r = primary.resolve() => r,
            _ = shutdown.changed() => return,
        };
        let Ok(named) = named else { continue };
        let named = named.get_connection_info().addr().to_string();
        if shared
            .primary_addr()
            .is_some_and(|current| current != named)
        {
            tracing::warn!(primary = %named, "the sentinels name another redis primary; reconnecting");
            shared.bump_primary_epoch();
        }
    }
}

/// The primary `sentinel` names for `service`, checked to be one.
async fn ask(sentinel: &Client, service: &str) -> RedisResult<Client> {
    let mut conn = quick_connection(sentinel).await?;
    let addr: Option<(String, u16)> = redis::cmd("SENTINEL")
        .arg("get-master-addr-by-name")
        .arg(service)
        .query_async(&mut conn)
        .await?;
    let Some((host, port)) = addr else {
        return Err(no_primary("the sentinel does not know the service"));
    };
    let primary = Client::open(ConnectionAddr::Tcp(host, port))?;
    let mut conn = quick_connection(&primary).await?;
    let role: Value = redis::cmd("ROLE").query_async(&mut conn).await?;
    match role {
        Value::Array(parts) if matches!(parts.first(), Some(Value::BulkString(r)) if r.as_slice() == b"master") => {
            Ok(primary)
        }
        _ => Err(no_primary(
            "the address the sentinel names is not a primary (yet)",
        )),
    }
}

/// A short-lived connection with short timeouts (a dead sentinel must not hold the node up).
async fn quick_connection(client: &Client) -> RedisResult<MultiplexedConnection> {
    let settings = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(ASK_TIMEOUT))
        .set_response_timeout(Some(ASK_TIMEOUT));
    client
        .get_multiplexed_async_connection_with_config(&settings)
        .await
}

fn no_primary(why: &'static str) -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::Io, "no primary", why.to_owned()))
}

/// No pushes (a cluster connection for commands).
type NoPush = fn(redis::PushInfo) -> Result<(), ()>;

/// In cluster mode, until the engine goes away: every [`WATCH_EVERY`], record the cluster's
/// primaries in `shared` (a change of the set counts as a failover seen).
async fn watch_cluster(
    seeds: &[String],
    shared: &NodeState,
    shutdown: &mut tokio::sync::watch::Receiver<()>,
) {
    let mut conn: Option<Conn> = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(WATCH_EVERY) => {}
            _ = shutdown.changed() => return,
        }
        if conn.is_none() {
            let client = Primary::cluster_client(seeds, Some(ASK_TIMEOUT), None::<NoPush>);
            conn = match client {
                Ok(client) => tokio::select! {
                    c = client.get_async_connection() => c.ok().map(Conn::Cluster),
                    _ = shutdown.changed() => return,
                },
                Err(_) => None,
            };
        }
        let Some(c) = conn.as_mut() else { continue };
        let asked = tokio::select! {
            r = cluster_primaries(c) => r,
            _ = shutdown.changed() => return,
        };
        match asked {
            Ok(primaries) => shared.set_primaries(primaries),
            Err(error) => {
                tracing::debug!(%error, "CLUSTER SLOTS failed");
                conn = None;
            }
        }
    }
}

/// The addresses (`host:port`) of the primaries serving slots, sorted, from `CLUSTER SLOTS`.
pub(crate) async fn cluster_primaries(conn: &mut Conn) -> RedisResult<Vec<String>> {
    let slots: Value = redis::cmd("CLUSTER").arg("SLOTS").query_async(conn).await?;
    let mut primaries = Vec::new();
    if let Value::Array(ranges) = slots {
        for range in ranges {
            let Value::Array(parts) = range else { continue };
            let Some(Value::Array(node)) = parts.get(2) else {
                continue;
            };
            let host = match node.first() {
                Some(Value::BulkString(host)) => String::from_utf8_lossy(host).into_owned(),
                Some(Value::SimpleString(host)) => host.clone(),
                _ => continue,
            };
            let Some(Value::Int(port)) = node.get(1) else {
                continue;
            };
            let addr = if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            };
            if !primaries.contains(&addr) {
                primaries.push(addr);
            }
        }
    }
    primaries.sort();
    Ok(primaries)
}
