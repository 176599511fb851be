//! [`BroadcastCounters`]: how broadcast messages went out (compressed once and shared, by the
//! connection itself, or as they are) and how many compressions that took, for `/metrics`.
//!
//! A broadcaster's connection task counts each [`wsx::WebSocket::feed_shared`] outcome here:
//! the STOMP broker for topic MESSAGE frames ([`crate::BrokerMetrics`], `wsx_stomp_broadcast_*`),
//! `wsx serve`'s chat rooms for theirs (`wsx_chat_broadcast_*`). With compress-once working,
//! compressions are one per message per deflate parameter set, whatever the subscriber count.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use wsx::SharedSend;

/// The `compression` label values of the deliveries counter.
const HOWS: [&str; 3] = ["none", "shared", "own"];

/// Broadcast deliveries by how they were compressed, and the compressions of shared payloads.
#[derive(Debug, Default)]
pub struct BroadcastCounters {
    /// Indexed like [`HOWS`].
    deliveries: [AtomicU64; HOWS.len()],
    compressions: AtomicU64,
}

impl BroadcastCounters {
    /// Count one message queued with [`wsx::WebSocket::feed_shared`].
    pub fn count(&self, sent: SharedSend) {
        let how = match sent {
            SharedSend::Uncompressed => 0,
            SharedSend::SharedCompressed { compressed_now } => {
                if compressed_now {
                    self.compressions.fetch_add(1, Ordering::Relaxed);
                }
                1
            }
            SharedSend::OwnCompressed => 2,
        };
        self.deliveries[how].fetch_add(1, Ordering::Relaxed);
    }

    /// Shared payloads compressed (one per message per deflate parameter set).
    pub fn compressions(&self) -> u64 {
        self.compressions.load(Ordering::Relaxed)
    }

    /// Deliveries that used a payload compressed once and shared.
    pub fn shared_deliveries(&self) -> u64 {
        self.deliveries[1].load(Ordering::Relaxed)
    }

    /// Append `{prefix}_broadcast_compressions_total` and
    /// `{prefix}_broadcast_deliveries_total{compression}` in the Prometheus text format.
    pub fn render_into(&self, prefix: &str, what: &str, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP {prefix}_broadcast_compressions_total {what} payloads compressed for \
             permessage-deflate (once per message per parameter set).\n\
             # TYPE {prefix}_broadcast_compressions_total counter\n\
             {prefix}_broadcast_compressions_total {}",
            self.compressions()
        );
        let name = format!("{prefix}_broadcast_deliveries_total");
        let _ = writeln!(
            out,
            "# HELP {name} {what} messages queued to a connection, by compression (none; \
             shared: compressed once for many; own: by a connection keeping deflate context).\n\
             # TYPE {name} counter"
        );
        for (how, count) in HOWS.iter().zip(&self.deliveries) {
            let _ = writeln!(
                out,
                "{name}{{compression=\"{how}\"}} {}",
                count.load(Ordering::Relaxed)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_renders() {
        let c = BroadcastCounters::default();
        c.count(SharedSend::SharedCompressed {
            compressed_now: true,
        });
        c.count(SharedSend::SharedCompressed {
            compressed_now: false,
        });
        c.count(SharedSend::Uncompressed);
        let mut out = String::new();
        c.render_into("wsx_x", "Test", &mut out);
        assert!(
            out.contains("wsx_x_broadcast_compressions_total 1\n"),
            "{out}"
        );
        assert!(out.contains("wsx_x_broadcast_deliveries_total{compression=\"shared\"} 2\n"));
        assert!(out.contains("wsx_x_broadcast_deliveries_total{compression=\"none\"} 1\n"));
        assert!(out.contains("wsx_x_broadcast_deliveries_total{compression=\"own\"} 0\n"));
        assert_eq!((c.compressions(), c.shared_deliveries()), (1, 2));
    }
}
