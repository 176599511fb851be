//! The `no_proxy` list: which servers [`ProxyConfig::from_env`](super::ProxyConfig::from_env)
//! reaches directly, following curl.

use std::net::IpAddr;

use wsx_proto::handshake::{HostPort, HostPortError, split_host_port, unbracket};

use crate::error::{Error, Result};

/// A `no_proxy` list: the hosts to reach directly, without the proxy, following curl.
///
/// Entries are separated by commas (and/or whitespace) and compared case-insensitively:
///
/// - `*` alone: every host.
/// - A domain, `example.com` or `.example.com` (or `*.example.com`): that host and every
///   subdomain (`www.example.com`), but not `notexample.com`.
/// - An IP address, `10.1.2.3` or `::1` (or `[::1]`): that address; a host name is not resolved
///   to be compared with it.
/// - A CIDR block, `10.0.0.0/8` or `fd00::/8`: the addresses in it.
/// - Any of these followed by `:port` (`example.com:8080`, `[::1]:9000`): only that port.
///
/// ```
/// use wsx::NoProxy;
/// let np = NoProxy::parse("localhost, .internal.example, 10.0.0.0/8, api.example:8443")?;
/// assert!(np.matches("localhost", 80));
/// assert!(np.matches("svc.internal.example", 443));
/// assert!(np.matches("10.2.3.4", 80));
/// assert!(np.matches("api.example", 8443));
/// assert!(!np.matches("api.example", 443));
/// assert!(!np.matches("example.org", 80));
/// # Ok::<(), wsx::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NoProxy {
    entries: Vec<NoProxyEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum NoProxyEntry {
    All,
    Domain(String, Option<u16>),
    Ip(IpAddr, Option<u16>),
    Cidr(IpAddr, u8, Option<u16>),
}

impl NoProxy {
    /// Parses a `no_proxy` value.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidUrl`], naming the entry and what is wrong with it, for an entry that
    /// cannot be understood: a CIDR prefix longer than the address (`/33` for IPv4, `/129` for
    /// IPv6), a CIDR block written as an IPv4-mapped IPv6 address (`::ffff:10.0.0.0/104`: write
    /// `10.0.0.0/8`), a bad port, an unclosed `[`. A mistyped entry is reported rather than
    /// skipped, since skipping it would send to the proxy what was meant to bypass it.
    pub fn parse(list: &str) -> Result<Self> {
        let entries = list
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|e| !e.is_empty())
            .map(|e| {
                NoProxyEntry::parse(e)
                    .map_err(|why| Error::InvalidUrl(format!("no_proxy entry {e:?}: {why}")))
            })
            .collect::<Result<_>>()?;
        Ok(NoProxy { entries })
    }

    /// Whether the server `host:port` is to be reached without the proxy. `host` is a DNS
    /// name or an IP address (IPv6 with or without brackets), as in [`WsUrl::host`](crate::WsUrl::host).
    pub fn matches(&self, host: &str, port: u16) -> bool {
        let host = unbracket(host).trim_end_matches('.').to_ascii_lowercase();
        let ip = host.parse::<IpAddr>().ok();
        self.entries.iter().any(|e| e.matches(&host, ip, port))
    }

    /// Whether the list has no usable entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl NoProxyEntry {
    fn parse(entry: &str) -> std::result::Result<Self, &'static str> {
        let entry = entry.to_ascii_lowercase();
        if entry == "*" {
            return Ok(NoProxyEntry::All);
        }
        let bad_port = "the port is not a number from 0 to 65535";
        // `[v6]:p`, `name:p`, `v4:p`; a bare IPv6 address (several colons) has no port.
        let HostPort { host, port, .. } = split_host_port(&entry).map_err(|e| match e {
            HostPortError::UnclosedBracket => "no closing `]`",
            _ => "`]` is followed by something else than `:port`",
        })?;
        let port = port
            .map(|p| p.parse::<u16>().map_err(|_| bad_port))
            .transpose()?;
        let addr = host;
        if let Some((ip, bits)) = addr.split_once('/') {
            let ip = ip
                .parse::<IpAddr>()
                .map_err(|_| "a CIDR block needs an IP address before the `/`")?;
            let bits = bits
                .parse::<u8>()
                .map_err(|_| "the CIDR prefix length is not a number")?;
            return match ip {
                IpAddr::V4(_) if bits > 32 => Err("an IPv4 prefix is at most /32"),
                IpAddr::V6(_) if bits > 128 => Err("an IPv6 prefix is at most /128"),
                IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => Err(
                    "an IPv4-mapped CIDR block (::ffff:a.b.c.d/n); write the IPv4 block a.b.c.d/n",
                ),
                _ => Ok(NoProxyEntry::Cidr(ip, bits, port)),
            };
        }
        if let Ok(ip) = addr.parse::<IpAddr>() {
            return Ok(NoProxyEntry::Ip(ip, port));
        }
        let domain = addr
            .strip_prefix("*.")
            .or_else(|| addr.strip_prefix('.'))
            .unwrap_or(addr)
            .trim_end_matches('.');
        if domain.is_empty() {
            return Err("no host name");
        }
        Ok(NoProxyEntry::Domain(domain.to_owned(), port))
    }

    fn matches(&self, host: &str, ip: Option<IpAddr>, port: u16) -> bool {
        let port_ok = |p: &Option<u16>| p.is_none_or(|p| p == port);
        match self {
            NoProxyEntry::All => true,
            NoProxyEntry::Domain(d, p) => {
                ip.is_none()
                    && port_ok(p)
                    && (host == d
                        || (host.len() > d.len()
                            && host.ends_with(d.as_str())
                            && host.as_bytes()[host.len() - d.len() - 1] == b'.'))
            }
            NoProxyEntry::Ip(e, p) => ip.is_some_and(|ip| same_ip(ip, *e)) && port_ok(p),
            NoProxyEntry::Cidr(net, bits, p) => {
                ip.is_some_and(|ip| in_cidr(ip, *net, *bits)) && port_ok(p)
            }
        }
    }
}

/// IP equality, treating an IPv4-mapped IPv6 address as its IPv4 address.
fn same_ip(a: IpAddr, b: IpAddr) -> bool {
    a.to_canonical() == b.to_canonical()
}

/// Whether `ip` (IPv4-mapped IPv6 counting as IPv4) is in the block `net/bits`; a prefix
/// longer than the address matches nothing (the parser refuses it).
fn in_cidr(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip.to_canonical(), net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let Some(host_bits) = 32u32.checked_sub(u32::from(bits)) else {
                return false;
            };
            let mask = u32::MAX.checked_shl(host_bits).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let Some(host_bits) = 128u32.checked_sub(u32::from(bits)) else {
                return false;
            };
            let mask = u128::MAX.checked_shl(host_bits).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(in_cidr(ip("10.1.2.3"), ip("10.0.0.0"), 8));
        assert!(!in_cidr(ip("11.1.2.3"), ip("10.0.0.0"), 8));
        assert!(in_cidr(ip("1.2.3.4"), ip("0.0.0.0"), 0));
        assert!(in_cidr(ip("1.2.3.4"), ip("1.2.3.4"), 32));
        assert!(in_cidr(ip("fd00::1"), ip("fd00::"), 8));
        assert!(!in_cidr(ip("fe80::1"), ip("fd00::"), 8));
        assert!(in_cidr(ip("::ffff:10.0.0.1"), ip("10.0.0.0"), 8));
        assert!(!in_cidr(ip("10.0.0.1"), ip("fd00::"), 8));
        // Prefixes longer than the address match nothing (and do not underflow).
        assert!(!in_cidr(ip("::ffff:10.0.0.1"), ip("10.0.0.0"), 104));
        assert!(!in_cidr(ip("10.0.0.1"), ip("10.0.0.0"), 255));
        assert!(!in_cidr(ip("::1"), ip("::"), 200));
    }

    #[test]
    fn cidr_prefixes_are_checked_when_parsed() {
        for (entry, why) in [
            ("::ffff:10.0.0.0/104", "IPv4-mapped"),
            ("::ffff:1.2.3.4/96", "IPv4-mapped"),
            ("[::ffff:10.0.0.0/120]:80", "IPv4-mapped"),
            ("10.0.0.0/33", "at most /32"),
            ("10.0.0.0/255", "at most /32"),
            ("fd00::/129", "at most /128"),
            ("10.0.0.0/256", "not a number"),
            ("10.0.0.0/-1", "not a number"),
            ("10.0.0.0/", "not a number"),
            ("nothost/8", "IP address"),
            ("h:notaport", "port"),
            ("[::1", "`]`"),
        ] {
            let err = NoProxy::parse(&format!("ok.example, {entry}")).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(entry) && msg.contains(why), "{entry}: {msg}");
        }
        for entry in [
            "10.0.0.0/32",
            "10.0.0.0/0",
            "fd00::/128",
            "::/0",
            "[fd00::/8]:443",
        ] {
            assert!(NoProxy::parse(entry).is_ok(), "{entry}");
        }
    }

    proptest::proptest! {
        #[test]
        fn no_proxy_parsing_never_panics(entry in "[0-9a-f:./\\[\\]%]{0,40}", bits in 0u16..400) {
            let list = format!("{entry}, {entry}/{bits}");
            if let Ok(np) = NoProxy::parse(&list) {
                let _ = np.matches("::ffff:10.1.2.3", 80);
                let _ = np.matches("10.1.2.3", 80);
                let _ = np.matches("fd00::1", 80);
            }
        }
    }
}
