//! Chat rooms: a registry of rooms and one task per room and node that fans messages out.
//!
//! A chat session (see [`super::chat`]) that joined a room sends it [`Command`]s. The room task
//! ([`task`]) serializes each outgoing event once into a [`wsx::SharedPayload`] (compressed at
//! most once per permessage-deflate parameter set, by the first member's session that needs it)
//! and pushes the same payload into every member's
//! [`OutboundQueue`] (the slow-consumer queue of `wsx-broker`, shared with the STOMP broker):
//! the room task never waits for a member. A member whose queue would pass its limits (too many
//! entries or too many bytes) is dropped by its queue, closes with 1008 "too slow" and leaves
//! the room; the others do not notice beyond a `leave` event.
//!
//! Rooms span nodes: with the STOMP broker on (the default; `--broker redis://…` shares it
//! between nodes), a room's text messages go through its message topic and come back to every
//! node's room task, which broadcasts each once, in the topic's order, with the topic's
//! `offset`; files and presence go through its live topic ([`bridge`]). Without a broker
//! (`--stomp off`) the room numbers its messages itself and stays on this node.
//!
//! Offsets and `since`: every `message` event carries its `offset`. A member joining without
//! `since` gets the room's last `--history` messages on this node ([`history`]); with `since`
//! it gets every message from that offset on, then the live ones, no gap and no duplicate: from
//! the room's history when it holds them, else replayed from the topic's history
//! ([`catch_up`]), which is older than this node's room when the member comes from another node.
//!
//! Presence costs each join and leave O(log n), whatever the number of members: names come from
//! the room's [`names::Names`] registry (unique per node), the members present are told of a
//! change by a `join` or `leave` event (the page keeps its list from those), and only a joining
//! member gets the whole list (`presence`), which includes the members of the other nodes
//! ([`remote_presence`]: refreshed every 3 s, a silent node's members gone after 10 s). That
//! list is serialized at most once per [`PRESENCE_TICK`] and shared by everyone who joined
//! meanwhile: the first joiner after a quiet tick gets it at once, the others at the end of the
//! tick.
//!
//! A room exists while it has members: [`Rooms::enter`] creates it on the first join, and the
//! last [`RoomHandle`] dropped removes it from the registry (the task then drains its last
//! commands and ends).

mod bridge;
mod catch_up;
mod history;
mod names;
mod remote_presence;
mod task;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::mpsc;
use tracing::{info, warn};
use wsx::{Message, OpCode, SharedPayload};

use super::metrics::Metrics;
use super::stomp::Stomp;
use bridge::Bridge;
use wsx_broker::{Escaped, OutboundQueue};

pub use bridge::RESERVED_PREFIX;

/// Entries a member's outgoing queue holds before the member counts as too slow.
pub const MEMBER_QUEUE_LEN: usize = 256;
/// Commands a room's inbox holds; sessions wait (briefly) when it is full.
const ROOM_INBOX_LEN: usize = 1024;
/// The most characters of a name; longer names are refused.
pub const MAX_NAME_CHARS: usize = 32;
/// The longest header of an unmasked frame, counted with each broadcast in a member's queue.
const FRAME_HEADER_MAX: usize = 10;
/// The shortest interval between two serializations of a room's presence list.
const PRESENCE_TICK: Duration = Duration::from_millis(100);

/// One broadcast message, built once and shared by every receiver: its payload is
/// compressed at most once per permessage-deflate parameter set ([`wsx::SharedPayload`]).
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Text or binary.
    pub opcode: OpCode,
    /// The payload, for [`wsx::WebSocket::feed_shared`].
    pub payload: SharedPayload,
}

impl Outgoing {
    /// A text or binary message; `None` for control messages (never built here).
    pub fn encode(msg: &Message) -> Option<Outgoing> {
        let (opcode, payload) = match msg {
            Message::Text(t) => (OpCode::Text, t.clone().into_bytes()),
            Message::Binary(b) => (OpCode::Binary, b.clone()),
            _ => {
                warn!("a broadcast is a text or binary message");
                return None;
            }
        };
        Some(Outgoing {
            opcode,
            payload: SharedPayload::new(payload),
        })
    }

    /// Serialize `event` to JSON, as a text message.
    pub fn json<T: Serialize>(event: &T) -> Option<Outgoing> {
        match serde_json::to_string(event) {
            Ok(text) => Outgoing::encode(&Message::text(text)),
            Err(e) => {
                warn!("cannot serialize an event: {e}");
                None
            }
        }
    }

    /// The bytes it counts for in a member's queue: its payload and a frame header.
    pub fn queued_len(&self) -> usize {
        self.payload.len() + FRAME_HEADER_MAX
    }
}

/// Events the server sends to chat clients, as JSON text messages tagged by `type`.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ServerEvent<'a> {
    /// To a member that just joined: the name it got (a suffix is added when the name it asked
    /// for is taken), the room, and the largest file it may send.
    Welcome {
        /// The member's name in the room.
        name: &'a str,
        /// The room.
        room: &'a str,
        /// The largest file accepted, in bytes.
        max_file_bytes: usize,
    },
    /// To a member that just joined (after the welcome and the history): everyone in the room,
    /// in the order they joined. Later changes come as `join` and `leave` events.
    Presence {
        /// Member names.
        users: Vec<&'a str>,
    },
    /// Someone joined.
    Join {
        /// Their name.
        name: &'a str,
    },
    /// Someone left.
    Leave {
        /// Their name.
        name: &'a str,
    },
    /// A text message.
    Message {
        /// The sender.
        name: &'a str,
        /// The text.
        text: &'a str,
        /// When the server received it, milliseconds since the Unix epoch.
        ts: u64,
        /// Its place in the room: one more than the message before it, the same on every node.
        offset: u64,
        /// Present (`true`) on the first message replayed for a `since` the room's history no
        /// longer reaches: the messages between `since` and this one are lost.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        gap: bool,
    },
    /// Announces the binary message that follows it.
    File {
        /// The file name.
        name: &'a str,
        /// Its media type.
        mime: &'a str,
        /// Its size in bytes.
        size: usize,
        /// The sender.
        from: &'a str,
        /// When the server received it, milliseconds since the Unix epoch.
        ts: u64,
    },
    /// The answer to a client's `ping`, with the same `t`.
    Pong {
        /// The client's timestamp, echoed unchanged.
        t: &'a serde_json::Number,
    },
    /// A request was refused; the connection stays open.
    Error {
        /// A stable machine-readable code (`bad_json`, `invalid_name`, `file_too_large` …).
        code: &'a str,
        /// A human-readable explanation.
        message: &'a str,
    },
}

/// What a joining member hands to the room.
#[derive(Debug)]
pub struct Joiner {
    /// The session's unique id.
    pub id: u64,
    /// The name asked for (already validated).
    pub name: String,
    /// The member's outgoing queue (limits: [`MEMBER_QUEUE_LEN`] entries and
    /// [`RoomSettings::max_queued_bytes`]); the room drops the member through it when it is too
    /// slow.
    pub queue: Arc<OutboundQueue<Outgoing>>,
    /// The offset of the first message the member wants (it saw those before); `None`: the
    /// room's last messages, as history.
    pub since: Option<u64>,
}

/// A request from a session to its room.
#[derive(Debug)]
pub enum Command {
    /// Add a member.
    Join(Joiner),
    /// Broadcast a text message from member `id` to everyone (the sender included).
    Message {
        /// The sender.
        id: u64,
        /// The text (validated).
        text: String,
    },
    /// Broadcast a file from member `id` to everyone else: a `file` event, then the bytes.
    File {
        /// The sender.
        id: u64,
        /// The file name (sanitized).
        name: String,
        /// Its media type (sanitized).
        mime: String,
        /// The contents.
        data: Bytes,
    },
    /// Remove member `id` (it disconnected).
    Leave {
        /// The member.
        id: u64,
    },
    /// A message replayed from the topic for member `id`, being caught up (from
    /// [`catch_up`]).
    Replay {
        /// The member.
        id: u64,
        /// The message's offset.
        offset: u64,
        /// Its `message` event.
        frame: Outgoing,
    },
    /// The replay for member `id` ended before it met the live messages.
    CatchUpEnded {
        /// The member.
        id: u64,
    },
}

/// Settings shared by every room.
#[derive(Debug, Clone, Copy)]
pub struct RoomSettings {
    /// The largest file a member may send.
    pub max_file_bytes: usize,
    /// How many text messages a room keeps for members who join later.
    pub history: usize,
    /// The most bytes a member's queue may hold before the member counts as too slow.
    pub max_queued_bytes: usize,
}

struct RoomEntry {
    inbox: mpsc::Sender<Command>,
    handles: usize,
}

/// Every room with at least one member.
pub struct Rooms {
    rooms: Mutex<HashMap<String, RoomEntry>>,
    settings: RoomSettings,
    metrics: Arc<Metrics>,
    /// The broker the rooms span nodes through (none with `--stomp off`).
    bridge: Option<Arc<Bridge>>,
}

impl std::fmt::Debug for Rooms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rooms")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Rooms {
    /// An empty registry.
    pub fn new(settings: RoomSettings, metrics: Arc<Metrics>) -> Self {
        Rooms {
            rooms: Mutex::new(HashMap::new()),
            settings,
            metrics,
            bridge: None,
        }
    }

    /// The same rooms, carried through `broker` (to every node sharing it). Files past
    /// [`bridge::MAX_BRIDGED_FILE_BYTES`] stay on the sender's node.
    pub fn through(self, broker: Arc<Stomp>) -> Self {
        Rooms {
            bridge: Some(Arc::new(Bridge::new(broker))),
            ..self
        }
    }

    /// The settings every room uses.
    pub fn settings(&self) -> RoomSettings {
        self.settings
    }

    /// A handle on room `name`, creating the room (and its task) if it has no members.
    pub fn enter(self: &Arc<Self>, name: &str) -> RoomHandle {
        let mut rooms = self.rooms.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = rooms.entry(name.to_owned()).or_insert_with(|| {
            let (inbox, rx) = mpsc::channel(ROOM_INBOX_LEN);
            let room = task::Room::new(
                name,
                self.settings,
                self.metrics.clone(),
                self.bridge.clone(),
                inbox.downgrade(),
            );
            tokio::spawn(room.run(rx));
            self.metrics.chat_rooms_add(1);
            info!(room = %Escaped(name), "room created");
            RoomEntry { inbox, handles: 0 }
        });
        entry.handles += 1;
        self.metrics.chat_members_add(1);
        RoomHandle {
            rooms: self.clone(),
            name: name.to_owned(),
            inbox: entry.inbox.clone(),
        }
    }

    fn release(&self, name: &str) {
        let mut rooms = self.rooms.lock().unwrap_or_else(PoisonError::into_inner);
        self.metrics.chat_members_add(-1);
        if let Some(entry) = rooms.get_mut(name) {
            entry.handles = entry.handles.saturating_sub(1);
            if entry.handles == 0 {
                rooms.remove(name);
                self.metrics.chat_rooms_add(-1);
                info!(room = %Escaped(name), "room closed");
            }
        }
    }
}

/// A session's place in a room: send it commands; dropping it gives the place up.
#[derive(Debug)]
pub struct RoomHandle {
    rooms: Arc<Rooms>,
    name: String,
    inbox: mpsc::Sender<Command>,
}

impl RoomHandle {
    /// Send the room a command; `false` if the room is gone (it never is while a handle lives).
    pub async fn send(&self, cmd: Command) -> bool {
        self.inbox.send(cmd).await.is_ok()
    }
}

impl Drop for RoomHandle {
    fn drop(&mut self) {
        self.rooms.release(&self.name);
    }
}
