//! [`Server`]: a TCP accept loop that applies a [`Policy`], runs a handler per connection and
//! shuts down gracefully.
//!
//! Per connection: the slot is counted as the connection is accepted (past
//! [`Policy::max_connections`] it is refused at once, see [`crate::refuse_over_capacity`]: a
//! 503 if the socket takes it without waiting, then closed; its request is not read), the
//! Upgrade request must arrive within [`Policy::handshake_timeout`] (408) and within
//! [`WebSocketConfig::max_header_bytes`] (431), the policy decides (403 and the auth hook's
//! statuses), then the handler gets the [`WebSocket`]. Every response is written within
//! [`crate::RESPONSE_TIMEOUT`]. On shutdown the loop stops accepting,
//! every connection is sent close 1001, and the server waits up to
//! [`Policy::shutdown_timeout`] for their close handshakes before dropping what is left.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::debug;
use wsx_proto::handshake::{HttpRequest, validate_upgrade};

use crate::config::WebSocketConfig;
use crate::error::{Error, Result};
use crate::policy::Policy;
use crate::server::{read_request, refuse_over_capacity, respond, upgrade};
use crate::websocket::WebSocket;

/// What a handler learns about its connection.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    /// The peer's address.
    pub peer: SocketAddr,
    /// The Upgrade request (path, query, headers, cookies).
    pub request: HttpRequest,
}

/// Stops a [`Server`]: no more accepts, close 1001 to every connection.
#[derive(Debug, Clone)]
pub struct ShutdownHandle(CancellationToken);

impl ShutdownHandle {
    /// Start the graceful shutdown; [`Server::serve`] returns once it is done.
    pub fn shutdown(&self) {
        self.0.cancel();
    }
}

/// A WebSocket server on a TCP listener.
///
/// ```no_run
/// # async fn run() -> std::io::Result<()> {
/// use wsx::{Policy, Server};
/// let server = Server::bind("127.0.0.1:9001").await?
///     .policy(Policy::default().allow_origin("https://app.example.com").max_connections(10_000));
/// // Call `stop.shutdown()` from a signal handler to close every connection with 1001.
/// let stop = server.shutdown_handle();
/// # drop(stop);
/// server
///     .serve(|mut ws, _info| async move {
///         while let Some(Ok(msg)) = ws.recv().await {
///             if msg.is_data() && ws.send(msg).await.is_err() {
///                 break;
///             }
///         }
///     })
///     .await
/// # }
/// ```
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    config: WebSocketConfig,
    policy: Policy,
    shutdown: CancellationToken,
    active: Arc<AtomicUsize>,
}

impl Server {
    /// Listen on `addr`.
    pub async fn bind(addr: impl ToSocketAddrs) -> std::io::Result<Server> {
        Ok(Server::from_listener(TcpListener::bind(addr).await?))
    }

    /// Serve on an existing listener.
    pub fn from_listener(listener: TcpListener) -> Server {
        Server {
            listener,
            config: WebSocketConfig::default(),
            policy: Policy::default(),
            shutdown: CancellationToken::new(),
            active: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Connection settings (limits, compression, keepalive, backpressure).
    pub fn config(mut self, config: WebSocketConfig) -> Self {
        self.config = config;
        self
    }

    /// Connect-time policy.
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// A handle that starts the graceful shutdown.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle(self.shutdown.clone())
    }

    /// The number of connections being served (handshakes included).
    pub fn active_connections(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    /// Accept connections and run `handler` for each, until the shutdown handle is used; then
    /// close every connection with 1001 and wait up to the shutdown timeout.
    pub async fn serve<H, F>(self, handler: H) -> std::io::Result<()>
    where
        H: Fn(WebSocket<TcpStream>, ConnectionInfo) -> F + Send + Sync + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let shared = Arc::new((self.config, self.policy));
        let mut tasks = JoinSet::new();
        loop {
            let accepted = tokio::select! {
                _ = self.shutdown.cancelled() => break,
                accepted = self.listener.accept() => accepted,
                Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            };
            let (tcp, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: keep serving the others.
                    debug!("accept failed: {e}");
                    continue;
                }
            };
            let slot = Slot::take(&self.active);
            if shared.1.max_connections.is_some_and(|max| slot.count > max) {
                debug!(%peer, "too many connections");
                refuse_over_capacity(&tcp);
                continue;
            }
            let (handler, shared, token) = (handler.clone(), shared.clone(), self.shutdown.clone());
            tasks.spawn(async move {
                let (config, policy) = &*shared;
                match handshake(tcp, peer, config, policy).await {
                    Ok((mut ws, info)) => {
                        ws.close_on(token);
                        handler(ws, info).await;
                    }
                    // Debug-quoted: the error may quote what the client sent (control characters escaped).
                    Err(e) => debug!(%peer, "handshake failed: {:?}", e.to_string()),
                }
                drop(slot);
            });
        }
        drop(self.listener);
        let deadline = tokio::time::sleep(shared.1.shutdown_timeout);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut deadline => {
                    tasks.abort_all();
                    break;
                }
                next = tasks.join_next() => if next.is_none() { break },
            }
        }
        Ok(())
    }
}

/// One counted connection; the count drops with it.
struct Slot {
    active: Arc<AtomicUsize>,
    count: usize,
}

impl Slot {
    fn take(active: &Arc<AtomicUsize>) -> Slot {
        let count = active.fetch_add(1, Ordering::Relaxed) + 1;
        Slot {
            active: active.clone(),
            count,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Read the request within the handshake timeout, apply the limit and the policy, upgrade.
async fn handshake(
    mut tcp: TcpStream,
    peer: SocketAddr,
    config: &WebSocketConfig,
    policy: &Policy,
) -> Result<(WebSocket<TcpStream>, ConnectionInfo)> {
    tcp.set_nodelay(true)?;
    let read = tokio::time::timeout(
        policy.handshake_timeout,
        read_request(&mut tcp, config.max_header_bytes),
    );
    let (req, leftover) = match read.await {
        Ok(r) => r?,
        Err(_) => {
            let _ = respond(&mut tcp, 408, &[], b"handshake timeout\n").await;
            return Err(Error::Timeout("waiting for the Upgrade request"));
        }
    };
    // Invalid upgrades get their HTTP error from `upgrade`; check first so the policy only sees
    // real WebSocket requests.
    if validate_upgrade(&req).is_err() {
        upgrade(tcp, &req, &leftover, config, Default::default()).await?;
        return Err(Error::Closed);
    }
    let accept = match policy.evaluate(&req, peer) {
        Ok(a) => a,
        Err(reject) => return reject.send(&mut tcp).await,
    };
    let ws = upgrade(tcp, &req, &leftover, config, accept).await?;
    Ok((ws, ConnectionInfo { peer, request: req }))
}
