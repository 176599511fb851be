//! [`ClusterUrl`]: the `redis-cluster://HOST:PORT[,HOST:PORT…]` form of
//! [`crate::Config::url`], parsed before the engine starts (a bad one is a usage error); the
//! nodes it names are the seeds from which the tasks learn the cluster's slots (see the
//! `connections` module's `primary`), and the hash tags every key gets in cluster mode
//! ([`hash_tagged`]).

use std::fmt;
use std::str::FromStr;

use crate::Error;
use crate::sentinel_url::{parse_host_port, write_hosts};

/// The scheme of a Cluster URL.
const SCHEME: &str = "redis-cluster://";

/// What a Cluster URL looks like, for error messages.
const EXPECTED: &str = "expected `redis-cluster://HOST:PORT[,HOST:PORT…]`";

/// A Redis Cluster: some of its nodes (any of them; the others are learned from them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterUrl {
    /// The seed nodes, `(host, port)`, in the order given.
    pub nodes: Vec<(String, u16)>,
}

impl ClusterUrl {
    /// Whether `url` is meant as a Cluster URL (its scheme is `redis-cluster://`).
    pub fn is_cluster(url: &str) -> bool {
        url.get(..SCHEME.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(SCHEME))
    }
}

impl FromStr for ClusterUrl {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        if s.contains('@') {
            // Not echoed: it may hold a password.
            return Err(Error::Url(format!(
                "credentials are not supported in a Cluster URL ({EXPECTED})"
            )));
        }
        let bad = |why: &str| Error::Url(format!("`{s}`: {why} ({EXPECTED})"));
        if !ClusterUrl::is_cluster(s) {
            return Err(bad("not a Cluster URL"));
        }
        let rest = &s[SCHEME.len()..];
        let hosts = rest.strip_suffix('/').unwrap_or(rest);
        if hosts.contains('/') || hosts.contains('?') {
            return Err(bad(
                "a Cluster URL has no database or options (a cluster has database 0 only)",
            ));
        }
        let mut nodes = Vec::new();
        for host_port in hosts.split(',') {
            nodes.push(parse_host_port(host_port, "node").map_err(|why| bad(&why))?);
        }
        Ok(ClusterUrl { nodes })
    }
}

impl fmt::Display for ClusterUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(SCHEME)?;
        write_hosts(f, &self.nodes)
    }
}

/// `NAME` as the part of a key (or shard channel) that puts every key of one destination in
/// one hash slot: `{NAME}`, which Redis Cluster hashes alone. A name it cannot carry that way
/// (empty, or with a `}`, which would end the tag early and could split a destination's keys
/// over two slots) becomes `{~HASH}~NAME`, HASH a stable hash of the name: never equal to
/// the tag of another name (`{NAME}` ends at its only `}`; this form goes on after it).
pub(crate) fn hash_tagged(name: &str) -> String {
    if !name.is_empty() && !name.contains('}') {
        return format!("{{{name}}}");
    }
    // FNV-1a, 64 bits: the same on every node.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{{~{hash:016x}}}~{name}")
}

/// The hash slot of `key` in a Redis Cluster: CRC16 (XMODEM) of the key, or of its hash tag
/// (the bytes between the first `{` and the next `}`, when not empty), modulo 16384.
pub(crate) fn key_slot(key: &[u8]) -> u16 {
    let hashed = key
        .iter()
        .position(|b| *b == b'{')
        .and_then(|open| {
            let tail = &key[open + 1..];
            let close = tail.iter().position(|b| *b == b'}')?;
            (close > 0).then(|| &tail[..close])
        })
        .unwrap_or(key);
    crc16(hashed) % 16384
}

/// CRC16-CCITT (XMODEM), as Redis Cluster computes it.
fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for byte in bytes {
        crc ^= u16::from(*byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_urls_name_their_nodes() {
        let url: ClusterUrl = "redis-cluster://10.0.0.1:7000,node-b:7001,[::1]:7002"
            .parse()
            .expect("valid");
        assert_eq!(
            url.nodes,
            vec![
                ("10.0.0.1".to_owned(), 7000),
                ("node-b".to_owned(), 7001),
                ("::1".to_owned(), 7002),
            ]
        );
        assert_eq!(
            url.to_string(),
            "redis-cluster://10.0.0.1:7000,node-b:7001,[::1]:7002"
        );
        let one: ClusterUrl = "REDIS-CLUSTER://h:1/".parse().expect("valid");
        assert_eq!(one.nodes, vec![("h".to_owned(), 1)]);
        assert!(ClusterUrl::is_cluster("redis-cluster://h:1"));
        assert!(!ClusterUrl::is_cluster("redis://h:1"));
    }

    #[test]
    fn bad_cluster_urls_say_what_is_wrong() {
        for (url, why) in [
            ("redis://h:1", "not a Cluster URL"),
            ("redis-cluster://", "HOST:PORT"),
            ("redis-cluster://h", "HOST:PORT"),
            ("redis-cluster://h:1,", "HOST:PORT"),
            ("redis-cluster://:7000", "host is missing"),
            ("redis-cluster://h:0", "port must be"),
            ("redis-cluster://h:70000", "port must be"),
            ("redis-cluster://h:1/0", "no database"),
            ("redis-cluster://h:1?x=1", "no database"),
            ("redis-cluster://[::1", "[IPV6]:PORT"),
            ("redis-cluster://u:pw@h:1", "credentials"),
        ] {
            let error = url.parse::<ClusterUrl>().expect_err(url).to_string();
            assert!(error.contains(why), "{url}: {error}");
            assert!(error.contains("redis-cluster://HOST:PORT"), "{error}");
            assert!(!error.contains("pw"), "{error}");
        }
    }

    #[test]
    fn slots_are_those_redis_computes() {
        // From the Redis Cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(crc16(b"123456789"), 0x31c3);
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"foo{}{bar}"), crc16(b"foo{}{bar}") % 16384);
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
    }

    #[test]
    fn a_destination_keeps_its_keys_in_one_slot() {
        for name in ["orders", "a}b", "}", "", "x{y", "{z}"] {
            let tag = hash_tagged(name);
            let stream = format!("wsx:q:{tag}");
            let meta = format!("wsx:qm:{tag}");
            let channel = format!("wsx:t:{tag}");
            assert_eq!(
                key_slot(stream.as_bytes()),
                key_slot(meta.as_bytes()),
                "{name}"
            );
            assert_eq!(
                key_slot(stream.as_bytes()),
                key_slot(channel.as_bytes()),
                "{name}"
            );
        }
        assert_eq!(hash_tagged("orders"), "{orders}");
        assert_ne!(hash_tagged("a}b"), hash_tagged("a"));
        assert!(hash_tagged("").starts_with("{~"));
    }
}
