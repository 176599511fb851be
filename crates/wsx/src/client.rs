//! The client side: open a TCP connection, send the Upgrade request, check the response.

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use wsx_proto::deflate::PerMessageDeflate;
use wsx_proto::handshake::{ClientRequest, ClientResponse, WsUrl, parse_response};
use wsx_proto::{Connection, Role};

use crate::config::WebSocketConfig;
use crate::error::{Error, Result};
use crate::websocket::WebSocket;

/// Connect to `url` (`ws://host[:port]/path`) with default settings.
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
pub async fn connect(url: &str) -> Result<(WebSocket<TcpStream>, ClientResponse)> {
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

    /// Open a TCP connection (with TCP_NODELAY) and perform the handshake.
    pub async fn connect(self) -> Result<(WebSocket<TcpStream>, ClientResponse)> {
        let url = WsUrl::parse(&self.url)?;
        if url.secure {
            return Err(Error::InvalidUrl(
                "wss:// needs TLS, which this build does not include".into(),
            ));
        }
        let tcp = TcpStream::connect((url.host.as_str(), url.port)).await?;
        tcp.set_nodelay(true)?;
        self.connect_on(tcp).await
    }

    /// Perform the handshake over an already connected transport.
    pub async fn connect_on<S: AsyncRead + AsyncWrite + Unpin>(
        self,
        io: S,
    ) -> Result<(WebSocket<S>, ClientResponse)> {
        let url = WsUrl::parse(&self.url)?;
        let req = self.request(&url);
        handshake(io, &req, &self.config).await
    }
}

/// Send `req` over `io`, read and check the response.
pub async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
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
