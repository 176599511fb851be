//! `wss://` end to end: a CA and server certificates made at test time with rcgen, a wsx TLS
//! echo server on 127.0.0.1 (`TlsAcceptor` + `wsx::accept`), and the wsx client with various
//! trust settings.
#![cfg(feature = "rustls")]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use wsx::tls::rustls::pki_types::CertificateDer;
use wsx::tls::rustls::pki_types::pem::PemObject;
use wsx::tls::rustls::{self, CertificateError, ClientConfig, ProtocolVersion, RootCertStore};
use wsx::tls::{ClientTlsConfig, TlsAcceptor, TlsConnector, rustls_error};
use wsx::{ClientBuilder, CloseCode, MaybeTlsStream, Message};

/// A test certificate authority.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    fn new() -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "wsx test CA");
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let pem = params.self_signed(&key).unwrap().pem();
        Ca {
            pem,
            issuer: Issuer::new(params, key),
        }
    }

    /// A server certificate for `names` (DNS names or IP addresses): (cert PEM, key PEM).
    fn leaf(&self, names: &[&str]) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "wsx test server");
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "wsx-tls-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What the server saw of one TLS connection.
#[derive(Debug)]
struct Seen {
    /// The SNI name the client sent.
    sni: Option<String>,
    /// The negotiated ALPN protocol.
    alpn: Option<Vec<u8>>,
}

/// A TLS WebSocket echo server on 127.0.0.1; reports each completed TLS handshake on `seen`.
struct TlsServer {
    addr: SocketAddr,
    seen: mpsc::UnboundedReceiver<Seen>,
}

impl TlsServer {
    async fn start(acceptor: TlsAcceptor) -> TlsServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, seen) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let tls = timeout(acceptor.accept_tls(tcp)).await?;
                    // The server side of one stream type for plain and TLS connections.
                    let stream = MaybeTlsStream::from(tls);
                    let Some(conn) = stream.tls_server_connection() else {
                        return Err(wsx::Error::Closed);
                    };
                    let _ = tx.send(Seen {
                        sni: conn.server_name().map(str::to_owned),
                        alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
                    });
                    let mut ws = wsx::accept(stream).await?;
                    while let Some(msg) = ws.recv().await {
                        let msg = msg?;
                        if msg.is_data() {
                            ws.send(msg).await?;
                        }
                    }
                    Ok::<_, wsx::Error>(())
                });
            }
        });
        TlsServer { addr, seen }
    }

    fn url(&self, host: &str) -> String {
        format!("wss://{host}:{}/echo", self.addr.port())
    }

    async fn next_seen(&mut self) -> Seen {
        timeout(self.seen.recv()).await.expect("server stopped")
    }
}

async fn timeout<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .expect("timed out")
}

/// Send a few messages (one of 1 MiB, so it spans many TLS records) and expect them back.
async fn echo_round_trip(ws: &mut wsx::WebSocket<MaybeTlsStream>) {
    let big: Vec<u8> = (0..(1 << 20)).map(|i| (i * 7 % 251) as u8).collect();
    let msgs = [
        Message::text("hello over TLS"),
        Message::binary(vec![0u8, 1, 2, 255]),
        Message::binary(big),
    ];
    for m in &msgs {
        ws.send(m.clone()).await.unwrap();
        let back = timeout(ws.recv()).await.unwrap().unwrap();
        assert_eq!(&back, m);
    }
    // Several queued messages, written together.
    for i in 0..10 {
        ws.feed(Message::text(format!("batch {i}"))).unwrap();
    }
    ws.flush().await.unwrap();
    for i in 0..10 {
        let back = timeout(ws.recv()).await.unwrap().unwrap();
        assert_eq!(back, Message::text(format!("batch {i}")));
    }
}

async fn server_for(ca: &Ca, names: &[&str]) -> TlsServer {
    let (cert, key) = ca.leaf(names);
    let acceptor = TlsAcceptor::from_pem(cert.as_bytes(), key.as_bytes()).unwrap();
    TlsServer::start(acceptor).await
}

#[tokio::test]
async fn wss_echo_with_ca_file_sni_and_alpn() {
    let ca = Ca::new();
    let dir = TempDir::new();
    let (cert, key) = ca.leaf(&["localhost", "127.0.0.1"]);
    let acceptor =
        TlsAcceptor::from_pem_files(dir.write("cert.pem", &cert), dir.write("key.pem", &key))
            .unwrap();
    let mut server = TlsServer::start(acceptor).await;

    let tls = ClientTlsConfig::new()
        .add_ca_pem_file(dir.write("ca.pem", &ca.pem))
        .build()
        .unwrap();
    let (mut ws, resp) = timeout(
        ClientBuilder::new(server.url("localhost"))
            .tls(tls)
            .connect(),
    )
    .await
    .unwrap();
    assert_eq!(resp.status, 101);

    // The connection really is TLS, with ALPN http/1.1.
    let stream = ws.get_ref();
    assert!(matches!(stream, MaybeTlsStream::Rustls(_)));
    assert!(stream.is_tls());
    assert!(stream.tls_server_connection().is_none());
    let conn = stream.tls_connection().expect("a TLS connection");
    assert_eq!(conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    let state = stream.tls_state().expect("TLS state");
    assert_eq!(state.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert_eq!(
        conn.protocol_version(),
        Some(ProtocolVersion::TLSv1_3),
        "TLS 1.3 is preferred"
    );
    assert!(
        stream.tcp().unwrap().nodelay().unwrap(),
        "TCP_NODELAY is set"
    );

    // The server saw the name from the URL as SNI, and agreed on http/1.1.
    let seen = server.next_seen().await;
    assert_eq!(seen.sni.as_deref(), Some("localhost"));
    assert_eq!(seen.alpn.as_deref(), Some(&b"http/1.1"[..]));

    echo_round_trip(&mut ws).await;
    timeout(ws.close(CloseCode::NORMAL, "done")).await.unwrap();
}

#[tokio::test]
async fn wss_to_an_ip_address_checks_the_ip_san_and_sends_no_sni() {
    let ca = Ca::new();
    let mut server = server_for(&ca, &["localhost", "127.0.0.1"]).await;
    let tls = ClientTlsConfig::new()
        .add_ca_pem(ca.pem.as_bytes())
        .build()
        .unwrap();
    let (mut ws, _) = timeout(
        ClientBuilder::new(server.url("127.0.0.1"))
            .tls(tls)
            .connect(),
    )
    .await
    .unwrap();
    assert!(ws.get_ref().is_tls());
    let seen = server.next_seen().await;
    assert_eq!(seen.sni, None, "SNI carries DNS names only");
    echo_round_trip(&mut ws).await;
    timeout(ws.close(CloseCode::NORMAL, "")).await.unwrap();
}

#[tokio::test]
async fn untrusted_certificate_is_rejected() {
    let ca = Ca::new();
    let server = server_for(&ca, &["localhost"]).await;
    // Default trust (Mozilla's roots) does not include the test CA.
    let err = timeout(wsx::connect(&server.url("localhost")))
        .await
        .expect_err("a certificate from an unknown CA must be refused");
    assert!(
        matches!(
            rustls_error(&err),
            Some(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer
            ))
        ),
        "unexpected error: {err:?}"
    );
    // Another CA than the one that signed it: refused too.
    let other = ClientTlsConfig::new()
        .add_ca_pem(Ca::new().pem)
        .build()
        .unwrap();
    let err = timeout(
        ClientBuilder::new(server.url("localhost"))
            .tls(other)
            .connect(),
    )
    .await
    .expect_err("a certificate from another CA must be refused");
    assert!(
        matches!(
            rustls_error(&err),
            Some(rustls::Error::InvalidCertificate(_))
        ),
        "unexpected error: {err:?}"
    );
}

#[tokio::test]
async fn certificate_for_another_name_is_rejected() {
    let ca = Ca::new();
    // Valid for "localhost" only; connecting by IP address must fail the name check.
    let server = server_for(&ca, &["localhost"]).await;
    let tls = ClientTlsConfig::new()
        .add_ca_pem(ca.pem.as_bytes())
        .build()
        .unwrap();
    let err = timeout(
        ClientBuilder::new(server.url("127.0.0.1"))
            .tls(tls)
            .connect(),
    )
    .await
    .expect_err("a certificate for another name must be refused");
    assert!(
        matches!(
            rustls_error(&err),
            Some(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
            ))
        ),
        "unexpected error: {err:?}"
    );
}

#[tokio::test]
async fn insecure_accepts_an_untrusted_certificate() {
    let ca = Ca::new();
    let mut server = server_for(&ca, &["localhost"]).await;
    let tls = ClientTlsConfig::new().insecure(true).build().unwrap();
    // Unknown CA and a name (127.0.0.1) the certificate is not valid for: accepted anyway.
    let (mut ws, _) = timeout(
        ClientBuilder::new(server.url("127.0.0.1"))
            .tls(tls)
            .connect(),
    )
    .await
    .unwrap();
    assert!(ws.get_ref().is_tls());
    assert_eq!(
        server.next_seen().await.alpn.as_deref(),
        Some(&b"http/1.1"[..])
    );
    echo_round_trip(&mut ws).await;
    timeout(ws.close(CloseCode::NORMAL, "")).await.unwrap();
}

#[tokio::test]
async fn custom_rustls_config_is_used_as_is() {
    let ca = Ca::new();
    let mut server = server_for(&ca, &["localhost"]).await;
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.pem.as_bytes()).unwrap())
        .unwrap();
    // TLS 1.2 only and no ALPN: the connector must not override either.
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS12])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    let (mut ws, _) = timeout(
        ClientBuilder::new(server.url("localhost"))
            .tls(TlsConnector::from_config(Arc::new(config)))
            .connect(),
    )
    .await
    .unwrap();
    let conn = ws.get_ref().tls_connection().expect("a TLS connection");
    assert_eq!(conn.protocol_version(), Some(ProtocolVersion::TLSv1_2));
    assert_eq!(conn.alpn_protocol(), None);
    let seen = server.next_seen().await;
    assert_eq!(seen.alpn, None);
    assert_eq!(seen.sni.as_deref(), Some("localhost"));
    echo_round_trip(&mut ws).await;
    timeout(ws.close(CloseCode::NORMAL, "")).await.unwrap();
}

#[tokio::test]
async fn plain_ws_is_not_tls() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await?;
        let mut ws = wsx::accept(tcp).await?;
        while let Some(msg) = ws.recv().await {
            let msg = msg?;
            if msg.is_data() {
                ws.send(msg).await?;
            }
        }
        Ok::<_, wsx::Error>(())
    });
    // A TLS connector is ignored for ws:// URLs.
    let tls = ClientTlsConfig::new().build().unwrap();
    let (mut ws, _) = timeout(
        ClientBuilder::new(format!("ws://{addr}/"))
            .tls(tls)
            .connect(),
    )
    .await
    .unwrap();
    assert!(matches!(ws.get_ref(), MaybeTlsStream::Plain(_)));
    assert!(!ws.get_ref().is_tls());
    assert!(ws.get_ref().tls_connection().is_none());
    assert!(ws.get_ref().tls_state().is_none());
    echo_round_trip(&mut ws).await;
    timeout(ws.close(CloseCode::NORMAL, "")).await.unwrap();
}

/// A client configuration trusting neither Mozilla's roots nor the system's store.
fn no_builtin_roots() -> ClientTlsConfig {
    let config = ClientTlsConfig::new().webpki_roots(false);
    #[cfg(feature = "native-roots")]
    let config = config.native_roots(false);
    config
}

/// With `native-roots`, the system's store is trusted. rustls-native-certs reads the standard
/// `SSL_CERT_FILE` variable, so this test runs itself again as a child process with
/// `SSL_CERT_FILE` pointing at the test CA (setting it in this process would race other tests).
#[cfg(feature = "native-roots")]
#[test]
fn native_roots_trust_the_system_store() {
    let ca = Ca::new();
    let (cert, key) = ca.leaf(&["localhost"]);
    let dir = TempDir::new();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "native_roots_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SSL_CERT_FILE", dir.write("ca.pem", &ca.pem))
        .env("WSX_TLS_CHILD_CERT", dir.write("cert.pem", &cert))
        .env("WSX_TLS_CHILD_KEY", dir.write("key.pem", &key))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("1 passed"),
        "the child ran no test: {stdout}"
    );
}

/// The child of [`native_roots_trust_the_system_store`]; does nothing when run on its own.
#[cfg(feature = "native-roots")]
#[tokio::test]
async fn native_roots_child() {
    let (Some(cert), Some(key)) = (
        std::env::var_os("WSX_TLS_CHILD_CERT"),
        std::env::var_os("WSX_TLS_CHILD_KEY"),
    ) else {
        return;
    };
    let server = TlsServer::start(TlsAcceptor::from_pem_files(cert, key).unwrap()).await;
    // The system's store only: the test CA comes from SSL_CERT_FILE.
    let tls = ClientTlsConfig::new()
        .webpki_roots(false)
        .native_roots(true)
        .build()
        .unwrap();
    let (mut ws, _) = timeout(
        ClientBuilder::new(server.url("localhost"))
            .tls(tls)
            .connect(),
    )
    .await
    .unwrap();
    echo_round_trip(&mut ws).await;
    // Without it, the default trust (Mozilla's roots and the system's store) also works.
    let (ws2, _) = timeout(wsx::connect(&server.url("localhost")))
        .await
        .unwrap();
    assert!(ws2.get_ref().is_tls());
}

#[test]
fn client_config_errors() {
    let dir = TempDir::new();
    let missing = dir.0.join("missing.pem");
    assert!(
        ClientTlsConfig::new()
            .add_ca_pem_file(&missing)
            .build()
            .is_err()
    );
    let not_pem = dir.write("not.pem", "hello");
    let err = ClientTlsConfig::new()
        .add_ca_pem_file(&not_pem)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("not.pem"), "{err}");
    assert!(
        ClientTlsConfig::new()
            .add_ca_pem("-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n")
            .build()
            .is_err()
    );
    // Nothing left to trust.
    assert!(no_builtin_roots().build().is_err());
    // Only the given CA.
    let ca = Ca::new();
    let only = no_builtin_roots().add_ca_pem(ca.pem).build().unwrap();
    assert_eq!(only.config().alpn_protocols, vec![b"http/1.1".to_vec()]);
}

#[test]
fn acceptor_config_errors() {
    let ca = Ca::new();
    let (cert, key) = ca.leaf(&["localhost"]);
    let (_, other_key) = ca.leaf(&["localhost"]);
    let ok = TlsAcceptor::from_pem(cert.as_bytes(), key.as_bytes()).unwrap();
    assert_eq!(ok.config().alpn_protocols, vec![b"http/1.1".to_vec()]);
    // A key that does not belong to the certificate.
    assert!(TlsAcceptor::from_pem(cert.as_bytes(), other_key.as_bytes()).is_err());
    // No certificate, no key.
    assert!(TlsAcceptor::from_pem(b"", key.as_bytes()).is_err());
    assert!(TlsAcceptor::from_pem(cert.as_bytes(), cert.as_bytes()).is_err());
    // Missing files, named in the error.
    let dir = TempDir::new();
    let cert_path = dir.write("cert.pem", &cert);
    let err = TlsAcceptor::from_pem_files(&cert_path, dir.0.join("nokey.pem")).unwrap_err();
    assert!(err.to_string().contains("nokey.pem"), "{err}");
    assert!(TlsAcceptor::from_pem_files(Path::new("/nonexistent/cert.pem"), &cert_path).is_err());
}

#[tokio::test]
async fn plain_client_against_tls_server_fails_cleanly() {
    let ca = Ca::new();
    let server = server_for(&ca, &["localhost"]).await;
    // Speaking plain HTTP to a TLS port: the handshake fails with an error, no hang.
    let res = timeout(wsx::connect(&format!(
        "ws://127.0.0.1:{}/",
        server.addr.port()
    )))
    .await;
    assert!(res.is_err());
}

/// A server that presents a certificate without holding its key: it signs the handshake with
/// another key.
#[derive(Debug)]
struct WrongKey(Arc<rustls::sign::CertifiedKey>);

impl rustls::server::ResolvesServerCert for WrongKey {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }
}

#[tokio::test]
async fn insecure_still_checks_handshake_signatures() {
    let ca = Ca::new();
    let (cert, _) = ca.leaf(&["localhost"]);
    let (_, other_key) = ca.leaf(&["localhost"]);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let key = provider
        .key_provider
        .load_private_key(
            rustls::pki_types::PrivateKeyDer::from_pem_slice(other_key.as_bytes()).unwrap(),
        )
        .unwrap();
    let certified = rustls::sign::CertifiedKey::new(
        vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
        key,
    );
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(WrongKey(Arc::new(certified))));
    let server = TlsServer::start(TlsAcceptor::from_config(Arc::new(config))).await;

    let tls = ClientTlsConfig::new().insecure(true).build().unwrap();
    let err = timeout(
        ClientBuilder::new(server.url("localhost"))
            .tls(tls)
            .connect(),
    )
    .await
    .expect_err("a handshake signed with another key must be refused, even when insecure");
    assert!(
        matches!(
            rustls_error(&err),
            Some(rustls::Error::InvalidCertificate(
                CertificateError::BadSignature
            ))
        ),
        "unexpected error: {err:?}"
    );
}
