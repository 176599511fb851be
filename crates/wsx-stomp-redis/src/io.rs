//! The background tasks that talk to Redis; the engine never awaits.
//!
//! [`crate::RedisEngine`] is synchronous (the [`wsx_stomp::Engine`] trait is). It sends
//! [`Cmd`]s to these tasks over channels and gets [`crate::RedisEvent`]s back, which the I/O
//! layer hands to [`crate::RedisEngine::handle_event`]. The tasks:
//!
//! - the **writer**: one multiplexed connection; batches `PUBLISH`, `XADD`, `XACK`/`XDEL` and
//!   requeues into pipelines, retrying a batch after a reconnect (so a SEND accepted by the
//!   engine is written at least once);
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

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamAutoClaimReply, StreamId, StreamReadReply};
use redis::{AsyncConnectionConfig, Client, RedisResult, Value};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::{Config, Shared};

/// What the engine asks the writer to do.
#[derive(Debug)]
pub(crate) enum Cmd {
    /// `PUBLISH channel payload` (a topic SEND).
    Publish { channel: String, payload: Bytes },
    /// `XADD key * m payload` (a queue SEND), through [`XADD_BOUNDED`]: refused when the
    /// stream holds [`Config::max_queue_len`] entries.
    XAdd {
        key: String,
        /// The queue, `/queue/NAME`, for the log when Redis refuses.
        destination: Arc<str>,
        payload: Bytes,
    },
    /// `XACK` + `XDEL` these entries: consumed for good.
    Ack { key: Arc<str>, ids: Vec<Arc<str>> },
    /// Give entries back to the group: `XADD` a copy marked redelivered, `XACK` + `XDEL` the
    /// original, in one `MULTI`.
    Requeue {
        key: Arc<str>,
        entries: Vec<(Arc<str>, Bytes)>,
    },
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
    },
}

pub(crate) type Events = mpsc::UnboundedSender<Incoming>;

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

/// Connect with backoff until it works or the engine goes away (`None`).
async fn connect(
    client: &Client,
    config: &Config,
    shared: &Shared,
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
                shared.connected.store(false, Ordering::Relaxed);
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

/// The writer task: batches commands into pipelines and retries them across reconnects.
pub(crate) async fn writer(
    client: Client,
    config: Arc<Config>,
    shared: Arc<Shared>,
    mut rx: mpsc::UnboundedReceiver<Cmd>,
    mut shutdown: watch::Receiver<()>,
) {
    let timeout = Some(Duration::from_secs(5));
    // Connect at once, so that `connected` tells the truth before the first SEND.
    let Some(first) = connect(&client, &config, &shared, timeout, &mut shutdown, "writer").await
    else {
        return;
    };
    shared.connected.store(true, Ordering::Relaxed);
    let mut conn = Some(first);
    let mut lost = false;
    let mut batch: Vec<Cmd> = Vec::new();
    let mut recheck = tokio::time::interval(FULL_RECHECK);
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let first = tokio::select! {
            cmd = rx.recv() => cmd,
            _ = recheck.tick() => {
                if shared.full_streams().is_empty() {
                    continue;
                }
                // Marks clear only through this check (SENDs to a marked queue never reach
                // the writer), so reconnect for it if need be.
                if conn.is_none() {
                    let Some(c) =
                        connect(&client, &config, &shared, timeout, &mut shutdown, "writer").await
                    else {
                        return;
                    };
                    if lost {
                        shared.reconnects.fetch_add(1, Ordering::Relaxed);
                    }
                    shared.connected.store(true, Ordering::Relaxed);
                    conn = Some(c);
                }
                if let Some(c) = conn.as_mut()
                    && let Err(error) = recheck_full(c, &config, &shared).await
                {
                    tracing::warn!(%error, "redis writer lost its connection; reconnecting");
                    shared.connected.store(false, Ordering::Relaxed);
                    conn = None;
                    lost = true;
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
            let c = match conn.as_mut() {
                Some(c) => c,
                None => {
                    let Some(c) =
                        connect(&client, &config, &shared, timeout, &mut shutdown, "writer").await
                    else {
                        return;
                    };
                    if lost {
                        shared.reconnects.fetch_add(1, Ordering::Relaxed);
                    }
                    shared.connected.store(true, Ordering::Relaxed);
                    conn.insert(c)
                }
            };
            match run_batch(c, &config, &batch).await {
                Ok(results) => {
                    report(&config, &shared, &batch, &results);
                    break;
                }
                Err(error) => {
                    tracing::warn!(%error, "redis writer lost its connection; reconnecting");
                    shared.connected.store(false, Ordering::Relaxed);
                    conn = None;
                    lost = true;
                }
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
                Cmd::Ack { .. } | Cmd::Requeue { .. } => {}
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
            Cmd::Publish { channel, payload } => {
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
                pipe.cmd("XACK")
                    .arg(&**key)
                    .arg(&config.group)
                    .arg(&ids)
                    .cmd("XDEL")
                    .arg(&**key)
                    .arg(&ids);
                n += 2;
            }
            Cmd::Requeue { key, entries } => {
                // MULTI/EXEC inside the pipeline: the copy and the ack happen together.
                pipe.cmd("MULTI");
                for (id, payload) in entries {
                    let copy = crate::codec::mark_redelivered(payload);
                    pipe.cmd("XADD")
                        .arg(&**key)
                        .arg("*")
                        .arg("m")
                        .arg(copy.as_ref())
                        .cmd("XACK")
                        .arg(&**key)
                        .arg(&config.group)
                        .arg(&**id)
                        .cmd("XDEL")
                        .arg(&**key)
                        .arg(&**id);
                }
                pipe.cmd("EXEC");
                n += 2 + 3 * entries.len();
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

/// Count and log failed SENDs (the server refused them: never silently); mark the streams
/// found at their length limit.
fn report(config: &Config, shared: &Shared, batch: &[Cmd], results: &[RedisResult<Value>]) {
    let mut i = 0;
    for cmd in batch {
        match cmd {
            Cmd::Publish { channel, .. } => {
                if let Some(why) = results.get(i).and_then(is_server_error) {
                    shared.send_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(channel, why, "redis refused a topic SEND");
                }
                i += 1;
            }
            Cmd::XAdd {
                key, destination, ..
            } => {
                match results.get(i) {
                    Some(Ok(Value::Int(len))) if *len < 0 => {
                        // Accepted by the engine before it knew the queue was full.
                        shared.send_failures.fetch_add(1, Ordering::Relaxed);
                        shared.set_full(key, true);
                        tracing::warn!(
                            destination = &**destination,
                            limit = config.max_queue_len,
                            "queue full: an accepted SEND was refused by redis and is lost"
                        );
                    }
                    Some(Ok(Value::Int(len))) => {
                        let full =
                            usize::try_from(*len).unwrap_or(usize::MAX) >= config.max_queue_len;
                        shared.set_full(key, full);
                    }
                    result => {
                        if let Some(why) = result.and_then(is_server_error) {
                            shared.send_failures.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(
                                destination = &**destination,
                                why,
                                "redis refused a queue SEND"
                            );
                        }
                    }
                }
                i += 1;
            }
            Cmd::Ack { key, .. } => {
                if let Some(why) = results.get(i).and_then(is_server_error) {
                    // NOGROUP after Redis lost its data: nothing left to acknowledge.
                    tracing::debug!(key = &**key, why, "XACK failed");
                }
                i += 2;
            }
            Cmd::Requeue { key, entries } => {
                let exec = i + 1 + 3 * entries.len();
                if let Some(why) = results.get(exec).and_then(is_server_error) {
                    tracing::warn!(key = &**key, why, "requeue failed; entries stay pending");
                }
                i = exec + 1;
            }
            Cmd::Barrier(_) => {}
        }
    }
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
pub(crate) struct Reader {
    pub client: Client,
    pub config: Arc<Config>,
    pub shared: Arc<Shared>,
    pub key: Arc<str>,
    pub credit: mpsc::UnboundedReceiver<usize>,
    pub events: Events,
    pub shutdown: watch::Receiver<()>,
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
        'connect: loop {
            let Some(mut conn) = connect(
                &self.client,
                &self.config,
                &self.shared,
                timeout,
                &mut self.shutdown,
                "reader",
            )
            .await
            else {
                return;
            };
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
                loop {
                    match self.credit.try_recv() {
                        Ok(n) => credit = credit.saturating_add(n),
                        Err(mpsc::error::TryRecvError::Empty) => break,
                        Err(mpsc::error::TryRecvError::Disconnected) => return,
                    }
                }
                if Instant::now() >= next_tick {
                    next_tick = Instant::now() + tick;
                    match self.maintain(&mut conn, &mut credit).await {
                        Ok(true) => {}
                        Ok(false) => return,
                        Err(error) => {
                            tracing::warn!(%error, key = &*self.key, "redis reader lost its connection");
                            lost = true;
                            continue 'connect;
                        }
                    }
                }
                if credit == 0 {
                    tokio::select! {
                        n = self.credit.recv() => match n {
                            Some(n) => credit = credit.saturating_add(n),
                            None => return,
                        },
                        _ = tokio::time::sleep_until(next_tick) => {}
                        _ = self.shutdown.changed() => return,
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
                let read = cmd.query_async::<Option<StreamReadReply>>(&mut conn);
                let reply = tokio::select! {
                    r = read => r,
                    _ = self.shutdown.changed() => return,
                };
                match reply {
                    Ok(reply) => {
                        let entries = reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids);
                        match self.forward(entries, false, &mut credit) {
                            true => {}
                            false => return,
                        }
                    }
                    Err(error) if error.code() == Some("NOGROUP") => {
                        // Redis lost the group (restart without persistence): create it again.
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
    ) -> bool {
        for entry in entries {
            *credit = credit.saturating_sub(1);
            let payload = match entry.map.get("m") {
                Some(Value::BulkString(b)) => Bytes::copy_from_slice(b),
                _ => Bytes::new(), // the engine reports and acknowledges it
            };
            let id: Arc<str> = Arc::from(entry.id.as_str());
            if let Ok(mut owned) = self.shared.owned.lock() {
                owned
                    .entry(self.key.clone())
                    .or_default()
                    .insert(id.clone());
            }
            let event = Incoming::Entry {
                key: self.key.clone(),
                id,
                payload,
                claimed,
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
            if !self.forward(claimed, true, credit) {
                return Ok(false);
            }
            if reply.next_stream_id == "0-0" || reply.next_stream_id == start {
                return Ok(true);
            }
            start = reply.next_stream_id;
        }
    }
}

/// Grant `n` more entries to a reader.
pub(crate) fn grant(tx: &mpsc::UnboundedSender<usize>, n: usize) {
    if n > 0 {
        let _ = tx.send(n);
    }
}
