//! The server side: read the Upgrade request, let the application decide, answer it.
//!
//! [`accept`] is all most servers need. [`accept_with`] lets a callback see the request (path,
//! query, headers) and choose a subprotocol, add response headers or reject it with a status.
//! Routers that also serve plain HTTP use the two halves: [`read_request`], then [`upgrade`] or
//! [`respond`].

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use wsx_proto::deflate::PerMessageDeflate;
use wsx_proto::handshake::{
    AcceptResponse, HandshakeError, HttpRequest, RequestReader, error_response, http_response,
    validate_upgrade,
};
use wsx_proto::{Connection, Role};

use crate::config::WebSocketConfig;
use crate::error::{Error, Result};
use crate::websocket::WebSocket;

/// The longest a server spends writing one HTTP response: the 101, an error (400, 403, 426,
/// 503 …) or a plain page. A peer that does not read it in that time is dropped
/// ([`Error::Timeout`]), so it cannot hold the connection's task.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

/// The answer to a connection over a server's connection limit, refused as it is accepted.
const OVER_CAPACITY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Type: text/plain\r\nContent-Length: 21\r\nConnection: close\r\n\r\ntoo many connections\n";

/// What the application answers to an Upgrade request it accepts.
#[derive(Debug, Clone, Default)]
pub struct Accept {
    /// The subprotocol chosen among those the client offered.
    pub subprotocol: Option<String>,
    /// Extra response headers.
    pub headers: Vec<(String, String)>,
}

/// A refusal: the HTTP response sent instead of the upgrade.
#[derive(Debug, Clone)]
pub struct Reject {
    /// The HTTP status, such as 401, 403 or 404.
    pub status: u16,
    /// Extra response headers.
    pub headers: Vec<(String, String)>,
    /// The response body (plain text).
    pub body: String,
}

impl Reject {
    /// A refusal with a status and a short plain-text reason.
    pub fn new(status: u16, body: impl Into<String>) -> Self {
        Reject {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// Write this refusal as the HTTP response on `io`, then return it as the handshake error
    /// ([`HandshakeError::Rejected`]) the caller reports.
    pub async fn send<S: AsyncWrite + Unpin, T>(self, io: &mut S) -> Result<T> {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        respond(io, self.status, &headers, self.body.as_bytes()).await?;
        Err(HandshakeError::Rejected {
            status: self.status,
            reason: self.body,
        }
        .into())
    }
}

/// Accept a WebSocket connection on `io` with default settings.
///
/// ```no_run
/// # async fn run() -> Result<(), wsx::Error> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:9001").await?;
/// loop {
///     let (tcp, _) = listener.accept().await?;
///     tokio::spawn(async move {
///         let mut ws = wsx::accept(tcp).await?;
///         while let Some(msg) = ws.recv().await {
///             let msg = msg?;
///             if msg.is_data() {
///                 ws.send(msg).await?;
///             }
///         }
///         Ok::<_, wsx::Error>(())
///     });
/// }
/// # }
/// ```
pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(io: S) -> Result<WebSocket<S>> {
    accept_with(io, &WebSocketConfig::default(), |_| Ok(Accept::default())).await
}

/// Accept a WebSocket connection, letting `decide` see the request first.
pub async fn accept_with<S, F>(
    mut io: S,
    config: &WebSocketConfig,
    decide: F,
) -> Result<WebSocket<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: FnOnce(&HttpRequest) -> std::result::Result<Accept, Reject>,
{
    let (req, leftover) = read_request(&mut io, config.max_header_bytes).await?;
    if let Err(e) = validate_upgrade(&req) {
        return refuse(&mut io, e).await;
    }
    match decide(&req) {
        Ok(accept) => upgrade(io, &req, &leftover, config, accept).await,
        Err(reject) => reject.send(&mut io).await,
    }
}

/// Read an HTTP request head. Bytes read past it are returned too (they belong to the
/// WebSocket stream). A malformed or oversized request is answered (400, 431) and returned as an
/// error.
pub async fn read_request<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    max_header_bytes: usize,
) -> Result<(HttpRequest, BytesMut)> {
    read_request_after(io, max_header_bytes, BytesMut::with_capacity(1024)).await
}

/// [`read_request`], with `buf` holding what was read of the head already.
pub(crate) async fn read_request_after<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    max_header_bytes: usize,
    mut buf: BytesMut,
) -> Result<(HttpRequest, BytesMut)> {
    // Looks at each byte once, however the head is cut into reads.
    let mut head = RequestReader::new(max_header_bytes);
    loop {
        if !buf.is_empty() {
            match head.read(&buf) {
                Ok(Some((req, used))) => {
                    let _ = buf.split_to(used);
                    return Ok((req, buf));
                }
                Ok(None) => {}
                Err(e) => return refuse(io, e).await,
            }
        }
        if io.read_buf(&mut buf).await? == 0 {
            return Err(Error::ConnectionReset);
        }
    }
}

/// Complete the handshake for a request read with [`read_request`]: validate it, answer 101
/// (negotiating permessage-deflate if configured) and wrap `io`. An invalid request is answered
/// with its HTTP error (400, 426 …) and returned as an error.
pub async fn upgrade<S: AsyncRead + AsyncWrite + Unpin>(
    mut io: S,
    req: &HttpRequest,
    leftover: &[u8],
    config: &WebSocketConfig,
    accept: Accept,
) -> Result<WebSocket<S>> {
    let ws_req = match validate_upgrade(req) {
        Ok(r) => r,
        Err(e) => return refuse(&mut io, e).await,
    };
    let mut conn = Connection::new(Role::Server, config.limits).with_leftover(leftover);
    let mut extensions = None;
    if let Some(deflate) = &config.compression
        && let Some((params, header)) = deflate.server_accept(&ws_req.extensions)
    {
        conn = conn.with_deflate(PerMessageDeflate::new(Role::Server, params, deflate));
        extensions = Some(header);
    }
    let mut resp = Vec::with_capacity(256);
    AcceptResponse::new(
        &ws_req.key,
        accept.subprotocol.as_deref(),
        extensions.as_deref(),
        &accept.headers,
    )
    .encode(&mut resp);
    write_response(&mut io, &resp).await?;
    Ok(WebSocket::from_parts(io, conn, config, accept.subprotocol))
}

/// Write a plain HTTP response (for routes that are not WebSocket, or a refusal), within
/// [`RESPONSE_TIMEOUT`].
pub async fn respond<S: AsyncWrite + Unpin>(
    io: &mut S,
    status: u16,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<()> {
    write_response(io, &http_response(status, headers, body)).await
}

/// Refuse a TCP connection over the server's connection limit as it is accepted, before its
/// request is read: a `503 Service Unavailable` (with `Retry-After: 1`) is written if the
/// socket takes it at once, which a fresh socket does, and the connection is closed when `tcp`
/// is dropped. Never waits, so the accept loop can call it. Over TLS, drop the connection
/// instead (the client expects a TLS handshake, not plain text).
pub fn refuse_over_capacity(tcp: &TcpStream) {
    // What the client already sent is read (and dropped) so that closing the socket sends FIN,
    // not RST, which could discard the 503 before the client reads it.
    let mut sink = [0u8; 2048];
    let _ = tcp.try_read(&mut sink);
    let _ = tcp.try_write(OVER_CAPACITY);
}

/// Write an interim response (`100 Continue`) and flush, within [`RESPONSE_TIMEOUT`].
pub(crate) async fn write_interim<S: AsyncWrite + Unpin>(io: &mut S, bytes: &[u8]) -> Result<()> {
    write_response(io, bytes).await
}

/// Write `bytes` and flush, within [`RESPONSE_TIMEOUT`].
async fn write_response<S: AsyncWrite + Unpin>(io: &mut S, bytes: &[u8]) -> Result<()> {
    let write = async {
        io.write_all(bytes).await?;
        io.flush().await
    };
    match tokio::time::timeout(RESPONSE_TIMEOUT, write).await {
        Ok(written) => Ok(written?),
        Err(_) => Err(Error::Timeout("writing an HTTP response")),
    }
}

async fn refuse<S: AsyncWrite + Unpin, T>(io: &mut S, err: HandshakeError) -> Result<T> {
    // The peer may be gone already, or not read: the handshake error is what matters.
    if write_response(io, &error_response(&err)).await.is_ok() {
        let _ = tokio::time::timeout(RESPONSE_TIMEOUT, io.shutdown()).await;
    }
    Err(err.into())
}
