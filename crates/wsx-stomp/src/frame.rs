//! A decoded STOMP frame: command, headers, body.
//!
//! `content-length` is a framing header: the [`crate::Decoder`] uses it to find the end of the
//! body and removes it from [`Frame::headers`]; the encoder writes it for every non-empty body
//! (so bodies may hold NUL bytes) and ignores any `content-length` in `headers`. The body's
//! length is [`Frame::body`]`.len()`.

use bytes::Bytes;

use crate::command::Command;
use crate::error::Error;
use crate::headers::Headers;
use crate::version::Version;

/// One STOMP frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The command.
    pub command: Command,
    /// The headers, unescaped, in wire order, without `content-length`.
    pub headers: Headers,
    /// The body (shared with the decoder's read buffer when decoded).
    pub body: Bytes,
}

impl Frame {
    /// A frame with no headers and an empty body.
    pub fn new(command: Command) -> Self {
        Frame {
            command,
            headers: Headers::new(),
            body: Bytes::new(),
        }
    }

    /// Append a header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push(name, value);
        self
    }

    /// Set the body.
    pub fn with_body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// The value of the first header called `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }

    /// Encode for `version`; see [`crate::encode`].
    pub fn encode(&self, version: Version) -> Result<Bytes, Error> {
        crate::encode::encode(self, version)
    }
}
