//! [`StompClient`]: the application's handle on the client. Each call becomes a [`Command`]
//! for the connection task (see `driver.rs`), which owns the connection and answers through a
//! oneshot channel.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};

use super::builder::{ClientConfig, StompClientBuilder};
use super::driver::Driver;
use super::error::ClientError;
use super::message::{ClientMessage, SubscribeOptions};
use super::state::ConnectionState;
use super::subscription::{Registered, Subscription};
use crate::command::Command as StompCommand;
use crate::frame::Frame;
use crate::headers::Headers;

/// How many requests the application may queue ahead of the connection task.
const COMMAND_QUEUE: usize = 256;

type Reply = oneshot::Sender<Result<(), ClientError>>;

/// A request to the connection task.
#[derive(Debug)]
pub(crate) enum Command {
    /// Register a subscription and subscribe (now if connected, else on connection).
    Subscribe {
        registered: Arc<Registered>,
        reply: Reply,
    },
    /// Forget a subscription; UNSUBSCRIBE if connected.
    Unsubscribe { id: String },
    /// Send a frame that asks for a receipt; the reply comes with the RECEIPT.
    Send { frame: Frame, reply: Reply },
    /// ACK or NACK a message of connection `connection`.
    Acknowledge {
        frame: Frame,
        connection: u64,
        reply: Reply,
    },
    /// DISCONNECT (waiting for its receipt) and stop.
    Disconnect { reply: oneshot::Sender<()> },
}

/// A STOMP client over WebSocket that reconnects: see the [crate documentation](crate#the-client)
/// and [`StompClientBuilder`] for what it guarantees. Clones share the connection. The client
/// runs while a handle or a [`Subscription`] exists, or until [`disconnect`](Self::disconnect).
#[derive(Debug, Clone)]
pub struct StompClient {
    commands: mpsc::Sender<Command>,
    state: watch::Receiver<ConnectionState>,
    next_subscription: Arc<AtomicU64>,
    subscription_buffer: usize,
}

impl StompClient {
    /// Configure a client.
    pub fn builder() -> StompClientBuilder {
        StompClientBuilder::default()
    }

    pub(crate) async fn start(config: ClientConfig) -> Result<StompClient, ClientError> {
        let (commands, receive_commands) = mpsc::channel(COMMAND_QUEUE);
        let (state_tx, state) = watch::channel(ConnectionState::Connecting);
        let (first_tx, first) = oneshot::channel();
        let subscription_buffer = config.subscription_buffer;
        tokio::spawn(Driver::new(config, receive_commands, state_tx).run(first_tx));
        first.await.map_err(|_| ClientError::Closed)??;
        Ok(StompClient {
            commands,
            state,
            next_subscription: Arc::new(AtomicU64::new(0)),
            subscription_buffer,
        })
    }

    /// Subscribe to `destination` with `ack:auto`, from now on ([`SubscribeOptions::new`]).
    pub async fn subscribe(&self, destination: &str) -> Result<Subscription, ClientError> {
        self.subscribe_with(destination, SubscribeOptions::new())
            .await
    }

    /// Subscribe to `destination`. Connected, this waits for the server's RECEIPT of the
    /// SUBSCRIBE; between connections the subscription is recorded and made on the next one.
    ///
    /// # Errors
    ///
    /// [`ClientError::Server`] if the server refuses it, [`ClientError::ConnectionLost`] if the
    /// connection ends first (the subscription stays recorded and is made on the next
    /// connection), [`ClientError::Closed`] if the client has stopped.
    pub async fn subscribe_with(
        &self,
        destination: &str,
        options: SubscribeOptions,
    ) -> Result<Subscription, ClientError> {
        let n = self.next_subscription.fetch_add(1, Ordering::Relaxed);
        let (deliver, receive) = mpsc::channel(self.subscription_buffer);
        let registered = Arc::new(Registered {
            id: format!("sub-{n}"),
            destination: destination.to_owned(),
            options,
            deliver,
            position: Default::default(),
        });
        let subscription = Subscription::new(&registered, receive, self.commands.clone());
        let (reply, answer) = oneshot::channel();
        self.request(Command::Subscribe { registered, reply })
            .await?;
        answer.await.map_err(|_| ClientError::Closed)??;
        Ok(subscription)
    }

    /// Send `body` to `destination` with `headers` (plus `destination`, `receipt` and, for a
    /// non-empty body, `content-length`), and wait for the server's RECEIPT: once this returns
    /// `Ok`, the server has taken the message.
    ///
    /// # Errors
    ///
    /// [`ClientError::NotConnected`] between connections (nothing was sent);
    /// [`ClientError::ConnectionLost`] if the connection ends before the RECEIPT (the message
    /// may or may not have been taken; the client does not resend it);
    /// [`ClientError::Server`] if the server refuses it; [`ClientError::Codec`] for a header
    /// STOMP 1.2 cannot carry; [`ClientError::Closed`] if the client has stopped.
    pub async fn send(
        &self,
        destination: &str,
        headers: Headers,
        body: impl Into<Bytes>,
    ) -> Result<(), ClientError> {
        let mut frame = Frame::new(StompCommand::Send).with_body(body);
        frame.headers = headers;
        frame.headers.set("destination", destination);
        frame.headers.remove("receipt");
        let (reply, answer) = oneshot::channel();
        self.request(Command::Send { frame, reply }).await?;
        answer.await.map_err(|_| ClientError::Closed)?
    }

    /// Acknowledge a message of a `client` or `client-individual` subscription.
    ///
    /// # Errors
    ///
    /// [`ClientError::NotAckable`] for a message of an `auto` subscription;
    /// [`ClientError::StaleAck`] for a message of an earlier connection (the server delivers it
    /// again); [`ClientError::NotConnected`] between connections.
    pub async fn ack(&self, message: &ClientMessage) -> Result<(), ClientError> {
        self.acknowledge(StompCommand::Ack, message).await
    }

    /// Refuse a message of a `client` or `client-individual` subscription (the server
    /// redelivers it or drops it, as it is configured). Errors as for [`ack`](Self::ack).
    pub async fn nack(&self, message: &ClientMessage) -> Result<(), ClientError> {
        self.acknowledge(StompCommand::Nack, message).await
    }

    async fn acknowledge(
        &self,
        command: StompCommand,
        message: &ClientMessage,
    ) -> Result<(), ClientError> {
        let id = message.ack_id.as_deref().ok_or(ClientError::NotAckable)?;
        let frame = Frame::new(command).with_header("id", id);
        let (reply, answer) = oneshot::channel();
        self.request(Command::Acknowledge {
            frame,
            connection: message.connection,
            reply,
        })
        .await?;
        answer.await.map_err(|_| ClientError::Closed)?
    }

    /// The connection state, to watch (`changed().await`). A watch keeps the latest state
    /// only: a quick disconnection and reconnection may show as a new
    /// [`ConnectionState::Connected`] with a higher `connection` number.
    pub fn state(&self) -> watch::Receiver<ConnectionState> {
        self.state.clone()
    }

    /// Wait until the state satisfies `ready` (now included); `Err(Closed)` if the client
    /// stops first (unless `ready` accepts [`ConnectionState::Closed`]).
    pub async fn wait_for_state(
        &self,
        mut ready: impl FnMut(&ConnectionState) -> bool,
    ) -> Result<ConnectionState, ClientError> {
        let mut state = self.state.clone();
        let found = state
            .wait_for(|s| ready(s) || *s == ConnectionState::Closed)
            .await
            .map_err(|_| ClientError::Closed)?
            .clone();
        if ready(&found) {
            Ok(found)
        } else {
            Err(ClientError::Closed)
        }
    }

    /// DISCONNECT gracefully (waiting for the server's receipt, so that everything sent before
    /// was processed) and stop: subscriptions end, other clones get [`ClientError::Closed`].
    pub async fn disconnect(self) {
        let (reply, answer) = oneshot::channel();
        if self.request(Command::Disconnect { reply }).await.is_ok() {
            let _ = answer.await;
        }
    }

    async fn request(&self, command: Command) -> Result<(), ClientError> {
        self.commands
            .send(command)
            .await
            .map_err(|_| ClientError::Closed)
    }
}
