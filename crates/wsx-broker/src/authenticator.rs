//! Who may connect: the [`AsyncAuthenticator`] an application gives the broker
//! ([`crate::BrokerBuilder::authenticator`]), and the synchronous authenticator the sans-IO
//! broker asks first ([`BrokerAuth`]).
//!
//! Where it sits in the flow: a client's CONNECT reaches its session (`wsx-stomp`), which asks
//! [`BrokerAuth`]. Without an async authenticator that answers at once (JWT built in, or
//! everyone allowed). With one it defers ([`wsx_stomp::Admission::Defer`]): the session emits
//! [`wsx_stomp::Transmit::Authenticate`] with an owned [`AuthRequest`] (the upgrade request's
//! path, query, headers, cookies and peer, and the CONNECT's `login`, `passcode` and
//! `Authorization`), which the hub hands to [`spawn_authentication`] instead of the connection's
//! queue. A task runs the authenticator, at most [`AUTHENTICATION_TIMEOUT`] (then the refusal
//! `authentication timed out`), and hands the verdict to the hub
//! ([`crate::hub::Hub::authenticated`]), which routes CONNECTED (or ERROR and the close) to the
//! connection like any other hub call. A connection closed meanwhile is no longer in the
//! broker: the verdict is ignored.
//!
//! In-process sessions of the broker itself ([`crate::Broker::subscribe`]) are let in by
//! [`BrokerAuth`] without asking anyone: they carry a marker no network request can carry
//! (a header name with a space, which HTTP forbids) holding this broker's random token.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tracing::debug;
use wsx_stomp::{
    Admission, AuthRequest, Authenticator, ConnId, ConnectRequest, ConnectionInfo, Principal,
    Refusal,
};

use crate::broker::Broker;

/// How long an [`AsyncAuthenticator`] may take before the client is refused with
/// `authentication timed out` (unless [`crate::BrokerBuilder::authentication_timeout`] says
/// otherwise).
pub const AUTHENTICATION_TIMEOUT: Duration = Duration::from_secs(10);

/// The header name that marks an in-process session (not a valid HTTP header name).
const IN_PROCESS_MARKER: &str = "wsx in-process";
/// The principal of in-process sessions.
const IN_PROCESS_PRINCIPAL: &str = "wsx-broker";

/// The future an [`AsyncAuthenticator`] answers with.
pub type AuthFuture = Pin<Box<dyn Future<Output = Result<Principal, Refusal>> + Send>>;

/// Decides who a connecting client is, asynchronously (a database, an HTTP call): any
/// `Fn(AuthRequest) -> impl Future<Output = Result<Principal, Refusal>> + Send` is one.
///
/// The [`AuthRequest`] holds the CONNECT frame (`login`, `passcode`,
/// [`AuthRequest::bearer_token`], every header) and the connection
/// ([`AuthRequest::connection`]: path, query, upgrade headers, [`ConnectionInfo::cookie`],
/// peer, transport). A [`Refusal`] becomes an ERROR frame with its message, then the
/// connection closes; so does an answer slower than [`AUTHENTICATION_TIMEOUT`].
pub trait AsyncAuthenticator: Send + Sync + 'static {
    /// Accept the client as a principal, or refuse it.
    fn authenticate(&self, request: AuthRequest) -> AuthFuture;
}

impl<F, Fut> AsyncAuthenticator for F
where
    F: Fn(AuthRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Principal, Refusal>> + Send + 'static,
{
    fn authenticate(&self, request: AuthRequest) -> AuthFuture {
        Box::pin(self(request))
    }
}

/// The synchronous authenticator of the sans-IO broker: in-process sessions in at once, then
/// defer to the async authenticator when there is one, else ask the built-in one (JWT, or
/// everyone allowed).
pub(crate) struct BrokerAuth {
    /// The built-in authenticator, used when there is no async one.
    pub(crate) built_in: Arc<dyn Authenticator>,
    /// Whether an async authenticator decides (the session defers).
    pub(crate) deferred: bool,
    /// This broker's token for its in-process sessions.
    pub(crate) in_process_token: String,
}

impl BrokerAuth {
    /// The [`ConnectionInfo`] of an in-process session of this broker.
    pub(crate) fn in_process_info(&self) -> ConnectionInfo {
        ConnectionInfo::new()
            .with_path("in-process")
            .with_header(IN_PROCESS_MARKER, self.in_process_token.clone())
    }

    fn is_in_process(&self, info: &ConnectionInfo) -> bool {
        info.headers
            .iter()
            .any(|(name, value)| name == IN_PROCESS_MARKER && *value == self.in_process_token)
    }
}

impl Authenticator for BrokerAuth {
    fn authenticate(&self, request: &ConnectRequest<'_>) -> Result<Principal, Refusal> {
        if self.is_in_process(request.connection) {
            return Ok(Principal::allow_all(IN_PROCESS_PRINCIPAL).unverified());
        }
        self.built_in.authenticate(request)
    }

    fn admit(&self, request: &ConnectRequest<'_>) -> Admission {
        if self.is_in_process(request.connection) {
            return Admission::Accept(Principal::allow_all(IN_PROCESS_PRINCIPAL).unverified());
        }
        if self.deferred {
            return Admission::Defer;
        }
        self.built_in.admit(request)
    }
}

/// A token no client can guess: 128 random bits, in hex.
pub(crate) fn random_token() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Run `authenticator` on `request` of connection `conn` in a task of its own, at most
/// `timeout`, then hand the verdict to the broker's hub (ignored if the broker or the
/// connection is gone).
pub(crate) fn spawn_authentication(
    authenticator: Arc<dyn AsyncAuthenticator>,
    timeout: Duration,
    broker: Weak<Broker>,
    conn: ConnId,
    request: AuthRequest,
) {
    tokio::spawn(async move {
        let verdict = match tokio::time::timeout(timeout, authenticator.authenticate(request)).await
        {
            Ok(verdict) => verdict,
            Err(_) => Err(Refusal::new("authentication timed out")),
        };
        debug!(
            conn = conn.0,
            accepted = verdict.is_ok(),
            "stomp: authenticated"
        );
        if let Some(broker) = broker.upgrade() {
            broker.hub.authenticated(conn, verdict);
        }
    });
}
