//! TLS: `wss://` for the client and a TLS acceptor for servers, with rustls.
//!
//! Where it sits in the flow: TLS is a layer between the TCP socket and the WebSocket handshake.
//!
//! - Client: [`ClientBuilder::connect`](crate::ClientBuilder::connect) opens the TCP connection
//!   and, for a `wss://` URL, runs the TLS handshake (SNI from the URL's host, ALPN `http/1.1`)
//!   with a [`TlsConnector`] before it sends the Upgrade request. Either way it hands back a
//!   [`WebSocket<MaybeTlsStream>`](crate::WebSocket), so plain and secure connections have the
//!   same type. Configure trust with [`ClientTlsConfig`] (extra CA certificates, the operating
//!   system's store, or — for tests only — no verification at all) and pass the result to
//!   [`ClientBuilder::tls`](crate::ClientBuilder::tls).
//! - Server: [`TlsAcceptor`] loads a PEM certificate chain and private key; call
//!   [`TlsAcceptor::accept_tls`] on each accepted TCP connection, then hand the TLS stream to
//!   [`accept`](crate::accept), [`accept_with`](crate::accept_with) or
//!   [`read_request`](crate::read_request) + [`upgrade`](crate::upgrade), which work over any
//!   transport. A server that listens both with and without TLS can wrap either stream in
//!   [`MaybeTlsStream`](crate::MaybeTlsStream) (`MaybeTlsStream::from`) so its handlers see one type.
//!
//! The crypto provider is *ring*, unless the application installed another process-wide default
//! with [`rustls::crypto::CryptoProvider::install_default`], which is then used instead.
//!
//! Cargo features: `rustls` (on by default) brings everything here; without it only
//! [`MaybeTlsStream`](crate::MaybeTlsStream) remains, with its `Plain` variant, and `wss://` URLs are refused.
//! `native-roots` additionally trusts the operating system's certificate store (through
//! `rustls-native-certs`; it honours `SSL_CERT_FILE` and `SSL_CERT_DIR`).
//!
//! TLS errors (an untrusted certificate, a failed handshake, an unreadable PEM file) come back
//! as [`Error::Io`](crate::Error::Io); [`rustls_error`] finds the [`rustls::Error`] inside, if
//! there is one.
// Without the `rustls` feature, the docs still mention the TLS items they would link to.
#![cfg_attr(not(feature = "rustls"), allow(rustdoc::broken_intra_doc_links))]

pub(crate) mod stream;

#[cfg(feature = "rustls")]
mod client;
#[cfg(feature = "rustls")]
mod server;

#[cfg(feature = "rustls")]
pub use client::{ClientTlsConfig, TlsConnector};
#[cfg(feature = "rustls")]
pub use server::{ServerTlsStream, TlsAcceptor};

/// The rustls crate this module is built on, for [`rustls::ClientConfig`],
/// [`rustls::ServerConfig`] and friends.
#[cfg(feature = "rustls")]
pub use rustls;
/// The tokio-rustls crate this module is built on, for its stream types.
#[cfg(feature = "rustls")]
pub use tokio_rustls;

/// ALPN protocol identifier that both [`ClientTlsConfig`] and [`TlsAcceptor`] offer: a
/// WebSocket handshake is an HTTP/1.1 request.
#[cfg(feature = "rustls")]
pub const ALPN_HTTP11: &[u8] = b"http/1.1";

/// ALPN protocol identifier of HTTP/2 over TLS, offered by [`TlsAcceptor::offer_http2`] and by
/// the HTTP/2 client (feature `http2`).
#[cfg(feature = "rustls")]
pub const ALPN_H2: &[u8] = b"h2";

/// The [`rustls::Error`] behind `err`, if it is a TLS failure: for example
/// `rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)` when the server's
/// certificate is not signed by a trusted CA.
#[cfg(feature = "rustls")]
pub fn rustls_error(err: &crate::Error) -> Option<&rustls::Error> {
    match err {
        crate::Error::Io(io) => io.get_ref()?.downcast_ref::<rustls::Error>(),
        _ => None,
    }
}

/// The crypto provider for new configurations: the process default if the application
/// installed one, otherwise *ring*.
#[cfg(feature = "rustls")]
fn provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    match rustls::crypto::CryptoProvider::get_default() {
        Some(p) => p.clone(),
        None => std::sync::Arc::new(rustls::crypto::ring::default_provider()),
    }
}

/// A TLS configuration problem (bad PEM, unusable key, no protocol version in common), as the
/// crate's error type.
#[cfg(feature = "rustls")]
fn config_error(what: impl std::fmt::Display, err: impl std::fmt::Display) -> crate::Error {
    crate::Error::Io(std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        format!("TLS configuration: {what}: {err}"),
    ))
}
