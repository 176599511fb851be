//! The subscriber task: the node's one pub/sub connection.
//!
//! The engine keeps the set of channels to be subscribed to (one per topic with local
//! subscribers) in the [`super::Topics`] mailbox; the subscriber brings its connection in
//! line with it whenever it changes (and after a reconnect), then reports the generation it
//! applied (for [`crate::RedisEngine::flushed`]). What arrives goes to the engine on the
//! bounded events channel; a message that finds it full (the node does not keep up with the
//! topics it subscribes to) is dropped at this node and counted in
//! [`crate::RedisMetrics::dropped`]: topics are at most once. (Waiting instead would not
//! push back on Redis: the client library reads the pub/sub socket into a queue of its own
//! regardless; dropping keeps that queue near empty.)
//!
//! In cluster mode ([`Subscriber::run_cluster`]) the channels are shard channels
//! (`SSUBSCRIBE`, Redis 7): the client library's cluster connection subscribes each on the
//! primary of its slot (one connection per primary, RESP3), resubscribes after a node's
//! reconnection or a move of the slot, and hands each message to a callback, which forwards
//! it as above (dropped and counted when the events channel is full).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};

use super::{Events, Incoming};
use crate::{Config, NodeState};

/// How long a cluster node may take to confirm a subscription.
const SUBSCRIBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The subscriber.
pub(crate) struct Subscriber {
    pub primary: super::Primary,
    pub config: Arc<Config>,
    pub shared: Arc<NodeState>,
    pub events: Events,
    /// The last generation of [`super::Topics`] applied.
    pub applied: watch::Sender<u64>,
    pub shutdown: watch::Receiver<()>,
}

impl Subscriber {
    pub(crate) async fn run(self) {
        if let super::Primary::Cluster { seeds } = &self.primary {
            let seeds = seeds.clone();
            return self.run_cluster(seeds).await;
        }
        self.run_single().await
    }

    /// The node's shard-channel subscriptions on a cluster (see the module docs).
    async fn run_cluster(mut self, seeds: Vec<String>) {
        let mut lost = false;
        let mut delay = self.config.backoff_min;
        loop {
            let (events, shared) = (self.events.clone(), self.shared.clone());
            let push = move |info: redis::PushInfo| -> Result<(), ()> {
                if info.kind != redis::PushKind::SMessage {
                    return Ok(());
                }
                let Some(redis::Value::BulkString(payload)) = info.data.get(1) else {
                    return Ok(());
                };
                let payload = Bytes::copy_from_slice(payload);
                match events.try_send(Incoming::Topic(payload)) {
                    Ok(()) => Ok(()),
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        shared.dropped.fetch_add(1, Ordering::Relaxed);
                        Ok(())
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => Err(()),
                }
            };
            let connected = async {
                super::Primary::cluster_client(&seeds, Some(SUBSCRIBE_TIMEOUT), Some(push))?
                    .get_async_connection()
                    .await
            };
            let mut conn = tokio::select! {
                r = connected => match r {
                    Ok(conn) => conn,
                    Err(error) => {
                        tracing::debug!(%error, "redis cluster pub/sub connect failed; retrying in {delay:?}");
                        tokio::select! {
                            _ = tokio::time::sleep(delay) => {}
                            _ = self.shutdown.changed() => return,
                        }
                        delay = (delay * 2).min(self.config.backoff_max);
                        continue;
                    }
                },
                _ = self.shutdown.changed() => return,
            };
            delay = self.config.backoff_min;
            if lost {
                self.shared.reconnects.fetch_add(1, Ordering::Relaxed);
            }
            let mut current: HashSet<String> = HashSet::new();
            loop {
                let (wanted, generation) = {
                    let topics = self.shared.topics.lock();
                    (topics.channels.clone(), topics.generation)
                };
                // One channel a command: each goes to the primary of its own slot.
                let mut ok = true;
                for channel in wanted.difference(&current) {
                    ok = ok && conn.ssubscribe(channel).await.is_ok();
                }
                for channel in current.difference(&wanted) {
                    ok = ok && conn.sunsubscribe(channel).await.is_ok();
                }
                if !ok {
                    break;
                }
                current = wanted;
                let _ = self.applied.send(generation);
                tokio::select! {
                    () = self.shared.topics.changed() => {}
                    _ = self.shutdown.changed() => return,
                }
            }
            tracing::warn!("redis cluster pub/sub subscription failed; reconnecting");
            lost = true;
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = self.shutdown.changed() => return,
            }
        }
    }

    /// The node's pub/sub connection to one Redis (see the module docs).
    async fn run_single(mut self) {
        let mut lost = false;
        let mut delay = self.config.backoff_min;
        let mut check = tokio::time::interval(super::primary::WATCH_EVERY);
        loop {
            let epoch = self.shared.primary_epoch();
            let pubsub = tokio::select! {
                r = async {
                    self.primary.client(&self.shared).await?.get_async_pubsub().await
                } => r,
                _ = self.shutdown.changed() => return,
            };
            let (mut sink, mut stream) = match pubsub {
                Ok(p) => p.split(),
                Err(error) => {
                    tracing::debug!(%error, "redis pub/sub connect failed; retrying in {delay:?}");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = self.shutdown.changed() => return,
                    }
                    delay = (delay * 2).min(self.primary.backoff_max(&self.config));
                    continue;
                }
            };
            delay = self.config.backoff_min;
            if lost {
                self.shared.reconnects.fetch_add(1, Ordering::Relaxed);
            }
            let mut current: HashSet<String> = HashSet::new();
            let mut dirty = true;
            let mut ok = true;
            while ok {
                if dirty {
                    dirty = false;
                    let (wanted, generation) = {
                        let topics = self.shared.topics.lock();
                        (topics.channels.clone(), topics.generation)
                    };
                    let join: Vec<&String> = wanted.difference(&current).collect();
                    let leave: Vec<&String> = current.difference(&wanted).collect();
                    if !join.is_empty() {
                        ok = sink.subscribe(&join).await.is_ok();
                    }
                    if ok && !leave.is_empty() {
                        ok = sink.unsubscribe(&leave).await.is_ok();
                    }
                    if !ok {
                        break;
                    }
                    current = wanted;
                    let _ = self.applied.send(generation);
                }
                tokio::select! {
                    () = self.shared.topics.changed() => dirty = true,
                    // The sentinels name another primary: connect to it.
                    _ = check.tick() => ok = self.shared.primary_epoch() == epoch,
                    msg = stream.next() => match msg {
                        Some(msg) => {
                            let payload = Bytes::copy_from_slice(msg.get_payload_bytes());
                            match self.events.try_send(Incoming::Topic(payload)) {
                                Ok(()) => {}
                                Err(mpsc::error::TrySendError::Full(_)) => {
                                    self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                                }
                                Err(mpsc::error::TrySendError::Closed(_)) => return,
                            }
                        }
                        None => ok = false,
                    },
                    _ = self.shutdown.changed() => return,
                }
            }
            tracing::warn!("redis pub/sub connection lost; reconnecting");
            lost = true;
        }
    }
}
