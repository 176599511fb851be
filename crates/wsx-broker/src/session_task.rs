//! One STOMP session's connection task, whatever carries its bytes: the loop behind
//! [`crate::Broker::serve_websocket`] and [`crate::Broker::serve_tcp`], generic over a
//! [`Transport`] ([`crate::websocket_transport`]: one WebSocket;
//! [`crate::tcp_transport`]: a raw TCP or TLS byte stream).
//!
//! The task feeds every piece of input the transport receives to the hub (STOMP frames may be
//! split across pieces or packed several per piece), writes what the hub queued for its
//! connection (STOMP frames, heart-beats), sleeps until the session's next deadline (CONNECT
//! timeout, heart-beats, idle, token expiry) and closes the transport when the session ends.
//! Other connections' traffic reaches it through its queue and that queue's `Notify`.
//!
//! The task tells the hub what reached the socket ([`Fed`], [`crate::hub::Hub::written`]): at
//! once when the session waits for it (`ack:auto` queue messages are acknowledged to the engine
//! only once written, which refills their credit window), otherwise along with the next input.
//! It keeps at most [`WRITE_HIGH_WATER`] bytes (plus one frame) in the transport's buffer.
//! While the session's unwritten output is past its budget (`max_unwritten_bytes`) the task
//! stops reading the socket and only writes, until the client has read enough.
//!
//! The session ends when the client sends DISCONNECT, on a protocol error or a refused CONNECT
//! (ERROR frame, then close with its message), when the client's heart-beats stop or it sends
//! nothing for the idle limit (ERROR, then close), when its token expires (ERROR `token
//! expired`, then close), when the client closes, when it is too slow for the traffic it
//! subscribed to or leaves its output unread for the broker's longest pause (closed as too
//! slow), or when the broker shuts down. Its subscriptions are then released: unacknowledged
//! queue messages go to other consumers. How each ending shows on the wire is the transport's
//! ([`Transport::close`]).

use std::future::{Future, poll_fn};
use std::task::{Context, Poll};

use tracing::debug;
use wsx_stomp::{ConnectionInfo, EncodedFrame};

use crate::broker::{Broker, WRITE_HIGH_WATER};
use crate::escaped::Escaped;
use crate::hub::Outbound;
use crate::write_accounting::Fed;

/// What [`Transport::poll_receive`] or [`Transport::poll_written`] woke the task for.
#[derive(Debug)]
pub(crate) enum Input {
    /// Fewer bytes than the level asked for wait to be written (or input that is nothing for
    /// the session arrived, a WebSocket ping say): go round the loop.
    Drained,
    /// Input for the session: read it with [`Transport::received`].
    Data,
    /// The client closed the connection.
    Closed,
    /// The connection failed.
    Failed(wsx::Error),
}

/// How a session ends on the wire, given to [`Transport::close`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ending {
    /// The server is shutting down.
    Shutdown,
    /// The client did not keep up.
    TooSlow,
    /// The client sent DISCONNECT (its RECEIPT is queued before).
    Disconnect,
    /// The session ended with an ERROR frame (queued before) with this message.
    Error(String),
}

/// What carries one STOMP session's bytes: it queues output without waiting (bounded by the
/// task, which keeps [`Transport::buffered_amount`] near [`WRITE_HIGH_WATER`]), writes it
/// while it polls for input, and closes in the way the [`Ending`] asks.
pub(crate) trait Transport {
    /// Queue one STOMP frame (a subscriber's head and the shared tail of a MESSAGE, or a
    /// whole frame).
    fn feed_frame(&mut self, frame: &EncodedFrame) -> Result<(), wsx::Error>;

    /// Queue one heart-beat.
    fn feed_heart_beat(&mut self) -> Result<(), wsx::Error>;

    /// Bytes queued and not yet written to the socket.
    fn buffered_amount(&self) -> usize;

    /// Write queued output and read: ready with input, the end of the input, a failure, or
    /// [`Input::Drained`] once fewer than `level` bytes wait to be written.
    fn poll_receive(&mut self, cx: &mut Context<'_>, level: Option<usize>) -> Poll<Input>;

    /// The input of the last [`Input::Data`].
    fn received(&self) -> &[u8];

    /// Write queued output without reading: [`Input::Drained`] once all of it is written, or
    /// once less than `level` bytes wait; pending when there is nothing to write and nothing
    /// to report (the queue's wake-up or the timer wakes the task then).
    fn poll_written(&mut self, cx: &mut Context<'_>, level: Option<usize>) -> Poll<Input>;

    /// End the connection as `ending` says (after the session was released).
    fn close(&mut self, ending: Ending) -> impl Future<Output = Result<(), wsx::Error>>;
}

/// Why a session ended.
enum End {
    /// The client closed the connection.
    PeerClosed,
    /// The connection failed.
    Failed(wsx::Error),
    /// The transport is to be closed so.
    Close(Ending),
}

/// Run one STOMP session over `transport` until it ends.
pub(crate) async fn run<T: Transport>(broker: &Broker, mut transport: T, info: ConnectionInfo) {
    let hub = &broker.hub;
    let metrics = &broker.metrics;
    let mut closing = broker.closing.subscribe();
    let (conn, queue, mut deadline) = hub.open(info);
    debug!(conn = conn.0, "stomp: open");
    let mut batch = Vec::new();
    // What was fed to the transport, to report what reached the socket.
    let mut fed = Fed::default();
    // Whether the session takes input (its output backlog is within its budget).
    let mut reading = true;

    // Since when the session's input has been paused, if it is.
    let mut paused_since: Option<tokio::time::Instant> = None;

    let end = 'session: loop {
        paused_since = if reading {
            None
        } else {
            paused_since.or_else(|| Some(tokio::time::Instant::now()))
        };
        // Write what the broker produced for this connection, up to the high-water mark.
        let budget = WRITE_HIGH_WATER.saturating_sub(transport.buffered_amount());
        let taken = queue.drain_into(budget, &mut batch);
        if taken.dropped {
            break End::Close(Ending::TooSlow);
        }
        fed.add_replaced_bytes(taken.replaced_bytes);
        for out in batch.drain(..) {
            let before = transport.buffered_amount();
            let size = out.budget_size();
            let written = match out {
                Outbound::Frame(frame) => {
                    metrics.sent(frame.len());
                    transport.feed_frame(&frame)
                }
                Outbound::HeartBeat => transport.feed_heart_beat(),
                Outbound::Replaced(count) => {
                    fed.push_replaced(count);
                    continue;
                }
                Outbound::Close(None) => break 'session End::Close(Ending::Disconnect),
                Outbound::Close(Some(reason)) => break 'session End::Close(Ending::Error(reason)),
            };
            if let Err(e) = written {
                break 'session End::Failed(e);
            }
            fed.push(transport.buffered_amount().saturating_sub(before), size);
        }
        // Report the writes now when the session waits for them (acknowledgements of ack:auto
        // queue deliveries, paused input); otherwise with the next input.
        fed.update(transport.buffered_amount());
        let report = taken.flag || !reading;
        if report && fed.has_unreported() {
            let status = hub.written(conn, fed.take_unreported());
            deadline = status.deadline;
            reading = status.wants_input;
        }
        // Wake when the writes go under the high-water mark (more to take from the queue), or
        // reach the end of the next transmit to report.
        let drained = queue.has_items().then_some(WRITE_HIGH_WATER);
        let level = drained.max(if report { fed.next_level() } else { None });
        let timer = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        // A client that does not read its output for that long is closed as too slow (the
        // session's own deadlines do this too, unless its idle limit is off).
        let stalled = async {
            match paused_since {
                Some(since) => tokio::time::sleep_until(since + broker.max_pause).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = closing.wait_for(|closing| *closing) => break End::Close(Ending::Shutdown),
            () = stalled => break End::Close(Ending::TooSlow),
            () = queue.ready() => {}
            () = timer => {
                let status = hub.timeout(conn);
                deadline = status.deadline;
                reading = status.wants_input;
            }
            // Over its output budget the session takes no input: then only write.
            input = poll_fn(|cx| if reading {
                transport.poll_receive(cx, level)
            } else {
                transport.poll_written(cx, level)
            }) => match input {
                Input::Drained => {}
                Input::Closed => break End::PeerClosed,
                Input::Failed(e) => break End::Failed(e),
                Input::Data => {
                    fed.update(transport.buffered_amount());
                    let bytes = transport.received();
                    metrics.received(bytes.len());
                    let status = hub.receive(conn, bytes, fed.take_unreported());
                    deadline = status.deadline;
                    reading = status.wants_input;
                }
            },
        }
    };

    // Release the session first: its queue messages go to other consumers at once.
    hub.close(conn);
    queue.close();
    let closed = match end {
        End::PeerClosed => Ok(()),
        End::Failed(e) => Err(e),
        End::Close(ending) => transport.close(ending).await,
    };
    match closed {
        Ok(()) => debug!(conn = conn.0, "stomp: closed"),
        Err(e) => debug!(conn = conn.0, "stomp: connection ended: {}", Escaped(&e)),
    }
}
