//! Fuzz target: the server side of the opening handshake, `wsx_proto::handshake::parse_request`
//! and `validate_upgrade`, on raw bytes, on requests assembled from fuzzer-chosen parts, and on
//! what `ClientRequest::encode` produces (a round trip through the server and back through
//! `AcceptResponse` and `parse_response`).
//!
//! Invariants checked, besides "no panic":
//! - a complete head is no longer than the input nor than `max_header_bytes`; every shorter
//!   prefix of it is "incomplete" (so reading in small pieces never rejects a request that would
//!   parse whole), and the bytes after it change nothing;
//! - every error a server can meet has an HTTP status and `error_response` builds a response
//!   with it;
//! - a request that passes `validate_upgrade` has a valid key, a non-empty host and the
//!   `websocket` upgrade token;
//! - round trip: whatever (clean) values a client puts into a `ClientRequest`, the server parses
//!   and accepts its request with the same key, host, origin and subprotocols, and the client
//!   accepts the server's 101 answer (with any extra headers the server adds).
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use wsx_proto::deflate::DeflateConfig;
use wsx_proto::handshake::{
    AcceptResponse, ClientRequest, DEFAULT_MAX_HEADER_BYTES, HttpRequest, accept_key,
    error_response, parse_request, parse_response, validate_upgrade,
};

#[derive(Arbitrary, Debug)]
enum Input {
    Raw {
        max: u16,
        bytes: Vec<u8>,
    },
    /// A request line and headers from parts; with `base` all set and nothing odd in the
    /// extras, a valid upgrade.
    Parts {
        method: Option<String>,
        target: String,
        minor: u8,
        base: u8,
        key: Option<String>,
        extra: Vec<(String, Vec<u8>)>,
        tail: Vec<u8>,
    },
    RoundTrip {
        host: String,
        target: String,
        origin: Option<String>,
        protocols: Vec<String>,
        extensions: Option<String>,
        headers: Vec<(String, String)>,
        response_headers: Vec<(String, String)>,
        leftover: Vec<u8>,
    },
}

/// Header values httparse accepts once `sanitize_value` removed CR, LF and NUL: no other
/// control characters but tab. Known (reported, see crates/wsx-proto/tests/fuzz_regressions.rs):
/// the encoders let the other control characters through, and then our own parser rejects
/// the head.
fn clean(s: &str) -> bool {
    !s.chars()
        .any(|c| c.is_control() && c != '\t' && !matches!(c, '\r' | '\n' | '\0'))
}

/// A header name as the library writes it: non-token characters removed, lowercased.
fn written_name(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(*c))
        .collect::<String>()
        .to_ascii_lowercase()
}

/// Known (reported, see crates/wsx-proto/tests/fuzz_regressions.rs): a user header whose name
/// only becomes one of the handshake's own headers once sanitized (`"Ho st"`) is written as a
/// second copy of it, which breaks the handshake.
fn collides(name: &str, managed: &[&str]) -> bool {
    let raw = name.trim().to_ascii_lowercase();
    let written = written_name(name);
    raw != written && managed.contains(&written.as_str())
}

const REQUEST_MANAGED: &[&str] = &[
    "host",
    "upgrade",
    "connection",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-accept",
    "origin",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
];

const RESPONSE_MANAGED: &[&str] = &[
    "upgrade",
    "connection",
    "sec-websocket-accept",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
    "content-length",
    "transfer-encoding",
];

/// `sanitize_value` as documented: CR, LF and NUL removed, then trimmed.
fn sanitize(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, '\r' | '\n' | '\0'))
        .collect::<String>()
        .trim()
        .to_owned()
}

fn check_request(bytes: &[u8], max: usize) {
    let result = parse_request(bytes, max);
    match &result {
        Ok(Some((req, len))) => {
            let len = *len;
            assert!(
                len <= bytes.len() && len <= max,
                "head of {len} bytes, max {max}"
            );
            assert_eq!(
                parse_request(&bytes[..len], max),
                result,
                "bytes after the head matter"
            );
            let step = if len > 2048 { len / 512 } else { 1 };
            for cut in (0..len).step_by(step) {
                assert_eq!(
                    parse_request(&bytes[..cut], max),
                    Ok(None),
                    "a prefix of {cut} bytes of a {len}-byte head is not incomplete"
                );
            }
            check_valid(req);
        }
        Ok(None) => assert!(bytes.len() <= max),
        Err(e) => {
            let Some(status) = e.status() else {
                panic!("server-side error {e:?} has no status");
            };
            let response = error_response(e);
            assert!(response.starts_with(format!("HTTP/1.1 {status}").as_bytes()));
        }
    }
}

fn check_valid(req: &HttpRequest) {
    let _ = (
        req.path(),
        req.query(),
        req.cookie("session"),
        req.header_str("host"),
    );
    match validate_upgrade(req) {
        Ok(ws) => {
            assert!(req.is_websocket_upgrade());
            assert!(!ws.host.is_empty());
            assert_eq!(ws.key.len(), 24);
            assert_eq!(accept_key(ws.key.as_bytes()).len(), 28);
            let answer = DeflateConfig::default().server_accept(&ws.extensions);
            let mut out = Vec::new();
            AcceptResponse::new(
                &ws.key,
                ws.subprotocols.first().map(String::as_str),
                answer.as_ref().map(|(_, s)| s.as_str()),
                &[],
            )
            .encode(&mut out);
            assert!(out.starts_with(b"HTTP/1.1 101 ") && out.ends_with(b"\r\n\r\n"));
        }
        Err(e) => {
            let Some(status) = e.status() else {
                panic!("validate_upgrade error {e:?} has no status");
            };
            assert!(error_response(&e).starts_with(format!("HTTP/1.1 {status}").as_bytes()));
        }
    }
}

fn parts(
    method: &Option<String>,
    target: &str,
    minor: u8,
    base: u8,
    key: &Option<String>,
    extra: &[(String, Vec<u8>)],
    tail: &[u8],
) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(method.as_deref().unwrap_or("GET").as_bytes());
    out.push(b' ');
    out.extend_from_slice(if target.is_empty() { "/" } else { target }.as_bytes());
    out.extend_from_slice(format!(" HTTP/1.{}\r\n", minor % 3).as_bytes());
    let key = key.as_deref().unwrap_or("dGhlIHNhbXBsZSBub25jZQ==");
    let base_headers: [(&str, &str); 6] = [
        ("Host", "example.com"),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", key),
        ("Sec-WebSocket-Version", "13"),
        (
            "Sec-WebSocket-Extensions",
            "permessage-deflate; client_max_window_bits",
        ),
    ];
    for (i, (name, value)) in base_headers.iter().enumerate() {
        if base & (1 << i) == 0 {
            out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
    }
    for (name, value) in extra.iter().take(70) {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(tail);
    out
}

#[allow(clippy::too_many_arguments)]
fn round_trip(
    host: &str,
    target: &str,
    origin: &Option<String>,
    protocols: &[String],
    extensions: &Option<String>,
    headers: &[(String, String)],
    response_headers: &[(String, String)],
    leftover: &[u8],
) {
    let mut client = ClientRequest::new(host, target);
    if let Some(o) = origin {
        client = client.origin(o.as_str());
    }
    for p in protocols.iter().take(8) {
        client = client.subprotocol(p.as_str());
    }
    if let Some(e) = extensions {
        client = client.extensions(e.as_str());
    }
    for (n, v) in headers.iter().take(8) {
        client = client.header(n.as_str(), v.as_str());
    }
    let mut bytes = client.encode();
    let head_len = bytes.len();
    bytes.extend_from_slice(leftover);
    let result = parse_request(&bytes, DEFAULT_MAX_HEADER_BYTES);
    check_request(&bytes, DEFAULT_MAX_HEADER_BYTES);

    // From here on, only what a client can be expected to get right: clean values,
    // subprotocols without commas, a head that fits.
    let all_clean = clean(host)
        && origin.as_deref().is_none_or(clean)
        // Known (reported): a subprotocol with CR, LF or NUL is sent sanitized but compared
        // unsanitized when the server selects it (UnrequestedSubprotocol); see
        // crates/wsx-proto/tests/fuzz_regressions.rs.
        && client
            .subprotocols()
            .iter()
            .all(|p| clean(p) && !p.contains([',', '\r', '\n', '\0']))
        && extensions.as_deref().is_none_or(clean)
        && headers
            .iter()
            .all(|(n, v)| clean(n) && clean(v) && !collides(n, REQUEST_MANAGED))
        && response_headers
            .iter()
            .all(|(n, v)| clean(n) && clean(v) && !collides(n, RESPONSE_MANAGED))
        && !sanitize(host).is_empty()
        && head_len + 1024 < DEFAULT_MAX_HEADER_BYTES;
    if !all_clean {
        return;
    }
    let (req, len) = match result {
        Ok(Some(r)) => r,
        other => panic!("the server cannot parse what ClientRequest::encode made: {other:?}"),
    };
    assert_eq!(len, head_len, "head length");
    let ws = match validate_upgrade(&req) {
        Ok(ws) => ws,
        Err(e) => panic!("the server rejects what ClientRequest::encode made: {e:?}"),
    };
    assert_eq!(ws.key, client.key());
    assert_eq!(ws.host, sanitize(client.host()));
    let offered: Vec<String> = client
        .subprotocols()
        .iter()
        .map(|p| sanitize(p))
        .filter(|p| !p.is_empty())
        .collect();
    assert_eq!(ws.subprotocols, offered, "subprotocols");
    if let Some(o) = client.origin_header() {
        assert_eq!(ws.origin.as_deref(), Some(sanitize(o).as_str()), "origin");
    }

    let chosen = ws.subprotocols.first().cloned();
    let answer = DeflateConfig::default()
        .server_accept(&ws.extensions)
        .map(|(_, s)| s);
    let mut response = Vec::new();
    // At most 16 extra headers: with more, the response may pass the 64 header lines a
    // client accepts (TooManyHeaders, as documented).
    let response_headers = &response_headers[..response_headers.len().min(16)];
    AcceptResponse::new(
        &ws.key,
        chosen.as_deref(),
        answer.as_deref(),
        response_headers,
    )
    .encode(&mut response);
    let resp_len = response.len();
    response.extend_from_slice(leftover);
    match parse_response(&response, &client, DEFAULT_MAX_HEADER_BYTES) {
        Ok(Some((r, n))) => {
            assert_eq!(n, resp_len);
            assert_eq!(r.status, 101);
            assert_eq!(r.subprotocol, chosen, "subprotocol");
            assert_eq!(
                r.extensions,
                answer.into_iter().collect::<Vec<_>>(),
                "extensions"
            );
        }
        other => panic!("the client rejects the server's answer: {other:?}"),
    }
}

fuzz_target!(|input: Input| {
    match input {
        Input::Raw { max, bytes } => {
            let max = if max == 0 {
                DEFAULT_MAX_HEADER_BYTES
            } else {
                usize::from(max)
            };
            check_request(&bytes, max);
        }
        Input::Parts {
            method,
            target,
            minor,
            base,
            key,
            extra,
            tail,
        } => {
            let bytes = parts(&method, &target, minor, base, &key, &extra, &tail);
            check_request(&bytes, DEFAULT_MAX_HEADER_BYTES);
        }
        Input::RoundTrip {
            host,
            target,
            origin,
            protocols,
            extensions,
            headers,
            response_headers,
            leftover,
        } => round_trip(
            &host,
            &target,
            &origin,
            &protocols,
            &extensions,
            &headers,
            &response_headers,
            &leftover,
        ),
    }
});
