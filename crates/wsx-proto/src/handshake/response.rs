//! Server side, last step of the handshake: the bytes to answer the client's request with.
//!
//! After [`validate_upgrade`](super::validate_upgrade) accepted a request, the server picks a
//! subprotocol and extension parameters, and [`AcceptResponse`] is the
//! `101 Switching Protocols` response (encoded as bytes, or turned into an HTTP library's
//! response); from the next byte on, the connection speaks WebSocket.
//! When parsing or validation failed, [`error_response`] produces the HTTP error to send before
//! closing the connection. [`http_response`] builds any other plain HTTP response (for routers
//! that serve ordinary requests on the same port).
//!
//! Header names and values supplied by the caller are sanitized: CR, LF and NUL are removed from
//! values and non-token characters from names, so that they cannot end the head or inject
//! headers.

use super::{
    HandshakeError, accept_key, push_header, push_user_header, sanitize_name, sanitize_value,
};

/// Headers that [`AcceptResponse`] carries itself and drops from the extra headers.
const ACCEPT_MANAGED: &[&str] = &[
    "upgrade",
    "connection",
    "sec-websocket-accept",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
    "content-length",
    "transfer-encoding",
];

/// The `101 Switching Protocols` response accepting a handshake, as a structure: a server on a
/// raw stream writes it with [`AcceptResponse::encode`]; one inside an HTTP library (hyper)
/// builds that library's response from [`AcceptResponse::headers`].
///
/// Every value is sanitized when it is built ([`AcceptResponse::new`]): CR, LF and NUL are
/// removed from values and non-token characters from names, so nothing can end the head or
/// inject headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptResponse {
    /// The `Sec-WebSocket-Accept` value, computed from the client's key.
    pub accept_key: String,
    /// The `Sec-WebSocket-Protocol` value: the subprotocol chosen, if any.
    pub subprotocol: Option<String>,
    /// The `Sec-WebSocket-Extensions` value: the extension negotiation's answer, if any.
    pub extensions: Option<String>,
    /// More headers (for example `Set-Cookie`), after the handshake headers.
    pub extra_headers: Vec<(String, String)>,
}

impl AcceptResponse {
    /// The response to a request with `key` (the client's `Sec-WebSocket-Key`, as in
    /// [`WebSocketRequest::key`](super::WebSocketRequest::key)), with `subprotocol` and
    /// `extensions` (the response string of the extension negotiation) when given, then
    /// `extra_headers`.
    ///
    /// Extra headers named like one of the handshake headers (`Upgrade`, `Connection`,
    /// `Sec-WebSocket-Accept`, `Sec-WebSocket-Protocol`, `Sec-WebSocket-Extensions`) or
    /// `Content-Length` / `Transfer-Encoding` are dropped (use the parameters instead), and so
    /// are those whose name is left empty by sanitizing.
    pub fn new(
        key: &str,
        subprotocol: Option<&str>,
        extensions: Option<&str>,
        extra_headers: &[(String, String)],
    ) -> Self {
        let present = |v: Option<&str>| v.map(sanitize_value).filter(|v| !v.is_empty());
        AcceptResponse {
            accept_key: accept_key(key.trim().as_bytes()),
            subprotocol: present(subprotocol),
            extensions: present(extensions),
            extra_headers: extra_headers
                .iter()
                .map(|(name, value)| (sanitize_name(name), sanitize_value(value)))
                .filter(|(name, _)| !name.is_empty() && !is_one_of(name, ACCEPT_MANAGED))
                .collect(),
        }
    }

    /// The status code: 101.
    pub fn status(&self) -> u16 {
        101
    }

    /// Every header of the response, in order: `Upgrade: websocket`, `Connection: Upgrade`,
    /// `Sec-WebSocket-Accept`, `Sec-WebSocket-Protocol` and `Sec-WebSocket-Extensions` when
    /// set, then the extra headers.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        [
            Some(("Upgrade", "websocket")),
            Some(("Connection", "Upgrade")),
            Some(("Sec-WebSocket-Accept", self.accept_key.as_str())),
            self.subprotocol
                .as_deref()
                .map(|p| ("Sec-WebSocket-Protocol", p)),
            self.extensions
                .as_deref()
                .map(|e| ("Sec-WebSocket-Extensions", e)),
        ]
        .into_iter()
        .flatten()
        .chain(
            self.extra_headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str())),
        )
    }

    /// Append the response as HTTP/1.1 bytes to `dst`: the status line, the headers and the
    /// empty line that ends the head.
    pub fn encode(&self, dst: &mut Vec<u8>) {
        dst.extend_from_slice(b"HTTP/1.1 101 Switching Protocols\r\n");
        for (name, value) in self.headers() {
            push_header(dst, name, value);
        }
        dst.extend_from_slice(b"\r\n");
    }
}

/// A complete plain HTTP/1.1 response.
///
/// The status line carries the standard reason phrase of `status` (empty for codes without
/// one; a `status` outside 100..=999 is replaced by 500). Then come `headers`, a
/// `Content-Length` computed from `body`, `Connection: close` unless `headers` has a
/// `Connection` header, and `body`.
///
/// `Content-Length` and `Transfer-Encoding` among `headers` are dropped (the length is always
/// computed). For 1xx, 204 and 304 responses, which cannot have a body, `body` is ignored and no
/// `Content-Length` is written. CR, LF and NUL are removed from header values.
pub fn http_response(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let status = if (100..=999).contains(&status) {
        status
    } else {
        500
    };
    let bodyless = (100..200).contains(&status) || status == 204 || status == 304;
    let mut out = Vec::with_capacity(128 + body.len());
    out.extend_from_slice(format!("HTTP/1.1 {status} {}\r\n", reason_phrase(status)).as_bytes());
    let mut has_connection = false;
    for (name, value) in headers {
        if is_one_of(name, &["content-length", "transfer-encoding"]) {
            continue;
        }
        has_connection |= name.trim().eq_ignore_ascii_case("connection");
        push_user_header(&mut out, name, value);
    }
    if !bodyless {
        push_header(&mut out, "Content-Length", &body.len().to_string());
    }
    if !has_connection {
        push_header(&mut out, "Connection", "close");
    }
    out.extend_from_slice(b"\r\n");
    if !bodyless {
        out.extend_from_slice(body);
    }
    out
}

/// The response to a failed handshake, to send before closing the connection.
///
/// The status is [`HandshakeError::status`] (400 for the client-side variants, which have
/// none), the body is the error's `Display` as `text/plain`, and the connection is closed
/// (`Connection: close`). The statuses that call for more headers get them:
/// 426 for [`UnsupportedVersion`](HandshakeError::UnsupportedVersion) carries
/// `Sec-WebSocket-Version: 13` (RFC 6455 §4.4), 426 for
/// [`NotUpgrade`](HandshakeError::NotUpgrade) carries `Upgrade: websocket` with
/// `Connection: Upgrade, close` (RFC 9110 §15.5.22), and 405 carries `Allow: GET`.
pub fn error_response(err: &HandshakeError) -> Vec<u8> {
    let status = err.status().unwrap_or(400);
    let body = format!("{err}\n");
    let mut headers: Vec<(&str, &str)> = vec![("Content-Type", "text/plain; charset=utf-8")];
    match err {
        HandshakeError::UnsupportedVersion => headers.push(("Sec-WebSocket-Version", "13")),
        HandshakeError::NotUpgrade => {
            headers.push(("Upgrade", "websocket"));
            headers.push(("Connection", "Upgrade, close"));
        }
        HandshakeError::MethodNotGet => headers.push(("Allow", "GET")),
        _ => {}
    }
    http_response(status, &headers, body.as_bytes())
}

/// The standard reason phrase of an HTTP status code, or `""` for codes without one.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

/// Whether `name` (trimmed) is one of the lowercase `names`, case-insensitively.
fn is_one_of(name: &str, names: &[&str]) -> bool {
    let name = name.trim();
    names.iter().any(|n| name.eq_ignore_ascii_case(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head_and_body(resp: &[u8]) -> (String, Vec<u8>) {
        let text = String::from_utf8_lossy(resp);
        let (head, _) = text.split_once("\r\n\r\n").expect("complete head");
        let body = resp[head.len() + 4..].to_vec();
        (head.to_owned(), body)
    }

    #[test]
    fn accept_response() {
        let mut out = b"previous".to_vec();
        AcceptResponse::new(
            "dGhlIHNhbXBsZSBub25jZQ==",
            Some("chat"),
            Some("permessage-deflate"),
            &[
                ("Set-Cookie".into(), "a=b".into()),
                ("connection".into(), "close".into()),
            ],
        )
        .encode(&mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "previousHTTP/1.1 101 Switching Protocols\r\n\
             Upgrade: websocket\r\n\
             Connection: Upgrade\r\n\
             Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
             Sec-WebSocket-Protocol: chat\r\n\
             Sec-WebSocket-Extensions: permessage-deflate\r\n\
             Set-Cookie: a=b\r\n\
             \r\n"
        );
    }

    #[test]
    fn accept_response_fields_and_headers() {
        let resp = AcceptResponse::new(
            " dGhlIHNhbXBsZSBub25jZQ== ",
            Some("chat\r\n"),
            Some(""),
            &[
                ("Set-Cookie".into(), "a=b\r\nX: y".into()),
                ("Sec-WebSocket-Accept".into(), "forged".into()),
                ("\r\n".into(), "nameless".into()),
            ],
        );
        assert_eq!(resp.status(), 101);
        assert_eq!(resp.accept_key, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(resp.subprotocol.as_deref(), Some("chat"));
        assert_eq!(resp.extensions, None);
        let headers: Vec<_> = resp.headers().collect();
        assert_eq!(
            headers,
            [
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
                ("Sec-WebSocket-Protocol", "chat"),
                ("Set-Cookie", "a=bX: y"),
            ]
        );
        // The bytes are the same headers, in the same order.
        let mut out = Vec::new();
        resp.encode(&mut out);
        let mut parsed = [httparse::EMPTY_HEADER; 8];
        let mut parsed = httparse::Response::new(&mut parsed);
        assert_eq!(
            parsed.parse(&out),
            Ok(httparse::Status::Complete(out.len()))
        );
        assert_eq!(parsed.code, Some(101));
        let from_bytes: Vec<_> = parsed
            .headers
            .iter()
            .map(|h| (h.name, std::str::from_utf8(h.value).unwrap()))
            .collect();
        assert_eq!(from_bytes, headers);
    }

    #[test]
    fn accept_response_minimal() {
        let mut out = Vec::new();
        AcceptResponse::new("dGhlIHNhbXBsZSBub25jZQ==", None, None, &[]).encode(&mut out);
        let mut headers = [httparse::EMPTY_HEADER; 8];
        let mut resp = httparse::Response::new(&mut headers);
        assert_eq!(resp.parse(&out), Ok(httparse::Status::Complete(out.len())));
        assert_eq!(resp.code, Some(101));
        assert_eq!(resp.headers.len(), 3);
    }

    #[test]
    fn no_crlf_injection() {
        let mut out = Vec::new();
        AcceptResponse::new(
            "dGhlIHNhbXBsZSBub25jZQ==",
            Some("chat\r\nX-Injected: 1"),
            Some("x\n\nbody"),
            &[("X-A\r\nX-Injected".into(), "v\r\nX-Injected: 2".into())],
        )
        .encode(&mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains("\r\nX-Injected"), "{text}");
        assert_eq!(text.matches("\r\n\r\n").count(), 1);
        assert!(text.ends_with("\r\n\r\n"));

        let resp = http_response(200, &[("X-A", "1\r\n\r\n<html>")], b"ok");
        let text = String::from_utf8(resp).unwrap();
        assert_eq!(text.matches("\r\n\r\n").count(), 1, "{text}");
    }

    #[test]
    fn plain_response() {
        let resp = http_response(404, &[("Content-Type", "text/plain")], b"nope");
        assert_eq!(
            String::from_utf8(resp).unwrap(),
            "HTTP/1.1 404 Not Found\r\n\
             Content-Type: text/plain\r\n\
             Content-Length: 4\r\n\
             Connection: close\r\n\
             \r\n\
             nope"
        );
        let resp = http_response(
            200,
            &[("connection", "keep-alive"), ("Content-Length", "99")],
            b"",
        );
        assert_eq!(
            String::from_utf8(resp).unwrap(),
            "HTTP/1.1 200 OK\r\nconnection: keep-alive\r\nContent-Length: 0\r\n\r\n"
        );
        let resp = http_response(204, &[], b"ignored");
        assert_eq!(
            String::from_utf8(resp).unwrap(),
            "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"
        );
        let resp = http_response(7, &[], b"");
        assert!(resp.starts_with(b"HTTP/1.1 500 Internal Server Error\r\n"));
        let resp = http_response(599, &[], b"");
        assert!(resp.starts_with(b"HTTP/1.1 599 \r\n"));
    }

    #[test]
    fn error_responses() {
        let cases = [
            (HandshakeError::Malformed("bad".into()), 400, None),
            (HandshakeError::MethodNotGet, 405, Some("Allow: GET")),
            (HandshakeError::NotHttp11, 400, None),
            (HandshakeError::MissingHost, 400, None),
            (HandshakeError::NotUpgrade, 426, Some("Upgrade: websocket")),
            (HandshakeError::MissingConnectionUpgrade, 400, None),
            (HandshakeError::MissingKey, 400, None),
            (HandshakeError::InvalidKey, 400, None),
            (
                HandshakeError::UnsupportedVersion,
                426,
                Some("Sec-WebSocket-Version: 13"),
            ),
            (HandshakeError::HeadersTooLarge, 431, None),
            (HandshakeError::TooManyHeaders, 431, None),
            (HandshakeError::InvalidAccept, 400, None),
        ];
        for (err, status, header) in cases {
            let resp = error_response(&err);
            let (head, body) = head_and_body(&resp);
            assert!(
                head.starts_with(&format!("HTTP/1.1 {status} {}\r\n", reason_phrase(status))),
                "{head}"
            );
            assert!(head.contains("\r\nContent-Type: text/plain"), "{head}");
            assert!(
                head.contains("\r\nConnection: ") && head.contains("close"),
                "{head}"
            );
            assert!(
                head.contains(&format!("\r\nContent-Length: {}", body.len())),
                "{head}"
            );
            assert_eq!(body, format!("{err}\n").into_bytes());
            if let Some(h) = header {
                assert!(head.contains(&format!("\r\n{h}")), "{head}");
            }
        }
    }
}
