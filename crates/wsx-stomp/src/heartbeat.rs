//! Heart-beat negotiation (STOMP 1.1+).
//!
//! The client's CONNECT says `heart-beat:cx,cy`: it can send a heart-beat every `cx` ms (0:
//! never) and wants one every `cy` ms (0: never). The server answers `heart-beat:sx,sy` in
//! CONNECTED. Then the server sends something at least every `max(sx, cy)` ms unless `sx` or
//! `cy` is 0, and expects something from the client every `max(cx, sy)` ms unless `cx` or `sy`
//! is 0. A heart-beat is a single end-of-line; any frame counts as well.

use std::time::Duration;

/// A `heart-beat` header value: two intervals in milliseconds (0 = none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HeartBeatHeader {
    /// The smallest interval at which the sender of the header can send heart-beats.
    pub can_send: u32,
    /// The interval at which the sender of the header wants to receive heart-beats.
    pub want_receive: u32,
}

impl HeartBeatHeader {
    /// Parse `"cx,cy"` (spaces around numbers allowed; values above `u32::MAX` are clamped).
    pub fn parse(value: &str) -> Option<HeartBeatHeader> {
        let (a, b) = value.split_once(',')?;
        Some(HeartBeatHeader {
            can_send: parse_ms(a)?,
            want_receive: parse_ms(b)?,
        })
    }

    /// The header value, `"cx,cy"`.
    pub fn to_value(self) -> String {
        format!("{},{}", self.can_send, self.want_receive)
    }
}

fn parse_ms(s: &str) -> Option<u32> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(
        s.parse::<u64>()
            .unwrap_or(u64::MAX)
            .min(u64::from(u32::MAX)) as u32,
    )
}

/// The negotiated heart-beats of a session, from the server's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HeartBeat {
    /// How often the server must send something (a heart-beat if nothing else), if at all.
    pub send: Option<Duration>,
    /// How often the client must send something, if at all.
    pub check: Option<Duration>,
}

impl HeartBeat {
    /// Negotiate from the client's CONNECT header and the server's CONNECTED header.
    pub fn negotiate(client: HeartBeatHeader, server: HeartBeatHeader) -> HeartBeat {
        let interval =
            |a: u32, b: u32| (a != 0 && b != 0).then(|| Duration::from_millis(u64::from(a.max(b))));
        HeartBeat {
            send: interval(server.can_send, client.want_receive),
            check: interval(client.can_send, server.want_receive),
        }
    }
}
