//! # wsx-stomp
//!
//! STOMP 1.0, 1.1 and 1.2 for WebSocket servers, sans IO: bytes in, frames and deliveries out.
//! No sockets, no async, no clock; the I/O layer (the `/stomp` endpoint of `wsx serve`) feeds
//! it the payloads of WebSocket messages and sends what it produces.
//!
//! The pieces, in the order data flows through them:
//!
//! 1. The codec. A [`Decoder`] turns a byte stream into [`Frame`]s whatever the WebSocket
//!    message boundaries (frames split across messages or packed several per message,
//!    heart-beat end-of-lines between them), unescaping headers the way the version says
//!    ([`Escaping`]) and enforcing [`Limits`] with an [`Error`] naming the problem. [`encode`]
//!    does the reverse; an [`EncodedFrame`] lets one MESSAGE be encoded once and shared by all
//!    subscribers.
//! 2. The [`Session`]: the server side of one connection. It negotiates the version and
//!    heart-beats on CONNECT, asks an [`Authenticator`] who the client is (at once, or through
//!    the I/O layer: [`Transmit::Authenticate`]), keeps subscriptions,
//!    acknowledgements and transactions, answers receipts, and turns client mistakes into
//!    ERROR frames. It produces [`Transmit`]s and exposes deadlines for the I/O layer's timers.
//! 3. An [`Engine`] routes destinations: `/topic/NAME` to every subscriber, `/queue/NAME` to
//!    one subscriber at a time with redelivery, `/user/{principal}/queue/NAME` to every session
//!    of that principal subscribed to `/user/queue/NAME` ([`Destination`]). [`MemoryEngine`] is the in-process one; the
//!    trait leaves room for a shared store, which may store a SEND later: it answers
//!    [`Outcome::Pending`] and reports a [`Confirmation`] through the I/O layer
//!    ([`Broker::confirm`]); the RECEIPT waits for it, and a failure is an ERROR.
//! 4. The [`Broker`] ties sessions and an engine together for a single process.
//!
//! A SUBSCRIBE may carry a `selector` header ([`Selector`]): the subscription then gets only
//! the messages whose headers match it.
//!
//! # The client
//!
//! With the `client` feature the crate also has a tokio STOMP client over a `wsx` WebSocket,
//! on the same codec: `StompClient`, which reconnects with backoff (trying several URLs in
//! turn), resubscribes, and resumes each topic subscription from the offset after the last
//! message it handed to the application (`x-stream-offset`). Without the feature the crate has
//! no I/O and no runtime.
//!
//! Decoding a frame that arrives in two pieces:
//!
//! ```
//! use wsx_stomp::{Command, Decoder, Limits, Version};
//!
//! let mut decoder = Decoder::new(Limits::default());
//! decoder.set_version(Version::V1_2);
//! decoder.feed(b"SEND\ndestination:/queue/a\\cb\ncontent-length:5\n\nhel");
//! assert_eq!(decoder.poll_frame()?, None); // the body is not complete yet
//! decoder.feed(b"lo\0\n");
//! let frame = decoder.poll_frame()?.expect("a complete frame");
//! assert_eq!(frame.command, Command::Send);
//! assert_eq!(frame.header("destination"), Some("/queue/a:b")); // `\c` unescaped
//! assert_eq!(&frame.body[..], b"hello");
//! assert_eq!(decoder.poll_frame()?, None); // the trailing EOL was a heart-beat
//! # Ok::<(), wsx_stomp::Error>(())
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod auth;
mod broker;
#[cfg(feature = "client")]
mod client;
mod command;
mod conflation;
mod decode;
mod destination;
mod encode;
mod engine;
mod error;
mod escape;
mod frame;
mod headers;
mod heartbeat;
mod limits;
mod message;
mod selector;
mod session;
mod version;

pub use auth::{
    Admission, AllowAll, AuthRequest, Authenticator, ConnectRequest, ConnectionInfo, DeferredAuth,
    Principal, Refusal, Transport,
};
pub use broker::Broker;
#[cfg(feature = "client")]
pub use client::{
    Backoff, ClientError, ClientMessage, ConnectionState, DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_HEART_BEAT, DEFAULT_SUBSCRIPTION_BUFFER, StartOffset, StompClient, StompClientBuilder,
    SubscribeOptions, Subscription,
};
pub use command::Command;
pub use conflation::{CONFLATION_KEY, ConflationTag};
pub use decode::Decoder;
pub use destination::{Destination, DestinationKind, DestinationPattern};
pub use encode::{EncodedFrame, encode, encode_into, encode_lossy};
pub use engine::{
    Confirmation, ConnId, ConsumerSet, Delivery, Engine, FIRST_OFFSET, Fed, Held, MemoryEngine,
    Origin, Outcome, StreamStart, SubscriberKey, TopicHistory,
};
pub use error::Error;
pub use escape::Escaping;
pub use frame::Frame;
pub use headers::Headers;
pub use heartbeat::{HeartBeat, HeartBeatHeader};
pub use limits::Limits;
pub use message::{Message, MessageId, Publish, RESERVED_HEADERS, STREAM_GAP, STREAM_OFFSET};
pub use selector::Selector;
pub use session::{AckMode, Phase, Session, SessionConfig, Transmit};
pub use version::Version;
