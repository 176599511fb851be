//! `host[:port]` text, the one place that knows IPv6 literals go in brackets.
//!
//! Where it sits: every address the stack reads or writes as text goes through here — the
//! authority of a `ws://` URL ([`WsUrl::parse`](super::WsUrl::parse)) and its `Host` header, and
//! in `wsx` the proxy URLs, the `no_proxy` entries and the `CONNECT host:port` of a tunnel.
//! [`split_host_port`] takes the text apart (brackets removed), [`join_host_port`] puts it
//! back together (brackets added for IPv6), [`unbracket`] drops the brackets of a host given on
//! its own. What a host or a port may contain is for the caller to check: a URL, a proxy and a
//! `no_proxy` entry accept different things.

use std::fmt;

/// A `host[:port]` split by [`split_host_port`]: the host without brackets, and the port text
/// (unchecked) when there is a `:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostPort<'a> {
    /// The host: a name, an IPv4 address, or what was inside `[...]` (the brackets removed).
    /// A bare IPv6 address (`::1`, several colons, no brackets) is returned whole here, with
    /// no port: callers that require brackets check `host.contains(':') && !bracketed`.
    pub host: &'a str,
    /// The text after the `:` that follows the host, if any (possibly empty, as in `h:`).
    pub port: Option<&'a str>,
    /// Whether the host was written in brackets (`[::1]`).
    pub bracketed: bool,
}

/// Why [`split_host_port`] could not take a `host[:port]` apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HostPortError {
    /// A `[` without its `]`.
    UnclosedBracket,
    /// Something other than `:port` after the `]`.
    TextAfterBracket,
}

impl fmt::Display for HostPortError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HostPortError::UnclosedBracket => "unterminated IPv6 literal: missing ']'",
            HostPortError::TextAfterBracket => "unexpected characters after the IPv6 address",
        })
    }
}

impl std::error::Error for HostPortError {}

/// Splits `host`, `host:port`, `[v6]` or `[v6]:port`.
///
/// A host without brackets and with more than one `:` is a bare IPv6 address: returned whole,
/// without a port.
///
/// ```
/// use wsx_proto::handshake::{HostPort, split_host_port};
/// assert_eq!(
///     split_host_port("[::1]:9000"),
///     Ok(HostPort { host: "::1", port: Some("9000"), bracketed: true })
/// );
/// assert_eq!(split_host_port("example.com").map(|h| h.port), Ok(None));
/// assert_eq!(split_host_port("fd00::1").map(|h| (h.host, h.port)), Ok(("fd00::1", None)));
/// ```
///
/// # Errors
///
/// [`HostPortError`] for an unclosed `[` or text other than `:port` after the `]`.
pub fn split_host_port(text: &str) -> Result<HostPort<'_>, HostPortError> {
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or(HostPortError::UnclosedBracket)?;
        let port = match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or(HostPortError::TextAfterBracket)?,
            ),
        };
        return Ok(HostPort {
            host,
            port,
            bracketed: true,
        });
    }
    let (host, port) = match text.split_once(':') {
        Some((host, port)) if !port.contains(':') => (host, Some(port)),
        _ => (text, None),
    };
    Ok(HostPort {
        host,
        port,
        bracketed: false,
    })
}

/// `host:port`, with an IPv6 host (one holding a `:`) in brackets: `[::1]:9000`.
pub fn join_host_port(host: &str, port: u16) -> String {
    format!("{}:{port}", bracket(host))
}

/// The host as written in an authority: in brackets if it is an IPv6 address (holds a `:`)
/// and is not bracketed yet.
pub fn bracket(host: &str) -> std::borrow::Cow<'_, str> {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]").into()
    } else {
        host.into()
    }
}

/// The host without the brackets of an IPv6 literal: `[::1]` → `::1`; anything else as is.
pub fn unbracket(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(s: &str) -> (&str, Option<&str>) {
        let hp = split_host_port(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        (hp.host, hp.port)
    }

    #[test]
    fn forms() {
        assert_eq!(split("h"), ("h", None));
        assert_eq!(split("h:80"), ("h", Some("80")));
        assert_eq!(split("h:"), ("h", Some("")));
        assert_eq!(split("10.0.0.1:1"), ("10.0.0.1", Some("1")));
        assert_eq!(split("[::1]"), ("::1", None));
        assert_eq!(split("[::1]:9000"), ("::1", Some("9000")));
        assert_eq!(split("[fd00::/8]:443"), ("fd00::/8", Some("443")));
        assert_eq!(split("::1"), ("::1", None));
        assert_eq!(split("a::1"), ("a::1", None));
        assert!(!split_host_port("::1").unwrap().bracketed);
        assert_eq!(split_host_port("[::1"), Err(HostPortError::UnclosedBracket));
        assert_eq!(
            split_host_port("[::1]x"),
            Err(HostPortError::TextAfterBracket)
        );
    }

    #[test]
    fn join_and_brackets() {
        assert_eq!(join_host_port("h", 80), "h:80");
        assert_eq!(join_host_port("::1", 80), "[::1]:80");
        assert_eq!(join_host_port("[::1]", 80), "[::1]:80");
        assert_eq!(bracket("::1"), "[::1]");
        assert_eq!(bracket("h"), "h");
        assert_eq!(unbracket("[::1]"), "::1");
        assert_eq!(unbracket("::1"), "::1");
        assert_eq!(unbracket("h"), "h");
    }
}
