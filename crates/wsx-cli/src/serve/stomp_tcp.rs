//! `--stomp-tcp ADDR`: the broker of `/stomp` also speaks STOMP over plain TCP (or TLS with
//! `--stomp-tcp-tls`, on the certificate of `--tls-cert`), for Spring's `StompBrokerRelay` and
//! other STOMP clients that do not use WebSocket. [`start`] binds the address and runs
//! [`wsx_broker::Broker::serve_tcp`] (or `serve_tls`) in a task; at shutdown the broker closes
//! those sessions with the others and [`StompTcp::finish`] waits for them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tracing::{error, warn};
use wsx::tls::TlsAcceptor;
use wsx_broker::TcpSettings;

use super::stomp::Stomp;

/// The STOMP-over-TCP listener's task.
#[derive(Debug)]
pub struct StompTcp {
    addr: SocketAddr,
    task: JoinHandle<Result<(), wsx_broker::Error>>,
}

impl StompTcp {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Wait up to `timeout` for the sessions to end (the broker was told to close them).
    pub async fn finish(self, timeout: Duration) {
        let mut task = self.task;
        match tokio::time::timeout(timeout, &mut task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => error!("stomp tcp: {e}"),
            Ok(Err(e)) => error!("stomp tcp task: {e}"),
            Err(_) => {
                warn!("stomp tcp: sessions still open after the shutdown timeout");
                task.abort();
            }
        }
    }
}

/// Bind `addr` and serve STOMP over TCP on it (over TLS with `tls`, whose ALPN setting is
/// dropped: STOMP clients offer none), with at most `max_connections` connections and
/// `handshake_timeout` for the TLS handshake.
pub async fn start(
    broker: &Arc<Stomp>,
    addr: SocketAddr,
    tls: Option<&TlsAcceptor>,
    max_connections: usize,
    handshake_timeout: Duration,
) -> Result<StompTcp, String> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr} (--stomp-tcp): {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let settings = TcpSettings::default()
        .max_connections(max_connections)
        .tls_handshake_timeout(handshake_timeout);
    let broker = broker.clone();
    let task = match tls {
        None => tokio::spawn(async move { broker.serve_tcp(listener, settings).await }),
        Some(tls) => {
            let mut config = (**tls.config()).clone();
            config.alpn_protocols.clear();
            let tls = TlsAcceptor::from_config(Arc::new(config));
            tokio::spawn(async move { broker.serve_tls(listener, tls, settings).await })
        }
    };
    Ok(StompTcp { addr, task })
}
