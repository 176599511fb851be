//! The background tasks that talk to Redis; the engine never awaits.
//!
//! [`crate::RedisEngine`] is synchronous (the [`wsx_stomp::Engine`] trait is). It sends
//! [`Cmd`]s to these tasks over channels and gets [`crate::RedisEvent`]s back, which the I/O
//! layer hands to [`crate::RedisEngine::handle_event`]. The tasks:
//!
//! - the **writer**: one multiplexed connection; batches `PUBLISH`, `XADD`, acknowledgements
//!   and requeues (scripts), and `CLIENT UNBLOCK`s into pipelines, retrying a batch after a
//!   reconnect (so a SEND accepted by the engine is written at least once); once Redis has
//!   answered a batch, it reports the outcome of every SEND made with an origin
//!   ([`wsx_stomp::Origin`]) as a [`wsx_stomp::Confirmation`] (stored, or refused by the queue
//!   length script or an error), through the events; it checks its connection when idle, and
//!   alone sets [`crate::RedisMetrics::connected`];
//! - the **subscriber**: the node's single pub/sub connection; `SUBSCRIBE`s one channel per
//!   topic with local subscribers and forwards what arrives; resubscribes after a reconnect;
//! - one **reader** per queue with local consumers: a dedicated connection blocking in
//!   `XREADGROUP` for as many entries as the engine granted credit for, and, every quarter of
//!   the claim timeout, refreshing the idle time of the entries this node holds (`XCLAIM … JUSTID`)
//!   and taking over entries idle longer than the claim timeout (`XAUTOCLAIM`): those of a dead
//!   node.
//!
//! Every task reconnects with exponential backoff and counts re-established connections in
//! [`crate::RedisMetrics::reconnects`]. All of them stop when the engine is dropped.
//!
//! ## Stopping a reader
//!
//! The engine stops a reader by dropping its credit sender (the queue's last local consumer
//! left) and asks the writer to `CLIENT UNBLOCK` the reader's connection, before it gives the
//! entries it held back to the group. Entries still travel from the reader to the engine
//! meanwhile: those the reader forwarded and the engine has not taken (its [`Inflight`]), and
//! those its last read returned. The reader gives all of them back itself (through the
//! writer, before it ends), and the engine, which takes each forwarded entry out of the
//! reader's [`Inflight`] under its lock, ignores those the reader gave back. The reader ends
//! only then, so [`crate::RedisEngine::flushed`], which waits for the readers being stopped
//! before its writer barrier, resolves only once no entry of a queue without local consumers
//! is left pending at this node.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamAutoClaimReply, StreamId, StreamReadReply};
use redis::{AsyncConnectionConfig, Client, RedisResult, Value};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use wsx_stomp::{Confirmation, Origin};

use crate::{Config, Error, Shared};

/// What the engine asks the writer to do.
#[derive(Debug)]
pub(crate) enum Cmd {
    /// `PUBLISH channel payload` (a topic SEND).
    Publish {
        channel: String,
        payload: Bytes,
        /// Whom to confirm the SEND to, once Redis answered.
        origin: Option<Origin>,
    },
    /// `XADD key * m payload` (a queue SEND), through [`XADD_BOUNDED`]: refused when the
    /// stream holds [`Config::max_queue_len`] entries.
    XAdd {
        key: String,
        /// The queue, `/queue/NAME`, for the log when Redis refuses.
        destination: Arc<str>,
        payload: Bytes,
        /// Whom to confirm the SEND to, once Redis answered.
        origin: Option<Origin>,
    },
    /// `XACK` these entries, and `XDEL` those acknowledged ([`ACK`]): consumed for good.
    Ack { key: Arc<str>, ids: Vec<Arc<str>> },
    /// Give entries back to the group ([`REQUEUE`]): `XADD` a copy (the blob given, marked
    /// redelivered by the sender when it was delivered), `XACK` the original, and `XDEL` it
    /// if it was pending, atomically.
    Requeue {
        key: Arc<str>,
        entries: Vec<(Arc<str>, Bytes)>,
    },
    /// `CLIENT UNBLOCK id`: end a stopped reader's blocking read at once (it returns nothing).
    Unblock(u64),
    /// Answer once everything sent before is done.
    Barrier(oneshot::Sender<()>),
}

/// What the engine asks the subscriber to do.
#[derive(Debug)]
pub(crate) enum SubCmd {
    Subscribe(String),
    Unsubscribe(String),
    Barrier(oneshot::Sender<()>),
}

/// What the tasks report, through [`crate::RedisEvent`].
#[derive(Debug)]
pub(crate) enum Incoming {
    /// A message on a topic channel.
    Topic(Bytes),
    /// A queue entry this node now owns (read or claimed).
    Entry {
        key: Arc<str>,
        id: Arc<str>,
        payload: Bytes,
        /// Taken over from another consumer (`XAUTOCLAIM`): delivered before.
        claimed: bool,
        /// The reader's entries on their way to the engine: the engine takes this one out
        /// ([`take`]) before it handles it, or ignores it when the reader gave it back.
        inflight: Inflight,
    },
    /// The outcomes of SENDs made with an origin, in the order they were written.
    Confirmed(Vec<Confirmation>),
}

pub(crate) type Events = mpsc::UnboundedSender<Incoming>;

/// The entries a reader forwarded to the engine that the engine has not taken yet: entry id
/// to (order forwarded, blob, claimed). Whoever removes an entry — the engine handling it, or
/// the stopped reader giving everything left back — is responsible for it.
pub(crate) type Inflight = Arc<Mutex<HashMap<Arc<str>, (u64, Bytes, bool)>>>;

/// Take entry `id` out of `inflight`: whether it was still there (the engine now owns it).
/// `then` runs under the lock, so what it sends is sent before a stopping reader is done.
pub(crate) fn take<R>(inflight: &Inflight, id: &str, then: impl FnOnce(bool) -> R) -> R {
    let mut map = inflight.lock().unwrap_or_else(PoisonError::into_inner);
    then(map.remove(id).is_some())
}

/// Acknowledge entries: `XACK` each, and `XDEL` it only if it was pending. An acknowledgement
/// that comes late (after Redis lost the stream and it was created again, its ids starting
/// over) must not delete a new entry that happens to have the same id.
const ACK: &str = "\
local n = 0
for i = 2, #ARGV do
  if redis.call('XACK', KEYS[1], ARGV[1], ARGV[i]) == 1 then
    redis.call('XDEL', KEYS[1], ARGV[i])
    n = n + 1
  end
end
return n";

/// Give entries back (pairs of id and blob after the group): a copy of each is added, the
/// original acknowledged, and deleted if it was pending (see [`ACK`]). The copy is added even
/// when the original is no longer pending (Redis lost the group): at least once.
const REQUEUE: &str = "\
for i = 2, #ARGV, 2 do
  redis.call('XADD', KEYS[1], '*', 'm', ARGV[i + 1])
  if redis.call('XACK', KEYS[1], ARGV[1], ARGV[i]) == 1 then
    redis.call('XDEL', KEYS[1], ARGV[i])
  end
end
return 1";

/// A queue SEND: `XADD` unless the stream already holds `ARGV[2]` entries. Returns the new
/// length, or -1 when refused. Acknowledged entries are deleted (`XDEL`), so the length counts
/// the entries not delivered yet or not acknowledged yet; nothing is ever trimmed.
const XADD_BOUNDED: &str = "\
local len = redis.call('XLEN', KEYS[1])
if len >= tonumber(ARGV[2]) then return -1 end
redis.call('XADD', KEYS[1], '*', 'm', ARGV[1])
return len + 1";

/// How often the writer checks whether streams marked full have room again.
const FULL_RECHECK: Duration = Duration::from_millis(500);

/// How long the writer's connection may go unused before the writer checks it (`PING`), so
/// that [`crate::RedisMetrics::connected`] turns false when Redis goes away, and the writer
/// reconnects when it comes back, even without SENDs.
const KEEPALIVE: Duration = Duration::from_secs(1);

/// Connect with backoff until it works or the engine goes away (`None`).
async fn connect(
    client: &Client,
    config: &Config,
    response_timeout: Option<Duration>,
    shutdown: &mut watch::Receiver<()>,
    what: &str,
) -> Option<MultiplexedConnection> {
    let mut delay = config.backoff_min;
    loop {
        let settings = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(response_timeout);
        match client
            .get_multiplexed_async_connection_with_config(&settings)
            .await
        {
            Ok(conn) => return Some(conn),
            Err(error) => {
                tracing::debug!(%error, what, "redis connect failed; retrying in {delay:?}");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.changed() => return None,
        }
        delay = (delay * 2).min(config.backoff_max);
    }
}

fn is_server_error(result: &RedisResult<Value>) -> Option<String> {
    match result {
        Ok(Value::ServerError(e)) => Some(format!("{e:?}")),
        Err(e) => Some(e.to_string()),
        Ok(_) => None,
    }
}

/// The writer's connection, and the node's `connected` flag, which only the writer sets: it
/// tells whether the writer's connection is up (as of its last use or check).
struct WriterConn<'a> {
    client: &'a Client,
    config: &'a Config,
    shared: &'a Shared,
    conn: Option<MultiplexedConnection>,
    /// A connection was lost: the next one counts as a reconnect.
    lost: bool,
    /// When Redis last answered on `conn`.
    last_ok: Instant,
}

impl WriterConn<'_> {
    const TIMEOUT: Option<Duration> = Some(Duration::from_secs(5));

    /// The connection, connecting (with backoff) if need be; `None` once the engine is gone.
    async fn get(
        &mut self,
        shutdown: &mut watch::Receiver<()>,
    ) -> Option<&mut MultiplexedConnection> {
        if self.conn.is_none() {
            let c = connect(self.client, self.config, Self::TIMEOUT, shutdown, "writer").await?;
            if self.lost {
                self.shared.reconnects.fetch_add(1, Ordering::Relaxed);
            }
            self.shared.connected.store(true, Ordering::Relaxed);
            self.last_ok = Instant::now();
            self.conn = Some(c);
        }
        self.conn.as_mut()
    }

    /// Redis answered.
    fn ok(&mut self) {
        self.last_ok = Instant::now();
    }

    /// The connection failed: drop it.
    fn failed(&mut self, error: &redis::RedisError) {
        tracing::warn!(%error, "redis writer lost its connection; reconnecting");
        self.shared.connected.store(false, Ordering::Relaxed);
        self.conn = None;
        self.lost = true;
    }
}

/// The writer task: batches commands into pipelines and retries them across reconnects.
pub(crate) async fn writer(
    client: Client,
    config: Arc<Config>,
    shared: Arc<Shared>,
    mut rx: mpsc::UnboundedReceiver<Cmd>,
    events: Events,
    mut shutdown: watch::Receiver<()>,
) {
    let mut w = WriterConn {
        client: &client,
        config: &config,
        shared: &shared,
        conn: None,
        lost: false,
        last_ok: Instant::now(),
    };
    // Connect at once, so that `connected` tells the truth before the first SEND.
    if w.get(&mut shutdown).await.is_none() {
        return;
    }
    let mut batch: Vec<Cmd> = Vec::new();
    let mut recheck = tokio::time::interval(FULL_RECHECK);
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let first = tokio::select! {
            cmd = rx.recv() => cmd,
            _ = recheck.tick() => {
                // Marks clear only through this check (SENDs to a marked queue never reach
                // the writer); an idle connection is checked, a lost one re-established.
                let full = !shared.full_streams().is_empty();
                if !full && w.conn.is_some() && w.last_ok.elapsed() < KEEPALIVE {
                    continue;
                }
                let Some(c) = w.get(&mut shutdown).await else {
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
            _ = shutdown.changed() => None,
        };
        let Some(first) = first else { return };
        batch.push(first);
        while batch.len() < 512 {
            match rx.try_recv() {
                Ok(cmd) => batch.push(cmd),
                Err(_) => break,
            }
        }
        // Run the batch until Redis answers it.
        loop {
            let Some(c) = w.get(&mut shutdown).await else {
                return;
            };
            match run_batch(c, &config, &batch).await {
                Ok(results) => {
                    w.ok();
                    let confirmations = report(&config, &shared, &batch, &results);
                    // Before the barriers of the batch are answered.
                    if !confirmations.is_empty() {
                        let _ = events.send(Incoming::Confirmed(confirmations));
                    }
                    break;
                }
                Err(error) => w.failed(&error),
            }
        }
        for cmd in batch.drain(..) {
            match cmd {
                Cmd::Barrier(done) => {
                    let _ = done.send(());
                }
                Cmd::Publish { .. } | Cmd::XAdd { .. } => {
                    shared.pending_sends.fetch_sub(1, Ordering::Relaxed);
                }
                Cmd::Ack { .. } | Cmd::Requeue { .. } | Cmd::Unblock(_) => {}
            }
        }
    }
}

/// One pipeline for the whole batch; per-command server errors come back as values.
async fn run_batch(
    conn: &mut MultiplexedConnection,
    config: &Config,
    batch: &[Cmd],
) -> RedisResult<Vec<RedisResult<Value>>> {
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    let mut n = 0;
    for cmd in batch {
        match cmd {
            Cmd::Publish {
                channel, payload, ..
            } => {
                pipe.cmd("PUBLISH").arg(channel).arg(payload.as_ref());
                n += 1;
            }
            Cmd::XAdd { key, payload, .. } => {
                pipe.cmd("EVAL")
                    .arg(XADD_BOUNDED)
                    .arg(1)
                    .arg(key)
                    .arg(payload.as_ref())
                    .arg(config.max_queue_len);
                n += 1;
            }
            Cmd::Ack { key, ids } => {
                let ids: Vec<&str> = ids.iter().map(|id| &**id).collect();
                pipe.cmd("EVAL")
                    .arg(ACK)
                    .arg(1)
                    .arg(&**key)
                    .arg(&config.group)
                    .arg(&ids);
                n += 1;
            }
            Cmd::Requeue { key, entries } => {
                let eval = pipe
                    .cmd("EVAL")
                    .arg(REQUEUE)
                    .arg(1)
                    .arg(&**key)
                    .arg(&config.group);
                for (id, payload) in entries {
                    eval.arg(&**id).arg(payload.as_ref());
                }
                n += 1;
            }
            Cmd::Unblock(client) => {
                pipe.cmd("CLIENT").arg("UNBLOCK").arg(*client);
                n += 1;
            }
            Cmd::Barrier(_) => {}
        }
    }
    if n == 0 {
        return Ok(Vec::new());
    }
    let results: Vec<RedisResult<Value>> = pipe.query_async(conn).await?;
    Ok(results)
}

/// Clear the full mark of streams that have room again (consumers acknowledged entries).
async fn recheck_full(
    conn: &mut MultiplexedConnection,
    config: &Config,
    shared: &Shared,
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
            tracing::debug!(key, len, "queue has room again");
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

/// Count and log failed SENDs (the server refused them: never silently); mark the streams
/// found at their length limit. Returns the outcomes of the SENDs made with an origin, in
/// batch order.
fn report(
    config: &Config,
    shared: &Shared,
    batch: &[Cmd],
    results: &[RedisResult<Value>],
) -> Vec<Confirmation> {
    let mut confirmations = Vec::new();
    let mut i = 0;
    for cmd in batch {
        match cmd {
            Cmd::Publish {
                channel, origin, ..
            } => {
                let result = results.get(i);
                match result.and_then(is_server_error) {
                    Some(why) => {
                        shared.send_failures.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(channel, why, "redis refused a topic SEND");
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
                match results.get(i) {
                    Some(Ok(Value::Int(len))) if *len < 0 => {
                        // Accepted by the engine before it knew the queue was full.
                        shared.send_failures.fetch_add(1, Ordering::Relaxed);
                        shared.set_full(key, true);
                        tracing::warn!(
                            destination = &**destination,
                            limit = config.max_queue_len,
                            "queue full: an accepted SEND was refused by redis"
                        );
                        let error = Error::QueueFull {
                            destination: destination.to_string(),
                            limit: config.max_queue_len,
                        };
                        confirm(&mut confirmations, origin, Some(&error));
                    }
                    Some(Ok(Value::Int(len))) => {
                        let full =
                            usize::try_from(*len).unwrap_or(usize::MAX) >= config.max_queue_len;
                        shared.set_full(key, full);
                        confirm(&mut confirmations, origin, None);
                    }
                    result => {
                        // An error, or a reply the script never gives: not known to be stored.
                        let why = match result {
                            Some(result) => is_server_error(result)
                                .unwrap_or_else(|| format!("unexpected reply {result:?}")),
                            None => "no reply".to_owned(),
                        };
                        shared.send_failures.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(
                            destination = &**destination,
                            why,
                            "redis refused a queue SEND"
                        );
                        confirm(&mut confirmations, origin, Some(&Error::Redis(why)));
                    }
                }
                i += 1;
            }
            Cmd::Ack { key, .. } => {
                if let Some(why) = results.get(i).and_then(is_server_error) {
                    tracing::debug!(key = &**key, why, "XACK failed");
                }
                i += 1;
            }
            Cmd::Requeue { key, .. } => {
                if let Some(why) = results.get(i).and_then(is_server_error) {
                    tracing::warn!(key = &**key, why, "requeue failed; entries stay pending");
                }
                i += 1;
            }
            Cmd::Unblock(_) => {
                // Refused (CLIENT not allowed): the read ends at its BLOCK timeout instead.
                i += 1;
            }
            Cmd::Barrier(_) => {}
        }
    }
    confirmations
}

/// The subscriber task: the node's one pub/sub connection.
pub(crate) async fn subscriber(
    client: Client,
    config: Arc<Config>,
    shared: Arc<Shared>,
    mut rx: mpsc::UnboundedReceiver<SubCmd>,
    events: Events,
    mut shutdown: watch::Receiver<()>,
) {
    let mut channels: HashSet<String> = HashSet::new();
    let mut lost = false;
    let mut delay = config.backoff_min;
    loop {
        let pubsub = tokio::select! {
            r = client.get_async_pubsub() => r,
            _ = shutdown.changed() => return,
        };
        let (mut sink, mut stream) = match pubsub {
            Ok(p) => p.split(),
            Err(error) => {
                tracing::debug!(%error, "redis pub/sub connect failed; retrying in {delay:?}");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.changed() => return,
                }
                delay = (delay * 2).min(config.backoff_max);
                continue;
            }
        };
        delay = config.backoff_min;
        let mut ok = true;
        if !channels.is_empty() {
            let all: Vec<&String> = channels.iter().collect();
            ok = sink.subscribe(&all).await.is_ok();
        }
        if ok && lost {
            shared.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        while ok {
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    None => return,
                    Some(SubCmd::Subscribe(channel)) => {
                        ok = sink.subscribe(&channel).await.is_ok();
                        channels.insert(channel);
                    }
                    Some(SubCmd::Unsubscribe(channel)) => {
                        channels.remove(&channel);
                        ok = sink.unsubscribe(&channel).await.is_ok();
                    }
                    Some(SubCmd::Barrier(done)) => {
                        let _ = done.send(());
                    }
                },
                msg = stream.next() => match msg {
                    Some(msg) => {
                        let payload = Bytes::copy_from_slice(msg.get_payload_bytes());
                        if events.send(Incoming::Topic(payload)).is_err() {
                            return;
                        }
                    }
                    None => ok = false,
                },
                _ = shutdown.changed() => return,
            }
        }
        tracing::warn!("redis pub/sub connection lost; reconnecting");
        lost = true;
    }
}

/// A queue reader: fetch with credit, keep owned entries fresh, claim dead nodes' entries.
/// Stopped by the engine dropping its credit sender (see the module docs).
pub(crate) struct Reader {
    pub client: Client,
    pub config: Arc<Config>,
    pub shared: Arc<Shared>,
    pub key: Arc<str>,
    pub credit: mpsc::UnboundedReceiver<usize>,
    pub events: Events,
    /// The writer: a stopped reader gives entries back through it.
    pub writer: mpsc::UnboundedSender<Cmd>,
    /// Entries forwarded and not taken by the engine yet.
    pub inflight: Inflight,
    /// The Redis client id of the reader's connection (0: none), for `CLIENT UNBLOCK`.
    pub client_id: Arc<AtomicU64>,
    pub shutdown: watch::Receiver<()>,
    /// Dropped when the reader ends, after it gave back what it had to.
    pub _done: watch::Sender<()>,
}

/// What ended a wait of the reader.
enum Woken<T> {
    Done(T),
    Stopped,
    Shutdown,
}

/// Resolves once the engine dropped the credit sender; credit granted meanwhile is added.
async fn stopped(rx: &mut mpsc::UnboundedReceiver<usize>, credit: &mut usize) {
    while let Some(n) = rx.recv().await {
        *credit = credit.saturating_add(n);
    }
}

impl Reader {
    pub(crate) async fn run(mut self) {
        // Refresh owned entries every quarter of the claim timeout; a blocking read lasts at
        // most an eighth of it, so a live node never lets its entries look idle for long.
        let tick = self.config.claim_timeout / 4;
        let block = Duration::from_millis(500)
            .min(self.config.claim_timeout / 8)
            .max(Duration::from_millis(10));
        let timeout = Some(block + Duration::from_secs(5));
        let mut credit = 0usize;
        let mut lost = false;
        // Order in which entries were forwarded (to give them back in that order).
        let mut seq = 0u64;
        'connect: loop {
            self.client_id.store(0, Ordering::Relaxed);
            let connecting = connect(
                &self.client,
                &self.config,
                timeout,
                &mut self.shutdown,
                "reader",
            );
            let woken = tokio::select! {
                c = connecting => match c {
                    Some(c) => Woken::Done(c),
                    None => Woken::Shutdown,
                },
                () = stopped(&mut self.credit, &mut credit) => Woken::Stopped,
            };
            let mut conn = match woken {
                Woken::Done(conn) => conn,
                Woken::Stopped => return self.give_back(Vec::new()),
                Woken::Shutdown => return,
            };
            // Without it (CLIENT refused) a stopped reader's read ends at its BLOCK timeout.
            if let Ok(id) = redis::cmd("CLIENT")
                .arg("ID")
                .query_async::<u64>(&mut conn)
                .await
            {
                self.client_id.store(id, Ordering::Relaxed);
            }
            if let Err(error) = self.ensure_group(&mut conn).await {
                tracing::warn!(%error, key = &*self.key, "XGROUP CREATE failed");
                lost = true;
                tokio::time::sleep(self.config.backoff_min).await;
                continue;
            }
            if lost {
                self.shared.reconnects.fetch_add(1, Ordering::Relaxed);
            }
            let mut next_tick = Instant::now();
            loop {
                // Take granted credit; stop when the engine dropped this reader.
                if self.take_credit(&mut credit) {
                    return self.give_back(Vec::new());
                }
                if Instant::now() >= next_tick {
                    next_tick = Instant::now() + tick;
                    match self.maintain(&mut conn, &mut credit, &mut seq).await {
                        Ok(true) => {}
                        Ok(false) => return,
                        Err(error) => {
                            tracing::warn!(%error, key = &*self.key, "redis reader lost its connection");
                            lost = true;
                            continue 'connect;
                        }
                    }
                    continue;
                }
                if credit == 0 {
                    let woken = tokio::select! {
                        n = self.credit.recv() => match n {
                            Some(n) => Woken::Done(n),
                            None => Woken::Stopped,
                        },
                        _ = tokio::time::sleep_until(next_tick) => Woken::Done(0),
                        _ = self.shutdown.changed() => Woken::Shutdown,
                    };
                    match woken {
                        Woken::Done(n) => credit = credit.saturating_add(n),
                        Woken::Stopped => return self.give_back(Vec::new()),
                        Woken::Shutdown => return,
                    }
                    continue;
                }
                let count = credit.min(512);
                let mut cmd = redis::cmd("XREADGROUP");
                cmd.arg("GROUP")
                    .arg(&self.config.group)
                    .arg(&self.config.node_id)
                    .arg("COUNT")
                    .arg(count)
                    .arg("BLOCK")
                    .arg(u64::try_from(block.as_millis()).unwrap_or(500))
                    .arg("STREAMS")
                    .arg(&*self.key)
                    .arg(">");
                // The read is never abandoned once sent (Redis would hand the entries to this
                // consumer all the same): when the engine stops the reader meanwhile, it is
                // unblocked, and what it returns is given back.
                let mut stopping = false;
                let reply = {
                    let read = cmd.query_async::<Option<StreamReadReply>>(&mut conn);
                    tokio::pin!(read);
                    loop {
                        let woken = tokio::select! {
                            r = &mut read => Woken::Done(r),
                            () = stopped(&mut self.credit, &mut credit), if !stopping => {
                                Woken::Stopped
                            }
                            _ = self.shutdown.changed() => Woken::Shutdown,
                        };
                        match woken {
                            Woken::Done(r) => break r,
                            Woken::Stopped => {
                                stopping = true;
                                self.unblock();
                            }
                            Woken::Shutdown => return,
                        }
                    }
                };
                if stopping || self.take_credit(&mut credit) {
                    let fresh = match reply {
                        Ok(reply) => reply
                            .into_iter()
                            .flat_map(|r| r.keys)
                            .flat_map(|k| k.ids)
                            .map(|entry| (Arc::from(entry.id.as_str()), blob(&entry)))
                            .collect(),
                        Err(_) => Vec::new(),
                    };
                    return self.give_back(fresh);
                }
                match reply {
                    Ok(reply) => {
                        let entries = reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids);
                        if !self.forward(entries, false, &mut credit, &mut seq) {
                            return;
                        }
                    }
                    // Redis lost the group (restart without persistence), or the stream was
                    // deleted under the blocked read: create it again. Entries added since are
                    // read: the group starts at the stream's beginning.
                    Err(error) if matches!(error.code(), Some("NOGROUP" | "UNBLOCKED")) => {
                        if let Err(error) = self.ensure_group(&mut conn).await {
                            tracing::warn!(%error, "XGROUP CREATE failed");
                            lost = true;
                            continue 'connect;
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, key = &*self.key, "redis reader lost its connection");
                        lost = true;
                        continue 'connect;
                    }
                }
            }
        }
    }

    /// Add the credit granted; `true` when the engine dropped this reader.
    fn take_credit(&mut self, credit: &mut usize) -> bool {
        loop {
            match self.credit.try_recv() {
                Ok(n) => *credit = credit.saturating_add(n),
                Err(mpsc::error::TryRecvError::Empty) => return false,
                Err(mpsc::error::TryRecvError::Disconnected) => return true,
            }
        }
    }

    /// Ask the writer to end this reader's blocking read at once.
    fn unblock(&self) {
        let id = self.client_id.load(Ordering::Relaxed);
        if id != 0 {
            let _ = self.writer.send(Cmd::Unblock(id));
        }
    }

    /// The reader was stopped: give back to the group, through the writer, the entries it
    /// forwarded that the engine has not taken (in the order read) and `fresh`, those its last
    /// read returned. The reader ends right after (dropping `done`).
    fn give_back(&self, fresh: Vec<(Arc<str>, Bytes)>) {
        let mut left: Vec<(u64, Arc<str>, Bytes, bool)> = self
            .inflight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain()
            .map(|(id, (n, blob, claimed))| (n, id, blob, claimed))
            .collect();
        left.sort_unstable_by_key(|entry| entry.0);
        let mut entries: Vec<(Arc<str>, Bytes)> = left
            .into_iter()
            .map(|(_, id, blob, claimed)| {
                // Claimed entries were delivered by the node that died; the others never were.
                let blob = if claimed {
                    crate::codec::mark_redelivered(&blob)
                } else {
                    blob
                };
                (id, blob)
            })
            .collect();
        entries.extend(fresh);
        if entries.is_empty() {
            return;
        }
        let ids: Vec<Arc<str>> = entries.iter().map(|(id, _)| id.clone()).collect();
        self.shared.forget(&self.key, &ids);
        tracing::debug!(
            key = &*self.key,
            n = entries.len(),
            "stopped reader gives its entries back"
        );
        let _ = self.writer.send(Cmd::Requeue {
            key: self.key.clone(),
            entries,
        });
    }

    async fn ensure_group(&self, conn: &mut MultiplexedConnection) -> RedisResult<()> {
        let created: RedisResult<Value> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&*self.key)
            .arg(&self.config.group)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(conn)
            .await;
        match created {
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            Err(e) => Err(e),
            Ok(_) => Ok(()),
        }
    }

    /// Hand entries to the engine; `false` when the engine is gone.
    fn forward(
        &self,
        entries: impl Iterator<Item = StreamId>,
        claimed: bool,
        credit: &mut usize,
        seq: &mut u64,
    ) -> bool {
        for entry in entries {
            *credit = credit.saturating_sub(1);
            let payload = blob(&entry);
            let id: Arc<str> = Arc::from(entry.id.as_str());
            if let Ok(mut owned) = self.shared.owned.lock() {
                owned
                    .entry(self.key.clone())
                    .or_default()
                    .insert(id.clone());
            }
            *seq += 1;
            self.inflight
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(id.clone(), (*seq, payload.clone(), claimed));
            let event = Incoming::Entry {
                key: self.key.clone(),
                id,
                payload,
                claimed,
                inflight: self.inflight.clone(),
            };
            if self.events.send(event).is_err() {
                return false;
            }
        }
        true
    }

    /// Refresh the idle time of owned entries and claim those of dead nodes.
    async fn maintain(
        &self,
        conn: &mut MultiplexedConnection,
        credit: &mut usize,
        seq: &mut u64,
    ) -> RedisResult<bool> {
        let owned: Vec<Arc<str>> = match self.shared.owned.lock() {
            Ok(owned) => owned
                .get(&self.key)
                .map(|s| s.iter().cloned().collect())
                .unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        for chunk in owned.chunks(256) {
            let ids: Vec<&str> = chunk.iter().map(|id| &**id).collect();
            let _: Value = redis::cmd("XCLAIM")
                .arg(&*self.key)
                .arg(&self.config.group)
                .arg(&self.config.node_id)
                .arg(0)
                .arg(&ids)
                .arg("JUSTID")
                .query_async(conn)
                .await
                .or_else(|e| {
                    if e.code().is_some() {
                        Ok(Value::Nil)
                    } else {
                        Err(e)
                    }
                })?;
        }
        let min_idle = u64::try_from(self.config.claim_timeout.as_millis()).unwrap_or(u64::MAX);
        let mut start = String::from("0-0");
        loop {
            let reply: RedisResult<StreamAutoClaimReply> = redis::cmd("XAUTOCLAIM")
                .arg(&*self.key)
                .arg(&self.config.group)
                .arg(&self.config.node_id)
                .arg(min_idle)
                .arg(&start)
                .arg("COUNT")
                .arg(100)
                .query_async(conn)
                .await;
            let reply = match reply {
                Ok(reply) => reply,
                Err(e) if e.code().is_some() => return Ok(true), // NOGROUP: the reader recreates it
                Err(e) => return Err(e),
            };
            let mine: HashSet<Arc<str>> = owned.iter().cloned().collect();
            let claimed = reply
                .claimed
                .into_iter()
                .filter(|e| !mine.contains(e.id.as_str()));
            if !self.forward(claimed, true, credit, seq) {
                return Ok(false);
            }
            if reply.next_stream_id == "0-0" || reply.next_stream_id == start {
                return Ok(true);
            }
            start = reply.next_stream_id;
        }
    }
}

/// The stored blob of an entry (empty when it has none: the engine reports and acknowledges
/// it).
fn blob(entry: &StreamId) -> Bytes {
    match entry.map.get("m") {
        Some(Value::BulkString(b)) => Bytes::copy_from_slice(b),
        _ => Bytes::new(),
    }
}

/// Grant `n` more entries to a reader.
pub(crate) fn grant(tx: &mpsc::UnboundedSender<usize>, n: usize) {
    if n > 0 {
        let _ = tx.send(n);
    }
}
