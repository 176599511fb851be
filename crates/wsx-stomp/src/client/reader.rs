//! The reading half of one connection: a task that decodes what the server sends, hands each
//! MESSAGE to its subscription (waiting while the subscription's buffer is full, which stops
//! reading and lets TCP flow control slow the server down) and passes everything else to the
//! connection task as an [`Inbound`] event. It watches the server's heart-beats: a connection
//! silent for twice the negotiated interval is dead.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use wsx::{Message, WsReceiver};

use super::message::{ClientMessage, GAP_HEADER, OFFSET_HEADER};
use super::subscription::Registered;
use crate::command::Command as StompCommand;
use crate::decode::Decoder;
use crate::frame::Frame;
use crate::heartbeat::{HeartBeat, HeartBeatHeader};

/// The subscriptions of a client by id, shared by the connection task and the readers.
pub(crate) type Registry = Arc<Mutex<HashMap<String, Arc<Registered>>>>;

/// What the reader passes to the connection task.
#[derive(Debug)]
pub(crate) enum Inbound {
    /// The CONNECTED frame.
    Connected(Frame),
    /// A RECEIPT's `receipt-id`.
    Receipt(String),
    /// An ERROR frame (the server closes the connection after it).
    Error(Frame),
    /// The connection ended, for this reason.
    Ended(String),
}

/// Everything a reader needs besides the socket.
pub(crate) struct Reader {
    pub(crate) decoder: Decoder,
    pub(crate) registry: Registry,
    pub(crate) connection: u64,
    pub(crate) heart_beat: HeartBeatHeader,
    pub(crate) events: mpsc::Sender<Inbound>,
}

impl Reader {
    /// Read until the connection ends; the last event is [`Inbound::Ended`].
    pub(crate) async fn run(mut self, mut socket: WsReceiver) {
        let reason = self.read(&mut socket).await;
        let _ = self.events.send(Inbound::Ended(reason)).await;
    }

    async fn read(&mut self, socket: &mut WsReceiver) -> String {
        let mut silence_limit: Option<Duration> = None;
        loop {
            let next = match silence_limit {
                Some(limit) => match tokio::time::timeout(limit, socket.recv()).await {
                    Ok(next) => next,
                    Err(_) => return format!("the server sent nothing for {limit:?}"),
                },
                None => socket.recv().await,
            };
            let message = match next {
                None => return "the connection closed".to_owned(),
                Some(Err(e)) => return format!("the connection failed: {e}"),
                Some(Ok(message)) => message,
            };
            match &message {
                Message::Text(_) | Message::Binary(_) => {}
                Message::Close(frame) => {
                    return match frame {
                        Some(frame) => format!(
                            "the server closed the WebSocket ({}: {})",
                            frame.code, frame.reason
                        ),
                        None => "the server closed the WebSocket".to_owned(),
                    };
                }
                _ => continue,
            }
            self.decoder.feed(message.payload());
            loop {
                let frame = match self.decoder.poll_frame() {
                    Ok(Some(frame)) => frame,
                    Ok(None) => break,
                    Err(e) => return format!("the server sent an invalid frame: {e}"),
                };
                if frame.command == StompCommand::Connected {
                    silence_limit = self.silence_limit(&frame);
                }
                if !self.dispatch(frame).await {
                    return "the client stopped".to_owned();
                }
            }
        }
    }

    /// Twice the interval at which the server promised to send something, if it did.
    fn silence_limit(&self, connected: &Frame) -> Option<Duration> {
        let server = connected
            .header("heart-beat")
            .and_then(HeartBeatHeader::parse)
            .unwrap_or_default();
        HeartBeat::negotiate(self.heart_beat, server)
            .send
            .map(|every| every.saturating_mul(2))
    }

    /// Deliver a MESSAGE or pass the frame on; `false` once the connection task is gone.
    async fn dispatch(&mut self, frame: Frame) -> bool {
        let event = match frame.command {
            StompCommand::Message => {
                self.deliver(frame).await;
                return true;
            }
            StompCommand::Connected => Inbound::Connected(frame),
            StompCommand::Receipt => match frame.header("receipt-id") {
                Some(id) => Inbound::Receipt(id.to_owned()),
                None => return true,
            },
            StompCommand::Error => Inbound::Error(frame),
            _ => return true,
        };
        self.events.send(event).await.is_ok()
    }

    async fn deliver(&mut self, frame: Frame) {
        let Some(subscription) = frame.header("subscription") else {
            return;
        };
        let deliver = {
            let registry = self
                .registry
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            match registry.get(subscription) {
                Some(registered) => registered.deliver.clone(),
                None => return, // unsubscribed meanwhile
            }
        };
        let message = ClientMessage {
            destination: frame.header("destination").unwrap_or_default().to_owned(),
            offset: frame
                .header(OFFSET_HEADER)
                .and_then(|v| v.trim().parse().ok()),
            gap: frame.header(GAP_HEADER) == Some("true"),
            redelivered: frame.header("redelivered") == Some("true"),
            ack_id: frame.header("ack").map(str::to_owned),
            connection: self.connection,
            headers: frame.headers,
            body: frame.body,
        };
        // The application dropped the subscription: nothing to do.
        let _ = deliver.send(message).await;
    }
}
