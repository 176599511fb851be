//! # wsx-proto
//!
//! The sans-IO core of [wsx](https://docs.rs/wsx): bytes in, events out; messages in, bytes out.
//! No sockets, no async, no clock. An I/O layer (such as the `wsx` crate for tokio) reads bytes
//! from a transport into a [`Connection`], polls it for [`Message`]s, hands it messages to send and
//! writes out the bytes it produces.
//!
//! The flow of data:
//!
//! 1. The handshake ([`handshake`]): the client builds an HTTP/1.1 Upgrade request and checks the
//!    response; the server parses the request and builds the response (or an HTTP error).
//! 2. Once upgraded, a [`Connection`] decodes frames ([`frame`]), unmasks them in place
//!    ([`mask`]), assembles messages, validates UTF-8 as it streams in ([`utf8`]), inflates them
//!    when permessage-deflate was negotiated ([`deflate`]) and enforces the limits in [`Config`].
//! 3. Messages to send are encoded into frames and queued in an output buffer that the I/O layer
//!    drains with as few writes as possible.
//! 4. The close handshake ([`close`]) ends it.
#![deny(missing_docs)]
#![forbid(unsafe_op_in_unsafe_fn)]

pub mod close;
pub mod config;
pub mod connection;
pub mod deflate;
pub mod error;
pub mod frame;
pub mod handshake;
pub mod mask;
pub mod message;
pub mod output;
mod pool;
pub mod role;
pub mod utf8;

pub use close::{CloseCode, CloseFrame, MAX_CLOSE_REASON};
pub use config::Config;
pub use connection::{Connection, encode_frame};
pub use error::{Error, ProtocolError};
pub use frame::{FrameHeader, OpCode};
pub use message::{Message, Utf8Bytes};
pub use role::Role;
