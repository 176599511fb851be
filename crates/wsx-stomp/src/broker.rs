//! The in-process hub: every [`Session`] of a server plus one [`Engine`], with deliveries
//! routed between them.
//!
//! A [`Broker`] is still sans IO. The I/O layer keeps it behind a lock (or in one task), gives
//! each WebSocket connection a [`ConnId`] from [`Broker::open`], and calls the per-connection
//! methods. Calls that can produce output for *other* connections (a SEND fanning out, an ACK
//! freeing a queue window, a connection leaving and its queue messages being redelivered)
//! return the ids of those connections: the I/O layer wakes their tasks so they drain
//! [`Broker::poll_transmit`].
//!
//! An engine that stores SENDs later ([`crate::Outcome::Pending`]) reports their outcomes
//! through the I/O layer, which hands them to [`Broker::confirm`]: each goes to the session of
//! its connection, which sends the RECEIPT that waited (or an ERROR), like
//! [`Broker::deliver`] does for deliveries.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use crate::auth::{Authenticator, ConnectionInfo, Principal, Refusal};
use crate::engine::{Confirmation, ConnId, Delivery, Engine, MemoryEngine};
use crate::error::Error;
use crate::message::Publish;
use crate::session::{Session, SessionConfig, Transmit};

/// All sessions of a server and the engine routing between them.
pub struct Broker<E: Engine = MemoryEngine> {
    engine: E,
    config: Arc<SessionConfig>,
    auth: Arc<dyn Authenticator>,
    sessions: HashMap<ConnId, Session>,
    next_conn: u64,
    deliveries: Vec<Delivery>,
    woken: Vec<ConnId>,
}

impl<E: Engine> std::fmt::Debug for Broker<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("sessions", &self.sessions.len())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<E: Engine> Broker<E> {
    /// A broker routing through `engine`, admitting clients with `auth`.
    pub fn new(engine: E, config: SessionConfig, auth: Arc<dyn Authenticator>) -> Self {
        Broker {
            engine,
            config: Arc::new(config),
            auth,
            sessions: HashMap::new(),
            next_conn: 0,
            deliveries: Vec::new(),
            woken: Vec::new(),
        }
    }

    /// Register a new connection, opened at `now`; it must send CONNECT next.
    pub fn open(&mut self, info: ConnectionInfo, now: Instant) -> ConnId {
        self.next_conn += 1;
        let conn = ConnId(self.next_conn);
        let session = Session::new(conn, info, self.config.clone(), self.auth.clone(), now);
        self.sessions.insert(conn, session);
        conn
    }

    /// Bytes received on `conn` at `now`. Returns the other connections that have new
    /// transmits.
    pub fn receive(&mut self, conn: ConnId, now: Instant, bytes: &[u8]) -> &[ConnId] {
        if let Some(session) = self.sessions.get_mut(&conn) {
            session.receive(now, bytes, &mut self.engine, &mut self.deliveries);
        }
        self.route(conn)
    }

    /// The I/O layer's answer, at `now`, to the [`Transmit::Authenticate`] of `conn` (see
    /// [`Session::authenticated`]): CONNECTED and the frames that arrived meanwhile, or an
    /// ERROR and the close. Returns the other connections that have new transmits.
    pub fn authenticated(
        &mut self,
        conn: ConnId,
        now: Instant,
        verdict: Result<Principal, Refusal>,
    ) -> &[ConnId] {
        if let Some(session) = self.sessions.get_mut(&conn) {
            session.authenticated(now, verdict, &mut self.engine, &mut self.deliveries);
        }
        self.route(conn)
    }

    /// Publish `message` from the server (no session: no `user-id` is stamped, no receipt),
    /// through the engine, delivered like a SEND: to every subscriber of a topic or user
    /// destination, to one of a queue. Refused like a SEND ([`Engine::try_publish`]: a budget
    /// crossed, `/app/` to an engine without handlers). Returns the connections woken.
    pub fn publish(&mut self, message: Publish) -> Result<&[ConnId], Error> {
        self.engine.try_publish(message, &mut self.deliveries)?;
        Ok(self.route(ConnId(0)))
    }

    /// The next transmit of `conn` (see [`Session::poll_transmit`]).
    pub fn poll_transmit(&mut self, conn: ConnId, now: Instant) -> Option<Transmit> {
        self.sessions.get_mut(&conn)?.poll_transmit(now)
    }

    /// The I/O layer wrote `transmits` more of `conn`'s transmits, holding `bytes` bytes of
    /// frames (see [`Session::written`]): its `ack:auto` queue deliveries among them are
    /// acknowledged, and input it buffered while over its output budget is decoded. Returns
    /// the other connections that have new transmits.
    pub fn written(
        &mut self,
        conn: ConnId,
        now: Instant,
        transmits: u64,
        bytes: usize,
    ) -> &[ConnId] {
        if let Some(session) = self.sessions.get_mut(&conn) {
            session.written(
                now,
                transmits,
                bytes,
                &mut self.engine,
                &mut self.deliveries,
            );
        }
        self.route(conn)
    }

    /// The next deadline of `conn` (see [`Session::poll_timeout`]).
    pub fn poll_timeout(&self, conn: ConnId) -> Option<Instant> {
        self.sessions.get(&conn)?.poll_timeout()
    }

    /// Handle the deadlines of `conn` that passed at `now`. Returns the other connections that
    /// have new transmits (a timed-out client's queue messages go to them).
    pub fn handle_timeout(&mut self, conn: ConnId, now: Instant) -> &[ConnId] {
        if let Some(session) = self.sessions.get_mut(&conn) {
            session.handle_timeout(now, &mut self.engine, &mut self.deliveries);
        }
        self.route(conn)
    }

    /// `conn` is gone: drop its session and release its subscriptions. Returns the connections
    /// that have new transmits (redelivered queue messages).
    pub fn close(&mut self, conn: ConnId) -> &[ConnId] {
        if let Some(mut session) = self.sessions.remove(&conn) {
            session.shutdown(&mut self.engine, &mut self.deliveries);
        }
        self.route(conn)
    }

    /// The session of `conn`.
    pub fn session(&self, conn: ConnId) -> Option<&Session> {
        self.sessions.get(&conn)
    }

    /// The number of open connections.
    pub fn connection_count(&self) -> usize {
        self.sessions.len()
    }

    /// The engine.
    pub fn engine(&self) -> &E {
        &self.engine
    }

    /// The engine, mutably (for example to publish server-side messages; route the
    /// deliveries with [`Broker::deliver`]).
    pub fn engine_mut(&mut self) -> &mut E {
        &mut self.engine
    }

    /// Hand deliveries produced outside a session call (server-side publishing, or an engine
    /// that delivers asynchronously) to their sessions. Returns the connections woken.
    pub fn deliver(&mut self, deliveries: impl IntoIterator<Item = Delivery>) -> &[ConnId] {
        self.deliveries.extend(deliveries);
        self.route(ConnId(0))
    }

    /// Hand the engine's [`Confirmation`]s of pending SENDs to their sessions
    /// ([`Session::confirm`]): RECEIPTs that waited for them go out, a failed SEND is an ERROR
    /// and closes its session. Confirmations of connections gone are ignored. Returns the
    /// connections with new transmits: those confirmed, and those that got redelivered queue
    /// messages from a session the confirmations closed.
    pub fn confirm(&mut self, confirmations: impl IntoIterator<Item = Confirmation>) -> &[ConnId] {
        let mut confirmed = Vec::new();
        for confirmation in confirmations {
            let conn = confirmation.origin().conn;
            if let Some(session) = self.sessions.get_mut(&conn)
                && session.confirm(confirmation, &mut self.engine, &mut self.deliveries)
            {
                confirmed.push(conn);
            }
        }
        self.route(ConnId(0));
        self.woken.extend(confirmed);
        self.woken.sort_unstable();
        self.woken.dedup();
        &self.woken
    }

    /// Hand every pending delivery to its session; collect the connections (other than
    /// `origin`) that got something.
    fn route(&mut self, origin: ConnId) -> &[ConnId] {
        self.woken.clear();
        let mut batch = Vec::new();
        while !self.deliveries.is_empty() {
            std::mem::swap(&mut batch, &mut self.deliveries);
            for delivery in batch.drain(..) {
                let conn = delivery.subscriber.conn;
                let rejected = match self.sessions.get_mut(&conn) {
                    Some(session) => session.deliver(delivery),
                    None => Some(delivery),
                };
                match rejected {
                    None => {
                        if conn != origin {
                            self.woken.push(conn);
                        }
                    }
                    // A subscriber the session no longer knows: drop it from the engine,
                    // which requeues its unacknowledged messages.
                    Some(stale) => self
                        .engine
                        .unsubscribe(&stale.subscriber, &mut self.deliveries),
                }
            }
        }
        self.woken.sort_unstable();
        self.woken.dedup();
        &self.woken
    }
}
