//! [`Http2Client`]: WebSockets over one HTTP/2 connection (RFC 8441), as a client.
//!
//! Where it sits: [`Http2Client::handshake`] runs the HTTP/2 preface over a connected
//! transport (TCP for h2c with prior knowledge, or a TLS stream whose ALPN chose `h2`) and
//! waits for the server's SETTINGS (a PING round trip: the SETTINGS come before the PONG); the
//! connection is then driven by a task of its own. A server that does not advertise
//! `SETTINGS_ENABLE_CONNECT_PROTOCOL` is [`Error::NoExtendedConnect`]: fall back to HTTP/1.1
//! ([`ClientBuilder::connect`]). Each [`Http2Client::open`] sends an extended CONNECT built
//! from a [`ClientBuilder`] (path, Origin, subprotocols, extension offer, headers) and checks
//! the `:status 200` answer with the same code as an HTTP/1.1 101
//! ([`wsx_proto::handshake::parse_response`]), so an unrequested subprotocol or extension is
//! refused the same way. The client is a cheap handle: clones open more WebSockets on the same
//! connection, which ends once every handle and WebSocket is dropped.

#[cfg(feature = "rustls")]
use std::sync::Arc;

use bytes::Bytes;
use h2::client::SendRequest;
use h2::ext::Protocol;
use http::{Method, Request};
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::debug;
use wsx_proto::deflate::PerMessageDeflate;
use wsx_proto::handshake::{
    ClientRequest, ClientResponse, HandshakeError, WsUrl, accept_key, parse_response, reason_phrase,
};
use wsx_proto::{Connection, Role};

use super::ClientBuilder;
use super::proxy::open_tcp;
use crate::MaybeTlsStream;
use crate::error::{Error, Result};
use crate::http2::{H2Stream, H2WebSocket, Http2Limits, h2_error, is_connection_specific};
#[cfg(feature = "rustls")]
use crate::tls::{ALPN_H2, ALPN_HTTP11, TlsConnector};
use crate::websocket::WebSocket;

/// The transport of a WebSocket opened by [`ClientBuilder::connect_prefer_http2`]: a stream
/// of an HTTP/2 connection (`Left`) or an HTTP/1.1 connection (`Right`).
pub type PreferHttp2Stream = tokio_util::either::Either<H2Stream, MaybeTlsStream>;

/// Request headers the handshake sets itself (`host` is `:authority`), besides those HTTP/2
/// forbids.
const SET_BY_CLIENT: &[&str] = &["host", "sec-websocket-key", "sec-websocket-version"];

/// A client's HTTP/2 connection, on which it opens WebSockets. Clones share the connection.
#[derive(Debug, Clone)]
pub struct Http2Client {
    send: SendRequest<Bytes>,
    /// `https` over TLS, `http` for h2c (the `:scheme` of every request).
    scheme: &'static str,
}

impl Http2Client {
    /// Connect to the host and port of `builder`'s URL (through its proxy, if one is set) and
    /// start HTTP/2: with prior knowledge (h2c) for `ws://`; for `wss://`, over TLS with ALPN
    /// `h2` (`builder`'s [`tls`](ClientBuilder::tls) connector, or Mozilla's roots), which the
    /// server must choose. Bounded by `builder`'s
    /// [`connect_timeout`](ClientBuilder::connect_timeout). Only the connection settings of
    /// `builder` are used here; [`open`](Self::open) takes the per-WebSocket ones.
    ///
    /// # Errors
    ///
    /// [`Error::NoExtendedConnect`] when the server does not choose `h2` in ALPN, or does not
    /// accept WebSockets over HTTP/2 (fall back to HTTP/1.1); [`Error::InvalidUrl`] for a
    /// malformed URL, or `wss://` without the `rustls` feature; [`Error::Io`] when the TCP
    /// connection or the TLS handshake fails; [`Error::Timeout`]; those of
    /// [`handshake`](Self::handshake).
    pub async fn connect(builder: &ClientBuilder, limits: &Http2Limits) -> Result<Http2Client> {
        match builder.connect_timeout {
            Some(limit) => tokio::time::timeout(limit, Self::connect_inner(builder, limits))
                .await
                .map_err(|_| Error::Timeout("connect (TCP, proxy, TLS and HTTP/2 SETTINGS)"))?,
            None => Self::connect_inner(builder, limits).await,
        }
    }

    async fn connect_inner(builder: &ClientBuilder, limits: &Http2Limits) -> Result<Http2Client> {
        let url = WsUrl::parse(&builder.url)?;
        let tcp = open_tcp(&url, &builder.proxy).await?;
        if !url.secure {
            return Self::handshake(tcp, false, limits).await;
        }
        #[cfg(feature = "rustls")]
        {
            let tls = tls_offering(builder, &[ALPN_H2])?
                .connect(&url.host, tcp)
                .await?;
            if tls.get_ref().1.alpn_protocol() != Some(ALPN_H2) {
                return Err(Error::NoExtendedConnect);
            }
            Self::handshake(tls, true, limits).await
        }
        #[cfg(not(feature = "rustls"))]
        Err(Error::InvalidUrl(
            "wss:// needs TLS: build wsx with the `rustls` feature".into(),
        ))
    }

    /// Start HTTP/2 over a connected transport (`secure`: whether it is TLS, which sets the
    /// requests' `:scheme`) and wait for the server's SETTINGS.
    ///
    /// # Errors
    ///
    /// [`Error::NoExtendedConnect`] when the server does not accept WebSockets over HTTP/2;
    /// [`Error::Http2`] or [`Error::Io`] when the connection fails.
    pub async fn handshake<S>(io: S, secure: bool, limits: &Http2Limits) -> Result<Http2Client>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (send, mut conn) = h2::client::Builder::new()
            .enable_push(false)
            .max_concurrent_streams(limits.max_concurrent_streams)
            .initial_window_size(limits.initial_stream_window)
            .initial_connection_window_size(limits.initial_connection_window)
            .max_header_list_size(limits.max_header_list_size)
            .max_send_buffer_size(limits.max_send_buffer)
            .handshake::<_, Bytes>(io)
            .await
            .map_err(h2_error)?;
        let mut ping = conn.ping_pong();
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                debug!(error = %e, "HTTP/2 client connection ended");
            }
        });
        // The server's SETTINGS are its first frame: once the PONG is back, they are known.
        if let Some(ping) = &mut ping {
            ping.ping(h2::Ping::opaque()).await.map_err(h2_error)?;
        }
        if !send.is_extended_connect_protocol_enabled() {
            return Err(Error::NoExtendedConnect);
        }
        let scheme = if secure { "https" } else { "http" };
        Ok(Http2Client { send, scheme })
    }

    /// Open a WebSocket on this connection: `builder`'s URL gives the path and authority (its
    /// scheme, TLS and proxy settings are not used: this connection is), and its Origin,
    /// subprotocols, headers and [`WebSocketConfig`](crate::WebSocketConfig) (permessage-deflate
    /// offer, limits) are used as over HTTP/1.1. Its
    /// [`connect_timeout`](ClientBuilder::connect_timeout) bounds the request and its answer
    /// (waiting for a free stream included).
    ///
    /// # Errors
    ///
    /// [`Error::Protocol`] with [`HandshakeError::Rejected`] when the server answers another
    /// status than 200 (its status and reason phrase), or another handshake error for an
    /// invalid answer; [`Error::Http2`] when the stream is refused or reset or the connection
    /// is gone; [`Error::InvalidUrl`] for a malformed URL; [`Error::Timeout`].
    pub async fn open(&self, builder: ClientBuilder) -> Result<(H2WebSocket, ClientResponse)> {
        match builder.connect_timeout {
            Some(limit) => tokio::time::timeout(limit, self.open_inner(builder))
                .await
                .map_err(|_| Error::Timeout("opening a WebSocket over HTTP/2"))?,
            None => self.open_inner(builder).await,
        }
    }

    async fn open_inner(&self, builder: ClientBuilder) -> Result<(H2WebSocket, ClientResponse)> {
        self.open_wrapped(&builder, |io| io).await
    }

    /// [`open`](Self::open) without its time limit, the stream wrapped by `wrap`.
    async fn open_wrapped<T>(
        &self,
        builder: &ClientBuilder,
        wrap: impl FnOnce(H2Stream) -> T,
    ) -> Result<(WebSocket<T>, ClientResponse)> {
        let url = WsUrl::parse(&builder.url)?;
        let req = builder.request(&url);
        let request = self.connect_request(&req)?;
        let mut send = self.send.clone().ready().await.map_err(h2_error)?;
        let (response, stream) = send.send_request(request, false).map_err(h2_error)?;
        let response = response.await.map_err(h2_error)?;
        let (head, body) = response.into_parts();
        let status = head.status.as_u16();
        if status != 200 {
            return Err(HandshakeError::Rejected {
                status,
                reason: reason_phrase(status).to_owned(),
            }
            .into());
        }
        let resp = check_response(&head.headers, &req)?;
        let config = &builder.config;
        let mut conn = Connection::new(Role::Client, config.limits);
        if let Some(deflate) = &config.compression
            && let Some(params) = deflate.client_accept(&resp.extensions)?
        {
            conn = conn.with_deflate(PerMessageDeflate::new(Role::Client, params, deflate));
        }
        let io = wrap(H2Stream::new(stream, body));
        let ws = WebSocket::from_parts(io, conn, config, resp.subprotocol.clone());
        Ok((ws, resp))
    }

    /// The extended CONNECT for a handshake request (RFC 8441 §4).
    fn connect_request(&self, req: &ClientRequest) -> Result<Request<()>> {
        let uri = format!("{}://{}{}", self.scheme, req.host(), req.target());
        let mut request = Request::builder()
            .method(Method::CONNECT)
            .uri(uri)
            .extension(Protocol::from_static(crate::http2::PROTOCOL))
            .header("sec-websocket-version", "13");
        if let Some(origin) = req.origin_header() {
            request = request.header("origin", origin);
        }
        if !req.subprotocols().is_empty() {
            request = request.header("sec-websocket-protocol", req.subprotocols().join(", "));
        }
        if let Some(offer) = req.extensions_offer() {
            request = request.header("sec-websocket-extensions", offer);
        }
        for (name, value) in req.headers() {
            let lower = name.to_ascii_lowercase();
            if !is_connection_specific(&lower) && !SET_BY_CLIENT.contains(&lower.as_str()) {
                request = request.header(name.as_str(), value.as_str());
            }
        }
        request
            .body(())
            .map_err(|e| Error::InvalidUrl(format!("cannot make an HTTP/2 request: {e}")))
    }
}

/// Check a `:status 200` answer's headers as the HTTP/1.1 101 they stand for (RFC 8441 §5):
/// the same subprotocol and extension rules.
fn check_response(
    headers: &http::HeaderMap,
    req: &ClientRequest,
) -> std::result::Result<ClientResponse, HandshakeError> {
    let mut head = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n",
        accept_key(req.key().as_bytes())
    )
    .into_bytes();
    for (name, value) in headers {
        if name == "sec-websocket-accept" || name == "upgrade" || name == "connection" {
            continue;
        }
        let value = value.as_bytes();
        if value.contains(&b'\r') || value.contains(&b'\n') {
            return Err(HandshakeError::Malformed(format!(
                "a line break in the {name} header"
            )));
        }
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value);
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    let mut resp = match parse_response(&head, req, head.len())? {
        Some((resp, _)) => resp,
        None => return Err(HandshakeError::Malformed("incomplete response head".into())),
    };
    resp.status = 200;
    Ok(resp)
}

impl ClientBuilder {
    /// Open the WebSocket over HTTP/2 where the server offers it, else over HTTP/1.1, as
    /// browsers do. For `wss://`, TLS offers ALPN `h2` and `http/1.1`: when the server chooses
    /// `h2` and advertises `SETTINGS_ENABLE_CONNECT_PROTOCOL`, the WebSocket is a stream of a
    /// new HTTP/2 connection (`Left`; the connection ends with the WebSocket: use
    /// [`Http2Client`] to share one connection between several); when it chooses `http/1.1`
    /// (or nothing), the Upgrade goes over the same TLS connection (`Right`); when it chooses
    /// `h2` without RFC 8441, a second connection is made with ALPN `http/1.1` only. `ws://`
    /// goes over HTTP/1.1: an HTTP/2 connection with prior knowledge (h2c) has no safe
    /// fallback, so it is only opened on request ([`Http2Client::connect`]). Bounded as a whole
    /// by [`connect_timeout`](Self::connect_timeout).
    ///
    /// # Errors
    ///
    /// Those of [`connect`](Self::connect) and of [`Http2Client::open`] (a refusal over
    /// HTTP/2 is not retried over HTTP/1.1).
    pub async fn connect_prefer_http2(
        self,
        limits: &Http2Limits,
    ) -> Result<(WebSocket<PreferHttp2Stream>, ClientResponse)> {
        match self.connect_timeout {
            Some(limit) => tokio::time::timeout(limit, self.prefer_http2(limits))
                .await
                .map_err(|_| {
                    Error::Timeout("connect (TCP, proxy, TLS, HTTP/2 and WebSocket handshake)")
                })?,
            None => self.prefer_http2(limits).await,
        }
    }

    async fn prefer_http2(
        self,
        limits: &Http2Limits,
    ) -> Result<(WebSocket<PreferHttp2Stream>, ClientResponse)> {
        let url = WsUrl::parse(&self.url)?;
        #[cfg(not(feature = "rustls"))]
        let _ = (url, limits); // `wss://` is refused by `connect_wrapped`
        #[cfg(feature = "rustls")]
        if url.secure {
            let tcp = open_tcp(&url, &self.proxy).await?;
            let tls = tls_offering(&self, &[ALPN_H2, ALPN_HTTP11])?
                .connect(&url.host, tcp)
                .await?;
            if tls.get_ref().1.alpn_protocol() != Some(ALPN_H2) {
                return self
                    .connect_on(PreferHttp2Stream::Right(MaybeTlsStream::from(tls)))
                    .await;
            }
            match Http2Client::handshake(tls, true, limits).await {
                Ok(client) => return client.open_wrapped(&self, PreferHttp2Stream::Left).await,
                Err(Error::NoExtendedConnect) => {
                    debug!("the server speaks HTTP/2 without RFC 8441: WebSocket over HTTP/1.1");
                }
                Err(e) => return Err(e),
            }
        }
        self.connect_wrapped(PreferHttp2Stream::Right).await
    }
}

/// `builder`'s TLS connector (or one with Mozilla's roots), offering `protocols` in ALPN.
#[cfg(feature = "rustls")]
fn tls_offering(builder: &ClientBuilder, protocols: &[&[u8]]) -> Result<TlsConnector> {
    let connector = match &builder.tls {
        Some(c) => c.clone(),
        None => TlsConnector::with_default_roots()?,
    };
    let mut config = (**connector.config()).clone();
    config.alpn_protocols = protocols.iter().map(|p| p.to_vec()).collect();
    Ok(TlsConnector::from_config(Arc::new(config)))
}
