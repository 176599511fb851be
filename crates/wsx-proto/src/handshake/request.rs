//! Server side, first step of the handshake: parsing the client's HTTP request and checking that
//! it is a valid WebSocket upgrade (RFC 6455 §4.2.1).
//!
//! Feed the bytes read so far to [`parse_request`] until it returns the [`HttpRequest`] and the
//! length of its head; then [`validate_upgrade`] extracts the [`WebSocketRequest`] (key,
//! offered subprotocols and extensions). The answer is built by [`super::response`].

use super::headers::{has_token, list_elements, token_list, values};
use super::{HandshakeError, MAX_HEADERS, is_valid_key, own_headers, parse_error};

/// A parsed HTTP/1.x request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// The method, such as `GET`.
    pub method: String,
    /// The request-target as sent: path and query (`/chat?room=1`).
    pub target: String,
    /// The HTTP minor version: `1` for HTTP/1.1, `0` for HTTP/1.0.
    pub version: u8,
    /// The header lines in order, names as sent, values as raw bytes.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl HttpRequest {
    /// The value of the first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.header_values(name).next()
    }

    /// The value of the first header named `name` (case-insensitive), if it is valid UTF-8.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The values of every header named `name` (case-insensitive), in order.
    pub fn header_values<'a, 'n>(
        &'a self,
        name: &'n str,
    ) -> impl Iterator<Item = &'a [u8]> + use<'a, 'n> {
        values(&self.headers, name)
    }

    /// The elements of the comma-separated lists in every header named `name`
    /// (case-insensitive), in order, as [`list_elements`](super::list_elements) splits them;
    /// values that are not UTF-8 are skipped. For `Sec-WebSocket-Protocol`, say:
    ///
    /// ```
    /// # use wsx_proto::handshake::parse_request;
    /// let head = b"GET / HTTP/1.1\r\nHost: h\r\nSec-WebSocket-Protocol: a, b\r\n\
    ///              Sec-WebSocket-Protocol: c\r\n\r\n";
    /// let (req, _) = parse_request(head, 4096)?.expect("a complete head");
    /// assert!(req.header_list("sec-websocket-protocol").eq(["a", "b", "c"]));
    /// # Ok::<(), wsx_proto::handshake::HandshakeError>(())
    /// ```
    pub fn header_list<'a, 'n>(
        &'a self,
        name: &'n str,
    ) -> impl Iterator<Item = &'a str> + use<'a, 'n> {
        self.header_values(name)
            .filter_map(|v| std::str::from_utf8(v).ok())
            .flat_map(list_elements)
    }

    /// The path: the request-target without its query.
    pub fn path(&self) -> &str {
        match self.target.split_once('?') {
            Some((path, _)) => path,
            None => &self.target,
        }
    }

    /// The query: what follows the first `?` of the request-target, if there is one.
    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, q)| q)
    }

    /// The value of the cookie `name` (case-sensitive) from the `Cookie` headers, if present.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.header_values("cookie")
            .filter_map(|v| std::str::from_utf8(v).ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.split_once('='))
            .find(|(n, _)| n.trim() == name)
            .map(|(_, v)| v.trim())
    }

    /// A loose check: whether the request asks for a WebSocket upgrade (its `Upgrade` header
    /// has the `websocket` token). For routers that also serve plain HTTP; a request that passes
    /// still has to pass [`validate_upgrade`].
    pub fn is_websocket_upgrade(&self) -> bool {
        has_token(self.header_values("upgrade"), "websocket")
    }
}

/// Parses an HTTP request head from the start of `buf`.
///
/// Returns `Ok(None)` while the head is incomplete (read more bytes and call again with the
/// whole buffer), or the request and the number of bytes its head took: the bytes after that
/// belong to the WebSocket stream.
///
/// # Errors
///
/// [`HandshakeError::HeadersTooLarge`] once `buf` holds more than `max_header_bytes` without a
/// complete head (so a complete head is never longer than `max_header_bytes`),
/// [`HandshakeError::TooManyHeaders`] for more than [`MAX_HEADERS`] header lines, and
/// [`HandshakeError::Malformed`] when the bytes are not an HTTP/1.x request head.
pub fn parse_request(
    buf: &[u8],
    max_header_bytes: usize,
) -> Result<Option<(HttpRequest, usize)>, HandshakeError> {
    let window = buf.get(..max_header_bytes).unwrap_or(buf);
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(window).map_err(parse_error)? {
        httparse::Status::Partial if buf.len() > max_header_bytes => {
            Err(HandshakeError::HeadersTooLarge)
        }
        httparse::Status::Partial => Ok(None),
        httparse::Status::Complete(len) => {
            let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version)
            else {
                return Err(HandshakeError::Malformed("incomplete request line".into()));
            };
            let request = HttpRequest {
                method: method.to_owned(),
                target: target.to_owned(),
                version,
                headers: own_headers(req.headers),
            };
            Ok(Some((request, len)))
        }
    }
}

/// What a valid WebSocket upgrade request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSocketRequest {
    /// The `Sec-WebSocket-Key`, as sent (pass it to
    /// [`AcceptResponse`](super::AcceptResponse)).
    pub key: String,
    /// The subprotocols offered in `Sec-WebSocket-Protocol`, in order: all occurrences of the
    /// header, split at commas, trimmed, empty elements dropped.
    pub subprotocols: Vec<String>,
    /// The `Sec-WebSocket-Extensions` values, one entry per header occurrence, raw (trimmed),
    /// for the extension negotiation to parse.
    pub extensions: Vec<String>,
    /// The `Origin` header, if present.
    pub origin: Option<String>,
    /// The `Host` header.
    pub host: String,
}

/// Checks that `req` is a valid WebSocket opening handshake (RFC 6455 §4.2.1).
///
/// The checks, in order, with the error of each (see [`HandshakeError::status`] for the HTTP
/// status): method `GET` ([`MethodNotGet`](HandshakeError::MethodNotGet), 405); HTTP/1.1
/// ([`NotHttp11`](HandshakeError::NotHttp11), 400); exactly one non-empty `Host`
/// ([`MissingHost`](HandshakeError::MissingHost), or
/// [`Malformed`](HandshakeError::Malformed) when repeated, 400); `Upgrade` with the token
/// `websocket` ([`NotUpgrade`](HandshakeError::NotUpgrade), 426); `Connection` with the token
/// `upgrade` ([`MissingConnectionUpgrade`](HandshakeError::MissingConnectionUpgrade), 400);
/// exactly one `Sec-WebSocket-Version: 13`
/// ([`UnsupportedVersion`](HandshakeError::UnsupportedVersion), 426); exactly one
/// `Sec-WebSocket-Key` that is base64 of 16 bytes ([`MissingKey`](HandshakeError::MissingKey),
/// [`InvalidKey`](HandshakeError::InvalidKey), 400). The version is checked before the key so
/// that a client speaking an older draft learns which version to use. Token comparisons are
/// case-insensitive over comma-separated lists in every occurrence of the header.
pub fn validate_upgrade(req: &HttpRequest) -> Result<WebSocketRequest, HandshakeError> {
    if req.method != "GET" {
        return Err(HandshakeError::MethodNotGet);
    }
    if req.version != 1 {
        return Err(HandshakeError::NotHttp11);
    }

    let mut hosts = req.header_values("host");
    let host = hosts.next().ok_or(HandshakeError::MissingHost)?;
    if hosts.next().is_some() {
        return Err(HandshakeError::Malformed(
            "more than one Host header".into(),
        ));
    }
    let host = utf8(host, "Host")?.trim();
    if host.is_empty() {
        return Err(HandshakeError::MissingHost);
    }

    if !has_token(req.header_values("upgrade"), "websocket") {
        return Err(HandshakeError::NotUpgrade);
    }
    if !has_token(req.header_values("connection"), "upgrade") {
        return Err(HandshakeError::MissingConnectionUpgrade);
    }

    let mut versions = req.header_values("sec-websocket-version");
    match (versions.next(), versions.next()) {
        (Some(v), None) if v.trim_ascii() == b"13" => {}
        _ => return Err(HandshakeError::UnsupportedVersion),
    }

    let mut keys = req.header_values("sec-websocket-key");
    let key = keys.next().ok_or(HandshakeError::MissingKey)?;
    if keys.next().is_some() {
        return Err(HandshakeError::InvalidKey);
    }
    let key = std::str::from_utf8(key)
        .map_err(|_| HandshakeError::InvalidKey)?
        .trim();
    if !is_valid_key(key) {
        return Err(HandshakeError::InvalidKey);
    }

    let mut subprotocols = Vec::new();
    for v in req.header_values("sec-websocket-protocol") {
        let v = utf8(v, "Sec-WebSocket-Protocol")?;
        subprotocols.extend(token_list(v).map(str::to_owned));
    }

    let mut extensions = Vec::new();
    for v in req.header_values("sec-websocket-extensions") {
        let v = utf8(v, "Sec-WebSocket-Extensions")?.trim();
        if !v.is_empty() {
            extensions.push(v.to_owned());
        }
    }

    let origin = match req.header("origin") {
        Some(o) => Some(utf8(o, "Origin")?.trim().to_owned()),
        None => None,
    };

    Ok(WebSocketRequest {
        key: key.to_owned(),
        subprotocols,
        extensions,
        origin,
        host: host.to_owned(),
    })
}

/// A header value as UTF-8, or [`HandshakeError::Malformed`] naming the header.
pub(crate) fn utf8<'a>(value: &'a [u8], name: &str) -> Result<&'a str, HandshakeError> {
    std::str::from_utf8(value)
        .map_err(|_| HandshakeError::Malformed(format!("{name} header is not valid UTF-8")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handshake::error_response;
    use proptest::prelude::*;

    const VALID: &[u8] = b"GET /chat?room=1&x=y HTTP/1.1\r\n\
        Host: server.example.com\r\n\
        Upgrade: websocket\r\n\
        Connection: Upgrade\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Origin: http://example.com\r\n\
        Sec-WebSocket-Protocol: chat, superchat\r\n\
        Sec-WebSocket-Protocol: v2.chat\r\n\
        Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\
        Sec-WebSocket-Extensions: x-other\r\n\
        Cookie: a=1; session=abc ; b=2\r\n\
        Sec-WebSocket-Version: 13\r\n\
        \r\n";

    fn parse(buf: &[u8]) -> HttpRequest {
        match parse_request(buf, 8192) {
            Ok(Some((req, _))) => req,
            other => panic!("unexpected {other:?}"),
        }
    }

    /// The valid request with the header line starting with `name:` removed (`None` keeps all)
    /// and `extra` lines added.
    fn request_with(method_line: &str, drop: &[&str], extra: &[&str]) -> HttpRequest {
        let text = std::str::from_utf8(VALID).unwrap();
        let mut lines: Vec<String> = text
            .split("\r\n")
            .skip(1)
            .filter(|l| !l.is_empty())
            .filter(|l| !drop.iter().any(|d| l.starts_with(&format!("{d}:"))))
            .map(str::to_owned)
            .collect();
        lines.extend(extra.iter().map(|s| s.to_string()));
        let head = format!("{method_line}\r\n{}\r\n\r\n", lines.join("\r\n"));
        parse(head.as_bytes())
    }

    fn rejected(req: &HttpRequest) -> HandshakeError {
        validate_upgrade(req).expect_err("should be rejected")
    }

    #[test]
    fn valid_request() {
        let (req, len) = parse_request(VALID, 8192).unwrap().unwrap();
        assert_eq!(len, VALID.len());
        assert_eq!(req.method, "GET");
        assert_eq!(req.version, 1);
        assert_eq!(req.target, "/chat?room=1&x=y");
        assert_eq!(req.path(), "/chat");
        assert_eq!(req.query(), Some("room=1&x=y"));
        assert_eq!(req.header("HOST"), Some(&b"server.example.com"[..]));
        assert_eq!(req.header_str("origin"), Some("http://example.com"));
        assert_eq!(req.header_values("sec-websocket-protocol").count(), 2);
        assert_eq!(req.cookie("session"), Some("abc"));
        assert_eq!(req.cookie("b"), Some("2"));
        assert_eq!(req.cookie("Session"), None);
        assert!(req.is_websocket_upgrade());

        let ws = validate_upgrade(&req).unwrap();
        assert_eq!(ws.key, "dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(ws.subprotocols, ["chat", "superchat", "v2.chat"]);
        assert_eq!(
            ws.extensions,
            ["permessage-deflate; client_max_window_bits", "x-other"]
        );
        assert_eq!(ws.origin.as_deref(), Some("http://example.com"));
        assert_eq!(ws.host, "server.example.com");
    }

    #[test]
    fn no_query() {
        let req = request_with("GET / HTTP/1.1", &[], &[]);
        assert_eq!(req.path(), "/");
        assert_eq!(req.query(), None);
        assert!(validate_upgrade(&req).is_ok());
    }

    #[test]
    fn trailing_bytes_are_not_consumed() {
        let mut buf = VALID.to_vec();
        buf.extend_from_slice(b"\x81\x85 frame bytes");
        let (_, len) = parse_request(&buf, 8192).unwrap().unwrap();
        assert_eq!(len, VALID.len());
        assert_eq!(&buf[len..], b"\x81\x85 frame bytes");
    }

    #[test]
    fn every_split_point_is_incomplete() {
        for i in 0..VALID.len() {
            assert_eq!(
                parse_request(&VALID[..i], 8192),
                Ok(None),
                "prefix of {i} bytes"
            );
        }
        assert!(parse_request(VALID, 8192).unwrap().is_some());
    }

    #[test]
    fn wrong_method_is_405() {
        let e = rejected(&request_with("POST /chat HTTP/1.1", &[], &[]));
        assert_eq!(e, HandshakeError::MethodNotGet);
        assert_eq!(e.status(), Some(405));
        let e = rejected(&request_with("get /chat HTTP/1.1", &[], &[]));
        assert_eq!(e, HandshakeError::MethodNotGet);
    }

    #[test]
    fn http10_is_400() {
        let e = rejected(&request_with("GET /chat HTTP/1.0", &[], &[]));
        assert_eq!(e, HandshakeError::NotHttp11);
        assert_eq!(e.status(), Some(400));
    }

    #[test]
    fn host_missing_empty_or_repeated_is_400() {
        let e = rejected(&request_with("GET / HTTP/1.1", &["Host"], &[]));
        assert_eq!(e, HandshakeError::MissingHost);
        assert_eq!(e.status(), Some(400));
        let e = rejected(&request_with("GET / HTTP/1.1", &["Host"], &["Host: "]));
        assert_eq!(e, HandshakeError::MissingHost);
        let e = rejected(&request_with("GET / HTTP/1.1", &[], &["Host: other"]));
        assert!(matches!(e, HandshakeError::Malformed(_)));
        assert_eq!(e.status(), Some(400));
    }

    #[test]
    fn missing_or_wrong_upgrade_is_426() {
        for extra in [&[][..], &["Upgrade: h2c"], &["Upgrade: websockets"]] {
            let e = rejected(&request_with("GET / HTTP/1.1", &["Upgrade"], extra));
            assert_eq!(e, HandshakeError::NotUpgrade);
            assert_eq!(e.status(), Some(426));
        }
        let resp = error_response(&HandshakeError::NotUpgrade);
        let text = String::from_utf8(resp).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 426 Upgrade Required\r\n"),
            "{text}"
        );
        assert!(text.contains("\r\nUpgrade: websocket\r\n"), "{text}");
    }

    #[test]
    fn missing_connection_upgrade_is_400() {
        for extra in [
            &[][..],
            &["Connection: keep-alive"],
            &["Connection: upgrades"],
        ] {
            let e = rejected(&request_with("GET / HTTP/1.1", &["Connection"], extra));
            assert_eq!(e, HandshakeError::MissingConnectionUpgrade);
            assert_eq!(e.status(), Some(400));
        }
    }

    #[test]
    fn token_lists_mixed_case_and_spaces() {
        let req = request_with(
            "GET / HTTP/1.1",
            &["Upgrade", "Connection"],
            &[
                "upgrade:   h2c ,  WebSocket  ",
                "CONNECTION: keep-alive",
                "connection:keep-alive,UPGRADE",
            ],
        );
        assert!(req.is_websocket_upgrade());
        assert!(validate_upgrade(&req).is_ok());
    }

    #[test]
    fn bad_keys_are_400() {
        let e = rejected(&request_with("GET / HTTP/1.1", &["Sec-WebSocket-Key"], &[]));
        assert_eq!(e, HandshakeError::MissingKey);
        assert_eq!(e.status(), Some(400));
        for bad in [
            "Sec-WebSocket-Key: not*base64*at*all*here==",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j", // 15 bytes
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZWVl", // 18 bytes
            "Sec-WebSocket-Key: ",
        ] {
            let e = rejected(&request_with(
                "GET / HTTP/1.1",
                &["Sec-WebSocket-Key"],
                &[bad],
            ));
            assert_eq!(e, HandshakeError::InvalidKey, "{bad}");
            assert_eq!(e.status(), Some(400));
        }
        let e = rejected(&request_with(
            "GET / HTTP/1.1",
            &[],
            &["Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA=="],
        ));
        assert_eq!(e, HandshakeError::InvalidKey);
    }

    #[test]
    fn version_8_is_426_with_version_header() {
        let e = rejected(&request_with(
            "GET / HTTP/1.1",
            &["Sec-WebSocket-Version"],
            &["Sec-WebSocket-Version: 8"],
        ));
        assert_eq!(e, HandshakeError::UnsupportedVersion);
        assert_eq!(e.status(), Some(426));
        let text = String::from_utf8(error_response(&e)).unwrap();
        assert!(text.starts_with("HTTP/1.1 426 "), "{text}");
        assert!(text.contains("\r\nSec-WebSocket-Version: 13\r\n"), "{text}");

        let e = rejected(&request_with(
            "GET / HTTP/1.1",
            &["Sec-WebSocket-Version"],
            &[],
        ));
        assert_eq!(e, HandshakeError::UnsupportedVersion);
        let e = rejected(&request_with(
            "GET / HTTP/1.1",
            &[],
            &["Sec-WebSocket-Version: 8"],
        ));
        assert_eq!(e, HandshakeError::UnsupportedVersion);
    }

    #[test]
    fn headers_over_the_limit_are_431() {
        // Incomplete and already over the limit.
        let mut big = b"GET / HTTP/1.1\r\nX-Big: ".to_vec();
        big.extend(std::iter::repeat_n(b'a', 200));
        let e = parse_request(&big, 100).unwrap_err();
        assert_eq!(e, HandshakeError::HeadersTooLarge);
        assert_eq!(e.status(), Some(431));
        // Complete, but the head is longer than the limit.
        assert_eq!(
            parse_request(VALID, VALID.len() - 1),
            Err(HandshakeError::HeadersTooLarge)
        );
        // Exactly at the limit is fine, even with more bytes after it.
        let mut buf = VALID.to_vec();
        buf.extend_from_slice(&[0; 64]);
        assert!(parse_request(&buf, VALID.len()).unwrap().is_some());
        // Under the limit and incomplete: need more.
        assert_eq!(parse_request(&big, 8192), Ok(None));
    }

    #[test]
    fn too_many_headers_are_431() {
        let mut head = String::from("GET / HTTP/1.1\r\n");
        for i in 0..=MAX_HEADERS {
            head.push_str(&format!("X-H{i}: v\r\n"));
        }
        head.push_str("\r\n");
        let e = parse_request(head.as_bytes(), 1 << 20).unwrap_err();
        assert_eq!(e, HandshakeError::TooManyHeaders);
        assert_eq!(e.status(), Some(431));
    }

    #[test]
    fn garbage_is_malformed() {
        let e = parse_request(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 8192).unwrap_err();
        assert!(matches!(e, HandshakeError::Malformed(_)), "{e:?}");
        assert_eq!(e.status(), Some(400));
    }

    #[test]
    fn non_utf8_subprotocol_is_malformed() {
        let buf = b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\
            Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
            Sec-WebSocket-Protocol: \xff\r\n\r\n";
        let req = parse(buf);
        assert!(matches!(
            validate_upgrade(&req),
            Err(HandshakeError::Malformed(_))
        ));
    }

    proptest! {
        #[test]
        fn parse_request_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512), max in 0usize..600) {
            if let Ok(Some((req, len))) = parse_request(&bytes, max) {
                prop_assert!(len <= bytes.len() && len <= max);
                let _ = validate_upgrade(&req);
                let _ = (req.path(), req.query(), req.cookie("a"), req.is_websocket_upgrade());
            }
        }

        #[test]
        fn parse_request_never_panics_near_valid(
            cut in 0usize..400,
            flip in 0usize..400,
            byte in any::<u8>(),
        ) {
            let mut bytes = VALID.to_vec();
            if let Some(b) = bytes.get_mut(flip) {
                *b = byte;
            }
            bytes.truncate(cut.max(1));
            if let Ok(Some((req, _))) = parse_request(&bytes, 8192) {
                let _ = validate_upgrade(&req);
            }
        }
    }
}
