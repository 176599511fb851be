//! Client side, before the handshake: turning a `ws://` / `wss://` URL (RFC 6455 §3) into what
//! is needed to connect and to build the request.
//!
//! [`WsUrl::parse`] yields whether to use TLS, the host and port to connect to, and the
//! request-target; [`WsUrl::host_header`] gives the `Host` header, and
//! [`ClientRequest::from_url`](super::ClientRequest::from_url) the whole request.

use std::fmt;
use std::net::Ipv6Addr;

use super::HandshakeError;
use super::authority::{self, HostPort};

/// A parsed WebSocket URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WsUrl {
    /// `true` for `wss` (and `https`): the connection runs over TLS.
    pub secure: bool,
    /// The host: a lowercase DNS name, an IPv4 address, or an IPv6 address without its brackets.
    pub host: String,
    /// The port: as given, or 80 (`ws`) / 443 (`wss`).
    pub port: u16,
    /// The request-target: path and query, `/` when the URL has no path. Spaces, non-ASCII
    /// characters and other characters not allowed in a request-target are percent-encoded.
    pub target: String,
}

impl WsUrl {
    /// Parses a WebSocket URL.
    ///
    /// Accepts the schemes `ws` and `wss`, and `http` / `https` as their equivalents
    /// (case-insensitive); the default ports are 80 and 443. IPv6 literals are written in
    /// brackets (`ws://[::1]:9000/`). Surrounding whitespace is ignored.
    ///
    /// # Errors
    ///
    /// [`HandshakeError::InvalidUrl`] for another scheme, a fragment (`#`, forbidden by
    /// RFC 6455 §3), user information (`user:pass@`, which has no meaning here; send an
    /// `Authorization` header instead), an empty or invalid host (non-ASCII names must be given in
    /// their punycode `xn--` form), an invalid port or port 0, or control characters.
    pub fn parse(url: &str) -> Result<WsUrl, HandshakeError> {
        let url = url.trim();
        if url.chars().any(|c| c.is_control()) {
            return Err(invalid("control characters are not allowed"));
        }
        if url.contains('#') {
            return Err(invalid(
                "fragments (#...) are not allowed in WebSocket URLs (RFC 6455 §3)",
            ));
        }
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| invalid("missing scheme: expected ws:// or wss://"))?;
        let secure = match scheme.to_ascii_lowercase().as_str() {
            "ws" | "http" => false,
            "wss" | "https" => true,
            _ => {
                return Err(invalid(format!(
                    "unsupported scheme {scheme:?}: expected ws, wss, http or https"
                )));
            }
        };

        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, target) = rest.split_at(authority_end);
        if authority.contains('@') {
            return Err(invalid(
                "user information (user@) is not allowed; send an Authorization header instead",
            ));
        }
        if authority.is_empty() {
            return Err(invalid("empty host"));
        }

        let (host, port) = split_host_port(authority)?;
        let port = match port {
            None | Some("") => {
                if secure {
                    443
                } else {
                    80
                }
            }
            Some(p) => parse_port(p)?,
        };

        let target = encode_target(target);
        let target = if target.starts_with('/') {
            target
        } else {
            format!("/{target}")
        };

        Ok(WsUrl {
            secure,
            host,
            port,
            target,
        })
    }

    /// The `Host` header value: the host (bracketed for IPv6), followed by `:port` unless the
    /// port is the scheme's default.
    pub fn host_header(&self) -> String {
        if self.port == self.default_port() {
            authority::bracket(&self.host).into_owned()
        } else {
            authority::join_host_port(&self.host, self.port)
        }
    }

    /// The default port of the scheme: 443 when [`secure`](Self::secure), otherwise 80.
    pub fn default_port(&self) -> u16 {
        if self.secure { 443 } else { 80 }
    }
}

impl fmt::Display for WsUrl {
    /// The URL in normal form: `ws://host[:port]/target` (or `wss://`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.secure { "wss" } else { "ws" };
        write!(f, "{scheme}://{}{}", self.host_header(), self.target)
    }
}

impl std::str::FromStr for WsUrl {
    type Err = HandshakeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        WsUrl::parse(s)
    }
}

fn invalid(reason: impl Into<String>) -> HandshakeError {
    HandshakeError::InvalidUrl(reason.into())
}

/// Splits an authority (without userinfo) into a validated host and the port text, if any.
fn split_host_port(authority: &str) -> Result<(String, Option<&str>), HandshakeError> {
    let HostPort {
        host,
        port,
        bracketed,
    } = authority::split_host_port(authority).map_err(|e| invalid(e.to_string()))?;
    if bracketed {
        let addr: Ipv6Addr = host
            .parse()
            .map_err(|_| invalid(format!("invalid IPv6 address {host:?}")))?;
        return Ok((addr.to_string(), port));
    }
    if host.is_empty() || host.starts_with(':') {
        return Err(invalid("empty host"));
    }
    if host.contains(':') {
        return Err(invalid("IPv6 addresses must be written in brackets: [::1]"));
    }
    if !host.is_ascii() {
        return Err(invalid(
            "non-ASCII host names must be given in their punycode (xn--) form",
        ));
    }
    if let Some(c) = host
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~')))
    {
        return Err(invalid(format!("invalid character {c:?} in host")));
    }
    Ok((host.to_ascii_lowercase(), port))
}

fn parse_port(port: &str) -> Result<u16, HandshakeError> {
    if !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(format!("invalid port {port:?}")));
    }
    match port.parse::<u16>() {
        Ok(0) => Err(invalid("port 0 cannot be connected to")),
        Ok(p) => Ok(p),
        Err(_) => Err(invalid(format!("port {port} out of range"))),
    }
}

/// Percent-encodes the bytes not allowed in a request-target (spaces, non-ASCII, and
/// `"<>\^`{|}`); `%` is left alone, as the URL may already be percent-encoded.
fn encode_target(target: &str) -> String {
    let mut out = String::with_capacity(target.len());
    for &b in target.as_bytes() {
        if b > 0x20 && b < 0x7f && !b"\"<>\\^`{|}".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(url: &str) -> WsUrl {
        WsUrl::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"))
    }

    fn err(url: &str) -> String {
        match WsUrl::parse(url) {
            Err(HandshakeError::InvalidUrl(reason)) => reason,
            other => panic!("{url}: expected InvalidUrl, got {other:?}"),
        }
    }

    #[test]
    fn basic() {
        let u = ok("ws://example.com/chat?room=1");
        assert_eq!(
            u,
            WsUrl {
                secure: false,
                host: "example.com".into(),
                port: 80,
                target: "/chat?room=1".into()
            }
        );
        assert_eq!(u.host_header(), "example.com");
        assert_eq!(u.to_string(), "ws://example.com/chat?room=1");
    }

    #[test]
    fn schemes_and_default_ports() {
        let u = ok("wss://Example.COM");
        assert!(u.secure);
        assert_eq!(u.port, 443);
        assert_eq!(u.host, "example.com");
        assert_eq!(u.target, "/");
        let u = ok("http://h/");
        assert!(!u.secure);
        assert_eq!(u.port, 80);
        let u = ok("HTTPS://h");
        assert!(u.secure);
        assert_eq!(u.port, 443);
        let u = ok("WS://h");
        assert!(!u.secure);
    }

    #[test]
    fn ports() {
        let u = ok("ws://localhost:9001/x");
        assert_eq!(u.port, 9001);
        assert_eq!(u.host_header(), "localhost:9001");
        let u = ok("wss://h:443/");
        assert_eq!(u.host_header(), "h");
        let u = ok("ws://h:443/");
        assert_eq!(u.host_header(), "h:443");
        let u = ok("ws://h:/");
        assert_eq!(u.port, 80);
        let u = ok("ws://127.0.0.1:8080");
        assert_eq!(u.host, "127.0.0.1");
        assert_eq!(u.target, "/");
        assert!(err("ws://h:65536/").contains("out of range"));
        assert!(err("ws://h:0/").contains("port 0"));
        assert!(err("ws://h:+80/").contains("invalid port"));
        assert!(err("ws://h:http/").contains("invalid port"));
    }

    #[test]
    fn ipv6() {
        let u = ok("ws://[::1]:9000/socket");
        assert_eq!(u.host, "::1");
        assert_eq!(u.port, 9000);
        assert_eq!(u.host_header(), "[::1]:9000");
        assert_eq!(u.to_string(), "ws://[::1]:9000/socket");
        let u = ok("wss://[2001:DB8::1]");
        assert_eq!(u.host, "2001:db8::1");
        assert_eq!(u.host_header(), "[2001:db8::1]");
        assert!(err("ws://[::1/").contains("']'"));
        assert!(err("ws://[nope]/").contains("IPv6"));
        assert!(err("ws://[::1]x/").contains("after the IPv6"));
        assert!(err("ws://::1/").contains("empty host"));
        assert!(err("ws://a::1/").contains("brackets"));
    }

    #[test]
    fn query_without_path() {
        let u = ok("ws://h?x=1");
        assert_eq!(u.target, "/?x=1");
        assert_eq!(u.host, "h");
    }

    #[test]
    fn target_encoding() {
        let u = ok("ws://h/a b/é?q=<1>%20");
        assert_eq!(u.target, "/a%20b/%C3%A9?q=%3C1%3E%20");
    }

    #[test]
    fn rejections() {
        assert!(err("ws://h/chat#frag").contains("fragment"));
        assert!(err("ws://user:pass@h/").contains("user information"));
        assert!(err("ws://user@h/").contains("user information"));
        assert!(err("ws:///path").contains("empty host"));
        assert!(err("ws://").contains("empty host"));
        assert!(err("ws://:80/").contains("empty host"));
        assert!(err("ftp://h/").contains("unsupported scheme"));
        assert!(err("example.com/chat").contains("missing scheme"));
        assert!(err("ws://h\r\nX: y/").contains("control"));
        assert!(err("ws://bad host/").contains("invalid character"));
        assert!(err("ws://bücher.example/").contains("punycode"));
        assert!(err("ws://a%41/").contains("invalid character"));
    }

    #[test]
    fn whitespace_and_from_str() {
        let u: WsUrl = "  ws://h/x  ".parse().unwrap();
        assert_eq!(u.target, "/x");
    }
}
