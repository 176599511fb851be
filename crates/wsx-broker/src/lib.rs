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
//! 2. [`Broker::start`] builds the sans-IO [`wsx_stomp::Broker`] behind the hub (the lock every
//!    connection task calls into, and the bounded per-connection queues it fills) and, with
//!    Redis, the pump that hands what Redis sends to the engine.
//! 3. A connection task per client ([`Broker::serve_websocket`], or over plain TCP and TLS
//!    [`Broker::serve_tcp`] and [`Broker::serve_tls`] with [`TcpSettings`]) feeds the client's
//!    bytes to the hub and writes what the hub queued for it, with backpressure and write
//!    accounting; one session loop, generic over the transport.
//! 4. [`BrokerMetrics`] count sessions, subscriptions and messages for `/metrics`.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod backend;
mod broker;
mod error;
mod escaped;
mod hub;
mod jwt;
mod metrics;
mod options;
mod outbound_queue;
mod session_task;
mod tcp;
mod tcp_transport;
mod websocket_transport;
mod write_accounting;

pub use backend::{BrokerUrl, MemorySettings, RedisSettings};
pub use broker::{Broker, connection_info};
pub use error::Error;
pub use escaped::Escaped;
pub use jwt::{DEFAULT_LEEWAY_SECS as DEFAULT_JWT_LEEWAY_SECS, JwtOptions};
pub use metrics::BrokerMetrics;
pub use options::{BrokerOptions, HeartBeatMs, JwtSecret};
pub use outbound_queue::{Drained, OutboundQueue, QueueLimits, Refused};
pub use tcp::{DEFAULT_MAX_TCP_CONNECTIONS, DEFAULT_TLS_HANDSHAKE_TIMEOUT, TcpSettings};
pub use tcp_transport::{TCP_CLOSE_TIMEOUT, TCP_READ_BUFFER};
