//! One HTTP/2 connection of a [`Server`](super::Server) with [`http2`](super::Server::http2)
//! (feature `http2`): every stream's request goes to the same route handler as an HTTP/1.1
//! request.
//!
//! Where it sits in the flow: [`super::connection`] saw ALPN `h2` after the TLS handshake, or
//! the HTTP/2 preface on plain TCP (h2c with prior knowledge), and hands the connection here;
//! [`crate::http2::server`]'s driver runs the HTTP/2 connection (its limits, the idle
//! `GOAWAY`, the `GOAWAY` at shutdown). Each request is mapped to an [`HttpRequest`] (version
//! 2; `:authority` as `Host`) and answered as the route says:
//!
//! - [`Answer::Http`]: the response on the stream (`content-length`, `END_STREAM`); the
//!   connection stays open for the next requests.
//! - [`Answer::WithBody`]: the body (ended by `END_STREAM`, at most the route's limit, within
//!   the handshake timeout: 413, 408) goes to the route's handler, in a task.
//! - [`Answer::Upgrade`]: an RFC 8441 extended CONNECT gets the HTTP/1.1 checks (its
//!   HTTP/1.1 form), the [`Policy`](crate::Policy) and the route's accept choices in the same
//!   order as over HTTP/1.1, takes a connection slot (503 past
//!   [`Policy::max_connections`](crate::Policy::max_connections)), is answered `:status 200`
//!   and its session runs in a task, on a [`MaybeTlsStream::Http2`](crate::MaybeTlsStream)
//!   transport; any other request for a WebSocket route gets 400.
//!
//! The sessions' tasks belong to the connection: it ends once they have, and dropping it (the
//! server's shutdown timeout) drops them.

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use h2::RecvStream;
use h2::server::SendResponse;
use http::{HeaderValue, Request, Response, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::task::JoinSet;
use tokio::time::{Instant, timeout_at};
use tracing::debug;
use wsx_proto::handshake::{HttpRequest, validate_upgrade};

use super::connection::Transport;
use super::{Answer, BodyRefused, ConnectionInfo, HttpResponse, Settings, Slot};
use crate::http2::Http2Limits;
use crate::http2::server::{
    accept_websocket, copy_headers, drive, handshake_refusal, is_websocket_request, refuse,
    websocket_request_info,
};
use crate::server::Reject;
use crate::websocket::WebSocket;

/// Serve one HTTP/2 connection (`prefix`: what was read of it already) with the routes.
pub(super) async fn serve<S, R>(
    io: S,
    prefix: BytesMut,
    peer: SocketAddr,
    settings: &Settings,
    route: &R,
    limits: &Http2Limits,
) where
    S: Transport,
    R: Fn(&ConnectionInfo) -> Answer<S>,
{
    let io = Prefixed {
        prefix: prefix.freeze(),
        io,
    };
    let mut tasks = JoinSet::new();
    let served = drive(
        io,
        peer,
        limits,
        settings.policy.handshake_timeout,
        Some(&settings.shutdown),
        |request, respond| {
            // Forget the tasks that have ended.
            while tasks.try_join_next().is_some() {}
            answer(request, respond, peer, settings, route, &mut tasks);
        },
    )
    .await;
    if let Err(e) = served {
        debug!(%peer, "HTTP/2 connection: {e}");
    }
    while tasks.join_next().await.is_some() {}
}

/// Answer one request as the route says.
fn answer<S, R>(
    request: Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
    peer: SocketAddr,
    settings: &Settings,
    route: &R,
    tasks: &mut JoinSet<()>,
) where
    S: Transport,
    R: Fn(&ConnectionInfo) -> Answer<S>,
{
    let (head, body) = request.into_parts();
    let websocket = is_websocket_request(&head);
    let (http1, info) = if websocket {
        websocket_request_info(&head, peer)
    } else {
        let request = plain_request(&head);
        (
            request.clone(),
            ConnectionInfo {
                peer,
                request: request.clone(),
            },
        )
    };
    match route(&info) {
        Answer::Http(response) => send_response(&mut respond, &response),
        Answer::WithBody(read) => {
            let deadline = Instant::now() + settings.policy.handshake_timeout;
            tasks.spawn(async move {
                let body = read_body(body, &info.request, read.limit(), deadline).await;
                send_response(&mut respond, &read.answer(body).await);
            });
        }
        Answer::Upgrade(mut upgrade) => {
            if !websocket {
                // What HTTP/1.1 says of a plain request for a WebSocket route (426), as 400.
                let e = validate_upgrade(&http1)
                    .err()
                    .unwrap_or(wsx_proto::handshake::HandshakeError::NotUpgrade);
                settings.report_handshake_failure(&e, peer);
                return refuse(&mut respond, handshake_refusal(&e));
            }
            let request = match validate_upgrade(&http1) {
                Ok(request) => request,
                Err(e) => {
                    settings.report_handshake_failure(&e, peer);
                    return refuse(&mut respond, handshake_refusal(&e));
                }
            };
            let accept = match settings.policy.evaluate(&info.request, peer) {
                Ok(accept) => upgrade.merged_accept(accept),
                Err(reject) => {
                    debug!(%peer, path = ?info.request.path(), status = reject.status, "refused: {:?}", reject.body);
                    return refuse(&mut respond, reject);
                }
            };
            // Each WebSocket counts as a connection.
            let slot = Slot::take(&settings.active);
            if settings
                .policy
                .max_connections
                .is_some_and(|max| slot.count > max)
            {
                debug!(%peer, "too many connections: HTTP/2 WebSocket refused");
                let mut reject = Reject::new(503, "too many connections\n");
                reject.headers.push(("retry-after".into(), "1".into()));
                return refuse(&mut respond, reject);
            }
            let config = upgrade.config.clone();
            let config = config.as_deref().unwrap_or(&settings.config);
            let Some((stream, conn, subprotocol)) =
                accept_websocket(respond, body, &request, config, accept, peer)
            else {
                return;
            };
            let Some(io) = S::from_h2(stream) else {
                return;
            };
            let mut ws = WebSocket::from_parts(io, conn, config, subprotocol);
            if upgrade.close_on_shutdown {
                ws.close_on(settings.shutdown.child_token());
            }
            let session = upgrade.session;
            tasks.spawn(async move {
                session(ws, info).await;
                drop(slot);
            });
        }
    }
}

/// A request that is not an extended CONNECT, as the route handler sees it: version 2,
/// `:authority` as `Host`.
fn plain_request(head: &http::request::Parts) -> HttpRequest {
    let mut headers: Vec<(String, Vec<u8>)> = Vec::with_capacity(head.headers.len() + 1);
    if let Some(authority) = head.uri.authority() {
        headers.push(("host".into(), authority.as_str().as_bytes().to_vec()));
    }
    for (name, value) in &head.headers {
        if name.as_str() != "host" {
            headers.push((name.as_str().to_owned(), value.as_bytes().to_vec()));
        }
    }
    HttpRequest {
        method: head.method.as_str().to_owned(),
        target: head
            .uri
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |pq| pq.as_str().to_owned()),
        version: 2,
        headers,
    }
}

/// Send a plain response on the stream, then `END_STREAM`.
fn send_response(respond: &mut SendResponse<Bytes>, answer: &HttpResponse) {
    let mut response = Response::new(());
    *response.status_mut() = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    let headers = response.headers_mut();
    copy_headers(
        answer.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        headers,
    );
    headers.insert(
        http::header::CONTENT_LENGTH,
        HeaderValue::from(answer.body.len()),
    );
    let body = answer.body.clone();
    // The client may have reset the stream; there is no one else to tell.
    if let Ok(mut send) = respond.send_response(response, body.is_empty())
        && !body.is_empty()
    {
        let _ = send.send_data(body, true);
    }
}

/// The request's body (ended by `END_STREAM`), at most `limit` bytes, by `deadline`.
async fn read_body(
    mut body: RecvStream,
    request: &HttpRequest,
    limit: usize,
    deadline: Instant,
) -> Result<Bytes, BodyRefused> {
    let announced = request
        .header_str("content-length")
        .and_then(|l| l.parse::<usize>().ok());
    if announced.is_some_and(|l| l > limit) {
        return Err(BodyRefused::new(413, "request body too large"));
    }
    let mut read = BytesMut::new();
    loop {
        match timeout_at(deadline, body.data()).await {
            Err(_) => return Err(BodyRefused::new(408, "request body not received in time")),
            Ok(None) => return Ok(read.freeze()),
            Ok(Some(Err(_))) => return Err(BodyRefused::new(400, "request body cut short")),
            Ok(Some(Ok(data))) => {
                let _ = body.flow_control().release_capacity(data.len());
                if read.len() + data.len() > limit {
                    return Err(BodyRefused::new(413, "request body too large"));
                }
                read.extend_from_slice(&data);
            }
        }
    }
}

/// A connection whose first bytes were read already: they are read again first.
struct Prefixed<S> {
    prefix: Bytes,
    io: S,
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
