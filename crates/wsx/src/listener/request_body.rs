//! [`ReadBody`]: a route's answer that needs the request's body (an HTTP API's `POST`), and how
//! the server reads it.
//!
//! Where it sits in the flow: the server reads the request head, the route handler answers
//! [`Answer::WithBody`](super::Answer::WithBody); the server then reads the body that the
//! head's `Content-Length` announces (none without one), at most the route's limit, within
//! [`Policy::handshake_timeout`](crate::Policy::handshake_timeout) from the end of the head,
//! hands it to the route's handler and writes the response the handler makes, then closes the
//! connection. A body it cannot take reaches the handler as a [`BodyRefused`] (the status to
//! answer, so that the route answers in its own format): a `Transfer-Encoding` body (chunked)
//! 411, a `Content-Length` past the limit 413 (nothing read), a malformed one 400, a body cut
//! short 400, one that does not come in time 408. `Expect: 100-continue` is answered with
//! `100 Continue` before reading.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::time::{Instant, timeout_at};
use wsx_proto::handshake::HttpRequest;

use super::answer::HttpResponse;
use crate::error::Result;

/// The future a body handler runs as.
type ResponseFuture = Pin<Box<dyn Future<Output = HttpResponse> + Send>>;
/// What makes the response from the body.
type Handler = Box<dyn FnOnce(Result<Bytes, BodyRefused>) -> ResponseFuture + Send>;

/// Why the server did not read a request's body: the status to answer and a short reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyRefused {
    /// 400, 408, 411 or 413.
    pub status: u16,
    /// Why, in a few words.
    pub reason: &'static str,
}

impl BodyRefused {
    pub(crate) const fn new(status: u16, reason: &'static str) -> Self {
        BodyRefused { status, reason }
    }
}

/// Read the request's body (at most `limit` bytes), then answer with what the handler makes of
/// it (see the module docs).
pub struct ReadBody {
    limit: usize,
    handler: Handler,
}

impl ReadBody {
    /// Read a body of at most `limit` bytes and answer with `handler`'s response to it (or to
    /// why it was not read).
    pub fn new<F, Fut>(limit: usize, handler: F) -> Self
    where
        F: FnOnce(Result<Bytes, BodyRefused>) -> Fut + Send + 'static,
        Fut: Future<Output = HttpResponse> + Send + 'static,
    {
        ReadBody {
            limit,
            handler: Box::new(move |body| Box::pin(handler(body))),
        }
    }

    /// Read the body of `request` from `leftover` (what came after the head) and `io`, by
    /// `deadline`, and make the handler's response.
    pub(crate) async fn respond<S: AsyncRead + AsyncWrite + Unpin>(
        self,
        io: &mut S,
        request: &HttpRequest,
        leftover: &[u8],
        deadline: Instant,
    ) -> Result<HttpResponse> {
        let body = read(io, request, leftover, deadline, self.limit).await?;
        Ok((self.handler)(body).await)
    }
}

impl ReadBody {
    /// The most bytes of body the handler takes.
    #[cfg(feature = "http2")]
    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// The handler's response to `body` (read by the caller, over HTTP/2).
    #[cfg(feature = "http2")]
    pub(crate) async fn answer(self, body: Result<Bytes, BodyRefused>) -> HttpResponse {
        (self.handler)(body).await
    }
}

/// The body of `request`, at most `limit` bytes, or why not.
async fn read<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    request: &HttpRequest,
    leftover: &[u8],
    deadline: Instant,
    limit: usize,
) -> Result<std::result::Result<Bytes, BodyRefused>> {
    let length = match body_length(request) {
        Ok(length) => length,
        Err(refused) => return Ok(Err(refused)),
    };
    if length > limit {
        return Ok(Err(BodyRefused::new(413, "request body too large")));
    }
    if request
        .header_str("expect")
        .is_some_and(|e| e.eq_ignore_ascii_case("100-continue"))
        && leftover.len() < length
    {
        crate::server::write_interim(io, b"HTTP/1.1 100 Continue\r\n\r\n").await?;
    }
    let mut body = BytesMut::with_capacity(length);
    body.extend_from_slice(&leftover[..leftover.len().min(length)]);
    while body.len() < length {
        let mut chunk = (&mut *io).take((length - body.len()) as u64);
        match timeout_at(deadline, chunk.read_buf(&mut body)).await {
            Ok(Ok(0)) => return Ok(Err(BodyRefused::new(400, "request body cut short"))),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => {
                return Ok(Err(BodyRefused::new(
                    408,
                    "request body not received in time",
                )));
            }
        }
    }
    Ok(Ok(body.freeze()))
}

impl fmt::Debug for ReadBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadBody")
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

/// The body's length from the head, or why it is not read.
fn body_length(request: &HttpRequest) -> std::result::Result<usize, BodyRefused> {
    if request.header("transfer-encoding").is_some() {
        return Err(BodyRefused::new(411, "send the body with a Content-Length"));
    }
    let mut lengths = request.header_values("content-length");
    let Some(first) = lengths.next() else {
        return Ok(0);
    };
    let parsed = std::str::from_utf8(first)
        .ok()
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse::<usize>().ok());
    match parsed {
        Some(length) if lengths.all(|other| other == first) => Ok(length),
        _ => Err(BodyRefused::new(400, "bad Content-Length")),
    }
}
