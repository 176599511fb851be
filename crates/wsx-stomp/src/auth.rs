//! The authentication hook: who may connect, and what they may subscribe and send to.
//!
//! When a client's CONNECT arrives, the session hands an [`Authenticator`] a [`ConnectRequest`]:
//! `login`/`passcode`, every CONNECT header (an `Authorization: Bearer …` header, say) and the
//! [`ConnectionInfo`] the I/O layer passed in (the WebSocket URL's path and query string, the
//! peer address). It answers with a [`Principal`] and its allowed destination patterns, or a
//! [`Refusal`], which the session turns into an ERROR frame (the refusal's message in the
//! `message` header) before closing.
//!
//! A principal may carry an expiry (a token's `exp`, as an [`Instant`] on the session's clock:
//! [`ConnectRequest::now`] is when the CONNECT arrived); the session ends with an ERROR
//! `message:token expired` when it passes (see the session's timers).

use std::net::SocketAddr;
use std::time::Instant;

use crate::destination::DestinationPattern;
use crate::headers::Headers;

/// What the I/O layer knows about the connection, passed to the authenticator.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionInfo {
    /// The peer's address.
    pub peer_addr: Option<SocketAddr>,
    /// The path of the WebSocket URL (`/stomp`).
    pub path: String,
    /// The query string of the WebSocket URL, without `?` (`token=abc`).
    pub query: Option<String>,
}

impl ConnectionInfo {
    /// Nothing known.
    pub fn new() -> Self {
        ConnectionInfo::default()
    }

    /// Set the peer address.
    pub fn with_peer_addr(mut self, addr: SocketAddr) -> Self {
        self.peer_addr = Some(addr);
        self
    }

    /// Set the request path.
    pub fn with_path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// Set the query string (without `?`).
    pub fn with_query(mut self, query: impl Into<String>) -> Self {
        self.query = Some(query.into());
        self
    }

    /// The first value of `name` in the query string (not percent-decoded).
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query.as_deref()?.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == name).then_some(v)
        })
    }
}

/// Everything an [`Authenticator`] sees about a connecting client.
#[derive(Debug, Clone, Copy)]
pub struct ConnectRequest<'a> {
    /// The `login` header.
    pub login: Option<&'a str>,
    /// The `passcode` header.
    pub passcode: Option<&'a str>,
    /// The `host` header (the virtual host, 1.1+).
    pub host: Option<&'a str>,
    /// Every header of the CONNECT (or STOMP) frame.
    pub headers: &'a Headers,
    /// The connection, as the I/O layer described it.
    pub connection: &'a ConnectionInfo,
    /// When the CONNECT arrived, on the session's clock: an authenticator that knows how long
    /// the credentials stay valid turns that into [`Principal::expires_at`] from here.
    pub now: Instant,
}

impl ConnectRequest<'_> {
    /// The token of an `Authorization: Bearer TOKEN` header (header name in any case).
    pub fn bearer_token(&self) -> Option<&str> {
        self.headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("authorization"))
            .and_then(|(_, value)| {
                let (scheme, token) = value.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
    }
}

/// An authenticated client and the destinations it may use.
///
/// Its name is the `user-id` of CONNECTED. A [`Principal::verified`] one (the default: the
/// authenticator checked who the client is, a JWT's subject say) also signs what the client
/// publishes: the session replaces any `user-id` header of a SEND with its name, so subscribers
/// see who sent a message and no client can claim to be another. An unverified one
/// ([`AllowAll`]'s, whose name is whatever `login` the client gave) signs nothing: the
/// session removes a SEND's `user-id` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// A name for logs (the `user-id` of the session).
    pub name: String,
    /// Whether the authenticator vouches for `name`; only then is it stamped on the messages
    /// the client publishes (as `user-id`).
    pub verified: bool,
    /// Patterns of destinations it may SUBSCRIBE to.
    pub subscribe: Vec<DestinationPattern>,
    /// Patterns of destinations it may SEND to.
    pub send: Vec<DestinationPattern>,
    /// When its credentials expire (on the session's clock); the session then ends with an
    /// ERROR `message:token expired`. `None`: never.
    pub expires_at: Option<Instant>,
}

impl Principal {
    /// A verified principal allowed nothing yet.
    pub fn new(name: impl Into<String>) -> Self {
        Principal {
            name: name.into(),
            verified: true,
            subscribe: Vec::new(),
            send: Vec::new(),
            expires_at: None,
        }
    }

    /// A principal allowed every destination.
    pub fn allow_all(name: impl Into<String>) -> Self {
        Principal::new(name).allow_subscribe("**").allow_send("**")
    }

    /// The same principal, its name not vouched for (a login nobody checked): its messages
    /// carry no `user-id`.
    pub fn unverified(mut self) -> Self {
        self.verified = false;
        self
    }

    /// The `user-id` to stamp on what it publishes: its name if verified.
    pub fn user_id(&self) -> Option<&str> {
        self.verified.then_some(self.name.as_str())
    }

    /// Also allow subscribing to destinations matching `pattern`.
    pub fn allow_subscribe(mut self, pattern: impl Into<DestinationPattern>) -> Self {
        self.subscribe.push(pattern.into());
        self
    }

    /// Also allow sending to destinations matching `pattern`.
    pub fn allow_send(mut self, pattern: impl Into<DestinationPattern>) -> Self {
        self.send.push(pattern.into());
        self
    }

    /// End its sessions at `at` (on the session's clock).
    pub fn expires_at(mut self, at: Instant) -> Self {
        self.expires_at = Some(at);
        self
    }

    /// Whether it may subscribe to `destination`.
    pub fn may_subscribe(&self, destination: &str) -> bool {
        self.subscribe.iter().any(|p| p.matches(destination))
    }

    /// Whether it may send to `destination`.
    pub fn may_send(&self, destination: &str) -> bool {
        self.send.iter().any(|p| p.matches(destination))
    }
}

/// Why a client may not connect: becomes the ERROR frame's `message` header and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// A short reason (the `message` header).
    pub message: String,
    /// More detail (the ERROR body), if any.
    pub detail: Option<String>,
}

impl Refusal {
    /// A refusal with a short reason.
    pub fn new(message: impl Into<String>) -> Self {
        Refusal {
            message: message.into(),
            detail: None,
        }
    }

    /// Add detail for the ERROR body.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

/// Decides whether a client may connect. Called once per session, synchronously, when the
/// CONNECT frame arrives; an implementation that needs I/O should resolve credentials before
/// (from the WebSocket handshake) and look them up here.
pub trait Authenticator: Send + Sync {
    /// Accept the client as a [`Principal`], or refuse it.
    fn authenticate(&self, request: &ConnectRequest<'_>) -> Result<Principal, Refusal>;
}

impl<F> Authenticator for F
where
    F: Fn(&ConnectRequest<'_>) -> Result<Principal, Refusal> + Send + Sync,
{
    fn authenticate(&self, request: &ConnectRequest<'_>) -> Result<Principal, Refusal> {
        self(request)
    }
}

/// Lets everyone in, allowed every destination (principal name: the login, or `anonymous`,
/// [unverified](Principal::unverified): their SENDs carry no `user-id`).
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

impl Authenticator for AllowAll {
    fn authenticate(&self, request: &ConnectRequest<'_>) -> Result<Principal, Refusal> {
        Ok(Principal::allow_all(request.login.unwrap_or("anonymous")).unverified())
    }
}
