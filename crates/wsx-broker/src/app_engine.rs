//! [`AppEngine`]: the engine wrapper that takes the SENDs to application destinations
//! (`/app/...`) away from the memory or Redis engine and hands them to the application's
//! handlers.
//!
//! ```text
//! session ─ SEND /app/x ─ AppEngine::try_publish_from ─ route? ─ no ─ Backend: ERROR
//!                                                          └ yes ─ Pending ─ task: handler
//! handler done ─ Hub::pump_with ─ Confirmation::Stored (RECEIPT) / Failed (ERROR) ─ session
//! ```
//!
//! Where it sits in the flow: between the sans-IO broker's sessions and the engine the
//! options chose, under the hub's lock. A SEND whose destination matches a route
//! ([`crate::app_routes`]) is answered [`Outcome::Pending`] (its RECEIPT waits) and a task
//! runs the handler on this node; its verdict comes back to the hub as a
//! [`Confirmation`] through [`crate::hub::Hub::pump_with`], like a Redis engine's: `Ok` sends
//! the RECEIPT the SEND asked for, a [`wsx_stomp::Refusal`] an ERROR (and the close). Each
//! session has at most [`crate::MAX_APP_SENDS`] SENDs, of [`crate::MAX_APP_BYTES`] bytes in
//! all, in its handlers at once; past either the SEND is refused at once with an ERROR. A
//! client's SEND to a reserved destination ([`crate::BrokerBuilder::reserve`]: traffic only the
//! server may publish, such as `wsx serve`'s chat rooms on `/topic/wsx.`) is refused with an
//! ERROR too. Everything else goes to the engine behind.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use tracing::debug;
use wsx_stomp::{
    Confirmation, ConnId, Delivery, Destination, DestinationKind, Engine, MessageId, Origin,
    Outcome, Publish, Selector, SubscriberKey,
};
use wsx_stomp_redis::RedisEngine;

use crate::app_message::AppMessage;
use crate::app_routes::{AppRoutes, MAX_APP_BYTES, MAX_APP_SENDS, RouteMatch};
use crate::backend::Backend;
use crate::broker::Broker;

/// The broker's engine: application destinations in front of `E`.
pub struct AppEngine<E> {
    inner: E,
    routes: Arc<AppRoutes>,
    /// The broker the handlers' tasks answer to.
    broker: Weak<Broker>,
    /// SENDs of each session in its handlers.
    in_flight: HashMap<ConnId, InFlight>,
    /// Destination prefixes only the server publishes to: clients' SENDs there are refused.
    reserved: Vec<String>,
}

/// One session's SENDs in its handlers: how many, and their bytes.
#[derive(Debug, Default, Clone, Copy)]
struct InFlight {
    sends: usize,
    bytes: usize,
}

impl<E> std::fmt::Debug for AppEngine<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppEngine")
            .field("routes", &self.routes)
            .field("in_flight", &self.in_flight.len())
            .finish_non_exhaustive()
    }
}

impl<E> AppEngine<E> {
    /// Route `/app/` SENDs matching `routes` to their handlers, answering to `broker`; the
    /// rest goes to `inner`.
    pub fn new(inner: E, routes: Arc<AppRoutes>, broker: Weak<Broker>) -> Self {
        AppEngine {
            inner,
            routes,
            broker,
            in_flight: HashMap::new(),
            reserved: Vec::new(),
        }
    }

    /// Refuse clients' SENDs to destinations that start with one of `prefixes`.
    pub fn reserve(mut self, prefixes: Vec<String>) -> Self {
        self.reserved = prefixes;
        self
    }

    /// A handler answered a SEND of `conn` of `bytes` bytes.
    fn finished(&mut self, conn: ConnId, bytes: usize) {
        if let Some(in_flight) = self.in_flight.get_mut(&conn) {
            in_flight.sends -= 1;
            in_flight.bytes -= bytes;
            if in_flight.sends == 0 {
                self.in_flight.remove(&conn);
            }
        }
    }
}

impl AppEngine<Backend> {
    /// The Redis engine, when the broker is one node of a shared one.
    pub fn redis_mut(&mut self) -> Option<&mut RedisEngine> {
        self.inner.redis_mut()
    }

    /// The engine behind the application routes.
    pub(crate) fn backend_mut(&mut self) -> &mut Backend {
        &mut self.inner
    }
}

impl<E: Engine> Engine for AppEngine<E> {
    fn subscribe(
        &mut self,
        key: SubscriberKey,
        destination: &Destination,
        max_unacked: Option<usize>,
        out: &mut Vec<Delivery>,
    ) {
        self.inner.subscribe(key, destination, max_unacked, out);
    }

    fn subscribe_with_selector(
        &mut self,
        key: SubscriberKey,
        destination: &Destination,
        max_unacked: Option<usize>,
        selector: Option<Selector>,
        out: &mut Vec<Delivery>,
    ) -> Result<(), wsx_stomp::Error> {
        self.inner
            .subscribe_with_selector(key, destination, max_unacked, selector, out)
    }

    fn subscribe_at(
        &mut self,
        key: SubscriberKey,
        destination: &Destination,
        max_unacked: Option<usize>,
        selector: Option<Selector>,
        start: wsx_stomp::StreamStart,
        out: &mut Vec<Delivery>,
    ) -> Result<(), wsx_stomp::Error> {
        self.inner
            .subscribe_at(key, destination, max_unacked, selector, start, out)
    }

    fn unsubscribe(&mut self, key: &SubscriberKey, out: &mut Vec<Delivery>) {
        self.inner.unsubscribe(key, out);
    }

    fn publish(&mut self, message: Publish, out: &mut Vec<Delivery>) {
        self.inner.publish(message, out);
    }

    fn try_publish(
        &mut self,
        message: Publish,
        out: &mut Vec<Delivery>,
    ) -> Result<(), wsx_stomp::Error> {
        self.inner.try_publish(message, out)
    }

    fn try_publish_from(
        &mut self,
        message: Publish,
        origin: Origin,
        out: &mut Vec<Delivery>,
    ) -> Result<Outcome, wsx_stomp::Error> {
        let destination = message.destination.as_str();
        if let Some(prefix) = self.reserved.iter().find(|p| destination.starts_with(*p)) {
            return Err(wsx_stomp::Error::Refused(format!(
                "{prefix}... is reserved for the server's own traffic"
            )));
        }
        if message.destination.kind() != DestinationKind::App {
            return self.inner.try_publish_from(message, origin, out);
        }
        let Some(route) = self.routes.find(message.destination.as_str()) else {
            return self.inner.try_publish_from(message, origin, out);
        };
        let size = message.size();
        let in_flight = self.in_flight.entry(origin.conn).or_default();
        if in_flight.sends >= MAX_APP_SENDS {
            return Err(wsx_stomp::Error::Refused(format!(
                "too many messages in flight to /app/ handlers (at most {MAX_APP_SENDS})"
            )));
        }
        if in_flight.bytes + size > MAX_APP_BYTES {
            return Err(wsx_stomp::Error::Refused(format!(
                "too many bytes in flight to /app/ handlers (at most {MAX_APP_BYTES})"
            )));
        }
        in_flight.sends += 1;
        in_flight.bytes += size;
        spawn_handler(self.broker.clone(), route, message, size, origin);
        Ok(Outcome::Pending)
    }

    fn ack(&mut self, key: &SubscriberKey, ids: &[MessageId], out: &mut Vec<Delivery>) {
        self.inner.ack(key, ids, out);
    }

    fn nack(&mut self, key: &SubscriberKey, ids: &[MessageId], out: &mut Vec<Delivery>) {
        self.inner.nack(key, ids, out);
    }
}

/// Run `handler` on `message` in a task of its own, then hand its verdict to the hub as the
/// SEND's confirmation. Called under the hub's lock: the task locks it only once it runs.
fn spawn_handler(
    broker: Weak<Broker>,
    route: RouteMatch,
    message: Publish,
    size: usize,
    origin: Origin,
) {
    tokio::spawn(async move {
        let Some(strong) = broker.upgrade() else {
            return;
        };
        let conn = origin.conn;
        // The sender may be gone already: then its SEND is dropped with its session.
        let verdict = match strong.hub.principal(conn) {
            Some(principal) => {
                let app_message = AppMessage {
                    broker: strong.clone(),
                    principal: principal.name,
                    conn,
                    destination: message.destination.as_str().to_owned(),
                    params: route.params,
                    headers: message.headers,
                    body: message.body,
                };
                drop(strong);
                route.handler.handle(app_message).await
            }
            None => Err(wsx_stomp::Refusal::new("session gone")),
        };
        debug!(
            conn = conn.0,
            accepted = verdict.is_ok(),
            "stomp: app handler"
        );
        let Some(broker) = broker.upgrade() else {
            return;
        };
        broker.hub.pump_with(|engine, _, confirmations| {
            engine.finished(conn, size);
            confirmations.push(match verdict {
                Ok(()) => Confirmation::Stored(origin),
                Err(refusal) => Confirmation::Failed(origin, refusal.message),
            });
        });
    });
}
