//! STOMP over plain TCP and TLS: [`Broker::serve_tcp`] and [`Broker::serve_tls`], the accept
//! loops that make the broker usable as the external broker of Spring's `StompBrokerRelay`
//! (or of any STOMP client that speaks TCP, port 61613 by convention).
//!
//! ```text
//! TcpListener ─ accept (max connections) ─ [TLS handshake, deadline] ─ TcpTransport ─ session_task
//! ```
//!
//! Each accepted connection (`TCP_NODELAY` on by default) gets a task that runs one STOMP
//! session ([`crate::session_task`] over [`crate::tcp_transport`]), authenticated like any
//! other: the authenticator sees a [`ConnectionInfo`] with the peer's address and
//! [`wsx_stomp::Transport::Tcp`] (no path, query or headers), then the CONNECT frame. A
//! connection past [`TcpSettings::max_connections`] is closed as it is accepted.
//!
//! The loop returns once the broker closes its sessions ([`Broker::close_sessions`], at
//! shutdown) and every connection task it started has ended.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tracing::{debug, warn};
use wsx::tls::TlsAcceptor;
use wsx_stomp::ConnectionInfo;

use crate::broker::Broker;
use crate::error::Error;
use crate::escaped::Escaped;
use crate::session_task;
use crate::tcp_transport::TcpTransport;

/// The default of [`TcpSettings::max_connections`].
pub const DEFAULT_MAX_TCP_CONNECTIONS: usize = 10_000;
/// The default of [`TcpSettings::tls_handshake_timeout`].
pub const DEFAULT_TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the accept loop waits after the listener failed (out of file descriptors, say).
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// How [`Broker::serve_tcp`] and [`Broker::serve_tls`] treat connections.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TcpSettings {
    /// The most STOMP-over-TCP connections served at once; one more is closed as it is
    /// accepted. Default [`DEFAULT_MAX_TCP_CONNECTIONS`].
    pub max_connections: usize,
    /// How long a client may take for the TLS handshake ([`Broker::serve_tls`]); past it the
    /// connection is closed. Default [`DEFAULT_TLS_HANDSHAKE_TIMEOUT`].
    pub tls_handshake_timeout: Duration,
    /// Set `TCP_NODELAY` on accepted connections (default on: frames go out at once).
    pub nodelay: bool,
}

impl Default for TcpSettings {
    fn default() -> Self {
        TcpSettings {
            max_connections: DEFAULT_MAX_TCP_CONNECTIONS,
            tls_handshake_timeout: DEFAULT_TLS_HANDSHAKE_TIMEOUT,
            nodelay: true,
        }
    }
}

impl TcpSettings {
    /// With this connection limit.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n;
        self
    }

    /// With this TLS handshake deadline.
    pub fn tls_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.tls_handshake_timeout = timeout;
        self
    }

    /// With `TCP_NODELAY` on or off.
    pub fn nodelay(mut self, on: bool) -> Self {
        self.nodelay = on;
        self
    }
}

impl Broker {
    /// Serve STOMP over plain TCP on `listener` until the broker closes its sessions
    /// ([`Broker::close_sessions`]); returns once every session it started has ended.
    ///
    /// # Errors
    ///
    /// None today: a failed accept is logged and retried.
    pub async fn serve_tcp(
        self: &Arc<Self>,
        listener: TcpListener,
        settings: TcpSettings,
    ) -> Result<(), Error> {
        self.accept_loop(listener, None, settings).await
    }

    /// As [`Broker::serve_tcp`], with a TLS handshake (within
    /// [`TcpSettings::tls_handshake_timeout`]) before each session.
    ///
    /// # Errors
    ///
    /// As [`Broker::serve_tcp`].
    pub async fn serve_tls(
        self: &Arc<Self>,
        listener: TcpListener,
        acceptor: TlsAcceptor,
        settings: TcpSettings,
    ) -> Result<(), Error> {
        self.accept_loop(listener, Some(acceptor), settings).await
    }

    async fn accept_loop(
        self: &Arc<Self>,
        listener: TcpListener,
        tls: Option<TlsAcceptor>,
        settings: TcpSettings,
    ) -> Result<(), Error> {
        let mut closing = self.closing.subscribe();
        let mut tasks = JoinSet::new();
        loop {
            let accepted = tokio::select! {
                biased;
                _ = closing.wait_for(|closing| *closing) => break,
                Some(_) = tasks.join_next() => continue,
                accepted = listener.accept() => accepted,
            };
            let (tcp, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    warn!("stomp tcp: accept failed: {}", Escaped(&e));
                    tokio::time::sleep(ACCEPT_RETRY).await;
                    continue;
                }
            };
            if tasks.len() >= settings.max_connections {
                debug!(%peer, "stomp tcp: over the connection limit, closed");
                self.metrics.tcp_refused();
                continue;
            }
            if settings.nodelay
                && let Err(e) = tcp.set_nodelay(true)
            {
                debug!(%peer, "stomp tcp: TCP_NODELAY: {}", Escaped(&e));
            }
            let broker = self.clone();
            let tls = tls.clone();
            let handshake_timeout = settings.tls_handshake_timeout;
            tasks.spawn(async move {
                match tls {
                    None => broker.serve_stream(tcp, peer).await,
                    Some(tls) => {
                        match tokio::time::timeout(handshake_timeout, tls.accept_tls(tcp)).await {
                            Ok(Ok(stream)) => broker.serve_stream(stream, peer).await,
                            Ok(Err(e)) => {
                                debug!(%peer, "stomp tls: handshake failed: {}", Escaped(&e));
                            }
                            Err(_) => debug!(%peer, "stomp tls: handshake timed out"),
                        }
                    }
                }
            });
        }
        // The sessions end on their own now (the broker is closing them).
        while tasks.join_next().await.is_some() {}
        Ok(())
    }

    /// Run one STOMP session over an accepted stream.
    async fn serve_stream<S>(&self, stream: S, peer: SocketAddr)
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let info = ConnectionInfo::new()
            .with_peer_addr(peer)
            .with_transport(wsx_stomp::Transport::Tcp);
        self.metrics.tcp_sessions_add(1);
        session_task::run(self, TcpTransport::new(stream), info).await;
        self.metrics.tcp_sessions_add(-1);
    }
}
