//! axum 0.8 integration (feature `axum`): a [`WebSocketUpgrade`] extractor backed by wsx, in the
//! manner of axum's own `extract::ws`.
//!
//! Where it sits in the flow: axum (on hyper) has parsed the request. Extracting
//! [`WebSocketUpgrade`] validates it as a WebSocket upgrade (refusing it with the right HTTP
//! status otherwise, see [`WebSocketUpgradeRejection`]); the handler picks a subprotocol and
//! settings, then [`WebSocketUpgrade::on_upgrade`] returns the `101` response and spawns a task
//! that runs the callback with the [`HyperWebSocket`] once hyper hands over the connection. The
//! handshake itself is [`crate::hyper_upgrade`]'s.
//!
//! ```no_run
//! use axum::{Router, response::Response, routing::get};
//! use wsx::axum::WebSocketUpgrade;
//!
//! async fn ws_handler(ws: WebSocketUpgrade) -> Response {
//!     ws.protocols(["chat.v2", "chat.v1"]).on_upgrade(|mut ws| async move {
//!         while let Some(Ok(msg)) = ws.recv().await {
//!             if msg.is_data() && ws.send(msg).await.is_err() {
//!                 break;
//!             }
//!         }
//!     })
//! }
//!
//! # async fn run() -> std::io::Result<()> {
//! let app = Router::new().route("/ws", get(ws_handler));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app).await
//! # }
//! ```
//!
//! With the feature `http2` as well, the extractor also takes HTTP/2 extended CONNECT requests
//! (RFC 8441; `axum::serve` advertises `SETTINGS_ENABLE_CONNECT_PROTOCOL`), answered `200`:
//! route them with `any(...)` (or `.connect(...)` next to `get(...)`), since they are `CONNECT`
//! requests. The callback gets the same [`HyperWebSocket`], over the HTTP/2 stream.
//!
//! `Option<WebSocketUpgrade>` is also an extractor: `None` for requests that do not ask for an
//! upgrade, so one route can serve both a page and its WebSocket.

use std::fmt;
use std::future::Future;

use ::axum::body::Body;
use ::axum::extract::{FromRequestParts, OptionalFromRequestParts};
use ::axum::http::request::Parts;
use ::axum::http::{StatusCode, header};
use ::axum::response::{IntoResponse, Response};
use hyper::upgrade::OnUpgrade;
use wsx_proto::handshake::{HandshakeError, WebSocketRequest};

use crate::config::WebSocketConfig;
use crate::error::Error;
use crate::hyper_upgrade::{
    HyperWebSocket, error_response, is_extended_connect, is_upgrade_headers, negotiate, validate,
};
use crate::server::Accept;

/// Extractor for a WebSocket upgrade request; answer it with [`WebSocketUpgrade::on_upgrade`].
///
/// Extraction fails with a [`WebSocketUpgradeRejection`] (an HTTP error response) when the
/// request is not a valid RFC 6455 upgrade: not `GET` (405), not HTTP/1.1 (400), no
/// `Upgrade: websocket` (426), a bad key (400), a version other than 13 (426).
#[must_use = "to set up the WebSocket connection, return the response of `on_upgrade`"]
pub struct WebSocketUpgrade {
    request: WebSocketRequest,
    /// Whether the request is an HTTP/2 extended CONNECT (RFC 8441), answered 200.
    http2: bool,
    on_upgrade: OnUpgrade,
    config: WebSocketConfig,
    protocol: Option<String>,
    headers: Vec<(String, String)>,
    on_failed_upgrade: Option<Box<dyn FnOnce(Error) + Send>>,
}

impl fmt::Debug for WebSocketUpgrade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketUpgrade")
            .field("request", &self.request)
            .field("config", &self.config)
            .field("protocol", &self.protocol)
            .field("headers", &self.headers)
            .finish_non_exhaustive()
    }
}

impl WebSocketUpgrade {
    /// Use these connection settings (limits, permessage-deflate, keepalive, …). With
    /// [`WebSocketConfig::compression`] set, permessage-deflate is accepted when the client
    /// offers it.
    pub fn config(mut self, config: WebSocketConfig) -> Self {
        self.config = config;
        self
    }

    /// Select a subprotocol: the first of `protocols` (the server's list, in order of
    /// preference) that the client offered, compared exactly. When none was offered, no
    /// subprotocol is selected (and the client decides whether to go on without one).
    pub fn protocols<I>(mut self, protocols: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        self.protocol = protocols
            .into_iter()
            .find(|p| self.request.subprotocols.iter().any(|o| o == p.as_ref()))
            .map(|p| p.as_ref().to_owned());
        self
    }

    /// The subprotocols the client offered (`Sec-WebSocket-Protocol`), in its order.
    pub fn requested_protocols(&self) -> impl Iterator<Item = &str> {
        self.request.subprotocols.iter().map(String::as_str)
    }

    /// The subprotocol selected by [`protocols`](Self::protocols), if any.
    pub fn selected_protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// The `Origin` header of the request, if any (browsers always send it; check it against
    /// the origins allowed to connect).
    pub fn origin(&self) -> Option<&str> {
        self.request.origin.as_deref()
    }

    /// Add a header to the `101` response (for example `Set-Cookie`). The handshake headers
    /// (`Upgrade`, `Connection`, `Sec-WebSocket-*`) are managed by wsx and dropped here.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Call `callback` with the error when hyper fails to hand over the connection (the
    /// client went away before the upgrade, or the server was run without upgrade support).
    /// By default the failure is only logged (`tracing`, debug level).
    pub fn on_failed_upgrade<F>(mut self, callback: F) -> Self
    where
        F: FnOnce(Error) + Send + 'static,
    {
        self.on_failed_upgrade = Some(Box::new(callback));
        self
    }

    /// Complete the handshake: returns the `101 Switching Protocols` response (return it from
    /// the handler) and spawns a task that calls `callback` with the WebSocket once hyper has
    /// upgraded the connection. permessage-deflate is negotiated here from the
    /// [`config`](Self::config).
    pub fn on_upgrade<C, Fut>(self, callback: C) -> Response
    where
        C: FnOnce(HyperWebSocket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let accept = Accept {
            subprotocol: self.protocol,
            headers: self.headers,
        };
        let (response, pending) = negotiate(&self.request, &self.config, accept, self.http2);
        let on_upgrade = self.on_upgrade;
        let on_failed_upgrade = self.on_failed_upgrade;
        tokio::spawn(async move {
            match on_upgrade.await {
                Ok(upgraded) => callback(pending.finish(upgraded)).await,
                Err(e) => {
                    let err = Error::Io(std::io::Error::other(e));
                    match on_failed_upgrade {
                        Some(report) => report(err),
                        // Debug-quoted: the error may quote what the client sent.
                        None => tracing::debug!("WebSocket upgrade failed: {:?}", err.to_string()),
                    }
                }
            }
        });
        response.map(Body::new)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for WebSocketUpgrade {
    type Rejection = WebSocketUpgradeRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let http2 = is_extended_connect(&parts.method, parts.version, &parts.extensions);
        let request = validate(
            &parts.method,
            &parts.uri,
            parts.version,
            &parts.headers,
            &parts.extensions,
        )?;
        let on_upgrade = parts
            .extensions
            .remove::<OnUpgrade>()
            .ok_or(WebSocketUpgradeRejection::NotUpgradable)?;
        Ok(WebSocketUpgrade {
            request,
            http2,
            on_upgrade,
            config: WebSocketConfig::default(),
            protocol: None,
            headers: Vec::new(),
            on_failed_upgrade: None,
        })
    }
}

/// `Option<WebSocketUpgrade>`: `None` when the request does not ask for an upgrade (no
/// `Upgrade: websocket`), so that the handler can serve it as plain HTTP; an upgrade request
/// that is invalid is still refused.
impl<S: Send + Sync> OptionalFromRequestParts<S> for WebSocketUpgrade {
    type Rejection = WebSocketUpgradeRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        if !is_upgrade_headers(&parts.headers)
            && !is_extended_connect(&parts.method, parts.version, &parts.extensions)
        {
            return Ok(None);
        }
        <Self as FromRequestParts<S>>::from_request_parts(parts, state)
            .await
            .map(Some)
    }
}

/// Why [`WebSocketUpgrade`] refused a request; as a response, the matching HTTP error.
#[derive(Debug)]
#[non_exhaustive]
pub enum WebSocketUpgradeRejection {
    /// The request is not a valid WebSocket upgrade; answered as the raw-stream server does
    /// ([`HandshakeError::status`]: 400, 405 or 426, with `Sec-WebSocket-Version: 13` or
    /// `Upgrade: websocket` where due).
    Handshake(HandshakeError),
    /// The request carries no hyper upgrade handle: it was not received by a hyper HTTP/1.1
    /// server (for example a router called directly in a test). 500.
    NotUpgradable,
}

impl WebSocketUpgradeRejection {
    /// The HTTP status of the response.
    pub fn status(&self) -> StatusCode {
        match self {
            WebSocketUpgradeRejection::Handshake(e) => e
                .status()
                .and_then(|s| StatusCode::from_u16(s).ok())
                .unwrap_or(StatusCode::BAD_REQUEST),
            WebSocketUpgradeRejection::NotUpgradable => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl fmt::Display for WebSocketUpgradeRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WebSocketUpgradeRejection::Handshake(e) => e.fmt(f),
            WebSocketUpgradeRejection::NotUpgradable => {
                f.write_str("the connection cannot be upgraded (no hyper upgrade handle)")
            }
        }
    }
}

impl From<HandshakeError> for WebSocketUpgradeRejection {
    fn from(e: HandshakeError) -> Self {
        WebSocketUpgradeRejection::Handshake(e)
    }
}

impl IntoResponse for WebSocketUpgradeRejection {
    fn into_response(self) -> Response {
        match &self {
            WebSocketUpgradeRejection::Handshake(e) => error_response(e).map(Body::new),
            WebSocketUpgradeRejection::NotUpgradable => (
                self.status(),
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                format!("{self}\n"),
            )
                .into_response(),
        }
    }
}
