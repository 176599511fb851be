//! Proxies end to end: a minimal HTTP `CONNECT` proxy and a minimal SOCKS5 proxy, written here,
//! on 127.0.0.1, in front of a wsx echo server; the wsx client connects through them. Plus the
//! proxy URL parser, the environment rules (through `from_env_with`, no process environment)
//! and `no_proxy` matching.

mod common;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::echo_server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use wsx::{ClientBuilder, CloseCode, Error, Message};
use wsx::{NoProxy, ProxyConfig, ProxyScheme};
use wsx_proto::handshake::WsUrl;

async fn timeout<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .expect("timed out")
}

/// A port with nothing listening on it.
async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

/// Connects through `builder`, sends two messages, expects them back, closes.
async fn echo_through(builder: ClientBuilder) {
    let (mut ws, _resp) = timeout(builder.connect()).await.unwrap();
    for m in [
        Message::text("through the proxy"),
        Message::binary(vec![1u8, 2, 3]),
    ] {
        ws.send(m.clone()).await.unwrap();
        let back = timeout(ws.recv()).await.unwrap().unwrap();
        assert_eq!(back, m);
    }
    ws.close(CloseCode::NORMAL, "bye").await.unwrap();
}

/// Copies between the client and the server, once the proxy has answered.
async fn splice(mut client: TcpStream, mut upstream: TcpStream) -> Option<()> {
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
    Some(())
}

// ---------------------------------------------------------------------------------------------
// HTTP CONNECT proxy
// ---------------------------------------------------------------------------------------------

/// What the HTTP proxy saw of one CONNECT request.
#[derive(Debug)]
struct ConnectSeen {
    target: String,
    host: Option<String>,
    auth: Option<String>,
}

/// A minimal HTTP CONNECT proxy on 127.0.0.1. With `credentials`, it answers 407 unless the
/// request carries the matching `Proxy-Authorization: Basic`. With `redirect`, it opens every
/// tunnel to that address instead of the requested one (so a test can ask for `[::1]` without
/// an IPv6 loopback).
struct HttpProxy {
    addr: SocketAddr,
    seen: mpsc::UnboundedReceiver<ConnectSeen>,
}

impl HttpProxy {
    async fn start(credentials: Option<(&str, &str)>, redirect: Option<SocketAddr>) -> HttpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let expected = credentials.map(|(u, p)| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        });
        let (tx, seen) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let expected = expected.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    Self::serve(tcp, expected, redirect, tx).await;
                });
            }
        });
        HttpProxy { addr, seen }
    }

    async fn serve(
        mut tcp: TcpStream,
        expected: Option<String>,
        redirect: Option<SocketAddr>,
        tx: mpsc::UnboundedSender<ConnectSeen>,
    ) -> Option<()> {
        let mut buf = Vec::new();
        let (seen, used) = loop {
            let mut chunk = [0u8; 1024];
            let n = tcp.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut req = httparse::Request::new(&mut headers);
            if let httparse::Status::Complete(used) = req.parse(&buf).ok()? {
                assert_eq!(req.method, Some("CONNECT"));
                let header = |name: &str| {
                    req.headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case(name))
                        .map(|h| String::from_utf8_lossy(h.value).into_owned())
                };
                let seen = ConnectSeen {
                    target: req.path?.to_owned(),
                    host: header("host"),
                    auth: header("proxy-authorization"),
                };
                break (seen, used);
            }
        };
        assert_eq!(
            used,
            buf.len(),
            "the client sent data before the tunnel was up"
        );
        let authorized = expected.is_none() || seen.auth == expected;
        let target = seen.target.clone();
        let _ = tx.send(seen);
        if !authorized {
            tcp.write_all(
                b"HTTP/1.1 407 Proxy Authentication Required\r\n\
                  Proxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\n\r\n",
            )
            .await
            .ok()?;
            return None;
        }
        let upstream = redirect.map_or(target, |a| a.to_string());
        let Ok(up) = TcpStream::connect(&upstream).await else {
            tcp.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                .await
                .ok()?;
            return None;
        };
        tcp.write_all(b"HTTP/1.1 200 Connection established\r\nVia: test\r\n\r\n")
            .await
            .ok()?;
        splice(tcp, up).await
    }

    async fn next_seen(&mut self) -> ConnectSeen {
        timeout(self.seen.recv()).await.expect("proxy stopped")
    }
}

#[tokio::test]
async fn http_connect_proxy_echo() {
    let echo = echo_server().await;
    let mut proxy = HttpProxy::start(None, None).await;
    let config = ProxyConfig::parse(&format!("http://{}", proxy.addr)).unwrap();
    echo_through(ClientBuilder::new(format!("ws://{echo}/echo")).proxy(config)).await;
    let seen = proxy.next_seen().await;
    assert_eq!(seen.target, echo.to_string());
    assert_eq!(seen.host.as_deref(), Some(echo.to_string().as_str()));
    assert_eq!(seen.auth, None);
}

#[tokio::test]
async fn http_connect_proxy_with_basic_auth() {
    let echo = echo_server().await;
    let mut proxy = HttpProxy::start(Some(("alice", "p@ss:word")), None).await;
    // The password is percent-encoded in the URL and decoded before it is sent.
    let url = format!("http://alice:p%40ss%3Aword@{}", proxy.addr);
    let config: ProxyConfig = url.parse().unwrap();
    echo_through(ClientBuilder::new(format!("ws://{echo}/")).proxy(config)).await;
    let seen = proxy.next_seen().await;
    assert_eq!(seen.auth.as_deref(), Some("Basic YWxpY2U6cEBzczp3b3Jk"));
}

#[tokio::test]
async fn http_proxy_wrong_credentials_is_a_407_error() {
    let echo = echo_server().await;
    let proxy = HttpProxy::start(Some(("alice", "right")), None).await;
    let config = ProxyConfig::http("127.0.0.1", proxy.addr.port()).credentials("alice", "wrong");
    let err = timeout(
        ClientBuilder::new(format!("ws://{echo}/"))
            .proxy(config)
            .connect(),
    )
    .await
    .unwrap_err();
    let Error::Proxy(msg) = &err else {
        panic!("expected Error::Proxy, got {err:?}")
    };
    assert!(msg.contains("407 Proxy Authentication Required"), "{msg}");
    assert!(msg.contains("rejected the credentials"), "{msg}");
    assert!(msg.contains(&echo.to_string()), "{msg}");
    assert!(!err.to_string().contains("wrong"), "password leaked: {err}");
}

#[tokio::test]
async fn http_proxy_missing_credentials_is_a_407_error_with_a_hint() {
    let echo = echo_server().await;
    let proxy = HttpProxy::start(Some(("alice", "right")), None).await;
    let config = ProxyConfig::http("127.0.0.1", proxy.addr.port());
    let err = timeout(
        ClientBuilder::new(format!("ws://{echo}/"))
            .proxy(config)
            .connect(),
    )
    .await
    .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Proxy(_)), "{err:?}");
    assert!(
        msg.contains("407") && msg.contains("wants credentials"),
        "{msg}"
    );
}

#[tokio::test]
async fn http_proxy_non_2xx_status_is_reported() {
    let proxy = HttpProxy::start(None, None).await;
    // Nothing listens on the target: the proxy answers 502.
    let port = closed_port().await;
    let err = timeout(
        ClientBuilder::new(format!("ws://127.0.0.1:{port}/"))
            .proxy(ProxyConfig::http("127.0.0.1", proxy.addr.port()))
            .connect(),
    )
    .await
    .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Proxy(_)), "{err:?}");
    assert!(msg.contains("502 Bad Gateway"), "{msg}");
}

#[tokio::test]
async fn http_proxy_ipv6_target_is_bracketed() {
    let echo = echo_server().await;
    let mut proxy = HttpProxy::start(None, Some(echo)).await;
    let config = ProxyConfig::http("127.0.0.1", proxy.addr.port());
    echo_through(ClientBuilder::new("ws://[::1]:9/v6").proxy(config)).await;
    let seen = proxy.next_seen().await;
    assert_eq!(seen.target, "[::1]:9");
    assert_eq!(seen.host.as_deref(), Some("[::1]:9"));
}

#[tokio::test]
async fn proxy_connect_gives_a_tunnel_for_connect_on() {
    let echo = echo_server().await;
    let mut proxy = HttpProxy::start(None, None).await;
    let config = ProxyConfig::http("127.0.0.1", proxy.addr.port());
    let tunnel = timeout(config.connect("127.0.0.1", echo.port()))
        .await
        .unwrap();
    let (mut ws, _) = timeout(ClientBuilder::new(format!("ws://{echo}/")).connect_on(tunnel))
        .await
        .unwrap();
    ws.send(Message::text("hi")).await.unwrap();
    assert_eq!(
        timeout(ws.recv()).await.unwrap().unwrap(),
        Message::text("hi")
    );
    assert_eq!(proxy.next_seen().await.target, echo.to_string());
}

#[tokio::test]
async fn unreachable_proxy_is_an_io_error_naming_it() {
    let echo = echo_server().await;
    let port = closed_port().await;
    let err = timeout(
        ClientBuilder::new(format!("ws://{echo}/"))
            .proxy(ProxyConfig::socks5("127.0.0.1", port))
            .connect(),
    )
    .await
    .unwrap_err();
    let Error::Io(io) = &err else {
        panic!("expected Error::Io, got {err:?}")
    };
    assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused);
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
}

#[cfg(feature = "rustls")]
#[tokio::test]
async fn wss_through_http_proxy() {
    use rcgen::{CertificateParams, KeyPair};
    use wsx::tls::{ClientTlsConfig, TlsAcceptor};

    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let acceptor =
        TlsAcceptor::from_pem(cert.pem().as_bytes(), key.serialize_pem().as_bytes()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = listener.local_addr().unwrap();
    let (sni_tx, mut sni_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let sni_tx = sni_tx.clone();
            tokio::spawn(async move {
                let tls = acceptor.accept_tls(tcp).await?;
                let _ = sni_tx.send(tls.get_ref().1.server_name().map(str::to_owned));
                let mut ws = wsx::accept(tls).await?;
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

    // The proxy resolves `localhost` itself (and is redirected to the server in case
    // `localhost` resolves to ::1 first); TLS runs end to end through the tunnel.
    let mut proxy = HttpProxy::start(None, Some(server)).await;
    let tls = ClientTlsConfig::new()
        .add_ca_pem(cert.pem())
        .build()
        .unwrap();
    echo_through(
        ClientBuilder::new(format!("wss://localhost:{}/", server.port()))
            .tls(tls)
            .proxy(ProxyConfig::http("127.0.0.1", proxy.addr.port())),
    )
    .await;
    assert_eq!(
        proxy.next_seen().await.target,
        format!("localhost:{}", server.port())
    );
    assert_eq!(
        timeout(sni_rx.recv()).await.unwrap().as_deref(),
        Some("localhost")
    );
}

// ---------------------------------------------------------------------------------------------
// SOCKS5 proxy
// ---------------------------------------------------------------------------------------------

/// The destination a SOCKS5 client asked for.
#[derive(Debug, PartialEq)]
enum SocksTarget {
    Ip(IpAddr, u16),
    Domain(String, u16),
}

/// A minimal SOCKS5 proxy (RFC 1928, RFC 1929) on 127.0.0.1. With `credentials`, it accepts
/// only username/password authentication with those; without, only "no authentication".
struct Socks5Proxy {
    addr: SocketAddr,
    seen: mpsc::UnboundedReceiver<SocksTarget>,
}

impl Socks5Proxy {
    async fn start(
        credentials: Option<(&'static str, &'static str)>,
        redirect: Option<SocketAddr>,
    ) -> Socks5Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, seen) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let tx = tx.clone();
                tokio::spawn(Self::serve(tcp, credentials, redirect, tx));
            }
        });
        Socks5Proxy { addr, seen }
    }

    async fn serve(
        mut tcp: TcpStream,
        credentials: Option<(&'static str, &'static str)>,
        redirect: Option<SocketAddr>,
        tx: mpsc::UnboundedSender<SocksTarget>,
    ) -> Option<()> {
        let mut head = [0u8; 2];
        tcp.read_exact(&mut head).await.ok()?;
        assert_eq!(head[0], 5);
        let mut methods = vec![0u8; usize::from(head[1])];
        tcp.read_exact(&mut methods).await.ok()?;
        let wanted = if credentials.is_some() { 2 } else { 0 };
        if !methods.contains(&wanted) {
            tcp.write_all(&[5, 0xff]).await.ok()?;
            return None;
        }
        tcp.write_all(&[5, wanted]).await.ok()?;
        if let Some((user, pass)) = credentials {
            let mut ver_len = [0u8; 2];
            tcp.read_exact(&mut ver_len).await.ok()?;
            assert_eq!(ver_len[0], 1);
            let mut u = vec![0u8; usize::from(ver_len[1])];
            tcp.read_exact(&mut u).await.ok()?;
            let mut plen = [0u8; 1];
            tcp.read_exact(&mut plen).await.ok()?;
            let mut p = vec![0u8; usize::from(plen[0])];
            tcp.read_exact(&mut p).await.ok()?;
            let ok = u == user.as_bytes() && p == pass.as_bytes();
            tcp.write_all(&[1, if ok { 0 } else { 1 }]).await.ok()?;
            if !ok {
                return None;
            }
        }
        let mut req = [0u8; 4];
        tcp.read_exact(&mut req).await.ok()?;
        assert_eq!(&req[..3], &[5, 1, 0]);
        let host = match req[3] {
            1 => {
                let mut a = [0u8; 4];
                tcp.read_exact(&mut a).await.ok()?;
                Err(IpAddr::from(a))
            }
            4 => {
                let mut a = [0u8; 16];
                tcp.read_exact(&mut a).await.ok()?;
                Err(IpAddr::from(a))
            }
            3 => {
                let mut len = [0u8; 1];
                tcp.read_exact(&mut len).await.ok()?;
                let mut name = vec![0u8; usize::from(len[0])];
                tcp.read_exact(&mut name).await.ok()?;
                Ok(String::from_utf8(name).ok()?)
            }
            t => panic!("address type {t}"),
        };
        let mut port = [0u8; 2];
        tcp.read_exact(&mut port).await.ok()?;
        let port = u16::from_be_bytes(port);
        let (target, upstream) = match host {
            Err(ip) => (
                SocksTarget::Ip(ip, port),
                SocketAddr::new(ip, port).to_string(),
            ),
            Ok(name) => (
                SocksTarget::Domain(name.clone(), port),
                format!("{name}:{port}"),
            ),
        };
        let _ = tx.send(target);
        let upstream = redirect.map_or(upstream, |a| a.to_string());
        // Reply "succeeded" with a bound address (a domain, to exercise that form), or
        // "connection refused".
        let Ok(up) = TcpStream::connect(&upstream).await else {
            tcp.write_all(&[5, 5, 0, 1, 0, 0, 0, 0, 0, 0]).await.ok()?;
            return None;
        };
        tcp.write_all(&[5, 0, 0, 3, 4, b't', b'e', b's', b't', 0x04, 0x38])
            .await
            .ok()?;
        splice(tcp, up).await
    }

    async fn next_seen(&mut self) -> SocksTarget {
        timeout(self.seen.recv()).await.expect("proxy stopped")
    }
}

#[tokio::test]
async fn socks5_no_auth_echo() {
    let echo = echo_server().await;
    let mut proxy = Socks5Proxy::start(None, None).await;
    let config: ProxyConfig = format!("socks5://{}", proxy.addr).parse().unwrap();
    echo_through(ClientBuilder::new(format!("ws://{echo}/")).proxy(config)).await;
    assert_eq!(
        proxy.next_seen().await,
        SocksTarget::Ip(echo.ip(), echo.port())
    );
}

#[tokio::test]
async fn socks5h_sends_the_host_name_to_the_proxy() {
    let echo = echo_server().await;
    let mut proxy = Socks5Proxy::start(None, Some(echo)).await;
    let config: ProxyConfig = format!("socks5h://{}", proxy.addr).parse().unwrap();
    // A name that does not resolve here: only the proxy needs to know it.
    echo_through(ClientBuilder::new("ws://echo.proxy-only.invalid:4321/").proxy(config)).await;
    assert_eq!(
        proxy.next_seen().await,
        SocksTarget::Domain("echo.proxy-only.invalid".into(), 4321)
    );
}

#[tokio::test]
async fn socks5_resolves_the_host_name_locally() {
    let echo = echo_server().await;
    // Redirected, in case `localhost` resolves to ::1 first here.
    let mut proxy = Socks5Proxy::start(None, Some(echo)).await;
    let config = ProxyConfig::socks5("127.0.0.1", proxy.addr.port());
    echo_through(ClientBuilder::new(format!("ws://localhost:{}/", echo.port())).proxy(config))
        .await;
    match proxy.next_seen().await {
        SocksTarget::Ip(ip, port) => {
            assert!(ip.is_loopback(), "{ip}");
            assert_eq!(port, echo.port());
        }
        other => panic!("expected an address, got {other:?}"),
    }
}

#[tokio::test]
async fn socks5_username_password_echo() {
    let echo = echo_server().await;
    let mut proxy = Socks5Proxy::start(Some(("bob", "hunter2")), None).await;
    let config: ProxyConfig = format!("socks5h://bob:hunter2@{}", proxy.addr)
        .parse()
        .unwrap();
    echo_through(ClientBuilder::new(format!("ws://{echo}/")).proxy(config)).await;
    assert_eq!(
        proxy.next_seen().await,
        SocksTarget::Ip(echo.ip(), echo.port())
    );
}

#[tokio::test]
async fn socks5_wrong_password_is_an_auth_error() {
    let echo = echo_server().await;
    let proxy = Socks5Proxy::start(Some(("bob", "hunter2")), None).await;
    let config = ProxyConfig::socks5("127.0.0.1", proxy.addr.port()).credentials("bob", "nope");
    let err = timeout(
        ClientBuilder::new(format!("ws://{echo}/"))
            .proxy(config)
            .connect(),
    )
    .await
    .unwrap_err();
    let Error::Proxy(msg) = &err else {
        panic!("expected Error::Proxy, got {err:?}")
    };
    assert!(msg.contains("username/password rejected"), "{msg}");
    assert!(msg.contains(&proxy.addr.to_string()), "{msg}");
}

#[tokio::test]
async fn socks5_proxy_wanting_credentials_without_any_is_an_auth_error() {
    let echo = echo_server().await;
    let proxy = Socks5Proxy::start(Some(("bob", "hunter2")), None).await;
    let err = timeout(
        ClientBuilder::new(format!("ws://{echo}/"))
            .proxy(ProxyConfig::socks5("127.0.0.1", proxy.addr.port()))
            .connect(),
    )
    .await
    .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Proxy(_)), "{err:?}");
    assert!(msg.contains("no acceptable authentication method"), "{msg}");
    assert!(msg.contains("wants credentials"), "{msg}");
}

#[tokio::test]
async fn socks5_refused_connect_reports_the_reply() {
    let proxy = Socks5Proxy::start(None, None).await;
    let port = closed_port().await;
    let err = timeout(
        ClientBuilder::new(format!("ws://127.0.0.1:{port}/"))
            .proxy(ProxyConfig::socks5h("127.0.0.1", proxy.addr.port()))
            .connect(),
    )
    .await
    .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Proxy(_)), "{err:?}");
    assert!(msg.contains("connection refused (reply 5)"), "{msg}");
    assert!(msg.contains(&format!("127.0.0.1:{port}")), "{msg}");
}

// ---------------------------------------------------------------------------------------------
// Connect timeout
// ---------------------------------------------------------------------------------------------

/// A "proxy" that accepts connections, reads what comes, and never answers.
async fn silent_proxy() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut sink = [0u8; 1024];
                while tcp.read(&mut sink).await.is_ok_and(|n| n > 0) {}
            });
        }
    });
    addr
}

#[tokio::test]
async fn connect_timeout_against_a_silent_http_proxy() {
    let addr = silent_proxy().await;
    let started = Instant::now();
    let err = timeout(
        ClientBuilder::new("ws://127.0.0.1:9/")
            .proxy(ProxyConfig::http("127.0.0.1", addr.port()))
            .connect_timeout(Duration::from_millis(200))
            .connect(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Timeout(_)), "{err:?}");
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(200), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
}

#[tokio::test]
async fn connect_timeout_against_a_silent_socks5_proxy() {
    let addr = silent_proxy().await;
    let started = Instant::now();
    let err = timeout(
        ClientBuilder::new("ws://127.0.0.1:9/")
            .proxy(ProxyConfig::socks5h("127.0.0.1", addr.port()))
            .connect_timeout(Duration::from_millis(200))
            .connect(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Timeout(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn connect_timeout_leaves_a_working_connection_alone() {
    let echo = echo_server().await;
    let proxy = Socks5Proxy::start(None, None).await;
    echo_through(
        ClientBuilder::new(format!("ws://{echo}/"))
            .proxy(ProxyConfig::socks5("127.0.0.1", proxy.addr.port()))
            .connect_timeout(Duration::from_secs(5)),
    )
    .await;
    // And without a proxy.
    echo_through(
        ClientBuilder::new(format!("ws://{echo}/")).connect_timeout(Duration::from_secs(5)),
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// Proxy URLs
// ---------------------------------------------------------------------------------------------

#[test]
fn proxy_url_parsing() {
    let p = ProxyConfig::parse("http://proxy.example:3128").unwrap();
    assert_eq!(
        (p.scheme(), p.host(), p.port(), p.username()),
        (ProxyScheme::Http, "proxy.example", 3128, None)
    );
    // No scheme: HTTP; no port: 1080 (curl); a trailing slash is fine.
    let p = ProxyConfig::parse("Proxy.Example/").unwrap();
    assert_eq!(
        (p.scheme(), p.host(), p.port()),
        (ProxyScheme::Http, "proxy.example", 1080)
    );
    let p = ProxyConfig::parse("SOCKS5H://u:p@[::1]:9050").unwrap();
    assert_eq!(
        (p.scheme(), p.host(), p.port(), p.username()),
        (ProxyScheme::Socks5h, "::1", 9050, Some("u"))
    );
    assert_eq!(p.to_string(), "socks5h://u:***@[::1]:9050");
    let p = ProxyConfig::parse("socks5://user%40corp:pa%3Ass@10.0.0.1").unwrap();
    assert_eq!(p.username(), Some("user@corp"));
    assert_eq!(p.port(), 1080);
    assert_eq!(
        ProxyConfig::parse("socks5://10.0.0.1:1080").unwrap(),
        ProxyConfig::socks5("10.0.0.1", 1080)
    );
    assert_eq!(
        ProxyConfig::parse("http://a:b@h:1").unwrap(),
        ProxyConfig::http("h", 1).credentials("a", "b")
    );
}

#[test]
fn proxy_url_errors() {
    for (url, why) in [
        ("https://proxy:443", "not supported"),
        ("socks4://proxy:1080", "SOCKS4"),
        ("ftp://proxy", "unsupported scheme"),
        ("http://", "bad host"),
        ("http://proxy:0", "bad port"),
        ("http://proxy:65536", "bad port"),
        ("http://proxy:+80", "bad port"),
        ("http://proxy:80/path", "no path"),
        ("http://::1:80", "bad host"),
        ("http://pro xy:80", "spaces"),
        ("http://u:p%zz@proxy", "%-escape"),
    ] {
        match ProxyConfig::parse(url) {
            Err(Error::InvalidUrl(msg)) => assert!(msg.contains(why), "{url}: {msg}"),
            other => panic!("{url}: expected InvalidUrl, got {other:?}"),
        }
    }
    // The password never appears in the error.
    let err = ProxyConfig::parse("ftp://u:secret@proxy").unwrap_err();
    assert!(!err.to_string().contains("secret"), "{err}");
}

#[test]
fn debug_and_display_hide_the_password() {
    let p = ProxyConfig::http("h", 8080).credentials("me", "topsecret");
    assert!(!format!("{p:?}").contains("topsecret"));
    assert!(!p.to_string().contains("topsecret"));
    let b = ClientBuilder::new("ws://x/").proxy(p);
    assert!(!format!("{b:?}").contains("topsecret"));
}

// ---------------------------------------------------------------------------------------------
// The environment (through a lookup closure) and no_proxy
// ---------------------------------------------------------------------------------------------

fn env_proxy(target: &str, vars: &[(&str, &str)]) -> Result<Option<String>, Error> {
    let vars: HashMap<&str, &str> = vars.iter().copied().collect();
    let url = WsUrl::parse(target).unwrap();
    ProxyConfig::from_env_with(&url, |name| vars.get(name).map(|v| v.to_string()))
        .map(|p| p.map(|p| p.to_string()))
}

fn proxy_for(target: &str, vars: &[(&str, &str)]) -> Option<String> {
    env_proxy(target, vars).unwrap()
}

#[test]
fn env_scheme_specific_variables() {
    let vars = [
        ("http_proxy", "http://plain:1"),
        ("https_proxy", "http://secure:2"),
    ];
    assert_eq!(
        proxy_for("ws://h/", &vars).as_deref(),
        Some("http://plain:1")
    );
    assert_eq!(
        proxy_for("wss://h/", &vars).as_deref(),
        Some("http://secure:2")
    );
    // Uppercase too; lowercase wins.
    let vars = [("HTTPS_PROXY", "upper:3")];
    assert_eq!(
        proxy_for("wss://h/", &vars).as_deref(),
        Some("http://upper:3")
    );
    assert_eq!(proxy_for("ws://h/", &vars), None);
    let vars = [("https_proxy", "lower:1"), ("HTTPS_PROXY", "upper:2")];
    assert_eq!(
        proxy_for("wss://h/", &vars).as_deref(),
        Some("http://lower:1")
    );
    let vars = [("HTTP_PROXY", "upper:4")];
    assert_eq!(
        proxy_for("ws://h/", &vars).as_deref(),
        Some("http://upper:4")
    );
    // ws_proxy / wss_proxy come first, as in curl.
    let vars = [
        ("ws_proxy", "socks5h://ws:5"),
        ("http_proxy", "http://plain:1"),
    ];
    assert_eq!(
        proxy_for("ws://h/", &vars).as_deref(),
        Some("socks5h://ws:5")
    );
    let vars = [("WSS_PROXY", "socks5://wss:6"), ("https_proxy", "x:1")];
    assert_eq!(
        proxy_for("wss://h/", &vars).as_deref(),
        Some("socks5://wss:6")
    );
}

#[test]
fn env_all_proxy_is_the_fallback() {
    let vars = [
        ("all_proxy", "socks5h://all:1080"),
        ("https_proxy", "http://s:2"),
    ];
    assert_eq!(proxy_for("wss://h/", &vars).as_deref(), Some("http://s:2"));
    assert_eq!(
        proxy_for("ws://h/", &vars).as_deref(),
        Some("socks5h://all:1080")
    );
    let vars = [("ALL_PROXY", "socks5://ALL:1")];
    assert_eq!(
        proxy_for("wss://h/", &vars).as_deref(),
        Some("socks5://all:1")
    );
    // Empty values count as unset.
    let vars = [("https_proxy", " "), ("all_proxy", "a:1")];
    assert_eq!(proxy_for("wss://h/", &vars).as_deref(), Some("http://a:1"));
    assert_eq!(proxy_for("wss://h/", &[]), None);
}

#[test]
fn env_http_proxy_uppercase_is_ignored_under_cgi() {
    let vars = [("HTTP_PROXY", "evil:1"), ("REQUEST_METHOD", "GET")];
    assert_eq!(proxy_for("ws://h/", &vars), None);
    let vars = [("http_proxy", "ok:1"), ("REQUEST_METHOD", "GET")];
    assert_eq!(proxy_for("ws://h/", &vars).as_deref(), Some("http://ok:1"));
}

#[test]
fn env_no_proxy_excludes_targets() {
    let vars = [
        ("all_proxy", "http://p:1"),
        (
            "no_proxy",
            "localhost, .corp.example,static.example:8080 10.0.0.0/8,::1,[fd00::5]:9",
        ),
    ];
    for direct in [
        "ws://localhost/",
        "wss://LOCALHOST:9443/",
        "ws://corp.example/",
        "wss://a.b.corp.example/",
        "ws://static.example:8080/",
        "ws://10.20.30.40/",
        "ws://[::1]:80/",
        "ws://[fd00::5]:9/",
    ] {
        assert_eq!(proxy_for(direct, &vars), None, "{direct}");
    }
    for proxied in [
        "ws://example.com/",
        "ws://notcorp.example/",
        "ws://static.example/",
        "ws://11.0.0.1/",
        "ws://[fd00::5]:10/",
        "ws://localhost.evil.example/",
    ] {
        assert_eq!(
            proxy_for(proxied, &vars).as_deref(),
            Some("http://p:1"),
            "{proxied}"
        );
    }
    // `*` turns the proxy off; NO_PROXY works too, no_proxy wins.
    assert_eq!(
        proxy_for("ws://x/", &[("all_proxy", "p:1"), ("NO_PROXY", "*")]),
        None
    );
    let vars = [("all_proxy", "p:1"), ("no_proxy", "a"), ("NO_PROXY", "*")];
    assert_eq!(proxy_for("ws://b/", &vars).as_deref(), Some("http://p:1"));
}

#[test]
fn env_bad_proxy_url_names_the_variable() {
    let err = env_proxy("wss://h/", &[("HTTPS_PROXY", "https://u:secret@p")]).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::InvalidUrl(_)), "{err:?}");
    assert!(msg.contains("HTTPS_PROXY"), "{msg}");
    assert!(!msg.contains("secret"), "{msg}");
    // An excluded target does not even look at the proxy variables.
    assert_eq!(
        env_proxy("wss://h/", &[("HTTPS_PROXY", "bad://"), ("no_proxy", "h")]).unwrap(),
        None
    );
}

#[test]
fn no_proxy_matching() {
    let np = NoProxy::parse("example.com, .dot.example, *.star.example, host.example:81").unwrap();
    assert!(np.matches("example.com", 80));
    assert!(np.matches("www.example.com", 443));
    assert!(np.matches("example.com.", 443));
    assert!(!np.matches("badexample.com", 80));
    assert!(!np.matches("example.com.evil", 80));
    assert!(np.matches("dot.example", 80));
    assert!(np.matches("a.dot.example", 80));
    assert!(np.matches("star.example", 80));
    assert!(np.matches("a.star.example", 80));
    assert!(np.matches("host.example", 81));
    assert!(!np.matches("host.example", 80));
    assert!(np.matches("a.host.example", 81));

    let np = NoProxy::parse("127.0.0.1,192.168.0.0/16 , 2001:db8::/32,[::1]").unwrap();
    assert!(np.matches("127.0.0.1", 1));
    assert!(!np.matches("127.0.0.2", 1));
    assert!(np.matches("192.168.44.1", 1));
    assert!(!np.matches("192.169.0.1", 1));
    assert!(np.matches("2001:db8::1", 1));
    assert!(np.matches("[2001:DB8:ffff::]", 1));
    assert!(np.matches("::1", 1));
    assert!(np.matches("::ffff:127.0.0.1", 1));
    // Names are not resolved, and addresses are not matched as domain suffixes.
    assert!(!np.matches("localhost", 1));
    assert!(!NoProxy::parse("0.0.1").unwrap().matches("127.0.0.1", 1));

    assert!(NoProxy::parse("*").unwrap().matches("anything", 1));
    assert!(NoProxy::parse("a, *").unwrap().matches("anything", 1));
    assert!(NoProxy::parse("").unwrap().is_empty());
    assert!(NoProxy::parse(" , ,").unwrap().is_empty());
    // Unusable entries are errors naming them (skipping one would send its hosts to the proxy).
    for bad in ["10.0.0.0/99", "h:notaport", "[::1", "::ffff:10.0.0.0/104"] {
        let err = NoProxy::parse(&format!("ok.example, {bad}")).unwrap_err();
        assert!(err.to_string().contains(bad), "{err}");
    }
}

#[test]
fn a_bad_no_proxy_entry_is_an_error_naming_the_variable() {
    let err = env_proxy(
        "ws://10.1.2.3/",
        &[
            ("HTTP_PROXY", "http://p:1"),
            ("NO_PROXY", "::ffff:10.0.0.0/104"),
        ],
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("NO_PROXY") && err.contains("IPv4-mapped"),
        "{err}"
    );
}
