//! The tokio STOMP client (feature `client`): STOMP 1.2 over a [`wsx`] WebSocket, on top of
//! this crate's codec ([`crate::Decoder`], [`crate::encode`]). It sits beside the sans-IO
//! broker pieces, on the other end of the wire: where a [`crate::Session`] is the server's side
//! of one connection, a [`StompClient`] is an application's side of a connection that it keeps
//! alive.
//!
//! The flow: [`StompClientBuilder::connect`] starts the connection task (`driver.rs`), which
//! opens a connection to the first URL that answers, and a reader task per connection
//! (`reader.rs`) that decodes frames and hands each MESSAGE to its [`Subscription`]. The
//! application's calls on [`StompClient`] become commands for the connection task.
//!
//! Guarantees:
//!
//! - **Reconnection.** A lost connection (closed, failed, silent past twice the negotiated
//!   heart-beat) is reopened: the same URL at once, then the next URLs in turn with
//!   exponential [`Backoff`] between failed attempts. [`StompClient::state`] reports
//!   [`ConnectionState`]s.
//! - **Resubscription and resume.** Every subscription is made again on the new connection
//!   (the state becomes `Connected` once the server confirmed them all). A `/topic/`
//!   subscription resumes with `x-stream-offset:offset=<last offset handed to the application
//!   + 1>`, or its initial [`StartOffset`] if it handed nothing yet; messages of the old
//!   connection still buffered are dropped since the server sends them again. On a server that
//!   keeps the topic's history (across nodes, with a shared broker), the application gets every
//!   message once and in order; when the history no longer reaches back that far, the first
//!   message says so ([`ClientMessage::is_gap`]).
//! - **Sends.** [`StompClient::send`] returns once the server's RECEIPT came. If the
//!   connection is lost first, it fails with [`ClientError::ConnectionLost`] — the server may
//!   or may not have the message, and the client does not resend it (a resend could deliver
//!   it twice). Between connections, sends fail at once with [`ClientError::NotConnected`].
//!   Nothing is lost silently.
//!
//! Bounded buffers: each subscription holds at most
//! [`StompClientBuilder::subscription_buffer`] messages (default
//! [`DEFAULT_SUBSCRIPTION_BUFFER`]); past that the client stops reading the connection. The
//! application's requests queue up to 256 deep (callers then wait); frames from the server are
//! limited by [`StompClientBuilder::limits`].
//!
//! ```no_run
//! # async fn run() -> Result<(), wsx_stomp::ClientError> {
//! use wsx_stomp::{Headers, StompClient};
//!
//! let client = StompClient::builder()
//!     .url("ws://node-a:8080/stomp")
//!     .url("ws://node-b:8080/stomp")
//!     .connect()
//!     .await?;
//! let mut quotes = client.subscribe("/topic/quotes").await?;
//! client.send("/topic/quotes", Headers::new(), "ACME 12.5").await?;
//! while let Some(message) = quotes.recv().await {
//!     println!("{:?} {:?}", message.offset(), message.body_text());
//! }
//! # Ok(()) }
//! ```

mod backoff;
mod builder;
mod driver;
mod error;
mod handle;
mod message;
mod reader;
mod state;
mod subscription;

pub use backoff::Backoff;
pub use builder::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_HEART_BEAT, DEFAULT_SUBSCRIPTION_BUFFER, StompClientBuilder,
};
pub use error::ClientError;
pub use handle::StompClient;
pub use message::{ClientMessage, StartOffset, SubscribeOptions};
pub use state::ConnectionState;
pub use subscription::Subscription;
