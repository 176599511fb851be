//! Reading an HTTP request head that arrives in pieces, looking at each byte once.
//!
//! A server reads the Upgrade request into a growing buffer and hands the whole buffer to a
//! [`RequestReader`] after every read. The reader remembers how far it has looked: it scans only
//! the bytes that arrived since, for the blank line that ends the head, and parses the head
//! ([`super::parse_request`]) once, when that line has come. So a head trickled in a few bytes
//! at a time costs time in proportion to its length, not to its length squared.
//!
//! Obvious garbage is still refused early: the first bytes, and the request line once it is
//! complete, are checked as they arrive ([`HandshakeError::Malformed`], 400).

use super::request::{HttpRequest, parse_request};
use super::{HandshakeError, MAX_HEADERS, parse_error};

/// The prefix checked after every read until the request line is complete: enough for the
/// method and the start of the target, so that a TLS ClientHello or an SSH banner sent to a
/// plain HTTP port is refused at once.
const EARLY_CHECK_BYTES: usize = 64;

/// An incremental reader of one HTTP/1.x request head.
#[derive(Debug, Clone)]
pub struct RequestReader {
    max_header_bytes: usize,
    /// Bytes of the buffer already scanned for the end of the head.
    scanned: usize,
    /// Whether a byte other than CR or LF was seen (blank lines before the request line are
    /// skipped, as HTTP allows).
    started: bool,
    /// Whether the request line is complete (and was checked).
    line_checked: bool,
    /// Bytes looked at in all: scanned, plus those the early checks and the final parse read.
    examined: usize,
}

impl RequestReader {
    /// A reader for a head of at most `max_header_bytes` (431 past it).
    pub fn new(max_header_bytes: usize) -> Self {
        RequestReader {
            max_header_bytes,
            scanned: 0,
            started: false,
            line_checked: false,
            examined: 0,
        }
    }

    /// Look at the bytes added to `buf` since the last call (`buf` must hold the same bytes as
    /// before at its start): the request and the length of its head once it is complete, as
    /// [`parse_request`] returns them, or `Ok(None)` while more bytes are needed.
    ///
    /// # Errors
    ///
    /// As [`parse_request`]: [`HandshakeError::HeadersTooLarge`] once more than
    /// `max_header_bytes` arrived without the end of the head,
    /// [`HandshakeError::TooManyHeaders`], [`HandshakeError::Malformed`].
    pub fn read(&mut self, buf: &[u8]) -> Result<Option<(HttpRequest, usize)>, HandshakeError> {
        // Past the limit there is nothing to find: a head that ends there is too large anyway.
        let window = &buf[..buf.len().min(self.max_header_bytes.saturating_add(1))];
        let mut i = self.scanned;
        while i < window.len() {
            let b = window[i];
            i += 1;
            match b {
                b'\n' if self.started => {
                    if !self.line_checked {
                        self.line_checked = true;
                        self.check_prefix(&window[..i])?;
                    }
                    if ends_head(&window[..i]) {
                        self.examined += i - self.scanned;
                        self.scanned = i;
                        return self.parse_head(buf, i);
                    }
                }
                b'\r' | b'\n' => {}
                _ => self.started = true,
            }
        }
        self.examined += window.len() - self.scanned;
        self.scanned = window.len();
        if !self.line_checked && window.len() <= EARLY_CHECK_BYTES {
            self.check_prefix(window)?;
        }
        if buf.len() > self.max_header_bytes {
            return Err(HandshakeError::HeadersTooLarge);
        }
        Ok(None)
    }

    /// How many bytes the reader has looked at so far (every call included): about the
    /// length of the head, however it was cut into reads.
    pub fn bytes_examined(&self) -> usize {
        self.examined
    }

    /// Check that `prefix` can start a request head.
    fn check_prefix(&mut self, prefix: &[u8]) -> Result<(), HandshakeError> {
        self.examined += prefix.len();
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        httparse::Request::new(&mut headers)
            .parse(prefix)
            .map_err(parse_error)?;
        Ok(())
    }

    /// Parse the complete head, `buf[..len]`.
    fn parse_head(
        &mut self,
        buf: &[u8],
        len: usize,
    ) -> Result<Option<(HttpRequest, usize)>, HandshakeError> {
        self.examined += len;
        match parse_request(&buf[..len], self.max_header_bytes)? {
            Some(parsed) => Ok(Some(parsed)),
            // The blank line ends the head for httparse too; not reached.
            None => Err(HandshakeError::Malformed("incomplete request head".into())),
        }
    }
}

/// Whether the line feed ending `bytes` ends a blank line (`\n\n` or `\n\r\n`).
fn ends_head(bytes: &[u8]) -> bool {
    matches!(bytes, [.., b'\n', b'\n'] | [.., b'\n', b'\r', b'\n'])
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &[u8] = b"GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n";

    /// Feed `bytes` to a reader `step` bytes at a time, as reads would deliver them.
    fn trickle(
        reader: &mut RequestReader,
        bytes: &[u8],
        step: usize,
    ) -> Result<Option<(HttpRequest, usize)>, HandshakeError> {
        let mut end = 0;
        loop {
            end = (end + step).min(bytes.len());
            if let Some(done) = reader.read(&bytes[..end])? {
                return Ok(Some(done));
            }
            if end == bytes.len() {
                return Ok(None);
            }
        }
    }

    #[test]
    fn same_result_as_parsing_the_whole_head_however_it_is_cut() {
        let mut with_frame = HEAD.to_vec();
        with_frame.extend_from_slice(b"\x81\x00");
        let whole = parse_request(&with_frame, 1024).unwrap().unwrap();
        for step in 1..with_frame.len() {
            let mut reader = RequestReader::new(1024);
            assert_eq!(
                trickle(&mut reader, &with_frame, step).unwrap().unwrap(),
                whole
            );
        }
        // Bare line feeds, and blank lines before the request line.
        let lf = b"\r\n\nGET / HTTP/1.1\nHost: x\n\n";
        let mut reader = RequestReader::new(1024);
        let (req, len) = trickle(&mut reader, lf, 3).unwrap().unwrap();
        assert_eq!((req.target.as_str(), len), ("/", lf.len()));
    }

    #[test]
    fn a_head_sent_two_bytes_at_a_time_is_looked_at_about_once() {
        // 15.5 KB of headers, 2 bytes per read: parsing the buffer from the start after every
        // read looked at ~60 MB; the reader looks at each byte about twice (scan, then parse).
        let mut head = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
        let filler = format!("X-Filler: {}\r\n", "f".repeat(250));
        while head.len() + filler.len() < 15_500 {
            head.extend_from_slice(filler.as_bytes());
        }
        head.extend_from_slice(b"\r\n");
        let mut reader = RequestReader::new(16 * 1024);
        let mut done = None;
        for end in (2..=head.len()).step_by(2).chain([head.len()]) {
            if let Some(parsed) = reader.read(&head[..end]).unwrap() {
                done = Some(parsed);
                break;
            }
        }
        let (req, len) = done.expect("the head is read");
        assert_eq!((req.headers.len(), len), (60, head.len()));
        let examined = reader.bytes_examined();
        assert!(
            examined <= 2 * head.len() + 2 * EARLY_CHECK_BYTES * EARLY_CHECK_BYTES,
            "{examined} bytes examined for a {}-byte head",
            head.len()
        );
    }

    #[test]
    fn limits_and_garbage() {
        // Too large: refused once the limit is passed, without waiting for the end.
        let mut reader = RequestReader::new(32);
        let long = b"GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\n";
        assert_eq!(
            trickle(&mut reader, long, 5),
            Err(HandshakeError::HeadersTooLarge)
        );
        // A complete head longer than the limit is too large too.
        let mut reader = RequestReader::new(HEAD.len() - 1);
        assert_eq!(reader.read(HEAD), Err(HandshakeError::HeadersTooLarge));
        assert!(RequestReader::new(HEAD.len()).read(HEAD).unwrap().is_some());
        // A TLS ClientHello or an SSH banner: refused with the first read.
        let mut reader = RequestReader::new(1024);
        assert!(matches!(
            reader.read(&[0x16, 0x03, 0x01, 0x02, 0x00]),
            Err(HandshakeError::Malformed(_))
        ));
        let mut reader = RequestReader::new(1024);
        assert!(matches!(
            trickle(&mut reader, b"SSH-2.0-OpenSSH_9.6\r\n", 4),
            Err(HandshakeError::Malformed(_))
        ));
        // A bad request line, complete past the early check: refused when it ends.
        let mut reader = RequestReader::new(1024);
        let mut bad = b"GET /".to_vec();
        bad.extend_from_slice(&[b'a'; 100]);
        bad.extend_from_slice(b" HTTP/9\r\n");
        assert!(matches!(
            trickle(&mut reader, &bad, 7),
            Err(HandshakeError::Malformed(_))
        ));
    }

    proptest::proptest! {
        #[test]
        fn agrees_with_parse_request(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            step in 1usize..50,
            max in 0usize..250,
        ) {
            let mut reader = RequestReader::new(max);
            let ours = trickle(&mut reader, &bytes, step);
            if let Ok(Some((req, len))) = &ours {
                proptest::prop_assert!(*len <= max);
                proptest::prop_assert_eq!(
                    parse_request(&bytes[..*len], max).unwrap(),
                    Some((req.clone(), *len))
                );
            }
        }

        #[test]
        fn valid_heads_are_read_whatever_the_cuts(step in 1usize..60, target in "/[a-z0-9]{0,40}") {
            let head = format!("GET {target} HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n");
            let mut reader = RequestReader::new(1024);
            let (req, len) = trickle(&mut reader, head.as_bytes(), step).unwrap().unwrap();
            proptest::prop_assert_eq!(len, head.len());
            proptest::prop_assert_eq!(req.target, target);
        }
    }
}
