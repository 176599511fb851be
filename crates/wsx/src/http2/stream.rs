//! [`H2Stream`]: one HTTP/2 stream (an RFC 8441 extended CONNECT tunnel) as a tokio
//! `AsyncRead + AsyncWrite`, the transport `S` of a [`WebSocket<S>`](crate::WebSocket).
//!
//! Where it sits: the server ([`super::server`]) or the client ([`super::client`]) has
//! exchanged the CONNECT request and its `:status 200`; from then on the WebSocket frames travel
//! in the stream's DATA frames, and this adapter is all the WebSocket layer sees.
//!
//! HTTP/2 flow control is the backpressure:
//!
//! - Reading: received DATA is handed to the WebSocket as it reads, and only then is its
//!   window released (`WINDOW_UPDATE`). A WebSocket that does not read holds at most one
//!   stream window of the peer's data (plus one DATA frame kept here); the peer is stopped.
//! - Writing: send capacity is reserved before anything is written, and a write takes only
//!   what the stream and connection windows allow, so unsent data never piles up in h2's
//!   buffers past [`Http2Limits::max_send_buffer`](super::Http2Limits::max_send_buffer).
//!
//! Shutting down the write side (what the WebSocket does after the close handshake) ends the
//! stream (`END_STREAM`); the peer's `END_STREAM` reads as the end of the stream. A reset
//! (`RST_STREAM`, `GOAWAY`) also reads as the end of the stream, without a close frame: the
//! WebSocket reports it as [`Error::ConnectionReset`](crate::Error::ConnectionReset) (1006).
//! Dropping an `H2Stream` before its end ends it as closing a TCP socket would: `END_STREAM`
//! after what was written; h2 then resets the stream if the peer has not ended its side
//! (`RST_STREAM`: `NO_ERROR` from a server, after the queued data; `CANCEL` from a client,
//! which drops what is still queued). The peer's WebSocket sees an abnormal close either way.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use h2::{RecvStream, SendStream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The most send capacity asked for by one write: one write takes at most this much of the
/// stream's window, so several streams share the connection fairly.
const MAX_WRITE_CHUNK: usize = 64 * 1024;

/// One HTTP/2 stream carrying a WebSocket (RFC 8441), as `AsyncRead + AsyncWrite`.
#[derive(Debug)]
pub struct H2Stream {
    send: SendStream<Bytes>,
    recv: RecvStream,
    /// The rest of the DATA frame being read; its window is released as it is read.
    pending: Bytes,
    /// Whether `END_STREAM` was sent.
    ended: bool,
}

impl H2Stream {
    pub(crate) fn new(send: SendStream<Bytes>, recv: RecvStream) -> Self {
        H2Stream {
            send,
            recv,
            pending: Bytes::new(),
            ended: false,
        }
    }

    /// The stream's identifier on its connection.
    pub fn stream_id(&self) -> u32 {
        self.send.stream_id().as_u32()
    }
}

impl Drop for H2Stream {
    fn drop(&mut self) {
        if !self.ended {
            // The stream may be reset already; then there is nothing to end.
            let _ = self.send.send_data(Bytes::new(), true);
        }
    }
}

/// An h2 error as an I/O error: the connection's own I/O error when there is one.
fn io_error(e: h2::Error) -> io::Error {
    if e.is_io() {
        return e
            .into_io()
            .unwrap_or_else(|| io::Error::other("HTTP/2 I/O error"));
    }
    if e.is_reset() || e.is_go_away() {
        return io::Error::new(io::ErrorKind::ConnectionReset, e);
    }
    io::Error::other(e)
}

impl AsyncRead for H2Stream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        while this.pending.is_empty() {
            match ready!(this.recv.poll_data(cx)) {
                Some(Ok(data)) => this.pending = data,
                // END_STREAM, or a reset / GOAWAY: the end of the stream. Without a close
                // frame before it, the WebSocket reports an abnormal close (1006).
                None => return Poll::Ready(Ok(())),
                Some(Err(e)) if e.is_reset() || e.is_go_away() => return Poll::Ready(Ok(())),
                Some(Err(e)) => return Poll::Ready(Err(io_error(e))),
            }
        }
        let n = this.pending.len().min(buf.remaining());
        buf.put_slice(&this.pending[..n]);
        this.pending.advance(n);
        // Only what the WebSocket took is given back to the peer's window.
        this.recv
            .flow_control()
            .release_capacity(n)
            .map_err(io_error)?;
        Poll::Ready(Ok(()))
    }
}

impl H2Stream {
    /// Wait for send capacity for up to `len` bytes, then send as much as it allows, copied by
    /// `take(n)` into one DATA frame's payload.
    fn poll_send(
        &mut self,
        cx: &mut Context<'_>,
        len: usize,
        take: impl FnOnce(usize) -> Bytes,
    ) -> Poll<io::Result<usize>> {
        if len == 0 {
            return Poll::Ready(Ok(0));
        }
        if self.ended {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        self.send.reserve_capacity(len.min(MAX_WRITE_CHUNK));
        loop {
            match ready!(self.send.poll_capacity(cx)) {
                Some(Ok(0)) => continue,
                Some(Ok(n)) => {
                    let data = take(n.min(len));
                    let sent = data.len();
                    self.send.send_data(data, false).map_err(io_error)?;
                    return Poll::Ready(Ok(sent));
                }
                Some(Err(e)) => return Poll::Ready(Err(io_error(e))),
                // The stream can no longer send (reset, or the connection is gone).
                None => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::ConnectionReset,
                        "the HTTP/2 stream was reset",
                    )));
                }
            }
        }
    }
}

impl AsyncWrite for H2Stream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_send(cx, buf.len(), |n| Bytes::copy_from_slice(&buf[..n]))
    }

    /// Several slices (queued frames) go out in one DATA frame, as far as the window allows.
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let len = bufs.iter().map(|b| b.len()).sum();
        self.poll_send(cx, len, |n| {
            let mut data = BytesMut::with_capacity(n);
            for buf in bufs {
                let room = n - data.len();
                if room == 0 {
                    break;
                }
                data.extend_from_slice(&buf[..buf.len().min(room)]);
            }
            data.freeze()
        })
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The connection's task writes what the windows allow; nothing is held here.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.ended {
            self.ended = true;
            self.send.send_data(Bytes::new(), true).map_err(io_error)?;
        }
        Poll::Ready(Ok(()))
    }
}
