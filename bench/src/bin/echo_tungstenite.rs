//! tokio-tungstenite echo server for the side-by-side benchmarks:
//! `echo_tungstenite LISTEN_ADDR`.
//!
//! The crate's documented shape: `accept_async`, then `next` / `send` (a send writes and
//! flushes). tokio-tungstenite has no permessage-deflate, so `--deflate` is ignored.

use futures_util::{SinkExt, StreamExt};

fn main() -> std::io::Result<()> {
    wsx_bench::serve("tokio-tungstenite", false, |tcp, _| async move {
        let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
            return;
        };
        while let Some(Ok(msg)) = ws.next().await {
            if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                break;
            }
        }
    })
}
