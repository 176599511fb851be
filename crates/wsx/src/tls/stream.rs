//! [`MaybeTlsStream`]: the transport under a client [`WebSocket`](crate::WebSocket), plain TCP
//! for `ws://` or TLS over TCP for `wss://`, so both have one type.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A TCP connection, with or without TLS: what
/// [`ClientBuilder::connect`](crate::ClientBuilder::connect) connects over.
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
}

impl MaybeTlsStream {
    /// `true` when the connection runs over TLS.
    pub fn is_tls(&self) -> bool {
        match self {
            MaybeTlsStream::Plain(_) => false,
            #[cfg(feature = "rustls")]
            MaybeTlsStream::Rustls(_) => true,
        }
    }

    /// The TCP socket underneath (for addresses and socket options; reading or writing it
    /// directly would corrupt a TLS stream).
    pub fn tcp(&self) -> &TcpStream {
        match self {
            MaybeTlsStream::Plain(tcp) => tcp,
            #[cfg(feature = "rustls")]
            MaybeTlsStream::Rustls(tls) => tls.get_ref().0,
        }
    }

    /// The rustls connection state (negotiated protocol version, cipher suite, ALPN protocol,
    /// the server's certificates), or `None` for plain TCP.
    #[cfg(feature = "rustls")]
    pub fn tls_connection(&self) -> Option<&rustls::ClientConnection> {
        match self {
            MaybeTlsStream::Plain(_) => None,
            MaybeTlsStream::Rustls(tls) => Some(tls.get_ref().1),
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
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            MaybeTlsStream::Plain(s) => s.is_write_vectored(),
            #[cfg(feature = "rustls")]
            MaybeTlsStream::Rustls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(s) => Pin::new(s).poll_flush(cx),
            #[cfg(feature = "rustls")]
            MaybeTlsStream::Rustls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            #[cfg(feature = "rustls")]
            MaybeTlsStream::Rustls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
