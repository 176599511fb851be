//! The connection task: one per client, owning the connection and the client's records.
//!
//! It loops over connections: open one (WebSocket handshake with `v12.stomp`, CONNECT, wait
//! for CONNECTED, resubscribe every subscription and wait for the RECEIPTs), serve it (turn
//! the application's [`Command`]s into frames, match RECEIPTs to the sends waiting for them,
//! send heart-beats), and when it is lost, fail the sends still waiting for a RECEIPT with
//! [`ClientError::ConnectionLost`] and open the next one. URLs are tried in turn; failed
//! attempts in a row wait out the [`super::Backoff`]. Between connections the task still
//! answers the application (subscriptions are recorded, sends fail with
//! [`ClientError::NotConnected`]).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{Instant, Interval};
use wsx::{CloseCode, Message, Utf8Bytes, WsSender};

use super::builder::ClientConfig;
use super::error::ClientError;
use super::handle::Command;
use super::reader::{Inbound, Reader, Registry};
use super::state::ConnectionState;
use crate::command::Command as StompCommand;
use crate::decode::Decoder;
use crate::frame::Frame;
use crate::heartbeat::{HeartBeat, HeartBeatHeader};
use crate::version::Version;

/// How many events a reader may queue for the connection task.
const EVENT_QUEUE: usize = 64;
/// How long a DISCONNECT waits for its RECEIPT.
const DISCONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection that lasted this long counts as a success: when it is lost the client
/// reconnects at once. One lost sooner counts as a failed attempt (and waits out the backoff),
/// so a server that accepts and then drops the client is not hammered.
const STABLE_CONNECTION: Duration = Duration::from_secs(1);

type Reply = oneshot::Sender<Result<(), ClientError>>;

/// How serving a connection ended.
enum Ended {
    /// The application disconnected, or dropped every handle.
    Stop,
    /// The connection was lost, for this reason.
    Lost(String),
}

/// An open connection.
struct Live {
    sender: WsSender,
    events: mpsc::Receiver<Inbound>,
    /// How often the client must send something, if at all.
    send_every: Option<Duration>,
    connection: u64,
    /// The subscriptions made on this connection.
    subscribed: HashSet<String>,
}

impl Live {
    async fn write(&self, frame: &Frame) -> Result<(), String> {
        let message = to_message(frame).map_err(|e| e.to_string())?;
        self.sender
            .send(message)
            .await
            .map_err(|e| format!("writing to the connection failed: {e}"))
    }
}

/// A frame as a WebSocket message: text when it is UTF-8, binary otherwise.
fn to_message(frame: &Frame) -> Result<Message, crate::Error> {
    let bytes = frame.encode(Version::V1_2)?;
    Ok(match Utf8Bytes::try_from(bytes.clone()) {
        Ok(text) => Message::Text(text),
        Err(_) => Message::Binary(bytes),
    })
}

/// The `message` header of an ERROR (or its body, or a placeholder).
fn error_message(frame: &Frame) -> String {
    match frame.header("message") {
        Some(message) => message.to_owned(),
        None if !frame.body.is_empty() => String::from_utf8_lossy(&frame.body).into_owned(),
        None => "an ERROR without a message".to_owned(),
    }
}

/// The connection task.
pub(crate) struct Driver {
    config: Arc<ClientConfig>,
    commands: mpsc::Receiver<Command>,
    state: watch::Sender<ConnectionState>,
    registry: Registry,
    /// The number of the current (or last) connection.
    connection: u64,
    next_receipt: u64,
    disconnect_replies: Vec<oneshot::Sender<()>>,
}

impl Driver {
    pub(crate) fn new(
        config: ClientConfig,
        commands: mpsc::Receiver<Command>,
        state: watch::Sender<ConnectionState>,
    ) -> Self {
        Driver {
            config: Arc::new(config),
            commands,
            state,
            registry: Registry::default(),
            connection: 0,
            next_receipt: 0,
            disconnect_replies: Vec::new(),
        }
    }

    /// Connect, serve, reconnect, until stopped. `first` gets the outcome of the first
    /// connection (an error once every URL failed once, which stops the task).
    pub(crate) async fn run(mut self, first: oneshot::Sender<Result<(), ClientError>>) {
        let mut first = Some(first);
        let urls = self.config.urls.clone();
        let mut url_index = 0;
        let mut failures: u32 = 0;
        loop {
            let url = &urls[url_index % urls.len()];
            self.connection += 1;
            self.state.send_replace(ConnectionState::Connecting);
            let Some(opened) = self.open_while_answering(url).await else {
                break;
            };
            let reason = match opened {
                Ok(live) => {
                    self.state.send_replace(ConnectionState::Connected {
                        url: url.clone(),
                        connection: live.connection,
                    });
                    if let Some(first) = first.take() {
                        let _ = first.send(Ok(()));
                    }
                    let started = Instant::now();
                    match self.serve(live).await {
                        Ended::Stop => break,
                        Ended::Lost(reason) if started.elapsed() >= STABLE_CONNECTION => {
                            // Try the same server again at once (a dead one refuses quickly).
                            failures = 0;
                            self.state
                                .send_replace(ConnectionState::Disconnected { reason });
                            continue;
                        }
                        Ended::Lost(reason) => reason,
                    }
                }
                Err(error) => {
                    if first.is_some() && failures as usize + 1 >= urls.len() {
                        if let Some(first) = first.take() {
                            let _ = first.send(Err(error));
                        }
                        break;
                    }
                    error.to_string()
                }
            };
            failures = failures.saturating_add(1);
            url_index += 1;
            if self
                .config
                .max_reconnect_attempts
                .is_some_and(|max| failures >= max)
                && first.is_none()
            {
                break;
            }
            self.state
                .send_replace(ConnectionState::Disconnected { reason });
            if first.is_some() {
                continue; // the first round tries every URL without waiting
            }
            let delay = self.config.backoff.delay(failures - 1);
            if !self.wait_offline(delay).await {
                break;
            }
        }
        self.stop();
    }

    fn stop(&mut self) {
        self.state.send_replace(ConnectionState::Closed);
        // Dropping the records ends every subscription's stream.
        self.registry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clear();
        self.commands.close();
        for reply in self.disconnect_replies.drain(..) {
            let _ = reply.send(());
        }
    }

    /// Open a connection to `url` while answering the application; `None` to stop.
    async fn open_while_answering(&mut self, url: &str) -> Option<Result<Live, ClientError>> {
        let open = open(
            self.config.clone(),
            url.to_owned(),
            self.registry.clone(),
            self.connection,
        );
        tokio::pin!(open);
        loop {
            tokio::select! {
                opened = &mut open => return Some(opened),
                command = self.commands.recv() => {
                    if !self.answer_offline(command?) {
                        return None;
                    }
                }
            }
        }
    }

    /// Wait `delay` while answering the application; `false` to stop.
    async fn wait_offline(&mut self, delay: Duration) -> bool {
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = &mut sleep => return true,
                command = self.commands.recv() => {
                    let Some(command) = command else { return false };
                    if !self.answer_offline(command) {
                        return false;
                    }
                }
            }
        }
    }

    fn registry(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, Arc<super::subscription::Registered>>> {
        self.registry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Answer a command with no connection; `false` to stop.
    fn answer_offline(&mut self, command: Command) -> bool {
        match command {
            Command::Subscribe { registered, reply } => {
                self.registry().insert(registered.id.clone(), registered);
                let _ = reply.send(Ok(()));
            }
            Command::Unsubscribe { id } => {
                self.registry().remove(&id);
            }
            Command::Send { reply, .. } => {
                let _ = reply.send(Err(ClientError::NotConnected));
            }
            Command::Acknowledge {
                connection, reply, ..
            } => {
                let error = if connection == self.connection {
                    ClientError::NotConnected
                } else {
                    ClientError::StaleAck
                };
                let _ = reply.send(Err(error));
            }
            Command::Disconnect { reply } => {
                self.disconnect_replies.push(reply);
                return false;
            }
        }
        true
    }

    fn receipt_id(&mut self) -> String {
        self.next_receipt += 1;
        format!("r-{}", self.next_receipt)
    }

    /// Serve an open connection until it ends.
    async fn serve(&mut self, mut live: Live) -> Ended {
        let mut pending: HashMap<String, Reply> = HashMap::new();
        let mut server_error: Option<String> = None;
        let mut heart_beat = live
            .send_every
            .map(|every| tokio::time::interval_at(Instant::now() + every, every));
        let ended = match self.subscribe_missing(&mut live).await {
            Err(reason) => Ended::Lost(reason),
            Ok(()) => loop {
                tokio::select! {
                    command = self.commands.recv() => {
                        let Some(command) = command else {
                            self.goodbye(&mut live, &mut pending).await;
                            break Ended::Stop;
                        };
                        match self.answer_online(command, &mut live, &mut pending).await {
                            Ok(true) => {}
                            Ok(false) => break Ended::Stop,
                            Err(reason) => break Ended::Lost(reason),
                        }
                    }
                    event = live.events.recv() => match event {
                        Some(Inbound::Receipt(id)) => {
                            if let Some(reply) = pending.remove(&id) {
                                let _ = reply.send(Ok(()));
                            }
                        }
                        Some(Inbound::Error(frame)) => {
                            let message = error_message(&frame);
                            if let Some(reply) =
                                frame.header("receipt-id").and_then(|id| pending.remove(id))
                            {
                                let _ = reply.send(Err(ClientError::Server {
                                    message: message.clone(),
                                }));
                            }
                            server_error = Some(message);
                        }
                        Some(Inbound::Connected(_)) => {}
                        Some(Inbound::Ended(reason)) => {
                            break Ended::Lost(match server_error.take() {
                                Some(message) => format!("the server sent an ERROR ({message})"),
                                None => reason,
                            });
                        }
                        None => break Ended::Lost("the connection's reader stopped".to_owned()),
                    },
                    () = tick(&mut heart_beat) => {
                        if let Err(e) = live.sender.send(Message::text("\n")).await {
                            break Ended::Lost(format!("writing a heart-beat failed: {e}"));
                        }
                    }
                }
            },
        };
        let reason = match &ended {
            Ended::Stop => "the client disconnected".to_owned(),
            Ended::Lost(reason) => reason.clone(),
        };
        for (_, reply) in pending.drain() {
            let _ = reply.send(Err(ClientError::ConnectionLost {
                reason: reason.clone(),
            }));
        }
        ended
    }

    /// SUBSCRIBE what was recorded while the connection was being opened.
    async fn subscribe_missing(&mut self, live: &mut Live) -> Result<(), String> {
        let missing: Vec<_> = self
            .registry()
            .values()
            .filter(|r| !live.subscribed.contains(&r.id))
            .cloned()
            .collect();
        for registered in missing {
            let receipt = self.receipt_id();
            live.write(&registered.subscribe_frame(live.connection, &receipt))
                .await?;
            live.subscribed.insert(registered.id.clone());
        }
        Ok(())
    }

    /// Answer a command on a connection: `Ok(false)` to stop, `Err` if the connection failed.
    async fn answer_online(
        &mut self,
        command: Command,
        live: &mut Live,
        pending: &mut HashMap<String, Reply>,
    ) -> Result<bool, String> {
        match command {
            Command::Subscribe { registered, reply } => {
                let receipt = self.receipt_id();
                let frame = registered.subscribe_frame(live.connection, &receipt);
                live.subscribed.insert(registered.id.clone());
                self.registry().insert(registered.id.clone(), registered);
                pending.insert(receipt, reply);
                live.write(&frame).await?;
            }
            Command::Unsubscribe { id } => {
                self.registry().remove(&id);
                if live.subscribed.remove(&id) {
                    let frame = Frame::new(StompCommand::Unsubscribe).with_header("id", id);
                    live.write(&frame).await?;
                }
            }
            Command::Send { mut frame, reply } => {
                let receipt = self.receipt_id();
                frame.headers.push("receipt", receipt.as_str());
                let message = match to_message(&frame) {
                    Ok(message) => message,
                    Err(e) => {
                        let _ = reply.send(Err(ClientError::Codec(e)));
                        return Ok(true);
                    }
                };
                pending.insert(receipt, reply);
                live.sender
                    .send(message)
                    .await
                    .map_err(|e| format!("writing to the connection failed: {e}"))?;
            }
            Command::Acknowledge {
                frame,
                connection,
                reply,
            } => {
                if connection != live.connection {
                    let _ = reply.send(Err(ClientError::StaleAck));
                    return Ok(true);
                }
                let written = live.write(&frame).await;
                let _ = reply.send(match &written {
                    Ok(()) => Ok(()),
                    Err(reason) => Err(ClientError::ConnectionLost {
                        reason: reason.clone(),
                    }),
                });
                written?;
            }
            Command::Disconnect { reply } => {
                self.disconnect_replies.push(reply);
                self.goodbye(live, pending).await;
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// DISCONNECT, wait for its RECEIPT (answering the receipts that come first), close.
    async fn goodbye(&mut self, live: &mut Live, pending: &mut HashMap<String, Reply>) {
        let receipt = self.receipt_id();
        let frame = Frame::new(StompCommand::Disconnect).with_header("receipt", receipt.as_str());
        if live.write(&frame).await.is_ok() {
            let _ = tokio::time::timeout(DISCONNECT_TIMEOUT, async {
                while let Some(event) = live.events.recv().await {
                    match event {
                        Inbound::Receipt(id) if id == receipt => break,
                        Inbound::Receipt(id) => {
                            if let Some(reply) = pending.remove(&id) {
                                let _ = reply.send(Ok(()));
                            }
                        }
                        Inbound::Ended(_) => break,
                        Inbound::Connected(_) | Inbound::Error(_) => {}
                    }
                }
            })
            .await;
        }
        let _ = live.sender.close(CloseCode::NORMAL, "").await;
    }
}

/// Wait for the next heart-beat tick, or forever without heart-beats.
async fn tick(heart_beat: &mut Option<Interval>) {
    match heart_beat {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Open connection number `connection` to `url`: WebSocket, CONNECT, resubscriptions.
async fn open(
    config: Arc<ClientConfig>,
    url: String,
    registry: Registry,
    connection: u64,
) -> Result<Live, ClientError> {
    let limit = config.connect_timeout;
    match tokio::time::timeout(limit, open_within(&config, &url, &registry, connection)).await {
        Ok(opened) => opened,
        Err(_) => Err(ClientError::Connect {
            url,
            reason: format!("not connected and subscribed within {limit:?}"),
        }),
    }
}

async fn open_within(
    config: &ClientConfig,
    url: &str,
    registry: &Registry,
    connection: u64,
) -> Result<Live, ClientError> {
    let failed = |reason: String| ClientError::Connect {
        url: url.to_owned(),
        reason,
    };
    let host = wsx::WsUrl::parse(url)
        .map_err(|e| failed(e.to_string()))?
        .host;
    let (socket, _response) = wsx::ClientBuilder::new(url)
        .subprotocol("v12.stomp")
        .connect()
        .await
        .map_err(|e| failed(e.to_string()))?;
    let (sender, receiver) = socket.split();
    let (events_tx, events) = mpsc::channel(EVENT_QUEUE);
    let mut decoder = Decoder::new(config.limits);
    decoder.set_version(Version::V1_2);
    tokio::spawn(
        Reader {
            decoder,
            registry: registry.clone(),
            connection,
            heart_beat: config.heart_beat,
            events: events_tx,
        }
        .run(receiver),
    );
    let mut live = Live {
        sender,
        events,
        send_every: None,
        connection,
        subscribed: HashSet::new(),
    };

    let mut connect = Frame::new(StompCommand::Connect)
        .with_header("accept-version", "1.2")
        .with_header("host", host)
        .with_header("heart-beat", config.heart_beat.to_value());
    if let Some(login) = &config.login {
        connect.headers.push("login", login.as_str());
    }
    if let Some(passcode) = &config.passcode {
        connect.headers.push("passcode", passcode.as_str());
    }
    for (name, value) in &config.headers {
        connect.headers.push(name.as_str(), value.as_str());
    }
    live.write(&connect).await.map_err(failed)?;
    let connected = loop {
        match live.events.recv().await {
            Some(Inbound::Connected(frame)) => break frame,
            Some(Inbound::Error(frame)) => {
                return Err(ClientError::Refused {
                    url: url.to_owned(),
                    message: error_message(&frame),
                });
            }
            Some(Inbound::Receipt(_)) => {}
            Some(Inbound::Ended(reason)) => return Err(failed(reason)),
            None => return Err(failed("the connection's reader stopped".to_owned())),
        }
    };
    if connected.header("version") != Some("1.2") {
        return Err(failed(format!(
            "the server does not speak STOMP 1.2 (version {:?})",
            connected.header("version").unwrap_or("1.0")
        )));
    }
    let server = connected
        .header("heart-beat")
        .and_then(HeartBeatHeader::parse)
        .unwrap_or_default();
    live.send_every = HeartBeat::negotiate(config.heart_beat, server).check;

    resubscribe(&mut live, registry)
        .await
        .map_err(|e| match e {
            Resubscribe::Refused(message) => ClientError::Server { message },
            Resubscribe::Failed(reason) => failed(reason),
        })?;
    Ok(live)
}

enum Resubscribe {
    Refused(String),
    Failed(String),
}

/// SUBSCRIBE every recorded subscription (forgetting those the application dropped) and wait
/// for the RECEIPTs.
async fn resubscribe(live: &mut Live, registry: &Registry) -> Result<(), Resubscribe> {
    let recorded: Vec<_> = {
        let mut registry = registry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        registry.retain(|_, r| !r.deliver.is_closed());
        registry.values().cloned().collect()
    };
    let mut waiting = HashSet::new();
    for registered in recorded {
        let receipt = format!("resubscribe-{}-{}", registered.id, live.connection);
        let frame = registered.subscribe_frame(live.connection, &receipt);
        live.write(&frame).await.map_err(Resubscribe::Failed)?;
        live.subscribed.insert(registered.id.clone());
        waiting.insert(receipt);
    }
    while !waiting.is_empty() {
        match live.events.recv().await {
            Some(Inbound::Receipt(id)) => {
                waiting.remove(&id);
            }
            Some(Inbound::Error(frame)) => return Err(Resubscribe::Refused(error_message(&frame))),
            Some(Inbound::Connected(_)) => {}
            Some(Inbound::Ended(reason)) => return Err(Resubscribe::Failed(reason)),
            None => {
                return Err(Resubscribe::Failed(
                    "the connection's reader stopped".to_owned(),
                ));
            }
        }
    }
    Ok(())
}
