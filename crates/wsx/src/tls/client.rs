//! Client TLS: which servers to trust ([`ClientTlsConfig`]) and the handshake itself
//! ([`TlsConnector`]), run by [`ClientBuilder::connect`](crate::ClientBuilder::connect) between
//! the TCP connect and the WebSocket Upgrade request of a `wss://` URL.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite};

use super::{ALPN_HTTP11, config_error, provider};
use crate::error::{Error, Result};

/// Where an extra trusted CA certificate comes from.
#[derive(Debug, Clone)]
enum CaSource {
    /// A PEM file holding one or more `CERTIFICATE` sections.
    File(PathBuf),
    /// PEM text holding one or more `CERTIFICATE` sections.
    Pem(Vec<u8>),
}

/// Which servers a TLS client trusts; [`build`](Self::build) turns it into a [`TlsConnector`].
///
/// By default: Mozilla's root certificates (the `webpki-roots` crate), plus the operating
/// system's store when the `native-roots` feature is on. Add private CAs with
/// [`add_ca_pem_file`](Self::add_ca_pem_file) or [`add_ca_pem`](Self::add_ca_pem).
///
/// ```no_run
/// # async fn run() -> Result<(), wsx::Error> {
/// use wsx::tls::ClientTlsConfig;
/// let tls = ClientTlsConfig::new().add_ca_pem_file("ca.pem").build()?;
/// let (ws, _) = wsx::ClientBuilder::new("wss://localhost:9443/ws").tls(tls).connect().await?;
/// assert!(ws.get_ref().is_tls());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ClientTlsConfig {
    extra_cas: Vec<CaSource>,
    webpki_roots: bool,
    #[cfg(feature = "native-roots")]
    native_roots: bool,
    insecure: bool,
}

impl Default for ClientTlsConfig {
    fn default() -> Self {
        ClientTlsConfig {
            extra_cas: Vec::new(),
            webpki_roots: true,
            #[cfg(feature = "native-roots")]
            native_roots: true,
            insecure: false,
        }
    }
}

impl ClientTlsConfig {
    /// The default trust: Mozilla's roots, and the system's store with `native-roots`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also trust the CA certificates in this PEM file (every `CERTIFICATE` section in it).
    /// The file is read by [`build`](Self::build).
    pub fn add_ca_pem_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.extra_cas.push(CaSource::File(path.into()));
        self
    }

    /// Also trust the CA certificates in this PEM text (every `CERTIFICATE` section in it).
    pub fn add_ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.extra_cas.push(CaSource::Pem(pem.into()));
        self
    }

    /// Trust Mozilla's root certificates (on by default). Turn it off to trust only the CAs
    /// added here (and the system's store, if enabled).
    pub fn webpki_roots(mut self, on: bool) -> Self {
        self.webpki_roots = on;
        self
    }

    /// Trust the operating system's certificate store (on by default with the `native-roots`
    /// feature). Certificates in the store that cannot be parsed are skipped with a warning.
    #[cfg(feature = "native-roots")]
    pub fn native_roots(mut self, on: bool) -> Self {
        self.native_roots = on;
        self
    }

    /// **For testing only: accept any server certificate**, expired, self-signed, issued for
    /// another name or by an unknown CA. The connection is still encrypted and the server must
    /// still prove it holds the key of the certificate it sent (handshake signatures are
    /// checked), but anyone in the middle can present their own certificate: this gives no
    /// protection against impersonation. Never use it against a server on a network you do not
    /// control. The trusted roots are then ignored.
    pub fn insecure(mut self, on: bool) -> Self {
        self.insecure = on;
        self
    }

    /// Load the certificates and build the rustls configuration (ALPN `http/1.1`).
    ///
    /// Building reads and parses every root certificate: build once and clone the
    /// [`TlsConnector`] for each connection.
    ///
    /// # Errors
    ///
    /// An extra CA file cannot be read, holds no `CERTIFICATE` section, or a certificate in it
    /// is malformed; or no root is left to trust.
    pub fn build(&self) -> Result<TlsConnector> {
        let provider = provider();
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| config_error("protocol versions", e))?;
        let mut config = if self.insecure {
            tracing::warn!("TLS server certificate verification is disabled (insecure mode)");
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert { provider }))
                .with_no_client_auth()
        } else {
            builder
                .with_root_certificates(self.roots()?)
                .with_no_client_auth()
        };
        config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
        Ok(TlsConnector {
            config: Arc::new(config),
        })
    }

    /// The trusted roots this configuration asks for.
    fn roots(&self) -> Result<RootCertStore> {
        let mut roots = RootCertStore::empty();
        if self.webpki_roots {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        #[cfg(feature = "native-roots")]
        if self.native_roots {
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                tracing::warn!("loading the system's root certificates: {e}");
            }
            let (added, ignored) = roots.add_parsable_certificates(found.certs);
            if ignored > 0 {
                tracing::warn!("skipped {ignored} unparsable system root certificates");
            }
            tracing::debug!("trusting {added} root certificates from the system's store");
        }
        for ca in &self.extra_cas {
            let (what, certs): (String, Vec<_>) = match ca {
                CaSource::File(path) => {
                    let what = format!("CA file {}", path.display());
                    let certs = CertificateDer::pem_file_iter(path)
                        .map_err(|e| config_error(&what, e))?
                        .collect::<Result<_, _>>()
                        .map_err(|e| config_error(&what, e))?;
                    (what, certs)
                }
                CaSource::Pem(pem) => {
                    let certs = CertificateDer::pem_slice_iter(pem)
                        .collect::<Result<_, _>>()
                        .map_err(|e| config_error("CA PEM", e))?;
                    ("CA PEM".to_owned(), certs)
                }
            };
            if certs.is_empty() {
                return Err(config_error(what, "no CERTIFICATE section found"));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| config_error(&what, e))?;
            }
        }
        if roots.is_empty() {
            return Err(config_error(
                "trusted roots",
                "none: enable the built-in roots or add a CA",
            ));
        }
        Ok(roots)
    }
}

/// Runs the client side of the TLS handshake; cheap to clone (the configuration is shared).
///
/// Make one with [`ClientTlsConfig::build`], or from your own [`rustls::ClientConfig`] with
/// [`TlsConnector::from_config`] (its trust, ALPN and client certificate settings are then used
/// as they are).
#[derive(Debug, Clone)]
pub struct TlsConnector {
    config: Arc<ClientConfig>,
}

impl TlsConnector {
    /// A connector with the default trust ([`ClientTlsConfig::new`]), built once per process
    /// and shared: what `wss://` URLs use when no connector is given.
    ///
    /// # Errors
    ///
    /// As [`ClientTlsConfig::build`] (the built-in roots make that all but impossible).
    pub fn with_default_roots() -> Result<TlsConnector> {
        static DEFAULT: OnceLock<TlsConnector> = OnceLock::new();
        if let Some(c) = DEFAULT.get() {
            return Ok(c.clone());
        }
        let built = ClientTlsConfig::new().build()?;
        Ok(DEFAULT.get_or_init(|| built).clone())
    }

    /// A connector using this rustls configuration as it is.
    pub fn from_config(config: Arc<ClientConfig>) -> TlsConnector {
        TlsConnector { config }
    }

    /// The rustls configuration.
    pub fn config(&self) -> &Arc<ClientConfig> {
        &self.config
    }

    /// Run the TLS handshake over `io` for the server `host` (a DNS name, or an IP address
    /// without brackets), which is sent as SNI (DNS names only) and checked against the
    /// server's certificate.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidUrl`] if `host` is neither a DNS name nor an IP address;
    /// [`Error::Io`] if the handshake fails — [`rustls_error`](super::rustls_error) gives the
    /// TLS reason, such as an untrusted certificate.
    pub async fn connect<IO>(
        &self,
        host: &str,
        io: IO,
    ) -> Result<tokio_rustls::client::TlsStream<IO>>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let name = ServerName::try_from(host.to_owned())
            .map_err(|_| Error::InvalidUrl(format!("{host:?} is not a valid TLS server name")))?;
        let connector = tokio_rustls::TlsConnector::from(self.config.clone());
        Ok(connector.connect(name, io).await?)
    }
}

impl From<Arc<ClientConfig>> for TlsConnector {
    fn from(config: Arc<ClientConfig>) -> Self {
        TlsConnector::from_config(config)
    }
}

/// The certificate "verifier" of [`ClientTlsConfig::insecure`]: accepts every certificate, but
/// still checks the handshake signatures, so the server must hold the key of the certificate it
/// presents.
#[derive(Debug)]
struct AcceptAnyServerCert {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
