//! WebSocket over HTTP/2 (RFC 8441, feature `http2`): a server for HTTP/2 connections whose
//! streams are WebSockets, and a client that opens several WebSockets over one HTTP/2
//! connection.
//!
//! Where it sits in the flow: the HTTP/2 framing is the `h2` crate's. A client opens a stream
//! with an extended CONNECT request (`:method CONNECT`, `:protocol websocket`, `:path`,
//! `:authority`, `sec-websocket-version: 13`, and the subprotocol and extension offers); the
//! server checks it with the same code as an HTTP/1.1 Upgrade (the request mapped to its
//! HTTP/1.1 form, RFC 8441 §5), applies the same [`Policy`](crate::Policy) (Origin 403, the
//! auth hook) and the route's decision (404 …), negotiates permessage-deflate the same way, and
//! answers `:status 200`. From then on the stream is an [`H2Stream`] and the application holds
//! the same [`WebSocket`](crate::WebSocket) API as over TCP ([`H2WebSocket`]).
//!
//! - Server: [`Http2Server::serve_connection`] on an accepted connection (h2c with prior
//!   knowledge, or TLS with ALPN `h2`). It advertises `SETTINGS_ENABLE_CONNECT_PROTOCOL`.
//! - Client: [`Http2Client::handshake`] / [`Http2Client::connect`], then
//!   [`Http2Client::open`] per WebSocket; a server without `SETTINGS_ENABLE_CONNECT_PROTOCOL`
//!   is [`Error::NoExtendedConnect`](crate::Error::NoExtendedConnect), on which a caller falls
//!   back to HTTP/1.1.
//!
//! Flow control is the backpressure (see [`H2Stream`]); the connection's limits are
//! [`Http2Limits`].

pub(crate) mod server;
mod stream;

pub use crate::client::http2::{Http2Client, PreferHttp2Stream};
pub use server::Http2Server;
#[cfg(feature = "hyper")]
pub(crate) use server::as_upgrade_request;
pub use stream::H2Stream;

/// A WebSocket over an HTTP/2 stream.
pub type H2WebSocket = crate::WebSocket<H2Stream>;

/// The `:protocol` of an RFC 8441 WebSocket request.
pub(crate) const PROTOCOL: &str = "websocket";

/// Default of [`Http2Limits::max_concurrent_streams`].
pub const DEFAULT_MAX_CONCURRENT_STREAMS: u32 = 100;
/// Default of [`Http2Limits::initial_stream_window`] (128 KiB).
pub const DEFAULT_STREAM_WINDOW: u32 = 128 * 1024;
/// Default of [`Http2Limits::initial_connection_window`]: every stream's window
/// (100 × 128 KiB = 12.5 MiB), so that WebSockets whose application does not read never stall
/// the others on the connection.
pub const DEFAULT_CONNECTION_WINDOW: u32 = DEFAULT_MAX_CONCURRENT_STREAMS * DEFAULT_STREAM_WINDOW;
/// Default of [`Http2Limits::max_header_list_size`] (16 KiB).
pub const DEFAULT_MAX_HEADER_LIST_SIZE: u32 = 16 * 1024;
/// Default of [`Http2Limits::max_send_buffer`] (256 KiB).
pub const DEFAULT_MAX_SEND_BUFFER: usize = 256 * 1024;

/// The bounds of one HTTP/2 connection, server or client side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Http2Limits {
    /// The most streams (WebSockets) the peer may open at once on the connection
    /// (`SETTINGS_MAX_CONCURRENT_STREAMS`); past it, a wsx client's
    /// [`open`](Http2Client::open) waits until one ends, and a stream opened anyway is refused
    /// (`RST_STREAM REFUSED_STREAM`). Default 100.
    pub max_concurrent_streams: u32,
    /// How much a peer may send on one stream before the application reads it
    /// (`SETTINGS_INITIAL_WINDOW_SIZE`): the most a WebSocket's unread input holds, past its
    /// own read buffer. Default 128 KiB.
    pub initial_stream_window: u32,
    /// How much a peer may send on all streams of the connection before they are read: the
    /// most the connection's unread input holds. Keep it at least `max_concurrent_streams ×
    /// initial_stream_window`, or a few WebSockets that are not read stall the others.
    /// Default 12.5 MiB (that product).
    pub initial_connection_window: u32,
    /// The largest request or response head accepted (`SETTINGS_MAX_HEADER_LIST_SIZE`).
    /// Default 16 KiB.
    pub max_header_list_size: u32,
    /// The most unsent data buffered per stream (waiting for the peer's window).
    /// Default 256 KiB.
    pub max_send_buffer: usize,
}

impl Default for Http2Limits {
    fn default() -> Self {
        Http2Limits {
            max_concurrent_streams: DEFAULT_MAX_CONCURRENT_STREAMS,
            initial_stream_window: DEFAULT_STREAM_WINDOW,
            initial_connection_window: DEFAULT_CONNECTION_WINDOW,
            max_header_list_size: DEFAULT_MAX_HEADER_LIST_SIZE,
            max_send_buffer: DEFAULT_MAX_SEND_BUFFER,
        }
    }
}

impl Http2Limits {
    /// Set [`max_concurrent_streams`](Self::max_concurrent_streams).
    pub fn max_concurrent_streams(mut self, n: u32) -> Self {
        self.max_concurrent_streams = n;
        self
    }

    /// Set [`initial_stream_window`](Self::initial_stream_window).
    pub fn initial_stream_window(mut self, bytes: u32) -> Self {
        self.initial_stream_window = bytes;
        self
    }

    /// Set [`initial_connection_window`](Self::initial_connection_window).
    pub fn initial_connection_window(mut self, bytes: u32) -> Self {
        self.initial_connection_window = bytes;
        self
    }

    /// Set [`max_header_list_size`](Self::max_header_list_size).
    pub fn max_header_list_size(mut self, bytes: u32) -> Self {
        self.max_header_list_size = bytes;
        self
    }

    /// Set [`max_send_buffer`](Self::max_send_buffer).
    pub fn max_send_buffer(mut self, bytes: usize) -> Self {
        self.max_send_buffer = bytes;
        self
    }
}

/// Headers HTTP/2 forbids (RFC 9113 §8.2.2): they are about one HTTP/1.1 connection.
const CONNECTION_SPECIFIC: &[&str] = &[
    "connection",
    "upgrade",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
];

/// Whether HTTP/2 forbids the header `name` (lowercase).
pub(crate) fn is_connection_specific(name: &str) -> bool {
    CONNECTION_SPECIFIC.contains(&name)
}

/// The h2 error as a wsx error.
pub(crate) fn h2_error(e: h2::Error) -> crate::Error {
    if e.is_io() {
        return match e.into_io() {
            Some(io) => crate::Error::Io(io),
            None => crate::Error::Http2("I/O error".into()),
        };
    }
    crate::Error::Http2(e.to_string())
}
