//! Client side of the handshake: building the Upgrade request and checking the server's answer
//! (RFC 6455 §4.1).
//!
//! A client builds a [`ClientRequest`] (from a [`WsUrl`] or a host and target), writes
//! [`ClientRequest::encode`] to the transport, then feeds the bytes it reads to
//! [`parse_response`] until it returns the [`ClientResponse`] and the length of the response
//! head. The bytes after the head are already WebSocket frames. The negotiated extension
//! parameters ([`ClientResponse::extensions`]) are checked further by the extension negotiation
//! ([`crate::deflate`]).

use super::headers::{has_token, token_list, values};
use super::request::utf8;
use super::{
    HandshakeError, MAX_HEADERS, WsUrl, accept_key, generate_key, own_headers, parse_error,
    push_header, push_user_header, sanitize_name, sanitize_value,
};

/// An opening handshake request, as a client sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRequest {
    host: String,
    target: String,
    origin: Option<String>,
    subprotocols: Vec<String>,
    extensions: Option<String>,
    headers: Vec<(String, String)>,
    key: String,
}

impl ClientRequest {
    /// A request for `target` (path and query, such as `/chat?room=1`; `/` when empty) with
    /// the `Host` header `host` (`host[:port]`), and a freshly generated key.
    pub fn new(host: impl Into<String>, target: impl Into<String>) -> Self {
        ClientRequest {
            host: host.into(),
            target: target.into(),
            origin: None,
            subprotocols: Vec::new(),
            extensions: None,
            headers: Vec::new(),
            key: generate_key(),
        }
    }

    /// A request for the resource `url` names ([`WsUrl::host_header`] and [`WsUrl::target`]).
    pub fn from_url(url: &WsUrl) -> Self {
        ClientRequest::new(url.host_header(), url.target.clone())
    }

    /// Sets the `Origin` header.
    pub fn origin(mut self, origin: impl Into<String>) -> Self {
        self.origin = Some(origin.into());
        self
    }

    /// Offers one more subprotocol (`Sec-WebSocket-Protocol`), after those already offered, in
    /// order of preference.
    pub fn subprotocol(mut self, protocol: impl Into<String>) -> Self {
        self.subprotocols.push(protocol.into());
        self
    }

    /// Sets the `Sec-WebSocket-Extensions` offer (such as the permessage-deflate offer string).
    pub fn extensions(mut self, offer: impl Into<String>) -> Self {
        self.extensions = Some(offer.into());
        self
    }

    /// Adds a header (for example `Authorization` or `Cookie`).
    ///
    /// The handshake headers have their own methods, and this one routes them there: `Origin`
    /// sets [`origin`](Self::origin), `Sec-WebSocket-Protocol` adds each comma-separated
    /// element as a [`subprotocol`](Self::subprotocol), `Sec-WebSocket-Extensions` sets
    /// [`extensions`](Self::extensions). The headers the request always writes itself (`Host`,
    /// `Upgrade`, `Connection`, `Sec-WebSocket-Key`, `Sec-WebSocket-Version`) are ignored.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let name = name.into();
        let value = value.into();
        let lower = sanitize_name(&name).to_ascii_lowercase();
        match lower.as_str() {
            "origin" => self.origin = Some(value),
            "sec-websocket-protocol" => self
                .subprotocols
                .extend(token_list(&value).map(str::to_owned)),
            "sec-websocket-extensions" => self.extensions = Some(value),
            "host"
            | "upgrade"
            | "connection"
            | "sec-websocket-key"
            | "sec-websocket-version"
            | "sec-websocket-accept" => {}
            _ => self.headers.push((name, value)),
        }
        self
    }

    /// The `Sec-WebSocket-Key` sent.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The `Host` header value.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The request-target (path and query).
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The `Origin` header, if set.
    pub fn origin_header(&self) -> Option<&str> {
        self.origin.as_deref()
    }

    /// The subprotocols offered, in order of preference.
    pub fn subprotocols(&self) -> &[String] {
        &self.subprotocols
    }

    /// The `Sec-WebSocket-Extensions` offer, if set.
    pub fn extensions_offer(&self) -> Option<&str> {
        self.extensions.as_deref()
    }

    /// The additional headers, in order.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The request head: `GET target HTTP/1.1`, `Host`, `Upgrade: websocket`,
    /// `Connection: Upgrade`, `Sec-WebSocket-Key`, `Sec-WebSocket-Version: 13`, then `Origin`,
    /// `Sec-WebSocket-Protocol` (the subprotocols comma-joined) and `Sec-WebSocket-Extensions`
    /// when set, then the additional headers.
    ///
    /// CR, LF and NUL are removed from every value, and whitespace and control characters from
    /// the target, so that nothing can break the head or inject headers.
    pub fn encode(&self) -> Vec<u8> {
        let target: String = self
            .target
            .chars()
            .filter(|c| !c.is_whitespace() && !c.is_control())
            .collect();
        let target = if target.is_empty() { "/" } else { &target };
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(b"GET ");
        out.extend_from_slice(target.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        push_header(&mut out, "Host", &sanitize_value(&self.host));
        push_header(&mut out, "Upgrade", "websocket");
        push_header(&mut out, "Connection", "Upgrade");
        push_header(&mut out, "Sec-WebSocket-Key", &self.key);
        push_header(&mut out, "Sec-WebSocket-Version", "13");
        if let Some(origin) = &self.origin {
            push_header(&mut out, "Origin", &sanitize_value(origin));
        }
        let protocols: Vec<String> = self
            .subprotocols
            .iter()
            .map(|p| sanitize_value(p))
            .filter(|p| !p.is_empty())
            .collect();
        if !protocols.is_empty() {
            push_header(&mut out, "Sec-WebSocket-Protocol", &protocols.join(", "));
        }
        if let Some(ext) = self
            .extensions
            .as_deref()
            .map(sanitize_value)
            .filter(|e| !e.is_empty())
        {
            push_header(&mut out, "Sec-WebSocket-Extensions", &ext);
        }
        for (name, value) in &self.headers {
            push_user_header(&mut out, name, value);
        }
        out.extend_from_slice(b"\r\n");
        out
    }

    /// Whether an extension offer was sent (an empty offer counts as none).
    fn offered_extensions(&self) -> bool {
        self.extensions
            .as_deref()
            .is_some_and(|e| !sanitize_value(e).is_empty())
    }
}

/// A server's accepted (`101`) handshake response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientResponse {
    /// The status code (always 101 in a response [`parse_response`] accepted).
    pub status: u16,
    /// The header lines in order, names as sent, values as raw bytes.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The subprotocol the server selected, one of those offered, if any.
    pub subprotocol: Option<String>,
    /// The `Sec-WebSocket-Extensions` values, one entry per header occurrence, raw (trimmed,
    /// empty ones dropped), for the extension negotiation to check against the offer.
    pub extensions: Vec<String>,
}

impl ClientResponse {
    /// The value of the first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        values(&self.headers, name).next()
    }
}

/// Parses and checks the server's response to `req` from the start of `buf`.
///
/// Returns `Ok(None)` while the head is incomplete (read more and call again with the whole
/// buffer), or the response and the number of bytes its head took: the bytes after that are
/// WebSocket frames.
///
/// # Errors
///
/// As [`parse_request`](super::parse_request) for the head itself
/// ([`HeadersTooLarge`](HandshakeError::HeadersTooLarge),
/// [`TooManyHeaders`](HandshakeError::TooManyHeaders),
/// [`Malformed`](HandshakeError::Malformed)); then, per RFC 6455 §4.1:
/// [`Rejected`](HandshakeError::Rejected) for a status other than 101;
/// [`MissingUpgradeResponse`](HandshakeError::MissingUpgradeResponse) without the `websocket`
/// token in `Upgrade`;
/// [`MissingConnectionUpgradeResponse`](HandshakeError::MissingConnectionUpgradeResponse)
/// without the `upgrade` token in `Connection`; [`InvalidAccept`](HandshakeError::InvalidAccept)
/// unless there is exactly one `Sec-WebSocket-Accept` and it matches the key;
/// [`MultipleSubprotocols`](HandshakeError::MultipleSubprotocols) or
/// [`UnrequestedSubprotocol`](HandshakeError::UnrequestedSubprotocol) unless the server selected
/// at most one of the offered subprotocols (compared exactly);
/// [`UnrequestedExtension`](HandshakeError::UnrequestedExtension) for extensions when none were
/// offered.
pub fn parse_response(
    buf: &[u8],
    req: &ClientRequest,
    max_header_bytes: usize,
) -> Result<Option<(ClientResponse, usize)>, HandshakeError> {
    let window = buf.get(..max_header_bytes).unwrap_or(buf);
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(window).map_err(parse_error)? {
        httparse::Status::Partial if buf.len() > max_header_bytes => {
            return Err(HandshakeError::HeadersTooLarge);
        }
        httparse::Status::Partial => return Ok(None),
        httparse::Status::Complete(len) => len,
    };
    let Some(status) = resp.code else {
        return Err(HandshakeError::Malformed("incomplete status line".into()));
    };
    if status != 101 {
        return Err(HandshakeError::Rejected {
            status,
            reason: resp.reason.unwrap_or_default().to_owned(),
        });
    }
    let headers = own_headers(resp.headers);

    if !has_token(values(&headers, "upgrade"), "websocket") {
        return Err(HandshakeError::MissingUpgradeResponse);
    }
    if !has_token(values(&headers, "connection"), "upgrade") {
        return Err(HandshakeError::MissingConnectionUpgradeResponse);
    }

    let accept = {
        let mut accepts = values(&headers, "sec-websocket-accept");
        (accepts.next(), accepts.next())
    };
    match accept {
        (Some(a), None) if a.trim_ascii() == accept_key(req.key.as_bytes()).as_bytes() => {}
        _ => return Err(HandshakeError::InvalidAccept),
    }

    let protocol = {
        let mut protocols = values(&headers, "sec-websocket-protocol");
        (protocols.next(), protocols.next())
    };
    let subprotocol = match protocol {
        (None, _) => None,
        (Some(_), Some(_)) => return Err(HandshakeError::MultipleSubprotocols),
        (Some(p), None) => {
            let p = utf8(p, "Sec-WebSocket-Protocol")?.trim();
            if p.contains(',') {
                return Err(HandshakeError::MultipleSubprotocols);
            }
            if !req
                .subprotocols
                .iter()
                .any(|offered| sanitize_value(offered) == p)
            {
                return Err(HandshakeError::UnrequestedSubprotocol(p.to_owned()));
            }
            Some(p.to_owned())
        }
    };

    let mut extensions = Vec::new();
    for v in values(&headers, "sec-websocket-extensions") {
        let v = utf8(v, "Sec-WebSocket-Extensions")?.trim();
        if !v.is_empty() {
            extensions.push(v.to_owned());
        }
    }
    if !extensions.is_empty() && !req.offered_extensions() {
        return Err(HandshakeError::UnrequestedExtension);
    }

    Ok(Some((
        ClientResponse {
            status,
            headers,
            subprotocol,
            extensions,
        },
        len,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handshake::{AcceptResponse, parse_request, validate_upgrade};
    use proptest::prelude::*;

    fn with_key(mut req: ClientRequest, key: &str) -> ClientRequest {
        req.key = key.to_owned();
        req
    }

    fn sample() -> ClientRequest {
        with_key(
            ClientRequest::new("server.example.com", "/chat"),
            "dGhlIHNhbXBsZSBub25jZQ==",
        )
    }

    const OK_101: &str = "HTTP/1.1 101 Switching Protocols\r\n\
        Upgrade: websocket\r\n\
        Connection: Upgrade\r\n\
        Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n";

    fn response(extra: &str) -> Vec<u8> {
        format!("{OK_101}{extra}\r\n").into_bytes()
    }

    #[test]
    fn encode() {
        let req = sample()
            .origin("http://example.com")
            .subprotocol("chat")
            .subprotocol("superchat")
            .extensions("permessage-deflate; client_max_window_bits")
            .header("Authorization", "Bearer x");
        assert_eq!(
            String::from_utf8(req.encode()).unwrap(),
            "GET /chat HTTP/1.1\r\n\
             Host: server.example.com\r\n\
             Upgrade: websocket\r\n\
             Connection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\
             Origin: http://example.com\r\n\
             Sec-WebSocket-Protocol: chat, superchat\r\n\
             Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\
             Authorization: Bearer x\r\n\
             \r\n"
        );
        assert_eq!(req.subprotocols(), ["chat", "superchat"]);
        assert_eq!(req.host(), "server.example.com");
        assert_eq!(req.target(), "/chat");
        assert_eq!(req.origin_header(), Some("http://example.com"));
        assert_eq!(
            req.extensions_offer(),
            Some("permessage-deflate; client_max_window_bits")
        );
        assert_eq!(req.headers().len(), 1);
    }

    #[test]
    fn header_routes_handshake_headers() {
        let req = sample()
            .header("origin", "o")
            .header("Sec-WebSocket-Protocol", "a, b")
            .header("sec-websocket-extensions", "x")
            .header("Sec-WebSocket-Key", "evil")
            .header("Host", "evil")
            .header("X-Other", "1");
        assert_eq!(req.origin_header(), Some("o"));
        assert_eq!(req.subprotocols(), ["a", "b"]);
        assert_eq!(req.extensions_offer(), Some("x"));
        assert_eq!(req.key(), "dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(req.host(), "server.example.com");
        assert_eq!(req.headers(), [("X-Other".to_owned(), "1".to_owned())]);
    }

    #[test]
    fn encode_resists_injection() {
        let req = ClientRequest::new("h\r\nX-Injected: 1", "/a b\r\nX-Injected: 2")
            .origin("o\r\nX-Injected: 3")
            .subprotocol("p\r\nX-Injected: 4")
            .header("X-A\r\nX-Injected", "v\r\nX-Injected: 5");
        let bytes = req.encode();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(!text.contains("\r\nX-Injected"), "{text}");
        let (parsed, len) = parse_request(&bytes, 8192).unwrap().unwrap();
        assert_eq!(len, bytes.len());
        assert!(validate_upgrade(&parsed).is_ok());
    }

    #[test]
    fn new_keys_are_fresh() {
        let a = ClientRequest::new("h", "/");
        let b = ClientRequest::new("h", "/");
        assert_ne!(a.key(), b.key());
        assert_eq!(a.key().len(), 24);
    }

    #[test]
    fn full_round_trip() {
        let req = ClientRequest::new("example.com:9000", "/chat?room=1")
            .origin("https://example.com")
            .subprotocol("v1.chat")
            .subprotocol("v2.chat")
            .extensions("permessage-deflate");
        let mut wire = req.encode();
        wire.extend_from_slice(b"early frame");

        let (http, len) = parse_request(&wire, 8192).unwrap().unwrap();
        assert_eq!(&wire[len..], b"early frame");
        assert_eq!(http.path(), "/chat");
        assert_eq!(http.query(), Some("room=1"));
        let ws = validate_upgrade(&http).unwrap();
        assert_eq!(ws.key, req.key());
        assert_eq!(ws.host, "example.com:9000");
        assert_eq!(ws.origin.as_deref(), Some("https://example.com"));
        assert_eq!(ws.subprotocols, ["v1.chat", "v2.chat"]);
        assert_eq!(ws.extensions, ["permessage-deflate"]);

        let mut answer = Vec::new();
        AcceptResponse::new(
            &ws.key,
            Some("v2.chat"),
            Some("permessage-deflate"),
            &[("X-Server".into(), "wsx".into())],
        )
        .encode(&mut answer);
        let head_len = answer.len();
        answer.extend_from_slice(b"\x81\x02hi");

        for i in 0..head_len {
            assert_eq!(
                parse_response(&answer[..i], &req, 8192),
                Ok(None),
                "prefix {i}"
            );
        }
        let (resp, len) = parse_response(&answer, &req, 8192).unwrap().unwrap();
        assert_eq!(len, head_len);
        assert_eq!(&answer[len..], b"\x81\x02hi");
        assert_eq!(resp.status, 101);
        assert_eq!(resp.subprotocol.as_deref(), Some("v2.chat"));
        assert_eq!(resp.extensions, ["permessage-deflate"]);
        assert_eq!(resp.header("x-server"), Some(&b"wsx"[..]));
    }

    #[test]
    fn minimal_ok() {
        let (resp, _) = parse_response(&response(""), &sample(), 8192)
            .unwrap()
            .unwrap();
        assert_eq!(resp.subprotocol, None);
        assert!(resp.extensions.is_empty());
        // Mixed case and lists.
        let text = "HTTP/1.1 101 Whatever\r\nupgrade: WebSocket\r\nCONNECTION: keep-alive , UPGRADE\r\n\
            sec-websocket-accept:   s3pPLMBiTxaQ9kYGzzhZRbK+xOo=  \r\n\r\n";
        assert!(
            parse_response(text.as_bytes(), &sample(), 8192)
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn non_101_is_rejected() {
        let resp = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(
            parse_response(resp, &sample(), 8192),
            Err(HandshakeError::Rejected {
                status: 403,
                reason: "Forbidden".into()
            })
        );
        let resp = b"HTTP/1.1 200 OK\r\n\r\n";
        assert!(matches!(
            parse_response(resp, &sample(), 8192),
            Err(HandshakeError::Rejected { status: 200, .. })
        ));
    }

    #[test]
    fn bad_accept() {
        let wrong = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
            Connection: Upgrade\r\nSec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n";
        assert_eq!(
            parse_response(wrong, &sample(), 8192),
            Err(HandshakeError::InvalidAccept)
        );
        let missing = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
            Connection: Upgrade\r\n\r\n";
        assert_eq!(
            parse_response(missing, &sample(), 8192),
            Err(HandshakeError::InvalidAccept)
        );
        let twice = response("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n");
        assert_eq!(
            parse_response(&twice, &sample(), 8192),
            Err(HandshakeError::InvalidAccept)
        );
        // Right accept for a different key.
        let other = ClientRequest::new("server.example.com", "/chat");
        assert_eq!(
            parse_response(&response(""), &other, 8192),
            Err(HandshakeError::InvalidAccept)
        );
    }

    #[test]
    fn missing_upgrade_or_connection() {
        let no_upgrade = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n\
            Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
        assert_eq!(
            parse_response(no_upgrade, &sample(), 8192),
            Err(HandshakeError::MissingUpgradeResponse)
        );
        let no_connection = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
            Connection: keep-alive\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
        assert_eq!(
            parse_response(no_connection, &sample(), 8192),
            Err(HandshakeError::MissingConnectionUpgradeResponse)
        );
    }

    #[test]
    fn subprotocol_checks() {
        let req = sample().subprotocol("chat").subprotocol("superchat");
        let ok = response("Sec-WebSocket-Protocol: superchat\r\n");
        let (resp, _) = parse_response(&ok, &req, 8192).unwrap().unwrap();
        assert_eq!(resp.subprotocol.as_deref(), Some("superchat"));

        let other = response("Sec-WebSocket-Protocol: mqtt\r\n");
        assert_eq!(
            parse_response(&other, &req, 8192),
            Err(HandshakeError::UnrequestedSubprotocol("mqtt".into()))
        );
        let case = response("Sec-WebSocket-Protocol: Chat\r\n");
        assert!(matches!(
            parse_response(&case, &req, 8192),
            Err(HandshakeError::UnrequestedSubprotocol(_))
        ));
        // None requested at all.
        let chat = response("Sec-WebSocket-Protocol: chat\r\n");
        assert_eq!(
            parse_response(&chat, &sample(), 8192),
            Err(HandshakeError::UnrequestedSubprotocol("chat".into()))
        );
        let two = response("Sec-WebSocket-Protocol: chat, superchat\r\n");
        assert_eq!(
            parse_response(&two, &req, 8192),
            Err(HandshakeError::MultipleSubprotocols)
        );
        let twice = response("Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: chat\r\n");
        assert_eq!(
            parse_response(&twice, &req, 8192),
            Err(HandshakeError::MultipleSubprotocols)
        );
    }

    #[test]
    fn extension_checks() {
        let ext = response("Sec-WebSocket-Extensions: permessage-deflate\r\n");
        assert_eq!(
            parse_response(&ext, &sample(), 8192),
            Err(HandshakeError::UnrequestedExtension)
        );
        let req = sample().extensions("permessage-deflate");
        let (resp, _) = parse_response(&ext, &req, 8192).unwrap().unwrap();
        assert_eq!(resp.extensions, ["permessage-deflate"]);
        // An empty header is no extension.
        let empty = response("Sec-WebSocket-Extensions: \r\n");
        assert!(parse_response(&empty, &sample(), 8192).unwrap().is_some());
    }

    #[test]
    fn response_limits() {
        let ok = response("");
        assert_eq!(
            parse_response(&ok, &sample(), ok.len() - 1),
            Err(HandshakeError::HeadersTooLarge)
        );
        assert!(parse_response(&ok, &sample(), ok.len()).unwrap().is_some());
        let mut many = String::from(OK_101);
        for i in 0..MAX_HEADERS {
            many.push_str(&format!("X-{i}: v\r\n"));
        }
        many.push_str("\r\n");
        assert_eq!(
            parse_response(many.as_bytes(), &sample(), 1 << 20),
            Err(HandshakeError::TooManyHeaders)
        );
        assert!(matches!(
            parse_response(b"SSH-2.0-OpenSSH\r\n", &sample(), 8192),
            Err(HandshakeError::Malformed(_))
        ));
    }

    proptest! {
        #[test]
        fn parse_response_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512), max in 0usize..600) {
            let req = sample().subprotocol("chat").extensions("permessage-deflate");
            if let Ok(Some((_, len))) = parse_response(&bytes, &req, max) {
                prop_assert!(len <= bytes.len() && len <= max);
            }
        }

        #[test]
        fn parse_response_never_panics_near_valid(
            cut in 0usize..200,
            flip in 0usize..200,
            byte in any::<u8>(),
        ) {
            let mut bytes = response("Sec-WebSocket-Protocol: chat\r\n");
            if let Some(b) = bytes.get_mut(flip) {
                *b = byte;
            }
            bytes.truncate(cut);
            let req = sample().subprotocol("chat");
            let _ = parse_response(&bytes, &req, 8192);
        }

        #[test]
        fn round_trip_any_subprotocol(p in "[!#$%&'*+.^_`|~0-9A-Za-z-]{1,20}") {
            let req = ClientRequest::new("h", "/").subprotocol(p.clone());
            let (http, _) = parse_request(&req.encode(), 8192).unwrap().unwrap();
            let ws = validate_upgrade(&http).unwrap();
            prop_assert_eq!(ws.subprotocols.as_slice(), std::slice::from_ref(&p));
            let mut answer = Vec::new();
            AcceptResponse::new(&ws.key, Some(&p), None, &[]).encode(&mut answer);
            let (resp, _) = parse_response(&answer, &req, 8192).unwrap().unwrap();
            prop_assert_eq!(resp.subprotocol, Some(p));
        }
    }
}
