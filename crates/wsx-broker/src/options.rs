//! [`BrokerOptions`]: everything a [`crate::Broker`] is built from, and the small value types
//! its settings are written in ([`HeartBeatMs`], [`JwtSecret`]), parsed from strings so that a
//! command line (`wsx serve`) can take them as flags.

use std::str::FromStr;
use std::time::Duration;

use crate::backend::{BrokerUrl, MemorySettings, RedisSettings};
use crate::jwt::JwtOptions;

/// The `--stomp-heartbeat` value: the server's heart-beat header `sx,sy` in milliseconds: it
/// sends something at least every `sx` ms (if the client wants it) and wants to hear from the
/// client every `sy` ms (if the client can); 0 turns a direction off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartBeatMs {
    /// `sx`: how often the server can send heart-beats.
    pub send: u32,
    /// `sy`: how often the server wants to receive them.
    pub receive: u32,
}

impl FromStr for HeartBeatMs {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || format!("`{s}`: expected two millisecond counts, SEND,RECEIVE");
        let (a, b) = s.split_once(',').ok_or_else(invalid)?;
        Ok(HeartBeatMs {
            send: a.trim().parse().map_err(|_| invalid())?,
            receive: b.trim().parse().map_err(|_| invalid())?,
        })
    }
}

/// The `--jwt-secret` value; `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct JwtSecret(String);

impl std::fmt::Debug for JwtSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtSecret(…)")
    }
}

impl JwtSecret {
    /// The secret.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for JwtSecret {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err("the secret must not be empty".to_owned());
        }
        Ok(JwtSecret(s.to_owned()))
    }
}

/// How to build a [`crate::Broker`]: authentication, session limits, heart-beats, the engine
/// and its budgets. `wsx serve` fills it from its flags (named in each field's doc).
#[derive(Debug, Clone)]
pub struct BrokerOptions<'a> {
    /// `--jwt-secret`, `--jwt-public-key`, `--jwt-leeway`, `--jwt-issuer`, `--jwt-audience`.
    pub jwt: JwtOptions<'a>,
    /// `--stomp-idle-timeout` (`None`: no limit).
    pub idle_timeout: Option<Duration>,
    /// `--stomp-max-subscriptions`.
    pub max_subscriptions: usize,
    /// `--stomp-auto-ack-window`.
    pub auto_ack_window: usize,
    /// `--stomp-max-unwritten-bytes`.
    pub max_unwritten_bytes: usize,
    /// `--stomp-heartbeat`.
    pub heartbeat: HeartBeatMs,
    /// `--broker`.
    pub broker: &'a BrokerUrl,
    /// The `--stomp-max-*` budgets of the in-memory broker.
    pub memory: MemorySettings,
    /// `--node-id` and the `--redis-*` settings (used with a Redis broker).
    pub redis: RedisSettings,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeat_flag() {
        assert_eq!(
            "10000,5000".parse(),
            Ok(HeartBeatMs {
                send: 10_000,
                receive: 5_000
            })
        );
        assert_eq!(
            " 0 , 0 ".parse(),
            Ok(HeartBeatMs {
                send: 0,
                receive: 0
            })
        );
        assert!("10000".parse::<HeartBeatMs>().is_err());
        assert!("a,b".parse::<HeartBeatMs>().is_err());
    }
}
