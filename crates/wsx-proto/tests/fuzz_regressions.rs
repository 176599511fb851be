//! Regression tests for what the fuzz targets (`fuzz/`, run with `scripts/fuzz.sh`) found.
//!
//! Each test replays one minimized finding through the public API: a request a wsx client
//! builds must be accepted by a wsx server, and the server's answer by the client. The tests
//! still marked `#[ignore]` document bugs whose fix is pending in `src/handshake`; remove the
//! attribute with the fix.

use wsx_proto::handshake::{
    AcceptResponse, ClientRequest, DEFAULT_MAX_HEADER_BYTES, HandshakeError, parse_request,
    parse_response, validate_upgrade,
};

/// Where a handshake between a wsx client sending `client` and a wsx server answering with
/// the first offered subprotocol and `extra` headers stopped, if it did.
fn handshake(client: &ClientRequest, extra: &[(String, String)]) -> Result<(), String> {
    let request = client.encode();
    let parsed = parse_request(&request, DEFAULT_MAX_HEADER_BYTES)
        .map_err(|e| format!("server cannot parse the request: {e:?}"))?;
    let Some((req, len)) = parsed else {
        return Err("server sees an incomplete request".into());
    };
    assert_eq!(len, request.len());
    let ws = validate_upgrade(&req).map_err(|e| format!("server rejects the request: {e:?}"))?;
    assert_eq!(ws.key, client.key());
    let mut response = Vec::new();
    let chosen = ws.subprotocols.first().map(String::as_str);
    AcceptResponse::new(&ws.key, chosen, None, extra).encode(&mut response);
    match parse_response(&response, client, DEFAULT_MAX_HEADER_BYTES) {
        Ok(Some((resp, n))) => {
            assert_eq!(n, response.len());
            assert_eq!(resp.subprotocol.as_deref(), chosen);
            Ok(())
        }
        Ok(None) => Err("client sees an incomplete response".into()),
        Err(e) => Err(format!("client rejects the response: {e:?}")),
    }
}

fn client() -> ClientRequest {
    ClientRequest::new("example.com", "/chat")
}

/// The baseline the findings below depart from.
#[test]
fn plain_handshake_round_trips() {
    assert_eq!(handshake(&client().subprotocol("chat"), &[]), Ok(()));
}

/// Found by `handshake_request` (round trip). A subprotocol holding NUL (or CR/LF) is sent
/// sanitized (`"+"`), the server selects `"+"`, and `parse_response` compares it with the
/// unsanitized offer `"+\0"`: `UnrequestedSubprotocol("+")`.
///
/// Fix: compare the selection with the offers as they were sent, i.e. in `parse_response`
/// use `sanitize_value(offered) == p` instead of `offered.trim() == p` (or sanitize in
/// `ClientRequest::subprotocol`).
#[test]
fn subprotocol_with_nul_is_accepted_as_sent() {
    assert_eq!(handshake(&client().subprotocol("+\0"), &[]), Ok(()));
    assert_eq!(handshake(&client().subprotocol("chat\r\n"), &[]), Ok(()));
}

/// Found while writing the `handshake_request` round trip. `ClientRequest::header` decides
/// whether a name is one of the handshake's own headers from `name.trim()`, but writes
/// `sanitize_name(name)`: `"Ho st"` passes the check and is written as a second `Host`
/// header, which `validate_upgrade` rejects (`Malformed("more than one Host header")`);
/// `"Sec-WebSocket-Key;"` becomes a second key (`InvalidKey`).
///
/// Fix: in `ClientRequest::header`, match on `sanitize_name(&name).to_ascii_lowercase()`.
#[test]
fn user_header_cannot_duplicate_a_handshake_header() {
    assert_eq!(
        handshake(&client().header("Ho st", "evil.example"), &[]),
        Ok(())
    );
    assert_eq!(
        handshake(
            &client().header("Sec-WebSocket-Key;", "dGhlIHNhbXBsZSBub25jZQ=="),
            &[]
        ),
        Ok(())
    );
}

/// The same on the server side: `AcceptResponse` drops the extra headers it manages
/// by their trimmed name but writes the sanitized one, so `"Sec-WebSocket-Accept;"` becomes a
/// second accept header and the client fails with `InvalidAccept`.
///
/// Fix: in `AcceptResponse`, test `is_one_of(&sanitize_name(name), ACCEPT_MANAGED)`.
#[test]
fn extra_response_header_cannot_duplicate_accept() {
    let extra = [("Sec-WebSocket-Accept;".to_owned(), "x".to_owned())];
    assert_eq!(handshake(&client(), &extra), Ok(()));
}

/// Found while writing the `handshake_request` round trip. `sanitize_value` removes only CR,
/// LF and NUL; other control characters (0x01-0x08, 0x0B-0x1F, 0x7F) are written as they are,
/// and our own `parse_request` (httparse) rejects the head: a wsx client cannot talk to a wsx
/// server when, say, its `Origin` or `Host` holds `\x01`.
///
/// Fix: make `sanitize_value` drop every ASCII control character but HTAB
/// (`c.is_ascii_control() && c != '\t'`).
#[test]
fn control_characters_are_sanitized_out_of_values() {
    assert_eq!(handshake(&client().origin("a\x01b"), &[]), Ok(()));
    assert_eq!(
        handshake(&ClientRequest::new("exa\x7fmple.com", "/"), &[]),
        Ok(())
    );
    let extra = [("X-Note".to_owned(), "a\x1bb".to_owned())];
    assert_eq!(handshake(&client(), &extra), Ok(()));
}

/// What the server does with those heads today, so a fix is noticed: it answers 400.
#[test]
fn unparsable_heads_are_400() {
    let request = client().origin("a\x01b").encode();
    match parse_request(&request, DEFAULT_MAX_HEADER_BYTES) {
        Err(e @ HandshakeError::Malformed(_)) => assert_eq!(e.status(), Some(400)),
        Ok(Some(_)) => {} // fixed: the value was sanitized
        other => panic!("unexpected {other:?}"),
    }
}

/// Found by `handshake_request` (round trip). Subprotocols `ebsocke"` and `: "v` are sent as
/// `ebsocke", : "v`; reading the list as if it held quoted strings (as extension parameters
/// may) made the server see one offer, `ebsocke", : "v`. `Sec-WebSocket-Protocol` is a list
/// of tokens (RFC 6455 §4.3): every comma splits it.
#[test]
fn quotes_in_subprotocols_do_not_hide_commas() {
    let client = client().subprotocol("ebsocke\"").subprotocol(": \"v");
    let request = client.encode();
    let (req, _) = parse_request(&request, DEFAULT_MAX_HEADER_BYTES)
        .expect("parsable")
        .expect("complete");
    let ws = validate_upgrade(&req).expect("a valid upgrade");
    assert_eq!(ws.subprotocols, ["ebsocke\"", ": \"v"]);
    assert_eq!(handshake(&client, &[]), Ok(()));
}
