//! Where the tasks connect: the one Redis of `redis://…`, or the primary the sentinels of
//! `redis-sentinel://…` name ([`crate::SentinelUrl`]).
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

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, ConnectionAddr, RedisResult, Value};

use crate::{Config, Error, NodeState, SentinelUrl};

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
}

impl Primary {
    /// The target of `url` (`redis://…` or `redis-sentinel://…`).
    pub(crate) fn from_url(url: &str) -> Result<Primary, Error> {
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
            Primary::Single(_) => config.backoff_max,
            Primary::Sentinel { .. } => config.backoff_max.min(SENTINEL_BACKOFF_MAX),
        }
    }

    /// The mode, for the metrics: `single` or `sentinel`.
    pub(crate) fn mode(&self) -> &'static str {
        match self {
            Primary::Single(_) => "single",
            Primary::Sentinel { .. } => "sentinel",
        }
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
