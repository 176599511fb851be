//! Streaming UTF-8 validation for text messages (simdutf8).
//!
//! A text message arrives in pieces: frames, and parts of frames as TCP delivers them. The
//! connection feeds each newly unmasked (or inflated) piece to a [`Utf8Validator`], so an invalid
//! sequence fails the connection as soon as its bytes arrive, while a code point split between two
//! pieces is accepted.

/// Pieces shorter than this are first checked for plain ASCII (simdutf8 hands inputs shorter than
/// its 64-byte block to the standard library's validator anyway).
const SHORT: usize = 64;

/// Incremental UTF-8 validator that carries an incomplete trailing code point between pieces.
#[derive(Debug, Default, Clone)]
pub struct Utf8Validator {
    pending: [u8; 4],
    pending_len: u8,
}

/// The input is not valid UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidUtf8;

impl Utf8Validator {
    /// A validator at the start of a message.
    pub fn new() -> Self {
        Self::default()
    }

    /// Validate the next piece of the message.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<(), InvalidUtf8> {
        // Short ASCII pieces (most small text messages): a word-at-a-time scan is cheaper than
        // the validator's setup. Longer ones go to simdutf8, which has its own ASCII fast path.
        if self.pending_len == 0 && data.len() < SHORT && data.is_ascii() {
            return Ok(());
        }
        if self.pending_len > 0 {
            let have = self.pending_len as usize;
            let take = (4 - have).min(data.len());
            let mut tmp = [0u8; 4];
            tmp[..have].copy_from_slice(&self.pending[..have]);
            tmp[have..have + take].copy_from_slice(&data[..take]);
            let joined = &tmp[..have + take];
            match simdutf8::compat::from_utf8(joined) {
                Ok(_) => {
                    self.pending_len = 0;
                    data = &data[take..];
                }
                Err(e) if e.valid_up_to() >= have => {
                    // The pending code point completed; re-check everything after it below.
                    self.pending_len = 0;
                    data = &data[e.valid_up_to() - have..];
                }
                Err(e) => {
                    if e.error_len().is_some() {
                        return Err(InvalidUtf8);
                    }
                    // Still incomplete: all of `data` was taken into the pending code point.
                    self.pending[..joined.len()].copy_from_slice(joined);
                    self.pending_len = joined.len() as u8;
                    return Ok(());
                }
            }
        }
        match simdutf8::compat::from_utf8(data) {
            Ok(_) => Ok(()),
            Err(e) => {
                if e.error_len().is_some() {
                    return Err(InvalidUtf8);
                }
                let tail = &data[e.valid_up_to()..];
                self.pending[..tail.len()].copy_from_slice(tail);
                self.pending_len = tail.len() as u8;
                Ok(())
            }
        }
    }

    /// The message ended: fails if it ended inside a code point. Resets the validator.
    pub fn finish(&mut self) -> Result<(), InvalidUtf8> {
        let incomplete = self.pending_len != 0;
        self.pending_len = 0;
        if incomplete { Err(InvalidUtf8) } else { Ok(()) }
    }

    /// Whether the validator is in the middle of a code point.
    pub fn is_incomplete(&self) -> bool {
        self.pending_len != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check_split(data: &[u8], cuts: &[usize]) -> Result<(), InvalidUtf8> {
        let mut v = Utf8Validator::new();
        let mut prev = 0;
        for &c in cuts {
            let c = c.clamp(prev, data.len());
            v.feed(&data[prev..c])?;
            prev = c;
        }
        v.feed(&data[prev..])?;
        v.finish()
    }

    proptest! {
        #[test]
        fn valid_strings_any_split(s in ".{0,64}", mut cuts in proptest::collection::vec(0usize..300, 0..8)) {
            cuts.sort();
            prop_assert_eq!(check_split(s.as_bytes(), &cuts), Ok(()));
        }

        #[test]
        fn same_verdict_as_std(data in proptest::collection::vec(any::<u8>(), 0..64), mut cuts in proptest::collection::vec(0usize..64, 0..8)) {
            cuts.sort();
            let expect = std::str::from_utf8(&data).is_ok();
            prop_assert_eq!(check_split(&data, &cuts).is_ok(), expect);
        }
    }

    #[test]
    fn fails_fast() {
        let mut v = Utf8Validator::new();
        // U+10FFFF + 1 begins F4 90: invalid as soon as the second byte is seen.
        v.feed(b"abc\xf4").unwrap();
        assert_eq!(v.feed(b"\x90"), Err(InvalidUtf8));
        let mut v = Utf8Validator::new();
        assert_eq!(
            v.feed(b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80"),
            Err(InvalidUtf8)
        );
        let mut v = Utf8Validator::new();
        v.feed(b"\xe2\x82").unwrap();
        assert_eq!(v.finish(), Err(InvalidUtf8));
    }
}
