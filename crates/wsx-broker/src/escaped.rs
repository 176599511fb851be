//! [`Escaped`]: what a client sent, safe to put in a log line.
//!
//! Log lines of `wsx serve` carry strings that clients chose: request paths and methods, chat
//! names, file names, parser errors that quote input, handshake errors that quote headers. A
//! newline in one would forge a log line, an escape sequence would drive the operator's
//! terminal. Every such value goes through [`Escaped`], which writes control characters (and
//! the invisible bidirectional-text controls, which reorder what a terminal shows) as Rust
//! escapes: `\n`, `\u{1b}`, `\u{202e}`. Everything else is written as it is.

use std::fmt::{self, Display, Write};

/// Displays its value with control characters escaped.
#[derive(Debug, Clone, Copy)]
pub struct Escaped<T>(pub T);

impl<T: Display> Display for Escaped<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(EscapingWriter(f), "{}", self.0)
    }
}

/// Passes text on to a formatter, escaping the characters [`needs_escape`] names.
struct EscapingWriter<'a, 'b>(&'a mut fmt::Formatter<'b>);

impl Write for EscapingWriter<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut plain = 0;
        for (i, c) in s.char_indices() {
            if needs_escape(c) {
                self.0.write_str(&s[plain..i])?;
                write!(self.0, "{}", c.escape_debug())?;
                plain = i + c.len_utf8();
            }
        }
        self.0.write_str(&s[plain..])
    }
}

/// Control characters (C0, DEL, C1) and the bidirectional-text controls.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(Escaped("plain café").to_string(), "plain café");
        assert_eq!(
            Escaped("a\nINFO forged\r\x1b[2J\t\u{7f}\u{85}").to_string(),
            "a\\nINFO forged\\r\\u{1b}[2J\\t\\u{7f}\\u{85}"
        );
        assert_eq!(
            Escaped("evil\u{202e}txt.exe").to_string(),
            "evil\\u{202e}txt.exe"
        );
        // Quotes and backslashes stay as they are.
        assert_eq!(Escaped(r#"a "b" \c"#).to_string(), r#"a "b" \c"#);
        // Any Display value, e.g. an error quoting input.
        assert_eq!(
            Escaped(format_args!("bad `{}`", "x\ny")).to_string(),
            "bad `x\\ny`"
        );
    }
}
