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
//! 2. Once upgraded, a [`Connection`] decodes frames ([`FrameHeader`]), unmasks them in place
//!    ([`apply_mask`]), assembles messages, validates UTF-8 as it streams in
//!    ([`Utf8Validator`]), inflates them when permessage-deflate was negotiated ([`deflate`])
//!    and enforces the limits in [`Config`].
//! 3. Messages to send are encoded into frames and queued in an output buffer that the I/O layer
//!    drains with as few writes as possible. A broadcast shares its payload
//!    ([`SharedPayload`], [`Connection::send_shared`]), compressed once for every connection
//!    with the same deflate parameters.
//! 4. The close handshake ([`CloseFrame`], [`CloseCode`]) ends it.
//!
//! Time is passed in: keepalive and the close deadline ([`TimerConfig`]) are deadlines the I/O
//! layer asks for ([`Connection::poll_timeout`]) and reports ([`Connection::handle_timeout`]).
//! A client's masking keys come from the thread's random generator or a [`MaskKeySource`].
//!
//! Every public item has one path: the handshake's items under [`handshake`], permessage-deflate's
//! under [`deflate`], everything else at the crate root. The errors ([`Error`]) say whether the
//! peer misbehaved or the API was misused.
#![deny(missing_docs)]
#![forbid(unsafe_op_in_unsafe_fn)]

mod close;
mod config;
mod connection;
pub mod deflate;
mod error;
mod frame;
pub mod handshake;
mod mask;
mod mask_keys;
mod message;
mod output;
mod pool;
mod role;
mod shared;
mod timers;
mod utf8;

pub use close::{CloseCode, CloseFrame, MAX_CLOSE_REASON};
pub use config::Config;
pub use connection::{Connection, PONG_COALESCE_AT, encode_frame};
pub use error::{Error, ProtocolError};
pub use frame::{FrameHeader, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN, OpCode};
pub use mask::{apply_mask, apply_mask_scalar};
pub use mask_keys::MaskKeySource;
pub use message::{Message, Utf8Bytes};
pub use role::Role;
pub use shared::{SharedPayload, SharedSend};
pub use timers::{Timeout, TimerConfig};
pub use utf8::{InvalidUtf8, Utf8Validator};
