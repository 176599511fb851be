//! Header escaping, which differs by protocol version and command.
//!
//! | version | escaped in names and values                    |
//! |---------|------------------------------------------------|
//! | 1.0     | nothing                                        |
//! | 1.1     | `\n` → `\\n`, `:` → `\\c`, `\\` → `\\\\`       |
//! | 1.2     | as 1.1, plus `\r` → `\\r`                      |
//!
//! CONNECT, STOMP and CONNECTED frames are never escaped: they are read before the version is
//! agreed, and STOMP 1.2 says so explicitly. An undefined escape sequence is a fatal error.

use bytes::{BufMut, BytesMut};

use crate::command::Command;
use crate::error::{Error, quote};
use crate::version::Version;

/// How header names and values of a frame are escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escaping {
    /// Written as is (STOMP 1.0, and CONNECT/STOMP/CONNECTED in every version).
    Raw,
    /// STOMP 1.1: `\n`, `:` and `\` escaped.
    V1_1,
    /// STOMP 1.2: `\r`, `\n`, `:` and `\` escaped.
    V1_2,
}

impl Escaping {
    /// The escaping of a frame with `command` in a session speaking `version`.
    pub fn for_frame(version: Version, command: Command) -> Escaping {
        if matches!(
            command,
            Command::Connect | Command::Stomp | Command::Connected
        ) {
            return Escaping::Raw;
        }
        match version {
            Version::V1_0 => Escaping::Raw,
            Version::V1_1 => Escaping::V1_1,
            Version::V1_2 => Escaping::V1_2,
        }
    }

    /// Append `text` to `out`, escaped. `Raw` copies it unchanged (the encoder checks first
    /// that raw text is representable).
    pub fn escape_into(self, text: &str, out: &mut BytesMut) {
        if self == Escaping::Raw || !text.bytes().any(|b| self.needs_escape(b)) {
            out.put_slice(text.as_bytes());
            return;
        }
        for b in text.bytes() {
            match b {
                b'\n' => out.put_slice(b"\\n"),
                b':' => out.put_slice(b"\\c"),
                b'\\' => out.put_slice(b"\\\\"),
                b'\r' if self == Escaping::V1_2 => out.put_slice(b"\\r"),
                _ => out.put_u8(b),
            }
        }
    }

    /// The escaped length of `text`.
    pub fn escaped_len(self, text: &str) -> usize {
        text.len() + text.bytes().filter(|&b| self.needs_escape(b)).count()
    }

    fn needs_escape(self, b: u8) -> bool {
        match self {
            Escaping::Raw => false,
            Escaping::V1_1 => matches!(b, b'\n' | b':' | b'\\'),
            Escaping::V1_2 => matches!(b, b'\n' | b':' | b'\\' | b'\r'),
        }
    }

    /// Unescape a raw header name or value and check it is UTF-8.
    pub fn unescape(self, raw: &[u8]) -> Result<String, Error> {
        if self == Escaping::Raw || !raw.contains(&b'\\') {
            return String::from_utf8(raw.to_vec()).map_err(|_| Error::InvalidUtf8);
        }
        let mut out = Vec::with_capacity(raw.len());
        let mut bytes = raw.iter().copied();
        while let Some(b) = bytes.next() {
            if b != b'\\' {
                out.push(b);
                continue;
            }
            let decoded = match bytes.next() {
                Some(b'n') => b'\n',
                Some(b'c') => b':',
                Some(b'\\') => b'\\',
                Some(b'r') if self == Escaping::V1_2 => b'\r',
                Some(other) => return Err(Error::InvalidEscape(quote(&[b'\\', other]))),
                None => return Err(Error::InvalidEscape("\\".to_owned())),
            };
            out.push(decoded);
        }
        String::from_utf8(out).map_err(|_| Error::InvalidUtf8)
    }

    /// Why the header `name: value` cannot be written with this escaping, if it cannot.
    ///
    /// Raw headers cannot hold a newline, a colon in the name, or a value ending in `\r`
    /// (decoders of 1.0 and 1.2 strip a `\r` before the newline). Escaped headers can hold
    /// anything.
    pub fn check(self, name: &str, value: &str) -> Result<(), &'static str> {
        if self != Escaping::Raw {
            return Ok(());
        }
        if name.contains(['\n', ':']) {
            return Err("a newline or colon in a header name needs escaping");
        }
        if value.contains('\n') {
            return Err("a newline in a header value needs escaping");
        }
        if value.ends_with('\r') {
            return Err("a header value ending in a carriage return needs escaping");
        }
        Ok(())
    }
}
