//! [`SentinelUrl`]: the `redis-sentinel://HOST:PORT[,HOST:PORT…]/SERVICE` form of
//! [`crate::Config::url`], parsed before the engine starts (a bad one is a usage error) and
//! used by the tasks to find the primary through the sentinels (see the `connections`
//! module's `primary`).

use std::fmt;
use std::str::FromStr;

use crate::Error;

/// The scheme of a Sentinel URL.
const SCHEME: &str = "redis-sentinel://";

/// What a Sentinel URL looks like, for error messages.
const EXPECTED: &str = "expected `redis-sentinel://HOST:PORT[,HOST:PORT…]/SERVICE`";

/// A Sentinel deployment: the sentinels to ask and the name of the service (the primary's
/// name in their configuration, `sentinel monitor SERVICE …`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentinelUrl {
    /// The sentinels, `(host, port)`, in the order given (asked in that order).
    pub sentinels: Vec<(String, u16)>,
    /// The service name.
    pub service: String,
}

impl SentinelUrl {
    /// Whether `url` is meant as a Sentinel URL (its scheme is `redis-sentinel://`).
    pub fn is_sentinel(url: &str) -> bool {
        url.get(..SCHEME.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(SCHEME))
    }
}

impl FromStr for SentinelUrl {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        if s.contains('@') {
            // Not echoed: it may hold a password.
            return Err(Error::Url(format!(
                "credentials are not supported in a Sentinel URL ({EXPECTED})"
            )));
        }
        let bad = |why: &str| Error::Url(format!("`{s}`: {why} ({EXPECTED})"));
        if !SentinelUrl::is_sentinel(s) {
            return Err(bad("not a Sentinel URL"));
        }
        let rest = &s[SCHEME.len()..];
        let Some((hosts, service)) = rest.split_once('/') else {
            return Err(bad("the service name is missing"));
        };
        if service.is_empty() {
            return Err(bad("the service name is missing"));
        }
        if !service
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(bad(
                "the service name may hold only letters, digits, `-`, `_` and `.`",
            ));
        }
        let mut sentinels = Vec::new();
        for host_port in hosts.split(',') {
            sentinels.push(parse_host_port(host_port, "sentinel").map_err(|why| bad(&why))?);
        }
        Ok(SentinelUrl {
            sentinels,
            service: service.to_owned(),
        })
    }
}

/// One `HOST:PORT` (or `[IPV6]:PORT`) of a URL's list; `what` names the item in the error
/// (`sentinel`, `node`).
pub(crate) fn parse_host_port(host_port: &str, what: &str) -> Result<(String, u16), String> {
    let (host, port) = match host_port.strip_prefix('[') {
        // An IPv6 address: `[::1]:26379`.
        Some(v6) => match v6.split_once("]:") {
            Some((host, port)) => (host, port),
            None => return Err(format!("a {what} is `[IPV6]:PORT`")),
        },
        None => match host_port.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') => (host, port),
            _ => return Err(format!("every {what} needs HOST:PORT")),
        },
    };
    if host.is_empty() {
        return Err(format!("a {what}'s host is missing"));
    }
    let Some(port) = port.parse::<u16>().ok().filter(|p| *p != 0) else {
        return Err(format!("a {what}'s port must be a number from 1 to 65535"));
    };
    Ok((host.to_owned(), port))
}

/// `HOST:PORT,…` as written in a URL (IPv6 hosts in brackets).
pub(crate) fn write_hosts(f: &mut fmt::Formatter<'_>, hosts: &[(String, u16)]) -> fmt::Result {
    for (i, (host, port)) in hosts.iter().enumerate() {
        let comma = if i == 0 { "" } else { "," };
        if host.contains(':') {
            write!(f, "{comma}[{host}]:{port}")?;
        } else {
            write!(f, "{comma}{host}:{port}")?;
        }
    }
    Ok(())
}

impl fmt::Display for SentinelUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(SCHEME)?;
        write_hosts(f, &self.sentinels)?;
        write!(f, "/{}", self.service)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinel_urls_name_their_sentinels_and_service() {
        let url: SentinelUrl =
            "redis-sentinel://10.0.0.1:26379,sentinel-b:26380,[::1]:26381/mymaster"
                .parse()
                .expect("valid");
        assert_eq!(
            url.sentinels,
            vec![
                ("10.0.0.1".to_owned(), 26379),
                ("sentinel-b".to_owned(), 26380),
                ("::1".to_owned(), 26381),
            ]
        );
        assert_eq!(url.service, "mymaster");
        assert_eq!(
            url.to_string(),
            "redis-sentinel://10.0.0.1:26379,sentinel-b:26380,[::1]:26381/mymaster"
        );
        let one: SentinelUrl = "REDIS-SENTINEL://h:1/svc".parse().expect("valid");
        assert_eq!(one.sentinels, vec![("h".to_owned(), 1)]);
        assert!(SentinelUrl::is_sentinel("redis-sentinel://h:1/s"));
        assert!(!SentinelUrl::is_sentinel("redis://h:1"));
    }

    #[test]
    fn bad_sentinel_urls_say_what_is_wrong() {
        for (url, why) in [
            ("redis://h:1/s", "not a Sentinel URL"),
            ("redis-sentinel://h:26379", "service name is missing"),
            ("redis-sentinel://h:26379/", "service name is missing"),
            ("redis-sentinel://h:26379/a/b", "service name may hold"),
            ("redis-sentinel://h/s", "HOST:PORT"),
            ("redis-sentinel:///s", "HOST:PORT"),
            ("redis-sentinel://h:1,/s", "HOST:PORT"),
            ("redis-sentinel://:26379/s", "host is missing"),
            ("redis-sentinel://h:0/s", "port must be"),
            ("redis-sentinel://h:70000/s", "port must be"),
            ("redis-sentinel://h:port/s", "port must be"),
            ("redis-sentinel://::1:26379/s", "HOST:PORT"),
            ("redis-sentinel://[::1/s", "[IPV6]:PORT"),
            ("redis-sentinel://u:pw@h:1/s", "credentials"),
        ] {
            let error = url.parse::<SentinelUrl>().expect_err(url).to_string();
            assert!(error.contains(why), "{url}: {error}");
            assert!(error.contains("redis-sentinel://HOST:PORT"), "{error}");
        }
    }
}
