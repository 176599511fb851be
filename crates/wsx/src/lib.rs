//! # wsx
//!
//! A fast, correct WebSocket (RFC 6455) client and server for tokio, with permessage-deflate
//! (RFC 7692). The protocol itself lives in the sans-IO crate [`wsx_proto`]; this crate drives
//! it over any `AsyncRead + AsyncWrite` transport.
//!
//! - Client: [`connect`] or [`ClientBuilder`].
//! - Server: [`accept`], [`accept_with`] (inspect the request, choose a subprotocol, reject), or
//!   [`read_request`] + [`upgrade`] inside a router that also serves plain HTTP.
//! - TLS (`wss://`, and a server-side acceptor): [`tls`], with rustls (feature `rustls`, on by
//!   default).
//! - A connection: [`WebSocket`], with `recv`/`send`, or as a `Stream` + `Sink` of [`Message`].
//!
//! Writes are coalesced: [`WebSocket::feed`] queues a message, [`WebSocket::flush`] writes every
//! queued frame in as few (vectored) writes as possible; [`WebSocket::send`] is both.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

#[cfg(feature = "axum")]
pub mod axum;
pub mod client;
pub mod config;
pub mod error;
#[cfg(feature = "hyper")]
pub mod hyper_upgrade;
mod keepalive;
pub mod listener;
pub mod policy;
pub mod proxy;
pub mod server;
pub mod split;
pub mod tls;
pub mod websocket;

pub use bytes::Bytes;
pub use client::{ClientBuilder, connect};
pub use config::{Backpressure, WebSocketConfig};
pub use error::{Error, Result};
pub use listener::{Answer, ConnectionInfo, HttpResponse, Server, ShutdownHandle, Upgrade};
pub use policy::Policy;
pub use proxy::ProxyConfig;
pub use server::{
    Accept, RESPONSE_TIMEOUT, Reject, accept, accept_with, read_request, refuse_over_capacity,
    respond, upgrade,
};
pub use split::{WsReceiver, WsSender};
pub use tls::MaybeTlsStream;
pub use websocket::{RecvOrDrained, WebSocket};
pub use wsx_proto::deflate::DeflateConfig;
pub use wsx_proto::handshake::{ClientResponse, HandshakeError, HttpRequest, WsUrl};
pub use wsx_proto::{CloseCode, CloseFrame, Message, OpCode, Role, Utf8Bytes};
