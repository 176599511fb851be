//! Negotiating permessage-deflate in the opening handshake (RFC 7692 §5, §7.1).
//!
//! This is the handshake step of the deflate flow: the client sends
//! [`DeflateConfig::client_offer`] in `Sec-WebSocket-Extensions`; the server picks the first
//! offer it can honour with [`DeflateConfig::server_accept`] and answers with the string it
//! returns; the client checks that answer with [`DeflateConfig::client_accept`]. Both end with
//! the same [`DeflateParams`], which build the per-connection codec.
//!
//! The header grammar (comma-separated extensions with `;`-parameters, RFC 6455 §9.1) is parsed
//! by the handshake's header grammar (`handshake/headers.rs`); names are compared here without regard to ASCII case.
//!
//! The server is lenient the way RFC 7692 asks: an offer it cannot parse or honour (unknown,
//! duplicated or out-of-range parameter, or a client window it cannot limit) is skipped and the
//! next one tried. The client is strict: anything it did not offer or cannot honour fails the
//! handshake with [`Error::Extension`] — with one leniency: a server that leaves out a
//! `server_no_context_takeover` we asked for is accepted, and we simply keep our decompressor's
//! context (the server's stream is valid either way).

use super::config::{DeflateConfig, DeflateParams, MAX_WINDOW_BITS};
use crate::error::Error;
use crate::handshake::headers::parse_extensions;

/// The registered name of the extension.
pub(crate) const EXTENSION_NAME: &str = "permessage-deflate";

const SERVER_NO_CONTEXT_TAKEOVER: &str = "server_no_context_takeover";
const CLIENT_NO_CONTEXT_TAKEOVER: &str = "client_no_context_takeover";
const SERVER_MAX_WINDOW_BITS: &str = "server_max_window_bits";
const CLIENT_MAX_WINDOW_BITS: &str = "client_max_window_bits";

impl DeflateConfig {
    /// The `Sec-WebSocket-Extensions` value a client sends to offer permessage-deflate.
    ///
    /// Always includes `client_max_window_bits` (with our window when under 15), so the server
    /// may lower the window we compress with; asks for `server_max_window_bits` only when under
    /// 15 (a server that does not support it would decline the offer), and for the no context
    /// takeover flags as configured.
    pub fn client_offer(&self) -> String {
        let mut offer = String::from(EXTENSION_NAME);
        if self.server_no_context_takeover {
            offer.push_str("; ");
            offer.push_str(SERVER_NO_CONTEXT_TAKEOVER);
        }
        if self.client_no_context_takeover {
            offer.push_str("; ");
            offer.push_str(CLIENT_NO_CONTEXT_TAKEOVER);
        }
        let server_bits = self.server_bits();
        if server_bits < MAX_WINDOW_BITS {
            offer.push_str(&format!("; {SERVER_MAX_WINDOW_BITS}={server_bits}"));
        }
        let client_bits = self.client_bits();
        if client_bits < MAX_WINDOW_BITS {
            offer.push_str(&format!("; {CLIENT_MAX_WINDOW_BITS}={client_bits}"));
        } else {
            offer.push_str("; ");
            offer.push_str(CLIENT_MAX_WINDOW_BITS);
        }
        offer
    }

    /// Check the server's `Sec-WebSocket-Extensions` answer to [`client_offer`](Self::client_offer).
    ///
    /// `response_values` holds each header line's value (each may be a comma list). No
    /// extension at all gives `Ok(None)`: the connection goes on without compression.
    ///
    /// # Errors
    ///
    /// [`Error::Extension`] when the answer is malformed, names an extension we did not offer,
    /// accepts permessage-deflate more than once, has an unknown or duplicated parameter or a bad
    /// value, or grants a window larger than we asked for (or leaves out the
    /// `server_max_window_bits` we asked for).
    pub fn client_accept(
        &self,
        response_values: &[String],
    ) -> Result<Option<DeflateParams>, Error> {
        let mut accepted: Option<Params> = None;
        for item in parse_extensions(response_values) {
            let item = item.map_err(|why| {
                Error::Extension(format!("malformed Sec-WebSocket-Extensions answer: {why}"))
            })?;
            if !item.name.eq_ignore_ascii_case(EXTENSION_NAME) {
                return Err(Error::Extension(format!(
                    "the server accepted extension {:?}, which we did not offer",
                    item.name
                )));
            }
            if accepted.is_some() {
                return Err(Error::Extension(
                    "the server accepted permessage-deflate more than once".into(),
                ));
            }
            let params = Params::parse(&item.params, Side::Response)
                .map_err(|why| Error::Extension(format!("permessage-deflate answer: {why}")))?;
            accepted = Some(params);
        }
        let Some(p) = accepted else { return Ok(None) };

        // server_max_window_bits: we ask only for a value under 15. The server may announce a
        // window even when not asked; when asked it must answer with our value or less.
        let requested = self.server_bits();
        let server_max_window_bits = match p.server_max_window_bits {
            Some(bits) if requested < MAX_WINDOW_BITS && bits > requested => {
                return Err(Error::Extension(format!(
                    "the server answered server_max_window_bits={bits}, more than the \
                     {requested} we asked for"
                )));
            }
            Some(bits) => bits,
            None if requested < MAX_WINDOW_BITS => {
                return Err(Error::Extension(format!(
                    "the server did not accept the server_max_window_bits={requested} we asked for"
                )));
            }
            None => MAX_WINDOW_BITS,
        };

        // client_max_window_bits: we always offer it, so the server may set it (never above a
        // value we offered). We compress with the smaller of its limit and our own.
        let ours = self.client_bits();
        let client_max_window_bits = match p.client_max_window_bits {
            Some(Some(bits)) if ours < MAX_WINDOW_BITS && bits > ours => {
                return Err(Error::Extension(format!(
                    "the server answered client_max_window_bits={bits}, more than the {ours} \
                     we offered"
                )));
            }
            Some(Some(bits)) => bits.min(ours),
            // Params::parse rejects a response parameter without a value.
            Some(None) | None => ours,
        };

        Ok(Some(DeflateParams {
            server_no_context_takeover: p.server_no_context_takeover,
            // We offered it as a promise: keep it even when the server did not echo it.
            client_no_context_takeover: p.client_no_context_takeover
                || self.client_no_context_takeover,
            server_max_window_bits,
            client_max_window_bits,
        }))
    }

    /// Pick the first permessage-deflate offer from a client's `Sec-WebSocket-Extensions`
    /// values that this config can honour, and build the answer.
    ///
    /// Offers are walked in order across all values. Other extensions, and permessage-deflate
    /// offers that are malformed or have unknown, duplicated or out-of-range parameters, are
    /// skipped, as is an offer without `client_max_window_bits` when
    /// [`client_max_window_bits`](Self::client_max_window_bits) is under 15 (we could not limit
    /// the client's window). Returns the negotiated parameters and the value for the response's
    /// `Sec-WebSocket-Extensions` header, or `None` when no offer fits (no compression).
    ///
    /// A client asking for `server_max_window_bits=8` is honoured by never compressing (see
    /// the [module docs](super)).
    pub fn server_accept(&self, offer_values: &[String]) -> Option<(DeflateParams, String)> {
        parse_extensions(offer_values)
            .into_iter()
            .filter_map(Result::ok)
            .filter(|item| item.name.eq_ignore_ascii_case(EXTENSION_NAME))
            .filter_map(|item| Params::parse(&item.params, Side::Offer).ok())
            .find_map(|offer| self.accept_offer(&offer))
    }

    /// Answer one well-formed offer, or decline it.
    fn accept_offer(&self, offer: &Params) -> Option<(DeflateParams, String)> {
        // Our compressor: never above our own limit nor what the client asked for.
        let server_max_window_bits = match offer.server_max_window_bits {
            Some(bits) => bits.min(self.server_bits()),
            None => self.server_bits(),
        };
        // The client's compressor: we can limit it only if the client offered the parameter.
        let limit = self.client_bits();
        let client_max_window_bits = match offer.client_max_window_bits {
            None if limit < MAX_WINDOW_BITS => return None,
            None => None,
            Some(hint) => {
                let bits = hint.unwrap_or(MAX_WINDOW_BITS).min(limit);
                (hint.is_some() || bits < MAX_WINDOW_BITS).then_some(bits)
            }
        };
        let params = DeflateParams {
            server_no_context_takeover: offer.server_no_context_takeover
                || self.server_no_context_takeover,
            // The client's hint lets us drop our decompressor between messages: take it.
            client_no_context_takeover: offer.client_no_context_takeover
                || self.client_no_context_takeover,
            server_max_window_bits,
            client_max_window_bits: client_max_window_bits.unwrap_or(MAX_WINDOW_BITS),
        };

        let mut response = String::from(EXTENSION_NAME);
        if params.server_no_context_takeover {
            response.push_str("; ");
            response.push_str(SERVER_NO_CONTEXT_TAKEOVER);
        }
        if params.client_no_context_takeover {
            response.push_str("; ");
            response.push_str(CLIENT_NO_CONTEXT_TAKEOVER);
        }
        if offer.server_max_window_bits.is_some() || server_max_window_bits < MAX_WINDOW_BITS {
            response.push_str(&format!(
                "; {SERVER_MAX_WINDOW_BITS}={server_max_window_bits}"
            ));
        }
        if let Some(bits) = client_max_window_bits {
            response.push_str(&format!("; {CLIENT_MAX_WINDOW_BITS}={bits}"));
        }
        Some((params, response))
    }
}

/// Which handshake message parameters come from: an offer allows `client_max_window_bits`
/// without a value, a response does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Offer,
    Response,
}

/// The permessage-deflate parameters of one offer or response, checked for syntax.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Params {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: present without a value (offers only).
    client_max_window_bits: Option<Option<u8>>,
}

impl Params {
    /// Check the parameters: each known, at most once, with a valid value.
    fn parse(params: &[(String, Option<String>)], side: Side) -> Result<Params, String> {
        let mut p = Params::default();
        let mut seen = [false; 4];
        for (name, value) in params {
            let index = [
                SERVER_NO_CONTEXT_TAKEOVER,
                CLIENT_NO_CONTEXT_TAKEOVER,
                SERVER_MAX_WINDOW_BITS,
                CLIENT_MAX_WINDOW_BITS,
            ]
            .iter()
            .position(|known| name.eq_ignore_ascii_case(known))
            .ok_or_else(|| format!("unknown parameter {name:?}"))?;
            if let Some(seen) = seen.get_mut(index) {
                if *seen {
                    return Err(format!("duplicate parameter {name}"));
                }
                *seen = true;
            }
            let value = value.as_deref();
            match index {
                0 | 1 => {
                    if let Some(v) = value {
                        return Err(format!("{name} takes no value (got {v:?})"));
                    }
                    if index == 0 {
                        p.server_no_context_takeover = true;
                    } else {
                        p.client_no_context_takeover = true;
                    }
                }
                2 => {
                    let v = value.ok_or_else(|| format!("{name} needs a value"))?;
                    p.server_max_window_bits = Some(parse_window_bits(name, v)?);
                }
                _ => {
                    p.client_max_window_bits = Some(match value {
                        Some(v) => Some(parse_window_bits(name, v)?),
                        None if side == Side::Offer => None,
                        None => return Err(format!("{name} needs a value in a response")),
                    });
                }
            }
        }
        Ok(p)
    }
}

/// A window size value: a decimal 8 to 15 without leading zeroes or sign (RFC 7692 §7.1.2).
fn parse_window_bits(name: &str, value: &str) -> Result<u8, String> {
    let bits = match value {
        "8" => 8,
        "9" => 9,
        "10" => 10,
        "11" => 11,
        "12" => 12,
        "13" => 13,
        "14" => 14,
        "15" => 15,
        _ => {
            return Err(format!(
                "{name}={value:?} is not a window size from 8 to 15"
            ));
        }
    };
    Ok(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(values: &[&str]) -> Vec<String> {
        values.iter().map(|s| s.to_string()).collect()
    }

    /// A config that keeps context and uses full windows: answers then echo only the offer.
    fn plain() -> DeflateConfig {
        DeflateConfig {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            ..DeflateConfig::default()
        }
    }

    fn params(snct: bool, cnct: bool, sbits: u8, cbits: u8) -> DeflateParams {
        DeflateParams {
            server_no_context_takeover: snct,
            client_no_context_takeover: cnct,
            server_max_window_bits: sbits,
            client_max_window_bits: cbits,
        }
    }

    #[test]
    fn client_offer_strings() {
        assert_eq!(
            DeflateConfig::default().client_offer(),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             client_max_window_bits"
        );
        assert_eq!(
            plain().client_offer(),
            "permessage-deflate; client_max_window_bits"
        );
        let c = DeflateConfig {
            server_max_window_bits: 10,
            client_max_window_bits: 9,
            ..plain()
        };
        assert_eq!(
            c.client_offer(),
            "permessage-deflate; server_max_window_bits=10; client_max_window_bits=9"
        );
        // Out-of-range config values are clamped.
        let c = DeflateConfig {
            server_max_window_bits: 3,
            client_max_window_bits: 99,
            ..plain()
        };
        assert_eq!(
            c.client_offer(),
            "permessage-deflate; server_max_window_bits=8; client_max_window_bits"
        );
        // Our own offer is one the server side accepts.
        for c in [DeflateConfig::default(), plain(), c] {
            assert!(c.server_accept(&[c.client_offer()]).is_some());
        }
    }

    #[test]
    fn server_accept_table() {
        let cases: &[(&str, Option<(DeflateParams, &str)>)] = &[
            (
                "permessage-deflate",
                Some((params(false, false, 15, 15), "permessage-deflate")),
            ),
            (
                "permessage-deflate; server_no_context_takeover",
                Some((
                    params(true, false, 15, 15),
                    "permessage-deflate; server_no_context_takeover",
                )),
            ),
            (
                "permessage-deflate; client_no_context_takeover",
                Some((
                    params(false, true, 15, 15),
                    "permessage-deflate; client_no_context_takeover",
                )),
            ),
            ("permessage-deflate; server_no_context_takeover=1", None),
            ("permessage-deflate; client_no_context_takeover=\"x\"", None),
            (
                "permessage-deflate; server_max_window_bits=10",
                Some((
                    params(false, false, 10, 15),
                    "permessage-deflate; server_max_window_bits=10",
                )),
            ),
            (
                "permessage-deflate; server_max_window_bits=\"12\"",
                Some((
                    params(false, false, 12, 15),
                    "permessage-deflate; server_max_window_bits=12",
                )),
            ),
            (
                "permessage-deflate; server_max_window_bits=15",
                Some((
                    params(false, false, 15, 15),
                    "permessage-deflate; server_max_window_bits=15",
                )),
            ),
            (
                "permessage-deflate; server_max_window_bits=8",
                Some((
                    params(false, false, 8, 15),
                    "permessage-deflate; server_max_window_bits=8",
                )),
            ),
            ("permessage-deflate; server_max_window_bits", None),
            ("permessage-deflate; server_max_window_bits=7", None),
            ("permessage-deflate; server_max_window_bits=16", None),
            ("permessage-deflate; server_max_window_bits=010", None),
            ("permessage-deflate; server_max_window_bits=+9", None),
            ("permessage-deflate; server_max_window_bits=abc", None),
            (
                "permessage-deflate; client_max_window_bits",
                Some((params(false, false, 15, 15), "permessage-deflate")),
            ),
            (
                "permessage-deflate; client_max_window_bits=9",
                Some((
                    params(false, false, 15, 9),
                    "permessage-deflate; client_max_window_bits=9",
                )),
            ),
            (
                "permessage-deflate; client_max_window_bits=\"8\"",
                Some((
                    params(false, false, 15, 8),
                    "permessage-deflate; client_max_window_bits=8",
                )),
            ),
            ("permessage-deflate; client_max_window_bits=7", None),
            ("permessage-deflate; client_max_window_bits=16", None),
            ("permessage-deflate; client_max_window_bits=\"\"", None),
            (
                "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
                None,
            ),
            (
                "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
                None,
            ),
            (
                "permessage-deflate; server_max_window_bits=9; server_max_window_bits=9",
                None,
            ),
            (
                "permessage-deflate; client_max_window_bits; client_max_window_bits=9",
                None,
            ),
            ("permessage-deflate; mem_level=8", None),
            ("x-webkit-deflate-frame", None),
            ("", None),
            // Case-insensitive names.
            (
                "PerMessage-Deflate; Server_No_Context_Takeover",
                Some((
                    params(true, false, 15, 15),
                    "permessage-deflate; server_no_context_takeover",
                )),
            ),
            // Everything at once.
            (
                "permessage-deflate; client_no_context_takeover; server_no_context_takeover; \
                 server_max_window_bits=11; client_max_window_bits=12",
                Some((
                    params(true, true, 11, 12),
                    "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
                     server_max_window_bits=11; client_max_window_bits=12",
                )),
            ),
            // The first offer is declined, the second taken.
            (
                "permessage-deflate; server_max_window_bits=16, permessage-deflate; \
                 client_max_window_bits",
                Some((params(false, false, 15, 15), "permessage-deflate")),
            ),
            (
                "foo; bar, permessage-deflate; unknown, permessage-deflate; \
                 server_no_context_takeover",
                Some((
                    params(true, false, 15, 15),
                    "permessage-deflate; server_no_context_takeover",
                )),
            ),
        ];
        for (offer, expected) in cases {
            let got = plain().server_accept(&v(&[offer]));
            let got = got.as_ref().map(|(p, s)| (*p, s.as_str()));
            assert_eq!(got, *expected, "offer {offer:?}");
        }
    }

    #[test]
    fn server_accept_across_header_lines() {
        let got = plain().server_accept(&v(&[
            "permessage-deflate; bogus",
            "permessage-deflate; server_max_window_bits=9",
        ]));
        assert_eq!(got.map(|(p, _)| p), Some(params(false, false, 9, 15)));
    }

    #[test]
    fn server_accept_applies_policy() {
        // Defaults: we announce no context takeover in both directions.
        let (p, s) = DeflateConfig::default()
            .server_accept(&v(&["permessage-deflate"]))
            .unwrap();
        assert_eq!(p, params(true, true, 15, 15));
        assert_eq!(
            s,
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        );

        // A smaller server window is announced even when not asked for, and the client's
        // request can lower it further but never raise it.
        let c = DeflateConfig {
            server_max_window_bits: 12,
            ..plain()
        };
        let (p, s) = c.server_accept(&v(&["permessage-deflate"])).unwrap();
        assert_eq!(
            (p.server_max_window_bits, s.as_str()),
            (12, "permessage-deflate; server_max_window_bits=12")
        );
        let (p, _) = c
            .server_accept(&v(&["permessage-deflate; server_max_window_bits=10"]))
            .unwrap();
        assert_eq!(p.server_max_window_bits, 10);
        let (p, _) = c
            .server_accept(&v(&["permessage-deflate; server_max_window_bits=14"]))
            .unwrap();
        assert_eq!(p.server_max_window_bits, 12);

        // Limiting the client's window needs client_max_window_bits in the offer.
        let c = DeflateConfig {
            client_max_window_bits: 10,
            ..plain()
        };
        assert_eq!(c.server_accept(&v(&["permessage-deflate"])), None);
        let (p, s) = c
            .server_accept(&v(&[
                "permessage-deflate, permessage-deflate; client_max_window_bits",
            ]))
            .unwrap();
        assert_eq!(
            (p.client_max_window_bits, s.as_str()),
            (10, "permessage-deflate; client_max_window_bits=10")
        );
        let (p, _) = c
            .server_accept(&v(&["permessage-deflate; client_max_window_bits=9"]))
            .unwrap();
        assert_eq!(p.client_max_window_bits, 9);
    }

    /// The offers Autobahn's fuzzingclient (testing a server) sends in cases 12.* and 13.*.
    #[test]
    fn server_accepts_autobahn_offers() {
        let mut offers = vec![
            "permessage-deflate; client_no_context_takeover; client_max_window_bits".to_string(),
            "permessage-deflate; client_max_window_bits".to_string(),
            "permessage-deflate; client_no_context_takeover; client_max_window_bits; \
             server_no_context_takeover"
                .to_string(),
        ];
        for n in 8..=15 {
            for snct in ["", "; server_no_context_takeover"] {
                offers.push(format!(
                    "permessage-deflate; client_no_context_takeover; client_max_window_bits{snct}; \
                     server_max_window_bits={n}"
                ));
            }
        }
        offers.push(
            "permessage-deflate; client_no_context_takeover; client_max_window_bits; \
             server_no_context_takeover; server_max_window_bits=9, permessage-deflate; \
             client_no_context_takeover; client_max_window_bits; server_no_context_takeover, \
             permessage-deflate; client_no_context_takeover; client_max_window_bits"
                .to_string(),
        );
        for config in [DeflateConfig::default(), plain()] {
            for offer in &offers {
                let (p, response) = config
                    .server_accept(std::slice::from_ref(offer))
                    .unwrap_or_else(|| panic!("declined {offer}"));
                if offer.contains("server_no_context_takeover") {
                    assert!(p.server_no_context_takeover);
                    assert!(response.contains("server_no_context_takeover"));
                }
                if let Some(pos) = offer.find("server_max_window_bits=") {
                    let n = &offer[pos + 23..].split([',', ';']).next().unwrap();
                    assert_eq!(p.server_max_window_bits.to_string(), *n);
                    assert!(response.contains(&format!("server_max_window_bits={n}")));
                }
                assert_eq!(
                    p.client_no_context_takeover,
                    offer.contains("client_no_context_takeover")
                        || config.client_no_context_takeover
                );
                assert_eq!(p.client_max_window_bits, 15);
            }
        }
    }

    #[test]
    fn client_accept_table() {
        let ok: &[(&str, DeflateParams)] = &[
            ("permessage-deflate", params(false, false, 15, 15)),
            (
                "permessage-deflate; server_no_context_takeover",
                params(true, false, 15, 15),
            ),
            (
                "permessage-deflate; client_no_context_takeover",
                params(false, true, 15, 15),
            ),
            (
                "permessage-deflate; server_max_window_bits=9",
                params(false, false, 9, 15),
            ),
            (
                "permessage-deflate; server_max_window_bits=\"8\"",
                params(false, false, 8, 15),
            ),
            (
                "permessage-deflate; client_max_window_bits=10",
                params(false, false, 15, 10),
            ),
            (
                "permessage-deflate; client_max_window_bits=8",
                params(false, false, 15, 8),
            ),
            (
                "permessage-deflate; server_max_window_bits=9; client_max_window_bits=9",
                params(false, false, 9, 9),
            ),
            (
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
                 server_max_window_bits=12; client_max_window_bits=13",
                params(true, true, 12, 13),
            ),
            (
                "  PERMESSAGE-DEFLATE ; CLIENT_NO_CONTEXT_TAKEOVER ",
                params(false, true, 15, 15),
            ),
        ];
        for (answer, expected) in ok {
            assert_eq!(
                plain().client_accept(&v(&[answer])),
                Ok(Some(*expected)),
                "{answer}"
            );
        }
        let bad = [
            "x-webkit-deflate-frame",
            "permessage-deflate, permessage-deflate",
            "permessage-deflate; foo",
            "permessage-deflate; client_max_window_bits",
            "permessage-deflate; client_max_window_bits=7",
            "permessage-deflate; client_max_window_bits=16",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=09",
            "permessage-deflate; server_no_context_takeover=true",
            "permessage-deflate; client_no_context_takeover=\"\"",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
            "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
            "permessage-deflate; client_max_window_bits=10; client_max_window_bits=10",
            "permessage-deflate;",
            "permessage-deflate; client_max_window_bits=\"10",
        ];
        for answer in bad {
            let got = plain().client_accept(&v(&[answer]));
            assert!(matches!(got, Err(Error::Extension(_))), "{answer}: {got:?}");
        }
        // Two header lines each accepting it.
        let got = plain().client_accept(&v(&["permessage-deflate", "permessage-deflate"]));
        assert!(matches!(got, Err(Error::Extension(_))));
        // No extension: no compression.
        assert_eq!(plain().client_accept(&[]), Ok(None));
        assert_eq!(plain().client_accept(&v(&["", " , "])), Ok(None));
    }

    #[test]
    fn client_accept_checks_against_offer() {
        // We asked for server_max_window_bits=10.
        let c = DeflateConfig {
            server_max_window_bits: 10,
            ..plain()
        };
        let accept = |s: &str| c.client_accept(&v(&[s]));
        assert_eq!(
            accept("permessage-deflate; server_max_window_bits=10")
                .unwrap()
                .unwrap()
                .server_max_window_bits,
            10
        );
        assert_eq!(
            accept("permessage-deflate; server_max_window_bits=9")
                .unwrap()
                .unwrap()
                .server_max_window_bits,
            9
        );
        assert!(accept("permessage-deflate; server_max_window_bits=11").is_err());
        assert!(accept("permessage-deflate").is_err());

        // We offered client_max_window_bits=10: the server may lower it, not raise it; without
        // an answer we still use our 10.
        let c = DeflateConfig {
            client_max_window_bits: 10,
            ..plain()
        };
        let accept = |s: &str| c.client_accept(&v(&[s]));
        assert_eq!(
            accept("permessage-deflate")
                .unwrap()
                .unwrap()
                .client_max_window_bits,
            10
        );
        assert_eq!(
            accept("permessage-deflate; client_max_window_bits=9")
                .unwrap()
                .unwrap()
                .client_max_window_bits,
            9
        );
        assert!(accept("permessage-deflate; client_max_window_bits=11").is_err());

        // We asked for server_no_context_takeover: a server that leaves it out is tolerated
        // (we keep our decompressor's context). We offered client_no_context_takeover: we keep
        // our promise even if the server does not echo it.
        let d = DeflateConfig::default();
        assert_eq!(
            d.client_accept(&v(&["permessage-deflate"])),
            Ok(Some(params(false, true, 15, 15)))
        );
        assert_eq!(
            d.client_accept(&v(&["permessage-deflate; server_no_context_takeover"])),
            Ok(Some(params(true, true, 15, 15)))
        );
    }

    /// Every answer Autobahn's fuzzingserver (testing a client) gives in cases 12.* and 13.*
    /// (its `accept1`-`accept7` with window sizes 8, 9 and 15), to our default offer and to a
    /// context-keeping one.
    #[test]
    fn client_accepts_autobahn_answers() {
        let mut answers = vec!["permessage-deflate".to_string()];
        for snct in ["", "; server_no_context_takeover"] {
            for cnct in ["", "; client_no_context_takeover"] {
                for bits in [
                    "",
                    "; client_max_window_bits=8",
                    "; client_max_window_bits=9",
                    "; client_max_window_bits=15",
                ] {
                    answers.push(format!("permessage-deflate{snct}{cnct}{bits}"));
                }
            }
        }
        for config in [DeflateConfig::default(), plain()] {
            for answer in &answers {
                let p = config
                    .client_accept(std::slice::from_ref(answer))
                    .unwrap_or_else(|e| panic!("{answer}: {e}"))
                    .unwrap();
                if let Some(pos) = answer.find("client_max_window_bits=") {
                    assert_eq!(p.client_max_window_bits.to_string(), answer[pos + 23..]);
                }
            }
        }
    }

    #[test]
    fn server_answer_passes_client_check() {
        // Whatever our server answers to our own client's offer, our client accepts, and both
        // sides agree on the parameters.
        let configs = [
            DeflateConfig::default(),
            plain(),
            DeflateConfig {
                server_max_window_bits: 9,
                client_max_window_bits: 11,
                ..plain()
            },
            DeflateConfig {
                server_max_window_bits: 8,
                client_max_window_bits: 8,
                ..DeflateConfig::default()
            },
        ];
        for client in &configs {
            for server in &configs {
                let Some((sp, answer)) = server.server_accept(&[client.client_offer()]) else {
                    panic!("declined {}", client.client_offer());
                };
                let cp = client
                    .client_accept(std::slice::from_ref(&answer))
                    .unwrap()
                    .unwrap();
                assert_eq!(
                    cp.server_no_context_takeover, sp.server_no_context_takeover,
                    "{answer}"
                );
                assert_eq!(
                    cp.server_max_window_bits, sp.server_max_window_bits,
                    "{answer}"
                );
                // The client may compress with less than the server allows, never more.
                assert!(
                    cp.client_max_window_bits <= sp.client_max_window_bits,
                    "{answer}"
                );
                // The server resets its decompressor only if the client promised to reset.
                assert!(!sp.client_no_context_takeover || cp.client_no_context_takeover);
            }
        }
    }
}
