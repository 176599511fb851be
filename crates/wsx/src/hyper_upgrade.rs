//! hyper 1 integration (feature `hyper`): answer a WebSocket Upgrade request that a hyper server
//! received, and get a [`WebSocket`] once hyper hands the connection over.
//!
//! Where it sits in the flow: hyper has already read and parsed the HTTP request (on a
//! connection served with `with_upgrades()`). [`upgrade`] validates it with the same checks as
//! the raw-stream server ([`wsx_proto::handshake::validate_upgrade`]), negotiates
//! permessage-deflate from [`WebSocketConfig::compression`], and returns the
//! `101 Switching Protocols` response for the service to return, plus a [`HyperWebSocketFuture`]
//! that resolves to the [`HyperWebSocket`] after hyper has sent that response and released the
//! connection. From then on it is the same [`WebSocket`] as everywhere else.
//!
//! An invalid request is an error ([`HandshakeError`]); [`error_response`] turns it into the
//! HTTP response to send (400, 405, 426 with `Sec-WebSocket-Version: 13`, …), the same one the
//! raw-stream server writes.
//!
//! ```no_run
//! use std::convert::Infallible;
//!
//! use http_body_util::Full;
//! use hyper::body::{Bytes, Incoming};
//! use hyper::{Request, Response};
//! use wsx::hyper_upgrade::{error_response, is_upgrade_request, upgrade};
//! use wsx::{Accept, WebSocketConfig};
//!
//! async fn handle(mut req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
//!     if !is_upgrade_request(&req) {
//!         return Ok(Response::new(Full::new(Bytes::from_static(b"hello"))));
//!     }
//!     match upgrade(&mut req, &WebSocketConfig::default(), Accept::default()) {
//!         Ok((response, websocket)) => {
//!             tokio::spawn(async move {
//!                 let mut ws = websocket.await?;
//!                 while let Some(msg) = ws.recv().await {
//!                     let msg = msg?;
//!                     if msg.is_data() {
//!                         ws.send(msg).await?;
//!                     }
//!                 }
//!                 Ok::<_, wsx::Error>(())
//!             });
//!             Ok(response)
//!         }
//!         Err(e) => Ok(error_response(&e)),
//!     }
//! }
//! ```
//!
//! HTTP/1.1 upgrades (RFC 6455) and, with the feature `http2`, HTTP/2 extended CONNECT requests
//! (RFC 8441, `:protocol websocket`; serve HTTP/2 with `enable_connect_protocol()`, and route
//! `CONNECT` as well as `GET`): those are checked as the HTTP/1.1 Upgrade they stand for and
//! answered `200`, and the WebSocket runs over the HTTP/2 stream, with the same type
//! ([`HyperWebSocket`]). Any other HTTP/2 request is refused with 400
//! ([`HandshakeError::NotHttp11`]).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::http::Extensions;
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper::{Method, Request, Response, StatusCode, Uri, Version};
use hyper_util::rt::TokioIo;
use wsx_proto::deflate::{DeflateParams, PerMessageDeflate};
use wsx_proto::handshake::{
    AcceptResponse, HandshakeError, HttpRequest, WebSocketRequest, validate_upgrade,
};
use wsx_proto::{Connection, Role};

use crate::config::WebSocketConfig;
use crate::error::{Error, Result};
use crate::server::Accept;
use crate::websocket::WebSocket;

/// A WebSocket over a connection that hyper upgraded.
pub type HyperWebSocket = WebSocket<TokioIo<Upgraded>>;

/// Whether `req` asks for a WebSocket upgrade (its `Upgrade` header has the `websocket` token),
/// or, with the feature `http2`, is an HTTP/2 extended CONNECT for a WebSocket (RFC 8441).
///
/// Use it to route: requests for which this is `false` are ordinary HTTP requests. A request
/// for which it is `true` may still be invalid; [`upgrade`] checks the rest.
pub fn is_upgrade_request<B>(req: &Request<B>) -> bool {
    is_upgrade_headers(req.headers())
        || is_extended_connect(req.method(), req.version(), req.extensions())
}

/// The request's head as a [`HttpRequest`], the type the raw-stream server and its accept
/// callback see (method, target, version, headers).
pub fn http_request<B>(req: &Request<B>) -> HttpRequest {
    to_http_request(req.method(), req.uri(), req.version(), req.headers())
}

/// Answer a WebSocket Upgrade request received by a hyper server.
///
/// Validates `req` (RFC 6455 §4.2.1), negotiates permessage-deflate when
/// `config.compression` is set and the client offered it, and returns:
///
/// * the `101 Switching Protocols` response, with `Sec-WebSocket-Accept`, the subprotocol and
///   headers of `accept`, and the negotiated `Sec-WebSocket-Extensions`; the service must return
///   it for the upgrade to happen;
/// * a future that resolves to the [`HyperWebSocket`] once hyper has sent the response and
///   handed over the connection (spawn a task that awaits it). It fails with [`Error::Io`] when
///   the connection cannot be upgraded (it was served without `with_upgrades()`, or closed).
///
/// The subprotocol in `accept` should be one the client offered
/// ([`http_request`]`(&req).header_values("sec-websocket-protocol")`); clients refuse others.
///
/// # Errors
///
/// An invalid upgrade request: answer it with [`error_response`].
pub fn upgrade<B>(
    req: &mut Request<B>,
    config: &WebSocketConfig,
    accept: Accept,
) -> std::result::Result<(Response<Full<Bytes>>, HyperWebSocketFuture), HandshakeError> {
    let http2 = is_extended_connect(req.method(), req.version(), req.extensions());
    let ws_req = validate(
        req.method(),
        req.uri(),
        req.version(),
        req.headers(),
        req.extensions(),
    )?;
    let (response, pending) = negotiate(&ws_req, config, accept, http2);
    let future = HyperWebSocketFuture {
        on_upgrade: hyper::upgrade::on(req),
        pending: Some(pending),
    };
    Ok((response, future))
}

/// The HTTP response for a refused handshake: the status of [`HandshakeError::status`] (400
/// for errors without one), a plain-text body, and the headers the status calls for (`Upgrade:
/// websocket` on 426 for a plain request, `Sec-WebSocket-Version: 13` on 426 for a wrong
/// version, `Allow: GET` on 405). The same response as
/// [`wsx_proto::handshake::error_response`], as a hyper [`Response`]; it asks hyper to close
/// the connection (`Connection: close`).
pub fn error_response(err: &HandshakeError) -> Response<Full<Bytes>> {
    head_to_response(&wsx_proto::handshake::error_response(err))
}

/// Resolves to the [`HyperWebSocket`] once hyper has upgraded the connection; returned by
/// [`upgrade`].
#[derive(Debug)]
#[must_use = "the WebSocket is only available by awaiting this future"]
pub struct HyperWebSocketFuture {
    on_upgrade: OnUpgrade,
    pending: Option<Pending>,
}

impl Future for HyperWebSocketFuture {
    type Output = Result<HyperWebSocket>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let upgraded = ready!(Pin::new(&mut self.on_upgrade).poll(cx));
        // Polled again after completion: the WebSocket was handed out already.
        let Some(pending) = self.pending.take() else {
            return Poll::Ready(Err(Error::Closed));
        };
        Poll::Ready(match upgraded {
            Ok(upgraded) => Ok(pending.finish(upgraded)),
            Err(e) => Err(Error::Io(io::Error::other(e))),
        })
    }
}

/// What the handshake decided, kept until hyper hands over the connection.
#[derive(Debug)]
pub(crate) struct Pending {
    config: WebSocketConfig,
    deflate: Option<DeflateParams>,
    subprotocol: Option<String>,
}

impl Pending {
    /// Wrap the upgraded connection. hyper's `Upgraded` replays any bytes it read past the
    /// request head, so nothing is lost.
    pub(crate) fn finish(self, upgraded: Upgraded) -> HyperWebSocket {
        let mut conn = Connection::new(Role::Server, self.config.limits);
        if let (Some(params), Some(deflate)) = (self.deflate, &self.config.compression) {
            conn = conn.with_deflate(PerMessageDeflate::new(Role::Server, params, deflate));
        }
        WebSocket::from_parts(TokioIo::new(upgraded), conn, &self.config, self.subprotocol)
    }
}

/// Whether a request is an HTTP/2 extended CONNECT for a WebSocket (RFC 8441); never without
/// the feature `http2`.
pub(crate) fn is_extended_connect(
    method: &Method,
    version: Version,
    extensions: &Extensions,
) -> bool {
    #[cfg(feature = "http2")]
    return version == Version::HTTP_2
        && method == Method::CONNECT
        && extensions
            .get::<hyper::ext::Protocol>()
            .is_some_and(|p| p.as_str().eq_ignore_ascii_case("websocket"));
    #[cfg(not(feature = "http2"))]
    {
        let _ = (method, version, extensions);
        false
    }
}

/// Whether the `Upgrade` headers carry the `websocket` token.
pub(crate) fn is_upgrade_headers(headers: &HeaderMap) -> bool {
    let values = headers.get_all(hyper::header::UPGRADE);
    wsx_proto::handshake::has_token(values.iter().map(|v| v.as_bytes()), "websocket")
}

/// Converts a request head into the handshake module's request type.
pub(crate) fn to_http_request(
    method: &Method,
    uri: &Uri,
    version: Version,
    headers: &HeaderMap,
) -> HttpRequest {
    let version = match version {
        Version::HTTP_11 => 1,
        Version::HTTP_2 => 2,
        Version::HTTP_3 => 3,
        _ => 0,
    };
    HttpRequest {
        method: method.as_str().to_owned(),
        target: uri
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |pq| pq.as_str().to_owned()),
        version,
        headers: headers
            .iter()
            .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
            .collect(),
    }
}

/// Validates a request head as a WebSocket upgrade (RFC 6455 §4.2.1), or an HTTP/2 extended
/// CONNECT as the upgrade it stands for (RFC 8441 §5, feature `http2`).
pub(crate) fn validate(
    method: &Method,
    uri: &Uri,
    version: Version,
    headers: &HeaderMap,
    extensions: &Extensions,
) -> std::result::Result<WebSocketRequest, HandshakeError> {
    #[cfg(feature = "http2")]
    if is_extended_connect(method, version, extensions) {
        return validate_upgrade(&crate::http2::as_upgrade_request(uri, headers));
    }
    #[cfg(not(feature = "http2"))]
    let _ = extensions;
    validate_upgrade(&to_http_request(method, uri, version, headers))
}

/// Negotiates permessage-deflate and builds the response for a validated request: 101, or 200
/// for an HTTP/2 extended CONNECT (`http2`).
pub(crate) fn negotiate(
    ws_req: &WebSocketRequest,
    config: &WebSocketConfig,
    accept: Accept,
    http2: bool,
) -> (Response<Full<Bytes>>, Pending) {
    let negotiated = config
        .compression
        .as_ref()
        .and_then(|deflate| deflate.server_accept(&ws_req.extensions));
    let (deflate, extensions) = match negotiated {
        Some((params, header)) => (Some(params), Some(header)),
        None => (None, None),
    };
    // The same response as the raw-stream server's, from the same structure (managed headers
    // dropped from `accept.headers`, CR/LF removed), built as a hyper response directly.
    let accepted = AcceptResponse::new(
        &ws_req.key,
        accept.subprotocol.as_deref(),
        extensions.as_deref(),
        &accept.headers,
    );
    let response = accept_to_response(&accepted, http2);
    let pending = Pending {
        config: config.clone(),
        deflate,
        subprotocol: accept.subprotocol,
    };
    (response, pending)
}

/// The hyper [`Response`] for a handshake's [`AcceptResponse`] (101, its headers, no body);
/// over HTTP/2, 200 without the HTTP/1.1 handshake's `Upgrade`, `Connection` and
/// `Sec-WebSocket-Accept`.
fn accept_to_response(accepted: &AcceptResponse, http2: bool) -> Response<Full<Bytes>> {
    const NOT_OVER_HTTP2: &[&str] = &["upgrade", "connection", "sec-websocket-accept"];
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = if http2 {
        StatusCode::OK
    } else {
        StatusCode::SWITCHING_PROTOCOLS
    };
    let map = response.headers_mut();
    for (name, value) in accepted.headers() {
        if http2 && NOT_OVER_HTTP2.iter().any(|n| name.eq_ignore_ascii_case(n)) {
            continue;
        }
        // Sanitized by `AcceptResponse::new`; a value hyper still refuses is left out.
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            map.append(name, value);
        }
    }
    response
}

/// Converts a complete HTTP/1.1 response (head and body) built by the handshake module into a
/// hyper [`Response`]. `Content-Length` is left to hyper, which computes it from the body.
fn head_to_response(raw: &[u8]) -> Response<Full<Bytes>> {
    let mut headers = [httparse::EMPTY_HEADER; wsx_proto::handshake::MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut headers);
    let (code, head_len) = match parsed.parse(raw) {
        Ok(httparse::Status::Complete(len)) => (parsed.code, len),
        // Unreachable with the handshake module's output; answer 500 rather than panic.
        _ => (None, raw.len()),
    };
    let status = code
        .and_then(|c| StatusCode::from_u16(c).ok())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = raw.get(head_len..).unwrap_or_default();
    let mut response = Response::new(Full::new(Bytes::copy_from_slice(body)));
    *response.status_mut() = status;
    let map = response.headers_mut();
    for h in parsed.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            continue;
        }
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(h.name.as_bytes()),
            HeaderValue::from_bytes(h.value),
        ) {
            map.append(name, value);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)]) -> Request<()> {
        let mut builder = Request::get("/chat?room=1");
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        builder.body(()).unwrap()
    }

    const VALID: &[(&str, &str)] = &[
        ("host", "example.com"),
        ("upgrade", "websocket"),
        ("connection", "Upgrade"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("sec-websocket-version", "13"),
    ];

    #[test]
    fn accepts_a_valid_request() {
        let mut req = request(VALID);
        assert!(is_upgrade_request(&req));
        let http = http_request(&req);
        assert_eq!(http.path(), "/chat");
        assert_eq!(http.query(), Some("room=1"));
        let accept = Accept {
            subprotocol: Some("chat".into()),
            headers: vec![
                ("X-Server".into(), "wsx".into()),
                ("Upgrade".into(), "evil".into()),
            ],
        };
        let (resp, _fut) = upgrade(&mut req, &WebSocketConfig::default(), accept).unwrap();
        assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
        let h = resp.headers();
        assert_eq!(h["sec-websocket-accept"], "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(h["sec-websocket-protocol"], "chat");
        assert_eq!(h["x-server"], "wsx");
        assert_eq!(h.get_all("upgrade").iter().count(), 1);
        assert_eq!(h["upgrade"], "websocket");
        assert_eq!(h["connection"], "Upgrade");
        assert!(h.get("sec-websocket-extensions").is_none());
    }

    #[test]
    fn negotiates_deflate_only_when_configured_and_offered() {
        let offer = [("sec-websocket-extensions", "permessage-deflate")];
        let with_offer: Vec<_> = VALID.iter().chain(&offer).copied().collect();
        let on = WebSocketConfig::default().compression(Default::default());

        let (resp, fut) = upgrade(&mut request(&with_offer), &on, Accept::default()).unwrap();
        assert!(
            resp.headers()["sec-websocket-extensions"]
                .to_str()
                .unwrap()
                .starts_with("permessage-deflate")
        );
        assert!(fut.pending.as_ref().unwrap().deflate.is_some());

        let (resp, _) = upgrade(&mut request(VALID), &on, Accept::default()).unwrap();
        assert!(resp.headers().get("sec-websocket-extensions").is_none());
        let off = WebSocketConfig::default();
        let (resp, _) = upgrade(&mut request(&with_offer), &off, Accept::default()).unwrap();
        assert!(resp.headers().get("sec-websocket-extensions").is_none());
    }

    #[test]
    fn refusals_carry_their_status_and_headers() {
        let plain = request(&[("host", "example.com")]);
        assert!(!is_upgrade_request(&plain));
        let err = upgrade(
            &mut request(&[("host", "h")]),
            &Default::default(),
            Accept::default(),
        )
        .unwrap_err();
        assert_eq!(err, HandshakeError::NotUpgrade);
        let resp = error_response(&err);
        assert_eq!(resp.status(), StatusCode::UPGRADE_REQUIRED);
        assert_eq!(resp.headers()["upgrade"], "websocket");
        assert!(resp.headers().get("content-length").is_none());

        let mut v12: Vec<_> = VALID.to_vec();
        v12[4].1 = "12";
        let err = upgrade(&mut request(&v12), &Default::default(), Accept::default()).unwrap_err();
        let resp = error_response(&err);
        assert_eq!(resp.status(), StatusCode::UPGRADE_REQUIRED);
        assert_eq!(resp.headers()["sec-websocket-version"], "13");

        let mut post = request(VALID);
        *post.method_mut() = Method::POST;
        let err = upgrade(&mut post, &Default::default(), Accept::default()).unwrap_err();
        let resp = error_response(&err);
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(resp.headers()["allow"], "GET");

        let mut h2 = request(VALID);
        *h2.version_mut() = Version::HTTP_2;
        let err = upgrade(&mut h2, &Default::default(), Accept::default()).unwrap_err();
        assert_eq!(err, HandshakeError::NotHttp11);
        assert_eq!(error_response(&err).status(), StatusCode::BAD_REQUEST);
    }
}
