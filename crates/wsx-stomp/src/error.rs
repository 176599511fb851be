//! The one error type of `wsx-stomp`.
//!
//! Errors come from the codec: the [`crate::Decoder`] reports what is wrong with the bytes a
//! peer sent (each variant names the problem, and the session copies its text into the `message`
//! header of the ERROR frame it answers with), and the encoder reports a header that the chosen
//! protocol version cannot represent. The broker session never returns errors: a client's
//! mistakes become ERROR frames (see [`crate::Session`]). Engines use [`Error::Refused`] and
//! [`Error::Unsupported`] to turn down a SEND or a SUBSCRIBE, and [`crate::Selector::parse`]
//! reports an invalid selector; the session answers those with ERROR frames too.

/// Everything that can go wrong while decoding or encoding STOMP frames.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A frame (command line, headers, body and NUL) was larger than the limit.
    #[error("frame exceeds the limit of {limit} bytes")]
    FrameTooBig {
        /// The configured limit ([`crate::Limits::max_frame_size`]).
        limit: usize,
    },
    /// A frame had more headers than the limit.
    #[error("frame has more than {limit} headers")]
    TooManyHeaders {
        /// The configured limit ([`crate::Limits::max_headers`]).
        limit: usize,
    },
    /// A command or header line was longer than the limit.
    #[error("header line of at least {len} bytes exceeds the limit of {limit} bytes")]
    HeaderLineTooLong {
        /// The length reached when the limit was crossed.
        len: usize,
        /// The configured limit ([`crate::Limits::max_header_line`]).
        limit: usize,
    },
    /// The command and header lines of a frame together were longer than the limit.
    #[error("frame headers exceed the limit of {limit} bytes")]
    HeadersTooBig {
        /// The configured limit ([`crate::Limits::max_header_bytes`]).
        limit: usize,
    },
    /// A body was larger than the limit (announced by `content-length` or reached while
    /// looking for the terminating NUL).
    #[error("body of at least {size} bytes exceeds the limit of {limit} bytes")]
    BodyTooBig {
        /// The announced size, or the size reached so far.
        size: usize,
        /// The configured limit ([`crate::Limits::max_body_size`]).
        limit: usize,
    },
    /// The command line did not hold a STOMP command.
    #[error("unknown command `{0}`")]
    UnknownCommand(String),
    /// A header line had no colon.
    #[error("malformed header line `{0}`: no colon")]
    MalformedHeader(String),
    /// A header used a backslash escape the protocol version does not define.
    #[error("invalid escape sequence `{0}` in a header")]
    InvalidEscape(String),
    /// A header name or value was not valid UTF-8.
    #[error("header is not valid UTF-8")]
    InvalidUtf8,
    /// The `content-length` header was not a decimal number.
    #[error("invalid content-length `{0}`")]
    InvalidContentLength(String),
    /// The byte after a `content-length` body was not the NUL that ends a frame.
    #[error("the {0}-byte body announced by content-length is not followed by NUL")]
    MissingNul(usize),
    /// A header cannot be written in the requested protocol version (for example a newline in
    /// a STOMP 1.0 header value, which 1.0 has no escape for).
    #[error("header `{name}` cannot be encoded: {reason}")]
    Unencodable {
        /// The header name (possibly shortened).
        name: String,
        /// Why it cannot be encoded.
        reason: &'static str,
    },
    /// The engine refused a SEND: its shared store is unreachable and its backlog is full, or
    /// the destination is at its length limit. The session answers with an ERROR.
    #[error("message refused: {0}")]
    Refused(String),
    /// The engine already has as many destinations (queues and topics) as it may: a SUBSCRIBE
    /// or SEND that would add one is turned down (the session answers with an ERROR).
    #[error("the broker's limit of {limit} destinations (queues and topics) is reached")]
    DestinationLimit {
        /// The engine's limit (`MemoryEngine::with_max_destinations`).
        limit: usize,
    },
    /// The `selector` header of a SUBSCRIBE is not a valid [`crate::Selector`]: the text says
    /// what is wrong and where.
    #[error("invalid selector {0}")]
    InvalidSelector(String),
    /// The engine cannot do what a SUBSCRIBE asks (a selector it cannot evaluate, say).
    #[error("not supported: {0}")]
    Unsupported(String),
}

/// Shorten peer-controlled text quoted in an error to at most 64 bytes, on a char boundary,
/// with control characters escaped (`\n`, `\u{1b}`): error texts reach ERROR frames and logs.
pub(crate) fn quote(bytes: &[u8]) -> String {
    const MAX: usize = 64;
    let text = String::from_utf8_lossy(bytes);
    if text.len() <= MAX {
        return escape_controls(&text);
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", escape_controls(&text[..end]))
}

/// `text` with its control characters escaped the way `str::escape_debug` does (`\n`,
/// `\u{1b}`), everything else (quotes, non-ASCII letters) as is: for peer-controlled text in
/// error messages, which reach ERROR frames and log lines.
pub(crate) fn escape_controls(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_owned();
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            escaped.extend(c.escape_debug());
        } else {
            escaped.push(c);
        }
    }
    escaped
}
