//! # wsx-broker
//!
//! The STOMP broker runtime of wsx, for tokio: sessions over WebSocket (mounted on any server
//! that hands it an upgraded [`wsx::WebSocket`]), on an engine in memory or shared by several
//! nodes through Redis (`wsx-stomp-redis`). `wsx serve` is one application of it.
//!
//! The pieces, in the order data flows through them:
//!
//! 1. [`BrokerOptions`] say how to build it: authentication (JWT built in), session limits,
//!    heart-beats, the engine ([`BrokerUrl`]) and its budgets.
//! 2. [`Broker::builder`] ([`BrokerBuilder`]; [`Broker::start`] with options only) builds the
//!    sans-IO [`wsx_stomp::Broker`] behind the hub (the lock every connection task calls into,
//!    and the bounded per-connection queues it fills), with an [`AsyncAuthenticator`] if the
//!    application gives one, application destinations ([`Broker::route`], [`AppHandler`]) in
//!    front of the engine, and, with Redis, the pump that hands what Redis sends to the engine.
//! 3. Mounting: [`Broker::upgrade`] on a [`wsx::Server`], `Broker::axum_route` (feature
//!    `axum`), [`Broker::serve_websocket`] on any upgraded WebSocket, or STOMP over plain TCP
//!    and TLS ([`Broker::serve_tcp`], [`Broker::serve_tls`], [`TcpSettings`]). A connection
//!    task per client feeds the client's bytes to the hub and writes what the hub queued for
//!    it, with backpressure and write accounting: one session loop, generic over the
//!    transport.
//! 4. The application's own traffic: [`Broker::publish`], [`Broker::send_to_user`],
//!    [`Broker::subscribe`] ([`InProcessSubscription`]), and the [`AppMessage`]s of its
//!    handlers.
//! 5. [`BrokerMetrics`] count sessions, subscriptions and messages for `/metrics`.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod app_engine;
mod app_message;
mod app_routes;
mod authenticator;
#[cfg(feature = "axum")]
mod axum_route;
mod backend;
mod broadcast_counters;
mod broker;
mod builder;
mod error;
mod escaped;
mod http_publish;
mod hub;
mod jwt;
mod metrics;
mod options;
mod outbound_queue;
mod server_mount;
mod server_publish;
mod session_task;
mod tcp;
mod tcp_transport;
mod websocket_transport;
mod write_accounting;

pub use app_message::AppMessage;
pub use app_routes::{AppFuture, AppHandler, MAX_APP_BYTES, MAX_APP_SENDS};
pub use authenticator::{AUTHENTICATION_TIMEOUT, AsyncAuthenticator, AuthFuture};
pub use backend::{BrokerUrl, MemorySettings, RedisSettings};
pub use broadcast_counters::BroadcastCounters;
pub use broker::{Broker, connection_info};
pub use builder::BrokerBuilder;
pub use error::Error;
pub use escaped::Escaped;
pub use http_publish::{
    PUBLISH_BODIES_BUDGET, PublishAdmission, PublishAnswer, PublishHead, PublishRequest,
};
pub use jwt::{DEFAULT_LEEWAY_SECS as DEFAULT_JWT_LEEWAY_SECS, JwtOptions};
pub use metrics::BrokerMetrics;
pub use options::{BrokerOptions, HeartBeatMs, JwtSecret};
pub use outbound_queue::{Drained, KeyedPush, OutboundQueue, QueueLimits, Refused, Replaceable};
pub use server_publish::{InProcessSubscription, ReceivedMessage};
pub use tcp::{DEFAULT_MAX_TCP_CONNECTIONS, DEFAULT_TLS_HANDSHAKE_TIMEOUT, TcpSettings};
pub use tcp_transport::{TCP_CLOSE_TIMEOUT, TCP_READ_BUFFER};
