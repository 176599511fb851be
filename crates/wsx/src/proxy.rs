//! Client-side proxies: HTTP `CONNECT` and SOCKS5, chosen explicitly or from the environment.
//!
//! Where it sits in the flow: a proxy is the first step of
//! [`ClientBuilder::connect`](crate::ClientBuilder::connect). Instead of opening a TCP connection
//! to the server, the client opens one to the proxy and asks it for a tunnel to the server's host
//! and port; everything after that — TLS for `wss://`, the WebSocket handshake, the frames — runs
//! through the tunnel exactly as over a direct connection. The proxy sees only the host and port
//! (and, for `wss://`, nothing of the traffic).
//!
//! - [`ProxyConfig`] names a proxy: `http://[user:pass@]host[:port]` (HTTP `CONNECT`, with
//!   `Proxy-Authorization: Basic` when credentials are given), `socks5://` (the client resolves
//!   the server's name itself) or `socks5h://` (the proxy resolves it), with RFC 1929
//!   username/password authentication when credentials are given. Pass it to
//!   [`ClientBuilder::proxy`](crate::ClientBuilder::proxy), or call [`ProxyConfig::connect`]
//!   to get a tunnel for [`ClientBuilder::connect_on`](crate::ClientBuilder::connect_on).
//! - [`ProxyConfig::from_env`] follows curl's conventions (`wss_proxy`/`https_proxy`,
//!   `ws_proxy`/`http_proxy`, `all_proxy`, and `no_proxy`, see [`NoProxy`]). The client reads the
//!   environment only when asked to, with
//!   [`ClientBuilder::proxy_from_env`](crate::ClientBuilder::proxy_from_env).
//!
//! Failures: a proxy that refuses (an HTTP status other than 2xx, a SOCKS5 reply other than
//! "succeeded", rejected credentials) or breaks the protocol gives
//! [`Error::Proxy`] with the reason; a proxy that cannot be reached gives
//! [`Error::Io`] naming the proxy; a malformed proxy URL gives
//! [`Error::InvalidUrl`].
//!
//! The SOCKS5 client is written here rather than taken from a crate: the protocol (RFC 1928,
//! RFC 1929) is a few fixed-layout messages, and owning it keeps the errors in this crate's type.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;

use base64::Engine as _;
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wsx_proto::handshake::WsUrl;

use crate::error::{Error, Result};

/// The largest HTTP response head accepted from a proxy.
const MAX_PROXY_HEAD: usize = 16 * 1024;

/// The port of a proxy URL that names none: 1080, as curl does for every proxy scheme.
pub const DEFAULT_PROXY_PORT: u16 = 1080;

/// The kind of proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProxyScheme {
    /// An HTTP proxy, asked for a tunnel with `CONNECT host:port` (`http://`).
    Http,
    /// A SOCKS5 proxy; the client resolves the server's host name and sends the address
    /// (`socks5://`).
    Socks5,
    /// A SOCKS5 proxy that resolves the server's host name itself (`socks5h://`): the name is
    /// sent to the proxy, no DNS query is made locally.
    Socks5h,
}

impl ProxyScheme {
    /// The URL scheme: `http`, `socks5` or `socks5h`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProxyScheme::Http => "http",
            ProxyScheme::Socks5 => "socks5",
            ProxyScheme::Socks5h => "socks5h",
        }
    }
}

/// A proxy to reach the server through: its kind, address and optional credentials.
///
/// Made from a URL with [`ProxyConfig::parse`] (or `str::parse`), with the constructors
/// [`http`](Self::http), [`socks5`](Self::socks5), [`socks5h`](Self::socks5h), or from the
/// environment with [`from_env`](Self::from_env). `Debug` and `Display` never show the
/// password.
///
/// ```
/// use wsx::proxy::{ProxyConfig, ProxyScheme};
/// let p: ProxyConfig = "socks5h://alice:s%40cret@proxy.example:1080".parse()?;
/// assert_eq!(p.scheme(), ProxyScheme::Socks5h);
/// assert_eq!(p.username(), Some("alice"));
/// assert_eq!(p.to_string(), "socks5h://alice:***@proxy.example:1080");
/// # Ok::<(), wsx::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    scheme: ProxyScheme,
    host: String,
    port: u16,
    credentials: Option<(String, String)>,
}

impl ProxyConfig {
    /// An HTTP `CONNECT` proxy at `host:port`.
    pub fn http(host: impl Into<String>, port: u16) -> Self {
        Self::new(ProxyScheme::Http, host.into(), port)
    }

    /// A SOCKS5 proxy at `host:port`; the client resolves the server's name (`socks5://`).
    pub fn socks5(host: impl Into<String>, port: u16) -> Self {
        Self::new(ProxyScheme::Socks5, host.into(), port)
    }

    /// A SOCKS5 proxy at `host:port` that resolves the server's name itself (`socks5h://`).
    pub fn socks5h(host: impl Into<String>, port: u16) -> Self {
        Self::new(ProxyScheme::Socks5h, host.into(), port)
    }

    fn new(scheme: ProxyScheme, host: String, port: u16) -> Self {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        ProxyConfig {
            scheme,
            host: host.to_ascii_lowercase(),
            port,
            credentials: None,
        }
    }

    /// Authenticate to the proxy: `Proxy-Authorization: Basic` for HTTP, RFC 1929
    /// username/password for SOCKS5.
    pub fn credentials(mut self, username: impl Into<String>, password: impl Into<String>) -> Self {
        self.credentials = Some((username.into(), password.into()));
        self
    }

    /// Parses a proxy URL: `[scheme://][user[:password]@]host[:port][/]`.
    ///
    /// Schemes: `http` (the default when there is none, as in `proxy.local:3128`), `socks5`,
    /// `socks5h`; case-insensitive. The port defaults to [`DEFAULT_PROXY_PORT`] (1080, as in
    /// curl). User and password are percent-decoded (`%40` for `@`). IPv6 addresses are written
    /// in brackets. A path of `/` is allowed and ignored.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidUrl`] for another scheme (`https://` proxies and SOCKS4 are not
    /// supported), an empty host, a bad port, or a path.
    pub fn parse(url: &str) -> Result<Self> {
        let url = url.trim();
        let bad = |why: &str| Error::InvalidUrl(format!("proxy URL {:?}: {why}", redact(url)));
        if url.chars().any(|c| c.is_control() || c == ' ') {
            return Err(bad("spaces and control characters are not allowed"));
        }
        let (scheme, rest) = match url.split_once("://") {
            Some((s, rest)) => (s.to_ascii_lowercase(), rest),
            None => ("http".to_owned(), url),
        };
        let scheme = match scheme.as_str() {
            "http" => ProxyScheme::Http,
            "socks5" => ProxyScheme::Socks5,
            "socks5h" => ProxyScheme::Socks5h,
            "https" => return Err(bad("https:// (TLS to the proxy) is not supported")),
            "socks4" | "socks4a" => return Err(bad("SOCKS4 is not supported; use socks5://")),
            _ => return Err(bad("unsupported scheme: expected http, socks5 or socks5h")),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if !(path.is_empty() || path == "/") {
            return Err(bad("a proxy URL has no path"));
        }
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let credentials = match userinfo {
            None => None,
            Some(u) => {
                let (user, pass) = u.split_once(':').unwrap_or((u, ""));
                let user = percent_decode(user).ok_or_else(|| bad("bad %-escape in the user"))?;
                let pass =
                    percent_decode(pass).ok_or_else(|| bad("bad %-escape in the password"))?;
                Some((user, pass))
            }
        };
        let (host, port) = split_host_port(hostport).ok_or_else(|| bad("bad host or port"))?;
        let port = match port {
            None => DEFAULT_PROXY_PORT,
            Some(p) if !p.bytes().all(|b| b.is_ascii_digit()) => return Err(bad("bad port")),
            Some(p) => match p.parse::<u16>() {
                Ok(p) if p != 0 => p,
                _ => return Err(bad("bad port")),
            },
        };
        if host.is_empty()
            || !host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | ':'))
        {
            return Err(bad("bad host"));
        }
        Ok(ProxyConfig {
            scheme,
            host: host.to_ascii_lowercase(),
            port,
            credentials,
        })
    }

    /// The proxy for `target` from the process environment, as curl picks it; `None` for a
    /// direct connection. See [`from_env_with`](Self::from_env_with) for the rules.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidUrl`] if the chosen variable holds a malformed proxy URL.
    pub fn from_env(target: &WsUrl) -> Result<Option<Self>> {
        Self::from_env_with(target, |name| std::env::var(name).ok())
    }

    /// The proxy for `target` from the variables `lookup` returns (`lookup("https_proxy")` and
    /// so on), as curl picks it; `None` for a direct connection.
    ///
    /// 1. If `no_proxy` (else `NO_PROXY`) matches the target's host and port (see
    ///    [`NoProxy`]), no proxy.
    /// 2. For `wss://`: `wss_proxy`, `WSS_PROXY`, `https_proxy`, `HTTPS_PROXY`. For `ws://`:
    ///    `ws_proxy`, `WS_PROXY`, `http_proxy`, `HTTP_PROXY` — the last one not when
    ///    `REQUEST_METHOD` is set, since a CGI program gets it from a request's `Proxy:` header
    ///    ("httpoxy").
    /// 3. Then `all_proxy`, `ALL_PROXY`.
    ///
    /// The first variable that is set and not empty is parsed with [`parse`](Self::parse).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidUrl`], naming the variable, if it holds a malformed proxy URL.
    pub fn from_env_with(
        target: &WsUrl,
        mut lookup: impl FnMut(&str) -> Option<String>,
    ) -> Result<Option<Self>> {
        let mut get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        if let Some((name, list)) = ["no_proxy", "NO_PROXY"]
            .into_iter()
            .find_map(|name| get(name).map(|list| (name, list)))
        {
            let no_proxy = NoProxy::parse(&list).map_err(|e| match e {
                Error::InvalidUrl(why) => Error::InvalidUrl(format!("{name}: {why}")),
                e => e,
            })?;
            if no_proxy.matches(&target.host, target.port) {
                return Ok(None);
            }
        }
        let cgi = get("REQUEST_METHOD").is_some();
        let names: &[&str] = if target.secure {
            &["wss_proxy", "WSS_PROXY", "https_proxy", "HTTPS_PROXY"]
        } else if cgi {
            &["ws_proxy", "WS_PROXY", "http_proxy"]
        } else {
            &["ws_proxy", "WS_PROXY", "http_proxy", "HTTP_PROXY"]
        };
        for name in names.iter().chain(&["all_proxy", "ALL_PROXY"]) {
            if let Some(value) = get(name) {
                return match Self::parse(&value) {
                    Ok(p) => Ok(Some(p)),
                    Err(Error::InvalidUrl(why)) => Err(Error::InvalidUrl(format!("{name}: {why}"))),
                    Err(e) => Err(e),
                };
            }
        }
        Ok(None)
    }

    /// The kind of proxy.
    pub fn scheme(&self) -> ProxyScheme {
        self.scheme
    }

    /// The proxy's host: a name, or an IP address (IPv6 without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The user name sent to the proxy, if credentials are set.
    pub fn username(&self) -> Option<&str> {
        self.credentials.as_ref().map(|(u, _)| u.as_str())
    }

    /// Opens a TCP connection to the proxy (with `TCP_NODELAY`) and asks it for a tunnel to
    /// `host:port`; returns the tunnel, ready for TLS or the WebSocket handshake.
    ///
    /// `host` is a DNS name or an IP address (IPv6 without brackets). For
    /// [`ProxyScheme::Socks5`] a name is resolved here and the first address is sent; for
    /// [`ProxyScheme::Http`] and [`ProxyScheme::Socks5h`] the name goes to the proxy.
    ///
    /// There is no deadline here; [`ClientBuilder::connect_timeout`](crate::ClientBuilder::connect_timeout)
    /// sets one, or wrap the call in `tokio::time::timeout`.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] (naming the proxy) if the proxy cannot be reached or the connection fails;
    /// [`Error::Proxy`] if the proxy refuses the tunnel or the credentials, or breaks its
    /// protocol.
    pub async fn connect(&self, host: &str, port: u16) -> Result<TcpStream> {
        let mut tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| io::Error::new(e.kind(), format!("proxy {}: {e}", self.addr())))?;
        tcp.set_nodelay(true)?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        match self.scheme {
            ProxyScheme::Http => self.http_connect(&mut tcp, host, port).await?,
            ProxyScheme::Socks5 | ProxyScheme::Socks5h => {
                self.socks5_connect(&mut tcp, host, port).await?
            }
        }
        Ok(tcp)
    }

    /// `host:port` of the proxy, IPv6 in brackets.
    fn addr(&self) -> String {
        authority(&self.host, self.port)
    }

    async fn http_connect(&self, tcp: &mut TcpStream, host: &str, port: u16) -> Result<()> {
        let target = authority(host, port);
        let mut req = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
        if let Some((user, pass)) = &self.credentials {
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
            req.push_str(&format!("Proxy-Authorization: Basic {token}\r\n"));
        }
        req.push_str("\r\n");
        tcp.write_all(req.as_bytes()).await?;
        tcp.flush().await?;

        let proxy = self.addr();
        let mut buf = BytesMut::with_capacity(1024);
        loop {
            let n = tcp.read_buf(&mut buf).await?;
            if n == 0 {
                return Err(Error::Proxy(format!(
                    "HTTP proxy {proxy} closed the connection before answering CONNECT {target}"
                )));
            }
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut resp = httparse::Response::new(&mut headers);
            let used = match resp.parse(&buf) {
                Ok(httparse::Status::Complete(used)) => used,
                Ok(httparse::Status::Partial) if buf.len() < MAX_PROXY_HEAD => continue,
                Ok(httparse::Status::Partial) => {
                    return Err(Error::Proxy(format!(
                        "HTTP proxy {proxy}: response head longer than {MAX_PROXY_HEAD} bytes"
                    )));
                }
                Err(e) => {
                    return Err(Error::Proxy(format!(
                        "HTTP proxy {proxy}: malformed response to CONNECT: {e}"
                    )));
                }
            };
            let status = resp.code.unwrap_or(0);
            if !(200..300).contains(&status) {
                let reason = resp.reason.unwrap_or("").trim();
                let hint = match (status, &self.credentials) {
                    (407, None) => " (the proxy wants credentials: http://user:pass@host:port)",
                    (407, Some(_)) => " (the proxy rejected the credentials)",
                    _ => "",
                };
                return Err(Error::Proxy(format!(
                    "HTTP proxy {proxy} refused CONNECT {target}: {status} {reason}{hint}"
                )));
            }
            if used != buf.len() {
                return Err(Error::Proxy(format!(
                    "HTTP proxy {proxy} sent data after its {status} response, before the \
                     tunnel was used"
                )));
            }
            return Ok(());
        }
    }

    async fn socks5_connect(&self, tcp: &mut TcpStream, host: &str, port: u16) -> Result<()> {
        let proxy = self.addr();
        let fail = |why: String| Error::Proxy(format!("SOCKS5 proxy {proxy}: {why}"));
        let eof = |e: io::Error| match e.kind() {
            io::ErrorKind::UnexpectedEof => fail("closed the connection during negotiation".into()),
            _ => Error::Io(e),
        };

        // The address to ask for, resolved here for socks5://.
        let addr = match host.parse::<IpAddr>() {
            Ok(ip) => SocksAddr::Ip(ip),
            Err(_) if self.scheme == ProxyScheme::Socks5 => {
                let mut addrs = tokio::net::lookup_host((host, port)).await?;
                let ip = addrs.next().map(|a| a.ip()).ok_or_else(|| {
                    io::Error::new(io::ErrorKind::NotFound, format!("{host}: no address"))
                })?;
                SocksAddr::Ip(ip)
            }
            Err(_) => {
                if host.is_empty() || host.len() > 255 {
                    return Err(fail(format!(
                        "host name of {} bytes cannot be sent",
                        host.len()
                    )));
                }
                SocksAddr::Domain(host)
            }
        };

        // Greeting: version 5, the methods offered (RFC 1928 §3).
        let greeting: &[u8] = match self.credentials {
            None => &[5, 1, 0],
            Some(_) => &[5, 2, 0, 2],
        };
        tcp.write_all(greeting).await?;
        let mut choice = [0u8; 2];
        tcp.read_exact(&mut choice).await.map_err(eof)?;
        if choice[0] != 5 {
            return Err(fail(format!(
                "not a SOCKS5 server (version {} in its answer)",
                choice[0]
            )));
        }
        match (choice[1], &self.credentials) {
            (0, _) => {}
            (2, Some((user, pass))) => {
                // Username/password sub-negotiation (RFC 1929).
                if user.len() > 255 || pass.len() > 255 {
                    return Err(fail(
                        "user name and password are limited to 255 bytes".into(),
                    ));
                }
                let mut msg = Vec::with_capacity(3 + user.len() + pass.len());
                msg.push(1);
                msg.push(user.len() as u8);
                msg.extend_from_slice(user.as_bytes());
                msg.push(pass.len() as u8);
                msg.extend_from_slice(pass.as_bytes());
                tcp.write_all(&msg).await?;
                let mut status = [0u8; 2];
                tcp.read_exact(&mut status).await.map_err(eof)?;
                if status[1] != 0 {
                    return Err(fail(format!(
                        "username/password rejected (status {})",
                        status[1]
                    )));
                }
            }
            (0xff, None) => {
                return Err(fail(
                    "no acceptable authentication method: the proxy wants credentials \
                     (socks5://user:pass@host:port)"
                        .into(),
                ));
            }
            (0xff, Some(_)) => {
                return Err(fail(
                    "no acceptable authentication method (offered none and username/password)"
                        .into(),
                ));
            }
            (m, _) => return Err(fail(format!("chose method {m}, which was not offered"))),
        }

        // CONNECT request (RFC 1928 §4).
        let mut req = vec![5, 1, 0];
        match addr {
            SocksAddr::Ip(IpAddr::V4(ip)) => {
                req.push(1);
                req.extend_from_slice(&ip.octets());
            }
            SocksAddr::Ip(IpAddr::V6(ip)) => {
                req.push(4);
                req.extend_from_slice(&ip.octets());
            }
            SocksAddr::Domain(name) => {
                req.push(3);
                req.push(name.len() as u8);
                req.extend_from_slice(name.as_bytes());
            }
        }
        req.extend_from_slice(&port.to_be_bytes());
        tcp.write_all(&req).await?;

        // Reply: VER REP RSV ATYP BND.ADDR BND.PORT (RFC 1928 §6).
        let mut head = [0u8; 4];
        tcp.read_exact(&mut head).await.map_err(eof)?;
        if head[0] != 5 {
            return Err(fail(format!("bad version {} in its reply", head[0])));
        }
        if head[1] != 0 {
            return Err(fail(format!(
                "refused CONNECT {}: {} (reply {})",
                authority(host, port),
                socks_reply(head[1]),
                head[1]
            )));
        }
        let skip = match head[3] {
            1 => 4 + 2,
            4 => 16 + 2,
            3 => {
                let mut len = [0u8; 1];
                tcp.read_exact(&mut len).await.map_err(eof)?;
                usize::from(len[0]) + 2
            }
            t => return Err(fail(format!("bad address type {t} in its reply"))),
        };
        let mut bound = [0u8; 255 + 2];
        tcp.read_exact(&mut bound[..skip]).await.map_err(eof)?;
        Ok(())
    }
}

/// The destination in a SOCKS5 request.
enum SocksAddr<'a> {
    Ip(IpAddr),
    Domain(&'a str),
}

/// The meaning of a SOCKS5 reply code (RFC 1928 §6).
fn socks_reply(code: u8) -> &'static str {
    match code {
        1 => "general SOCKS server failure",
        2 => "connection not allowed by ruleset",
        3 => "network unreachable",
        4 => "host unreachable",
        5 => "connection refused",
        6 => "TTL expired",
        7 => "command not supported",
        8 => "address type not supported",
        _ => "unknown error",
    }
}

impl FromStr for ProxyConfig {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        ProxyConfig::parse(s)
    }
}

impl fmt::Display for ProxyConfig {
    /// The proxy URL, with the password replaced by `***`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", self.scheme.as_str())?;
        if let Some((user, _)) = &self.credentials {
            write!(f, "{user}:***@")?;
        }
        f.write_str(&self.addr())
    }
}

impl fmt::Debug for ProxyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyConfig")
            .field("scheme", &self.scheme)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username())
            .finish_non_exhaustive()
    }
}

/// A `no_proxy` list: the hosts to reach directly, without the proxy, following curl.
///
/// Entries are separated by commas (and/or whitespace) and compared case-insensitively:
///
/// - `*` alone: every host.
/// - A domain, `example.com` or `.example.com` (or `*.example.com`): that host and every
///   subdomain (`www.example.com`), but not `notexample.com`.
/// - An IP address, `10.1.2.3` or `::1` (or `[::1]`): that address; a host name is not resolved
///   to be compared with it.
/// - A CIDR block, `10.0.0.0/8` or `fd00::/8`: the addresses in it.
/// - Any of these followed by `:port` (`example.com:8080`, `[::1]:9000`): only that port.
///
/// ```
/// use wsx::proxy::NoProxy;
/// let np = NoProxy::parse("localhost, .internal.example, 10.0.0.0/8, api.example:8443")?;
/// assert!(np.matches("localhost", 80));
/// assert!(np.matches("svc.internal.example", 443));
/// assert!(np.matches("10.2.3.4", 80));
/// assert!(np.matches("api.example", 8443));
/// assert!(!np.matches("api.example", 443));
/// assert!(!np.matches("example.org", 80));
/// # Ok::<(), wsx::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NoProxy {
    entries: Vec<NoProxyEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum NoProxyEntry {
    All,
    Domain(String, Option<u16>),
    Ip(IpAddr, Option<u16>),
    Cidr(IpAddr, u8, Option<u16>),
}

impl NoProxy {
    /// Parses a `no_proxy` value.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidUrl`], naming the entry and what is wrong with it, for an entry that
    /// cannot be understood: a CIDR prefix longer than the address (`/33` for IPv4, `/129` for
    /// IPv6), a CIDR block written as an IPv4-mapped IPv6 address (`::ffff:10.0.0.0/104`: write
    /// `10.0.0.0/8`), a bad port, an unclosed `[`. A mistyped entry is reported rather than
    /// skipped, since skipping it would send to the proxy what was meant to bypass it.
    pub fn parse(list: &str) -> Result<Self> {
        let entries = list
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|e| !e.is_empty())
            .map(|e| {
                NoProxyEntry::parse(e)
                    .map_err(|why| Error::InvalidUrl(format!("no_proxy entry {e:?}: {why}")))
            })
            .collect::<Result<_>>()?;
        Ok(NoProxy { entries })
    }

    /// Whether the server `host:port` is to be reached without the proxy. `host` is a DNS
    /// name or an IP address (IPv6 with or without brackets), as in [`WsUrl::host`].
    pub fn matches(&self, host: &str, port: u16) -> bool {
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .trim_end_matches('.')
            .to_ascii_lowercase();
        let ip = host.parse::<IpAddr>().ok();
        self.entries.iter().any(|e| e.matches(&host, ip, port))
    }

    /// Whether the list has no usable entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl NoProxyEntry {
    fn parse(entry: &str) -> std::result::Result<Self, &'static str> {
        let entry = entry.to_ascii_lowercase();
        if entry == "*" {
            return Ok(NoProxyEntry::All);
        }
        let bad_port = "the port is not a number from 0 to 65535";
        // Split off a port: `[v6]:p`, `name:p`, `v4:p`; a bare IPv6 address has several colons.
        let (addr, port) = if let Some(rest) = entry.strip_prefix('[') {
            let (addr, after) = rest.split_once(']').ok_or("no closing `]`")?;
            let port = match after {
                "" => None,
                _ => Some(
                    after
                        .strip_prefix(':')
                        .ok_or("`]` is followed by something else than `:port`")?
                        .parse::<u16>()
                        .map_err(|_| bad_port)?,
                ),
            };
            (addr.to_owned(), port)
        } else {
            match entry.split_once(':') {
                Some((h, p)) if !p.contains(':') => {
                    (h.to_owned(), Some(p.parse::<u16>().map_err(|_| bad_port)?))
                }
                _ => (entry, None),
            }
        };
        if let Some((ip, bits)) = addr.split_once('/') {
            let ip = ip
                .parse::<IpAddr>()
                .map_err(|_| "a CIDR block needs an IP address before the `/`")?;
            let bits = bits
                .parse::<u8>()
                .map_err(|_| "the CIDR prefix length is not a number")?;
            return match ip {
                IpAddr::V4(_) if bits > 32 => Err("an IPv4 prefix is at most /32"),
                IpAddr::V6(_) if bits > 128 => Err("an IPv6 prefix is at most /128"),
                IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => Err(
                    "an IPv4-mapped CIDR block (::ffff:a.b.c.d/n); write the IPv4 block a.b.c.d/n",
                ),
                _ => Ok(NoProxyEntry::Cidr(ip, bits, port)),
            };
        }
        if let Ok(ip) = addr.parse::<IpAddr>() {
            return Ok(NoProxyEntry::Ip(ip, port));
        }
        let domain = addr
            .strip_prefix("*.")
            .or_else(|| addr.strip_prefix('.'))
            .unwrap_or(&addr)
            .trim_end_matches('.');
        if domain.is_empty() {
            return Err("no host name");
        }
        Ok(NoProxyEntry::Domain(domain.to_owned(), port))
    }

    fn matches(&self, host: &str, ip: Option<IpAddr>, port: u16) -> bool {
        let port_ok = |p: &Option<u16>| p.is_none_or(|p| p == port);
        match self {
            NoProxyEntry::All => true,
            NoProxyEntry::Domain(d, p) => {
                ip.is_none()
                    && port_ok(p)
                    && (host == d
                        || (host.len() > d.len()
                            && host.ends_with(d.as_str())
                            && host.as_bytes()[host.len() - d.len() - 1] == b'.'))
            }
            NoProxyEntry::Ip(e, p) => ip.is_some_and(|ip| same_ip(ip, *e)) && port_ok(p),
            NoProxyEntry::Cidr(net, bits, p) => {
                ip.is_some_and(|ip| in_cidr(ip, *net, *bits)) && port_ok(p)
            }
        }
    }
}

/// IP equality, treating an IPv4-mapped IPv6 address as its IPv4 address.
fn same_ip(a: IpAddr, b: IpAddr) -> bool {
    a.to_canonical() == b.to_canonical()
}

/// Whether `ip` (IPv4-mapped IPv6 counting as IPv4) is in the block `net/bits`; a prefix
/// longer than the address matches nothing (the parser refuses it).
fn in_cidr(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip.to_canonical(), net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let Some(host_bits) = 32u32.checked_sub(u32::from(bits)) else {
                return false;
            };
            let mask = u32::MAX.checked_shl(host_bits).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let Some(host_bits) = 128u32.checked_sub(u32::from(bits)) else {
                return false;
            };
            let mask = u128::MAX.checked_shl(host_bits).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

/// How the client picks its proxy ([`ClientBuilder::proxy`](crate::ClientBuilder::proxy),
/// [`ClientBuilder::proxy_from_env`](crate::ClientBuilder::proxy_from_env)).
#[derive(Debug, Clone, Default)]
pub(crate) enum ProxyChoice {
    /// Connect directly.
    #[default]
    Direct,
    /// Always through this proxy.
    Fixed(ProxyConfig),
    /// As the environment says, per target ([`ProxyConfig::from_env`]).
    FromEnv,
}

/// Opens the TCP connection for `url`: directly, or a tunnel through the chosen proxy; with
/// `TCP_NODELAY` set.
pub(crate) async fn open_tcp(url: &WsUrl, choice: &ProxyChoice) -> Result<TcpStream> {
    let proxy = match choice {
        ProxyChoice::Direct => None,
        ProxyChoice::Fixed(p) => Some(p.clone()),
        ProxyChoice::FromEnv => ProxyConfig::from_env(url)?,
    };
    match proxy {
        Some(p) => {
            tracing::debug!(proxy = %p, target = %authority(&url.host, url.port), "connecting through proxy");
            p.connect(&url.host, url.port).await
        }
        None => {
            let tcp = TcpStream::connect((url.host.as_str(), url.port)).await?;
            tcp.set_nodelay(true)?;
            Ok(tcp)
        }
    }
}

/// `host:port`, with an IPv6 host in brackets.
fn authority(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Splits `host[:port]` or `[v6][:port]`; `None` if malformed.
fn split_host_port(s: &str) -> Option<(&str, Option<&str>)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        host.parse::<Ipv6Addr>().ok()?;
        return match after {
            "" => Some((host, None)),
            _ => Some((host, Some(after.strip_prefix(':')?))),
        };
    }
    match s.split_once(':') {
        Some((h, p)) if !p.contains(':') => Some((h, Some(p))),
        Some(_) => None,
        None => Some((s, None)),
    }
}

/// Decodes `%XX` escapes; `None` for a bad escape or a result that is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The URL with any password replaced by `***`, for error messages.
///
/// Whatever the password holds (`/`, `@`, `:`, `%2F` …), none of it is kept: the user info is
/// everything before the last `@` of the whole URL (a password may hold an unescaped `/` or
/// `@`, so neither the first `/` nor the first `@` bounds it), and everything in it after its
/// first `:` is replaced. This may hide more than the password of a malformed URL, never less.
fn redact(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (Some(s), r),
        None => (None, url),
    };
    let rest = match rest.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => rest.to_owned(),
        },
        None => rest.to_owned(),
    };
    match scheme {
        Some(s) => format!("{s}://{rest}"),
        None => rest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%40b%3Ac").as_deref(), Some("a@b:c"));
        assert_eq!(percent_decode("plain").as_deref(), Some("plain"));
        assert_eq!(percent_decode("bad%4"), None);
        assert_eq!(percent_decode("bad%zz"), None);
        assert_eq!(percent_decode("%ff"), None);
    }

    #[test]
    fn redaction() {
        assert_eq!(
            redact("http://u:secret@h:1/x"),
            "http://u:***@h:1/x".to_owned()
        );
        assert_eq!(redact("u:secret@h"), "u:***@h");
        assert_eq!(redact("socks5://h:1"), "socks5://h:1");
        assert_eq!(redact("http://user@h"), "http://user@h");
    }

    #[test]
    fn passwords_are_never_printed() {
        for password in [
            "se/cret",
            "se@cret",
            "se:cret",
            "se%2Fcret",
            "a/b@c:d",
            "s3cr/t@x/",
            "/pw//",
            "@pw@",
        ] {
            for url in [
                format!("http://user:{password}@proxy.example:3128"),
                format!("socks5://user:{password}@[::1]:1080/"),
                format!("user:{password}@h"),
                format!("http://user:{password}@h/path"),
            ] {
                let shown = redact(&url);
                assert!(!shown.contains(password), "{url} shown as {shown}");
                assert!(shown.contains("user:***@"), "{url} shown as {shown}");
                // Parsed or refused, the password shows nowhere.
                let printed = match ProxyConfig::parse(&url) {
                    Ok(p) => format!("{p} {p:?}"),
                    Err(e) => format!("{e} {e:?}"),
                };
                assert!(!printed.contains(password), "{url}: {printed}");
            }
        }
    }

    #[test]
    fn cidr() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(in_cidr(ip("10.1.2.3"), ip("10.0.0.0"), 8));
        assert!(!in_cidr(ip("11.1.2.3"), ip("10.0.0.0"), 8));
        assert!(in_cidr(ip("1.2.3.4"), ip("0.0.0.0"), 0));
        assert!(in_cidr(ip("1.2.3.4"), ip("1.2.3.4"), 32));
        assert!(in_cidr(ip("fd00::1"), ip("fd00::"), 8));
        assert!(!in_cidr(ip("fe80::1"), ip("fd00::"), 8));
        assert!(in_cidr(ip("::ffff:10.0.0.1"), ip("10.0.0.0"), 8));
        assert!(!in_cidr(ip("10.0.0.1"), ip("fd00::"), 8));
        // Prefixes longer than the address match nothing (and do not underflow).
        assert!(!in_cidr(ip("::ffff:10.0.0.1"), ip("10.0.0.0"), 104));
        assert!(!in_cidr(ip("10.0.0.1"), ip("10.0.0.0"), 255));
        assert!(!in_cidr(ip("::1"), ip("::"), 200));
    }

    #[test]
    fn cidr_prefixes_are_checked_when_parsed() {
        for (entry, why) in [
            ("::ffff:10.0.0.0/104", "IPv4-mapped"),
            ("::ffff:1.2.3.4/96", "IPv4-mapped"),
            ("[::ffff:10.0.0.0/120]:80", "IPv4-mapped"),
            ("10.0.0.0/33", "at most /32"),
            ("10.0.0.0/255", "at most /32"),
            ("fd00::/129", "at most /128"),
            ("10.0.0.0/256", "not a number"),
            ("10.0.0.0/-1", "not a number"),
            ("10.0.0.0/", "not a number"),
            ("nothost/8", "IP address"),
            ("h:notaport", "port"),
            ("[::1", "`]`"),
        ] {
            let err = NoProxy::parse(&format!("ok.example, {entry}")).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(entry) && msg.contains(why), "{entry}: {msg}");
        }
        for entry in [
            "10.0.0.0/32",
            "10.0.0.0/0",
            "fd00::/128",
            "::/0",
            "[fd00::/8]:443",
        ] {
            assert!(NoProxy::parse(entry).is_ok(), "{entry}");
        }
    }

    proptest::proptest! {
        #[test]
        fn no_proxy_parsing_never_panics(entry in "[0-9a-f:./\\[\\]%]{0,40}", bits in 0u16..400) {
            let list = format!("{entry}, {entry}/{bits}");
            if let Ok(np) = NoProxy::parse(&list) {
                let _ = np.matches("::ffff:10.1.2.3", 80);
                let _ = np.matches("10.1.2.3", 80);
                let _ = np.matches("fd00::1", 80);
            }
        }
    }
}
