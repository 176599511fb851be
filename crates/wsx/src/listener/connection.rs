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

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};
use tracing::debug;
use wsx_proto::handshake::{HandshakeError, HttpRequest, validate_upgrade};

use super::answer::{Answer, Upgrade};
use super::{ConnectionInfo, Settings};
use crate::MaybeTlsStream;
use crate::error::Result;
use crate::server::{read_request_after, respond, upgrade};

/// The stream a connection's handlers get, made from the accepted TCP socket.
pub(super) trait Transport: AsyncRead + AsyncWrite + Unpin + Send + Sized + 'static {
    #[cfg(feature = "http2")]
    /// Whether sessions on this transport can run over HTTP/2 streams ([`Self::from_h2`]).
    const HTTP2: bool = false;

    /// Wrap `tcp`, running the server's TLS handshake if it has an acceptor.
    fn open(tcp: TcpStream, settings: &Settings) -> impl Future<Output = Result<Self>> + Send;

    #[cfg(feature = "http2")]
    /// Whether TLS negotiated HTTP/2 (ALPN `h2`).
    fn negotiated_h2(&self) -> bool {
        false
    }

    #[cfg(feature = "http2")]
    /// Whether the connection is plain TCP (where an HTTP/2 preface may come first).
    fn is_plain(&self) -> bool {
        true
    }

    /// The transport of a WebSocket over an HTTP/2 stream, if sessions can run over one.
    #[cfg(feature = "http2")]
    fn from_h2(_stream: crate::http2::H2Stream) -> Option<Self> {
        None
    }
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
    #[cfg(feature = "http2")]
    const HTTP2: bool = true;

    #[cfg(feature = "http2")]
    fn negotiated_h2(&self) -> bool {
        #[cfg(feature = "rustls")]
        return self
            .tls_state()
            .and_then(|tls| tls.alpn_protocol())
            .is_some_and(|alpn| alpn == crate::tls::ALPN_H2);
        #[cfg(not(feature = "rustls"))]
        false
    }

    #[cfg(feature = "http2")]
    fn is_plain(&self) -> bool {
        !self.is_tls()
    }

    #[cfg(feature = "http2")]
    fn from_h2(stream: crate::http2::H2Stream) -> Option<Self> {
        Some(MaybeTlsStream::Http2(Box::new(stream)))
    }

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
    let (mut io, request, leftover) = match head {
        Some(Head::Http1(io, request, leftover)) => (io, request, leftover),
        #[cfg(feature = "http2")]
        Some(Head::Http2(io, prefix, limits)) => {
            super::http2::serve(io, prefix, peer, settings, route, &limits).await;
            return;
        }
        None => return,
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

/// What a connection starts with.
enum Head<S> {
    /// An HTTP/1.1 request head, and what came after it.
    Http1(S, HttpRequest, BytesMut),
    /// HTTP/2 (ALPN `h2`, or the preface on plain TCP): what was read of it already, and the
    /// connection's limits.
    #[cfg(feature = "http2")]
    Http2(S, BytesMut, crate::http2::Http2Limits),
}

/// Open the transport and read the request head (or see that HTTP/2 starts), within the
/// handshake timeout.
async fn read_head<S: Transport>(
    tcp: TcpStream,
    peer: SocketAddr,
    settings: &Settings,
) -> Option<Head<S>> {
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
    #[allow(unused_mut)]
    let mut start = BytesMut::new();
    #[cfg(feature = "http2")]
    if let (true, Some(limits)) = (S::HTTP2, settings.http2) {
        if io.negotiated_h2() {
            return Some(Head::Http2(io, start, limits));
        }
        if io.is_plain() {
            match timeout_at(deadline, sniff_preface(&mut io)).await {
                Ok(Ok((true, read))) => return Some(Head::Http2(io, read, limits)),
                Ok(Ok((false, read))) => start = read,
                Ok(Err(e)) => {
                    debug!(%peer, "reading the request: {e}");
                    return None;
                }
                Err(_) => {
                    debug!(%peer, "no request head in time");
                    let _ = respond(&mut io, 408, &[], b"request timeout\n").await;
                    return None;
                }
            }
        }
    }
    let read = read_request_after(&mut io, settings.config.max_header_bytes, start);
    match timeout_at(deadline, read).await {
        Ok(Ok((request, leftover))) => Some(Head::Http1(io, request, leftover)),
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

/// Read the first bytes of a plain connection until they are, or cannot be, the HTTP/2
/// connection preface (RFC 9113 §3.4: h2c with prior knowledge): whether they are, and what
/// was read (given back to the HTTP/1.1 or HTTP/2 reader).
#[cfg(feature = "http2")]
async fn sniff_preface<S: AsyncRead + Unpin>(io: &mut S) -> std::io::Result<(bool, BytesMut)> {
    use tokio::io::AsyncReadExt;
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let mut read = BytesMut::with_capacity(1024);
    while read.len() < PREFACE.len() && PREFACE.starts_with(&read) {
        if io.read_buf(&mut read).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok((read.starts_with(PREFACE), read))
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
    pub(super) fn report_handshake_failure(&self, failure: &HandshakeError, peer: SocketAddr) {
        if let Some(hook) = &self.on_handshake_failure {
            hook(failure, peer);
        }
    }
}
