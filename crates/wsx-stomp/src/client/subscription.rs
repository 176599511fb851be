//! A subscription: the application's receiving end ([`Subscription`]) and the client's record
//! of it ([`Registered`]), which the connection task resubscribes on every new connection.
//!
//! Resume: the subscription remembers the offset of the last topic message it *handed to the
//! application* (not the last one received: messages may wait in its buffer). On a new
//! connection the SUBSCRIBE asks for `x-stream-offset:offset=<that + 1>`, and messages of the
//! old connection still waiting in the buffer are dropped — the server sends them again, in
//! order, so the application sees every message once. Client-acknowledged subscriptions drop
//! them too (the server puts unacknowledged messages back). Other subscriptions keep them.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use tokio::sync::mpsc;

use super::handle::Command;
use super::message::{ClientMessage, OFFSET_HEADER, StartOffset, SubscribeOptions};
use crate::command::Command as StompCommand;
use crate::frame::Frame;
use crate::session::AckMode;

/// What the subscription has handed over, shared by the [`Subscription`] and the connection
/// task.
#[derive(Debug, Default)]
pub(crate) struct Position {
    /// The offset of the last message handed to the application.
    last_handed: Option<u64>,
    /// Messages of connections before this one are dropped (they come again).
    discard_before: u64,
    /// The offset the first message of the resumed subscription should have.
    resume_from: Option<u64>,
}

fn lock(position: &Mutex<Position>) -> MutexGuard<'_, Position> {
    position
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The client's record of a subscription.
#[derive(Debug)]
pub(crate) struct Registered {
    pub(crate) id: String,
    pub(crate) destination: String,
    pub(crate) options: SubscribeOptions,
    pub(crate) deliver: mpsc::Sender<ClientMessage>,
    pub(crate) position: Arc<Mutex<Position>>,
}

impl Registered {
    /// The SUBSCRIBE for connection `connection`, asking for `receipt`. For a topic, the start
    /// position: after the last message handed over, or the initial one if none was.
    pub(crate) fn subscribe_frame(&self, connection: u64, receipt: &str) -> Frame {
        let mut frame = Frame::new(StompCommand::Subscribe)
            .with_header("id", self.id.as_str())
            .with_header("destination", self.destination.as_str())
            .with_header("ack", self.options.ack.as_str())
            .with_header("receipt", receipt);
        for (name, value) in &self.options.headers {
            if !matches!(
                name.as_str(),
                "id" | "destination" | "ack" | "receipt" | OFFSET_HEADER
            ) {
                frame.headers.push(name.as_str(), value.as_str());
            }
        }
        let mut position = lock(&self.position);
        if self.options.ack != AckMode::Auto {
            position.discard_before = connection;
        }
        if self.destination.starts_with("/topic/") {
            let start = match position.last_handed {
                Some(last) => StartOffset::Offset(last.saturating_add(1)),
                None => self.options.start,
            };
            if start != StartOffset::Next {
                frame.headers.push(OFFSET_HEADER, start.header_value());
            }
            if let StartOffset::First | StartOffset::Offset(_) = start {
                // Whatever of the old connection is still buffered comes again from here.
                position.discard_before = connection;
            }
            position.resume_from = match start {
                StartOffset::Offset(n) if position.last_handed.is_some() => Some(n),
                _ => None,
            };
        }
        frame
    }
}

/// The messages of one subscription, in order; made by [`crate::StompClient::subscribe`].
///
/// Receive with [`recv`](Self::recv) or as a `Stream`. At most
/// [`crate::StompClientBuilder::subscription_buffer`] messages wait here; past that the client
/// stops reading from the connection (TCP flow control then slows the server down, which
/// applies its slow-consumer policy). Dropping it unsubscribes.
#[derive(Debug)]
pub struct Subscription {
    id: String,
    destination: String,
    receive: mpsc::Receiver<ClientMessage>,
    position: Arc<Mutex<Position>>,
    commands: mpsc::Sender<Command>,
    unsubscribed: bool,
}

impl Subscription {
    pub(crate) fn new(
        registered: &Registered,
        receive: mpsc::Receiver<ClientMessage>,
        commands: mpsc::Sender<Command>,
    ) -> Self {
        Subscription {
            id: registered.id.clone(),
            destination: registered.destination.clone(),
            receive,
            position: registered.position.clone(),
            commands,
            unsubscribed: false,
        }
    }

    /// The next message; `None` once the client has stopped. Cancel-safe.
    pub async fn recv(&mut self) -> Option<ClientMessage> {
        std::future::poll_fn(|cx| self.poll_message(cx)).await
    }

    fn poll_message(&mut self, cx: &mut Context<'_>) -> Poll<Option<ClientMessage>> {
        loop {
            let Some(message) = std::task::ready!(self.receive.poll_recv(cx)) else {
                return Poll::Ready(None);
            };
            if let Some(message) = self.hand(message) {
                return Poll::Ready(Some(message));
            }
        }
    }

    /// Record `message` as handed over, or drop it if it belongs to an earlier connection
    /// whose messages come again.
    fn hand(&self, mut message: ClientMessage) -> Option<ClientMessage> {
        let mut position = lock(&self.position);
        if message.connection < position.discard_before {
            return None;
        }
        if let Some(expected) = position.resume_from.take()
            && message.offset.is_some_and(|offset| offset != expected)
        {
            message.gap = true;
        }
        if let Some(offset) = message.offset {
            position.last_handed = Some(offset);
        }
        Some(message)
    }

    /// The subscription's id (its SUBSCRIBE's `id` header).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The destination.
    pub fn destination(&self) -> &str {
        &self.destination
    }

    /// The offset of the last topic message handed over, if any.
    pub fn last_offset(&self) -> Option<u64> {
        lock(&self.position).last_handed
    }

    /// Unsubscribe (UNSUBSCRIBE if connected), waiting until the client has taken the request.
    pub async fn unsubscribe(mut self) {
        self.unsubscribed = true;
        let _ = self
            .commands
            .send(Command::Unsubscribe {
                id: self.id.clone(),
            })
            .await;
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if !self.unsubscribed {
            // If the command queue is full the registration stays until the client stops;
            // its messages are dropped (the receiver is gone) and it is not resubscribed.
            let _ = self.commands.try_send(Command::Unsubscribe {
                id: std::mem::take(&mut self.id),
            });
        }
    }
}

impl futures_core::Stream for Subscription {
    type Item = ClientMessage;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ClientMessage>> {
        self.poll_message(cx)
    }
}
