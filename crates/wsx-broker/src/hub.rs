//! The broker every `/stomp` connection of this server shares, and the per-connection queues
//! it fills.
//!
//! One [`wsx_stomp::Broker`] (sans IO) lives behind a mutex in the [`Hub`], on the engine
//! `--broker` chose ([`crate::backend::Backend`]: in memory, or one node of a broker shared
//! through Redis). A connection task calls the hub when its client sends bytes
//! ([`Hub::receive`]) or its timer fires ([`Hub::timeout`]); every call runs the broker under
//! the lock and then, still under it, moves what the broker produced for each affected
//! connection (the caller and the connections the broker reported as woken) into that
//! connection's [`ConnectionQueue`] (the crate's slow-consumer queue, [`OutboundQueue`], of
//! encoded frames bounded in entries and bytes). The lock is released before any task is woken and is never held across an
//! await; the tasks write their queue's frames to their sockets without it.
//!
//! What a session bounds itself goes into the queue whatever its size: its queue deliveries
//! (credit windows: `--stomp-auto-ack-window` in `ack:auto` mode, 256 unacknowledged in the
//! client modes), its client-mode topic deliveries (the same windows) and its own output (see
//! below). A topic does not wait for slow subscribers, so the MESSAGE frames of `ack:auto` topic
//! subscriptions are what the queue's [`QueueLimits`] bound: a connection whose queue would pass
//! them (it does not read fast enough for the topics it subscribed to) is dropped from the
//! broker at once — its queue messages not acknowledged go to other consumers, `ack:auto` ones
//! included as long as they were not written — and its task closes the WebSocket with 1008
//! "too slow", as the chat rooms do. Clearing its queue loses nothing: an `ack:auto` queue
//! delivery is acknowledged to the engine only once the task reports it written
//! ([`Hub::written`], [`Written`]).
//!
//! Output a connection causes itself (RECEIPTs, its SENDs fanned out to its own
//! subscriptions, a queue backlog drained into a new subscription's credit window) goes into its
//! queue whatever the queue's limits, but it is bounded by the session's output budget
//! (`max_unwritten_bytes`): past it the session stops decoding the client's frames and
//! [`Status::wants_input`] tells the task to stop reading the socket until its writes, reported
//! through [`Hub::written`], bring the session back under. One frame may pass the budget by
//! what it produces (at most `max_subscriptions` MESSAGE frames).
//!
//! An engine that delivers asynchronously (Redis: what any node publishes comes back through
//! Redis) hands what it receives to [`Hub::pump_with`]: under the same lock it runs a
//! closure on the engine, passes the deliveries to [`wsx_stomp::Broker::deliver`] and the
//! confirmations of SENDs the engine stored later (or failed to) to
//! [`wsx_stomp::Broker::confirm`] — RECEIPTs held back until Redis stored the message, or
//! ERRORs — and routes the woken connections like any other call. The Redis pump task of
//! [`crate::Broker::start`] is its caller.
//!
//! A session whose authenticator defers (the application's asynchronous one, see
//! [`crate::authenticator`]) emits [`Transmit::Authenticate`]: the hub hands it to the
//! [`OnAuthenticate`] hook instead of the connection's queue, and the answer comes back through
//! [`Hub::authenticated`], routed like any call. The application's own traffic enters here too:
//! [`Hub::publish`] (a server-side SEND, through the engine) and [`Hub::deliver_to_session`] (a
//! reply to one session's subscription, past the engine).
//!
//! Metrics: [`Metered`] counts a SEND as published once the engine stored it: at once for a
//! SEND stored at once, on its [`Confirmation::Stored`] for one stored later; a SEND refused
//! or failed is not published (the Redis node counts those in its send failures).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use tracing::debug;
use wsx_stomp::{
    AuthRequest, Broker, Confirmation, ConnId, ConnectionInfo, Delivery, Destination, EncodedFrame,
    Engine, MemoryEngine, MessageId, Origin, Outcome, Principal, Publish, Refusal, SubscriberKey,
    Transmit,
};

use crate::metrics::BrokerMetrics;
use crate::outbound_queue::{KeyedPush, OutboundQueue, QueueLimits, Replaceable};

/// The most MESSAGE frames of its `ack:auto` topic subscriptions a connection's queue holds
/// before the connection counts as too slow.
pub const LINK_QUEUE_LEN: usize = 1024;

/// Lock a mutex, ignoring poisoning: the data is plain bookkeeping, valid after any panic.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What a connection task writes to its socket, in order.
#[derive(Debug)]
pub enum Outbound {
    /// A STOMP frame: one WebSocket message.
    Frame(EncodedFrame),
    /// A heart-beat: one `"\n"`.
    HeartBeat,
    /// The session is over (after ERROR or DISCONNECT): close the WebSocket. The reason is the
    /// ERROR's message, `None` after a DISCONNECT.
    Close(Option<String>),
    /// This many transmits the queue replaced by later ones with the same conflation key
    /// ([`OutboundQueue::push_keyed`]): nothing to write, but they count as written (in
    /// [`Written::transmits`], no bytes) once what was before them is.
    Replaced(u64),
}

impl Replaceable for Outbound {
    fn replaced(count: u64) -> Self {
        Outbound::Replaced(count)
    }

    fn accounted_bytes(&self) -> usize {
        self.budget_size()
    }
}

impl Outbound {
    /// Bytes it takes on the wire (at least 1, so that empty entries count).
    pub fn size(&self) -> usize {
        match self {
            Outbound::Frame(frame) => frame.len().max(1),
            Outbound::HeartBeat | Outbound::Close(_) | Outbound::Replaced(_) => 1,
        }
    }

    /// The bytes it counts for in the session's output budget ([`Transmit::size`]), to report
    /// in [`Written::bytes`] once written.
    pub fn budget_size(&self) -> usize {
        match self {
            Outbound::Frame(frame) => frame.len(),
            Outbound::HeartBeat | Outbound::Close(_) | Outbound::Replaced(_) => 0,
        }
    }
}

/// What a connection task wrote to its socket since its last report: the transmits (frames
/// and heart-beats, in the order the link gave them) and their [`Outbound::budget_size`] bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    /// Transmits written.
    pub transmits: u64,
    /// Their bytes.
    pub bytes: usize,
}

/// What a connection task learns from a hub call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// The session's next deadline.
    pub deadline: Option<Instant>,
    /// Whether the session takes input: `false` while its output backlog is past its budget
    /// (stop reading the socket and report writes with [`Hub::written`]).
    pub wants_input: bool,
}

/// One connection's output queue, filled by the hub and drained by the connection's task;
/// its counted entries are the MESSAGE frames of `ack:auto` topic subscriptions, and its flag
/// says that the session waits for reports of what was written (see [`Drained::flag`]).
pub type ConnectionQueue = OutboundQueue<Outbound>;

/// The engine wrapper that counts publications and deliveries for `/metrics`: a SEND counts
/// as published once stored (see the module docs).
pub struct Metered<E> {
    inner: E,
    metrics: Arc<BrokerMetrics>,
}

impl<E> Metered<E> {
    /// Count what `inner` publishes and delivers.
    pub fn new(inner: E, metrics: Arc<BrokerMetrics>) -> Self {
        Metered { inner, metrics }
    }

    fn count(&self, deliveries: &[Delivery]) {
        for delivery in deliveries {
            self.metrics
                .delivered(delivery.message.destination().kind(), delivery.redelivered);
        }
    }

    /// The engine it counts for.
    pub(crate) fn inner_mut(&mut self) -> &mut E {
        &mut self.inner
    }

    /// Count the SENDs stored later as published.
    fn count_stored(&self, confirmations: &[Confirmation]) {
        for confirmation in confirmations {
            if let Confirmation::Stored(origin) = confirmation {
                self.metrics.published(origin.destination.kind());
            }
        }
    }
}

impl<E: Engine> Engine for Metered<E> {
    fn subscribe(
        &mut self,
        key: SubscriberKey,
        destination: &Destination,
        max_unacked: Option<usize>,
        out: &mut Vec<Delivery>,
    ) {
        let n = out.len();
        self.inner.subscribe(key, destination, max_unacked, out);
        self.count(&out[n..]);
    }

    fn subscribe_with_selector(
        &mut self,
        key: SubscriberKey,
        destination: &Destination,
        max_unacked: Option<usize>,
        selector: Option<wsx_stomp::Selector>,
        out: &mut Vec<Delivery>,
    ) -> Result<(), wsx_stomp::Error> {
        let n = out.len();
        let result =
            self.inner
                .subscribe_with_selector(key, destination, max_unacked, selector, out);
        self.count(&out[n..]);
        result
    }

    fn subscribe_at(
        &mut self,
        key: SubscriberKey,
        destination: &Destination,
        max_unacked: Option<usize>,
        selector: Option<wsx_stomp::Selector>,
        start: wsx_stomp::StreamStart,
        out: &mut Vec<Delivery>,
    ) -> Result<(), wsx_stomp::Error> {
        let n = out.len();
        let result = self
            .inner
            .subscribe_at(key, destination, max_unacked, selector, start, out);
        self.count(&out[n..]);
        result
    }

    fn unsubscribe(&mut self, key: &SubscriberKey, out: &mut Vec<Delivery>) {
        let n = out.len();
        self.inner.unsubscribe(key, out);
        self.count(&out[n..]);
    }

    fn publish(&mut self, message: Publish, out: &mut Vec<Delivery>) {
        self.metrics.published(message.destination.kind());
        let n = out.len();
        self.inner.publish(message, out);
        self.count(&out[n..]);
    }

    fn try_publish(
        &mut self,
        message: Publish,
        out: &mut Vec<Delivery>,
    ) -> Result<(), wsx_stomp::Error> {
        let kind = message.destination.kind();
        let n = out.len();
        let result = self.inner.try_publish(message, out);
        if result.is_ok() {
            self.metrics.published(kind);
        }
        self.count(&out[n..]);
        result
    }

    /// Published now if stored now ([`Outcome::Done`]); a pending SEND counts on its
    /// [`Confirmation::Stored`] ([`Hub::pump_with`]).
    fn try_publish_from(
        &mut self,
        message: Publish,
        origin: Origin,
        out: &mut Vec<Delivery>,
    ) -> Result<Outcome, wsx_stomp::Error> {
        let kind = message.destination.kind();
        let n = out.len();
        let result = self.inner.try_publish_from(message, origin, out);
        if result == Ok(Outcome::Done) {
            self.metrics.published(kind);
        }
        self.count(&out[n..]);
        result
    }

    fn ack(&mut self, key: &SubscriberKey, ids: &[MessageId], out: &mut Vec<Delivery>) {
        let n = out.len();
        self.inner.ack(key, ids, out);
        self.count(&out[n..]);
    }

    fn nack(&mut self, key: &SubscriberKey, ids: &[MessageId], out: &mut Vec<Delivery>) {
        let n = out.len();
        self.inner.nack(key, ids, out);
        self.count(&out[n..]);
    }
}

/// A connection's entry in the hub.
struct Entry {
    queue: Arc<ConnectionQueue>,
    /// Its subscriptions as last counted (for the `wsx_stomp_subscriptions` gauge).
    subscriptions: usize,
}

/// What the hub does with a session's [`Transmit::Authenticate`]: start the application's
/// asynchronous authenticator (see [`crate::authenticator`]), which answers through
/// [`Hub::authenticated`]. Called under the hub's lock: it must not call the hub.
pub type OnAuthenticate = Box<dyn Fn(ConnId, AuthRequest) + Send + Sync>;

/// What the lock protects.
struct HubState<E: Engine> {
    broker: Broker<Metered<E>>,
    links: HashMap<ConnId, Entry>,
    /// Reused for the connections a broker call woke.
    scratch: Vec<ConnId>,
    /// Starts deferred authentications; without it, sessions never defer.
    on_authenticate: Option<OnAuthenticate>,
    /// Messages delivered to one session so far ([`Hub::deliver_to_session`]), for their ids.
    session_messages: u64,
}

/// The shared STOMP broker of `wsx serve` and the links to its connections.
pub struct Hub<E: Engine = MemoryEngine> {
    shared: Mutex<HubState<E>>,
    metrics: Arc<BrokerMetrics>,
    limits: QueueLimits,
}

impl<E: Engine> std::fmt::Debug for Hub<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl<E: Engine> Hub<E> {
    /// A hub around `broker`; connections whose queues pass `limits` are dropped.
    pub fn new(
        broker: Broker<Metered<E>>,
        metrics: Arc<BrokerMetrics>,
        limits: QueueLimits,
    ) -> Self {
        Hub {
            shared: Mutex::new(HubState {
                broker,
                links: HashMap::new(),
                scratch: Vec::new(),
                on_authenticate: None,
                session_messages: 0,
            }),
            metrics,
            limits,
        }
    }

    /// Start deferred authentications with `on_authenticate` (the sessions defer only when the
    /// broker's authenticator says so).
    pub fn with_authentication(self, on_authenticate: OnAuthenticate) -> Self {
        lock(&self.shared).on_authenticate = Some(on_authenticate);
        self
    }

    /// The answer of the asynchronous authenticator for `conn` (see [`OnAuthenticate`]):
    /// CONNECTED and the frames that waited, or an ERROR and the close, routed like any call.
    /// Ignored when `conn` is gone or no longer waits for it.
    pub fn authenticated(&self, conn: ConnId, verdict: Result<Principal, Refusal>) {
        self.call(conn, |broker, now, woken| {
            woken.extend_from_slice(broker.authenticated(conn, now, verdict));
        });
    }

    /// Publish `message` from the server (no session), delivered like a SEND; refused like
    /// one ([`Broker::publish`]).
    pub fn publish(&self, message: Publish) -> Result<(), wsx_stomp::Error> {
        self.route_server_traffic(|shared, _, woken, _| {
            shared
                .broker
                .publish(message)
                .map(|conns| woken.extend_from_slice(conns))
        })
    }

    /// Publish from the server through `f`, which gets the engine itself (for calls the
    /// [`Engine`] trait does not have, such as publishing a topic message and learning its
    /// offset) and the deliveries to route; counted as one publication of `kind` once `f`
    /// returns `Ok`.
    pub(crate) fn publish_through<R, X>(
        &self,
        kind: wsx_stomp::DestinationKind,
        f: impl FnOnce(&mut E, &mut Vec<Delivery>) -> Result<R, X>,
    ) -> Result<R, X> {
        self.route_server_traffic(|shared, _, woken, _| {
            let mut out = Vec::new();
            let engine = shared.broker.engine_mut();
            let result = f(engine.inner_mut(), &mut out);
            if result.is_ok() {
                engine.metrics.published(kind);
            }
            engine.count(&out);
            woken.extend_from_slice(shared.broker.deliver(out));
            result
        })
    }

    /// Deliver `message` to `conn`'s own subscription to its destination (a user destination
    /// it subscribed to as `/user/queue/NAME`, say), not through the engine: a reply to that
    /// session alone (Spring's `@SendToUser(broadcast = false)`). Its `message-id` is
    /// `session-N`. Returns whether the session had such a subscription (otherwise the message
    /// is dropped, as a topic's without subscribers).
    pub fn deliver_to_session(&self, conn: ConnId, message: Publish) -> bool {
        self.route_server_traffic(|shared, _, woken, _| {
            let Some(subscription) = shared
                .broker
                .session(conn)
                .and_then(|s| s.subscription_for(&message.destination))
                .cloned()
            else {
                return false;
            };
            shared.session_messages += 1;
            let id = MessageId::new(format!("session-{}", shared.session_messages));
            self.metrics.delivered(message.destination.kind(), false);
            let delivery = Delivery {
                subscriber: SubscriberKey::new(conn, subscription),
                message: Arc::new(wsx_stomp::Message::new(id, message)),
                redelivered: false,
                gap: false,
            };
            woken.extend_from_slice(shared.broker.deliver([delivery]));
            true
        })
    }

    /// The principal of `conn`'s session, once connected.
    pub fn principal(&self, conn: ConnId) -> Option<Principal> {
        lock(&self.shared)
            .broker
            .session(conn)?
            .principal()
            .cloned()
    }

    /// Register a new connection. Returns its id, its output queue and its first deadline
    /// (the CONNECT timeout).
    pub fn open(&self, info: ConnectionInfo) -> (ConnId, Arc<ConnectionQueue>, Option<Instant>) {
        let queue = Arc::new(OutboundQueue::new(self.limits));
        let mut shared = lock(&self.shared);
        let conn = shared.broker.open(info, Instant::now());
        shared.links.insert(
            conn,
            Entry {
                queue: queue.clone(),
                subscriptions: 0,
            },
        );
        self.metrics.sessions_add(1);
        let deadline = shared.broker.poll_timeout(conn);
        (conn, queue, deadline)
    }

    /// The payload of a WebSocket message from `conn`, with what its task wrote since its last
    /// report (see [`Hub::written`]).
    pub fn receive(&self, conn: ConnId, bytes: &[u8], written: Written) -> Status {
        self.call(conn, |broker, now, woken| {
            if written != Written::default() {
                woken.extend_from_slice(broker.written(
                    conn,
                    now,
                    written.transmits,
                    written.bytes,
                ));
            }
            woken.extend_from_slice(broker.receive(conn, now, bytes));
        })
    }

    /// `conn`'s task wrote these transmits to the socket: `ack:auto` queue deliveries among
    /// them are acknowledged to the engine (refilling the credit window), and input the
    /// session buffered while over its output budget is decoded.
    pub fn written(&self, conn: ConnId, written: Written) -> Status {
        self.call(conn, |broker, now, woken| {
            woken.extend_from_slice(broker.written(conn, now, written.transmits, written.bytes));
        })
    }

    /// `conn`'s deadline passed.
    pub fn timeout(&self, conn: ConnId) -> Status {
        self.call(conn, |broker, now, woken| {
            woken.extend_from_slice(broker.handle_timeout(conn, now));
        })
    }

    /// `conn` is gone: drop its session (its unacknowledged queue messages go to others).
    pub fn close(&self, conn: ConnId) {
        let mut wake = Vec::new();
        {
            let mut guard = lock(&self.shared);
            let shared = &mut *guard;
            let mut woken = std::mem::take(&mut shared.scratch);
            woken.clear();
            woken.extend_from_slice(shared.broker.close(conn));
            if let Some(entry) = shared.links.remove(&conn) {
                self.metrics.subscriptions_add(-signed(entry.subscriptions));
                self.metrics.sessions_add(-1);
            }
            shared.fan_out(conn, &mut woken, Instant::now(), self, &mut wake);
            shared.scratch = woken;
        }
        for queue in wake {
            queue.wake();
        }
    }

    /// Close every session still open (at shutdown, for the connection tasks that were cut
    /// short): their unacknowledged queue messages go back to the engine.
    pub fn close_all(&self) {
        let conns: Vec<ConnId> = lock(&self.shared).links.keys().copied().collect();
        for conn in conns {
            self.close(conn);
        }
    }

    /// What an engine that works asynchronously produced outside a client's call (Redis:
    /// messages of every node's SENDs, queue entries, the confirmations of this node's SENDs):
    /// `make` runs on the engine under the lock and fills the deliveries and the
    /// confirmations. The deliveries go to their sessions ([`Broker::deliver`]), then the
    /// confirmations ([`Broker::confirm`]: the RECEIPTs that waited for Redis, or ERRORs);
    /// the connections that got output are woken, the slow ones dropped — except for
    /// the confirmed connections' own RECEIPTs and ERRORs, which go past the link's limits
    /// like the rest of a connection's own output (one per SEND the session decoded within its
    /// output budget).
    pub fn pump_with(&self, make: impl FnOnce(&mut E, &mut Vec<Delivery>, &mut Vec<Confirmation>)) {
        self.route_server_traffic(|shared, now, woken, wake| {
            let engine = shared.broker.engine_mut();
            let mut deliveries = Vec::new();
            let mut confirmations = Vec::new();
            make(&mut engine.inner, &mut deliveries, &mut confirmations);
            engine.count(&deliveries);
            engine.count_stored(&confirmations);
            let mut confirmed: Vec<ConnId> =
                confirmations.iter().map(|c| c.origin().conn).collect();
            confirmed.sort_unstable();
            confirmed.dedup();
            if !deliveries.is_empty() {
                woken.extend_from_slice(shared.broker.deliver(deliveries));
            }
            if !confirmations.is_empty() {
                woken.extend_from_slice(shared.broker.confirm(confirmations));
                // A client's own RECEIPTs and ERRORs are not refused.
                for &conn in &confirmed {
                    shared.flush(conn, now, false, &self.metrics, wake);
                    shared.sync_subscriptions(conn, &self.metrics);
                }
            }
        });
    }

    /// Run `op` under the lock for traffic no connection's input caused (a server-side
    /// publish, a reply to one session, what the engine received from Redis): the output of
    /// the connections it adds to `woken` is routed into their queues (those past their limits
    /// are dropped as too slow), and every queue `op` or the routing put in `wake` is woken
    /// once the lock is released.
    fn route_server_traffic<R>(
        &self,
        op: impl FnOnce(
            &mut HubState<E>,
            Instant,
            &mut Vec<ConnId>,
            &mut Vec<Arc<ConnectionQueue>>,
        ) -> R,
    ) -> R {
        let now = Instant::now();
        let mut wake = Vec::new();
        let result = {
            let mut guard = lock(&self.shared);
            let shared = &mut *guard;
            let mut woken = std::mem::take(&mut shared.scratch);
            woken.clear();
            let result = op(shared, now, &mut woken, &mut wake);
            shared.fan_out(ConnId(0), &mut woken, now, self, &mut wake);
            shared.scratch = woken;
            result
        };
        for queue in wake {
            queue.wake();
        }
        result
    }

    /// Run `f` on the engine under the lock (no deliveries are routed: use it for reads and
    /// for calls that produce none).
    pub fn with_engine<R>(&self, f: impl FnOnce(&mut E) -> R) -> R {
        let mut shared = lock(&self.shared);
        f(&mut shared.broker.engine_mut().inner)
    }

    /// Run one broker operation for `conn` (it lists the other connections it woke), then
    /// route `conn`'s output and theirs; wake their tasks once the lock is released.
    fn call(
        &self,
        conn: ConnId,
        op: impl FnOnce(&mut Broker<Metered<E>>, Instant, &mut Vec<ConnId>),
    ) -> Status {
        let now = Instant::now();
        let mut wake = Vec::new();
        let status = {
            let mut guard = lock(&self.shared);
            let shared = &mut *guard;
            let mut woken = std::mem::take(&mut shared.scratch);
            woken.clear();
            op(&mut shared.broker, now, &mut woken);
            // Output the connection caused for itself goes past the link's limits: the
            // session's output budget bounds it (it stops decoding past it).
            shared.flush(conn, now, false, &self.metrics, &mut wake);
            shared.sync_subscriptions(conn, &self.metrics);
            shared.fan_out(conn, &mut woken, now, self, &mut wake);
            shared.scratch = woken;
            Status {
                deadline: shared.broker.poll_timeout(conn),
                wants_input: shared.broker.session(conn).is_none_or(|s| s.wants_input()),
            }
        };
        for queue in wake {
            queue.wake();
        }
        status
    }
}

impl<E: Engine> HubState<E> {
    /// Move the output of every connection in `woken` (other than `origin`) into its link;
    /// drop the connections whose links overflow, which may wake more connections.
    fn fan_out(
        &mut self,
        origin: ConnId,
        woken: &mut Vec<ConnId>,
        now: Instant,
        hub: &Hub<E>,
        wake: &mut Vec<Arc<ConnectionQueue>>,
    ) {
        while let Some(conn) = woken.pop() {
            if conn == origin {
                continue;
            }
            if self.flush(conn, now, true, &hub.metrics, wake) {
                continue;
            }
            // Too slow: drop it from the broker (its queue messages go back to other
            // consumers) and tell its task to close.
            debug!(
                conn = conn.0,
                "stomp: dropping a connection that does not keep up"
            );
            hub.metrics.slow_disconnect();
            woken.extend_from_slice(self.broker.close(conn));
            if let Some(entry) = self.links.get_mut(&conn) {
                hub.metrics.subscriptions_add(-signed(entry.subscriptions));
                entry.subscriptions = 0;
                entry.queue.drop_consumer();
                wake.push(entry.queue.clone());
            }
        }
    }

    /// Move `conn`'s transmits into its queue, and tell it whether the session waits for write
    /// reports. When `checked`, stop and return `false` when the `ack:auto` topic messages in
    /// the queue would pass its limits (the rest is bounded by the session).
    fn flush(
        &mut self,
        conn: ConnId,
        now: Instant,
        checked: bool,
        metrics: &BrokerMetrics,
        wake: &mut Vec<Arc<ConnectionQueue>>,
    ) -> bool {
        let Some(entry) = self.links.get(&conn) else {
            return true;
        };
        let queue = &entry.queue;
        if queue.is_dropped() {
            return true;
        }
        let mut pushed = false;
        while let Some(transmit) = self.broker.poll_transmit(conn, now) {
            let topic = matches!(transmit, Transmit::TopicMessage(_));
            let mut tag = None;
            let out = match transmit {
                Transmit::Frame(frame) | Transmit::TopicMessage(frame) => Outbound::Frame(frame),
                Transmit::KeyedTopicMessage(frame, key) => {
                    tag = Some(key);
                    Outbound::Frame(frame)
                }
                Transmit::HeartBeat => Outbound::HeartBeat,
                // Handed to the asynchronous authenticator, which answers through
                // `Hub::authenticated`.
                Transmit::Authenticate(request) => {
                    if let Some(start) = &self.on_authenticate {
                        start(conn, *request);
                    }
                    continue;
                }
                Transmit::Close => Outbound::Close(
                    self.broker
                        .session(conn)
                        .and_then(|s| s.close_reason())
                        .map(str::to_owned),
                ),
            };
            let size = out.size();
            let queued = match (tag, topic, checked) {
                (Some(tag), _, _) => queue.push_keyed(out, size, tag, checked).map(|pushed| {
                    if pushed == KeyedPush::Replaced {
                        metrics.conflated();
                    }
                }),
                (None, true, true) => queue.push_counted([(out, size)]),
                (None, true, false) => queue.push_counted_past_limits(out, size),
                (None, false, _) => queue.push(out, size),
            };
            if queued.is_err() {
                // Too slow (the queue dropped its consumer), or already closed.
                return false;
            }
            pushed = true;
        }
        queue.set_flag(self.broker.session(conn).is_some_and(|s| s.wants_written()));
        if pushed {
            wake.push(queue.clone());
        }
        true
    }

    /// Bring the `wsx_stomp_subscriptions` gauge up to date with `conn`'s session.
    fn sync_subscriptions(&mut self, conn: ConnId, metrics: &BrokerMetrics) {
        let now = self
            .broker
            .session(conn)
            .map_or(0, |s| s.subscription_count());
        if let Some(entry) = self.links.get_mut(&conn)
            && entry.subscriptions != now
        {
            metrics.subscriptions_add(signed(now) - signed(entry.subscriptions));
            entry.subscriptions = now;
        }
    }
}

/// `n` as a gauge delta.
fn signed(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use wsx_stomp::{AllowAll, Command, Decoder, Frame, Headers, Limits, SessionConfig, Version};

    use super::*;

    fn hub(limits: QueueLimits) -> (Hub, Arc<BrokerMetrics>) {
        hub_with(limits, SessionConfig::default())
    }

    fn hub_with(limits: QueueLimits, config: SessionConfig) -> (Hub, Arc<BrokerMetrics>) {
        let metrics = Arc::new(BrokerMetrics::default());
        let engine = Metered::new(MemoryEngine::new(), metrics.clone());
        let broker = Broker::new(engine, config, Arc::new(AllowAll));
        (Hub::new(broker, metrics.clone(), limits), metrics)
    }

    fn roomy() -> QueueLimits {
        QueueLimits {
            items: 1000,
            bytes: 1 << 20,
        }
    }

    fn send(hub: &Hub, conn: ConnId, frame: Frame) -> Status {
        let bytes = frame.encode(Version::V1_2).expect("encodable");
        hub.receive(conn, &bytes, Written::default())
    }

    /// Open a connection, CONNECT, and subscribe to `destination` (if any) in `ack` mode.
    fn client(hub: &Hub, subscribe: Option<(&str, &str)>) -> (ConnId, Arc<ConnectionQueue>) {
        let (conn, link, _) = hub.open(ConnectionInfo::new().with_path("/stomp"));
        send(
            hub,
            conn,
            Frame::new(Command::Connect).with_header("accept-version", "1.2"),
        );
        let outs = take_all(&link);
        let got: Vec<Command> = decode(&outs).into_iter().map(|f| f.command).collect();
        assert_eq!(got, [Command::Connected]);
        hub.written(conn, all_written(&outs));
        if let Some((destination, ack)) = subscribe {
            send(
                hub,
                conn,
                Frame::new(Command::Subscribe)
                    .with_header("id", "s")
                    .with_header("destination", destination)
                    .with_header("ack", ack),
            );
        }
        (conn, link)
    }

    /// Subscribe `conn` to `destination` in `ack:auto` mode as `id`.
    fn subscribe_auto(hub: &Hub, conn: ConnId, id: &str, destination: &str) {
        send(
            hub,
            conn,
            Frame::new(Command::Subscribe)
                .with_header("id", id)
                .with_header("destination", destination),
        );
    }

    fn publish(hub: &Hub, conn: ConnId, destination: &str, body: &str) {
        send(
            hub,
            conn,
            Frame::new(Command::Send)
                .with_header("destination", destination)
                .with_body(body.to_owned()),
        );
    }

    /// Everything queued on `link`, decoded.
    fn frames(link: &ConnectionQueue) -> Vec<Frame> {
        decode(&take_all(link))
    }

    /// Everything queued on `link`, asserting it was not kicked.
    fn take_all(link: &ConnectionQueue) -> Vec<Outbound> {
        let mut outs = Vec::new();
        assert!(
            !link.drain_into(usize::MAX, &mut outs).dropped,
            "not kicked"
        );
        outs
    }

    /// What `outs` hold, as a write report.
    fn all_written(outs: &[Outbound]) -> Written {
        Written {
            transmits: outs.len() as u64,
            bytes: outs.iter().map(Outbound::budget_size).sum(),
        }
    }

    fn decode(outs: &[Outbound]) -> Vec<Frame> {
        let mut decoder = Decoder::new(Limits::default());
        decoder.set_version(Version::V1_2);
        let mut frames = Vec::new();
        for out in outs {
            if let Outbound::Frame(frame) = out {
                decoder.feed(&frame.to_bytes());
                while let Some(frame) = decoder.poll_frame().expect("valid frame") {
                    frames.push(frame);
                }
            }
        }
        frames
    }

    fn commands(link: &ConnectionQueue) -> Vec<Command> {
        frames(link).into_iter().map(|f| f.command).collect()
    }

    #[test]
    fn deliveries_reach_the_links_and_the_gauges_follow() {
        let (hub, metrics) = hub(roomy());
        let (_a, a) = client(&hub, Some(("/topic/t", "auto")));
        let (_b, b) = client(&hub, Some(("/topic/t", "auto")));
        let (p, _) = client(&hub, None);
        publish(&hub, p, "/topic/t", "hi");
        for link in [&a, &b] {
            let got = frames(link);
            assert_eq!(got.len(), 1);
            assert_eq!(&got[0].body[..], b"hi");
        }
        let text = metrics.render();
        assert!(text.contains("wsx_stomp_sessions 3\n"), "{text}");
        assert!(text.contains("wsx_stomp_subscriptions 2\n"), "{text}");
        assert!(text.contains("wsx_stomp_messages_delivered_total{kind=\"topic\"} 2\n"));
        hub.close(p);
        assert!(metrics.render().contains("wsx_stomp_sessions 2\n"));
    }

    #[test]
    fn a_connection_that_does_not_drain_is_dropped_and_its_messages_move_on() {
        let (hub, metrics) = hub(QueueLimits {
            items: 3,
            bytes: 1 << 20,
        });
        let (slow, slow_link) = client(&hub, Some(("/queue/q", "client-individual")));
        subscribe_auto(&hub, slow, "t", "/topic/t");
        let (p, p_link) = client(&hub, None);
        // The slow consumer never takes from its link. Its queue messages are bounded by its
        // window, not by the link's limits; its topic messages are: the fourth overflows it.
        for i in 0..4 {
            publish(&hub, p, "/queue/q", &format!("m{i}"));
        }
        assert!(!slow_link.drain_into(0, &mut Vec::new()).dropped);
        for i in 0..4 {
            publish(&hub, p, "/topic/t", &format!("t{i}"));
        }
        let mut outs = Vec::new();
        assert!(slow_link.drain_into(usize::MAX, &mut outs).dropped);
        assert!(outs.is_empty());
        assert!(
            hub.shared
                .lock()
                .expect("lock")
                .broker
                .session(slow)
                .is_none()
        );
        assert!(
            metrics
                .render()
                .contains("wsx_stomp_slow_disconnects_total 1\n")
        );
        assert!(metrics.render().contains("wsx_stomp_subscriptions 0\n"));
        // The publisher caused it but is not affected; a new consumer gets the messages the
        // slow one held, marked redelivered.
        assert!(commands(&p_link).is_empty());
        let (_fresh, fresh) = client(&hub, Some(("/queue/q", "auto")));
        let got = frames(&fresh);
        let bodies: Vec<&[u8]> = got.iter().map(|f| &f.body[..]).collect();
        assert_eq!(bodies, [&b"m0"[..], b"m1", b"m2", b"m3"]);
        assert_eq!(got[0].header("redelivered"), Some("true"));
        hub.close(slow);
        assert!(metrics.render().contains("wsx_stomp_sessions 2\n"));
    }

    #[test]
    fn keyed_topic_messages_replace_each_other_and_still_count_as_written() {
        let (hub, metrics) = hub(QueueLimits {
            items: 3,
            bytes: 1 << 20,
        });
        let (c, link) = client(&hub, Some(("/queue/q", "auto")));
        subscribe_auto(&hub, c, "t", "/topic/t");
        let (p, _) = client(&hub, None);
        // Far more keyed messages than the queue's 3 entries, around a queue delivery that
        // is acknowledged only once written.
        let keyed = |hub: &Hub, i: usize| {
            send(
                hub,
                p,
                Frame::new(Command::Send)
                    .with_header("destination", "/topic/t")
                    .with_header(
                        "x-conflation-key",
                        if i.is_multiple_of(2) { "a" } else { "b" },
                    )
                    .with_body(format!("v{i}")),
            );
        };
        for i in 0..50 {
            keyed(&hub, i);
        }
        publish(&hub, p, "/queue/q", "job");
        for i in 50..100 {
            keyed(&hub, i);
        }
        let mut outs = Vec::new();
        let drained = link.drain_into(usize::MAX, &mut outs);
        assert!(!drained.dropped);
        let bodies: Vec<String> = decode(&outs)
            .iter()
            .map(|f| String::from_utf8_lossy(&f.body).into_owned())
            .collect();
        assert_eq!(bodies, ["job", "v98", "v99"]);
        let replaced: u64 = outs
            .iter()
            .map(|o| match o {
                Outbound::Replaced(n) => *n,
                _ => 0,
            })
            .sum();
        assert_eq!(replaced, 98);
        assert!(
            metrics
                .render()
                .contains("wsx_stomp_messages_conflated_total 98\n")
        );
        // Reported in place, everything counts as written: nothing unwritten is left, and the
        // queue delivery was acknowledged (the queue is empty for a new consumer).
        let frames_taken: Vec<Outbound> = outs
            .into_iter()
            .filter(|o| !matches!(o, Outbound::Replaced(_)))
            .collect();
        let mut written = all_written(&frames_taken);
        written.transmits += replaced;
        written.bytes += drained.replaced_bytes;
        // One short of everything: the last message stays unwritten.
        let last = frames_taken.last().map_or(0, Outbound::budget_size);
        hub.written(
            c,
            Written {
                transmits: written.transmits - 1,
                bytes: written.bytes - last,
            },
        );
        let unwritten = || {
            lock(&hub.shared)
                .broker
                .session(c)
                .map(|s| s.unwritten_bytes())
        };
        assert_eq!(unwritten(), Some(last));
        hub.written(
            c,
            Written {
                transmits: 1,
                bytes: last,
            },
        );
        assert_eq!(unwritten(), Some(0));
        hub.close(c);
        let (_fresh, fresh) = client(&hub, Some(("/queue/q", "auto")));
        assert!(frames(&fresh).is_empty(), "the job was acknowledged");
    }

    #[test]
    fn own_output_is_bounded_by_the_session_budget() {
        let config = SessionConfig::default().max_unwritten_bytes(4096);
        let (hub, _) = hub_with(roomy(), config);
        let (c, link) = client(&hub, None);
        for id in ["a", "b", "c", "d"] {
            subscribe_auto(&hub, c, id, "/topic/echo");
        }
        // A hundred SENDs to its own four subscriptions in one message, never read: each
        // makes about 4 × 1 KiB of its own output.
        let mut packed = Vec::new();
        for i in 0..100 {
            let frame = Frame::new(Command::Send)
                .with_header("destination", "/topic/echo")
                .with_body(format!("{i:03}{}", "x".repeat(1000)));
            packed.extend(frame.encode(Version::V1_2).expect("encodable"));
        }
        let status = hub.receive(c, &packed, Written::default());
        assert!(!status.wants_input, "paused past the budget");
        let outs = take_all(&link);
        let bytes: usize = outs.iter().map(Outbound::budget_size).sum();
        assert!(
            bytes < 4096 + 5 * 1100,
            "the budget plus one frame's worth: {bytes}"
        );
        // Each write report lets a little more through, until everything is delivered.
        let mut delivered = decode(&outs).len();
        let mut status = hub.written(c, all_written(&outs));
        let mut reports = 1;
        while !status.wants_input || delivered < 400 {
            let outs = take_all(&link);
            assert!(!outs.is_empty(), "more output after each report");
            delivered += decode(&outs).len();
            status = hub.written(c, all_written(&outs));
            reports += 1;
            assert!(reports <= 101, "at least one SEND decoded per report");
        }
        assert_eq!(delivered, 400);
    }

    #[test]
    fn a_dropped_auto_consumer_loses_nothing_it_had_not_written() {
        let (hub, _) = hub(QueueLimits {
            items: 3,
            bytes: 1 << 20,
        });
        let (slow, slow_link) = client(&hub, Some(("/queue/q", "auto")));
        subscribe_auto(&hub, slow, "t", "/topic/t");
        let (p, _) = client(&hub, None);
        publish(&hub, p, "/queue/q", "m0");
        // m0 reaches the socket; m1 and m2 are taken by the task but never written.
        let outs = take_all(&slow_link);
        assert_eq!(decode(&outs).len(), 1);
        hub.written(slow, all_written(&outs));
        publish(&hub, p, "/queue/q", "m1");
        publish(&hub, p, "/queue/q", "m2");
        assert_eq!(take_all(&slow_link).len(), 2);
        // m3..m7 wait in the link; then topic messages overflow it: the consumer is dropped,
        // its link cleared.
        for i in 3..8 {
            publish(&hub, p, "/queue/q", &format!("m{i}"));
        }
        for i in 0..4 {
            publish(&hub, p, "/topic/t", &format!("t{i}"));
        }
        assert!(slow_link.drain_into(usize::MAX, &mut Vec::new()).dropped);
        let (_fresh, fresh) = client(&hub, Some(("/queue/q", "client-individual")));
        let got = frames(&fresh);
        let bodies: Vec<&[u8]> = got.iter().map(|f| &f.body[..]).collect();
        assert_eq!(
            bodies,
            [&b"m1"[..], b"m2", b"m3", b"m4", b"m5", b"m6", b"m7"]
        );
        assert_eq!(got[0].header("redelivered"), Some("true"));
        hub.close(slow);
    }

    #[test]
    fn deliveries_from_outside_a_call() {
        let (hub, metrics) = hub(roomy());
        let (_a, a) = client(&hub, Some(("/topic/news", "auto")));
        hub.pump_with(|engine, out, _| {
            let destination = Destination::parse("/topic/news").expect("a destination");
            let publish = Publish::new(destination, Headers::new(), Bytes::from_static(b"x"));
            engine.publish(publish, out);
        });
        let got = frames(&a);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].header("destination"), Some("/topic/news"));
        assert!(
            metrics
                .render()
                .contains("wsx_stomp_messages_delivered_total{kind=\"topic\"} 1\n")
        );
    }

    /// A memory engine that stores SENDs to `/queue/slow…` only when the test says so.
    #[derive(Default)]
    struct Deferring {
        inner: MemoryEngine,
        waiting: Vec<(Publish, Origin)>,
    }

    impl Engine for Deferring {
        fn subscribe(
            &mut self,
            key: SubscriberKey,
            destination: &Destination,
            max_unacked: Option<usize>,
            out: &mut Vec<Delivery>,
        ) {
            self.inner.subscribe(key, destination, max_unacked, out);
        }

        fn unsubscribe(&mut self, key: &SubscriberKey, out: &mut Vec<Delivery>) {
            self.inner.unsubscribe(key, out);
        }

        fn publish(&mut self, message: Publish, out: &mut Vec<Delivery>) {
            self.inner.publish(message, out);
        }

        fn try_publish_from(
            &mut self,
            message: Publish,
            origin: Origin,
            out: &mut Vec<Delivery>,
        ) -> Result<Outcome, wsx_stomp::Error> {
            if message.destination.name().starts_with("slow") {
                self.waiting.push((message, origin));
                return Ok(Outcome::Pending);
            }
            self.inner.publish(message, out);
            Ok(Outcome::Done)
        }

        fn ack(&mut self, key: &SubscriberKey, ids: &[MessageId], out: &mut Vec<Delivery>) {
            self.inner.ack(key, ids, out);
        }

        fn nack(&mut self, key: &SubscriberKey, ids: &[MessageId], out: &mut Vec<Delivery>) {
            self.inner.nack(key, ids, out);
        }
    }

    #[test]
    fn confirmations_release_receipts_and_count_as_published() {
        let metrics = Arc::new(BrokerMetrics::default());
        let engine = Metered::new(Deferring::default(), metrics.clone());
        let broker = Broker::new(engine, SessionConfig::default(), Arc::new(AllowAll));
        let hub = Hub::new(broker, metrics.clone(), roomy());
        let open = |hub: &Hub<Deferring>| {
            let (conn, link, _) = hub.open(ConnectionInfo::new().with_path("/stomp"));
            let bytes = Frame::new(Command::Connect)
                .with_header("accept-version", "1.2")
                .encode(Version::V1_2)
                .expect("encodable");
            hub.receive(conn, &bytes, Written::default());
            assert_eq!(commands(&link), [Command::Connected]);
            (conn, link)
        };
        let send_slow = |hub: &Hub<Deferring>, conn: ConnId, body: &str, receipt: &str| {
            let bytes = Frame::new(Command::Send)
                .with_header("destination", "/queue/slow")
                .with_header("receipt", receipt)
                .with_body(body.to_owned())
                .encode(Version::V1_2)
                .expect("encodable");
            hub.receive(conn, &bytes, Written::default());
        };
        let published = |metrics: &BrokerMetrics| {
            metrics
                .render()
                .contains("wsx_stomp_messages_published_total{kind=\"queue\"} 1\n")
        };
        let (consumer, consumer_link) = open(&hub);
        let subscribe = Frame::new(Command::Subscribe)
            .with_header("id", "s")
            .with_header("destination", "/queue/slow")
            .encode(Version::V1_2)
            .expect("encodable");
        hub.receive(consumer, &subscribe, Written::default());
        let (sender, link) = open(&hub);
        send_slow(&hub, sender, "kept", "r1");
        assert!(commands(&link).is_empty(), "no receipt before it is stored");
        assert!(!published(&metrics));

        hub.pump_with(|engine, out, confirmations| {
            let (publish, origin) = engine.waiting.remove(0);
            engine.inner.publish(publish, out);
            confirmations.push(Confirmation::Stored(origin));
        });
        let got = frames(&link);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].command, Command::Receipt);
        assert_eq!(got[0].header("receipt-id"), Some("r1"));
        assert_eq!(commands(&consumer_link), [Command::Message]);
        assert!(published(&metrics), "{}", metrics.render());

        send_slow(&hub, sender, "lost", "r2");
        hub.pump_with(|engine, _, confirmations| {
            let (_, origin) = engine.waiting.remove(0);
            confirmations.push(Confirmation::Failed(origin, "message refused: full".into()));
        });
        let outs = take_all(&link);
        assert_eq!(outs.len(), 2, "{outs:?}");
        assert!(
            matches!(&outs[1], Outbound::Close(Some(reason)) if reason == "message refused: full")
        );
        assert!(published(&metrics), "a failed SEND is not published");
    }

    #[test]
    fn a_deferred_answer_for_a_connection_gone_is_ignored() {
        let metrics = Arc::new(BrokerMetrics::default());
        let engine = Metered::new(MemoryEngine::new(), metrics.clone());
        let broker = Broker::new(
            engine,
            SessionConfig::default(),
            Arc::new(wsx_stomp::DeferredAuth),
        );
        let asked = Arc::new(Mutex::new(Vec::new()));
        let log = asked.clone();
        let hub = Hub::new(broker, metrics.clone(), roomy()).with_authentication(Box::new(
            move |conn, request: AuthRequest| lock(&log).push((conn, request.login)),
        ));
        let (conn, link, _) = hub.open(ConnectionInfo::new().with_path("/stomp"));
        let status = send(
            &hub,
            conn,
            Frame::new(Command::Connect)
                .with_header("accept-version", "1.2")
                .with_header("login", "ann"),
        );
        assert!(!status.wants_input, "no input while authenticating");
        assert!(commands(&link).is_empty(), "the request goes to the hook");
        assert_eq!(*lock(&asked), [(conn, Some("ann".to_owned()))]);
        // A second connection is answered: CONNECTED as the principal given.
        let (other, other_link, _) = hub.open(ConnectionInfo::new().with_path("/stomp"));
        send(
            &hub,
            other,
            Frame::new(Command::Connect).with_header("accept-version", "1.2"),
        );
        hub.authenticated(other, Ok(wsx_stomp::Principal::allow_all("zed")));
        let got = frames(&other_link);
        assert_eq!(got[0].command, Command::Connected);
        assert_eq!(got[0].header("user-id"), Some("zed"));
        // The first one goes before its answer: the answer changes nothing.
        hub.close(conn);
        hub.authenticated(conn, Ok(wsx_stomp::Principal::allow_all("ann")));
        assert!(commands(&link).is_empty());
        assert!(metrics.render().contains("wsx_stomp_sessions 1\n"));
    }

    #[test]
    fn close_all_releases_every_session() {
        let (hub, metrics) = hub(roomy());
        let (_held, held) = client(&hub, Some(("/queue/jobs", "client-individual")));
        let (p, _) = client(&hub, None);
        publish(&hub, p, "/queue/jobs", "job");
        assert_eq!(frames(&held).len(), 1);
        hub.close_all();
        let text = metrics.render();
        assert!(text.contains("wsx_stomp_sessions 0\n"), "{text}");
        assert!(text.contains("wsx_stomp_subscriptions 0\n"), "{text}");
        // The unacknowledged message went back to the queue.
        let (_next, next) = client(&hub, Some(("/queue/jobs", "auto")));
        let got = frames(&next);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].header("redelivered"), Some("true"));
    }
}
