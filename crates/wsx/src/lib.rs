//! # wsx
//!
//! A fast, correct WebSocket (RFC 6455) client and server for tokio, with permessage-deflate
//! (RFC 7692). The protocol itself lives in the sans-IO crate [`wsx_proto`]; this crate drives
//! it over any `AsyncRead + AsyncWrite` transport.
//!
//! - Client: [`connect`] or [`ClientBuilder`].
//! - Server: [`accept`], [`accept_with`] (inspect the request, choose a subprotocol, reject), or
//!   [`read_request`] + [`upgrade`] inside a router that also serves plain HTTP.
//! - A server with a listener, limits, policy and graceful shutdown: [`Server`] ([`Policy`],
//!   [`ShutdownHandle`]).
//! - Proxies for the client (HTTP `CONNECT`, SOCKS5, from the environment as curl does):
//!   [`ProxyConfig`], [`NoProxy`].
//! - TLS (`wss://`, and a server-side acceptor): [`tls`], with rustls (feature `rustls`, on by
//!   default).
//! - Inside a hyper 1 server: [`hyper_upgrade`] (feature `hyper`); as an axum extractor:
//!   [`axum`] (feature `axum`).
//! - WebSocket over HTTP/2 (RFC 8441), server and client: [`http2`] (feature `http2`).
//! - A connection: [`WebSocket`], with `recv`/`send`, or as a `Stream` + `Sink` of [`Message`].
//!
//! Writes are coalesced: [`WebSocket::feed`] queues a message, [`WebSocket::flush`] writes every
//! queued frame in as few (vectored) writes as possible; [`WebSocket::send`] is both. A
//! broadcast encodes its frame once ([`encode_frame`], queued with
//! [`WebSocket::feed_encoded`]) or shares its payload's tail among recipients
//! ([`WebSocket::feed_with_shared_tail`]); with [`SharedPayload`] and
//! [`WebSocket::feed_shared`] a broadcast is also compressed once per permessage-deflate
//! parameter set instead of once per recipient.
//!
//! Every public item has one path: the crate root, or one of the modules [`tls`],
//! [`hyper_upgrade`], [`axum`] and [`http2`], whose names would be ambiguous at the root. The protocol types
//! come from [`wsx_proto`] and are re-exported here, so an application needs only this crate.
//!
//! Errors ([`Error`]) say whether the peer misbehaved ([`Error::Protocol`]), the transport
//! failed, or the API was misused ([`Error::Closed`], [`Error::InvalidSend`]).
#![deny(missing_docs)]
#![forbid(unsafe_code)]
// Without the `hyper`/`axum` features, the docs still mention the modules they would link to.
#![cfg_attr(
    not(all(feature = "hyper", feature = "axum", feature = "http2")),
    allow(rustdoc::broken_intra_doc_links)
)]

#[cfg(feature = "axum")]
pub mod axum;
mod client;
mod config;
mod error;
#[cfg(feature = "http2")]
pub mod http2;
#[cfg(feature = "hyper")]
pub mod hyper_upgrade;
mod listener;
mod policy;
mod server;
mod split;
pub mod tls;
mod websocket;

pub use bytes::Bytes;
pub use client::proxy::{DEFAULT_PROXY_PORT, NoProxy, ProxyConfig, ProxyScheme};
pub use client::{ClientBuilder, client_handshake, connect};
pub use config::{Backpressure, WebSocketConfig};
pub use error::{Error, Result};
pub use listener::{
    Answer, BodyRefused, ConnectionInfo, HttpResponse, ReadBody, Server, ShutdownHandle, Upgrade,
};
pub use policy::{AuthHook, Policy};
pub use server::{
    Accept, RESPONSE_TIMEOUT, Reject, accept, accept_with, read_request, refuse_over_capacity,
    respond, upgrade,
};
pub use split::{WsReceiver, WsSender};
pub use tls::stream::MaybeTlsStream;
pub use websocket::{RecvOrDrained, WebSocket};
pub use wsx_proto::deflate::DeflateConfig;
pub use wsx_proto::handshake::{ClientRequest, ClientResponse, HandshakeError, HttpRequest, WsUrl};
pub use wsx_proto::{
    CloseCode, CloseFrame, MAX_CLOSE_REASON, MaskKeySource, Message, OpCode, Role, SharedPayload,
    SharedSend, Utf8Bytes, encode_frame,
};
