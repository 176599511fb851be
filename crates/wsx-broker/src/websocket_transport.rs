//! STOMP over WebSocket: the [`Transport`] of [`crate::Broker::serve_websocket`].
//!
//! Every WebSocket data message the client sends is input for the session; pings, pongs and
//! the close handshake are the WebSocket's own. STOMP frames go out as text messages when they
//! are UTF-8, binary otherwise; heart-beats as `"\n"`.
//!
//! A MESSAGE frame is encoded once per message (and protocol version) by `wsx-stomp`: the
//! subscriber-specific head (`subscription`, `ack`, `redelivered`) is written per subscriber
//! and the shared tail (headers, body) goes to every socket without being copied, and, where
//! permessage-deflate was negotiated without server context takeover, compressed once per
//! deflate parameter set ([`wsx::WebSocket::feed_shared`], counted in
//! `wsx_stomp_broadcast_*`). Other frames (CONNECTED, RECEIPT, ERROR) are ordinary messages, compressed when
//! permessage-deflate was negotiated.
//!
//! Close codes: 1000 after a DISCONNECT, 1008 with the ERROR's message (cut to
//! [`wsx::MAX_CLOSE_REASON`] bytes) after an ERROR, 1008 "too slow" for a client that does not
//! keep up, 1001 "server shutting down".

use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite};
use wsx::{CloseCode, CloseFrame, Message, OpCode, RecvOrDrained, Utf8Bytes, WebSocket};
use wsx_stomp::EncodedFrame;

use crate::broadcast_counters::BroadcastCounters;
use crate::session_task::{Ending, Input, Transport};

/// One STOMP session's WebSocket, and the last data message it received.
pub(crate) struct WebSocketTransport<'a, S> {
    ws: WebSocket<S>,
    received: Option<Message>,
    /// Where MESSAGE deliveries are counted by how they were compressed.
    broadcast: &'a BroadcastCounters,
}

impl<'a, S> WebSocketTransport<'a, S> {
    /// Carry a session over `ws`, counting MESSAGE deliveries in `broadcast`.
    pub(crate) fn new(ws: WebSocket<S>, broadcast: &'a BroadcastCounters) -> Self {
        WebSocketTransport {
            ws,
            received: None,
            broadcast,
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Transport for WebSocketTransport<'_, S> {
    fn feed_frame(&mut self, frame: &EncodedFrame) -> Result<(), wsx::Error> {
        feed_frame(&mut self.ws, frame, self.broadcast)
    }

    fn feed_heart_beat(&mut self) -> Result<(), wsx::Error> {
        self.ws.feed(Message::text("\n"))
    }

    fn buffered_amount(&self) -> usize {
        self.ws.buffered_amount()
    }

    fn poll_receive(&mut self, cx: &mut Context<'_>, level: Option<usize>) -> Poll<Input> {
        self.ws
            .poll_recv_or_drained(cx, level)
            .map(|input| match input {
                RecvOrDrained::Drained => Input::Drained,
                RecvOrDrained::Message(None) => Input::Closed,
                RecvOrDrained::Message(Some(Err(e))) => Input::Failed(e),
                RecvOrDrained::Message(Some(Ok(msg))) if msg.is_data() => {
                    self.received = Some(msg);
                    Input::Data
                }
                RecvOrDrained::Message(Some(Ok(_))) => Input::Drained,
            })
    }

    fn received(&self) -> &[u8] {
        self.received.as_ref().map_or(&[], Message::payload)
    }

    fn poll_written(&mut self, cx: &mut Context<'_>, level: Option<usize>) -> Poll<Input> {
        match self.ws.poll_write_out(cx) {
            Poll::Ready(Err(e)) => Poll::Ready(Input::Failed(e.into())),
            Poll::Ready(Ok(())) if level.is_some() => Poll::Ready(Input::Drained),
            Poll::Pending if level.is_some_and(|n| self.ws.buffered_amount() < n) => {
                Poll::Ready(Input::Drained)
            }
            Poll::Ready(Ok(())) | Poll::Pending => Poll::Pending,
        }
    }

    async fn close(&mut self, ending: Ending) -> Result<(), wsx::Error> {
        let close = match ending {
            Ending::Shutdown => CloseFrame::new(CloseCode::GOING_AWAY, "server shutting down"),
            Ending::TooSlow => CloseFrame::new(CloseCode::POLICY_VIOLATION, "too slow"),
            Ending::Disconnect => CloseFrame::new(CloseCode::NORMAL, ""),
            Ending::Error(message) => CloseFrame::truncated(CloseCode::POLICY_VIOLATION, &message),
        };
        self.ws.close(close.code, close.reason.as_str()).await
    }
}

/// Queue one STOMP frame as one WebSocket message.
fn feed_frame<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocket<S>,
    frame: &EncodedFrame,
    broadcast: &BroadcastCounters,
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
    // A MESSAGE: one unfragmented WebSocket message from the two parts; the shared tail is
    // queued as it is (no copy when large) or compressed once for all its subscribers.
    let opcode = if frame.is_utf8() {
        OpCode::Text
    } else {
        OpCode::Binary
    };
    match frame.shared_tail() {
        Some(tail) => {
            broadcast.count(ws.feed_shared(opcode, frame.head(), tail)?);
            Ok(())
        }
        None => ws.feed_with_shared_tail(opcode, frame.head(), frame.tail().clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_close_reasons_fit() {
        let long = "é".repeat(100);
        let cut = CloseFrame::truncated(CloseCode::POLICY_VIOLATION, &long);
        assert!(cut.reason.len() <= wsx::MAX_CLOSE_REASON && long.starts_with(cut.reason.as_str()));
    }
}
