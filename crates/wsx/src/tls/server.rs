//! Server TLS: [`TlsAcceptor`] runs the TLS handshake on an accepted TCP connection, before the
//! WebSocket handshake ([`accept`](crate::accept), [`accept_with`](crate::accept_with) or
//! [`read_request`](crate::read_request) + [`upgrade`](crate::upgrade)) runs over the
//! resulting [`ServerTlsStream`].

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::{ALPN_HTTP11, config_error, provider};
use crate::error::Result;

/// A server-side TLS connection, as returned by [`TlsAcceptor::accept_tls`]. `get_ref().1` is
/// the [`rustls::ServerConnection`]: the client's SNI name, the ALPN protocol, the version.
pub type ServerTlsStream<IO = TcpStream> = tokio_rustls::server::TlsStream<IO>;

/// Runs the server side of the TLS handshake; cheap to clone (the configuration is shared).
///
/// ```no_run
/// # async fn run() -> Result<(), wsx::Error> {
/// let tls = wsx::tls::TlsAcceptor::from_pem_files("cert.pem", "key.pem")?;
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:9443").await?;
/// let (tcp, _) = listener.accept().await?;
/// let stream = tls.accept_tls(tcp).await?;
/// let mut ws = wsx::accept(stream).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct TlsAcceptor {
    config: Arc<ServerConfig>,
}

impl TlsAcceptor {
    /// Load the certificate chain (PEM `CERTIFICATE` sections, the server's own certificate
    /// first) and the private key (the first PEM `PRIVATE KEY`, `RSA PRIVATE KEY` or
    /// `EC PRIVATE KEY` section) from files. ALPN offers `http/1.1`; no client certificates
    /// are asked for.
    ///
    /// # Errors
    ///
    /// A file cannot be read, holds no certificate or no key, or the key does not fit the
    /// certificate or is of an unsupported type.
    pub fn from_pem_files(cert_chain: impl AsRef<Path>, key: impl AsRef<Path>) -> Result<Self> {
        let (cert_chain, key) = (cert_chain.as_ref(), key.as_ref());
        let what = format!("certificate file {}", cert_chain.display());
        let certs = CertificateDer::pem_file_iter(cert_chain)
            .map_err(|e| config_error(&what, e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| config_error(&what, e))?;
        let key = PrivateKeyDer::from_pem_file(key)
            .map_err(|e| config_error(format!("key file {}", key.display()), e))?;
        Self::from_parts(&what, certs, key)
    }

    /// As [`from_pem_files`](Self::from_pem_files), from PEM text in memory.
    ///
    /// # Errors
    ///
    /// As [`from_pem_files`](Self::from_pem_files).
    pub fn from_pem(cert_chain_pem: &[u8], key_pem: &[u8]) -> Result<Self> {
        let certs = CertificateDer::pem_slice_iter(cert_chain_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| config_error("certificate PEM", e))?;
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| config_error("key PEM", e))?;
        Self::from_parts("certificate PEM", certs, key)
    }

    fn from_parts(
        what: &str,
        certs: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Self> {
        if certs.is_empty() {
            return Err(config_error(what, "no CERTIFICATE section found"));
        }
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| config_error("protocol versions", e))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| config_error("certificate and key", e))?;
        config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
        Ok(TlsAcceptor {
            config: Arc::new(config),
        })
    }

    /// An acceptor using this rustls configuration as it is (client certificates, several
    /// certificates by SNI name, other ALPN settings).
    pub fn from_config(config: Arc<ServerConfig>) -> Self {
        TlsAcceptor { config }
    }

    /// This acceptor, offering HTTP/2 too: ALPN `h2` first, then `http/1.1`. After the TLS
    /// handshake, the negotiated protocol
    /// ([`ServerTlsStream`]`.get_ref().1.alpn_protocol()`) says which server to hand the stream
    /// to: [`ALPN_H2`](super::ALPN_H2) to an HTTP/2 one (such as `wsx::http2::Http2Server`,
    /// feature `http2`), anything else to the HTTP/1.1 one.
    pub fn offer_http2(&self) -> TlsAcceptor {
        let mut config = (*self.config).clone();
        config.alpn_protocols = vec![super::ALPN_H2.to_vec(), ALPN_HTTP11.to_vec()];
        TlsAcceptor {
            config: Arc::new(config),
        }
    }

    /// The rustls configuration.
    pub fn config(&self) -> &Arc<ServerConfig> {
        &self.config
    }

    /// Run the TLS handshake over an accepted connection. A client that connects and then sends
    /// nothing keeps this waiting: wrap it in a timeout (`tokio::time::timeout`).
    ///
    /// # Errors
    ///
    /// [`Error::Io`](crate::Error::Io) if the handshake fails;
    /// [`rustls_error`](super::rustls_error) gives the TLS reason.
    pub async fn accept_tls<IO>(&self, io: IO) -> Result<ServerTlsStream<IO>>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let acceptor = tokio_rustls::TlsAcceptor::from(self.config.clone());
        Ok(acceptor.accept(io).await?)
    }
}

impl From<Arc<ServerConfig>> for TlsAcceptor {
    fn from(config: Arc<ServerConfig>) -> Self {
        TlsAcceptor::from_config(config)
    }
}
