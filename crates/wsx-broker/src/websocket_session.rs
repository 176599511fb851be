//! A STOMP session over one WebSocket: the connection task of [`crate::Broker::serve_websocket`].
//!
//! The task feeds every WebSocket message it receives to the hub (STOMP frames may be split
//! across messages or packed several per message), writes what the hub queued for its
//! connection (STOMP frames as text messages when they are UTF-8, binary otherwise; heart-beats
//! as `"\n"`), sleeps until the session's next deadline (CONNECT timeout, heart-beats, idle,
//! token expiry) and closes the WebSocket when the session ends. Other connections' traffic
//! reaches it through its queue and that queue's `Notify`.
//!
//! The task tells the hub what reached the socket ([`Fed`], [`crate::hub::Hub::written`]): at
//! once when the session waits for it (`ack:auto` queue messages are acknowledged to the engine
//! only once written, which refills their credit window), otherwise along with the next input.
//! While the session's unwritten output is past its budget (`max_unwritten_bytes`) the task
//! stops reading the socket and only writes, until the client has read enough.
//!
//! A MESSAGE frame is encoded once per message (and protocol version) by `wsx-stomp`: the
//! subscriber-specific head (`subscription`, `ack`, `redelivered`) is written per subscriber
//! and the shared tail (headers, body) goes to every socket without being copied or compressed.
//! Other frames (CONNECTED, RECEIPT, ERROR) are ordinary messages, compressed when
//! permessage-deflate was negotiated.
//!
//! The session ends when the client sends DISCONNECT (close 1000), on a protocol error or a
//! refused CONNECT (ERROR frame, then close 1008 with its message), when the client's
//! heart-beats stop or it sends nothing for the idle limit (ERROR, then close), when its token
//! expires (ERROR `token expired`, then close), when the client closes, when it is too slow for
//! the traffic it subscribed to (close 1008 "too slow"), or when the broker shuts down (close
//! 1001). Its subscriptions are then released: unacknowledged queue messages go to other
//! consumers.

use std::future::poll_fn;
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::debug;
use wsx::{CloseCode, Message, RecvOrDrained, Utf8Bytes, WebSocket};
use wsx_proto::MAX_HEADER_LEN;
use wsx_proto::{FrameHeader, OpCode};
use wsx_stomp::{ConnectionInfo, EncodedFrame};

use crate::broker::{Broker, WRITE_HIGH_WATER};
use crate::escaped::Escaped;
use crate::hub::Outbound;
use crate::write_accounting::Fed;

/// Why a session ended.
enum End {
    /// The client closed the connection.
    PeerClosed,
    /// The connection failed.
    Failed(wsx::Error),
    /// The server is shutting down.
    Shutdown,
    /// The hub dropped the connection: it did not keep up.
    Kicked,
    /// The STOMP session ended: after an ERROR (its message) or a DISCONNECT (`None`).
    Stomp(Option<String>),
}

/// Run a STOMP session on an upgraded WebSocket until it ends.
pub(crate) async fn run<S>(broker: &Broker, mut ws: WebSocket<S>, info: ConnectionInfo)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let hub = &broker.hub;
    let metrics = &broker.metrics;
    let mut closing = broker.closing.subscribe();
    let (conn, queue, mut deadline) = hub.open(info);
    debug!(conn = conn.0, subprotocol = ?ws.subprotocol(), "stomp: open");
    let mut batch = Vec::new();
    // What was fed to the WebSocket, to report what reached the socket.
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
        let budget = WRITE_HIGH_WATER.saturating_sub(ws.buffered_amount());
        let taken = queue.drain_into(budget, &mut batch);
        if taken.dropped {
            break End::Kicked;
        }
        for out in batch.drain(..) {
            let before = ws.buffered_amount();
            let size = out.budget_size();
            let written = match out {
                Outbound::Frame(frame) => {
                    metrics.sent(frame.len());
                    feed_frame(&mut ws, &frame)
                }
                Outbound::HeartBeat => ws.feed(Message::text("\n")),
                Outbound::Close(reason) => break 'session End::Stomp(reason),
            };
            if let Err(e) = written {
                break 'session End::Failed(e);
            }
            fed.push(ws.buffered_amount().saturating_sub(before), size);
        }
        // Report the writes now when the session waits for them (acknowledgements of ack:auto
        // queue deliveries, paused input); otherwise with the next input.
        fed.update(ws.buffered_amount());
        let report = taken.flag || !reading;
        if report && fed.has_unreported() {
            let status = hub.written(conn, fed.take());
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
            _ = closing.wait_for(|closing| *closing) => break End::Shutdown,
            () = stalled => break End::Kicked,
            () = queue.ready() => {}
            () = timer => {
                let status = hub.timeout(conn);
                deadline = status.deadline;
                reading = status.wants_input;
            }
            // Over its output budget the session takes no input: then only write.
            input = poll_fn(|cx| if reading {
                ws.poll_recv_or_drained(cx, level)
            } else {
                poll_written(&mut ws, cx, level)
            }) => match input {
                RecvOrDrained::Drained => {}
                RecvOrDrained::Message(None) => break End::PeerClosed,
                RecvOrDrained::Message(Some(Err(e))) => break End::Failed(e),
                RecvOrDrained::Message(Some(Ok(msg))) => {
                    if msg.is_data() {
                        let bytes = msg.payload();
                        metrics.received(bytes.len());
                        fed.update(ws.buffered_amount());
                        let status = hub.receive(conn, bytes, fed.take());
                        deadline = status.deadline;
                        reading = status.wants_input;
                    }
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
        End::Shutdown => {
            ws.close(CloseCode::GOING_AWAY, "server shutting down")
                .await
        }
        End::Kicked => ws.close(CloseCode::POLICY_VIOLATION, "too slow").await,
        End::Stomp(None) => ws.close(CloseCode::NORMAL, "").await,
        End::Stomp(Some(reason)) => {
            ws.close(CloseCode::POLICY_VIOLATION, &close_reason(&reason))
                .await
        }
    };
    match closed {
        Ok(()) => debug!(conn = conn.0, "stomp: closed"),
        Err(e) => debug!(conn = conn.0, "stomp: connection ended: {}", Escaped(&e)),
    }
}

/// A close reason from an ERROR message: at most 123 bytes, cut on a character boundary.
fn close_reason(message: &str) -> String {
    const MAX: usize = 123;
    if message.len() <= MAX {
        return message.to_owned();
    }
    let mut end = MAX;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    message[..end].to_owned()
}

/// Write queued output without reading: [`RecvOrDrained::Drained`] once all of it is written,
/// or once less than `level` bytes wait; pending when there is nothing to write and nothing to
/// report (the queue's wake-up or the timer wakes the task then).
fn poll_written<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocket<S>,
    cx: &mut Context<'_>,
    level: Option<usize>,
) -> Poll<RecvOrDrained> {
    match ws.poll_write_out(cx) {
        Poll::Ready(Err(e)) => Poll::Ready(RecvOrDrained::Message(Some(Err(e.into())))),
        Poll::Ready(Ok(())) if level.is_some() => Poll::Ready(RecvOrDrained::Drained),
        Poll::Pending if level.is_some_and(|n| ws.buffered_amount() < n) => {
            Poll::Ready(RecvOrDrained::Drained)
        }
        Poll::Ready(Ok(())) | Poll::Pending => Poll::Pending,
    }
}

/// Queue one STOMP frame as one WebSocket message.
fn feed_frame<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocket<S>,
    frame: &EncodedFrame,
) -> Result<(), wsx::Error> {
    if frame.head().is_empty() {
        // A frame of this session alone (CONNECTED, RECEIPT, ERROR): an ordinary message.
        let bytes = frame.tail().clone();
        let msg = if frame.is_utf8() {
            Utf8Bytes::try_from(bytes.clone()).map_or(Message::Binary(bytes), Message::Text)
        } else {
            Message::Binary(bytes)
        };
        return ws.feed(msg);
    }
    // A MESSAGE: one unfragmented, uncompressed WebSocket frame written from the two parts;
    // the shared tail is queued as it is (no copy when large).
    let opcode = if frame.is_utf8() {
        OpCode::Text
    } else {
        OpCode::Binary
    };
    let header = FrameHeader::new(opcode, frame.len() as u64);
    let mut encoded = [0u8; MAX_HEADER_LEN];
    let n = header.encode(&mut encoded);
    let mut first = BytesMut::with_capacity(n + frame.head().len());
    first.extend_from_slice(&encoded[..n]);
    first.extend_from_slice(frame.head());
    ws.feed_encoded(first.freeze())?;
    ws.feed_encoded(frame.tail().clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_reasons_fit() {
        assert_eq!(close_reason("bad"), "bad");
        let long = "é".repeat(100);
        let cut = close_reason(&long);
        assert!(cut.len() <= 123 && long.starts_with(&cut));
    }
}
