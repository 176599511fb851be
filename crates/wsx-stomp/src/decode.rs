//! The streaming frame decoder: bytes in, [`Frame`]s out.
//!
//! STOMP over WebSocket puts no constraint on how frames map to messages: a frame may be split
//! across several WebSocket messages, and one message may pack several frames plus heart-beat
//! end-of-lines. The decoder therefore only sees a byte stream: [`Decoder::feed`] appends the
//! payload of each WebSocket message, [`Decoder::poll_frame`] returns the next complete frame.
//!
//! Work is never repeated: lines already scanned are not rescanned when more bytes arrive, and a
//! body is handed out as a [`bytes::Bytes`] slice of the read buffer, without a copy.
//!
//! Line endings: the command line and the blank line ending the headers may end in `\r\n` in
//! every version; header lines do in 1.0 and 1.2 (the `\r` is stripped) but not in 1.1, where a
//! `\r` before the newline belongs to the value. Empty lines between frames are heart-beats and
//! are skipped.

use bytes::{Buf, Bytes, BytesMut};

use crate::command::Command;
use crate::error::{Error, quote};
use crate::escape::Escaping;
use crate::frame::Frame;
use crate::headers::Headers;
use crate::limits::Limits;
use crate::version::Version;

/// A streaming STOMP decoder.
///
/// After an error the stream cannot be resynchronised: every later call to
/// [`Decoder::poll_frame`] returns the same error.
#[derive(Debug)]
pub struct Decoder {
    buf: BytesMut,
    limits: Limits,
    version: Version,
    state: State,
    failed: Option<Error>,
}

#[derive(Debug)]
enum State {
    /// Reading the command and header lines. `scanned` bytes of the buffer are complete lines
    /// and the bytes up to `searched` hold no newline; `headers` lines after the command line
    /// have been seen.
    Head {
        scanned: usize,
        searched: usize,
        command: Option<Command>,
        headers: usize,
    },
    /// The header block is parsed; waiting for the body from `body_start`.
    Body {
        command: Command,
        headers: Headers,
        content_length: Option<usize>,
        body_start: usize,
        scanned: usize,
    },
}

const HEAD_START: State = State::Head {
    scanned: 0,
    searched: 0,
    command: None,
    headers: 0,
};

impl Decoder {
    /// A decoder with `limits`, reading headers as STOMP 1.2 until [`Decoder::set_version`]
    /// (CONNECT, STOMP and CONNECTED frames are unescaped whatever the version).
    pub fn new(limits: Limits) -> Self {
        Decoder {
            buf: BytesMut::new(),
            limits,
            version: Version::V1_2,
            state: HEAD_START,
            failed: None,
        }
    }

    /// Decode the frames that follow with the rules of `version` (call it once the CONNECT /
    /// CONNECTED exchange has agreed one).
    pub fn set_version(&mut self, version: Version) {
        self.version = version;
    }

    /// The version whose rules the decoder applies.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The limits enforced.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Append received bytes (for example the payload of one WebSocket message).
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.failed.is_none() {
            self.buf.extend_from_slice(bytes);
        }
    }

    /// Bytes received but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Whether no partial frame is buffered (only heart-beat end-of-lines at most).
    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Head { scanned: 0, .. })
            && self.buf.iter().all(|&b| b == b'\n' || b == b'\r')
    }

    /// The next complete frame, `Ok(None)` if more bytes are needed.
    pub fn poll_frame(&mut self) -> Result<Option<Frame>, Error> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        let result = self.step();
        if let Err(error) = &result {
            self.failed = Some(error.clone());
            self.buf = BytesMut::new();
        }
        result
    }

    fn step(&mut self) -> Result<Option<Frame>, Error> {
        if let State::Head { .. } = self.state
            && !self.scan_head()?
        {
            return Ok(None);
        }
        self.scan_body()
    }

    /// Scan header lines; `true` once the header block is complete and parsed.
    fn scan_head(&mut self) -> Result<bool, Error> {
        let State::Head {
            scanned,
            searched,
            command,
            headers,
        } = &mut self.state
        else {
            return Ok(true);
        };
        if command.is_none() && *scanned == 0 {
            let skipped = skip_heart_beats(&mut self.buf);
            *searched = searched.saturating_sub(skipped);
        }
        let limits = &self.limits;
        loop {
            let from = (*searched).max(*scanned);
            let Some(newline) = self.buf[from..].iter().position(|&b| b == b'\n') else {
                *searched = self.buf.len();
                if command.is_none() && &self.buf[*scanned..] == b"\r" {
                    // Half of a CRLF heart-beat: wait for the rest, as a whole one is skipped.
                    return Ok(false);
                }
                let partial = self.buf.len() - *scanned;
                if partial > limits.max_header_line {
                    return Err(Error::HeaderLineTooLong {
                        len: partial,
                        limit: limits.max_header_line,
                    });
                }
                if self.buf.len() > limits.max_header_bytes {
                    return Err(Error::HeadersTooBig {
                        limit: limits.max_header_bytes,
                    });
                }
                if self.buf.len() > limits.max_frame_size {
                    return Err(Error::FrameTooBig {
                        limit: limits.max_frame_size,
                    });
                }
                return Ok(false);
            };
            let start = *scanned;
            let end = from + newline;
            *scanned = end + 1;
            let line = strip_cr(&self.buf[start..end]);
            if line.len() > limits.max_header_line {
                return Err(Error::HeaderLineTooLong {
                    len: line.len(),
                    limit: limits.max_header_line,
                });
            }
            if *scanned > limits.max_frame_size {
                return Err(Error::FrameTooBig {
                    limit: limits.max_frame_size,
                });
            }
            if *scanned > limits.max_header_bytes {
                return Err(Error::HeadersTooBig {
                    limit: limits.max_header_bytes,
                });
            }
            let Some(cmd) = *command else {
                let cmd = Command::parse(line).ok_or_else(|| Error::UnknownCommand(quote(line)))?;
                *command = Some(cmd);
                continue;
            };
            if !line.is_empty() {
                *headers += 1;
                if *headers > limits.max_headers {
                    return Err(Error::TooManyHeaders {
                        limit: limits.max_headers,
                    });
                }
                continue;
            }
            let body_start = *scanned;
            // Everything before the newline that ends the last header line.
            let head = &self.buf[..start.saturating_sub(1)];
            let (parsed, content_length) = parse_headers(head, cmd, self.version, *headers)?;
            if let Some(len) = content_length {
                if len > limits.max_body_size {
                    return Err(Error::BodyTooBig {
                        size: len,
                        limit: limits.max_body_size,
                    });
                }
                if body_start.saturating_add(len).saturating_add(1) > limits.max_frame_size {
                    return Err(Error::FrameTooBig {
                        limit: limits.max_frame_size,
                    });
                }
            }
            self.state = State::Body {
                command: cmd,
                headers: parsed,
                content_length,
                body_start,
                scanned: body_start,
            };
            return Ok(true);
        }
    }

    /// Wait for the body and the NUL; hand out the frame.
    fn scan_body(&mut self) -> Result<Option<Frame>, Error> {
        let State::Body {
            content_length,
            body_start,
            scanned,
            ..
        } = &mut self.state
        else {
            return Ok(None);
        };
        let body_start = *body_start;
        let body_len = match *content_length {
            Some(len) => {
                let nul = body_start + len;
                if self.buf.len() <= nul {
                    return Ok(None);
                }
                if self.buf[nul] != 0 {
                    return Err(Error::MissingNul(len));
                }
                len
            }
            None => match self.buf[*scanned..].iter().position(|&b| b == 0) {
                Some(pos) => *scanned + pos - body_start,
                None => {
                    *scanned = self.buf.len();
                    let size = self.buf.len() - body_start;
                    if size > self.limits.max_body_size {
                        return Err(Error::BodyTooBig {
                            size,
                            limit: self.limits.max_body_size,
                        });
                    }
                    if self.buf.len() > self.limits.max_frame_size {
                        return Err(Error::FrameTooBig {
                            limit: self.limits.max_frame_size,
                        });
                    }
                    return Ok(None);
                }
            },
        };
        if body_len > self.limits.max_body_size {
            return Err(Error::BodyTooBig {
                size: body_len,
                limit: self.limits.max_body_size,
            });
        }
        let frame_len = body_start + body_len + 1;
        if frame_len > self.limits.max_frame_size {
            return Err(Error::FrameTooBig {
                limit: self.limits.max_frame_size,
            });
        }
        let State::Body {
            command, headers, ..
        } = std::mem::replace(&mut self.state, HEAD_START)
        else {
            return Ok(None);
        };
        let bytes: Bytes = self.buf.split_to(frame_len).freeze();
        Ok(Some(Frame {
            command,
            headers,
            body: bytes.slice(body_start..body_start + body_len),
        }))
    }
}

/// Drop end-of-lines before a frame (heart-beats); keep a lone trailing `\r` for later.
/// Returns how many bytes were dropped.
fn skip_heart_beats(buf: &mut BytesMut) -> usize {
    let mut i = 0;
    loop {
        match buf.get(i) {
            Some(b'\n') => i += 1,
            Some(b'\r') if buf.get(i + 1) == Some(&b'\n') => i += 2,
            _ => break,
        }
    }
    buf.advance(i);
    i
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Parse the header lines of `head` (command line included, final blank line excluded).
/// Returns the headers without `content-length`, and the body length it announced.
fn parse_headers(
    head: &[u8],
    command: Command,
    version: Version,
    count: usize,
) -> Result<(Headers, Option<usize>), Error> {
    let escaping = Escaping::for_frame(version, command);
    let strip_value_cr = version != Version::V1_1;
    let mut headers = Headers::with_capacity(count);
    let mut content_length = None;
    let mut seen_content_length = false;
    // The first line is the command, already parsed.
    for line in head.split(|&b| b == b'\n').skip(1) {
        let line = if strip_value_cr { strip_cr(line) } else { line };
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or_else(|| Error::MalformedHeader(quote(line)))?;
        let name = escaping.unescape(&line[..colon])?;
        let value = escaping.unescape(&line[colon + 1..])?;
        if name == "content-length" {
            if !seen_content_length {
                seen_content_length = true;
                content_length = Some(parse_content_length(&value)?);
            }
            continue;
        }
        headers.push(name, value);
    }
    Ok((headers, content_length))
}

fn parse_content_length(value: &str) -> Result<usize, Error> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::InvalidContentLength(quote(value.as_bytes())));
    }
    // Too many digits for usize is too big for any limit.
    Ok(value.parse().unwrap_or(usize::MAX))
}
