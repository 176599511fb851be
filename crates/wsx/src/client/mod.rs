//! The client side: open a TCP connection, run TLS over it for `wss://` (see [`crate::tls`]),
//! send the Upgrade request, check the response.
// Without the `rustls` feature, the docs still mention the TLS items they would link to.
#![cfg_attr(not(feature = "rustls"), allow(rustdoc::broken_intra_doc_links))]

#[cfg(feature = "http2")]
pub(crate) mod http2;
pub(crate) mod proxy;

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use wsx_proto::deflate::PerMessageDeflate;
use wsx_proto::handshake::{ClientRequest, ClientResponse, WsUrl, parse_response};
use wsx_proto::{Connection, Role};

use self::proxy::{ProxyChoice, ProxyConfig};
use crate::MaybeTlsStream;
use crate::config::WebSocketConfig;
use crate::error::{Error, Result};
#[cfg(feature = "rustls")]
use crate::tls::TlsConnector;
use crate::websocket::WebSocket;

/// Connect to `url` (`ws://host[:port]/path`, or `wss://` for TLS) with default settings.
///
/// `wss://` trusts Mozilla's root certificates (and the system's store with the
/// `native-roots` feature); use [`ClientBuilder::tls`] for other CAs.
///
/// ```no_run
/// # async fn run() -> Result<(), wsx::Error> {
/// use wsx::Message;
/// let (mut ws, _response) = wsx::connect("ws://127.0.0.1:8080/ws/echo").await?;
/// ws.send(Message::text("hello")).await?;
/// if let Some(msg) = ws.recv().await {
///     println!("{:?}", msg?);
/// }
/// ws.close(wsx::CloseCode::NORMAL, "bye").await?;
/// # Ok(()) }
/// ```
pub async fn connect(url: &str) -> Result<(WebSocket<MaybeTlsStream>, ClientResponse)> {
    ClientBuilder::new(url).connect().await
}

/// Builds a client connection: URL, headers, subprotocols and settings.
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    url: String,
    config: WebSocketConfig,
    origin: Option<String>,
    subprotocols: Vec<String>,
    headers: Vec<(String, String)>,
    #[cfg(feature = "rustls")]
    tls: Option<TlsConnector>,
    proxy: ProxyChoice,
    connect_timeout: Option<Duration>,
}

impl ClientBuilder {
    /// A client for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        ClientBuilder {
            url: url.into(),
            config: WebSocketConfig::default(),
            origin: None,
            subprotocols: Vec::new(),
            headers: Vec::new(),
            #[cfg(feature = "rustls")]
            tls: None,
            proxy: ProxyChoice::Direct,
            connect_timeout: None,
        }
    }

    /// Use these settings.
    pub fn config(mut self, config: WebSocketConfig) -> Self {
        self.config = config;
        self
    }

    /// Send an `Origin` header.
    pub fn origin(mut self, origin: impl Into<String>) -> Self {
        self.origin = Some(origin.into());
        self
    }

    /// Offer a subprotocol (in order of preference).
    pub fn subprotocol(mut self, protocol: impl Into<String>) -> Self {
        self.subprotocols.push(protocol.into());
        self
    }

    /// Add a header to the Upgrade request.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Use this TLS connector for `wss://` URLs (made with
    /// [`ClientTlsConfig::build`](crate::tls::ClientTlsConfig::build): extra CAs, insecure
    /// mode; or from a custom `rustls::ClientConfig`). Without it, `wss://` uses
    /// [`TlsConnector::with_default_roots`]. Ignored for `ws://` URLs.
    #[cfg(feature = "rustls")]
    pub fn tls(mut self, connector: TlsConnector) -> Self {
        self.tls = Some(connector);
        self
    }

    /// Connect through this proxy (HTTP `CONNECT` or SOCKS5; see [`ProxyConfig`]), whatever
    /// the environment says.
    pub fn proxy(mut self, proxy: ProxyConfig) -> Self {
        self.proxy = ProxyChoice::Fixed(proxy);
        self
    }

    /// Pick the proxy from the environment at connect time, as curl does: `wss_proxy` /
    /// `https_proxy` for `wss://`, `ws_proxy` / `http_proxy` for `ws://`, then `all_proxy`,
    /// unless `no_proxy` excludes the host (see [`ProxyConfig::from_env`]). Without this (or
    /// [`proxy`](Self::proxy)) the client connects directly and never reads the environment.
    pub fn proxy_from_env(mut self) -> Self {
        self.proxy = ProxyChoice::FromEnv;
        self
    }

    /// Bound the whole of [`connect`](Self::connect) — TCP connection, proxy negotiation, TLS
    /// handshake and WebSocket handshake — to `limit`; past it, [`Error::Timeout`]. No limit
    /// by default.
    pub fn connect_timeout(mut self, limit: Duration) -> Self {
        self.connect_timeout = Some(limit);
        self
    }

    fn request(&self, url: &WsUrl) -> ClientRequest {
        let mut req = ClientRequest::new(url.host_header(), url.target.clone());
        if let Some(o) = &self.origin {
            req = req.origin(o.clone());
        }
        for p in &self.subprotocols {
            req = req.subprotocol(p.clone());
        }
        if let Some(d) = &self.config.compression {
            req = req.extensions(d.client_offer());
        }
        for (k, v) in &self.headers {
            req = req.header(k.clone(), v.clone());
        }
        req
    }

    /// Open a TCP connection (with TCP_NODELAY; through the proxy, if one is set), run the TLS
    /// handshake for a `wss://` URL
    /// (server name and SNI from the URL's host, ALPN `http/1.1`), and perform the WebSocket
    /// handshake.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidUrl`] for a malformed URL, or a `wss://` URL in a build without the
    /// `rustls` feature; [`Error::Io`] if the TCP connection or the TLS handshake fails (an
    /// untrusted certificate included: see [`tls::rustls_error`](crate::tls::rustls_error));
    /// [`Error::Protocol`] if the server refuses the upgrade; [`Error::Proxy`] if the proxy
    /// refuses the tunnel; [`Error::Timeout`] past the [`connect_timeout`](Self::connect_timeout).
    pub async fn connect(self) -> Result<(WebSocket<MaybeTlsStream>, ClientResponse)> {
        match self.connect_timeout {
            Some(limit) => tokio::time::timeout(limit, self.connect_inner())
                .await
                .map_err(|_| Error::Timeout("connect (TCP, proxy, TLS and WebSocket handshake)"))?,
            None => self.connect_inner().await,
        }
    }

    async fn connect_inner(self) -> Result<(WebSocket<MaybeTlsStream>, ClientResponse)> {
        self.connect_wrapped(|io| io).await
    }

    /// [`connect`](Self::connect) without its time limit, the transport wrapped by `wrap`
    /// before the handshake (the HTTP/1.1 side of
    /// [`connect_prefer_http2`](Self::connect_prefer_http2)).
    pub(crate) async fn connect_wrapped<T: AsyncRead + AsyncWrite + Unpin>(
        self,
        wrap: impl FnOnce(MaybeTlsStream) -> T,
    ) -> Result<(WebSocket<T>, ClientResponse)> {
        let url = WsUrl::parse(&self.url)?;
        #[cfg(not(feature = "rustls"))]
        if url.secure {
            return Err(Error::InvalidUrl(
                "wss:// needs TLS: build wsx with the `rustls` feature".into(),
            ));
        }
        #[cfg(feature = "rustls")]
        let connector = match (url.secure, &self.tls) {
            (false, _) => None,
            (true, Some(c)) => Some(c.clone()),
            (true, None) => Some(TlsConnector::with_default_roots()?),
        };
        let tcp = proxy::open_tcp(&url, &self.proxy).await?;
        #[cfg(feature = "rustls")]
        if let Some(connector) = connector {
            let tls = connector.connect(&url.host, tcp).await?;
            return self.connect_on(wrap(MaybeTlsStream::from(tls))).await;
        }
        self.connect_on(wrap(MaybeTlsStream::Plain(tcp))).await
    }

    /// Perform the handshake over an already connected transport.
    pub async fn connect_on<S: AsyncRead + AsyncWrite + Unpin>(
        self,
        io: S,
    ) -> Result<(WebSocket<S>, ClientResponse)> {
        let url = WsUrl::parse(&self.url)?;
        let req = self.request(&url);
        client_handshake(io, &req, &self.config).await
    }
}

/// The client's side of the handshake over an already connected transport, with a request
/// built by hand: send `req` over `io`, read and check the response.
/// [`ClientBuilder::connect_on`] builds the request from a URL and calls this.
pub async fn client_handshake<S: AsyncRead + AsyncWrite + Unpin>(
    mut io: S,
    req: &ClientRequest,
    config: &WebSocketConfig,
) -> Result<(WebSocket<S>, ClientResponse)> {
    io.write_all(&req.encode()).await?;
    io.flush().await?;
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        if io.read_buf(&mut buf).await? == 0 {
            return Err(Error::ConnectionReset);
        }
        let Some((resp, used)) = parse_response(&buf, req, config.max_header_bytes)? else {
            continue;
        };
        let mut conn = Connection::new(Role::Client, config.limits).with_leftover(&buf[used..]);
        if let Some(deflate) = &config.compression
            && let Some(params) = deflate.client_accept(&resp.extensions)?
        {
            conn = conn.with_deflate(PerMessageDeflate::new(Role::Client, params, deflate));
        }
        let ws = WebSocket::from_parts(io, conn, config, resp.subprotocol.clone());
        return Ok((ws, resp));
    }
}
