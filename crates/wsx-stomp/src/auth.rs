//! The authentication hook: who may connect, and what they may subscribe and send to.
//!
//! When a client's CONNECT arrives, the session hands an [`Authenticator`] a [`ConnectRequest`]:
//! `login`/`passcode`, every CONNECT header (an `Authorization: Bearer …` header, say) and the
//! [`ConnectionInfo`] the I/O layer passed in (the transport, the WebSocket URL's path and query
//! string, the upgrade request's headers and cookies, the peer address). It answers at once
//! ([`Authenticator::admit`]) with a [`Principal`] and its allowed destination patterns, or a
//! [`Refusal`], which the session turns into an ERROR frame (the refusal's message in the
//! `message` header) before closing.
//!
//! Or it defers ([`Admission::Defer`], what [`DeferredAuth`] always answers): an authenticator
//! that needs I/O (a database, an HTTP call) runs in the I/O layer. The session then enters
//! [`crate::Phase::Authenticating`], hands the I/O layer an owned copy of the request
//! ([`crate::Transmit::Authenticate`] with an [`AuthRequest`]) and decodes nothing more until
//! the I/O layer answers with [`crate::Session::authenticated`] (or
//! [`crate::Broker::authenticated`]); from there it goes on exactly as if the answer had come at
//! once. The CONNECT timeout still runs meanwhile.
//!
//! A principal may carry an expiry (a token's `exp`, as an [`Instant`] on the session's clock:
//! [`ConnectRequest::now`] is when the CONNECT arrived); the session ends with an ERROR
//! `message:token expired` when it passes (see the session's timers).

use std::net::SocketAddr;
use std::time::Instant;

use crate::destination::DestinationPattern;
use crate::headers::Headers;
use crate::version::Version;

/// How the client reached the broker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Transport {
    /// STOMP over WebSocket: [`ConnectionInfo`] holds the upgrade request's path, query and
    /// headers.
    #[default]
    WebSocket,
    /// STOMP over a TCP (or TLS) stream, port 61613 by convention: no HTTP request, so no
    /// path, query or headers.
    Tcp,
}

/// What the I/O layer knows about the connection, passed to the authenticator: the
/// "parameters passed at connect" outside the CONNECT frame.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionInfo {
    /// The peer's address.
    pub peer_addr: Option<SocketAddr>,
    /// The path of the WebSocket URL (`/stomp`).
    pub path: String,
    /// The query string of the WebSocket URL, without `?` (`token=abc`).
    pub query: Option<String>,
    /// The headers of the WebSocket upgrade request, in order (names as received).
    pub headers: Vec<(String, String)>,
    /// WebSocket or TCP.
    pub transport: Transport,
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

    /// Add a header of the upgrade request.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Add the headers of the upgrade request, in order.
    pub fn with_headers<N, V>(mut self, headers: impl IntoIterator<Item = (N, V)>) -> Self
    where
        N: Into<String>,
        V: Into<String>,
    {
        self.headers
            .extend(headers.into_iter().map(|(n, v)| (n.into(), v.into())));
        self
    }

    /// Set the transport.
    pub fn with_transport(mut self, transport: Transport) -> Self {
        self.transport = transport;
        self
    }

    /// The first value of `name` in the query string (not percent-decoded).
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query.as_deref()?.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == name).then_some(v)
        })
    }

    /// The first value of upgrade request header `name` (in any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The value of cookie `name` from the request's `Cookie` headers (RFC 6265
    /// `name=value` pairs separated by `;`; surrounding double quotes removed; not
    /// percent-decoded). The first one wins.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("cookie"))
            .flat_map(|(_, v)| v.split(';'))
            .find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                (k.trim() == name).then(|| {
                    let v = v.trim();
                    v.strip_prefix('"')
                        .and_then(|v| v.strip_suffix('"'))
                        .unwrap_or(v)
                })
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
        bearer_token(self.headers)
    }
}

fn bearer_token(headers: &Headers) -> Option<&str> {
    headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("authorization"))
        .and_then(|(_, value)| {
            let (scheme, token) = value.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
}

/// An owned [`ConnectRequest`], for an authenticator that runs in the I/O layer (see
/// [`Admission::Defer`]): what [`crate::Transmit::Authenticate`] carries. Its `Debug` output
/// leaves out the passcode and the header values.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthRequest {
    /// The `login` header.
    pub login: Option<String>,
    /// The `passcode` header.
    pub passcode: Option<String>,
    /// The `host` header (the virtual host, 1.1+).
    pub host: Option<String>,
    /// Every header of the CONNECT (or STOMP) frame.
    pub headers: Headers,
    /// The connection, as the I/O layer described it.
    pub connection: ConnectionInfo,
    /// The protocol version negotiated.
    pub version: Version,
    /// When the CONNECT arrived, on the session's clock (see [`ConnectRequest::now`]).
    pub now: Instant,
}

impl AuthRequest {
    /// An owned copy of `request`, for version `version`.
    pub fn new(request: &ConnectRequest<'_>, version: Version) -> Self {
        AuthRequest {
            login: request.login.map(str::to_owned),
            passcode: request.passcode.map(str::to_owned),
            host: request.host.map(str::to_owned),
            headers: request.headers.clone(),
            connection: request.connection.clone(),
            version,
            now: request.now,
        }
    }

    /// The borrowed form, to ask a synchronous [`Authenticator`] (a JWT check, say).
    pub fn connect_request(&self) -> ConnectRequest<'_> {
        ConnectRequest {
            login: self.login.as_deref(),
            passcode: self.passcode.as_deref(),
            host: self.host.as_deref(),
            headers: &self.headers,
            connection: &self.connection,
            now: self.now,
        }
    }

    /// The token of an `Authorization: Bearer TOKEN` header (header name in any case).
    pub fn bearer_token(&self) -> Option<&str> {
        bearer_token(&self.headers)
    }
}

impl std::fmt::Debug for AuthRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(name, _)| name).collect();
        f.debug_struct("AuthRequest")
            .field("login", &self.login)
            .field("passcode", &self.passcode.as_ref().map(|_| "…"))
            .field("host", &self.host)
            .field("headers", &names)
            .field("connection", &self.connection.path)
            .field("transport", &self.connection.transport)
            .field("peer_addr", &self.connection.peer_addr)
            .field("version", &self.version)
            .finish_non_exhaustive()
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
    /// Patterns of destinations it may SUBSCRIBE to. Its own user destinations
    /// (`/user/queue/NAME`, see [`crate::Destination`]) need none: they are always allowed.
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

/// What an [`Authenticator`] answers to a CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// The client is this principal: the session sends CONNECTED.
    Accept(Principal),
    /// The client may not connect: the session sends an ERROR and closes.
    Refuse(Refusal),
    /// The I/O layer decides: the session emits [`crate::Transmit::Authenticate`] and waits
    /// for [`crate::Session::authenticated`].
    Defer,
}

impl From<Result<Principal, Refusal>> for Admission {
    fn from(verdict: Result<Principal, Refusal>) -> Self {
        match verdict {
            Ok(principal) => Admission::Accept(principal),
            Err(refusal) => Admission::Refuse(refusal),
        }
    }
}

/// Decides whether a client may connect. Called once per session, synchronously, when the
/// CONNECT frame arrives; an implementation that needs I/O defers to the I/O layer
/// ([`Admission::Defer`], see [`DeferredAuth`]).
pub trait Authenticator: Send + Sync {
    /// Accept the client as a [`Principal`], or refuse it.
    fn authenticate(&self, request: &ConnectRequest<'_>) -> Result<Principal, Refusal>;

    /// What the session asks: accept, refuse, or defer to the I/O layer. The default answers
    /// at once with [`Authenticator::authenticate`].
    fn admit(&self, request: &ConnectRequest<'_>) -> Admission {
        self.authenticate(request).into()
    }
}

impl<F> Authenticator for F
where
    F: Fn(&ConnectRequest<'_>) -> Result<Principal, Refusal> + Send + Sync,
{
    fn authenticate(&self, request: &ConnectRequest<'_>) -> Result<Principal, Refusal> {
        self(request)
    }
}

/// Defers every CONNECT to the I/O layer ([`Admission::Defer`]): the session emits
/// [`crate::Transmit::Authenticate`] and waits for [`crate::Session::authenticated`]. For an
/// asynchronous authenticator living in the I/O layer.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeferredAuth;

impl Authenticator for DeferredAuth {
    /// Refuses: the session never asks (it calls [`Authenticator::admit`], which defers).
    fn authenticate(&self, _request: &ConnectRequest<'_>) -> Result<Principal, Refusal> {
        Err(Refusal::new("authentication is left to the I/O layer"))
    }

    fn admit(&self, _request: &ConnectRequest<'_>) -> Admission {
        Admission::Defer
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
