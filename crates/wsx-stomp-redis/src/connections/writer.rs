//! The writer task: the node's one connection for writes.
//!
//! It takes SENDs (and barriers) from the engine's bounded channel and the rest of its work
//! from the [`Outbox`] (acknowledgements, requeues, `CLIENT UNBLOCK`s, removals of empty
//! queues due), and writes each round as one pipeline: at most [`MAX_BATCH_SENDS`] SENDs and
//! about [`MAX_BATCH_BYTES`] bytes of them (a single larger SEND goes alone). Once Redis has
//! answered, it reports the outcome of every SEND made with an origin
//! ([`wsx_stomp::Origin`]) as a [`wsx_stomp::Confirmation`] through the events. It checks
//! its connection when idle, and alone sets [`crate::RedisMetrics::connected`].
//!
//! ## A pipeline written again never duplicates
//!
//! When the connection fails or Redis does not answer within [`crate::Config::write_timeout`], the writer
//! reconnects and writes the same pipeline again: part of it may have been carried out. Each
//! part is idempotent:
//!
//! - queue SENDs: the `XADD` script records, per stream, the sequence number of the writer's
//!   last SEND and the refusals of its last pipeline ([`scripts::XADD`]): a replay gets the
//!   recorded outcome (stored, or refused) and adds nothing;
//! - acknowledgements and requeues act only on entries still pending ([`scripts::ACK`],
//!   [`scripts::REQUEUE`]); removals check again; `CLIENT UNBLOCK` is harmless;
//! - topic SENDs: a `PUBLISH` is sent again — Redis cannot tell — but every message carries
//!   its writer's incarnation and sequence number ([`crate::codec`]), which grow in pipeline
//!   order, and each node delivers a message only if its sequence number is above the last it
//!   saw from that incarnation ([`crate::RedisMetrics::duplicates`] counts those dropped).
//!
//! ## Replicas (`WAIT`)
//!
//! With [`crate::Config::replicas_ack`] `N` above 0, each pipeline that writes (SENDs,
//! acknowledgements, requeues, removals; not one of history reads alone) ends with a small write
//! of its own (`SET PREFIXwait:INCARNATION BATCH PX 60000`: so that `WAIT` covers the
//! pipeline even when a replay wrote nothing new, its SENDs recorded as stored before) and
//! `WAIT N MS`. Only when `WAIT` answers `N` or more are the pipeline's SENDs confirmed and
//! its waiters answered; while fewer replicas have the writes, the writer sends `WAIT`
//! again ([`WAIT_TRY`] each), as long as it takes, and writes nothing else meanwhile: SENDs
//! wait in its channel as when Redis is down, up to the node's backlog limits, past which
//! new ones are refused ([`crate::RedisMetrics::replica_waits`] counts the short answers).
//! If the connection fails meanwhile (the primary died), the pipeline is written again on
//! the next primary, as after any connection loss, and waited for there. A reply `READONLY`
//! (the primary was demoted) counts as a connection loss: the writer reconnects to the
//! primary of the moment.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use redis::{RedisResult, Value};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use wsx_stomp::{Confirmation, Origin};

use super::{
    Cmd, Events, HistoryPage, HistoryRead, Incoming, Outbox, Page, Requeue, StreamAcks, connect,
    is_server_error, loggable, scripts,
};
use crate::{Config, Error, NodeState};

/// SENDs in one pipeline, at most.
pub(crate) const MAX_BATCH_SENDS: usize = 512;

/// Bytes of SENDs in one pipeline, about (the SEND that crosses it is the last).
pub(crate) const MAX_BATCH_BYTES: usize = 1 << 20;

/// Acknowledgements or requeues per script call.
const IDS_PER_CALL: usize = 256;

/// How often the writer checks whether streams marked full have room again.
const FULL_RECHECK: Duration = Duration::from_millis(500);

/// How long one `WAIT` may block before the writer asks again (so that the connection's
/// response timeout, [`crate::Config::write_timeout`], does not end it first).
const WAIT_TRY: Duration = Duration::from_secs(1);

/// How long the writer's connection may go unused before the writer checks it (`PING`), so
/// that [`crate::RedisMetrics::connected`] turns false when Redis goes away, and the writer
/// reconnects when it comes back, even without SENDs.
const KEEPALIVE: Duration = Duration::from_secs(1);

/// The writer's connection, and the node's `connected` flag, which only the writer sets: it
/// tells whether the writer's connection is up (as of its last use or check).
struct WriterConn<'a> {
    primary: &'a super::Primary,
    config: &'a Config,
    shared: &'a NodeState,
    timeout: Duration,
    conn: Option<super::Conn>,
    /// A connection was lost: the next one counts as a reconnect.
    lost: bool,
    /// When Redis last answered on `conn`.
    last_ok: Instant,
    /// [`NodeState::primary_epoch`] when `conn` was made.
    epoch: u64,
    /// The SHA1 of the `XADD` script once loaded (`SCRIPT LOAD`) since connecting: SENDs
    /// then name it (`EVALSHA`) instead of carrying it.
    xadd_sha: Option<String>,
}

impl WriterConn<'_> {
    /// The connection, connecting (with backoff) if need be; `None` once the engine is gone.
    async fn get(&mut self, shutdown: &mut watch::Receiver<()>) -> Option<&mut super::Conn> {
        if self.conn.is_none() {
            self.epoch = self.shared.primary_epoch();
            let c = connect(
                self.primary,
                self.config,
                self.shared,
                Some(self.timeout),
                shutdown,
                "writer",
            )
            .await?;
            if self.lost {
                self.shared.reconnects.fetch_add(1, Ordering::Relaxed);
            }
            self.shared.connected.store(true, Ordering::Relaxed);
            self.last_ok = Instant::now();
            self.conn = Some(c);
        }
        self.conn.as_mut()
    }

    /// Load the `XADD` script if it is not known to be loaded (a failure only means SENDs
    /// carry the script).
    async fn load_scripts(&mut self) {
        if self.xadd_sha.is_some() {
            return;
        }
        if let Some(conn) = self.conn.as_mut() {
            self.xadd_sha = redis::cmd("SCRIPT")
                .arg("LOAD")
                .arg(scripts::XADD)
                .query_async::<String>(conn)
                .await
                .ok();
        }
    }

    /// Redis answered.
    fn ok(&mut self) {
        self.last_ok = Instant::now();
    }

    /// Wait until [`Config::replicas_ack`] replicas have the writes made on the connection
    /// so far: `true` then, `false` when the connection failed (it is dropped), `None` once
    /// the engine is gone.
    async fn wait_replicas(&mut self, shutdown: &mut watch::Receiver<()>) -> Option<bool> {
        let wanted = self.config.replicas_ack;
        let try_ms = wait_ms(self.timeout);
        self.shared.replica_waits.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            wanted,
            "fewer redis replicas than --redis-replicas-ack have the writes; waiting"
        );
        loop {
            let conn = self.conn.as_mut()?;
            let mut wait = redis::cmd("WAIT");
            wait.arg(wanted).arg(try_ms);
            let reply = tokio::select! {
                r = wait.query_async::<usize>(conn) => r,
                _ = shutdown.changed() => return None,
            };
            match reply {
                Ok(n) if n >= wanted => {
                    self.ok();
                    tracing::info!(replicas = n, "redis replicas caught up");
                    return Some(true);
                }
                Ok(_) => {
                    self.ok();
                    self.shared.replica_waits.fetch_add(1, Ordering::Relaxed);
                    if self.switched() {
                        return Some(false);
                    }
                }
                Err(error) => {
                    self.failed(&error);
                    return Some(false);
                }
            }
        }
    }

    /// Whether the sentinels named another primary since `conn` was made: it is dropped then
    /// (`true`).
    fn switched(&mut self) -> bool {
        if self.conn.is_some() && self.epoch != self.shared.primary_epoch() {
            self.failed(&redis::RedisError::from((
                redis::ErrorKind::Io,
                "primary switched",
                "the sentinels name another primary".to_owned(),
            )));
            return true;
        }
        false
    }

    /// The connection failed: drop it.
    fn failed(&mut self, error: &redis::RedisError) {
        tracing::warn!(%error, "redis writer lost its connection; reconnecting");
        self.shared.connected.store(false, Ordering::Relaxed);
        self.conn = None;
        self.lost = true;
        self.xadd_sha = None;
    }
}

/// What the writer's channel and outbox hand it, and where it reports.
pub(crate) struct Writer {
    pub primary: super::Primary,
    pub config: Arc<Config>,
    pub shared: Arc<NodeState>,
    pub rx: mpsc::Receiver<Cmd>,
    pub events: Events,
    pub shutdown: watch::Receiver<()>,
    /// This writer's name in the queues' companion hashes (`w:INCARNATION`, `r:…`).
    pub incarnation: String,
    /// How long to wait for Redis to answer a pipeline ([`Config::write_timeout`]).
    pub timeout: Duration,
    /// The last topic generation the subscriber applied: a history read waits for its own.
    pub applied: watch::Receiver<u64>,
}

/// The non-SEND part of one pipeline, taken from the [`Outbox`].
#[derive(Default)]
struct Chores {
    acks: Vec<StreamAcks>,
    requeues: Vec<Requeue>,
    unblock: Vec<u64>,
    removals: Vec<Arc<str>>,
    reads: Vec<HistoryRead>,
}

impl Chores {
    /// Whether they write (acknowledgements, requeues, removals).
    fn writes(&self) -> bool {
        !self.acks.is_empty() || !self.requeues.is_empty() || !self.removals.is_empty()
    }

    fn due(outbox: &mut Outbox, now: Instant, applied: u64) -> Chores {
        let (reads, deferred) = std::mem::take(&mut outbox.reads)
            .into_iter()
            .partition(|read| read.generation <= applied);
        outbox.reads = deferred;
        let mut removals = Vec::new();
        outbox.removals.retain(|key, due| {
            if *due <= now {
                removals.push(key.clone());
                false
            } else {
                true
            }
        });
        Chores {
            acks: outbox
                .acks
                .drain()
                .map(|(key, entries)| StreamAcks { key, entries })
                .collect(),
            requeues: std::mem::take(&mut outbox.requeues),
            unblock: std::mem::take(&mut outbox.unblock),
            removals,
            reads,
        }
    }
}

impl Writer {
    /// Run until the engine is dropped.
    pub(crate) async fn run(mut self) {
        let (primary, config, shared) = (
            self.primary.clone(),
            self.config.clone(),
            self.shared.clone(),
        );
        let mut w = WriterConn {
            primary: &primary,
            config: &config,
            shared: &shared,
            timeout: self.timeout,
            conn: None,
            lost: false,
            last_ok: Instant::now(),
            epoch: 0,
            xadd_sha: None,
        };
        // Connect at once, so that `connected` tells the truth before the first SEND.
        if w.get(&mut self.shutdown).await.is_none() {
            return;
        }
        let mut sends: Vec<Cmd> = Vec::new();
        let mut batch_no: u64 = 0;
        let mut recheck = tokio::time::interval(FULL_RECHECK);
        recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let (next_removal, deferred_reads) = {
                let outbox = shared.outbox.lock();
                (
                    outbox.removals.values().min().copied(),
                    !outbox.reads.is_empty(),
                )
            };
            let far = Instant::now() + Duration::from_secs(3600);
            tokio::select! {
                cmd = self.rx.recv() => match cmd {
                    Some(cmd) => sends.push(cmd),
                    None => return,
                },
                () = shared.outbox.changed() => {}
                Ok(()) = self.applied.changed(), if deferred_reads => {}
                () = tokio::time::sleep_until(next_removal.unwrap_or(far)), if next_removal.is_some() => {}
                _ = recheck.tick() => {
                    // Marks clear only through this check (SENDs to a marked queue never
                    // reach the writer); an idle connection is checked, a lost one
                    // re-established.
                    let full = !shared.full_streams().is_empty();
                    if w.switched() {
                        // Connects to the new primary below.
                    } else if !full && w.conn.is_some() && w.last_ok.elapsed() < KEEPALIVE {
                        continue;
                    }
                    let Some(c) = w.get(&mut self.shutdown).await else {
                        return;
                    };
                    let checked = if full {
                        recheck_full(c, &config, &shared).await
                    } else {
                        redis::cmd("PING").query_async::<Value>(c).await.map(drop)
                    };
                    match checked {
                        Ok(()) => w.ok(),
                        Err(error) => w.failed(&error),
                    }
                    continue;
                }
                _ = self.shutdown.changed() => return,
            }
            if sends.is_empty() && !shared.outbox.lock().has_work(Instant::now()) {
                continue;
            }
            let mut bytes: usize = sends.iter().map(Cmd::size).sum();
            while sends.len() < MAX_BATCH_SENDS && bytes < MAX_BATCH_BYTES {
                match self.rx.try_recv() {
                    Ok(cmd) => {
                        bytes += cmd.size();
                        sends.push(cmd);
                    }
                    Err(_) => break,
                }
            }
            let applied = *self.applied.borrow();
            let chores = Chores::due(&mut shared.outbox.lock(), Instant::now(), applied);
            batch_no += 1;
            // Run the pipeline until Redis answers it (written again: see the module docs).
            let (results, n_chores) = loop {
                if w.get(&mut self.shutdown).await.is_none() {
                    return;
                }
                w.load_scripts().await;
                let (mut pipe, n_chores) =
                    self.pipeline(&chores, &sends, batch_no, w.xadd_sha.as_deref());
                let Some(c) = w.conn.as_mut() else {
                    continue;
                };
                if pipe.is_empty() {
                    break (Vec::new(), 0);
                }
                // Reads, unblocks and barriers alone need no replica.
                let replicas = if chores.writes() || sends.iter().any(Cmd::writes) {
                    config.replicas_ack
                } else {
                    0
                };
                if replicas > 0 {
                    pipe.cmd("SET")
                        .arg(format!("{}wait:{}", config.prefix, self.incarnation))
                        .arg(batch_no)
                        .arg("PX")
                        .arg(60_000)
                        .cmd("WAIT")
                        .arg(replicas)
                        .arg(wait_ms(self.timeout));
                }
                match pipe.query_async::<Vec<RedisResult<Value>>>(c).await {
                    Ok(results) if results.iter().any(no_script) => {
                        // The script cache was flushed: load it again, write again.
                        w.xadd_sha = None;
                    }
                    Ok(results) if results.iter().any(read_only) => {
                        // The primary was demoted: find the new one, write again.
                        w.failed(&redis::RedisError::from((
                            redis::ErrorKind::Io,
                            "READONLY",
                            "the redis primary became a replica".to_owned(),
                        )));
                    }
                    Ok(results) => {
                        w.ok();
                        let enough = replicas == 0
                            || matches!(results.last(), Some(Ok(Value::Int(n)))
                                if usize::try_from(*n).is_ok_and(|n| n >= replicas));
                        if enough {
                            break (results, n_chores);
                        }
                        match w.wait_replicas(&mut self.shutdown).await {
                            Some(true) => break (results, n_chores),
                            // Lost: written again on the next connection.
                            Some(false) => {}
                            None => return,
                        }
                    }
                    Err(error) => w.failed(&error),
                }
            };
            log_chores(&chores, &results);
            let pages = history_pages(
                &chores.reads,
                results
                    .get(n_chores - chores.reads.len()..n_chores)
                    .unwrap_or_default(),
            );
            for page in pages {
                if self.events.send(Incoming::History(page)).await.is_err() {
                    return;
                }
            }
            let (confirmations, mut outcomes) = report(
                &config,
                &shared,
                &sends,
                results.get(n_chores..).unwrap_or_default(),
            );
            // Before the barriers of the batch are answered.
            if !confirmations.is_empty()
                && self
                    .events
                    .send(Incoming::Confirmed(confirmations))
                    .await
                    .is_err()
            {
                return;
            }
            for cmd in sends.drain(..) {
                match cmd {
                    Cmd::Barrier(done) => {
                        let _ = done.send(());
                    }
                    Cmd::TopicPublish {
                        reply, ref payload, ..
                    }
                    | Cmd::XAdd {
                        reply, ref payload, ..
                    } => {
                        shared.pending_sends.fetch_sub(1, Ordering::Relaxed);
                        shared
                            .pending_bytes
                            .fetch_sub(payload.len(), Ordering::Relaxed);
                        let outcome = outcomes
                            .pop_front()
                            .unwrap_or_else(|| Err(Error::Redis("no reply".to_owned())));
                        if let Some(reply) = reply {
                            let _ = reply.send(outcome);
                        }
                    }
                    cmd @ Cmd::Publish { .. } => {
                        shared.pending_sends.fetch_sub(1, Ordering::Relaxed);
                        shared
                            .pending_bytes
                            .fetch_sub(cmd.size(), Ordering::Relaxed);
                    }
                }
            }
        }
    }

    /// One pipeline for the chores then the SENDs; per-command server errors come back as
    /// values. Also returns how many replies the chores take.
    fn pipeline(
        &self,
        chores: &Chores,
        sends: &[Cmd],
        batch_no: u64,
        xadd_sha: Option<&str>,
    ) -> (redis::Pipeline, usize) {
        let config = &self.config;
        // Sharded pub/sub in a cluster: a message goes to its channel's shard only.
        let publish = if config.is_cluster() {
            "SPUBLISH"
        } else {
            "PUBLISH"
        };
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        let mut n = 0;
        for StreamAcks { key, entries } in &chores.acks {
            let meta = config.meta_key(key);
            for chunk in entries.chunks(IDS_PER_CALL) {
                let eval = pipe
                    .cmd("EVAL")
                    .arg(scripts::ACK)
                    .arg(2)
                    .arg(&**key)
                    .arg(&meta)
                    .arg(&config.group);
                for ack in chunk {
                    eval.arg(&*ack.id).arg(ack.size);
                }
                n += 1;
            }
        }
        for Requeue { key, entries } in &chores.requeues {
            let meta = config.meta_key(key);
            for chunk in entries.chunks(IDS_PER_CALL) {
                let eval = pipe
                    .cmd("EVAL")
                    .arg(scripts::REQUEUE)
                    .arg(2)
                    .arg(&**key)
                    .arg(&meta)
                    .arg(&config.group);
                for entry in chunk {
                    eval.arg(&*entry.id).arg(entry.payload.as_ref());
                }
                n += 1;
            }
        }
        for client in &chores.unblock {
            pipe.cmd("CLIENT").arg("UNBLOCK").arg(*client);
            n += 1;
        }
        let grace = u64::try_from(config.empty_queue_grace.as_millis()).unwrap_or(u64::MAX);
        for key in &chores.removals {
            pipe.cmd("EVAL")
                .arg(scripts::REMOVE)
                .arg(2)
                .arg(&**key)
                .arg(config.meta_key(key))
                .arg(&config.group)
                .arg(grace);
            n += 1;
        }
        for read in &chores.reads {
            pipe.cmd("EVAL")
                .arg(scripts::TOPIC_READ)
                .arg(2)
                .arg(&read.stream)
                .arg(&read.meta)
                .arg(read.from)
                .arg(read.count);
            n += 1;
        }
        for cmd in sends {
            match cmd {
                Cmd::TopicPublish {
                    destination,
                    channel,
                    seq,
                    payload,
                    ..
                } => {
                    let name = destination.strip_prefix("/topic/").unwrap_or(destination);
                    pipe.cmd("EVAL")
                        .arg(scripts::TOPIC_PUBLISH)
                        .arg(2)
                        .arg(config.topic_stream_key(name))
                        .arg(config.topic_meta_key(name))
                        .arg(payload.as_ref())
                        .arg(channel)
                        .arg(config.topic_history.max_messages)
                        .arg(config.topic_history.max_bytes)
                        .arg(format!("w:{}", self.incarnation))
                        .arg(*seq)
                        .arg(publish);
                }
                Cmd::Publish {
                    channel, payload, ..
                } => {
                    pipe.cmd(publish).arg(channel).arg(payload.as_ref());
                }
                Cmd::XAdd {
                    key, payload, seq, ..
                } => {
                    match xadd_sha {
                        Some(sha) => pipe.cmd("EVALSHA").arg(sha),
                        None => pipe.cmd("EVAL").arg(scripts::XADD),
                    }
                    .arg(2)
                    .arg(key)
                    .arg(config.meta_key(key))
                    .arg(payload.as_ref())
                    .arg(config.max_queue_len)
                    .arg(config.max_queue_bytes)
                    .arg(format!("w:{}", self.incarnation))
                    .arg(format!("r:{}", self.incarnation))
                    .arg(*seq)
                    .arg(batch_no);
                }
                Cmd::Barrier(_) => {}
            }
        }
        (pipe, n)
    }
}

/// The timeout of one `WAIT`, in milliseconds: [`WAIT_TRY`], or less when the connection's
/// response timeout is shorter (never 0, which would block for ever).
fn wait_ms(response_timeout: Duration) -> u64 {
    let ms = WAIT_TRY.min(response_timeout / 2).as_millis();
    u64::try_from(ms).unwrap_or(1000).max(1)
}

/// Whether a reply says the server is a replica now (writes refused).
fn read_only(result: &RedisResult<Value>) -> bool {
    match result {
        Ok(Value::ServerError(e)) => e.code() == "READONLY",
        Err(e) => e.code() == Some("READONLY"),
        Ok(_) => false,
    }
}

/// Whether a reply says the script named is not loaded.
fn no_script(result: &RedisResult<Value>) -> bool {
    match result {
        Ok(Value::ServerError(e)) => e.code() == "NOSCRIPT",
        Err(e) => e.code() == Some("NOSCRIPT"),
        Ok(_) => false,
    }
}

/// Log the chores Redis refused (their replies come first).
fn log_chores(chores: &Chores, results: &[RedisResult<Value>]) {
    let failed = |i: usize| results.get(i).and_then(is_server_error);
    let mut i = 0;
    for StreamAcks { key, entries } in &chores.acks {
        for _ in entries.chunks(IDS_PER_CALL) {
            if let Some(why) = failed(i) {
                tracing::debug!(key = loggable(key), why, "XACK failed");
            }
            i += 1;
        }
    }
    for Requeue { key, entries } in &chores.requeues {
        for _ in entries.chunks(IDS_PER_CALL) {
            if let Some(why) = failed(i) {
                tracing::warn!(
                    key = loggable(key),
                    why,
                    "requeue failed; entries stay pending"
                );
            }
            i += 1;
        }
    }
    // Refused (CLIENT not allowed): the read ends at its BLOCK timeout instead.
    i += chores.unblock.len();
    for key in &chores.removals {
        match results.get(i) {
            Some(Ok(Value::Int(1))) => {
                tracing::debug!(key = loggable(key), "removed an unused empty queue")
            }
            Some(result) => {
                if let Some(why) = is_server_error(result) {
                    tracing::debug!(key = loggable(key), why, "removing an empty queue failed");
                }
            }
            None => {}
        }
        i += 1;
    }
}

/// Clear the full mark of streams that have room again (consumers acknowledged entries).
async fn recheck_full(
    conn: &mut super::Conn,
    config: &Config,
    shared: &NodeState,
) -> RedisResult<()> {
    let keys = shared.full_streams();
    if keys.is_empty() {
        return Ok(());
    }
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    for key in &keys {
        pipe.cmd("XLEN").arg(key);
    }
    let lens: Vec<RedisResult<Value>> = pipe.query_async(conn).await?;
    for (key, len) in keys.iter().zip(lens) {
        if let Ok(Value::Int(len)) = len
            && usize::try_from(len).is_ok_and(|len| len < config.max_queue_len)
        {
            tracing::debug!(key = loggable(key), len, "queue has room again");
            shared.set_full(key, false);
        }
    }
    Ok(())
}

/// The reason a SEND failed, as the client reads it in the ERROR's `message` (the same text as
/// a refusal at once: "message refused: ...").
fn refusal(error: &Error) -> String {
    wsx_stomp::Error::Refused(error.to_string()).to_string()
}

/// Confirm a SEND made with an origin: stored, or failed with `failed`'s reason.
fn confirm(out: &mut Vec<Confirmation>, origin: &Option<Origin>, failed: Option<&Error>) {
    if let Some(origin) = origin {
        out.push(match failed {
            None => Confirmation::Stored(origin.clone()),
            Some(error) => Confirmation::Failed(origin.clone(), refusal(error)),
        });
    }
}

/// The history pages the reads found (their replies, in order).
fn history_pages(reads: &[HistoryRead], results: &[RedisResult<Value>]) -> Vec<HistoryPage> {
    reads
        .iter()
        .enumerate()
        .map(|(i, read)| HistoryPage {
            key: read.key.clone(),
            epoch: read.epoch,
            result: match results.get(i) {
                Some(Ok(value)) => parse_page(value),
                Some(Err(e)) => Err(e.to_string()),
                None => Err("no reply".to_owned()),
            },
        })
        .collect()
}

/// `{last, oldest, entries}` of the `TOPIC_READ` script.
fn parse_page(value: &Value) -> Result<Page<bytes::Bytes>, String> {
    let bad = || format!("unexpected reply {value:?}");
    let Value::Array(parts) = value else {
        return Err(is_server_error(&Ok(value.clone())).unwrap_or_else(bad));
    };
    let int = |v: Option<&Value>| match v {
        Some(Value::Int(n)) => u64::try_from(*n).ok(),
        _ => None,
    };
    let (Some(last), Some(oldest), Some(Value::Array(entries))) =
        (int(parts.first()), int(parts.get(1)), parts.get(2))
    else {
        return Err(bad());
    };
    let mut page = Vec::with_capacity(entries.len());
    for entry in entries {
        let Value::Array(pair) = entry else {
            return Err(bad());
        };
        let (Some(Value::BulkString(id)), Some(Value::Array(fields))) = (pair.first(), pair.get(1))
        else {
            return Err(bad());
        };
        let offset = std::str::from_utf8(id)
            .ok()
            .and_then(|id| id.strip_prefix("0-"))
            .and_then(|n| n.parse().ok())
            .ok_or_else(bad)?;
        let payload = match fields.get(1) {
            Some(Value::BulkString(b)) => bytes::Bytes::copy_from_slice(b),
            _ => bytes::Bytes::new(),
        };
        page.push((offset, payload));
    }
    Ok(Page {
        last,
        oldest,
        entries: page,
    })
}

/// Count and log failed SENDs (the server refused them: never silently); mark the streams
/// found at their length limit. Returns the outcomes of the SENDs made with an origin, in
/// batch order, and the outcomes of the topic and queue SENDs, in batch order: a topic
/// SEND's offset (0: stored by an earlier try, offset unknown), 0 for a queue SEND.
/// `results` are the SENDs' replies.
fn report(
    config: &Config,
    shared: &NodeState,
    sends: &[Cmd],
    results: &[RedisResult<Value>],
) -> (
    Vec<Confirmation>,
    std::collections::VecDeque<Result<u64, Error>>,
) {
    let mut confirmations = Vec::new();
    let mut outcomes = std::collections::VecDeque::new();
    let mut i = 0;
    for cmd in sends {
        match cmd {
            Cmd::TopicPublish {
                destination,
                origin,
                ..
            } => {
                let outcome = match results.get(i) {
                    Some(Ok(Value::Int(offset))) if *offset >= 0 => Ok(offset.unsigned_abs()),
                    Some(result) => Err(Error::Redis(
                        is_server_error(result)
                            .unwrap_or_else(|| format!("unexpected reply {result:?}")),
                    )),
                    None => Err(Error::Redis("no reply".to_owned())),
                };
                if let Err(error) = &outcome {
                    shared.send_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        destination = loggable(destination),
                        error = loggable(&error.to_string()),
                        "redis refused a topic SEND"
                    );
                }
                confirm(&mut confirmations, origin, outcome.as_ref().err());
                outcomes.push_back(outcome);
                i += 1;
            }
            Cmd::Publish {
                channel, origin, ..
            } => {
                let result = results.get(i);
                match result.and_then(is_server_error) {
                    Some(why) => {
                        shared.send_failures.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(
                            channel = loggable(channel),
                            why,
                            "redis refused a topic SEND"
                        );
                        confirm(&mut confirmations, origin, Some(&Error::Redis(why)));
                    }
                    None if result.is_none() => {
                        shared.send_failures.fetch_add(1, Ordering::Relaxed);
                        let error = Error::Redis("no reply to PUBLISH".to_owned());
                        confirm(&mut confirmations, origin, Some(&error));
                    }
                    None => confirm(&mut confirmations, origin, None),
                }
                i += 1;
            }
            Cmd::XAdd {
                key,
                destination,
                origin,
                ..
            } => {
                let refused = |error: Error| {
                    shared.send_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        destination = loggable(destination),
                        error = loggable(&error.to_string()),
                        "an accepted SEND was refused by redis"
                    );
                    error
                };
                let outcome = match results.get(i) {
                    Some(Ok(Value::Int(-1))) => {
                        // Accepted by the engine before it knew the queue was full.
                        shared.set_full(key, true);
                        Err(refused(Error::QueueFull {
                            destination: destination.to_string(),
                            limit: config.max_queue_len,
                        }))
                    }
                    Some(Ok(Value::Int(-2))) => Err(refused(Error::QueueBytes {
                        destination: destination.to_string(),
                        limit: config.max_queue_bytes,
                    })),
                    // Stored by an earlier try of this pipeline.
                    Some(Ok(Value::Int(-3))) => Ok(0),
                    Some(Ok(Value::Int(len))) if *len >= 0 => {
                        let full =
                            usize::try_from(*len).unwrap_or(usize::MAX) >= config.max_queue_len;
                        shared.set_full(key, full);
                        Ok(0)
                    }
                    result => {
                        // An error, or a reply the script never gives: not known to be stored.
                        let why = match result {
                            Some(result) => is_server_error(result)
                                .unwrap_or_else(|| format!("unexpected reply {result:?}")),
                            None => "no reply".to_owned(),
                        };
                        Err(refused(Error::Redis(why)))
                    }
                };
                confirm(&mut confirmations, origin, outcome.as_ref().err());
                outcomes.push_back(outcome);
                i += 1;
            }
            Cmd::Barrier(_) => {}
        }
    }
    (confirmations, outcomes)
}
