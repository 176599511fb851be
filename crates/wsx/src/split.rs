//! Splitting a connection into a receiver and cloneable senders.
//!
//! [`WebSocket::split`] moves the connection into a driver task that owns the transport and does
//! all the I/O, and returns a [`WsReceiver`] and a [`WsSender`] that talk to it through channels:
//! no lock on the hot path, pings answered and the close handshake completed whether or not
//! anyone is receiving, and any number of tasks can send to one connection.
//!
//! Cancel safety: [`WsReceiver::recv`] is cancel-safe (a message is never lost if the future is
//! dropped). [`WsSender::send`] is cancel-safe too: if its future is dropped before it completes,
//! the message was not queued.

use std::future::poll_fn;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::PollSender;
use wsx_proto::{CloseCode, CloseFrame, Message, OpCode};

use crate::config::Backpressure;
use crate::error::{Error, Result};
use crate::websocket::WebSocket;

/// How many received messages wait for the receiver before the driver stops reading (and TCP
/// flow control slows the peer down).
const INBOUND_QUEUE: usize = 64;
/// How many messages the senders may queue ahead of the driver.
const OUTBOUND_QUEUE: usize = 256;

enum Command {
    Send(Message),
    Encoded(Bytes),
    SharedTail {
        opcode: OpCode,
        head: Bytes,
        tail: Bytes,
    },
    Close(CloseFrame),
}

/// State shared by the driver and the handles.
#[derive(Debug)]
struct Shared {
    /// Bytes in the command channel.
    queued: AtomicUsize,
    /// Bytes the driver has queued in the connection but not written yet.
    unwritten: AtomicUsize,
    /// Wakes senders waiting for room (Wait policy).
    room: Notify,
    max_write_buffer: usize,
    backpressure: Backpressure,
    closed: AtomicBool,
}

impl Shared {
    fn buffered(&self) -> usize {
        self.queued.load(Ordering::Relaxed) + self.unwritten.load(Ordering::Relaxed)
    }
}

/// The receiving half of a split connection.
#[derive(Debug)]
pub struct WsReceiver {
    rx: mpsc::Receiver<Result<Message>>,
}

impl WsReceiver {
    /// The next message; `None` once the connection is closed. Cancel-safe.
    pub async fn recv(&mut self) -> Option<Result<Message>> {
        self.rx.recv().await
    }
}

impl futures_core::Stream for WsReceiver {
    type Item = Result<Message>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

/// A sending handle of a split connection; clone it to send from many tasks.
#[derive(Debug, Clone)]
pub struct WsSender {
    tx: mpsc::Sender<Command>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Command::Send(_) => "Send",
            Command::Encoded(_) => "Encoded",
            Command::SharedTail { .. } => "SharedTail",
            Command::Close(_) => "Close",
        })
    }
}

impl WsSender {
    /// Queue a message for the driver to send. With the `Wait` policy this waits while the
    /// output is full; `Fail` returns [`Error::BufferFull`] instead; `Close` also closes the
    /// connection. Cancel-safe.
    pub async fn send(&self, msg: Message) -> Result<()> {
        let len = msg.payload().len();
        self.queue(Command::Send(msg), len).await
    }

    /// Queue frames encoded once with [`crate::encode_frame`] (server role only).
    pub async fn send_encoded(&self, frames: Bytes) -> Result<()> {
        let len = frames.len();
        self.queue(Command::Encoded(frames), len).await
    }

    /// Queue one message whose payload is `head` followed by the shared `tail` (see
    /// [`WebSocket::feed_with_shared_tail`]). Errors in the message itself (an opcode other
    /// than text or binary, text that is not UTF-8) are reported here, before it is queued.
    pub async fn send_with_shared_tail(
        &self,
        opcode: OpCode,
        head: Bytes,
        tail: Bytes,
    ) -> Result<()> {
        wsx_proto::Connection::check_shared_tail(opcode, &head, &tail)?;
        let len = head.len() + tail.len();
        self.queue(Command::SharedTail { opcode, head, tail }, len)
            .await
    }

    /// Start the close handshake with `code` and `reason`. The receiver sees the peer's close
    /// frame, then `None`.
    pub async fn close(&self, code: CloseCode, reason: &str) -> Result<()> {
        let frame = CloseFrame::new(code, reason);
        frame.validate_for_send()?;
        self.tx
            .send(Command::Close(frame))
            .await
            .map_err(|_| Error::Closed)
    }

    /// Bytes queued but not yet written to the transport (approximate, across all handles).
    pub fn buffered_amount(&self) -> usize {
        self.shared.buffered()
    }

    /// Whether the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Relaxed) || self.tx.is_closed()
    }

    async fn queue(&self, cmd: Command, len: usize) -> Result<()> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        let full = self.buffered_amount() >= self.shared.max_write_buffer;
        match (full, self.shared.backpressure) {
            (true, Backpressure::Fail) => return Err(Error::BufferFull),
            (true, Backpressure::Close(code)) => {
                let _ = self
                    .tx
                    .try_send(Command::Close(CloseFrame::new(code, "send buffer full")));
                return Err(Error::BufferFull);
            }
            (true, Backpressure::Wait) => loop {
                let room = self.shared.room.notified();
                if self.buffered_amount() < self.shared.max_write_buffer || self.is_closed() {
                    break;
                }
                room.await;
            },
            (false, _) => {}
        }
        let permit = self.tx.reserve().await.map_err(|_| Error::Closed)?;
        self.shared.queued.fetch_add(len, Ordering::Relaxed);
        permit.send(cmd);
        Ok(())
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> WebSocket<S> {
    /// Split into a cloneable sender and a receiver, moving the connection into a driver task
    /// (spawned on the current tokio runtime) that does all the I/O.
    pub fn split(self) -> (WsSender, WsReceiver) {
        let shared = Arc::new(Shared {
            queued: AtomicUsize::new(0),
            unwritten: AtomicUsize::new(0),
            room: Notify::new(),
            max_write_buffer: self.max_write_buffer(),
            backpressure: self.backpressure(),
            closed: AtomicBool::new(false),
        });
        let (cmd_tx, cmd_rx) = mpsc::channel(OUTBOUND_QUEUE);
        let (in_tx, in_rx) = mpsc::channel(INBOUND_QUEUE);
        tokio::spawn(drive(self, cmd_rx, PollSender::new(in_tx), shared.clone()));
        (WsSender { tx: cmd_tx, shared }, WsReceiver { rx: in_rx })
    }
}

/// The driver: feeds commands into the connection and receives, until the connection ends.
/// `poll_recv` writes everything queued before it waits for input, so commands that arrive
/// together go out in one write.
async fn drive<S: AsyncRead + AsyncWrite + Unpin>(
    mut ws: WebSocket<S>,
    mut commands: mpsc::Receiver<Command>,
    mut inbound: PollSender<Result<Message>>,
    shared: Arc<Shared>,
) {
    let mut senders_gone = false;
    poll_fn(|cx| {
        let res = drive_once(
            &mut ws,
            &mut commands,
            &mut inbound,
            &shared,
            &mut senders_gone,
            cx,
        );
        shared
            .unwritten
            .store(ws.buffered_amount(), Ordering::Relaxed);
        if shared.buffered() < shared.max_write_buffer {
            shared.room.notify_waiters();
        }
        res
    })
    .await;
    shared.closed.store(true, Ordering::Relaxed);
    shared.room.notify_waiters();
}

fn drive_once<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocket<S>,
    commands: &mut mpsc::Receiver<Command>,
    inbound: &mut PollSender<Result<Message>>,
    shared: &Shared,
    senders_gone: &mut bool,
    cx: &mut Context<'_>,
) -> Poll<()> {
    loop {
        while !*senders_gone {
            match commands.poll_recv(cx) {
                Poll::Ready(Some(cmd)) => {
                    let len = match &cmd {
                        Command::Send(m) => m.payload().len(),
                        Command::Encoded(b) => b.len(),
                        Command::SharedTail { head, tail, .. } => head.len() + tail.len(),
                        Command::Close(_) => 0,
                    };
                    shared.queued.fetch_sub(len, Ordering::Relaxed);
                    // Errors here mean the connection is closing; the handles learn it from
                    // `closed` once the driver ends.
                    let _ = match cmd {
                        Command::Send(m) => ws.feed(m),
                        Command::Encoded(b) => ws.feed_encoded(b),
                        Command::SharedTail { opcode, head, tail } => {
                            ws.feed_with_shared_tail(opcode, &head, tail)
                        }
                        Command::Close(_) if ws.connection().is_close_sent() => Ok(()),
                        Command::Close(f) => ws.feed(Message::Close(Some(f))),
                    };
                }
                Poll::Ready(None) => *senders_gone = true,
                Poll::Pending => break,
            }
        }
        // Take a message only when the receiver has room for it; otherwise just keep writing.
        match inbound.poll_reserve(cx) {
            Poll::Ready(Ok(())) => match ws.poll_recv(cx) {
                Poll::Ready(Some(msg)) => {
                    let _ = inbound.send_item(msg);
                    continue;
                }
                Poll::Ready(None) => return Poll::Ready(()),
                Poll::Pending => return Poll::Pending,
            },
            Poll::Ready(Err(_)) => {
                // Nobody receives any more: drop incoming messages, keep driving for senders.
                match ws.poll_recv(cx) {
                    Poll::Ready(Some(_)) => continue,
                    Poll::Ready(None) => return Poll::Ready(()),
                    Poll::Pending => return Poll::Pending,
                }
            }
            Poll::Pending => {
                if let Poll::Ready(Err(_)) = ws.poll_write_out(cx) {
                    return Poll::Ready(());
                }
                return Poll::Pending;
            }
        }
    }
}
