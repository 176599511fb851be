//! The task of one room on this node: its members, their names, its history, what it hears
//! from the broker, and the fan-out to the members' queues (see the module docs of
//! [`super`] for the whole flow).
//!
//! Each member has the offset of the next message it is owed (`next`): a message goes to it
//! only from that offset on, so that nothing reaches it twice whichever way it came (history,
//! replay, live). A member being caught up ([`super::catch_up`]) gets its replay first and the
//! live messages meanwhile are set aside for it, until the two meet.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{debug, info, warn};
use wsx::Message;
use wsx_broker::{Escaped, InProcessSubscription, OutboundQueue, ReceivedMessage, Refused};

use super::bridge::{
    Bridge, ChatLine, FedLine, FileMeta, LiveEvent, MAX_BRIDGED_FILE_BYTES, Start, read_line,
};
use super::catch_up::{self, CATCH_UP_BUFFER, message_frame};
use super::history::History;
use super::names::Names;
use super::remote_presence::{Changes, PRESENCE_REFRESH, RemotePresence};
use super::{Command, Joiner, Outgoing, PRESENCE_TICK, RoomSettings, ServerEvent};
use crate::serve::metrics::Metrics;

/// How long a room waits before subscribing again when a subscription of its ended.
const RESUBSCRIBE_DELAY: std::time::Duration = std::time::Duration::from_secs(1);
/// Counted entries waiting in a member's queue from which it gets no more `join` and `leave`
/// events, but the whole list once under it again ([`Room::announce`]).
const PRESENCE_BACKLOG: usize = super::MEMBER_QUEUE_LEN / 2;

struct Member {
    id: u64,
    name: String,
    queue: Arc<OutboundQueue<Outgoing>>,
    /// The offset of the next message the member is owed.
    next: u64,
    /// While the member is being caught up: the replay task and the live messages set aside.
    catch_up: Option<CatchUp>,
    /// Whether presence changes were held back from it (a backlog): it waits for the whole
    /// list instead ([`Room::announce`]).
    presence_stale: bool,
}

struct CatchUp {
    task: JoinHandle<()>,
    /// Live messages that came meanwhile, by offset, oldest first.
    set_aside: VecDeque<(u64, Outgoing)>,
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

    /// Queue a message the room bounds itself (history, replay), whatever the queue's limits.
    fn deliver_bounded(&self, frame: &Outgoing) -> Result<(), Refused> {
        let pushed = self.queue.push(frame.clone(), frame.queued_len());
        self.queue.wake();
        pushed
    }

    /// Give a live message at `offset` to the member, or set it aside while it is caught up.
    fn offer(&mut self, offset: u64, frame: &Outgoing) -> Result<(), Refused> {
        let Some(catch_up) = &mut self.catch_up else {
            if offset >= self.next {
                self.deliver(&[frame])?;
                self.next = offset + 1;
            }
            return Ok(());
        };
        if offset < self.next {
            // The replay delivered it already: the two streams met.
            return self.finish_catch_up();
        }
        if offset == self.next {
            self.deliver_bounded(frame)?;
            self.next = offset + 1;
            return self.finish_catch_up();
        }
        catch_up.set_aside.push_back((offset, frame.clone()));
        if catch_up.set_aside.len() > CATCH_UP_BUFFER {
            self.queue.drop_consumer();
            self.queue.wake();
            return Err(Refused::TooSlow);
        }
        Ok(())
    }

    /// A message replayed from the topic for this member.
    fn replayed(&mut self, offset: u64, frame: &Outgoing) -> Result<(), Refused> {
        let Some(catch_up) = &self.catch_up else {
            return Ok(());
        };
        if offset < self.next {
            return Ok(());
        }
        self.deliver_bounded(frame)?;
        self.next = offset + 1;
        if catch_up
            .set_aside
            .front()
            .is_some_and(|(first, _)| *first <= self.next)
        {
            return self.finish_catch_up();
        }
        Ok(())
    }

    /// End the catch-up: deliver what was set aside past the replay; the member is live.
    fn finish_catch_up(&mut self) -> Result<(), Refused> {
        let Some(catch_up) = self.catch_up.take() else {
            return Ok(());
        };
        catch_up.task.abort();
        for (offset, frame) in &catch_up.set_aside {
            if *offset >= self.next {
                self.deliver_bounded(frame)?;
                self.next = offset + 1;
            }
        }
        Ok(())
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        if let Some(catch_up) = &self.catch_up {
            catch_up.task.abort();
        }
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

    fn get_mut(&mut self, id: u64) -> Option<&mut Member> {
        self.by_order.get_mut(self.order_of.get(&id)?)
    }

    fn remove(&mut self, id: u64) -> Option<Member> {
        let order = self.order_of.remove(&id)?;
        self.by_order.remove(&order)
    }

    fn iter(&self) -> impl Iterator<Item = &Member> {
        self.by_order.values()
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = &mut Member> {
        self.by_order.values_mut()
    }

    fn names(&self) -> Vec<String> {
        self.iter().map(|m| m.name.clone()).collect()
    }
}

/// Who could not take what was queued for them: member id, and whether it was too slow.
type Gone = Vec<(u64, bool)>;

fn record(gone: &mut Gone, id: u64, result: Result<(), Refused>) {
    match result {
        Ok(()) => {}
        Err(Refused::TooSlow) => gone.push((id, true)),
        Err(Refused::Gone) => gone.push((id, false)),
    }
}

/// One room on this node.
pub struct Room {
    name: String,
    members: Members,
    /// The names of this node's members.
    names: Names,
    /// The members of the other nodes.
    remote: RemotePresence,
    /// The presence list, encoded, while it is current.
    presence: Option<Outgoing>,
    /// Members that joined and wait for the presence list.
    awaiting_presence: Vec<u64>,
    /// When the presence list was last sent.
    last_presence: Option<Instant>,
    /// The last text messages, by offset.
    history: History,
    /// The broker the room spans nodes through.
    bridge: Option<Arc<Bridge>>,
    /// The room's own inbox, for the catch-up tasks (weak: the room ends once its handles are
    /// gone).
    inbox: mpsc::WeakSender<Command>,
    settings: RoomSettings,
    metrics: Arc<Metrics>,
}

impl Room {
    /// Room `name`, answering to `inbox`.
    pub fn new(
        name: &str,
        settings: RoomSettings,
        metrics: Arc<Metrics>,
        bridge: Option<Arc<Bridge>>,
        inbox: mpsc::WeakSender<Command>,
    ) -> Self {
        Room {
            name: name.to_owned(),
            members: Members::default(),
            names: Names::default(),
            remote: RemotePresence::default(),
            presence: None,
            awaiting_presence: Vec::new(),
            last_presence: None,
            history: History::new(settings.history),
            bridge,
            inbox,
            settings,
            metrics,
        }
    }

    /// Serve the room until its last handle is gone.
    pub async fn run(mut self, mut inbox: mpsc::Receiver<Command>) {
        let mut lines = self.subscribe_lines();
        let mut live = self.subscribe_live();
        self.publish_live(&LiveEvent::Hello);
        let mut refresh =
            tokio::time::interval_at(Instant::now() + PRESENCE_REFRESH, PRESENCE_REFRESH);
        refresh.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut resubscribe_at: Option<Instant> = None;
        let bridged = self.bridge.is_some();
        loop {
            let presence_due = self.presence_due();
            tokio::select! {
                cmd = inbox.recv() => match cmd {
                    Some(cmd) => self.command(cmd),
                    None => break,
                },
                () = sleep_until(presence_due) => self.send_presence(),
                message = next_message(&mut lines) => match message {
                    Some(message) => self.on_line(&message),
                    None => {
                        lines = None;
                        resubscribe_at.get_or_insert(Instant::now() + RESUBSCRIBE_DELAY);
                    }
                },
                message = next_message(&mut live) => match message {
                    Some(message) => self.on_live(&message),
                    None => {
                        live = None;
                        resubscribe_at.get_or_insert(Instant::now() + RESUBSCRIBE_DELAY);
                    }
                },
                () = sleep_until(resubscribe_at) => {
                    resubscribe_at = None;
                    if lines.is_none() {
                        lines = self.subscribe_lines();
                    }
                    if live.is_none() {
                        live = self.subscribe_live();
                        self.publish_live(&LiveEvent::Hello);
                    }
                }
                _ = refresh.tick(), if bridged => self.refresh_presence(),
            }
            if self.presence_due().is_some_and(|at| at <= Instant::now()) {
                self.send_presence();
            }
        }
        debug!(room = %Escaped(&self.name), "room task ended");
    }

    /// Subscribe to the room's message topic: from the message after the last one seen, or,
    /// when the room starts on this node, with the topic's newest `--history` messages (sent
    /// before this node had the room, or on another node), so that a member joining here
    /// without `since` gets the same recent messages as on a node that had the room all along.
    fn subscribe_lines(&self) -> Option<InProcessSubscription> {
        let bridge = self.bridge.as_ref()?;
        let start = match self.history.last() {
            Some(last) => Start::Offset(last + 1),
            None if self.settings.history > 0 => Start::Latest(self.settings.history),
            None => Start::Next,
        };
        bridge
            .subscribe_lines(&self.name, start)
            .inspect_err(|e| warn!(room = %Escaped(&self.name), "cannot subscribe to the room's messages: {}", Escaped(e)))
            .ok()
    }

    fn subscribe_live(&self) -> Option<InProcessSubscription> {
        let bridge = self.bridge.as_ref()?;
        bridge
            .subscribe_live(&self.name)
            .inspect_err(|e| warn!(room = %Escaped(&self.name), "cannot subscribe to the room's live events: {}", Escaped(e)))
            .ok()
    }

    fn publish_live(&self, event: &LiveEvent) {
        if let Some(bridge) = &self.bridge
            && let Err(e) = bridge.publish_live(&self.name, event)
        {
            warn!(room = %Escaped(&self.name), "cannot publish to the other nodes: {}", Escaped(&e));
        }
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Join(joiner) => self.join(joiner),
            Command::Message { id, text } => self.message(id, text),
            Command::File {
                id,
                name,
                mime,
                data,
            } => self.file(id, name, mime, data),
            Command::Leave { id } => {
                if let Some(member) = self.remove_member(id) {
                    info!(room = %Escaped(&self.name), name = %Escaped(&member.name), "left");
                    self.local_departures(vec![member.name.clone()]);
                }
            }
            Command::Replay { id, offset, frame } => {
                let mut gone = Gone::new();
                if let Some(member) = self.members.get_mut(id) {
                    record(&mut gone, id, member.replayed(offset, &frame));
                }
                self.drop_members(gone);
            }
            Command::CatchUpEnded { id } => {
                let mut gone = Gone::new();
                if let Some(member) = self.members.get_mut(id) {
                    record(&mut gone, id, member.finish_catch_up());
                }
                self.drop_members(gone);
            }
        }
    }

    fn join(&mut self, joiner: Joiner) {
        let remote: std::collections::HashSet<String> =
            self.remote.names().map(str::to_ascii_lowercase).collect();
        let name = self
            .names
            .claim_avoiding(&joiner.name, |n| remote.contains(n));
        info!(room = %Escaped(&self.name), name = %Escaped(&name), since = ?joiner.since, "joined");
        let mut member = Member {
            id: joiner.id,
            name,
            queue: joiner.queue,
            next: self.history.next_offset(),
            catch_up: None,
            presence_stale: false,
        };
        let welcome = Outgoing::json(&ServerEvent::Welcome {
            name: &member.name,
            room: &self.name,
            max_file_bytes: self.settings.max_file_bytes,
        });
        let mut frames: Vec<&Outgoing> = welcome.iter().collect();
        let mut catch_up_from = None;
        match joiner.since {
            None => frames.extend(self.history.iter().map(|(_, f)| f)),
            Some(since) if self.history.covers(since) || self.bridge.is_none() => {
                frames.extend(self.history.since(since).map(|(_, f)| f));
                // A `since` past the last message (the topic started over: a memory broker
                // restarted) counts as the next one.
                member.next = since.min(self.history.next_offset());
            }
            Some(since) => catch_up_from = Some(since),
        }
        // The welcome and the history are bounded by the history's length: not counted.
        let ok = frames
            .into_iter()
            .all(|f| member.deliver_bounded(f).is_ok());
        if !ok {
            // Its session already ended; nothing to announce.
            self.names.release(&member.name);
            return;
        }
        if let Some(since) = catch_up_from {
            member.next = since;
            if let (Some(bridge), Some(inbox)) = (&self.bridge, self.inbox.upgrade()) {
                member.catch_up = Some(CatchUp {
                    task: catch_up::spawn(
                        bridge.clone(),
                        self.name.clone(),
                        member.id,
                        since,
                        inbox,
                    ),
                    set_aside: self.history.iter().cloned().collect(),
                });
            }
        }
        let joined = Outgoing::json(&ServerEvent::Join { name: &member.name });
        let mut gone = Gone::new();
        if let Some(joined) = &joined {
            self.announce(joined, &mut gone);
        }
        self.publish_live(&LiveEvent::Join(member.name.clone()));
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
                users: self
                    .members
                    .iter()
                    .map(|m| m.name.as_str())
                    .chain(self.remote.names())
                    .collect(),
            });
        }
        let Some(presence) = &self.presence else {
            return;
        };
        let mut gone = Gone::new();
        let mut still_waiting = Vec::new();
        let mut waiting = waiting;
        waiting.sort_unstable();
        waiting.dedup();
        for id in waiting {
            let Some(member) = self.members.get_mut(id) else {
                continue;
            };
            if member.presence_stale && member.queue.counted_len() >= PRESENCE_BACKLOG {
                // Not yet: the list would only add to the backlog.
                still_waiting.push(id);
                continue;
            }
            member.presence_stale = false;
            record(&mut gone, id, member.deliver(&[presence]));
        }
        self.awaiting_presence = still_waiting;
        self.drop_members(gone);
    }

    /// A member's text message: to the topic (every node, this one included, broadcasts it
    /// when it comes back), or straight to the members without a broker.
    fn message(&mut self, id: u64, text: String) {
        let Some(sender) = self.members.get(id) else {
            return;
        };
        let line = ChatLine {
            name: sender.name.clone(),
            text,
            ts: now_millis(),
        };
        let Some(bridge) = &self.bridge else {
            let offset = self.history.next_offset();
            self.on_fed_line(FedLine {
                offset: Some(offset),
                gap: false,
                line,
            });
            return;
        };
        if let Err(e) = bridge.publish_line(&self.name, &line) {
            warn!(room = %Escaped(&self.name), "message not published: {}", Escaped(&e));
            let refused = Outgoing::json(&ServerEvent::Error {
                code: "not_delivered",
                message: "the message could not be delivered; try again later",
            });
            let mut gone = Gone::new();
            if let Some(refused) = &refused {
                record(&mut gone, id, sender.deliver(&[refused]));
            }
            self.drop_members(gone);
        }
    }

    /// A message of the room's topic (any node's).
    fn on_line(&mut self, message: &ReceivedMessage) {
        if let Some(fed) = read_line(message) {
            self.on_fed_line(fed);
        }
    }

    fn on_fed_line(&mut self, fed: FedLine) {
        let offset = fed.offset.unwrap_or_else(|| self.history.next_offset());
        let Some(frame) = message_frame(offset, false, &fed.line) else {
            return;
        };
        if !self.history.push(offset, &frame) {
            return;
        }
        let mut gone = Gone::new();
        for member in self.members.iter_mut() {
            let id = member.id;
            record(&mut gone, id, member.offer(offset, &frame));
        }
        self.drop_members(gone);
    }

    fn file(&mut self, id: u64, name: String, mime: String, data: Bytes) {
        let Some(sender) = self.members.get(id) else {
            return;
        };
        let meta = FileMeta {
            name,
            mime,
            from: sender.name.clone(),
            ts: now_millis(),
        };
        debug!(room = %Escaped(&self.name), from = %Escaped(&meta.from), name = %Escaped(&meta.name), mime = %Escaped(&meta.mime), size = data.len(), "file");
        if self.bridge.is_some() && data.len() <= MAX_BRIDGED_FILE_BYTES {
            self.publish_live(&LiveEvent::File(meta.clone(), data.clone()));
        }
        self.broadcast_file(&meta, data, Some(id));
    }

    /// Broadcast a file to every member but `except`: a `file` event, then the bytes.
    fn broadcast_file(&mut self, meta: &FileMeta, data: Bytes, except: Option<u64>) {
        let header = Outgoing::json(&ServerEvent::File {
            name: &meta.name,
            mime: &meta.mime,
            size: data.len(),
            from: &meta.from,
            ts: meta.ts,
        });
        let body = Outgoing::encode(&Message::Binary(data));
        let (Some(header), Some(body)) = (header, body) else {
            return;
        };
        let mut gone = Gone::new();
        self.broadcast(&[&header, &body], except, &mut gone);
        self.drop_members(gone);
    }

    /// An event of another node.
    fn on_live(&mut self, message: &ReceivedMessage) {
        let Some(bridge) = &self.bridge else {
            return;
        };
        let Some((node, event)) = bridge.read_live(message) else {
            return;
        };
        let now = Instant::now();
        let changes = match event {
            LiveEvent::Hello => {
                self.publish_live(&LiveEvent::Here(self.members.names()));
                return;
            }
            LiveEvent::Here(names) => self.remote.here(&node, names, now),
            LiveEvent::Join(name) => self.remote.join(&node, name, now),
            LiveEvent::Leave(name) => self.remote.leave(&node, &name, now),
            LiveEvent::File(meta, data) => {
                self.broadcast_file(&meta, data, None);
                return;
            }
        };
        self.remote_changes(changes);
    }

    /// Announce this node's members to the others, and forget the nodes gone silent.
    fn refresh_presence(&mut self) {
        self.publish_live(&LiveEvent::Here(self.members.names()));
        let changes = self.remote.expire(Instant::now());
        self.remote_changes(changes);
    }

    /// Tell the members what changed on the other nodes.
    fn remote_changes(&mut self, changes: Changes) {
        if changes.joined.is_empty() && changes.left.is_empty() {
            return;
        }
        self.presence = None;
        let mut gone = Gone::new();
        for name in &changes.joined {
            if let Some(joined) = Outgoing::json(&ServerEvent::Join { name }) {
                self.announce(&joined, &mut gone);
            }
        }
        gone.extend(self.leaves(&changes.left));
        self.drop_members(gone);
    }

    /// Queue `frames` to every member but `except`; members that cannot take them are added
    /// to `gone` (with whether they were too slow).
    fn broadcast(&self, frames: &[&Outgoing], except: Option<u64>, gone: &mut Gone) {
        for m in self.members.iter() {
            if Some(m.id) != except {
                record(gone, m.id, m.deliver(frames));
            }
        }
    }

    /// Queue a presence change (`join`, `leave`) to every member. A member with a backlog
    /// ([`PRESENCE_BACKLOG`] counted entries waiting) gets no more of them: it is marked stale
    /// and gets the whole list (`presence`) instead, once its backlog is under the mark again.
    /// So a join storm costs a member that reads slowly one list, not one event per joiner
    /// (which would fill its queue and disconnect it as too slow, whose `leave` would then
    /// fill the others').
    fn announce(&mut self, frame: &Outgoing, gone: &mut Gone) {
        let mut stale = Vec::new();
        for m in self.members.iter_mut() {
            if m.presence_stale {
                continue;
            }
            if m.queue.counted_len() >= PRESENCE_BACKLOG {
                m.presence_stale = true;
                stale.push(m.id);
                continue;
            }
            record(gone, m.id, m.deliver(&[frame]));
        }
        self.awaiting_presence.extend(stale);
    }

    /// Remove the members in `gone` (their queues already told the slow ones to close), and
    /// announce their departure (which may find more members gone).
    fn drop_members(&mut self, mut gone: Gone) {
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
                names.push(member.name.clone());
            }
            for name in &names {
                self.publish_live(&LiveEvent::Leave(name.clone()));
            }
            gone = self.leaves(&names);
        }
    }

    /// This node's members `names` left: tell the others, here and on the other nodes.
    fn local_departures(&mut self, names: Vec<String>) {
        for name in &names {
            self.publish_live(&LiveEvent::Leave(name.clone()));
        }
        let gone = self.leaves(&names);
        self.drop_members(gone);
    }

    /// Announce a `leave` for each name; returns who could not take them.
    fn leaves(&mut self, names: &[String]) -> Gone {
        let mut gone = Gone::new();
        for name in names {
            if let Some(leave) = Outgoing::json(&ServerEvent::Leave { name }) {
                self.announce(&leave, &mut gone);
            }
        }
        gone.sort_unstable_by_key(|(id, _)| *id);
        gone.dedup_by_key(|(id, _)| *id);
        gone
    }
}

/// The next message of a subscription, or never without one.
async fn next_message(subscription: &mut Option<InProcessSubscription>) -> Option<ReceivedMessage> {
    match subscription {
        Some(s) => s.next().await,
        None => std::future::pending().await,
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

#[cfg(test)]
mod tests {
    use super::*;
    use wsx_broker::QueueLimits;

    fn queue() -> Arc<OutboundQueue<Outgoing>> {
        Arc::new(OutboundQueue::new(QueueLimits {
            items: super::super::MEMBER_QUEUE_LEN,
            bytes: 256 * 1024,
        }))
    }

    fn join(room: &mut Room, id: u64, name: &str, queue: &Arc<OutboundQueue<Outgoing>>) {
        room.command(Command::Join(Joiner {
            id,
            name: name.to_owned(),
            queue: queue.clone(),
            since: None,
        }));
    }

    /// The events waiting in `queue`, as JSON.
    fn drain(queue: &OutboundQueue<Outgoing>) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        queue.drain_into(usize::MAX, &mut out);
        out.iter()
            .map(|o| serde_json::from_slice(o.payload.bytes()).expect("JSON"))
            .collect()
    }

    #[test]
    fn a_join_storm_holds_back_presence_events_from_a_member_that_does_not_drain() {
        const JOINERS: u64 = 300;
        let (inbox, _keep) = mpsc::channel(1);
        let settings = RoomSettings {
            max_file_bytes: 1 << 20,
            history: 0,
            max_queued_bytes: 256 * 1024,
        };
        let mut room = Room::new(
            "storm",
            settings,
            Arc::new(Metrics::default()),
            None,
            inbox.downgrade(),
        );
        // A member whose connection takes nothing for now: its queue only fills.
        let slow = queue();
        join(&mut room, 1, "slow", &slow);
        room.send_presence();
        assert_eq!(drain(&slow).len(), 2, "welcome and presence");

        for id in 2..=JOINERS + 1 {
            join(&mut room, id, &format!("m{id}"), &queue());
        }
        // One `join` per joiner would be 300 entries, past the queue's 256: dropped as too
        // slow. The room stops at the backlog mark instead.
        assert!(!slow.is_dropped());
        assert_eq!(slow.counted_len(), PRESENCE_BACKLOG);

        // Still backlogged: no list yet. Once drained: the whole list, once.
        room.send_presence();
        assert_eq!(slow.counted_len(), PRESENCE_BACKLOG);
        let events = drain(&slow);
        assert!(events.iter().all(|e| e["type"] == "join"), "{events:?}");
        room.send_presence();
        let events = drain(&slow);
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0]["type"], "presence");
        let users = events[0]["users"].as_array().expect("a list");
        assert_eq!(users.len() as u64, JOINERS + 1);
        // Then changes one by one again.
        room.command(Command::Leave { id: 2 });
        let events = drain(&slow);
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(
            events[0],
            serde_json::json!({"type": "leave", "name": "m2"})
        );
    }
}
