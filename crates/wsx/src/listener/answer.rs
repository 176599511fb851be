//! What a route handler of [`Server::serve_routes`](super::Server::serve_routes) answers to a
//! request: a plain HTTP response ([`HttpResponse`]), one made from the request's body
//! ([`ReadBody`]), or an upgrade to WebSocket with the
//! session to run on it ([`Upgrade`]).
//!
//! Where it sits in the flow: the server reads the request head, the route handler answers it,
//! and the server carries the answer out (writes the response, or checks the upgrade, applies
//! the [`Policy`](crate::Policy), answers 101 and runs the session).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::MaybeTlsStream;
use crate::config::WebSocketConfig;
use crate::error::{Error, Result};
use crate::listener::{ConnectionInfo, ReadBody};
use crate::server::{Accept, RESPONSE_TIMEOUT, respond};
use crate::websocket::WebSocket;

/// The future a WebSocket session runs as.
type SessionFuture = Pin<Box<dyn Future<Output = ()> + Send>>;
/// A WebSocket session, started once the connection is upgraded.
type Session<S> = Box<dyn FnOnce(WebSocket<S>, ConnectionInfo) -> SessionFuture + Send>;

/// A route handler's answer to a request.
///
/// `S` is the transport: [`MaybeTlsStream`] (plain TCP, or TLS with
/// [`Server::tls`](super::Server::tls)).
pub enum Answer<S = MaybeTlsStream> {
    /// Answer with this response; the connection is then closed.
    Http(HttpResponse),
    /// Upgrade to WebSocket and run a session.
    Upgrade(Upgrade<S>),
    /// Read the request's body, then answer with the response made from it; the connection
    /// is then closed.
    WithBody(ReadBody),
}

impl<S> Answer<S> {
    /// A plain-text response with this status.
    pub fn text(status: u16, body: impl Into<Bytes>) -> Self {
        Answer::Http(
            HttpResponse::new(status, body).header("Content-Type", "text/plain; charset=utf-8"),
        )
    }
}

impl<S> From<HttpResponse> for Answer<S> {
    fn from(response: HttpResponse) -> Self {
        Answer::Http(response)
    }
}

impl<S> From<ReadBody> for Answer<S> {
    fn from(read: ReadBody) -> Self {
        Answer::WithBody(read)
    }
}

impl<S> From<Upgrade<S>> for Answer<S> {
    fn from(upgrade: Upgrade<S>) -> Self {
        Answer::Upgrade(upgrade)
    }
}

impl<S> fmt::Debug for Answer<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Answer::Http(response) => f.debug_tuple("Http").field(response).finish(),
            Answer::Upgrade(upgrade) => f.debug_tuple("Upgrade").field(upgrade).finish(),
            Answer::WithBody(read) => f.debug_tuple("WithBody").field(read).finish(),
        }
    }
}

/// A plain HTTP response (not a WebSocket). It is sent with `Content-Length` and
/// `Connection: close`, within [`RESPONSE_TIMEOUT`](crate::RESPONSE_TIMEOUT), and the connection
/// is closed after it (over TLS with a `close_notify`).
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// The HTTP status, such as 200 or 404.
    pub status: u16,
    /// Response headers (`Content-Length` and `Connection` are added).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Bytes,
}

impl HttpResponse {
    /// A response with a status and a body, and no headers yet.
    pub fn new(status: u16, body: impl Into<Bytes>) -> Self {
        HttpResponse {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// Add a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Write the response on `io`, then close the sending side (a TLS `close_notify`, a TCP
    /// FIN), each within [`RESPONSE_TIMEOUT`](crate::RESPONSE_TIMEOUT).
    pub(crate) async fn send<W: AsyncWrite + Unpin>(&self, io: &mut W) -> Result<()> {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        respond(io, self.status, &headers, &self.body).await?;
        match tokio::time::timeout(RESPONSE_TIMEOUT, io.shutdown()).await {
            Ok(closed) => Ok(closed?),
            Err(_) => Err(Error::Timeout("closing after an HTTP response")),
        }
    }
}

/// Upgrade to WebSocket and run a session: the route's accept choices (subprotocol, response
/// headers), its connection settings, and the session.
///
/// The server then checks the request is a valid upgrade (400, 426 … if not), applies its
/// [`Policy`](crate::Policy) (403 for a foreign Origin, the auth hook), answers 101 and runs
/// the session with the [`WebSocket`] and the request. The route's subprotocol, when it sets
/// one, wins over the policy's choice; its headers are added to the policy's.
pub struct Upgrade<S = MaybeTlsStream> {
    pub(crate) accept: Accept,
    pub(crate) config: Option<Arc<WebSocketConfig>>,
    pub(crate) close_on_shutdown: bool,
    pub(crate) session: Session<S>,
}

impl Upgrade {
    /// Upgrade, then run `session` on the connection (with the request it was upgraded from).
    pub fn new<F, Fut>(session: F) -> Self
    where
        F: FnOnce(WebSocket<MaybeTlsStream>, ConnectionInfo) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Upgrade::with_session(session)
    }
}

impl<S: 'static> Upgrade<S> {
    /// [`Upgrade::new`] over any transport.
    pub(crate) fn with_session<F, Fut>(session: F) -> Self
    where
        F: FnOnce(WebSocket<S>, ConnectionInfo) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Upgrade {
            accept: Accept::default(),
            config: None,
            close_on_shutdown: true,
            session: Box::new(move |ws, info| Box::pin(session(ws, info))),
        }
    }
}

impl<S> Upgrade<S> {
    /// Choose the subprotocol: one the client offered (a client refuses any other), see
    /// [`HttpRequest::header_values`](crate::HttpRequest::header_values) for
    /// `Sec-WebSocket-Protocol`.
    pub fn subprotocol(mut self, protocol: impl Into<String>) -> Self {
        self.accept.subprotocol = Some(protocol.into());
        self
    }

    /// Add a header to the 101 response.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.accept.headers.push((name.into(), value.into()));
        self
    }

    /// Set the accept choices at once (subprotocol and headers), replacing those set so far.
    pub fn accept(mut self, accept: Accept) -> Self {
        self.accept = accept;
        self
    }

    /// The connection settings of this route (message limits, compression, keepalive …), in
    /// place of the server's [`Server::config`](super::Server::config).
    pub fn config(mut self, config: impl Into<Arc<WebSocketConfig>>) -> Self {
        self.config = Some(config.into());
        self
    }

    /// The session closes the WebSocket itself when the server shuts down (it watches a
    /// shutdown signal of its own, for example because it also waits on things other than the
    /// WebSocket): the server does not arm the close 1001 on it, which saves the shutdown check
    /// on each receive. The server still stops accepting, waits up to the shutdown timeout for
    /// the session to end and then drops it.
    pub fn session_handles_shutdown(mut self) -> Self {
        self.close_on_shutdown = false;
        self
    }

    /// The policy's accept choices with this route's on top.
    pub(crate) fn merged_accept(&mut self, mut policy: Accept) -> Accept {
        let route = std::mem::take(&mut self.accept);
        if route.subprotocol.is_some() {
            policy.subprotocol = route.subprotocol;
        }
        policy.headers.extend(route.headers);
        policy
    }
}

impl<S> fmt::Debug for Upgrade<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upgrade")
            .field("accept", &self.accept)
            .field("config", &self.config)
            .field("close_on_shutdown", &self.close_on_shutdown)
            .finish_non_exhaustive()
    }
}
