//! The reader task: the node's one connection for reading queues, whatever their number.
//!
//! The engine says which streams to read and how many entries each may take (its credit: as
//! many as its local consumers have room for) in the [`Wanted`] mailbox. The reader:
//!
//! - creates each stream's group when it starts reading it ([`scripts::CONSUME`], which also
//!   records that this node consumes the queue);
//! - blocks in one `XREADGROUP … STREAMS k1 k2 … > > …` over the streams with credit, with a
//!   `COUNT` of the smallest credit among them (`COUNT` applies per stream: no stream gets
//!   more than its credit); when a stream is stopped, or one without credit gets some, while
//!   it is blocked, it ends its own read (`CLIENT UNBLOCK`, through the writer) and reads
//!   again with the new set;
//! - every tick (a quarter of the claim timeout, at most a quarter of the empty-queue grace)
//!   records again that this node consumes each of its queues, refreshes the idle time of the
//!   entries this node holds (`XCLAIM … JUSTID`), and takes over entries idle longer than the
//!   claim timeout — those of a dead node — with `XAUTOCLAIM`, no more per stream than its
//!   credit.
//!
//! ## In a Redis Cluster
//!
//! One `XREADGROUP` may name streams of one hash slot only, and every queue has its own
//! slot: so in cluster mode the reader sends one `XREADGROUP` per stream with credit,
//! without `BLOCK`, all in one pipeline (split per slot by the connection, sent at once to
//! the primaries: still one connection per primary, whatever the number of queues). When a
//! round finds nothing new it waits [`CLUSTER_POLL`] (or for a change of credit) and reads
//! again: a queue message waits up to that long before a node with room reads it, and
//! each queue with local consumers costs its primary one cheap read per node per
//! [`CLUSTER_POLL`] while idle. `CLIENT UNBLOCK` is not needed (no read blocks).
//!
//! ## Bytes held
//!
//! Credit counts entries; the bytes the node holds (read or claimed, not yet acknowledged or
//! given back: [`crate::NodeState::hold`], [`crate::NodeState::forget`]) are bounded apart, by
//! [`Config::max_held_bytes`]. While the node holds that much, the reader neither reads nor
//! claims (the credit stays; the engine keeps delivering what it holds); the release that
//! brings it under the budget wakes the reader. Below it, the `COUNT` of a read (and of a
//! claim) is also at most the room left divided by the largest entry seen so far and by the
//! number of streams read, and at least 1: a read passes the budget by at most one entry per
//! stream read, of an entry no larger than those seen before (the first read of a node,
//! before any entry was seen, reads one per stream).
//!
//! ## Stopping a stream
//!
//! When the last local consumer of a queue leaves, the engine moves its [`Want`] to
//! [`Wanted::stopped`] and gives back what it holds itself. Entries still travel from the
//! reader to the engine meanwhile: those forwarded and not taken (its [`Inflight`]), and
//! those of a read under way. The reader forwards the entries of a read into the `Inflight`
//! of the stream as it was when the read was issued, and releases the stopped streams only
//! after: it gives back (through the writer) whatever is left in their `Inflight`, then drops
//! their `done`. The engine takes each entry out of the `Inflight` under its lock, and gives
//! back itself those of a queue without local consumers. So [`crate::RedisEngine::flushed`],
//! which waits for the `done` of the stopped streams before its writer barrier, resolves only
//! once no entry of a queue without local consumers is left pending at this node.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use redis::streams::{StreamAutoClaimReply, StreamId, StreamReadReply};
use redis::{RedisResult, Value};
use tokio::sync::watch;
use tokio::time::Instant;

use super::{
    Events, Forwarded, Incoming, Inflight, StoppedStream, StoredEntry, Want, connect,
    entry_payload, loggable, scripts,
};
use crate::{Config, HeldIds, NodeState};

/// Entries per `XREADGROUP` per stream, at most.
const MAX_READ: usize = 512;

/// In cluster mode, how long the reader waits before reading again when a read found
/// nothing new (it cannot block on streams of several slots at once).
const CLUSTER_POLL: Duration = Duration::from_millis(25);

/// Entries per `XAUTOCLAIM`, at most.
const MAX_CLAIM: usize = 100;

/// A stream to read (or claim entries of) now.
struct StreamToRead {
    /// The stream key.
    key: Arc<str>,
    /// Its `Inflight` when the read was issued.
    inflight: Inflight,
    /// Entries the engine wants of it.
    credit: usize,
}

impl StreamToRead {
    fn new(key: &Arc<str>, want: &Want) -> Self {
        StreamToRead {
            key: key.clone(),
            inflight: want.inflight.clone(),
            credit: want.credit,
        }
    }
}

/// The reader.
pub(crate) struct Reader {
    pub primary: super::Primary,
    pub config: Arc<Config>,
    pub shared: Arc<NodeState>,
    pub events: Events,
    /// The Redis client id of the reader's connection (0: none), for `CLIENT UNBLOCK`.
    pub client_id: Arc<AtomicU64>,
    /// The largest entry read or claimed so far (bytes; 0: none yet), to size reads to the
    /// room left under [`Config::max_held_bytes`].
    pub largest: AtomicUsize,
    pub shutdown: watch::Receiver<()>,
}

/// What ended a wait of the reader.
enum Woken<T> {
    Done(T),
    Changed,
    Shutdown,
}

impl Reader {
    /// Add to `pipe` the record that this node consumes stream `key` (and, with `create`, the
    /// creation of its group if missing).
    fn consume(&self, pipe: &mut redis::Pipeline, key: &str, create: bool) {
        pipe.cmd("EVAL")
            .arg(scripts::CONSUME)
            .arg(2)
            .arg(key)
            .arg(self.config.meta_key(key))
            .arg(&self.config.group)
            .arg(format!("c:{}", self.config.node_id))
            .arg(if create { "1" } else { "0" });
    }

    pub(crate) async fn run(mut self) {
        let tick = (self.config.claim_timeout / 4)
            .min(self.config.empty_queue_grace / 4)
            .max(Duration::from_millis(20));
        let block = Duration::from_millis(500)
            .min(self.config.claim_timeout / 8)
            .max(Duration::from_millis(10));
        let timeout = Some(block + Duration::from_secs(5));
        let mut lost = false;
        // Order in which entries were forwarded (to give them back in that order).
        let mut seq = 0u64;
        'connect: loop {
            self.client_id.store(0, Ordering::Relaxed);
            let epoch = self.shared.primary_epoch();
            let mut conn = loop {
                self.release_stopped();
                let mut shutdown = self.shutdown.clone();
                let connecting = connect(
                    &self.primary,
                    &self.config,
                    &self.shared,
                    timeout,
                    &mut shutdown,
                    "reader",
                );
                let woken = tokio::select! {
                    c = connecting => match c {
                        Some(c) => Woken::Done(c),
                        None => Woken::Shutdown,
                    },
                    () = self.shared.wanted.changed() => Woken::Changed,
                };
                match woken {
                    Woken::Done(conn) => break conn,
                    Woken::Changed => continue,
                    Woken::Shutdown => return,
                }
            };
            // Without it (CLIENT refused) a read ends at its BLOCK timeout only.
            if let super::Conn::Single(_) = conn
                && let Ok(id) = redis::cmd("CLIENT")
                    .arg("ID")
                    .query_async::<u64>(&mut conn)
                    .await
            {
                self.client_id.store(id, Ordering::Relaxed);
            }
            if lost {
                self.shared.reconnects.fetch_add(1, Ordering::Relaxed);
            }
            // Streams whose group exists (as of this connection), by the Inflight they had.
            let mut ready: HashMap<Arc<str>, Inflight> = HashMap::new();
            // Streams whose group could not be created: tried again at the next tick.
            let mut failed: HashSet<Arc<str>> = HashSet::new();
            let mut next_tick = Instant::now() + tick;
            loop {
                self.release_stopped();
                if self.shared.primary_epoch() != epoch {
                    // The sentinels name another primary.
                    lost = true;
                    continue 'connect;
                }
                if Instant::now() >= next_tick {
                    next_tick = Instant::now() + tick;
                    failed.clear();
                    match self.maintain(&mut conn, &mut seq).await {
                        Ok(true) => {}
                        Ok(false) => return,
                        Err(error) => {
                            tracing::warn!(%error, "redis reader lost its connection");
                            lost = true;
                            continue 'connect;
                        }
                    }
                    continue;
                }
                if let Err(error) = self.ensure_groups(&mut conn, &mut ready, &mut failed).await {
                    tracing::warn!(%error, "redis reader lost its connection");
                    lost = true;
                    continue 'connect;
                }
                let reading = self.read_set(&ready);
                if reading.is_empty() {
                    tokio::select! {
                        () = self.shared.wanted.changed() => {}
                        _ = tokio::time::sleep_until(next_tick) => {}
                        _ = self.shutdown.changed() => return,
                    }
                    continue;
                }
                let count = reading
                    .iter()
                    .map(|stream| stream.credit)
                    .min()
                    .unwrap_or(1)
                    .min(self.room(reading.len()));
                if let super::Conn::Cluster(_) = conn {
                    let read = self.read_each(&mut conn, &reading, &mut ready, &mut seq);
                    match read.await {
                        Ok(Some(true)) => {}
                        Ok(Some(false)) => {
                            // Nothing new: no blocking read in a cluster (see the module docs).
                            tokio::select! {
                                () = self.shared.wanted.changed() => {}
                                _ = tokio::time::sleep(CLUSTER_POLL) => {}
                                _ = tokio::time::sleep_until(next_tick) => {}
                                _ = self.shutdown.changed() => return,
                            }
                        }
                        Ok(None) => return,
                        Err(error) => {
                            tracing::warn!(%error, "redis reader lost its connection");
                            lost = true;
                            continue 'connect;
                        }
                    }
                    continue;
                }
                let mut cmd = redis::cmd("XREADGROUP");
                cmd.arg("GROUP")
                    .arg(&self.config.group)
                    .arg(&self.config.node_id)
                    .arg("COUNT")
                    .arg(count.clamp(1, MAX_READ))
                    .arg("BLOCK")
                    .arg(u64::try_from(block.as_millis()).unwrap_or(500))
                    .arg("STREAMS");
                for stream in &reading {
                    cmd.arg(&*stream.key);
                }
                for _ in &reading {
                    cmd.arg(">");
                }
                // The read is never abandoned once sent (Redis hands the entries to this
                // consumer all the same): when what to read changes meanwhile, it is
                // unblocked, and what it returns is forwarded as usual.
                let mut unblocked = false;
                let reply = {
                    let read = cmd.query_async::<Option<StreamReadReply>>(&mut conn);
                    tokio::pin!(read);
                    loop {
                        let woken = tokio::select! {
                            r = &mut read => Woken::Done(r),
                            () = self.shared.wanted.changed(), if !unblocked => Woken::Changed,
                            _ = self.shutdown.changed() => Woken::Shutdown,
                        };
                        match woken {
                            Woken::Done(r) => break r,
                            Woken::Changed => {
                                if self.read_set_changed(&reading) {
                                    unblocked = true;
                                    let id = self.client_id.load(Ordering::Relaxed);
                                    if id != 0 {
                                        self.shared.outbox.unblock(id);
                                    }
                                }
                            }
                            Woken::Shutdown => return,
                        }
                    }
                };
                match reply {
                    Ok(reply) => {
                        for stream in reply.into_iter().flat_map(|r| r.keys) {
                            let Some(read) = reading.iter().find(|read| *read.key == *stream.key)
                            else {
                                continue;
                            };
                            if !self
                                .forward(&read.key, &read.inflight, stream.ids, false, &mut seq)
                                .await
                            {
                                return;
                            }
                        }
                    }
                    // Redis lost the group (restart without persistence), or the stream was
                    // deleted under the blocked read: create it again. Entries added since
                    // are read: the group starts at the stream's beginning.
                    Err(error) if matches!(error.code(), Some("NOGROUP" | "UNBLOCKED")) => {
                        ready.clear();
                    }
                    Err(error) => {
                        tracing::warn!(%error, "redis reader lost its connection");
                        lost = true;
                        continue 'connect;
                    }
                }
            }
        }
    }

    /// In cluster mode: one `XREADGROUP` per stream, without `BLOCK`, in one pipeline (which
    /// the connection splits per slot); each reads no more than the stream's credit and the
    /// room left. Returns whether anything was read; `None` once the engine is gone.
    async fn read_each(
        &self,
        conn: &mut super::Conn,
        reading: &[StreamToRead],
        ready: &mut HashMap<Arc<str>, Inflight>,
        seq: &mut u64,
    ) -> RedisResult<Option<bool>> {
        let room = self.room(reading.len());
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for stream in reading {
            pipe.cmd("XREADGROUP")
                .arg("GROUP")
                .arg(&self.config.group)
                .arg(&self.config.node_id)
                .arg("COUNT")
                .arg(stream.credit.min(room).clamp(1, MAX_READ))
                .arg("STREAMS")
                .arg(&*stream.key)
                .arg(">");
        }
        let results: Vec<RedisResult<Value>> = pipe.query_async(conn).await?;
        let mut any = false;
        for (stream, result) in reading.iter().zip(results) {
            let value = match result {
                Ok(Value::ServerError(error)) if error.code() == "NOGROUP" => {
                    // Lost with the stream (or the group): created again before the next read.
                    ready.remove(&stream.key);
                    continue;
                }
                Err(error) if error.code() == Some("NOGROUP") => {
                    ready.remove(&stream.key);
                    continue;
                }
                Ok(Value::ServerError(error)) => {
                    tracing::warn!(key = loggable(&stream.key), ?error, "XREADGROUP failed");
                    continue;
                }
                Ok(value) => value,
                Err(error) => return Err(error),
            };
            let reply: Option<StreamReadReply> = match redis::from_redis_value(value) {
                Ok(reply) => reply,
                Err(error) => {
                    tracing::warn!(key = loggable(&stream.key), %error, "unexpected XREADGROUP reply");
                    continue;
                }
            };
            for read in reply.into_iter().flat_map(|r| r.keys) {
                any |= !read.ids.is_empty();
                if !self
                    .forward(&stream.key, &stream.inflight, read.ids, false, seq)
                    .await
                {
                    return Ok(None);
                }
            }
        }
        Ok(Some(any))
    }

    /// Entries to read (or claim) per stream, over `streams` streams, so that the entries held
    /// stay under [`Config::max_held_bytes`] at the largest entry size seen: at least 1 (so one
    /// read passes the budget by at most one entry per stream), and 1 while no entry was seen
    /// yet.
    fn room(&self, streams: usize) -> usize {
        let left = self
            .config
            .max_held_bytes
            .saturating_sub(self.shared.held_bytes());
        match self.largest.load(Ordering::Relaxed) {
            0 => 1,
            largest => (left / largest.saturating_mul(streams.max(1))).max(1),
        }
    }

    /// Whether the node holds [`Config::max_held_bytes`] or more: it reads nothing then.
    fn at_budget(&self) -> bool {
        self.shared.held_bytes() >= self.config.max_held_bytes
    }

    /// The streams to read now: ready, with credit; none while the node is at its budget of
    /// held bytes.
    fn read_set(&self, ready: &HashMap<Arc<str>, Inflight>) -> Vec<StreamToRead> {
        let wanted = self.shared.wanted.lock();
        if self.at_budget() {
            return Vec::new();
        }
        wanted
            .streams
            .iter()
            .filter(|(key, want)| {
                want.credit > 0
                    && ready
                        .get(*key)
                        .is_some_and(|inflight| Arc::ptr_eq(inflight, &want.inflight))
            })
            .map(|(key, want)| StreamToRead::new(key, want))
            .collect()
    }

    /// Whether the read under way should end now: a stream was stopped (to release it at
    /// once), or a stream out of it has credit (or is new).
    fn read_set_changed(&self, reading: &[StreamToRead]) -> bool {
        let wanted = self.shared.wanted.lock();
        let in_read: HashSet<&str> = reading.iter().map(|stream| &*stream.key).collect();
        !wanted.stopped.is_empty()
            || wanted
                .streams
                .iter()
                .any(|(key, want)| want.credit > 0 && !in_read.contains(&**key))
    }

    /// Create the group of the streams not ready yet (and record that this node consumes
    /// them).
    async fn ensure_groups(
        &self,
        conn: &mut super::Conn,
        ready: &mut HashMap<Arc<str>, Inflight>,
        failed: &mut HashSet<Arc<str>>,
    ) -> RedisResult<()> {
        let new: Vec<(Arc<str>, Inflight)> = {
            let wanted = self.shared.wanted.lock();
            wanted
                .streams
                .iter()
                .filter(|(key, want)| {
                    !failed.contains(*key)
                        && !ready
                            .get(*key)
                            .is_some_and(|inflight| Arc::ptr_eq(inflight, &want.inflight))
                })
                .map(|(key, want)| (key.clone(), want.inflight.clone()))
                .collect()
        };
        ready.retain(|key, _| self.shared.wanted.lock().streams.contains_key(key));
        if new.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for (key, _) in &new {
            self.consume(&mut pipe, key, true);
        }
        let results: Vec<RedisResult<Value>> = pipe.query_async(conn).await?;
        for ((key, inflight), result) in new.into_iter().zip(results) {
            match super::is_server_error(&result) {
                Some(why) => {
                    tracing::warn!(key = loggable(&key), why, "XGROUP CREATE failed");
                    failed.insert(key);
                }
                None => {
                    ready.insert(key, inflight);
                }
            }
        }
        Ok(())
    }

    /// Release the streams the engine stopped reading: give back what is left of them, then
    /// drop their `done`.
    fn release_stopped(&self) {
        let stopped = std::mem::take(&mut self.shared.wanted.lock().stopped);
        for StoppedStream { key, want } in stopped {
            self.give_back(&key, &want.inflight);
            drop(want);
        }
    }

    /// Give back to the group, through the writer, the entries of stream `key` forwarded
    /// and not taken by the engine (in the order read).
    fn give_back(&self, key: &Arc<str>, inflight: &Inflight) {
        let mut left: Vec<(Arc<str>, Forwarded)> = inflight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain()
            .collect();
        if left.is_empty() {
            return;
        }
        left.sort_unstable_by_key(|(_, forwarded)| forwarded.order);
        let entries: Vec<StoredEntry> = left
            .into_iter()
            .map(|(id, forwarded)| StoredEntry {
                id,
                // Claimed entries were delivered by the node that died; the others never were.
                payload: if forwarded.claimed {
                    crate::codec::mark_redelivered(&forwarded.payload)
                } else {
                    forwarded.payload
                },
            })
            .collect();
        let ids: Vec<Arc<str>> = entries.iter().map(|entry| entry.id.clone()).collect();
        self.shared.forget(key, &ids);
        tracing::debug!(
            key = loggable(key),
            n = entries.len(),
            "stopped stream: entries given back"
        );
        self.shared.outbox.requeue(key.clone(), entries);
    }

    /// Hand entries of stream `key` to the engine, each taken off the stream's credit;
    /// `false` when the engine is gone.
    async fn forward(
        &self,
        key: &Arc<str>,
        inflight: &Inflight,
        entries: Vec<StreamId>,
        claimed: bool,
        seq: &mut u64,
    ) -> bool {
        for entry in entries {
            let payload = entry_payload(&entry);
            let id: Arc<str> = Arc::from(entry.id.as_str());
            {
                let mut wanted = self.shared.wanted.lock();
                if let Some(want) = wanted.streams.get_mut(key)
                    && Arc::ptr_eq(&want.inflight, inflight)
                {
                    want.credit = want.credit.saturating_sub(1);
                }
            }
            self.largest.fetch_max(payload.len(), Ordering::Relaxed);
            self.shared.hold(key, &id, payload.len());
            *seq += 1;
            inflight
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(
                    id.clone(),
                    Forwarded {
                        order: *seq,
                        payload: payload.clone(),
                        claimed,
                    },
                );
            let event = Incoming::Entry {
                key: key.clone(),
                id,
                payload,
                claimed,
                inflight: inflight.clone(),
            };
            if self.events.send(event).await.is_err() {
                return false;
            }
        }
        true
    }

    /// Record again that this node consumes its queues, refresh the idle time of owned
    /// entries and claim those of dead nodes (no more than each stream's credit); `false`
    /// when the engine is gone.
    async fn maintain(&self, conn: &mut super::Conn, seq: &mut u64) -> RedisResult<bool> {
        let streams: Vec<StreamToRead> = {
            let wanted = self.shared.wanted.lock();
            wanted
                .streams
                .iter()
                .map(|(key, want)| StreamToRead::new(key, want))
                .collect()
        };
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for stream in &streams {
            self.consume(&mut pipe, &stream.key, false);
        }
        let owned = self.shared.owned_ids();
        for HeldIds { key, ids } in &owned {
            for chunk in ids.chunks(256) {
                let ids: Vec<&str> = chunk.iter().map(|id| &**id).collect();
                pipe.cmd("XCLAIM")
                    .arg(&**key)
                    .arg(&self.config.group)
                    .arg(&self.config.node_id)
                    .arg(0)
                    .arg(&ids)
                    .arg("JUSTID");
            }
        }
        if !streams.is_empty() || !owned.is_empty() {
            let _: Vec<RedisResult<Value>> = pipe.query_async(conn).await?;
        }
        let min_idle = u64::try_from(self.config.claim_timeout.as_millis()).unwrap_or(u64::MAX);
        for StreamToRead {
            key,
            inflight,
            credit,
        } in streams
        {
            let mine: HashSet<&str> = owned
                .iter()
                .filter(|held| held.key == key)
                .flat_map(|held| held.ids.iter().map(|id| &**id))
                .collect();
            let mut left = credit;
            let mut start = String::from("0-0");
            // Within the budget of held bytes, as reads are.
            while left > 0 && !self.at_budget() {
                let reply: RedisResult<StreamAutoClaimReply> = redis::cmd("XAUTOCLAIM")
                    .arg(&*key)
                    .arg(&self.config.group)
                    .arg(&self.config.node_id)
                    .arg(min_idle)
                    .arg(&start)
                    .arg("COUNT")
                    .arg(left.min(MAX_CLAIM).min(self.room(1)))
                    .query_async(conn)
                    .await;
                let reply = match reply {
                    Ok(reply) => reply,
                    Err(e) if e.code().is_some() => break, // NOGROUP: created again on read
                    Err(e) => return Err(e),
                };
                let claimed: Vec<StreamId> = reply
                    .claimed
                    .into_iter()
                    .filter(|e| !mine.contains(e.id.as_str()))
                    .collect();
                left = left.saturating_sub(claimed.len());
                if !self.forward(&key, &inflight, claimed, true, seq).await {
                    return Ok(false);
                }
                if reply.next_stream_id == "0-0" || reply.next_stream_id == start {
                    break;
                }
                start = reply.next_stream_id;
            }
        }
        Ok(true)
    }
}

/// A stream the reader now reads for the engine (see [`start`]).
pub(crate) struct Started {
    /// Its entries forwarded to the engine and not taken yet.
    pub inflight: Inflight,
    /// Closed once the stream is released after [`stop`].
    pub done: watch::Receiver<()>,
}

/// Start reading stream `key` for the engine.
pub(crate) fn start(shared: &NodeState, key: Arc<str>) -> Started {
    let (done, done_rx) = watch::channel(());
    let inflight = Inflight::default();
    let want = Want {
        credit: 0,
        inflight: inflight.clone(),
        _done: done,
    };
    let mut wanted = shared.wanted.lock();
    if let Some(old) = wanted.streams.insert(key.clone(), want) {
        wanted.stopped.push(StoppedStream { key, want: old });
    }
    drop(wanted);
    shared.wanted.notify();
    Started {
        inflight,
        done: done_rx,
    }
}

/// Grant `n` more entries of stream `key` to the reader.
pub(crate) fn grant(shared: &NodeState, key: &str, n: usize) {
    if n == 0 {
        return;
    }
    let mut wanted = shared.wanted.lock();
    let Some(want) = wanted.streams.get_mut(key) else {
        return;
    };
    let was = want.credit;
    want.credit = want.credit.saturating_add(n);
    drop(wanted);
    if was == 0 {
        shared.wanted.notify();
    }
}

/// Stop reading stream `key`: the reader releases it (see the module docs).
pub(crate) fn stop(shared: &NodeState, key: &Arc<str>) {
    let mut wanted = shared.wanted.lock();
    if let Some(want) = wanted.streams.remove(key) {
        wanted.stopped.push(StoppedStream {
            key: key.clone(),
            want,
        });
    }
    drop(wanted);
    shared.wanted.notify();
}
