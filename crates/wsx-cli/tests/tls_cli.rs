//! `wsx serve --tls-cert/--tls-key` and `wsx connect --ca/--insecure`: the real binary, a CA
//! made at test time.

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::Server;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use wsx::Message;

/// A CA and a server certificate for localhost and 127.0.0.1, written to a fresh directory:
/// (dir, ca.pem, cert.pem, key.pem).
fn certificates() -> (PathBuf, PathBuf, PathBuf, PathBuf) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_pem = ca_params.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    // One directory per call: each test removes its own.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("wsx-tls-cli-{}-{call}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let ca = write("ca.pem", &ca_pem);
    let cert = write("cert.pem", &leaf.pem());
    let key = write("key.pem", &key.serialize_pem());
    (dir, ca, cert, key)
}

/// Run `wsx connect -n` with `args`, feeding `input`; returns (exit code, stdout, stderr).
fn connect(args: &[&str], input: &str) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wsx"))
        .arg("connect")
        .args(["-n", "--wait", "1"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `wsx serve` over TLS with `cert` and `key`, and `extra` arguments.
fn tls_server(cert: &std::path::Path, key: &std::path::Path, extra: &[&str]) -> Server {
    let mut args = vec![
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    Server::start(&args)
}

#[tokio::test]
async fn serve_over_tls_and_connect_with_a_ca() {
    let (dir, ca, cert, key) = certificates();
    let server = tls_server(&cert, &key, &[]);
    let url = format!("wss://localhost:{}/ws/echo", server.addr.port());

    // The library client, trusting the CA.
    let tls = wsx::tls::ClientTlsConfig::new()
        .add_ca_pem_file(&ca)
        .build()
        .unwrap();
    let (mut ws, _) = wsx::ClientBuilder::new(&url)
        .tls(tls)
        .connect()
        .await
        .unwrap();
    assert!(ws.get_ref().is_tls());
    ws.send(Message::text("over tls")).await.unwrap();
    assert_eq!(ws.recv().await.unwrap().unwrap(), Message::text("over tls"));
    drop(ws);

    let url2 = url.clone();
    let ca2 = ca.clone();
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        connect(&["--ca", ca2.to_str().unwrap(), &url2], "hello\n")
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert!(out.contains("< hello"), "{out}");

    // Without the CA the certificate is refused; --insecure skips the check.
    let url3 = url.clone();
    let (code, _, err) = tokio::task::spawn_blocking(move || connect(&[&url3], "x\n"))
        .await
        .unwrap();
    assert_eq!(code, 1, "{err}");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    let (code, out, err) =
        tokio::task::spawn_blocking(move || connect(&["--insecure", &url], "again\n"))
            .await
            .unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("< again"), "{out}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn one_deadline_covers_the_tls_handshake_and_the_request_head() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::time::{Duration, sleep};

    let (dir, ca, cert, key) = certificates();
    let server = tls_server(&cert, &key, &["--handshake-timeout", "2"]);
    let connector = wsx::tls::ClientTlsConfig::new()
        .add_ca_pem_file(&ca)
        .build()
        .unwrap();
    // A slow client: 1.5 s before its ClientHello, then its head over 1.5 s. Each part takes
    // less than the 2 s timeout; together they take more.
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    sleep(Duration::from_millis(1500)).await;
    // Refused either way: with a 408, or (on a loaded machine, if the TLS handshake itself
    // ran past the deadline) by closing the connection during the TLS handshake.
    if let Ok(mut tls) = connector.connect("localhost", tcp).await {
        let head = b"GET /ws/echo HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
                     Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                     Sec-WebSocket-Version: 13\r\n\r\n";
        let pieces = 15;
        for piece in head.chunks(head.len().div_ceil(pieces)) {
            if tls.write_all(piece).await.is_err() || tls.flush().await.is_err() {
                break;
            }
            sleep(Duration::from_millis(100)).await;
        }
        let mut resp = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut resp))
            .await
            .expect("the server ends the connection");
        assert!(
            resp.starts_with(b"HTTP/1.1 408"),
            "{}",
            String::from_utf8_lossy(&resp)
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn https_pages_end_with_close_notify() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let (dir, ca, cert, key) = certificates();
    let server = tls_server(&cert, &key, &[]);
    let connector = wsx::tls::ClientTlsConfig::new()
        .add_ca_pem_file(&ca)
        .build()
        .unwrap();
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let mut tls = connector.connect("localhost", tcp).await.unwrap();
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut resp = Vec::new();
    // A TLS close without close_notify would be an UnexpectedEof error here (a truncation).
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tls.read_to_end(&mut resp),
    )
    .await
    .expect("the server ends the connection")
    .expect("a clean TLS close");
    let resp = String::from_utf8_lossy(&resp);
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.ends_with("\r\n\r\nok"), "{resp}");
    let _ = std::fs::remove_dir_all(dir);
}
