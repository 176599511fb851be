//! [`Broker`]: the STOMP broker runtime — one sans-IO [`wsx_stomp::Broker`] shared by every
//! connection through the [`Hub`], on the engine [`crate::BrokerOptions::broker`] chose (in
//! memory, or one node of a broker shared through Redis, see [`crate::backend`]).
//!
//! ```text
//! BrokerOptions ─ BrokerBuilder ─ Hub (sans-IO broker + engine) ─ connection tasks
//!                      │ (Redis)                  ▲                 (session_task)
//!                      └─ RedisEvents ─ pump ─────┘ Hub::pump_with
//! ```
//!
//! With Redis, a SEND goes to Redis and comes back to every node (this one included) as a
//! [`wsx_stomp_redis::RedisEvent`]; the pump task started with the broker hands those to the
//! engine under the hub's lock ([`Hub::pump_with`]), which routes the deliveries to the
//! connections like a local SEND's. The SEND's RECEIPT waits until Redis has stored the message:
//! the node's writer reports it among the same events, and the hub hands the confirmation to
//! the session ([`wsx_stomp::Broker::confirm`]), which then sends the RECEIPT — or, when Redis
//! refused the message after the node accepted it, an ERROR, and closes.
//!
//! Authentication: an application's asynchronous authenticator when it gave one
//! ([`crate::AsyncAuthenticator`]); otherwise, with a JWT secret or public key
//! ([`crate::JwtOptions`]) a client must present a JWT; without either, anyone may connect and
//! use every destination (the principal is the `login` header, or `anonymous`).
//!
//! What else a broker does is in a file each: building it ([`crate::BrokerBuilder`]),
//! mounting it (`server_mount`, `axum_route`), application destinations (`app_routes`,
//! `app_engine`), publishing and consuming from Rust (`server_publish`).
//!
//! Shutdown: [`Broker::close_sessions`] tells every session to end (WebSocket close 1001);
//! [`Broker::shut_down`] then releases what is left and, with Redis, waits for the last
//! commands and stops the pump.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::debug;
use wsx::{Accept, HttpRequest, WebSocket, WebSocketConfig};
use wsx_stomp::{ConnectionInfo, Transport};
use wsx_stomp_redis::RedisEvents;

use crate::app_engine::AppEngine;
use crate::app_routes::AppRoutes;
use crate::backend::Backend;
use crate::hub::Hub;
use crate::jwt::JwtAuth;
use crate::metrics::BrokerMetrics;
use crate::session_task;
use crate::websocket_transport::WebSocketTransport;

/// The subprotocols of STOMP over WebSocket, best first.
pub(crate) const SUBPROTOCOLS: [&str; 3] = ["v12.stomp", "v11.stomp", "v10.stomp"];
/// Unwritten output above which a connection task stops taking frames from its queue.
pub(crate) const WRITE_HIGH_WATER: usize = 256 * 1024;
/// How long a session's input may stay paused when the idle limit is off.
pub(crate) const MAX_PAUSE: Duration = Duration::from_secs(300);
/// The least bytes of `ack:auto` topic messages a connection's queue may hold before it counts
/// as too slow.
pub(crate) const MIN_QUEUED_BYTES: usize = 8 << 20;
/// The most Redis events handled under one lock of the hub.
const REDIS_EVENT_BATCH: usize = 64;

/// The STOMP broker: sessions over WebSocket, its engine and its metrics. Shared by the
/// connection tasks as `Arc<Broker>`.
#[derive(Debug)]
pub struct Broker {
    pub(crate) hub: Hub<AppEngine<Backend>>,
    pub(crate) ws_config: WebSocketConfig,
    /// How long a session's input may stay paused (its client does not read its output)
    /// before the connection is closed as too slow: the idle limit, or [`MAX_PAUSE`] when
    /// that is off.
    pub(crate) max_pause: Duration,
    pub(crate) metrics: Arc<BrokerMetrics>,
    /// Turns `true` when the sessions must end ([`Broker::close_sessions`]).
    pub(crate) closing: watch::Sender<bool>,
    /// The Redis pump and what stops it, with a Redis engine.
    pub(crate) pump: Mutex<Option<(watch::Sender<bool>, JoinHandle<()>)>>,
    /// The application destinations ([`Broker::route`]).
    pub(crate) routes: Arc<AppRoutes>,
    /// What the broker's own sessions ([`Broker::subscribe`]) present to the authenticator.
    pub(crate) in_process_info: ConnectionInfo,
    /// The JWT verifier of `--jwt-*`, if configured (also for the HTTP publish API's tokens).
    pub(crate) jwt: Option<Arc<JwtAuth>>,
    /// The largest message body a client may send (a SEND's, an HTTP publish's).
    pub(crate) max_body_size: usize,
    /// The prefixes [`crate::BrokerBuilder::reserve`] keeps for the server's own traffic,
    /// which clients may not publish to (over STOMP or HTTP).
    pub(crate) reserved: Arc<[String]>,
    /// The bytes of HTTP publish bodies being read ([`crate::PUBLISH_BODIES_BUDGET`]).
    pub(crate) publish_bodies: Arc<tokio::sync::Semaphore>,
}

impl Broker {
    /// Tell every session to end: WebSocket sessions close with 1001 "server shutting down",
    /// TCP sessions once their queued output is written; [`Broker::serve_tcp`] returns.
    pub fn close_sessions(&self) {
        self.closing.send_replace(true);
    }

    /// At shutdown, once the connection tasks are gone: close the sessions left, then, with a
    /// Redis engine, wait up to `timeout` until Redis has carried out every command issued so
    /// far, so that the queue messages the closed sessions held go back to the other nodes now
    /// rather than after the claim timeout; then stop the pump.
    pub async fn shut_down(&self, timeout: Duration) {
        self.close_sessions();
        // Sessions whose tasks were cut short by the shutdown timeout.
        self.hub.close_all();
        // The future does not borrow the engine.
        let flushed = self
            .hub
            .with_engine(|engine| engine.redis_mut().map(|redis| redis.flushed()));
        if let Some(flushed) = flushed
            && tokio::time::timeout(timeout, flushed).await.is_err()
        {
            tracing::warn!("stomp: redis did not confirm the last commands in time");
        }
        let pump = self
            .pump
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some((stop, pump)) = pump {
            let _ = stop.send(true);
            let _ = pump.await;
        }
    }

    /// Run one STOMP session on an upgraded WebSocket (accepted with [`Broker::ws_config`] and
    /// [`Broker::accept`]) until it ends; `info` is what the authenticator learns about the
    /// connection ([`connection_info`]).
    pub async fn serve_websocket<S>(&self, ws: WebSocket<S>, info: ConnectionInfo)
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        session_task::run(
            self,
            WebSocketTransport::new(ws, self.metrics.broadcast()),
            info,
        )
        .await;
    }

    /// The WebSocket settings of STOMP connections.
    pub fn ws_config(&self) -> &WebSocketConfig {
        &self.ws_config
    }

    /// The broker's metrics (render them with [`BrokerMetrics::render_into`]).
    pub fn metrics(&self) -> &Arc<BrokerMetrics> {
        &self.metrics
    }

    /// Choose the subprotocol for an upgrade request: the best STOMP version the client offers,
    /// or none when it offers none (such clients are served too).
    pub fn accept(&self, req: &HttpRequest, mut accept: Accept) -> Accept {
        accept.subprotocol = choose_subprotocol(req).map(str::to_owned);
        accept
    }
}

/// Feed every Redis event to the engine, a batch per lock of the hub, until `stop` (or until
/// the engine's tasks are gone).
pub(crate) async fn redis_pump(
    broker: Arc<Broker>,
    mut events: RedisEvents,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let first = tokio::select! {
            _ = stop.wait_for(|stop| *stop) => break,
            event = events.recv() => match event {
                Some(event) => event,
                None => break,
            },
        };
        broker.hub.pump_with(|engine, out, confirmations| {
            if let Some(redis) = engine.redis_mut() {
                redis.handle_event(first, out, confirmations);
                for _ in 1..REDIS_EVENT_BATCH {
                    let Some(event) = events.try_recv() else {
                        break;
                    };
                    redis.handle_event(event, out, confirmations);
                }
            }
        });
    }
    debug!("stomp: redis pump stopped");
}

/// The best of [`SUBPROTOCOLS`] that `req` offers.
pub(crate) fn choose_subprotocol(req: &HttpRequest) -> Option<&'static str> {
    let offered: Vec<&str> = req
        .header_values("sec-websocket-protocol")
        .filter_map(|value| std::str::from_utf8(value).ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .collect();
    SUBPROTOCOLS
        .into_iter()
        .find(|p| offered.iter().any(|o| o.eq_ignore_ascii_case(p)))
}

/// What the authenticator learns about a WebSocket connection: peer, path, query string,
/// the upgrade request's headers (cookies among them; values that are not UTF-8 are left
/// out).
pub fn connection_info(req: &HttpRequest, peer: SocketAddr) -> ConnectionInfo {
    let headers = req.headers.iter().filter_map(|(name, value)| {
        std::str::from_utf8(value)
            .ok()
            .map(|value| (name.as_str(), value))
    });
    let info = ConnectionInfo::new()
        .with_peer_addr(peer)
        .with_path(req.path())
        .with_headers(headers)
        .with_transport(Transport::WebSocket);
    match req.query() {
        Some(query) => info.with_query(query),
        None => info,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(protocols: &[&str]) -> HttpRequest {
        let mut head = String::from(
            "GET /stomp?access_token=x HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n",
        );
        for p in protocols {
            head.push_str(&format!("Sec-WebSocket-Protocol: {p}\r\n"));
        }
        head.push_str("\r\n");
        let (req, _) = wsx_proto::handshake::parse_request(head.as_bytes(), 16 * 1024)
            .expect("valid")
            .expect("complete");
        req
    }

    #[test]
    fn subprotocols() {
        assert_eq!(choose_subprotocol(&request(&[])), None);
        assert_eq!(choose_subprotocol(&request(&["chat"])), None);
        assert_eq!(
            choose_subprotocol(&request(&["v10.stomp, v11.stomp, v12.stomp"])),
            Some("v12.stomp")
        );
        assert_eq!(
            choose_subprotocol(&request(&["v10.stomp", "V11.STOMP"])),
            Some("v11.stomp")
        );
    }

    #[test]
    fn connection_info_keeps_the_query() {
        let info = connection_info(&request(&[]), SocketAddr::from(([127, 0, 0, 1], 9)));
        assert_eq!(info.path, "/stomp");
        assert_eq!(info.query_param("access_token"), Some("x"));
    }
}
