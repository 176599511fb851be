//! Close codes and close frames (RFC 6455 §5.5.1, §7.4).
//!
//! A close frame's payload is empty, or a 2-byte big-endian code followed by a UTF-8 reason.
//! [`CloseFrame::parse`] validates what a peer sends; [`CloseFrame::encode`] builds ours.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{Error, ProtocolError};
use crate::message::Utf8Bytes;

/// The longest close reason: 123 bytes of UTF-8 (a control frame's 125-byte payload less the
/// 2-byte code). A longer one is refused by [`CloseFrame::validate_for_send`];
/// [`CloseFrame::truncated`] cuts one to fit.
pub const MAX_CLOSE_REASON: usize = 123;

/// A close status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: normal closure.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001: the endpoint is going away (server shutdown, page navigation).
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// 1002: protocol error.
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    /// 1003: a data type the endpoint cannot accept.
    pub const UNSUPPORTED_DATA: CloseCode = CloseCode(1003);
    /// 1005: no status code was present (never sent on the wire).
    pub const NO_STATUS: CloseCode = CloseCode(1005);
    /// 1006: the connection closed without a close frame (never sent on the wire).
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    /// 1007: data inconsistent with the message type (invalid UTF-8).
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    /// 1008: a message violates the endpoint's policy.
    pub const POLICY_VIOLATION: CloseCode = CloseCode(1008);
    /// 1009: a message too big to process.
    pub const MESSAGE_TOO_BIG: CloseCode = CloseCode(1009);
    /// 1010: the client expected an extension the server did not negotiate.
    pub const MANDATORY_EXTENSION: CloseCode = CloseCode(1010);
    /// 1011: the server met an unexpected condition.
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);
    /// 1012: the service is restarting.
    pub const SERVICE_RESTART: CloseCode = CloseCode(1012);
    /// 1013: try again later (overload).
    pub const TRY_AGAIN_LATER: CloseCode = CloseCode(1013);
    /// 1014: a gateway received an invalid response.
    pub const BAD_GATEWAY: CloseCode = CloseCode(1014);

    /// Whether this code may appear in a close frame on the wire: 1000-1003, 1007-1014 and
    /// 3000-4999. 1004-1006, 1015, codes under 1000 and 1016-2999 may not.
    pub fn is_allowed_on_wire(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

impl From<u16> for CloseCode {
    fn from(code: u16) -> Self {
        CloseCode(code)
    }
}

impl std::fmt::Display for CloseCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A close frame's code and reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseFrame {
    /// The status code.
    pub code: CloseCode,
    /// The reason, at most 123 bytes of UTF-8.
    pub reason: Utf8Bytes,
}

impl CloseFrame {
    /// A close frame with a code and reason.
    pub fn new(code: impl Into<CloseCode>, reason: impl Into<Utf8Bytes>) -> Self {
        CloseFrame {
            code: code.into(),
            reason: reason.into(),
        }
    }

    /// A close frame with a code and `reason` cut to [`MAX_CLOSE_REASON`] bytes on a character
    /// boundary, so that it can always be sent: for reasons built from error messages or peer
    /// input. A reason that fits is kept whole.
    ///
    /// ```
    /// use wsx_proto::{CloseCode, CloseFrame};
    /// let long = "é".repeat(100); // 200 bytes
    /// let frame = CloseFrame::truncated(CloseCode::POLICY_VIOLATION, &long);
    /// assert_eq!(frame.reason.len(), 122); // 61 whole characters
    /// assert!(frame.validate_for_send().is_ok());
    /// ```
    pub fn truncated(code: impl Into<CloseCode>, reason: &str) -> Self {
        let mut end = reason.len().min(MAX_CLOSE_REASON);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        CloseFrame::new(code, reason.get(..end).unwrap_or_default().to_owned())
    }

    /// Parse a close frame payload received from the peer. `None` means an empty payload
    /// (no status code).
    pub fn parse(payload: Bytes) -> Result<Option<CloseFrame>, Error> {
        match payload.len() {
            0 => Ok(None),
            1 => Err(ProtocolError::InvalidClosePayload.into()),
            _ => {
                let code = CloseCode(u16::from_be_bytes([payload[0], payload[1]]));
                if !code.is_allowed_on_wire() {
                    return Err(ProtocolError::InvalidCloseCode(code.0).into());
                }
                let reason =
                    Utf8Bytes::try_from(payload.slice(2..)).map_err(|_| Error::InvalidUtf8)?;
                Ok(Some(CloseFrame { code, reason }))
            }
        }
    }

    /// Check that this frame may be sent: an allowed code and a reason of at most 123 bytes.
    pub fn validate_for_send(&self) -> Result<(), Error> {
        if !self.code.is_allowed_on_wire() {
            return Err(Error::InvalidSend("close code may not be sent on the wire"));
        }
        if self.reason.len() > MAX_CLOSE_REASON {
            return Err(Error::InvalidSend("close reason over 123 bytes"));
        }
        Ok(())
    }

    /// Encode as a close frame payload.
    pub fn encode(&self, dst: &mut BytesMut) {
        dst.put_u16(self.code.0);
        dst.extend_from_slice(self.reason.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_codes() {
        for c in [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999,
        ] {
            assert!(CloseCode(c).is_allowed_on_wire(), "{c}");
        }
        for c in [
            0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535,
        ] {
            assert!(!CloseCode(c).is_allowed_on_wire(), "{c}");
        }
    }

    #[test]
    fn truncated_reasons_fit_and_stay_utf8() {
        assert_eq!(CloseFrame::truncated(1000, "bye").reason.as_str(), "bye");
        let exact = "a".repeat(MAX_CLOSE_REASON);
        assert_eq!(CloseFrame::truncated(1000, &exact).reason.as_str(), exact);
        let long = format!("{}€", "a".repeat(MAX_CLOSE_REASON - 1)); // € is 3 bytes
        let cut = CloseFrame::truncated(1000, &long);
        assert_eq!(cut.reason.as_str(), &long[..MAX_CLOSE_REASON - 1]);
        assert!(cut.validate_for_send().is_ok());
    }

    #[test]
    fn parse_close() {
        assert_eq!(CloseFrame::parse(Bytes::new()).unwrap(), None);
        assert!(matches!(
            CloseFrame::parse(Bytes::from_static(&[3])),
            Err(Error::Protocol(ProtocolError::InvalidClosePayload))
        ));
        assert!(matches!(
            CloseFrame::parse(Bytes::from_static(&[0x03, 0xed])),
            Err(Error::Protocol(ProtocolError::InvalidCloseCode(1005)))
        ));
        let f = CloseFrame::parse(Bytes::from_static(b"\x03\xe8bye"))
            .unwrap()
            .unwrap();
        assert_eq!(f.code, CloseCode::NORMAL);
        assert_eq!(f.reason.as_str(), "bye");
        assert!(matches!(
            CloseFrame::parse(Bytes::from_static(b"\x03\xe8\xff")),
            Err(Error::InvalidUtf8)
        ));
    }
}
