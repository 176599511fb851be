//! STOMP over a plain TCP or TLS byte stream (port 61613 by convention, what Spring's
//! `StompBrokerRelay` speaks): the [`Transport`] of [`crate::Broker::serve_tcp`] and
//! [`crate::Broker::serve_tls`].
//!
//! There is no framing below STOMP: the bytes the client sends are fed to the hub as they come
//! (the session's decoder finds the frames, `\n` or `\r\n` line ends and heart-beats in them),
//! read through one fixed buffer of [`TCP_READ_BUFFER`] bytes per connection. Output is a queue
//! of [`Bytes`] written with vectored writes: a MESSAGE's per-subscriber head and its shared
//! tail (headers and body, encoded once for every subscriber) go to the socket as they are,
//! without being copied; a heart-beat is one `"\n"` (the STOMP heart-beat EOL). The session
//! task keeps the queue under [`crate::broker::WRITE_HIGH_WATER`] plus one frame, as for a
//! WebSocket.
//!
//! Endings: after an ERROR or a DISCONNECT the frames queued before it (the ERROR, the
//! RECEIPT) are written, then the write side is shut down and what the client still sends is
//! read and dropped until it closes, all within [`TCP_CLOSE_TIMEOUT`] — so that the client
//! reads the ERROR rather than a reset. At shutdown the queued output is written (within the
//! same time) and the write side shut down; a client that is too slow is cut at once.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use wsx_stomp::EncodedFrame;

use crate::session_task::{Ending, Input, Transport};

/// The read buffer of each STOMP-over-TCP connection, in bytes: one read at most is fed to the
/// hub at a time.
pub const TCP_READ_BUFFER: usize = 16 * 1024;
/// How long a closing STOMP-over-TCP connection may take to write what is queued (an ERROR,
/// a RECEIPT) and see the client close.
pub const TCP_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// The most buffers written by one vectored write.
const MAX_IOV: usize = 64;
/// A heart-beat: one end of line.
const HEART_BEAT: &[u8] = b"\n";

/// One STOMP session's byte stream: the output queue and the read buffer.
pub(crate) struct TcpTransport<S> {
    io: S,
    /// Output not yet written, oldest first (the front one possibly partly written).
    out: VecDeque<Bytes>,
    /// Bytes in `out`.
    buffered: usize,
    read_buf: Box<[u8]>,
    /// Bytes of `read_buf` the last read filled.
    received: usize,
}

impl<S: AsyncRead + AsyncWrite + Unpin> TcpTransport<S> {
    /// Carry a session over `io`.
    pub(crate) fn new(io: S) -> Self {
        TcpTransport {
            io,
            out: VecDeque::new(),
            buffered: 0,
            read_buf: vec![0; TCP_READ_BUFFER].into_boxed_slice(),
            received: 0,
        }
    }

    fn push(&mut self, bytes: Bytes) {
        if !bytes.is_empty() {
            self.buffered += bytes.len();
            self.out.push_back(bytes);
        }
    }

    /// Write all queued output and flush.
    fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some(first) = self.out.front() {
            let n = if self.out.len() == 1 || !self.io.is_write_vectored() {
                ready!(Pin::new(&mut self.io).poll_write(cx, first))?
            } else {
                let mut slices = [IoSlice::new(&[]); MAX_IOV];
                let k = self.out.len().min(MAX_IOV);
                for (slice, bytes) in slices.iter_mut().zip(&self.out) {
                    *slice = IoSlice::new(bytes);
                }
                ready!(Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..k]))?
            };
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.advance(n);
        }
        Pin::new(&mut self.io).poll_flush(cx)
    }

    /// `n` bytes were written.
    fn advance(&mut self, mut n: usize) {
        self.buffered -= n;
        while n > 0 {
            let Some(front) = self.out.front_mut() else {
                break;
            };
            if front.len() <= n {
                n -= front.len();
                self.out.pop_front();
            } else {
                front.advance(n);
                n = 0;
            }
        }
    }

    /// Write what is queued and shut down the write side; with `linger`, then drop what the
    /// client still sends until it closes.
    async fn finish(&mut self, linger: bool) -> io::Result<()> {
        poll_fn(|cx| self.poll_write_out(cx)).await?;
        self.io.shutdown().await?;
        if linger {
            while self.io.read(&mut self.read_buf).await? > 0 {}
        }
        Ok(())
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Transport for TcpTransport<S> {
    fn feed_frame(&mut self, frame: &EncodedFrame) -> Result<(), wsx::Error> {
        self.push(frame.head().clone());
        self.push(frame.tail().clone());
        Ok(())
    }

    fn feed_heart_beat(&mut self) -> Result<(), wsx::Error> {
        self.push(Bytes::from_static(HEART_BEAT));
        Ok(())
    }

    fn buffered_amount(&self) -> usize {
        self.buffered
    }

    fn poll_receive(&mut self, cx: &mut Context<'_>, level: Option<usize>) -> Poll<Input> {
        // Writing first; if output remains, the socket's writability wakes the task again.
        if let Poll::Ready(Err(e)) = self.poll_write_out(cx) {
            return Poll::Ready(Input::Failed(e.into()));
        }
        let mut buf = ReadBuf::new(&mut self.read_buf);
        match Pin::new(&mut self.io).poll_read(cx, &mut buf) {
            Poll::Ready(Ok(())) if buf.filled().is_empty() => Poll::Ready(Input::Closed),
            Poll::Ready(Ok(())) => {
                self.received = buf.filled().len();
                Poll::Ready(Input::Data)
            }
            Poll::Ready(Err(e)) => Poll::Ready(Input::Failed(e.into())),
            Poll::Pending => match level {
                Some(n) if self.buffered < n => Poll::Ready(Input::Drained),
                _ => Poll::Pending,
            },
        }
    }

    fn received(&self) -> &[u8] {
        &self.read_buf[..self.received]
    }

    fn poll_written(&mut self, cx: &mut Context<'_>, level: Option<usize>) -> Poll<Input> {
        match self.poll_write_out(cx) {
            Poll::Ready(Err(e)) => Poll::Ready(Input::Failed(e.into())),
            Poll::Ready(Ok(())) if level.is_some() => Poll::Ready(Input::Drained),
            Poll::Pending if level.is_some_and(|n| self.buffered < n) => {
                Poll::Ready(Input::Drained)
            }
            Poll::Ready(Ok(())) | Poll::Pending => Poll::Pending,
        }
    }

    async fn close(&mut self, ending: Ending) -> Result<(), wsx::Error> {
        let linger = match ending {
            // Dropped with its output unwritten: the client does not read it anyway.
            Ending::TooSlow => return Ok(()),
            // The server goes: no need to wait for the client.
            Ending::Shutdown => false,
            // The client must get the ERROR or the RECEIPT before the connection goes.
            Ending::Disconnect | Ending::Error(_) => true,
        };
        match tokio::time::timeout(TCP_CLOSE_TIMEOUT, self.finish(linger)).await {
            Ok(finished) => Ok(finished?),
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "close timed out").into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::duplex;

    #[tokio::test]
    async fn frames_and_heart_beats_reach_the_stream_in_order() {
        let (server, mut client) = duplex(64);
        let mut transport = TcpTransport::new(server);
        let tail = Bytes::from_static(b"destination:/topic/t\n\nhello\0");
        let frame =
            EncodedFrame::from_parts(Bytes::from_static(b"MESSAGE\nsubscription:0\n"), tail);
        transport.feed_frame(&frame).expect("queued");
        transport.feed_heart_beat().expect("queued");
        assert_eq!(transport.buffered_amount(), frame.len() + 1);
        let expected = [frame.to_bytes().as_ref(), b"\n"].concat();
        let reader = tokio::spawn(async move {
            let mut got = vec![0; expected.len()];
            client.read_exact(&mut got).await.expect("read");
            client.write_all(b"SEND").await.expect("write");
            (got == expected, client)
        });
        // The duplex holds 64 bytes: the writes complete as the reader reads.
        let input = poll_fn(|cx| transport.poll_receive(cx, None)).await;
        assert!(matches!(input, Input::Data), "{input:?}");
        assert_eq!(transport.received(), b"SEND");
        assert_eq!(transport.buffered_amount(), 0);
        let (same, client) = reader.await.expect("joins");
        assert!(same);
        drop(client);
        let input = poll_fn(|cx| transport.poll_receive(cx, None)).await;
        assert!(matches!(input, Input::Closed), "{input:?}");
    }

    #[tokio::test]
    async fn an_error_is_written_before_the_close() {
        let (server, mut client) = duplex(1024);
        let mut transport = TcpTransport::new(server);
        let error = EncodedFrame::whole(Bytes::from_static(b"ERROR\nmessage:bad\n\n\0"));
        transport.feed_frame(&error).expect("queued");
        let closing = tokio::spawn(async move {
            transport
                .close(Ending::Error("bad".into()))
                .await
                .map_err(|e| e.to_string())
        });
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.expect("read to the end");
        assert_eq!(got, b"ERROR\nmessage:bad\n\n\0");
        drop(client);
        assert_eq!(closing.await.expect("joins"), Ok(()));
    }
}
