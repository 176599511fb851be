//! The grammar of the handshake's header values (RFC 9110 §5.6): comma-separated lists,
//! tokens, `;`-parameters and quoted strings.
//!
//! Where it sits: every handshake header that holds a list goes through here — `Connection:
//! keep-alive, Upgrade` and `Upgrade: websocket` ([`has_token`]) and `Sec-WebSocket-Protocol`
//! are lists of tokens ([`token_list`]: a token holds no quote, so every comma splits);
//! `Sec-WebSocket-Extensions` (`parse_extensions`, read by permessage-deflate's negotiation)
//! has quoted-string parameters ([`list_elements`]: a separator inside a quoted string does not
//! split). Lists may span several header lines; empty elements are ignored.

/// All values of header `name` (case-insensitive) in `headers`, in order.
pub(crate) fn values<'h, 'n>(
    headers: &'h [(String, Vec<u8>)],
    name: &'n str,
) -> impl Iterator<Item = &'h [u8]> + use<'h, 'n> {
    headers
        .iter()
        .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_slice())
}

/// The elements of a comma-separated header list (`#element`, RFC 9110 §5.6.1): split at each
/// comma outside a quoted string, optional whitespace trimmed, empty elements skipped.
///
/// ```
/// use wsx_proto::handshake::list_elements;
/// let protocols: Vec<&str> = list_elements(" chat, , superchat ").collect();
/// assert_eq!(protocols, ["chat", "superchat"]);
/// ```
pub fn list_elements(value: &str) -> impl Iterator<Item = &str> {
    split_outside_quotes(value, b',')
        .into_iter()
        .map(trim_ows)
        .filter(|element| !element.is_empty())
}

/// The elements of a comma-separated list of tokens (`1#token`, such as
/// `Sec-WebSocket-Protocol`, RFC 6455 §4.3): split at every comma (a token holds no quote, so
/// no quoted string can hide one), optional whitespace trimmed, empty elements skipped. An
/// element that is not a token is kept as it is, for the caller to refuse or ignore.
///
/// ```
/// use wsx_proto::handshake::token_list;
/// let protocols: Vec<&str> = token_list("chat, \"a, b\"").collect();
/// assert_eq!(protocols, ["chat", "\"a", "b\""]);
/// ```
pub fn token_list(value: &str) -> impl Iterator<Item = &str> {
    value
        .split(',')
        .map(trim_ows)
        .filter(|element| !element.is_empty())
}

/// Whether any element of the comma-separated lists in `values` (one per header line) equals
/// `token`, without regard to ASCII case: `Connection: keep-alive, Upgrade` has the token
/// `upgrade`. A value that is not UTF-8 is read with its invalid bytes replaced.
pub fn has_token<'a>(values: impl IntoIterator<Item = &'a [u8]>, token: &str) -> bool {
    values
        .into_iter()
        .any(|v| token_list(&String::from_utf8_lossy(v)).any(|t| t.eq_ignore_ascii_case(token)))
}

/// One extension of a `Sec-WebSocket-Extensions` list, with its parameters in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExtensionItem {
    /// The extension token, such as `permessage-deflate`.
    pub(crate) name: String,
    /// Parameter names and their values (quoted strings already unquoted).
    pub(crate) params: Vec<(String, Option<String>)>,
}

/// Split header values into extensions and parse each one; a malformed extension gives an
/// `Err` in its place without spoiling the others.
pub(crate) fn parse_extensions(values: &[String]) -> Vec<Result<ExtensionItem, String>> {
    values
        .iter()
        .flat_map(|value| list_elements(value))
        .map(parse_extension)
        .collect()
}

/// Parse `name *( ";" param )`.
fn parse_extension(element: &str) -> Result<ExtensionItem, String> {
    let mut parts = split_outside_quotes(element, b';')
        .into_iter()
        .map(trim_ows);
    let name = parts.next().unwrap_or_default();
    if !is_token(name) {
        return Err(format!("invalid extension name {name:?}"));
    }
    let params = parts.map(parse_param).collect::<Result<Vec<_>, _>>()?;
    Ok(ExtensionItem {
        name: name.to_owned(),
        params,
    })
}

/// Parse `token [ "=" ( token / quoted-string ) ]`, allowing whitespace around `=`.
fn parse_param(param: &str) -> Result<(String, Option<String>), String> {
    let (name, value) = match param.split_once('=') {
        Some((name, value)) => (trim_ows(name), Some(trim_ows(value))),
        None => (param, None),
    };
    if !is_token(name) {
        return Err(format!("invalid parameter name {name:?}"));
    }
    let value = match value {
        None => None,
        Some(v) if v.starts_with('"') => {
            let unquoted = unquote(v).ok_or_else(|| format!("bad quoted string {v}"))?;
            if !is_token(&unquoted) {
                return Err(format!("quoted value {v} is not a token"));
            }
            Some(unquoted)
        }
        Some(v) if is_token(v) => Some(v.to_owned()),
        Some(v) => return Err(format!("invalid value {v:?} for parameter {name}")),
    };
    Ok((name.to_owned(), value))
}

/// Unquote a whole `quoted-string`, resolving `\` escapes; `None` if it is not exactly one.
fn unquote(s: &str) -> Option<String> {
    let mut chars = s.strip_prefix('"')?.chars();
    let mut out = String::new();
    loop {
        match chars.next()? {
            '"' => return chars.as_str().is_empty().then_some(out),
            '\\' => out.push(chars.next()?),
            c => out.push(c),
        }
    }
}

/// Split at each `sep` that is not inside a quoted string. An unterminated quote runs to the
/// end (and makes that piece fail to parse later).
fn split_outside_quotes(s: &str, sep: u8) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, b) in s.bytes().enumerate() {
        if in_quotes {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_quotes = false;
            }
        } else if b == b'"' {
            in_quotes = true;
        } else if b == sep {
            // `sep` is ASCII, so `i` is a char boundary.
            pieces.push(s.get(start..i).unwrap_or_default());
            start = i + 1;
        }
    }
    pieces.push(s.get(start..).unwrap_or_default());
    pieces
}

/// Strip optional whitespace (spaces and tabs).
fn trim_ows(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

/// `token = 1*tchar` (RFC 7230 §3.2.6).
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(values: &[&str]) -> Vec<String> {
        values.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn token_lists() {
        let h: Vec<(String, Vec<u8>)> = vec![
            ("connection".into(), b"keep-alive".to_vec()),
            ("CONNECTION".into(), b" Keep-Alive ,  UpGrade ".to_vec()),
        ];
        assert!(has_token(values(&h, "Connection"), "upgrade"));
        assert!(has_token(values(&h, "connection"), "keep-alive"));
        assert!(!has_token(values(&h, "Connection"), "upgrad"));
        assert!(!has_token(values(&h, "Upgrade"), "upgrade"));
    }

    #[test]
    fn header_parsing() {
        let items = parse_extensions(&v(&[
            "foo, permessage-deflate ;client_max_window_bits ; server_max_window_bits = \"10\"",
            " , x-webkit-deflate-frame; a=\"b,c;d\"",
        ]));
        assert_eq!(items.len(), 3);
        assert_eq!(
            items[0],
            Ok(ExtensionItem {
                name: "foo".into(),
                params: vec![]
            })
        );
        assert_eq!(
            items[1],
            Ok(ExtensionItem {
                name: "permessage-deflate".into(),
                params: vec![
                    ("client_max_window_bits".into(), None),
                    ("server_max_window_bits".into(), Some("10".into())),
                ],
            })
        );
        // A quoted value may hold separators; after unquoting it must be a token, which
        // "b,c;d" is not.
        assert!(items[2].is_err());
        assert_eq!(unquote(r#""a\bc""#), Some("abc".into()));
        assert_eq!(unquote(r#""abc"x"#), None);
        assert_eq!(unquote(r#""abc"#), None);
        for bad in [
            "permessage-deflate;",
            "permessage-deflate; =1",
            "a b",
            "x; y=\"1",
            "x; y=1 2",
        ] {
            assert!(parse_extensions(&v(&[bad]))[0].is_err(), "{bad}");
        }
        assert!(parse_extensions(&v(&["", " ,, "])).is_empty());
    }

    #[test]
    fn lists() {
        assert_eq!(list_elements("a,b").collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(list_elements("\t a ,\t").collect::<Vec<_>>(), ["a"]);
        assert_eq!(
            list_elements("a;q=\"x,y\", b").collect::<Vec<_>>(),
            ["a;q=\"x,y\"", "b"]
        );
        assert_eq!(list_elements("").count(), 0);
    }
}
