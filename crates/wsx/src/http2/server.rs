//! [`Http2Server`]: serve one HTTP/2 connection whose streams are WebSockets (RFC 8441).
//!
//! Where it sits: after the TCP accept (and the TLS handshake with ALPN `h2`, if any), the
//! application hands the connection to [`Http2Server::serve_connection`]. Its SETTINGS
//! advertise `SETTINGS_ENABLE_CONNECT_PROTOCOL` and the [`Http2Limits`]. Each extended CONNECT
//! request (`:protocol websocket`) is mapped to the HTTP/1.1 Upgrade request it stands for
//! (RFC 8441 §5: `:authority` is `Host`, `:protocol` is `Upgrade`) and goes through the same
//! route, checks ([`wsx_proto::handshake::validate_upgrade`]) and [`Policy`] (Origin 403,
//! subprotocol, auth hook) as over HTTP/1.1, in the same order; it is answered `:status 200`
//! with the chosen subprotocol and the negotiated permessage-deflate, and the route's session
//! runs in its own task over an [`H2WebSocket`]. Refusals carry the same statuses as over
//! HTTP/1.1 (400, 403, 404 …), except that a wrong `sec-websocket-version` is 400 (with
//! `sec-websocket-version: 13`), since HTTP/2 has no Upgrade to require. Other requests (a plain
//! GET, a CONNECT for another protocol) get 400: this connection serves WebSockets only.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use h2::RecvStream;
use h2::server::SendResponse;
use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::debug;
use wsx_proto::deflate::PerMessageDeflate;
use wsx_proto::handshake::{
    AcceptResponse, HandshakeError, HttpRequest, WebSocketRequest, validate_upgrade,
};
use wsx_proto::{Connection, Role};

use super::stream::H2Stream;
use super::{H2WebSocket, Http2Limits, PROTOCOL, h2_error, is_connection_specific};
use crate::config::WebSocketConfig;
use crate::error::{Error, Result};
use crate::listener::ConnectionInfo;
use crate::policy::Policy;
use crate::server::{Accept, Reject};
use crate::websocket::WebSocket;

/// The `Sec-WebSocket-Key` put in the HTTP/1.1 form of an HTTP/2 request, which has none
/// (RFC 8441 §5): it only lets the request pass the HTTP/1.1 checks; no accept key is sent.
const MAPPED_KEY: &str = "AAAAAAAAAAAAAAAAAAAAAA==";

/// Response headers the server sets itself or HTTP/2 has no use for, besides those HTTP/2
/// forbids.
const SET_BY_SERVER: &[&str] = &["content-length", "sec-websocket-accept"];

/// Serves WebSockets on HTTP/2 connections: the settings, policy and limits they share.
#[derive(Debug, Clone, Default)]
pub struct Http2Server {
    config: WebSocketConfig,
    policy: Policy,
    limits: Http2Limits,
    shutdown: Option<CancellationToken>,
}

impl Http2Server {
    /// A server with default settings, policy and limits.
    pub fn new() -> Self {
        Self::default()
    }

    /// The WebSocket settings (limits, permessage-deflate, keepalive).
    pub fn config(mut self, config: WebSocketConfig) -> Self {
        self.config = config;
        self
    }

    /// The connect-time policy: Origin allow-list, subprotocols, auth hook, handshake timeout
    /// (which bounds the HTTP/2 preface, and how long a connection may stay without a
    /// WebSocket before it is closed with `GOAWAY`).
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// The HTTP/2 connection's limits.
    pub fn limits(mut self, limits: Http2Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Shut connections down gracefully when `token` is cancelled: each connection sends
    /// `GOAWAY` (no new WebSockets), its WebSockets are closed with 1001 "server shutting down"
    /// (as [`WebSocket::close_on`]), and [`serve_connection`](Self::serve_connection) returns
    /// once their streams have ended. Bound the wait yourself (the close handshakes have
    /// [`WebSocketConfig::close_timeout`]).
    pub fn close_on(mut self, token: CancellationToken) -> Self {
        self.shutdown = Some(token);
        self
    }

    /// Serve one HTTP/2 connection (the client's preface comes first: h2c with prior knowledge,
    /// or TLS after ALPN chose `h2`) until the client closes it. For each WebSocket request,
    /// `route` sees it first ([`ConnectionInfo`]) and returns the session to run, or a
    /// [`Reject`] (such as 404); then come the handshake checks and the policy, as over
    /// HTTP/1.1; the session runs in its own task.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] if the preface does not come within the policy's handshake timeout;
    /// [`Error::Http2`] or [`Error::Io`] when the connection fails. Sessions still running end
    /// on their own (their streams end with the connection: 1006).
    pub async fn serve_connection<IO, R, H, Fut>(
        &self,
        io: IO,
        peer: SocketAddr,
        route: R,
    ) -> Result<()>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
        R: Fn(&ConnectionInfo) -> std::result::Result<H, Reject>,
        H: FnOnce(H2WebSocket, ConnectionInfo) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        drive(
            io,
            peer,
            &self.limits,
            self.policy.handshake_timeout,
            self.shutdown.as_ref(),
            |request, respond| self.answer(request, respond, peer, &route),
        )
        .await
    }

    /// Check one request, apply the policy and the route, answer it, start its session.
    fn answer<R, H, Fut>(
        &self,
        request: Request<h2::RecvStream>,
        mut respond: SendResponse<Bytes>,
        peer: SocketAddr,
        route: &R,
    ) where
        R: Fn(&ConnectionInfo) -> std::result::Result<H, Reject>,
        H: FnOnce(H2WebSocket, ConnectionInfo) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (head, body) = request.into_parts();
        if !is_websocket_request(&head) {
            refuse(
                &mut respond,
                Reject::new(400, "only WebSocket requests (RFC 8441) are served here\n"),
            );
            return;
        }
        let (http1, info) = websocket_request_info(&head, peer);
        // In the order of the HTTP/1.1 server: the route (404 …), the handshake checks (400 …),
        // then the policy (403, the auth hook's statuses).
        let session = match route(&info) {
            Ok(session) => session,
            Err(reject) => return refuse(&mut respond, reject),
        };
        let ws_req = match validate_upgrade(&http1) {
            Ok(r) => r,
            Err(e) => {
                debug!(%peer, error = %e, "HTTP/2 WebSocket request refused");
                return refuse(&mut respond, handshake_refusal(&e));
            }
        };
        let accept = match self.policy.evaluate(&info.request, peer) {
            Ok(accept) => accept,
            Err(reject) => return refuse(&mut respond, reject),
        };
        let config = &self.config;
        let Some((stream, conn, subprotocol)) =
            accept_websocket(respond, body, &ws_req, config, accept, peer)
        else {
            return;
        };
        let mut ws = WebSocket::from_parts(stream, conn, config, subprotocol);
        if let Some(token) = &self.shutdown {
            ws.close_on(token.child_token());
        }
        tokio::spawn(session(ws, info));
    }
}

/// Drive one HTTP/2 server connection until it ends: the handshake (its SETTINGS advertise
/// `SETTINGS_ENABLE_CONNECT_PROTOCOL` and `limits`) within `handshake_timeout`, then every
/// request to `on_request`, which answers it through its [`SendResponse`] (without waiting:
/// what takes time runs in a task). A connection without a stream for `handshake_timeout` is
/// sent `GOAWAY`, as is every connection once `shutdown` is cancelled; either way it ends
/// once its streams have.
pub(crate) async fn drive<IO, F>(
    io: IO,
    peer: SocketAddr,
    limits: &Http2Limits,
    handshake_timeout: Duration,
    shutdown: Option<&CancellationToken>,
    mut on_request: F,
) -> Result<()>
where
    IO: AsyncRead + AsyncWrite + Unpin,
    F: FnMut(Request<RecvStream>, SendResponse<Bytes>),
{
    let mut builder = h2::server::Builder::new();
    builder
        .enable_connect_protocol()
        .max_concurrent_streams(limits.max_concurrent_streams)
        .initial_window_size(limits.initial_stream_window)
        .initial_connection_window_size(limits.initial_connection_window)
        .max_header_list_size(limits.max_header_list_size)
        .max_send_buffer_size(limits.max_send_buffer);
    let handshake = builder.handshake::<_, Bytes>(io);
    let mut conn = tokio::time::timeout(handshake_timeout, handshake)
        .await
        .map_err(|_| Error::Timeout("HTTP/2 preface"))?
        .map_err(h2_error)?;
    // A connection without a stream for the handshake timeout is closed: an idle peer holds
    // nothing for long.
    let idle_limit = handshake_timeout;
    let mut idle_check = tokio::time::interval((idle_limit / 2).max(Duration::from_millis(1)));
    idle_check.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut idle_since: Option<Instant> = None;
    let mut going_away = false;
    loop {
        let shutting_down = async {
            match shutdown {
                Some(token) if !going_away => token.cancelled().await,
                _ => std::future::pending().await,
            }
        };
        tokio::select! {
            () = shutting_down => {
                going_away = true;
                conn.graceful_shutdown();
            }
            _ = idle_check.tick(), if !going_away => {
                if conn.has_streams() {
                    idle_since = None;
                } else if idle_since.get_or_insert_with(Instant::now).elapsed() >= idle_limit {
                    debug!(%peer, "HTTP/2 connection idle: GOAWAY");
                    going_away = true;
                    conn.graceful_shutdown();
                }
            }
            accepted = conn.accept() => {
                let Some(accepted) = accepted else {
                    return Ok(());
                };
                let (request, respond) = accepted.map_err(h2_error)?;
                idle_since = None;
                on_request(request, respond);
            }
        }
    }
}

/// A WebSocket request as the HTTP/1.1 checks see it (RFC 8441 §5), and as the application
/// sees it: the request as sent (`CONNECT`, version 2) with the same headers.
pub(crate) fn websocket_request_info(
    head: &http::request::Parts,
    peer: SocketAddr,
) -> (HttpRequest, ConnectionInfo) {
    let http1 = as_upgrade_request(&head.uri, &head.headers);
    let info = ConnectionInfo {
        peer,
        request: HttpRequest {
            version: 2,
            method: head.method.as_str().to_owned(),
            ..http1.clone()
        },
    };
    (http1, info)
}

/// Whether an HTTP/2 request is an RFC 8441 WebSocket request: `CONNECT` with
/// `:protocol websocket`.
pub(crate) fn is_websocket_request(head: &http::request::Parts) -> bool {
    head.method == Method::CONNECT
        && head
            .extensions
            .get::<h2::ext::Protocol>()
            .is_some_and(|p| p.as_str().eq_ignore_ascii_case(PROTOCOL))
}

/// Accept a checked WebSocket request (its route, handshake checks and policy passed):
/// negotiate permessage-deflate as over HTTP/1.1, answer `:status 200` with the chosen
/// subprotocol and the `accept` headers: the parts of the WebSocket over the stream (the
/// stream, the protocol state, the subprotocol), for [`WebSocket::from_parts`]. `None` if the
/// client is gone already.
pub(crate) fn accept_websocket(
    mut respond: SendResponse<Bytes>,
    body: RecvStream,
    request: &WebSocketRequest,
    config: &WebSocketConfig,
    accept: Accept,
    peer: SocketAddr,
) -> Option<(H2Stream, Connection, Option<String>)> {
    let mut conn = Connection::new(Role::Server, config.limits);
    let mut extensions = None;
    if let Some(deflate) = &config.compression
        && let Some((params, header)) = deflate.server_accept(&request.extensions)
    {
        conn = conn.with_deflate(PerMessageDeflate::new(Role::Server, params, deflate));
        extensions = Some(header);
    }
    let accepted = AcceptResponse::new(
        MAPPED_KEY,
        accept.subprotocol.as_deref(),
        extensions.as_deref(),
        &accept.headers,
    );
    let mut response = Response::new(());
    *response.status_mut() = StatusCode::OK;
    copy_headers(accepted.headers(), response.headers_mut());
    let send = match respond.send_response(response, false) {
        Ok(send) => send,
        Err(e) => {
            debug!(%peer, error = %e, "HTTP/2 WebSocket response not sent");
            return None;
        }
    };
    Some((H2Stream::new(send, body), conn, accept.subprotocol))
}

/// The HTTP/1.1 Upgrade request an extended CONNECT (its URI and headers) stands for
/// (RFC 8441 §5).
pub(crate) fn as_upgrade_request(
    uri: &http::Uri,
    request_headers: &http::HeaderMap,
) -> HttpRequest {
    let mut headers: Vec<(String, Vec<u8>)> = Vec::with_capacity(request_headers.len() + 4);
    if let Some(authority) = uri.authority() {
        headers.push(("host".into(), authority.as_str().as_bytes().to_vec()));
    }
    headers.push(("upgrade".into(), PROTOCOL.as_bytes().to_vec()));
    headers.push(("connection".into(), b"Upgrade".to_vec()));
    headers.push(("sec-websocket-key".into(), MAPPED_KEY.as_bytes().to_vec()));
    for (name, value) in request_headers {
        // Host is :authority in HTTP/2; the rest is the handshake's, set above.
        if matches!(
            name.as_str(),
            "host" | "upgrade" | "connection" | "sec-websocket-key"
        ) {
            continue;
        }
        headers.push((name.as_str().to_owned(), value.as_bytes().to_vec()));
    }
    HttpRequest {
        method: "GET".into(),
        target: uri
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |pq| pq.as_str().to_owned()),
        version: 1,
        headers,
    }
}

/// The refusal for a request that failed the handshake checks: the HTTP/1.1 status, except
/// 426 (HTTP/2 has no Upgrade), which is 400; a wrong version comes with
/// `sec-websocket-version: 13`.
pub(crate) fn handshake_refusal(err: &HandshakeError) -> Reject {
    let mut reject = Reject::new(err.status().unwrap_or(400), format!("{err}\n"));
    if reject.status == 426 {
        // A plain request for a WebSocket route, or a wrong version.
        reject.status = 400;
    }
    if *err == HandshakeError::UnsupportedVersion {
        reject
            .headers
            .push(("sec-websocket-version".into(), "13".into()));
    }
    reject
}

/// Answer a refused request: its status, headers and plain-text body, then `END_STREAM`.
pub(crate) fn refuse(respond: &mut SendResponse<Bytes>, reject: Reject) {
    let mut response = Response::new(());
    *response.status_mut() = StatusCode::from_u16(reject.status).unwrap_or(StatusCode::BAD_REQUEST);
    let headers = response.headers_mut();
    copy_headers(
        reject.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        headers,
    );
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    let body = Bytes::from(reject.body);
    // The client may be gone already; there is no one else to tell.
    if let Ok(mut send) = respond.send_response(response, body.is_empty())
        && !body.is_empty()
    {
        let _ = send.send_data(body, true);
    }
}

/// Copy response headers into an HTTP/2 header map, without those HTTP/2 forbids or the
/// handshake owns, and without values HTTP/2 cannot carry.
pub(crate) fn copy_headers<'a>(
    from: impl Iterator<Item = (&'a str, &'a str)>,
    to: &mut http::HeaderMap,
) {
    for (name, value) in from {
        let name = name.to_ascii_lowercase();
        if is_connection_specific(&name) || SET_BY_SERVER.contains(&name.as_str()) {
            continue;
        }
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            to.append(name, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An extended CONNECT's head with these headers.
    fn connect(uri: &str, headers: &[(&str, &str)]) -> http::request::Parts {
        let mut req = Request::builder().method(Method::CONNECT).uri(uri);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        req.body(()).unwrap().into_parts().0
    }

    #[test]
    fn maps_an_extended_connect_to_its_upgrade() {
        let head = connect(
            "https://example.com/chat?room=1",
            &[
                ("sec-websocket-version", "13"),
                ("sec-websocket-protocol", "chat, superchat"),
                ("origin", "https://example.com"),
            ],
        );
        let req = as_upgrade_request(&head.uri, &head.headers);
        assert_eq!(req.path(), "/chat");
        assert_eq!(req.query(), Some("room=1"));
        assert_eq!(req.header_str("host"), Some("example.com"));
        let ws = validate_upgrade(&req).unwrap();
        assert_eq!(ws.subprotocols, ["chat", "superchat"]);
    }

    #[test]
    fn a_wrong_version_is_400_with_the_version_header() {
        let head = connect("https://example.com/", &[("sec-websocket-version", "8")]);
        let err = validate_upgrade(&as_upgrade_request(&head.uri, &head.headers)).unwrap_err();
        let reject = handshake_refusal(&err);
        assert_eq!(reject.status, 400);
        assert_eq!(
            reject.headers,
            [("sec-websocket-version".to_owned(), "13".to_owned())]
        );
    }

    #[test]
    fn forbidden_headers_are_left_out() {
        let mut map = http::HeaderMap::new();
        let from = [("Upgrade", "websocket"), ("X-Ok", "1"), ("Connection", "x")];
        copy_headers(from.into_iter(), &mut map);
        assert_eq!(map.len(), 1);
        assert_eq!(map["x-ok"], "1");
    }
}
