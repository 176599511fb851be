//! [`MaybeTlsStream`]: the transport under a [`WebSocket`](crate::WebSocket), plain TCP (`ws://`)
//! or TLS over TCP (`wss://`), so both have one type: what the client connects over, and what a
//! server that listens with and without TLS can hand to its connection handlers.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A TCP connection, with or without TLS: what
/// [`ClientBuilder::connect`](crate::ClientBuilder::connect) connects over (`Plain` or
/// `Rustls`). A server may use it too, to give plain and TLS connections one type: wrap the
/// accepted `TcpStream` or the [`ServerTlsStream`](super::ServerTlsStream) from
/// [`TlsAcceptor::accept_tls`](super::TlsAcceptor::accept_tls) with `MaybeTlsStream::from`.
///
/// Reads and writes go straight to the inner stream (vectored writes included).
#[derive(Debug)]
#[non_exhaustive]
pub enum MaybeTlsStream {
    /// Plain TCP (`ws://`).
    Plain(TcpStream),
    /// TLS over TCP (`wss://`), with rustls. Boxed: the TLS state is large.
    #[cfg(feature = "rustls")]
    Rustls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    /// The server side of TLS over TCP, with rustls (a server's accepted connection).
    #[cfg(feature = "rustls")]
    RustlsServer(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    /// A WebSocket over an HTTP/2 stream (RFC 8441), as a [`Server`](crate::Server) with
    /// [`http2`](crate::Server::http2) hands it to its routes' sessions (feature `http2`).
    #[cfg(feature = "http2")]
    Http2(Box<crate::http2::H2Stream>),
}

impl MaybeTlsStream {
    /// `true` when the connection runs over TLS (for an HTTP/2 stream: unknown here, `false`).
    pub fn is_tls(&self) -> bool {
        match self {
            MaybeTlsStream::Plain(_) => false,
            #[cfg(feature = "http2")]
            MaybeTlsStream::Http2(_) => false,
            #[cfg(feature = "rustls")]
            MaybeTlsStream::Rustls(_) | MaybeTlsStream::RustlsServer(_) => true,
        }
    }

    /// `true` for a WebSocket over an HTTP/2 stream (RFC 8441).
    pub fn is_http2(&self) -> bool {
        #[cfg(feature = "http2")]
        return matches!(self, MaybeTlsStream::Http2(_));
        #[cfg(not(feature = "http2"))]
        false
    }

    /// The TCP socket underneath (for addresses and socket options; reading or writing it
    /// directly would corrupt a TLS stream); `None` for an HTTP/2 stream, whose connection
    /// is shared with other streams.
    pub fn tcp(&self) -> Option<&TcpStream> {
        match self {
            MaybeTlsStream::Plain(tcp) => Some(tcp),
            #[cfg(feature = "http2")]
            MaybeTlsStream::Http2(_) => None,
            #[cfg(feature = "rustls")]
            MaybeTlsStream::Rustls(tls) => Some(tls.get_ref().0),
            #[cfg(feature = "rustls")]
            MaybeTlsStream::RustlsServer(tls) => Some(tls.get_ref().0),
        }
    }

    /// The TLS state common to both sides (negotiated protocol version, cipher suite, ALPN
    /// protocol, the peer's certificates), or `None` for plain TCP.
    #[cfg(feature = "rustls")]
    pub fn tls_state(&self) -> Option<&rustls::CommonState> {
        match self {
            MaybeTlsStream::Rustls(tls) => Some(tls.get_ref().1),
            MaybeTlsStream::RustlsServer(tls) => Some(tls.get_ref().1),
            _ => None,
        }
    }

    /// The client's rustls connection (see also [`tls_state`](Self::tls_state)), or `None`
    /// for plain TCP or the server side.
    #[cfg(feature = "rustls")]
    pub fn tls_connection(&self) -> Option<&rustls::ClientConnection> {
        match self {
            MaybeTlsStream::Rustls(tls) => Some(tls.get_ref().1),
            _ => None,
        }
    }

    /// The server's rustls connection (the client's SNI name in
    /// [`server_name`](rustls::ServerConnection::server_name)), or `None` for plain TCP or the
    /// client side.
    #[cfg(feature = "rustls")]
    pub fn tls_server_connection(&self) -> Option<&rustls::ServerConnection> {
        match self {
            MaybeTlsStream::RustlsServer(tls) => Some(tls.get_ref().1),
            _ => None,
        }
    }
}

impl From<TcpStream> for MaybeTlsStream {
    fn from(tcp: TcpStream) -> Self {
        MaybeTlsStream::Plain(tcp)
    }
}

#[cfg(feature = "rustls")]
impl From<tokio_rustls::client::TlsStream<TcpStream>> for MaybeTlsStream {
    fn from(tls: tokio_rustls::client::TlsStream<TcpStream>) -> Self {
        MaybeTlsStream::Rustls(Box::new(tls))
    }
}

#[cfg(feature = "rustls")]
impl From<tokio_rustls::server::TlsStream<TcpStream>> for MaybeTlsStream {
    fn from(tls: tokio_rustls::server::TlsStream<TcpStream>) -> Self {
        MaybeTlsStream::RustlsServer(Box::new(tls))
    }
}

impl AsyncRead for MaybeTlsStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            #[cfg(feature = "rustls")]
            MaybeTlsStream::Rustls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            #[cfg(feature = "rustls")]
            MaybeTlsStream::RustlsServer(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            #[cfg(feature = "http2")]
            MaybeTlsStream::Http2(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for MaybeTlsStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            #[cfg(feature = "rustls")]
            MaybeTlsStream::Rustls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            #[cfg(feature = "rustls")]
            MaybeTlsStream::RustlsServer(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            #[cfg(feature = "http2")]
            MaybeTlsStream::Http2(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            #[cfg(feature = "rustls")]
            MaybeTlsStream::Rustls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
            #[cfg(feature = "rustls")]
            MaybeTlsStream::RustlsServer(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
            #[cfg(feature = "http2")]
            MaybeTlsStream::Http2(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            MaybeTlsStream::Plain(s) => s.is_write_vectored(),
            #[cfg(feature = "rustls")]
            MaybeTlsStream::Rustls(s) => s.is_write_vectored(),
            #[cfg(feature = "rustls")]
            MaybeTlsStream::RustlsServer(s) => s.is_write_vectored(),
            #[cfg(feature = "http2")]
            MaybeTlsStream::Http2(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(s) => Pin::new(s).poll_flush(cx),
            #[cfg(feature = "rustls")]
            MaybeTlsStream::Rustls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            #[cfg(feature = "rustls")]
            MaybeTlsStream::RustlsServer(s) => Pin::new(s.as_mut()).poll_flush(cx),
            #[cfg(feature = "http2")]
            MaybeTlsStream::Http2(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            #[cfg(feature = "rustls")]
            MaybeTlsStream::Rustls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            #[cfg(feature = "rustls")]
            MaybeTlsStream::RustlsServer(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            #[cfg(feature = "http2")]
            MaybeTlsStream::Http2(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
