//! [`Server`]: a TCP accept loop that applies a [`Policy`], serves WebSockets and plain HTTP,
//! and shuts down gracefully.
//!
//! Two ways to serve: [`Server::serve`] runs one WebSocket handler for every connection (plain
//! TCP); [`Server::serve_routes`] lets a route handler see each request (path, headers, peer)
//! and [`Answer`] it with a plain [`HttpResponse`] or an [`Upgrade`] to a WebSocket session,
//! over plain TCP or TLS ([`Server::tls`]). Either way, the server keeps, in one place, what
//! every connection is held to:
//!
//! - Counting: a connection is counted as it is accepted ([`Server::active_connections`]); past
//!   [`Policy::max_connections`] it is refused at once, before its request is read: a 503 if
//!   the socket takes it without waiting, then closed ([`crate::refuse_over_capacity`]); over
//!   TLS it is just closed.
//! - Deadlines and limits: the TLS handshake and the request head must arrive within
//!   [`Policy::handshake_timeout`] (408, or closed during the TLS handshake) and the head within
//!   [`WebSocketConfig::max_header_bytes`] (431); a malformed head gets 400. Every response is
//!   written within [`crate::RESPONSE_TIMEOUT`].
//! - Upgrades: checked (400, 426 …), then the policy decides (403 and the auth hook's
//!   statuses); [`Server::on_handshake_failure`] hears of every malformed request or invalid
//!   upgrade (for metrics), before the client gets its answer.
//! - Shutdown ([`ShutdownHandle::shutdown`]): the loop stops accepting, connections still
//!   sending their request head are closed, every WebSocket is sent close 1001 "server shutting
//!   down" (except those whose session does it, see [`Upgrade::session_handles_shutdown`]), and
//!   the server waits up to [`Policy::shutdown_timeout`] (or until
//!   [`ShutdownHandle::abort`]) for their close handshakes before dropping what is left.
//! - HTTP/2 ([`Server::http2`], feature `http2`): a connection that negotiates ALPN `h2`, or
//!   starts with the HTTP/2 preface on plain TCP, is served by `http2` (this module's
//!   submodule): each stream's request goes to the same route handler, WebSockets are RFC 8441
//!   extended CONNECTs, and each counts against [`Policy::max_connections`].
// Without the `rustls` feature, the docs still mention `Server::tls`.
#![cfg_attr(not(feature = "rustls"), allow(rustdoc::broken_intra_doc_links))]

mod answer;
mod connection;
#[cfg(feature = "http2")]
mod http2;
mod request_body;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, warn};
use wsx_proto::handshake::{HandshakeError, HttpRequest};

use crate::config::WebSocketConfig;
use crate::policy::Policy;
use crate::server::refuse_over_capacity;
#[cfg(feature = "rustls")]
use crate::tls::TlsAcceptor;
use crate::websocket::WebSocket;
use connection::{Transport, serve_connection};

pub use answer::{Answer, HttpResponse, Upgrade};
pub use request_body::{BodyRefused, ReadBody};

/// How long the accept loop waits after a failed accept (usually: out of file descriptors)
/// before it accepts again, instead of spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The handshake-failure hook (see [`Server::on_handshake_failure`]).
type HandshakeFailureHook = Arc<dyn Fn(&HandshakeError, SocketAddr) + Send + Sync>;

/// What a handler learns about its connection.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    /// The peer's address.
    pub peer: SocketAddr,
    /// The request (path, query, headers, cookies).
    pub request: HttpRequest,
}

/// Stops a [`Server`]: no more accepts, close 1001 to every connection.
#[derive(Debug, Clone)]
pub struct ShutdownHandle {
    shutdown: CancellationToken,
    abort: CancellationToken,
    active: Arc<AtomicUsize>,
}

impl ShutdownHandle {
    /// Start the graceful shutdown; [`Server::serve`] returns once it is done.
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Cut the shutdown short: drop the connections still open now, without waiting for their
    /// close handshakes (a second Ctrl-C). Starts the shutdown if it has not begun.
    pub fn abort(&self) {
        self.shutdown.cancel();
        self.abort.cancel();
    }

    /// The number of connections being served (handshakes included).
    pub fn active_connections(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }
}

/// What every connection task of a [`Server`] shares.
struct Settings {
    config: WebSocketConfig,
    policy: Policy,
    shutdown: CancellationToken,
    #[cfg(feature = "rustls")]
    tls: Option<TlsAcceptor>,
    on_handshake_failure: Option<HandshakeFailureHook>,
    /// Serve HTTP/2 too ([`Server::http2`]), with these limits.
    #[cfg(feature = "http2")]
    http2: Option<crate::http2::Http2Limits>,
    /// The connections and HTTP/2 WebSockets being served.
    #[cfg(feature = "http2")]
    active: Arc<AtomicUsize>,
}

impl Settings {
    /// Whether connections start with a TLS handshake.
    fn is_tls(&self) -> bool {
        #[cfg(feature = "rustls")]
        return self.tls.is_some();
        #[cfg(not(feature = "rustls"))]
        false
    }
}

/// A WebSocket and HTTP server on a TCP listener.
///
/// One WebSocket handler for every connection:
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
///
/// Routes: plain HTTP next to WebSocket endpoints, over TLS here.
///
/// ```no_run
/// # #[cfg(feature = "rustls")]
/// # async fn run() -> Result<(), wsx::Error> {
/// use wsx::tls::TlsAcceptor;
/// use wsx::{Answer, HttpResponse, Policy, Server, Upgrade, WebSocketConfig};
/// let server = Server::bind("0.0.0.0:8443").await?
///     .tls(TlsAcceptor::from_pem_files("cert.pem", "key.pem")?)
///     .policy(Policy::default().max_connections(10_000));
/// server
///     .serve_routes(|info| match info.request.path() {
///         "/healthz" => Answer::text(200, "ok"),
///         "/" => HttpResponse::new(200, "<h1>hello</h1>")
///             .header("Content-Type", "text/html")
///             .into(),
///         "/ws/echo" => Upgrade::new(|mut ws, _info| async move {
///             while let Some(Ok(msg)) = ws.recv().await {
///                 if msg.is_data() && ws.send(msg).await.is_err() {
///                     break;
///                 }
///             }
///         })
///         .config(WebSocketConfig::default().max_message_size(1 << 20))
///         .into(),
///         _ => Answer::text(404, "not found\n"),
///     })
///     .await?;
/// # Ok(())
/// # }
/// ```
pub struct Server {
    listener: TcpListener,
    settings: Settings,
    abort: CancellationToken,
    active: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("listener", &self.listener)
            .field("config", &self.settings.config)
            .field("policy", &self.settings.policy)
            .field("tls", &self.settings.is_tls())
            .field("active", &self.active)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Listen on `addr`.
    pub async fn bind(addr: impl ToSocketAddrs) -> std::io::Result<Server> {
        Ok(Server::from_listener(TcpListener::bind(addr).await?))
    }

    /// Serve on an existing listener.
    pub fn from_listener(listener: TcpListener) -> Server {
        let active = Arc::new(AtomicUsize::new(0));
        Server {
            listener,
            settings: Settings {
                config: WebSocketConfig::default(),
                policy: Policy::default(),
                shutdown: CancellationToken::new(),
                #[cfg(feature = "rustls")]
                tls: None,
                on_handshake_failure: None,
                #[cfg(feature = "http2")]
                http2: None,
                #[cfg(feature = "http2")]
                active: active.clone(),
            },
            abort: CancellationToken::new(),
            active,
        }
    }

    /// Connection settings (limits, compression, keepalive, backpressure).
    pub fn config(mut self, config: WebSocketConfig) -> Self {
        self.settings.config = config;
        self
    }

    /// Connect-time policy, and the connection limit, handshake timeout and shutdown timeout.
    pub fn policy(mut self, policy: Policy) -> Self {
        self.settings.policy = policy;
        self
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// A handle that starts the graceful shutdown.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            shutdown: self.settings.shutdown.clone(),
            abort: self.abort.clone(),
            active: self.active.clone(),
        }
    }

    /// The number of connections being served (handshakes included).
    pub fn active_connections(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    /// Serve TLS (HTTPS and `wss://`) with this acceptor: each connection starts with a TLS
    /// handshake, within [`Policy::handshake_timeout`] together with the request head. For
    /// [`Server::serve_routes`] ([`Server::serve`] hands out plain TCP streams and refuses to
    /// start with TLS).
    #[cfg(feature = "rustls")]
    pub fn tls(mut self, acceptor: TlsAcceptor) -> Self {
        self.settings.tls = Some(acceptor);
        self
    }

    /// Serve HTTP/2 as well (feature `http2`), for [`Server::serve_routes`]: with
    /// [`Server::tls`], ALPN offers `h2` then `http/1.1`
    /// ([`TlsAcceptor::offer_http2`]); on plain TCP, a client that starts with the HTTP/2
    /// preface (h2c with prior knowledge) is served HTTP/2. Over HTTP/2 every request goes to
    /// the same route handler: plain answers become HTTP/2 responses on the stream (the
    /// connection stays open for the next ones), and upgrades are served to RFC 8441 extended
    /// CONNECT requests, with the same checks, policy and session; the session's
    /// [`MaybeTlsStream`](crate::MaybeTlsStream) is then
    /// [`Http2`](crate::MaybeTlsStream::Http2) and [`ConnectionInfo::request`] has version 2.
    /// Each WebSocket on an HTTP/2 connection counts against [`Policy::max_connections`] as
    /// a connection of its own (the connection counts once too); one past it is refused
    /// with 503. The streams of one connection are bounded by `limits`.
    #[cfg(feature = "http2")]
    pub fn http2(mut self, limits: crate::http2::Http2Limits) -> Self {
        self.settings.http2 = Some(limits);
        self
    }

    /// Call `hook` for every request refused as malformed (400), oversized (431) or not a
    /// valid upgrade on a WebSocket route (400, 426 …), before the client gets the answer; for
    /// metrics. Policy refusals (403, the auth hook's) and timeouts are not failures of this
    /// kind.
    pub fn on_handshake_failure<F>(mut self, hook: F) -> Self
    where
        F: Fn(&HandshakeError, SocketAddr) + Send + Sync + 'static,
    {
        self.settings.on_handshake_failure = Some(Arc::new(hook));
        self
    }

    /// Accept connections and run `handler` for each WebSocket, until the shutdown handle is
    /// used; then close every connection with 1001 and wait up to the shutdown timeout. Requests
    /// that are not valid upgrades get their HTTP error (400, 426 …). Plain TCP only: with
    /// [`Server::tls`], this returns an `InvalidInput` error at once (use
    /// [`Server::serve_routes`]).
    pub async fn serve<H, F>(self, handler: H) -> std::io::Result<()>
    where
        H: Fn(WebSocket<TcpStream>, ConnectionInfo) -> F + Send + Sync + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        if self.settings.is_tls() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "Server::serve runs on plain TCP: with a TLS acceptor, use Server::serve_routes",
            ));
        }
        let handler = Arc::new(handler);
        self.run(move |_: &ConnectionInfo| {
            let handler = handler.clone();
            Answer::Upgrade(Upgrade::with_session(move |ws, info| handler(ws, info)))
        })
        .await
    }

    /// Accept connections and let `route` answer each request, with a plain HTTP response or
    /// an upgrade to a WebSocket session (see [`Answer`]), until the shutdown handle is used;
    /// then close every WebSocket with 1001 and wait up to the shutdown timeout.
    pub async fn serve_routes<R>(self, route: R) -> std::io::Result<()>
    where
        R: Fn(&ConnectionInfo) -> Answer + Send + Sync + 'static,
    {
        self.run(route).await
    }

    /// The accept loop, then the graceful shutdown.
    async fn run<S, R>(self, route: R) -> std::io::Result<()>
    where
        S: Transport,
        R: Fn(&ConnectionInfo) -> Answer<S> + Send + Sync + 'static,
    {
        let Server {
            listener,
            settings,
            abort,
            active,
        } = self;
        #[cfg(all(feature = "http2", feature = "rustls"))]
        let settings = {
            let mut settings = settings;
            if settings.http2.is_some() && S::HTTP2 {
                settings.tls = settings.tls.map(|tls| tls.offer_http2());
            }
            settings
        };
        let (settings, route) = (Arc::new(settings), Arc::new(route));
        let mut tasks = JoinSet::new();
        loop {
            let accepted = tokio::select! {
                () = settings.shutdown.cancelled() => break,
                accepted = listener.accept() => accepted,
                Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                    report_panic(done);
                    continue;
                }
            };
            let (tcp, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: keep serving the others.
                    warn!("accept failed: {e}");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            };
            let slot = Slot::take(&active);
            if settings
                .policy
                .max_connections
                .is_some_and(|max| slot.count > max)
            {
                debug!(%peer, "too many connections");
                // Over TLS the client expects a TLS handshake, not a 503: just closed.
                if !settings.is_tls() {
                    refuse_over_capacity(&tcp);
                }
                continue;
            }
            let (settings, route) = (settings.clone(), route.clone());
            tasks.spawn(async move {
                serve_connection(tcp, peer, &settings, &*route).await;
                drop(slot);
            });
        }
        drop(listener);
        let timeout = settings.policy.shutdown_timeout;
        let drained = async {
            while let Some(done) = tasks.join_next().await {
                report_panic(done);
            }
        };
        tokio::select! {
            finished = tokio::time::timeout(timeout, drained) => if finished.is_err() {
                warn!("shutdown timeout ({timeout:?}): dropping the remaining connections");
            },
            () = abort.cancelled() => warn!("shutdown cut short: dropping the remaining connections"),
        }
        tasks.shutdown().await;
        Ok(())
    }
}

/// Log a connection task that panicked.
fn report_panic(done: Result<(), tokio::task::JoinError>) {
    if let Err(e) = done
        && e.is_panic()
    {
        error!("a connection task panicked: {e}");
    }
}

/// One counted connection (or HTTP/2 WebSocket); the count drops with it.
pub(super) struct Slot {
    active: Arc<AtomicUsize>,
    pub(super) count: usize,
}

impl Slot {
    pub(super) fn take(active: &Arc<AtomicUsize>) -> Slot {
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
