//! Connect-time policy for servers: which requests may become WebSocket connections.
//!
//! A [`Policy`] is checked after the Upgrade request is read and before it is answered: the
//! Origin allow-list (cross-site WebSocket hijacking is refused with 403), subprotocol
//! selection, and an auth hook that sees the whole request (path, query, headers, cookies) and
//! the peer's address. [`crate::Server`] applies it, with the connection limit and the handshake
//! timeout; routers that read requests themselves call [`Policy::evaluate`].

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use wsx_proto::handshake::HttpRequest;

use crate::server::{Accept, Reject};

/// The auth hook: accept (optionally choosing a subprotocol and adding headers) or reject.
pub type AuthHook = Arc<dyn Fn(&HttpRequest, SocketAddr) -> Result<Accept, Reject> + Send + Sync>;

/// Connect-time rules for a server.
#[derive(Clone)]
#[non_exhaustive]
pub struct Policy {
    /// Origins allowed to connect (exact, case-insensitive, e.g. `https://app.example.com`).
    /// Empty: any origin, and requests without one. Once non-empty, a request whose Origin
    /// matches none, or that has none, gets 403.
    pub allowed_origins: Vec<String>,
    /// Subprotocols the server speaks, in order of preference; the first one the client also
    /// offers is chosen (the client's order breaks no ties).
    pub subprotocols: Vec<String>,
    /// Headers added to every 101 response.
    pub response_headers: Vec<(String, String)>,
    /// The auth hook, run last. Its `Accept` may override the subprotocol and add headers.
    pub auth: Option<AuthHook>,
    /// The most connections served at once (handshakes included). A connection past it is
    /// refused as it is accepted, before its request is read: a 503 (`Retry-After: 1`) if the
    /// socket takes it at once, then closed ([`crate::refuse_over_capacity`]). Default: none.
    pub max_connections: Option<usize>,
    /// How long a client may take to send its Upgrade request, counted from the accept; past
    /// it, 408 (written within [`crate::RESPONSE_TIMEOUT`]). Default 10 s.
    pub handshake_timeout: Duration,
    /// How long a graceful shutdown waits for connections to finish their close handshake.
    /// Default 5 s.
    pub shutdown_timeout: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            allowed_origins: Vec::new(),
            subprotocols: Vec::new(),
            response_headers: Vec::new(),
            auth: None,
            max_connections: None,
            handshake_timeout: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(5),
        }
    }
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("allowed_origins", &self.allowed_origins)
            .field("subprotocols", &self.subprotocols)
            .field("response_headers", &self.response_headers)
            .field("auth", &self.auth.as_ref().map(|_| "<hook>"))
            .field("max_connections", &self.max_connections)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .finish()
    }
}

impl Policy {
    /// Allow an Origin (call once per origin).
    pub fn allow_origin(mut self, origin: impl Into<String>) -> Self {
        self.allowed_origins.push(origin.into());
        self
    }

    /// Speak a subprotocol (in order of preference).
    pub fn subprotocol(mut self, protocol: impl Into<String>) -> Self {
        self.subprotocols.push(protocol.into());
        self
    }

    /// Add a header to every 101 response.
    pub fn response_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.response_headers.push((name.into(), value.into()));
        self
    }

    /// Set the auth hook.
    pub fn auth<F>(mut self, hook: F) -> Self
    where
        F: Fn(&HttpRequest, SocketAddr) -> Result<Accept, Reject> + Send + Sync + 'static,
    {
        self.auth = Some(Arc::new(hook));
        self
    }

    /// Limit the number of connections served at once.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = Some(n);
        self
    }

    /// Set the handshake timeout.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Set how long a graceful shutdown waits.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Whether `req`'s Origin passes the allow-list.
    pub fn origin_allowed(&self, req: &HttpRequest) -> bool {
        if self.allowed_origins.is_empty() {
            return true;
        }
        let Some(origin) = req.header_str("origin") else {
            return false;
        };
        let origin = origin.trim();
        self.allowed_origins
            .iter()
            .any(|o| o.eq_ignore_ascii_case(origin))
    }

    /// Apply the policy to an Upgrade request: the Origin check (403), subprotocol selection,
    /// then the auth hook.
    pub fn evaluate(&self, req: &HttpRequest, peer: SocketAddr) -> Result<Accept, Reject> {
        if !self.origin_allowed(req) {
            return Err(Reject::new(403, "origin not allowed"));
        }
        let offered: Vec<&str> = req.header_list("sec-websocket-protocol").collect();
        let subprotocol = self
            .subprotocols
            .iter()
            .find(|p| offered.contains(&p.as_str()))
            .cloned();
        let mut accept = Accept {
            subprotocol,
            headers: self.response_headers.clone(),
        };
        if let Some(auth) = &self.auth {
            let decided = auth(req, peer)?;
            if decided.subprotocol.is_some() {
                accept.subprotocol = decided.subprotocol;
            }
            accept.headers.extend(decided.headers);
        }
        Ok(accept)
    }
}
