//! wsx echo server for the side-by-side benchmarks: `echo_wsx LISTEN_ADDR [--deflate]`.
//!
//! The library's fastest echo shape, as in `crates/wsx/examples/echo_server.rs`: `recv` the
//! next message, `feed` the echo (queued, no write yet); the next `recv` writes everything
//! queued before it waits for input, so echoes of messages that arrived together leave in one
//! write. permessage-deflate is accepted with `--deflate`.

use wsx::{DeflateConfig, WebSocketConfig};

fn main() -> std::io::Result<()> {
    wsx_bench::serve("wsx", true, |tcp, deflate| async move {
        let mut config = WebSocketConfig::default();
        if deflate {
            config = config.compression(DeflateConfig::default());
        }
        let Ok(mut ws) = wsx::accept_with(tcp, &config, |_| Ok(wsx::Accept::default())).await
        else {
            return;
        };
        while let Some(Ok(msg)) = ws.recv().await {
            if msg.is_data() {
                if ws.feed(msg).is_err() {
                    break;
                }
                // Flush explicitly only when a slow reader lets output pile up.
                if ws.buffered_amount() > 256 * 1024 && ws.flush().await.is_err() {
                    break;
                }
            }
        }
    })
}
