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
    let dir = std::env::temp_dir().join(format!("wsx-tls-cli-{}", std::process::id()));
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

#[tokio::test]
async fn serve_over_tls_and_connect_with_a_ca() {
    let (dir, ca, cert, key) = certificates();
    let server = Server::start(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
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
