//! One accepted connection of a [`Server`](super::Server), from the accept to the end of its
//! session.
//!
//! The flow: the TLS handshake (with [`Server::tls`](super::Server::tls)) and the request head
//! must both arrive within [`Policy::handshake_timeout`](crate::Policy::handshake_timeout),
//! counted from the accept (past it: 408, or closed during the TLS handshake), and the head
//! within [`WebSocketConfig::max_header_bytes`] (431); a malformed head gets 400. The route
//! handler answers the request; a plain response is written and the connection closed. An
//! upgrade is checked (400, 426 …), the policy applied (403, the auth hook's statuses), the 101
//! written, and the session runs on the [`WebSocket`], which is closed with 1001 when the
//! server shuts down (unless the route's session does it itself). A shutdown while the head is awaited closes the connection at once.

use std::future::Future;
use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};
use tracing::debug;
use wsx_proto::handshake::{HandshakeError, HttpRequest, validate_upgrade};

use super::answer::{Answer, Upgrade};
use super::{ConnectionInfo, Settings};
use crate::MaybeTlsStream;
use crate::error::Result;
use crate::server::{read_request, respond, upgrade};

/// The stream a connection's handlers get, made from the accepted TCP socket.
pub(super) trait Transport: AsyncRead + AsyncWrite + Unpin + Send + Sized + 'static {
    /// Wrap `tcp`, running the server's TLS handshake if it has an acceptor.
    fn open(tcp: TcpStream, settings: &Settings) -> impl Future<Output = Result<Self>> + Send;
}

/// [`Server::serve`](super::Server::serve): plain TCP.
impl Transport for TcpStream {
    async fn open(tcp: TcpStream, _settings: &Settings) -> Result<Self> {
        Ok(tcp)
    }
}

/// [`Server::serve_routes`](super::Server::serve_routes): TLS with an acceptor, plain TCP
/// without.
impl Transport for MaybeTlsStream {
    async fn open(tcp: TcpStream, settings: &Settings) -> Result<Self> {
        #[cfg(feature = "rustls")]
        if let Some(acceptor) = &settings.tls {
            return Ok(acceptor.accept_tls(tcp).await?.into());
        }
        let _ = settings;
        Ok(tcp.into())
    }
}

/// Serve one accepted connection: read its request head, let `route` answer, carry it out.
pub(super) async fn serve_connection<S, R>(
    tcp: TcpStream,
    peer: SocketAddr,
    settings: &Settings,
    route: &R,
) where
    S: Transport,
    R: Fn(&ConnectionInfo) -> Answer<S>,
{
    if let Err(e) = tcp.set_nodelay(true) {
        debug!(%peer, "set_nodelay: {e}");
    }
    let head = tokio::select! {
        () = settings.shutdown.cancelled() => return,
        head = read_head::<S>(tcp, peer, settings) => head,
    };
    let Some((mut io, request, leftover)) = head else {
        return;
    };
    let info = ConnectionInfo { peer, request };
    match route(&info) {
        Answer::Http(response) => {
            if let Err(e) = response.send(&mut io).await {
                debug!(%peer, "writing a response: {e}");
            }
        }
        Answer::Upgrade(route) => run_upgrade(io, info, &leftover, route, settings).await,
        Answer::WithBody(read) => {
            let deadline = Instant::now() + settings.policy.handshake_timeout;
            let response = read.respond(&mut io, &info.request, &leftover, deadline);
            let sent = match response.await {
                Ok(response) => response.send(&mut io).await,
                Err(e) => Err(e),
            };
            if let Err(e) = sent {
                debug!(%peer, "answering a request with a body: {e}");
            }
        }
    }
}

/// Open the transport and read the request head, within the handshake timeout.
async fn read_head<S: Transport>(
    tcp: TcpStream,
    peer: SocketAddr,
    settings: &Settings,
) -> Option<(S, HttpRequest, bytes::BytesMut)> {
    // One deadline for the TLS handshake and the request head together.
    let deadline = Instant::now() + settings.policy.handshake_timeout;
    let mut io = match timeout_at(deadline, S::open(tcp, settings)).await {
        Ok(Ok(io)) => io,
        Ok(Err(e)) => {
            debug!(%peer, "TLS handshake failed: {e}");
            return None;
        }
        Err(_) => {
            debug!(%peer, "no TLS handshake in time");
            return None;
        }
    };
    let read = read_request(&mut io, settings.config.max_header_bytes);
    match timeout_at(deadline, read).await {
        Ok(Ok((request, leftover))) => Some((io, request, leftover)),
        Ok(Err(e)) => {
            // Malformed or oversized heads were answered (400, 431) by read_request.
            if let Some(failure) = e.as_handshake() {
                settings.report_handshake_failure(failure, peer);
            }
            // Debug-quoted: the error may quote what the client sent (control characters escaped).
            debug!(%peer, "bad request: {:?}", e.to_string());
            None
        }
        Err(_) => {
            debug!(%peer, "no request head in time");
            let _ = respond(&mut io, 408, &[], b"request timeout\n").await;
            None
        }
    }
}

/// Check the upgrade, apply the policy, answer 101 and run the route's session.
async fn run_upgrade<S: Transport>(
    mut io: S,
    info: ConnectionInfo,
    leftover: &[u8],
    mut route: Upgrade<S>,
    settings: &Settings,
) {
    let peer = info.peer;
    let request = &info.request;
    let accept = match validate_upgrade(request) {
        // Counted before the client sees the answer, which `upgrade` writes (400, 426 …).
        Err(e) => {
            settings.report_handshake_failure(&e, peer);
            Default::default()
        }
        Ok(_) => match settings.policy.evaluate(request, peer) {
            Ok(accept) => route.merged_accept(accept),
            Err(reject) => {
                debug!(%peer, path = ?request.path(), status = reject.status, "refused: {:?}", reject.body);
                let _ = reject.send::<_, ()>(&mut io).await;
                return;
            }
        },
    };
    let config = route.config.as_deref().unwrap_or(&settings.config);
    match upgrade(io, request, leftover, config, accept).await {
        Ok(mut ws) => {
            if route.close_on_shutdown {
                // A token of its own: the receive path then checks memory no other connection
                // touches (one shared token would be one shared lock for all).
                ws.close_on(settings.shutdown.child_token());
            }
            (route.session)(ws, info).await;
        }
        Err(e) => debug!(%peer, path = ?request.path(), "handshake failed: {:?}", e.to_string()),
    }
}

impl Settings {
    /// Tell the handshake-failure hook, if there is one.
    fn report_handshake_failure(&self, failure: &HandshakeError, peer: SocketAddr) {
        if let Some(hook) = &self.on_handshake_failure {
            hook(failure, peer);
        }
    }
}
