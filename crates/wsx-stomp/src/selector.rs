//! Message selectors: the `selector` header of SUBSCRIBE, a small expression over the headers
//! of a message that decides whether the subscription gets it.
//!
//! Sits between the [`crate::Session`], which parses the header when the SUBSCRIBE arrives (an
//! invalid selector is answered with an ERROR naming the problem), and the [`crate::Engine`],
//! which keeps the parsed [`Selector`] with the subscription and evaluates it before each
//! delivery ([`crate::ConsumerSet`] does it for the engines built on it).
//!
//! The language:
//!
//! ```text
//! selector   := or
//! or         := and ( OR and )*
//! and        := not ( AND not )*
//! not        := NOT not | '(' or ')' | comparison
//! comparison := NAME '=' 'value' | NAME '!=' 'value' | NAME '<>' 'value'
//! ```
//!
//! `NAME` is a header name (letters, digits, `_`, `-`, `.`); a value is single-quoted, with
//! `''` for a quote inside it. `AND`, `OR` and `NOT` are case-insensitive; `AND` binds tighter
//! than `OR`. `name = 'v'` holds when the message's `name` header (its first occurrence) is
//! exactly `v`; `name != 'v'` (or `<>`) is its negation, so it also holds when the message has
//! no `name` header. Example: `type = 'order' AND (region = 'eu' OR priority != 'low')`.
//! Nesting is limited to [`Selector::MAX_DEPTH`] levels.

use std::fmt;

use crate::error::{Error, quote};
use crate::headers::Headers;

/// A parsed selector. Cheap to evaluate: no allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    expr: Expr,
    text: Box<str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Expr {
    /// `header = value` (or its negation when `equal` is false).
    Cmp {
        header: Box<str>,
        value: Box<str>,
        equal: bool,
    },
    Not(Box<Expr>),
    And(Vec<Expr>),
    Or(Vec<Expr>),
}

impl Expr {
    fn matches(&self, headers: &Headers) -> bool {
        match self {
            Expr::Cmp {
                header,
                value,
                equal,
            } => (headers.get(header) == Some(&**value)) == *equal,
            Expr::Not(inner) => !inner.matches(headers),
            Expr::And(all) => all.iter().all(|e| e.matches(headers)),
            Expr::Or(any) => any.iter().any(|e| e.matches(headers)),
        }
    }
}

impl Selector {
    /// How deeply parentheses and `NOT`s may nest.
    pub const MAX_DEPTH: usize = 32;

    /// Parse a selector; [`Error::InvalidSelector`] names the problem and where it is.
    pub fn parse(text: &str) -> Result<Selector, Error> {
        let mut parser = Parser {
            tokens: tokenize(text)?,
            pos: 0,
        };
        if parser.tokens.is_empty() {
            return Err(invalid(text, "it is empty"));
        }
        let expr = parser.or(text, 0)?;
        if let Some((token, at)) = parser.tokens.get(parser.pos) {
            return Err(invalid(
                text,
                &format!("unexpected {token} at offset {at}: expected AND, OR or the end"),
            ));
        }
        Ok(Selector {
            expr,
            text: text.into(),
        })
    }

    /// Whether a message with these headers is selected.
    pub fn matches(&self, headers: &Headers) -> bool {
        self.expr.matches(headers)
    }

    /// The selector as the client wrote it.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn invalid(text: &str, reason: &str) -> Error {
    Error::InvalidSelector(format!("`{}`: {reason}", quote(text.as_bytes())))
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Name(String),
    Value(String),
    Eq,
    Ne,
    Open,
    Close,
    And,
    Or,
    Not,
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Name(name) => write!(f, "name `{}`", quote(name.as_bytes())),
            Token::Value(value) => write!(f, "value '{}'", quote(value.as_bytes())),
            Token::Eq => f.write_str("`=`"),
            Token::Ne => f.write_str("`!=`"),
            Token::Open => f.write_str("`(`"),
            Token::Close => f.write_str("`)`"),
            Token::And => f.write_str("AND"),
            Token::Or => f.write_str("OR"),
            Token::Not => f.write_str("NOT"),
        }
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

/// Split into tokens, each with its byte offset.
fn tokenize(text: &str) -> Result<Vec<(Token, usize)>, Error> {
    let mut tokens = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        let token = match c {
            c if c.is_whitespace() => continue,
            '(' => Token::Open,
            ')' => Token::Close,
            '=' => Token::Eq,
            '!' => match chars.next() {
                Some((_, '=')) => Token::Ne,
                _ => return Err(invalid(text, &format!("`!` at offset {at} is not `!=`"))),
            },
            '<' => match chars.next() {
                Some((_, '>')) => Token::Ne,
                _ => return Err(invalid(text, &format!("`<` at offset {at} is not `<>`"))),
            },
            '\'' => {
                let mut value = String::new();
                loop {
                    match chars.next() {
                        Some((_, '\'')) => {
                            if chars.next_if(|&(_, c)| c == '\'').is_some() {
                                value.push('\'');
                            } else {
                                break;
                            }
                        }
                        Some((_, c)) => value.push(c),
                        None => {
                            return Err(invalid(
                                text,
                                &format!("the value opened at offset {at} has no closing quote"),
                            ));
                        }
                    }
                }
                Token::Value(value)
            }
            c if is_name_char(c) => {
                let mut name = String::from(c);
                while let Some((_, c)) = chars.next_if(|&(_, c)| is_name_char(c)) {
                    name.push(c);
                }
                match name.to_ascii_uppercase().as_str() {
                    "AND" => Token::And,
                    "OR" => Token::Or,
                    "NOT" => Token::Not,
                    _ => Token::Name(name),
                }
            }
            c => {
                return Err(invalid(
                    text,
                    &format!("unexpected character `{c}` at offset {at}"),
                ));
            }
        };
        tokens.push((token, at));
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<(Token, usize)>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos).map(|(t, _)| t)
    }

    fn next(&mut self, text: &str, wanted: &str) -> Result<(Token, usize), Error> {
        match self.tokens.get(self.pos) {
            Some(token) => {
                self.pos += 1;
                Ok(token.clone())
            }
            None => Err(invalid(
                text,
                &format!("it ends where {wanted} was expected"),
            )),
        }
    }

    fn or(&mut self, text: &str, depth: usize) -> Result<Expr, Error> {
        let mut any = vec![self.and(text, depth)?];
        while self.peek() == Some(&Token::Or) {
            self.pos += 1;
            any.push(self.and(text, depth)?);
        }
        Ok(if any.len() == 1 {
            any.remove(0)
        } else {
            Expr::Or(any)
        })
    }

    fn and(&mut self, text: &str, depth: usize) -> Result<Expr, Error> {
        let mut all = vec![self.not(text, depth)?];
        while self.peek() == Some(&Token::And) {
            self.pos += 1;
            all.push(self.not(text, depth)?);
        }
        Ok(if all.len() == 1 {
            all.remove(0)
        } else {
            Expr::And(all)
        })
    }

    fn not(&mut self, text: &str, depth: usize) -> Result<Expr, Error> {
        if depth >= Selector::MAX_DEPTH {
            return Err(invalid(
                text,
                &format!("it nests deeper than {} levels", Selector::MAX_DEPTH),
            ));
        }
        match self.next(text, "a comparison")? {
            (Token::Not, _) => Ok(Expr::Not(Box::new(self.not(text, depth + 1)?))),
            (Token::Open, at) => {
                let inner = self.or(text, depth + 1)?;
                match self.next(text, &format!("`)` closing offset {at}"))? {
                    (Token::Close, _) => Ok(inner),
                    (token, at) => Err(invalid(
                        text,
                        &format!("unexpected {token} at offset {at}: expected `)`"),
                    )),
                }
            }
            (Token::Name(header), _) => {
                let equal = match self.next(text, "`=` or `!=`")? {
                    (Token::Eq, _) => true,
                    (Token::Ne, _) => false,
                    (token, at) => {
                        return Err(invalid(
                            text,
                            &format!(
                                "unexpected {token} at offset {at}: expected `=` or `!=` after `{header}`"
                            ),
                        ));
                    }
                };
                match self.next(text, "a quoted value")? {
                    (Token::Value(value), _) => Ok(Expr::Cmp {
                        header: header.into(),
                        value: value.into(),
                        equal,
                    }),
                    (token, at) => Err(invalid(
                        text,
                        &format!("unexpected {token} at offset {at}: expected a quoted value"),
                    )),
                }
            }
            (token, at) => Err(invalid(
                text,
                &format!("unexpected {token} at offset {at}: expected a header name, NOT or `(`"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Headers {
        let mut h = Headers::new();
        for (n, v) in pairs {
            h.push(*n, *v);
        }
        h
    }

    #[test]
    fn evaluates() {
        let s = Selector::parse("type = 'order' AND (region = 'eu' OR priority != 'low')")
            .expect("valid");
        assert!(s.matches(&headers(&[("type", "order"), ("region", "eu")])));
        assert!(s.matches(&headers(&[("type", "order"), ("region", "us")])));
        assert!(!s.matches(&headers(&[
            ("type", "order"),
            ("region", "us"),
            ("priority", "low")
        ])));
        assert!(!s.matches(&headers(&[("type", "quote")])));
        let s = Selector::parse("not a <> 'it''s' or B='x y'").expect("valid");
        assert!(s.matches(&headers(&[("a", "it's")])));
        assert!(s.matches(&headers(&[("B", "x y")])));
        assert!(!s.matches(&headers(&[])));
        // The first occurrence of a repeated header counts.
        let s = Selector::parse("k = 'one'").expect("valid");
        assert!(s.matches(&headers(&[("k", "one"), ("k", "two")])));
        assert!(!s.matches(&headers(&[("k", "two"), ("k", "one")])));
        assert_eq!(s.to_string(), "k = 'one'");
    }

    #[test]
    fn errors_name_the_problem() {
        for (text, needle) in [
            ("", "it is empty"),
            ("   ", "it is empty"),
            ("a = 'x", "no closing quote"),
            ("a = x", "expected a quoted value"),
            ("a 'x'", "expected `=` or `!=` after `a`"),
            ("a = 'x' b = 'y'", "unexpected name `b` at offset 8"),
            ("(a = 'x'", "`)` closing offset 0"),
            ("a = 'x')", "unexpected `)` at offset 7"),
            ("a = 'x' AND", "it ends where a comparison"),
            ("a ! 'x'", "`!` at offset 2 is not `!=`"),
            ("a = 'x' && b = 'y'", "unexpected character `&` at offset 8"),
            ("AND", "expected a header name, NOT or `(`"),
        ] {
            let error = Selector::parse(text).expect_err(text).to_string();
            assert!(error.contains(needle), "{text}: {error}");
            assert!(error.starts_with("invalid selector"), "{error}");
        }
        let deep = format!("{}a = 'x'{}", "(".repeat(40), ")".repeat(40));
        let error = Selector::parse(&deep).expect_err("too deep").to_string();
        assert!(error.contains("deeper than 32"), "{error}");
        let nots = format!("{}a = 'x'", "NOT ".repeat(1000));
        assert!(Selector::parse(&nots).is_err());
        assert!(Selector::parse(&format!("{}a = 'x'", "NOT ".repeat(31))).is_ok());
    }
}
