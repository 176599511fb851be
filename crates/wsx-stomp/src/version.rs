//! STOMP protocol versions and the `accept-version` negotiation of CONNECT.
//!
//! The version decides how headers are escaped ([`crate::Escaping`]) and which headers ACK and
//! NACK carry; the session picks it when the client connects.

use std::fmt;

/// A STOMP protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Version {
    /// STOMP 1.0: no header escaping, no heart-beats, no NACK.
    V1_0,
    /// STOMP 1.1: `\n`, `:` and `\` escaped in headers; heart-beats; NACK.
    V1_1,
    /// STOMP 1.2: 1.1 plus `\r` escaped, optional `\r\n` line endings, `ack` ids.
    V1_2,
}

impl Version {
    /// Every version, oldest first.
    pub const ALL: [Version; 3] = [Version::V1_0, Version::V1_1, Version::V1_2];

    /// The version as written in `accept-version` and `version` headers (`"1.2"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Version::V1_0 => "1.0",
            Version::V1_1 => "1.1",
            Version::V1_2 => "1.2",
        }
    }

    /// Parse `"1.0"`, `"1.1"` or `"1.2"` (surrounding spaces allowed).
    pub fn parse(s: &str) -> Option<Version> {
        match s.trim() {
            "1.0" => Some(Version::V1_0),
            "1.1" => Some(Version::V1_1),
            "1.2" => Some(Version::V1_2),
            _ => None,
        }
    }

    /// The version a server speaks with a client: the highest version listed in the client's
    /// `accept-version` header (comma-separated) that `supported` holds. A missing header
    /// means the client only speaks 1.0. `None` when there is no common version.
    pub fn negotiate(accept_version: Option<&str>, supported: &[Version]) -> Option<Version> {
        match accept_version {
            None => supported.contains(&Version::V1_0).then_some(Version::V1_0),
            Some(list) => list
                .split(',')
                .filter_map(Version::parse)
                .filter(|v| supported.contains(v))
                .max(),
        }
    }

    /// The versions in `supported` as a `version` header value (`"1.0,1.1,1.2"`).
    pub fn list(supported: &[Version]) -> String {
        let mut versions: Vec<Version> = supported.to_vec();
        versions.sort();
        versions.dedup();
        versions
            .iter()
            .map(|v| v.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
