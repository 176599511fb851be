//! `/ws/chat/{room}`: one chat session per WebSocket connection.
//!
//! The router hands an upgraded connection to [`session`]. The session reads JSON commands from
//! the client (`join` with an optional `since` offset, `message`, `ping`, `file` + a binary
//! message), validates them and passes
//! them to its room ([`super::room`]); it answers `ping` and errors itself. What the room
//! broadcasts arrives in the session's bounded queue as a shared payload and is written with
//! [`wsx::WebSocket::feed_shared`] (compressed once per permessage-deflate parameter set,
//! counted in `wsx_chat_broadcast_*`). The session stops pulling from the queue while the socket
//! has more than [`WRITE_HIGH_WATER`] bytes unwritten, so a client that does not read fills its
//! queue and the room drops it (close 1008 "too slow").
//!
//! The session ends when the client closes, on an error, when the room drops it, when the client
//! stays silent too long, or on server shutdown (close 1001).

use std::future::poll_fn;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::debug;
use wsx::{CloseCode, MaybeTlsStream, Message, RecvOrDrained, WebSocket};

use super::State;
use super::room::{
    Command, Joiner, MAX_NAME_CHARS, MEMBER_QUEUE_LEN, Outgoing, RoomHandle, ServerEvent,
};
use wsx_broker::{Escaped, OutboundQueue, QueueLimits};

/// The most characters of a chat message.
pub const MAX_TEXT_CHARS: usize = 2000;
/// The largest JSON text message parsed; longer ones are answered with an error.
const MAX_JSON_BYTES: usize = 16 * 1024;
/// The most characters of a file name (longer names are cut).
const MAX_FILE_NAME_CHARS: usize = 120;
/// The most characters of a media type (longer ones become `application/octet-stream`).
const MAX_MIME_CHARS: usize = 100;
/// Unwritten output above which the session stops taking broadcast frames from its queue.
pub const WRITE_HIGH_WATER: usize = 256 * 1024;
/// How often the server pings a silent client.
const PING_INTERVAL: Duration = Duration::from_secs(30);
/// How long a client may stay silent (no message, no pong) before it is disconnected.
const IDLE_TIMEOUT: Duration = Duration::from_secs(75);
/// The most characters of a room name.
pub const MAX_ROOM_CHARS: usize = 64;

/// A command from a chat client (a JSON text message tagged by `type`).
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum ClientCommand {
    /// Join the room under a name; with `since`, every message from that offset on (what the
    /// client missed) instead of the room's last messages.
    Join {
        name: String,
        #[serde(default)]
        since: Option<u64>,
    },
    /// Say something to the room.
    Message { text: String },
    /// Measure the round trip: answered with a `pong` carrying the same `t`.
    Ping { t: serde_json::Number },
    /// Announce the binary message that follows: a file for the room.
    File {
        name: String,
        #[serde(default)]
        mime: String,
        #[serde(default)]
        size: Option<u64>,
    },
}

/// Whether `name` can name a room: 1 to 64 ASCII letters, digits, `-`, `_` or `.`.
pub fn valid_room(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_ROOM_CHARS
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// A member name: trimmed, 1 to 32 characters, no control characters.
fn validate_name(raw: &str) -> Result<String, &'static str> {
    let name = raw.trim();
    if name.is_empty() {
        return Err("the name is empty");
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err("the name is longer than 32 characters");
    }
    if name.chars().any(char::is_control) {
        return Err("the name contains control characters");
    }
    Ok(name.to_owned())
}

/// A chat message: not blank, at most 2000 characters, no control characters but newlines and
/// tabs.
fn validate_text(text: &str) -> Result<(), &'static str> {
    if text.trim().is_empty() {
        return Err("the message is empty");
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err("the message is longer than 2000 characters");
    }
    if text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err("the message contains control characters");
    }
    Ok(())
}

/// A file name safe to show: the last path component, without control characters, at most
/// 120 characters; `file` when nothing is left.
fn sanitize_file_name(raw: &str) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let name: String = base
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_FILE_NAME_CHARS)
        .collect();
    let name = name.trim();
    if name.is_empty() || name == "." || name == ".." {
        "file".to_owned()
    } else {
        name.to_owned()
    }
}

/// A media type `type/subtype` of token characters (lowercased), or `application/octet-stream`.
fn sanitize_mime(raw: &str) -> String {
    let mime = raw.trim().to_ascii_lowercase();
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    match mime.split_once('/') {
        Some((t, s)) if mime.len() <= MAX_MIME_CHARS && token(t) && token(s) => mime,
        _ => "application/octet-stream".to_owned(),
    }
}

/// Why a session ended.
enum End {
    /// The client closed the connection (the close handshake is done).
    PeerClosed,
    /// The connection failed (the protocol layer already sent the close frame if one was due).
    Failed(wsx::Error),
    /// The server is shutting down.
    Shutdown,
    /// The room dropped this member.
    Kicked,
    /// The client stayed silent too long.
    Idle,
}

struct Session {
    ws: WebSocket<MaybeTlsStream>,
    state: Arc<State>,
    id: u64,
    room: String,
    /// The room, once joined.
    handle: Option<RoomHandle>,
    /// The outgoing queue the room fills once joined (and drops the member through).
    queue: Arc<OutboundQueue<Outgoing>>,
    /// Broadcast frames taken from the queue, being written.
    batch: Vec<Outgoing>,
    /// The `file` header announcing the next binary message: name and media type.
    pending_file: Option<(String, String)>,
}

/// Run a chat session for an upgraded connection on `/ws/chat/{room}` until it ends.
pub async fn session(
    ws: WebSocket<MaybeTlsStream>,
    room: String,
    state: Arc<State>,
    mut shutdown: watch::Receiver<bool>,
) {
    let queue = Arc::new(OutboundQueue::new(QueueLimits {
        items: MEMBER_QUEUE_LEN,
        bytes: state.rooms.settings().max_queued_bytes,
    }));
    let id = state.next_id();
    let mut s = Session {
        ws,
        state,
        id,
        room,
        handle: None,
        queue,
        batch: Vec::new(),
        pending_file: None,
    };
    let mut ping = tokio::time::interval_at(Instant::now() + PING_INTERVAL, PING_INTERVAL);
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_seen = Instant::now();

    let end = loop {
        let joined = s.handle.is_some();
        let can_take = s.ws.buffered_amount() < WRITE_HIGH_WATER;
        // Frames left behind by the last write (over the high-water mark) are taken at once.
        let waiting = s.queue.has_items() || s.queue.is_dropped();
        let queue = s.queue.clone();
        let output = async move {
            if !waiting {
                queue.ready().await;
            }
        };
        // Unbiased: neither the client's input nor the room's output can starve the other.
        tokio::select! {
            () = super::wait_shutdown(&mut shutdown) => break End::Shutdown,
            () = output, if joined && can_take => match s.forward() {
                Ok(true) => {}
                Ok(false) => break End::Kicked,
                Err(e) => break End::Failed(e),
            },
            _ = ping.tick() => {
                if last_seen.elapsed() > IDLE_TIMEOUT {
                    break End::Idle;
                }
                // Fails only once closing, which the next recv reports.
                let _ = s.ws.feed(Message::Ping(Bytes::new()));
            }
            input = poll_fn(|cx| s.ws.poll_recv_or_drained(cx, (!can_take).then_some(WRITE_HIGH_WATER))) => match input {
                RecvOrDrained::Drained => {}
                RecvOrDrained::Message(None) => break End::PeerClosed,
                RecvOrDrained::Message(Some(Err(e))) => break End::Failed(e),
                RecvOrDrained::Message(Some(Ok(msg))) => {
                    last_seen = Instant::now();
                    if let Err(e) = s.on_message(msg).await {
                        break End::Failed(e);
                    }
                }
            },
        }
    };

    s.queue.close();
    if let Some(handle) = s.handle.take() {
        handle.send(Command::Leave { id }).await;
    }
    let closed = match end {
        End::PeerClosed => Ok(()),
        End::Failed(e) => Err(e),
        End::Shutdown => {
            s.ws.close(CloseCode::GOING_AWAY, "server shutting down")
                .await
        }
        End::Kicked => s.ws.close(CloseCode::POLICY_VIOLATION, "too slow").await,
        End::Idle => s.ws.close(CloseCode::GOING_AWAY, "idle timeout").await,
    };
    if let Err(e) = closed {
        debug!(room = %Escaped(&s.room), id, "chat connection ended: {}", Escaped(&e));
    }
}

impl Session {
    /// Write the broadcast frames waiting in the queue, as many as fit under the high-water
    /// mark; `Ok(false)` when the room dropped this member as too slow.
    fn forward(&mut self) -> Result<bool, wsx::Error> {
        let budget = WRITE_HIGH_WATER.saturating_sub(self.ws.buffered_amount());
        if self.queue.drain_into(budget, &mut self.batch).dropped {
            return Ok(false);
        }
        for out in self.batch.drain(..) {
            self.state.metrics.sent(out.payload.len());
            let how = self.ws.feed_shared(out.opcode, &[], &out.payload)?;
            self.state.metrics.chat_broadcast_sent(how);
        }
        Ok(true)
    }

    /// Send an event to this client only.
    fn reply(&mut self, event: &ServerEvent<'_>) -> Result<(), wsx::Error> {
        match serde_json::to_string(event) {
            Ok(text) => {
                self.state.metrics.sent(text.len());
                self.ws.feed(Message::text(text))
            }
            Err(_) => Ok(()),
        }
    }

    /// Refuse a request with an `error` event; the connection stays open.
    fn error(&mut self, code: &str, message: &str) -> Result<(), wsx::Error> {
        debug!(room = %Escaped(&self.room), id = self.id, code, message = %Escaped(message), "refused");
        self.reply(&ServerEvent::Error { code, message })
    }

    async fn on_message(&mut self, msg: Message) -> Result<(), wsx::Error> {
        match msg {
            Message::Text(text) => {
                self.state.metrics.received(text.len());
                self.on_text(&text).await
            }
            Message::Binary(data) => {
                debug!(room = %Escaped(&self.room), id = self.id, len = data.len(), "binary message");
                self.state.metrics.received(data.len());
                self.on_binary(data).await
            }
            // Pings are answered by the protocol layer; pongs only prove liveness.
            _ => Ok(()),
        }
    }

    async fn on_text(&mut self, text: &str) -> Result<(), wsx::Error> {
        if text.len() > MAX_JSON_BYTES {
            return self.error("too_long", "text messages are limited to 16 KiB");
        }
        let command = match serde_json::from_str::<ClientCommand>(text) {
            Ok(c) => c,
            Err(e) => {
                let why: String = e.to_string().chars().take(200).collect();
                return self.error("bad_json", &why);
            }
        };
        match command {
            ClientCommand::Ping { t } => self.reply(&ServerEvent::Pong { t: &t }),
            ClientCommand::Join { name, since } => self.join(&name, since).await,
            ClientCommand::Message { text } => {
                let Some(handle) = &self.handle else {
                    return self.error("not_joined", "send a join message first");
                };
                if let Err(why) = validate_text(&text) {
                    return self.error("invalid_text", why);
                }
                handle.send(Command::Message { id: self.id, text }).await;
                Ok(())
            }
            ClientCommand::File { name, mime, size } => {
                if self.handle.is_none() {
                    return self.error("not_joined", "send a join message first");
                }
                let max = self.state.rooms.settings().max_file_bytes;
                if size.is_some_and(|s| s > max as u64) {
                    self.pending_file = None;
                    return self.error(
                        "file_too_large",
                        &format!("files are limited to {max} bytes"),
                    );
                }
                self.pending_file = Some((sanitize_file_name(&name), sanitize_mime(&mime)));
                Ok(())
            }
        }
    }

    async fn join(&mut self, name: &str, since: Option<u64>) -> Result<(), wsx::Error> {
        if self.handle.is_some() {
            return self.error("already_joined", "this connection already joined the room");
        }
        let name = match validate_name(name) {
            Ok(n) => n,
            Err(why) => return self.error("invalid_name", why),
        };
        let handle = self.state.rooms.enter(&self.room);
        handle
            .send(Command::Join(Joiner {
                id: self.id,
                name,
                queue: self.queue.clone(),
                since,
            }))
            .await;
        self.handle = Some(handle);
        Ok(())
    }

    async fn on_binary(&mut self, data: Bytes) -> Result<(), wsx::Error> {
        let header = self.pending_file.take();
        let Some(handle) = &self.handle else {
            return self.error("not_joined", "send a join message first");
        };
        let max = self.state.rooms.settings().max_file_bytes;
        if data.len() > max {
            return self.error(
                "file_too_large",
                &format!("files are limited to {max} bytes"),
            );
        }
        let (name, mime) =
            header.unwrap_or_else(|| ("file".to_owned(), "application/octet-stream".to_owned()));
        handle
            .send(Command::File {
                id: self.id,
                name,
                mime,
                data,
            })
            .await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms() {
        assert!(valid_room("lobby"));
        assert!(valid_room("team-42_x.y"));
        assert!(!valid_room(""));
        assert!(!valid_room("a/b"));
        assert!(!valid_room("caf\u{e9}"));
        assert!(!valid_room(&"a".repeat(65)));
    }

    #[test]
    fn names() {
        assert_eq!(validate_name("  alice "), Ok("alice".to_owned()));
        assert!(validate_name("   ").is_err());
        assert!(validate_name(&"x".repeat(33)).is_err());
        assert!(validate_name(&"\u{e9}".repeat(32)).is_ok());
        assert!(validate_name("a\u{7}b").is_err());
    }

    #[test]
    fn texts() {
        assert!(validate_text("hello\nworld\t!").is_ok());
        assert!(validate_text(" \n ").is_err());
        assert!(validate_text(&"x".repeat(2001)).is_err());
        assert!(validate_text("a\u{1b}[31m").is_err());
    }

    #[test]
    fn file_names_and_types() {
        assert_eq!(sanitize_file_name("../../etc/passwd"), "passwd");
        assert_eq!(sanitize_file_name("C:\\x\\photo.png"), "photo.png");
        assert_eq!(sanitize_file_name(".."), "file");
        assert_eq!(sanitize_file_name("a\nb"), "ab");
        assert_eq!(sanitize_mime("Image/PNG"), "image/png");
        assert_eq!(sanitize_mime("text/html; x"), "application/octet-stream");
        assert_eq!(sanitize_mime(""), "application/octet-stream");
    }

    #[test]
    fn commands_parse() {
        let c: ClientCommand = serde_json::from_str(r#"{"type":"ping","t":12.5}"#).unwrap();
        assert!(matches!(c, ClientCommand::Ping { .. }));
        assert!(serde_json::from_str::<ClientCommand>(r#"{"type":"nope"}"#).is_err());
        let c: ClientCommand =
            serde_json::from_str(r#"{"type":"join","name":"a","since":42}"#).unwrap();
        assert!(matches!(
            c,
            ClientCommand::Join {
                since: Some(42),
                ..
            }
        ));
        assert!(
            serde_json::from_str::<ClientCommand>(r#"{"type":"join","name":"a","since":-1}"#)
                .is_err()
        );
        assert!(serde_json::from_str::<ClientCommand>(r#"{"type":"ping","t":"x"}"#).is_err());
    }
}
