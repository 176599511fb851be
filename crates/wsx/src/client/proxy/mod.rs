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
//! The pieces: this file parses proxy URLs and picks the proxy; `http_connect.rs` and
//! `socks5.rs` ask a proxy for the tunnel; `no_proxy.rs` decides which hosts bypass it. Host and
//! port text (IPv6 brackets included) goes through `wsx_proto::handshake::split_host_port` and
//! `join_host_port`, as the URLs do.

use std::fmt;
use std::io;
use std::net::Ipv6Addr;
use std::str::FromStr;

use tokio::net::TcpStream;
use wsx_proto::handshake::{HostPort, WsUrl, join_host_port, split_host_port, unbracket};

use crate::error::{Error, Result};

mod http_connect;
mod no_proxy;
mod socks5;

pub use no_proxy::NoProxy;

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
/// use wsx::{ProxyConfig, ProxyScheme};
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
        let host = unbracket(&host);
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
        let (host, port) = match split_host_port(hostport) {
            Ok(HostPort {
                host,
                port,
                bracketed: true,
            }) if host.parse::<Ipv6Addr>().is_ok() => (host, port),
            Ok(HostPort {
                host,
                port,
                bracketed: false,
            }) if !host.contains(':') => (host, port),
            _ => return Err(bad("bad host or port")),
        };
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
        let host = unbracket(host);
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
        join_host_port(&self.host, self.port)
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
            tracing::debug!(proxy = %p, target = %join_host_port(&url.host, url.port), "connecting through proxy");
            p.connect(&url.host, url.port).await
        }
        None => {
            let tcp = TcpStream::connect((url.host.as_str(), url.port)).await?;
            tcp.set_nodelay(true)?;
            Ok(tcp)
        }
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
}
