//! Catching a member up: the messages from its `since` that this node's room no longer holds (or
//! never saw: the room started after them, on this node or after a failover), read from the
//! room's message topic.
//!
//! Where it sits in the flow: a member joins with `since` older than the room's
//! [`super::history::History`]; the room task ([`super::task`]) spawns [`spawn`], which
//! subscribes to the topic at `offset=since` and hands each message to the room as a
//! [`Command::Replay`]. Meanwhile the room keeps the live messages for that member aside (at most
//! [`CATCH_UP_BUFFER`]); as soon as the two streams meet (the replay reaches the first message
//! set aside, or a live message the replay already delivered) the room delivers what it set
//! aside past the replay, drops the catch-up, and the member is live: every offset from `since`
//! once, in order. If the topic no longer holds `since`, the replay starts with the oldest
//! message it holds, marked `gap: true`. If the subscription fails or ends, the room gives the
//! member what it set aside (the replay is then incomplete).
//!
//! Bounds: what a catch-up replays is at most the topic's history (`--topic-history`
//! messages and bytes); it is queued for the member without counting against its queue limits.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use super::bridge::{Bridge, Start, read_line};
use super::{Command, Outgoing, ServerEvent};
use wsx_broker::Escaped;

/// The most live messages a room sets aside for a member being caught up; past it the member
/// counts as too slow.
pub const CATCH_UP_BUFFER: usize = 1024;

/// Replay `room`'s messages from offset `since` to member `id` through the room's `inbox`,
/// until the room aborts the task.
pub fn spawn(
    bridge: Arc<Bridge>,
    room: String,
    id: u64,
    since: u64,
    inbox: mpsc::Sender<Command>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut subscription = match bridge.subscribe_lines(&room, Start::Offset(since)) {
            Ok(s) => s,
            Err(e) => {
                warn!(room = %Escaped(&room), "cannot replay the room's messages: {}", Escaped(&e));
                let _ = inbox.send(Command::CatchUpEnded { id }).await;
                return;
            }
        };
        let mut first = true;
        while let Some(message) = subscription.next().await {
            let Some(fed) = read_line(&message) else {
                continue;
            };
            let Some(offset) = fed.offset else {
                // A broker without offsets cannot replay.
                break;
            };
            let gap = first && (fed.gap || offset > since);
            first = false;
            let Some(frame) = message_frame(offset, gap, &fed.line) else {
                continue;
            };
            if inbox
                .send(Command::Replay { id, offset, frame })
                .await
                .is_err()
            {
                return;
            }
        }
        debug!(room = %Escaped(&room), id, "catch-up subscription ended");
        let _ = inbox.send(Command::CatchUpEnded { id }).await;
    })
}

/// The `message` event of a topic message.
pub fn message_frame(offset: u64, gap: bool, line: &super::bridge::ChatLine) -> Option<Outgoing> {
    Outgoing::json(&ServerEvent::Message {
        name: &line.name,
        text: &line.text,
        ts: line.ts,
        offset,
        gap,
    })
}
