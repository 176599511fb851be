//! [`WebSocket`]: a [`wsx_proto::Connection`] driven over any `AsyncRead + AsyncWrite`.
//!
//! Reading: bytes are read straight into the connection's buffer, which decodes them in place.
//! Writing: [`WebSocket::send`] queues a message and flushes; [`WebSocket::feed`] only queues,
//! so several messages go out together in one (vectored) write at the next [`WebSocket::flush`].
//! Pongs and the close echo are written while receiving, so a task that only reads still answers
//! pings. A server reads nothing while its queued output is at its budget
//! ([`WebSocketConfig::max_write_buffer`]): it only writes until the peer has taken enough, so a
//! peer that does not read cannot make it queue answers without bound (its timers still run).
//! When neither buffer holds anything, both are released: an idle connection keeps no
//! read or write buffer. Released buffers go to a small per-thread pool that the next active
//! connection borrows from, so a connection that goes idle after every message (one request,
//! one answer) costs no allocation per message.

use std::future::{Future, poll_fn};
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use wsx_proto::{CloseCode, CloseFrame, Connection, Message, OpCode, Role, Timeout, TimerConfig};

use crate::config::{Backpressure, WebSocketConfig};
use crate::error::{Error, Result};

/// How much read buffer space to make available before reading (a connection's read buffer
/// is at least this large while it is active; idle connections hold none). Large enough that
/// a 16 KiB message arrives whole, without moving the part that came first.
const READ_CHUNK: usize = 32 * 1024;
/// The most read buffer reserved at once for a large announced frame.
const MAX_RESERVE: usize = 4 << 20;
/// How many slices one vectored write takes (each a run of small frames or a large payload).
const MAX_IOV: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Messages flow.
    Open,
    /// The close handshake is over (or the connection failed): write what is queued, then close.
    Flushing,
    /// Client: wait for the server to close TCP.
    AwaitEof,
    /// Finished.
    Done,
}

/// What [`WebSocket::poll_recv_or_drained`] saw.
#[derive(Debug)]
pub enum RecvOrDrained {
    /// A message, the end of the stream, or an error, as from [`WebSocket::recv`].
    Message(Option<Result<Message>>),
    /// The unwritten output fell under the given level.
    Drained,
}

/// A WebSocket connection over a transport `S` (a `TcpStream`, a TLS stream, …).
///
/// Receive with [`WebSocket::recv`] or as a [`futures_core::Stream`]; send with
/// [`WebSocket::send`] or as a [`futures_sink::Sink`].
#[derive(Debug)]
pub struct WebSocket<S> {
    io: S,
    conn: Connection,
    state: State,
    /// Sleeps until the connection's next deadline ([`Connection::poll_timeout`]): keepalive
    /// and the close deadline, kept by the protocol core.
    timer: Option<Pin<Box<Sleep>>>,
    pending_error: Option<Error>,
    max_write_buffer: usize,
    /// Queued output at which reading stops until it is written: `max_write_buffer` for a
    /// server, never for a client (see [`WebSocketConfig::max_write_buffer`]).
    read_pause_at: usize,
    backpressure: Backpressure,
    shutdown: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
    peer_close: Option<CloseFrame>,
    subprotocol: Option<String>,
}

impl<S> WebSocket<S> {
    /// Wrap a transport on which the handshake is done, with its protocol state.
    pub fn from_parts(
        io: S,
        conn: Connection,
        config: &WebSocketConfig,
        subprotocol: Option<String>,
    ) -> Self {
        let conn = match &config.mask_keys {
            Some(source) => conn.with_mask_keys(source.clone()),
            None => conn,
        };
        let timers = TimerConfig {
            ping_interval: config.ping_interval,
            pong_timeout: config.pong_timeout,
            idle_timeout: config.idle_timeout,
            close_timeout: Some(config.close_timeout),
        };
        let conn = conn.with_timers(timers, Instant::now().into_std());
        let read_pause_at = match conn.role() {
            Role::Server => config.max_write_buffer,
            Role::Client => usize::MAX,
        };
        WebSocket {
            io,
            conn,
            state: State::Open,
            timer: None,
            pending_error: None,
            max_write_buffer: config.max_write_buffer,
            read_pause_at,
            backpressure: config.backpressure,
            shutdown: None,
            peer_close: None,
            subprotocol,
        }
    }

    /// Wrap a transport on which the handshake was done elsewhere, with default limits and no
    /// extension.
    pub fn from_raw(io: S, role: Role, config: &WebSocketConfig) -> Self {
        WebSocket::from_parts(io, Connection::new(role, config.limits), config, None)
    }

    /// The subprotocol agreed in the handshake.
    pub fn subprotocol(&self) -> Option<&str> {
        self.subprotocol.as_deref()
    }

    /// Whether permessage-deflate was negotiated.
    pub fn is_compressed(&self) -> bool {
        self.conn.is_compressed()
    }

    /// Bytes queued but not yet written to the transport.
    pub fn buffered_amount(&self) -> usize {
        self.conn.buffered_amount()
    }

    /// The transport.
    pub fn get_ref(&self) -> &S {
        &self.io
    }

    /// The protocol state machine.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Queue a message without writing it; [`WebSocket::flush`] writes everything queued.
    ///
    /// When the output buffer is full ([`WebSocketConfig::max_write_buffer`]), the
    /// [`Backpressure`] policy applies: `Wait` queues anyway (`feed` cannot wait: `send`, the
    /// `Sink`, [`WebSocket::flush`] and [`WebSocket::poll_recv_or_drained`] can), `Fail` returns
    /// [`Error::BufferFull`], `Close` also closes the connection. Either way a server reads
    /// nothing more from the peer until the output is under the bound again, so what it queues
    /// in answer to the peer's messages stays bounded.
    pub fn feed(&mut self, msg: Message) -> Result<()> {
        self.check_backpressure()?;
        self.conn.send(msg)?;
        Ok(())
    }

    /// The close frame the peer sent (code and reason), once it has arrived; also after
    /// [`WebSocket::close`], which consumes it.
    pub fn peer_close_frame(&self) -> Option<&CloseFrame> {
        self.peer_close.as_ref()
    }

    /// Queue one frame of a fragmented message (see [`wsx_proto::Connection::send_fragment`]):
    /// `OpCode::Text`/`OpCode::Binary` starts it, `OpCode::Continuation` continues it, `fin`
    /// ends it.
    pub fn feed_fragment(
        &mut self,
        opcode: OpCode,
        payload: bytes::Bytes,
        fin: bool,
    ) -> Result<()> {
        self.check_backpressure()?;
        self.conn.send_fragment(opcode, payload, fin)?;
        Ok(())
    }

    /// Queue frames encoded once for many connections with [`crate::encode_frame`]
    /// (server role only): a broadcast encodes a message once and shares the bytes.
    pub fn feed_encoded(&mut self, frames: bytes::Bytes) -> Result<()> {
        self.check_backpressure()?;
        self.conn.send_encoded(frames)?;
        Ok(())
    }

    /// Queue one unfragmented, uncompressed message (`OpCode::Text` or `OpCode::Binary`) whose
    /// payload is `head` followed by `tail`, without writing it: a broadcast with a
    /// per-recipient prefix (a STOMP `MESSAGE` with its `subscription` header, say) whose shared
    /// part is queued as it is, without a copy, when large. Text is checked to be UTF-8.
    ///
    /// A client must mask what it sends, so in the client role both parts are copied (and
    /// masked); the message is the same on the wire. It is never compressed, even when
    /// permessage-deflate is in use. The output budget applies as for [`WebSocket::feed`].
    pub fn feed_with_shared_tail(
        &mut self,
        opcode: OpCode,
        head: &[u8],
        tail: bytes::Bytes,
    ) -> Result<()> {
        self.check_backpressure()?;
        self.conn.send_with_shared_tail(opcode, head, tail)?;
        Ok(())
    }

    /// Queue one unfragmented message (`OpCode::Text` or `OpCode::Binary`) whose payload is
    /// `head` (per recipient, may be empty) followed by `tail`, a payload shared by many
    /// connections, without writing it; returns how it went out (for a broadcaster's counters).
    ///
    /// With permessage-deflate and no context takeover on our side (the default), a message
    /// of at least `min_size` bytes is compressed, and `tail` only once for every connection
    /// with the same compressor parameters (see [`wsx_proto::Connection::send_shared`]).
    /// Text is checked to be UTF-8. The output budget applies as for [`WebSocket::feed`].
    pub fn feed_shared(
        &mut self,
        opcode: OpCode,
        head: &[u8],
        tail: &crate::SharedPayload,
    ) -> Result<crate::SharedSend> {
        self.check_backpressure()?;
        Ok(self.conn.send_shared(opcode, head, tail)?)
    }

    /// Close this connection with 1001 ("going away") when `token` is cancelled: a server's
    /// graceful shutdown. The close handshake then runs as usual while the application keeps
    /// receiving (it sees the peer's close frame, then `None`).
    pub fn close_on(&mut self, token: CancellationToken) {
        self.shutdown = Some(Box::pin(token.cancelled_owned()));
    }

    /// The bound on queued output ([`WebSocketConfig::max_write_buffer`]).
    pub fn max_write_buffer(&self) -> usize {
        self.max_write_buffer
    }

    /// The policy when the output buffer is full.
    pub fn backpressure(&self) -> Backpressure {
        self.backpressure
    }

    /// Whether the output buffer is at or over its bound.
    pub fn is_write_buffer_full(&self) -> bool {
        self.conn.buffered_amount() >= self.max_write_buffer
    }

    fn check_backpressure(&mut self) -> Result<()> {
        if !self.is_write_buffer_full() {
            return Ok(());
        }
        match self.backpressure {
            Backpressure::Wait => Ok(()),
            Backpressure::Fail => Err(Error::BufferFull),
            Backpressure::Close(code) => {
                if !self.conn.is_close_sent() {
                    let _ = self
                        .conn
                        .close(Some(CloseFrame::new(code, "send buffer full")));
                }
                Err(Error::BufferFull)
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocket<S> {
    /// Receive the next message: `None` once the connection is closed.
    ///
    /// A received close frame is returned as [`Message::Close`]; keep calling `recv` to finish
    /// the close handshake (it then returns `None`). A protocol error from the peer is returned
    /// after the matching close frame was sent. Cancel-safe.
    pub async fn recv(&mut self) -> Option<Result<Message>> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Send a message and flush. A [`Message::Close`] starts the close handshake; use
    /// [`WebSocket::close`] to also wait for it to finish.
    pub async fn send(&mut self, msg: Message) -> Result<()> {
        if self.backpressure == Backpressure::Wait && self.is_write_buffer_full() {
            self.flush().await?;
        }
        self.feed(msg)?;
        self.flush().await
    }

    /// Write everything queued.
    pub async fn flush(&mut self) -> Result<()> {
        poll_fn(|cx| self.poll_write_out(cx))
            .await
            .map_err(Error::from)
    }

    /// Close the connection: send a close frame with `code` and `reason`, wait for the peer's
    /// close frame (messages arriving meanwhile are dropped) and close the transport.
    pub async fn close(&mut self, code: CloseCode, reason: &str) -> Result<()> {
        if !self.conn.is_close_sent() && self.state == State::Open {
            self.feed(Message::Close(Some(CloseFrame::new(code, reason))))?;
        }
        while let Some(msg) = self.recv().await {
            msg?;
        }
        Ok(())
    }

    /// Poll for the next message (see [`WebSocket::recv`]).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message>>> {
        loop {
            match self.state {
                State::Open => {
                    if self.conn.buffered_amount() >= self.read_pause_at {
                        // The peer does not read what we send: write, and take no more input
                        // (nothing more gets queued in answer to it) until the output is
                        // under its bound again. TCP flow control then slows the peer down.
                        match self.poll_write_out(cx) {
                            Poll::Ready(Err(e)) => {
                                self.state = State::Done;
                                return Poll::Ready(Some(Err(e.into())));
                            }
                            Poll::Pending if self.conn.buffered_amount() >= self.read_pause_at => {
                                if self.poll_timers(cx) {
                                    continue;
                                }
                                return Poll::Pending;
                            }
                            _ => {}
                        }
                    }
                    match self.conn.poll_message() {
                        Ok(Some(msg)) => {
                            if let Message::Close(frame) = &msg {
                                self.peer_close = frame.clone();
                                self.state = State::Flushing;
                            }
                            if self.state == State::Flushing {
                                // Echo the close at once, even if the user stops polling now.
                                if let Poll::Ready(Err(e)) = self.poll_write_out(cx) {
                                    self.state = State::Done;
                                    self.pending_error.get_or_insert(e.into());
                                }
                            }
                            return Poll::Ready(Some(Ok(msg)));
                        }
                        Ok(None) if self.conn.is_closed() => {
                            self.state = State::Flushing;
                            continue;
                        }
                        Ok(None) => {}
                        Err(e) => {
                            self.pending_error = Some(e.into());
                            self.state = State::Flushing;
                            continue;
                        }
                    }
                    if self.conn.has_output()
                        && let Poll::Ready(Err(e)) = self.poll_write_out(cx)
                    {
                        self.state = State::Done;
                        return Poll::Ready(Some(Err(e.into())));
                    }
                    match self.poll_fill(cx) {
                        Poll::Pending => {
                            if self.poll_timers(cx) {
                                continue;
                            }
                            if !self.conn.has_output() && self.conn.read_hint() == 0 {
                                self.conn.release_idle_buffers();
                            }
                            return Poll::Pending;
                        }
                        Poll::Ready(Ok(0)) => {
                            self.state = State::Done;
                            return Poll::Ready(Some(Err(Error::ConnectionReset)));
                        }
                        Poll::Ready(Ok(_)) => {
                            if self.conn.has_keepalive() {
                                self.conn.mark_received(Instant::now().into_std());
                            }
                        }
                        Poll::Ready(Err(e)) => {
                            self.state = State::Done;
                            return Poll::Ready(Some(Err(e.into())));
                        }
                    }
                }
                State::Flushing => {
                    match self.poll_write_out(cx) {
                        Poll::Pending => {
                            if self.poll_deadlines(cx) {
                                continue;
                            }
                            return Poll::Pending;
                        }
                        Poll::Ready(Err(e)) => {
                            self.state = State::Done;
                            self.pending_error.get_or_insert(e.into());
                            continue;
                        }
                        Poll::Ready(Ok(())) => {}
                    }
                    // The server closes TCP first; the client half-closes and waits for it.
                    let _ = ready!(Pin::new(&mut self.io).poll_shutdown(cx));
                    self.state = match self.conn.role() {
                        Role::Server => State::Done,
                        Role::Client => State::AwaitEof,
                    };
                }
                State::AwaitEof => match self.poll_fill(cx) {
                    Poll::Pending => {
                        if self.poll_deadlines(cx) {
                            continue;
                        }
                        return Poll::Pending;
                    }
                    Poll::Ready(Ok(n)) if n > 0 => {
                        // Whatever the server still sends after its close frame is dropped.
                        self.conn.recv_buf().clear();
                    }
                    Poll::Ready(_) => self.state = State::Done,
                },
                State::Done => {
                    self.timer = None;
                    self.conn.release_idle_buffers();
                    return Poll::Ready(self.pending_error.take().map(Err));
                }
            }
        }
    }

    /// Check the timers while waiting for the transport: the shutdown token, then the
    /// connection's deadlines. Whether one fired (the state changed: loop again).
    #[inline(always)]
    fn poll_timers(&mut self, cx: &mut Context<'_>) -> bool {
        self.poll_shutdown_signal(cx) || self.poll_deadlines(cx)
    }

    /// Sleep until the connection's next deadline and hand it the time when it passes. Whether
    /// something happened: a keepalive ping was queued, a keepalive failure failed the
    /// connection (its close frame is queued: flush it, then close), or the close deadline
    /// passed (close the transport now; an error only if the close handshake had not even
    /// started from our side).
    ///
    /// Received bytes move the keepalive deadline later all the time; the sleep is not reset
    /// for that (a timer reset per read), only for an earlier deadline: when it wakes too
    /// early, `handle_timeout` finds nothing due and it sleeps again until the new deadline.
    fn poll_deadlines(&mut self, cx: &mut Context<'_>) -> bool {
        let mut fired = false;
        loop {
            let Some(at) = self.conn.poll_timeout() else {
                self.timer = None;
                return false;
            };
            let at = Instant::from_std(at);
            match self.timer.as_mut() {
                Some(timer) if !fired && timer.deadline() <= at => {}
                Some(timer) => timer.as_mut().reset(at),
                None => self.timer = Some(Box::pin(tokio::time::sleep_until(at))),
            }
            let Some(timer) = self.timer.as_mut() else {
                return false;
            };
            if timer.as_mut().poll(cx).is_pending() {
                return false;
            }
            fired = true;
            let queued = self.conn.buffered_amount();
            match self.conn.handle_timeout(Instant::now().into_std()) {
                Ok(()) if self.conn.buffered_amount() != queued => return true,
                // A deadline armed or moved: sleep until the new one.
                Ok(()) => {}
                Err(e @ wsx_proto::Error::Timeout(Timeout::Close)) => {
                    if self.state == State::Open {
                        self.pending_error = Some(e.into());
                    }
                    self.state = State::Done;
                    return true;
                }
                Err(e) => {
                    self.pending_error = Some(e.into());
                    self.state = State::Flushing;
                    return true;
                }
            }
        }
    }

    /// Whether the shutdown token fired just now (a close 1001 was queued).
    #[inline(always)]
    fn poll_shutdown_signal(&mut self, cx: &mut Context<'_>) -> bool {
        self.shutdown.is_some() && self.poll_shutdown_token(cx)
    }

    /// [`WebSocket::poll_shutdown_signal`] with a token set, kept out of the receive loop.
    #[inline(never)]
    fn poll_shutdown_token(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(signal) = self.shutdown.as_mut() else {
            return false;
        };
        if signal.as_mut().poll(cx).is_pending() {
            return false;
        }
        self.shutdown = None;
        if !self.conn.is_close_sent() {
            let _ = self.conn.close(Some(CloseFrame::new(
                CloseCode::GOING_AWAY,
                "server shutting down",
            )));
        }
        true
    }

    /// Like [`WebSocket::poll_recv`] (which also writes queued output), and with
    /// `drained_below: Some(n)` also ready with [`RecvOrDrained::Drained`] once fewer than `n`
    /// bytes wait to be written: a task that stopped queueing because its peer reads slowly
    /// learns when to go on, without waiting for the peer to send something.
    pub fn poll_recv_or_drained(
        &mut self,
        cx: &mut Context<'_>,
        drained_below: Option<usize>,
    ) -> Poll<RecvOrDrained> {
        if let Poll::Ready(msg) = self.poll_recv(cx) {
            return Poll::Ready(RecvOrDrained::Message(msg));
        }
        // poll_recv wrote what it could; if output remains, it waits for the socket to be
        // writable, which wakes this task again.
        match drained_below {
            Some(n) if self.conn.buffered_amount() < n => Poll::Ready(RecvOrDrained::Drained),
            _ => Poll::Pending,
        }
    }

    /// Read more bytes into the connection's buffer.
    #[inline(always)]
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let want = self.conn.read_hint().clamp(READ_CHUNK, MAX_RESERVE);
        let buf = self.conn.recv_buf_reserve(READ_CHUNK / 4, want);
        tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, buf)
    }

    /// Write all queued output and flush the transport.
    pub fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let WebSocket { io, conn, .. } = self;
        while conn.has_output() {
            let first = conn.output_first_chunk();
            let n = if first.len() == conn.buffered_amount() || !io.is_write_vectored() {
                // One contiguous run (the usual case: small frames staged together): a plain
                // write, without building a slice array.
                ready!(Pin::new(&mut *io).poll_write(cx, first))?
            } else {
                let mut slices = [IoSlice::new(&[]); MAX_IOV];
                let k = conn.output_chunks(&mut slices);
                ready!(Pin::new(&mut *io).poll_write_vectored(cx, &slices[..k]))?
            };
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            conn.advance_output(n);
        }
        Pin::new(io).poll_flush(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> futures_core::Stream for WebSocket<S> {
    type Item = Result<Message>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_recv(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> futures_sink::Sink<Message> for WebSocket<S> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        if this.backpressure == Backpressure::Wait && this.is_write_buffer_full() {
            ready!(this.poll_write_out(cx))?;
        }
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<()> {
        self.get_mut().feed(item)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.get_mut().poll_write_out(cx).map_err(Error::from)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        if !this.conn.is_close_sent() && this.state == State::Open {
            this.feed(Message::Close(Some(CloseFrame::new(CloseCode::NORMAL, ""))))?;
        }
        ready!(this.poll_write_out(cx))?;
        Pin::new(&mut this.io)
            .poll_shutdown(cx)
            .map_err(Error::from)
    }
}
