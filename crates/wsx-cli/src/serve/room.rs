//! Chat rooms: a registry of rooms and one task per room that fans messages out.
//!
//! A chat session (see [`super::chat`]) that joined a room sends it [`Command`]s. The room task
//! serializes each outgoing event once into a [`wsx::SharedPayload`] (compressed at most once
//! per permessage-deflate parameter set, by the first member's session that needs it) and
//! pushes the same payload into every member's
//! [`OutboundQueue`] (the slow-consumer queue of `wsx-broker`, shared with the STOMP broker):
//! the room task never waits for a member. A member whose queue would pass its limits (too many
//! entries or too many bytes) is dropped by its queue, closes with 1008 "too slow" and leaves
//! the room; the others do not notice beyond a `leave` event.
//!
//! Presence costs each join and leave O(log n), whatever the number of members: names come from
//! the room's [`names::Names`] registry, the members present are told of a change by a `join`
//! or `leave` event (the page keeps its list from those), and only a joining member gets the
//! whole list (`presence`). That list is serialized at most once per [`PRESENCE_TICK`] and
//! shared by everyone who joined meanwhile: the first joiner after a quiet tick gets it at once,
//! the others at the end of the tick.
//!
//! A room exists while it has members: [`Rooms::enter`] creates it on the first join, and the
//! last [`RoomHandle`] dropped removes it from the registry (the task then drains its last
//! commands and ends).

mod names;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info, warn};
use wsx::{Message, OpCode, SharedPayload};

use super::metrics::Metrics;
use wsx_broker::{Escaped, OutboundQueue, Refused};

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
            let room = Room {
                name: name.to_owned(),
                members: Members::default(),
                names: names::Names::default(),
                presence: None,
                awaiting_presence: Vec::new(),
                last_presence: None,
                history: VecDeque::new(),
                settings: self.settings,
                metrics: self.metrics.clone(),
            };
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

struct Member {
    id: u64,
    name: String,
    queue: Arc<OutboundQueue<Outgoing>>,
}

impl Member {
    /// Queue broadcast `frames` for this member, all or none, without waiting: counted against
    /// its queue's limits (past them the queue drops the member as too slow).
    fn deliver(&self, frames: &[&Outgoing]) -> Result<(), Refused> {
        let pushed = self
            .queue
            .push_counted(frames.iter().map(|f| ((*f).clone(), f.queued_len())));
        self.queue.wake();
        pushed
    }
}

/// A room's members, in the order they joined, found by id in O(log n).
#[derive(Default)]
struct Members {
    /// By order of joining.
    by_order: BTreeMap<u64, Member>,
    /// Member id → order of joining.
    order_of: HashMap<u64, u64>,
    next_order: u64,
}

impl Members {
    fn push(&mut self, member: Member) {
        let order = self.next_order;
        self.next_order += 1;
        self.order_of.insert(member.id, order);
        self.by_order.insert(order, member);
    }

    fn get(&self, id: u64) -> Option<&Member> {
        self.by_order.get(self.order_of.get(&id)?)
    }

    fn remove(&mut self, id: u64) -> Option<Member> {
        let order = self.order_of.remove(&id)?;
        self.by_order.remove(&order)
    }

    fn iter(&self) -> impl Iterator<Item = &Member> {
        self.by_order.values()
    }
}

struct Room {
    name: String,
    members: Members,
    /// The names of the members.
    names: names::Names,
    /// The presence list, encoded, while it is current.
    presence: Option<Outgoing>,
    /// Members that joined and wait for the presence list.
    awaiting_presence: Vec<u64>,
    /// When the presence list was last sent.
    last_presence: Option<Instant>,
    /// The last text messages, encoded, for members who join later.
    history: VecDeque<Outgoing>,
    settings: RoomSettings,
    metrics: Arc<Metrics>,
}

impl Room {
    async fn run(mut self, mut inbox: mpsc::Receiver<Command>) {
        loop {
            let presence_due = self.presence_due();
            let cmd = tokio::select! {
                cmd = inbox.recv() => match cmd {
                    Some(cmd) => cmd,
                    None => break,
                },
                () = sleep_until(presence_due) => {
                    self.send_presence();
                    continue;
                }
            };
            match cmd {
                Command::Join(joiner) => self.join(joiner),
                Command::Message { id, text } => self.message(id, &text),
                Command::File {
                    id,
                    name,
                    mime,
                    data,
                } => self.file(id, &name, &mime, data),
                Command::Leave { id } => {
                    if let Some(member) = self.remove_member(id) {
                        info!(room = %Escaped(&self.name), name = %Escaped(&member.name), "left");
                        self.announce_departures(vec![member.name]);
                    }
                }
            }
            if self.presence_due().is_some_and(|at| at <= Instant::now()) {
                self.send_presence();
            }
        }
        debug!(room = %Escaped(&self.name), "room task ended");
    }

    fn join(&mut self, joiner: Joiner) {
        let name = self.names.claim(&joiner.name);
        info!(room = %Escaped(&self.name), name = %Escaped(&name), "joined");
        let member = Member {
            id: joiner.id,
            name,
            queue: joiner.queue,
        };
        let welcome = Outgoing::json(&ServerEvent::Welcome {
            name: &member.name,
            room: &self.name,
            max_file_bytes: self.settings.max_file_bytes,
        });
        let joined = Outgoing::json(&ServerEvent::Join { name: &member.name });
        let mut frames: Vec<&Outgoing> = welcome.iter().collect();
        frames.extend(self.history.iter());
        // The welcome and the history are bounded by the history's length: not counted.
        let ok = frames
            .into_iter()
            .all(|f| member.queue.push(f.clone(), f.queued_len()).is_ok());
        member.queue.wake();
        if !ok {
            // Its session already ended; nothing to announce.
            self.names.release(&member.name);
            return;
        }
        let mut gone = Vec::new();
        if let Some(joined) = &joined {
            self.broadcast(&[joined], None, &mut gone);
        }
        self.awaiting_presence.push(member.id);
        self.members.push(member);
        self.presence = None;
        self.drop_members(gone);
    }

    /// Remove member `id`, releasing its name.
    fn remove_member(&mut self, id: u64) -> Option<Member> {
        let member = self.members.remove(id)?;
        self.names.release(&member.name);
        self.presence = None;
        Some(member)
    }

    /// When the members waiting for the presence list get it: at once after a quiet tick,
    /// else a tick after the last list. `None` when nobody waits.
    fn presence_due(&self) -> Option<Instant> {
        if self.awaiting_presence.is_empty() {
            return None;
        }
        Some(match self.last_presence {
            Some(last) => last + PRESENCE_TICK,
            None => Instant::now(),
        })
    }

    /// Send the presence list (serialized again only if it changed) to the members waiting
    /// for it.
    fn send_presence(&mut self) {
        self.last_presence = Some(Instant::now());
        let waiting = std::mem::take(&mut self.awaiting_presence);
        if self.presence.is_none() {
            self.presence = Outgoing::json(&ServerEvent::Presence {
                users: self.members.iter().map(|m| m.name.as_str()).collect(),
            });
        }
        let Some(presence) = &self.presence else {
            return;
        };
        let mut gone = Vec::new();
        for id in waiting {
            let Some(member) = self.members.get(id) else {
                continue;
            };
            match member.deliver(&[presence]) {
                Ok(()) => {}
                Err(Refused::TooSlow) => gone.push((id, true)),
                Err(Refused::Gone) => gone.push((id, false)),
            }
        }
        self.drop_members(gone);
    }

    fn message(&mut self, id: u64, text: &str) {
        let Some(sender) = self.members.get(id) else {
            return;
        };
        let Some(frame) = Outgoing::json(&ServerEvent::Message {
            name: &sender.name,
            text,
            ts: now_millis(),
        }) else {
            return;
        };
        if self.settings.history > 0 {
            if self.history.len() >= self.settings.history {
                self.history.pop_front();
            }
            self.history.push_back(frame.clone());
        }
        let mut gone = Vec::new();
        self.broadcast(&[&frame], None, &mut gone);
        self.drop_members(gone);
    }

    fn file(&mut self, id: u64, name: &str, mime: &str, data: Bytes) {
        let Some(sender) = self.members.get(id) else {
            return;
        };
        let header = Outgoing::json(&ServerEvent::File {
            name,
            mime,
            size: data.len(),
            from: &sender.name,
            ts: now_millis(),
        });
        let body = Outgoing::encode(&Message::Binary(data));
        let (Some(header), Some(body)) = (header, body) else {
            return;
        };
        debug!(room = %Escaped(&self.name), from = %Escaped(&sender.name), name = %Escaped(name), mime = %Escaped(mime), size = body.payload.len(), "file");
        let mut gone = Vec::new();
        self.broadcast(&[&header, &body], Some(id), &mut gone);
        self.drop_members(gone);
    }

    /// Queue `frames` to every member but `except`; members that cannot take them are added
    /// to `gone` (with whether they were too slow).
    fn broadcast(&self, frames: &[&Outgoing], except: Option<u64>, gone: &mut Vec<(u64, bool)>) {
        for m in self.members.iter() {
            if Some(m.id) == except {
                continue;
            }
            match m.deliver(frames) {
                Ok(()) => {}
                Err(Refused::TooSlow) => gone.push((m.id, true)),
                Err(Refused::Gone) => gone.push((m.id, false)),
            }
        }
    }

    /// Remove the members in `gone` (their queues already told the slow ones to close), and announce their
    /// departure to the others (which may find more members gone).
    fn drop_members(&mut self, mut gone: Vec<(u64, bool)>) {
        while !gone.is_empty() {
            let mut names = Vec::new();
            for (id, too_slow) in gone.drain(..) {
                let Some(member) = self.remove_member(id) else {
                    continue;
                };
                if too_slow {
                    warn!(room = %Escaped(&self.name), name = %Escaped(&member.name), "member too slow: disconnecting");
                    self.metrics.chat_slow_disconnect();
                }
                names.push(member.name);
            }
            gone = self.departures(names);
        }
    }

    fn announce_departures(&mut self, names: Vec<String>) {
        let gone = self.departures(names);
        self.drop_members(gone);
    }

    /// Broadcast a `leave` for each name; returns who could not take them.
    fn departures(&self, names: Vec<String>) -> Vec<(u64, bool)> {
        let mut gone = Vec::new();
        if names.is_empty() {
            return gone;
        }
        for name in &names {
            if let Some(leave) = Outgoing::json(&ServerEvent::Leave { name }) {
                self.broadcast(&[&leave], None, &mut gone);
            }
        }
        gone.sort_unstable_by_key(|(id, _)| *id);
        gone.dedup_by_key(|(id, _)| *id);
        gone
    }
}

/// Sleep until `at`, or forever.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
