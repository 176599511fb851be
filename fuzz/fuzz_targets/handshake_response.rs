//! Fuzz target: the client side of the opening handshake, `wsx_proto::handshake::parse_response`,
//! against fixed `ClientRequest`s (one offering subprotocols and permessage-deflate, one offering
//! nothing), on raw bytes in which the placeholder `@ACCEPT@` stands for the right
//! `Sec-WebSocket-Accept` value (so the fuzzer can get past the key check), and on responses
//! assembled from fuzzer-chosen header lines.
//!
//! Invariants checked, besides "no panic":
//! - a complete head is no longer than the input nor than `max_header_bytes`, every shorter
//!   prefix is "incomplete", and the bytes after the head change nothing;
//! - an accepted response is a 101 whose subprotocol is one the client offered and which names
//!   extensions only if the client offered some;
//! - client-side errors carry no HTTP status (they are never answered);
//! - checking the accepted extensions with `DeflateConfig::client_accept` gives parameters in
//!   the ranges RFC 7692 allows, never above what the client asked for.
#![no_main]

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use wsx_proto::deflate::DeflateConfig;
use wsx_proto::handshake::{ClientRequest, HandshakeError, accept_key, parse_response};

#[derive(Arbitrary, Debug)]
enum Input {
    Raw {
        offer: bool,
        max: u16,
        bytes: Vec<u8>,
    },
    Lines {
        offer: bool,
        status: u16,
        reason: String,
        lines: Vec<Line>,
        tail: Vec<u8>,
    },
}

#[derive(Arbitrary, Debug)]
enum Line {
    Upgrade(String),
    Connection(String),
    /// The right accept value, with fuzzer-chosen padding around it.
    Accept(String, String),
    AnyAccept(String),
    Protocol(String),
    Extensions(String),
    Other(String, Vec<u8>),
}

struct Fixture {
    config: DeflateConfig,
    offering: ClientRequest,
    plain: ClientRequest,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let config = DeflateConfig {
            server_max_window_bits: 12,
            ..DeflateConfig::default()
        };
        let offering = ClientRequest::new("example.com", "/chat")
            .subprotocol("chat")
            .subprotocol("v2.json")
            .extensions(config.client_offer());
        let plain = ClientRequest::new("example.com", "/");
        Fixture {
            config,
            offering,
            plain,
        }
    })
}

const PLACEHOLDER: &[u8] = b"@ACCEPT@";

/// `bytes` with every `@ACCEPT@` replaced by `accept`.
fn substitute(bytes: &[u8], accept: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 32);
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(PLACEHOLDER) {
            out.extend_from_slice(accept.as_bytes());
            i += PLACEHOLDER.len();
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

fn check(bytes: &[u8], req: &ClientRequest, offered: bool, max: usize) {
    let f = fixture();
    let result = parse_response(bytes, req, max);
    match &result {
        Ok(Some((resp, len))) => {
            let len = *len;
            assert!(len <= bytes.len() && len <= max);
            assert_eq!(parse_response(&bytes[..len], req, max), result);
            let step = if len > 2048 { len / 512 } else { 1 };
            for cut in (0..len).step_by(step) {
                assert_eq!(
                    parse_response(&bytes[..cut], req, max),
                    Ok(None),
                    "prefix {cut}"
                );
            }
            assert_eq!(resp.status, 101);
            if let Some(p) = &resp.subprotocol {
                assert!(req.subprotocols().iter().any(|o| o == p), "unoffered {p:?}");
            }
            if !offered {
                assert!(resp.extensions.is_empty());
                return;
            }
            if let Ok(Some(params)) = f.config.client_accept(&resp.extensions) {
                for bits in [params.server_max_window_bits, params.client_max_window_bits] {
                    assert!((8..=15).contains(&bits), "window bits {bits}");
                }
                assert!(
                    params.server_max_window_bits <= 12,
                    "a larger window than asked for"
                );
                assert!(params.client_no_context_takeover, "our promise was dropped");
            }
        }
        Ok(None) => assert!(bytes.len() <= max),
        Err(
            HandshakeError::Malformed(_)
            | HandshakeError::HeadersTooLarge
            | HandshakeError::TooManyHeaders,
        ) => {}
        Err(e) => assert_eq!(e.status(), None, "client-side error {e:?} has a status"),
    }
}

fuzz_target!(|input: Input| {
    let f = fixture();
    match input {
        Input::Raw { offer, max, bytes } => {
            let req = if offer { &f.offering } else { &f.plain };
            let accept = accept_key(req.key().as_bytes());
            let max = if max == 0 {
                16 * 1024
            } else {
                usize::from(max)
            };
            check(&substitute(&bytes, &accept), req, offer, max);
        }
        Input::Lines {
            offer,
            status,
            reason,
            lines,
            tail,
        } => {
            let req = if offer { &f.offering } else { &f.plain };
            let accept = accept_key(req.key().as_bytes());
            let status = if status % 4 == 0 { 101 } else { status % 1000 };
            let mut out = format!("HTTP/1.1 {status:03} {reason}\r\n").into_bytes();
            for line in lines.iter().take(80) {
                let (name, value): (&str, Vec<u8>) = match line {
                    Line::Upgrade(v) => ("Upgrade", v.clone().into_bytes()),
                    Line::Connection(v) => ("Connection", v.clone().into_bytes()),
                    Line::Accept(a, b) => (
                        "Sec-WebSocket-Accept",
                        format!("{a}{accept}{b}").into_bytes(),
                    ),
                    Line::AnyAccept(v) => ("Sec-WebSocket-Accept", v.clone().into_bytes()),
                    Line::Protocol(v) => ("Sec-WebSocket-Protocol", v.clone().into_bytes()),
                    Line::Extensions(v) => ("Sec-WebSocket-Extensions", v.clone().into_bytes()),
                    Line::Other(n, v) => (n.as_str(), v.clone()),
                };
                out.extend_from_slice(name.as_bytes());
                out.extend_from_slice(b": ");
                out.extend_from_slice(&value);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(&tail);
            check(&out, req, offer, 16 * 1024);
        }
    }
});
