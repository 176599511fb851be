//! An echo server for the Autobahn fuzzingclient and for benchmarks: every text and binary
//! message comes back as it was received.
//!
//! `cargo run --release -p wsx --example echo_server -- 127.0.0.1:9001`
//!
//! Runs on a current-thread tokio runtime. permessage-deflate is accepted when the client offers
//! it (set `WSX_COMPRESSION=off` to decline).

use tokio::net::TcpListener;
use wsx::{DeflateConfig, WebSocketConfig};

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9001".to_string());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(&addr).await?;
        println!("echo server listening on {}", listener.local_addr()?);
        let mut config = WebSocketConfig::default();
        if std::env::var("WSX_COMPRESSION").as_deref() != Ok("off") {
            config = config.compression(DeflateConfig::default());
        }
        loop {
            let (tcp, _) = listener.accept().await?;
            tcp.set_nodelay(true)?;
            let config = config.clone();
            tokio::spawn(async move {
                let Ok(mut ws) =
                    wsx::accept_with(tcp, &config, |_| Ok(wsx::Accept::default())).await
                else {
                    return;
                };
                while let Some(Ok(msg)) = ws.recv().await {
                    if msg.is_data() {
                        // Queue the echo: `recv` writes everything queued before it waits for
                        // more input, so echoes of messages that arrived together go out in one
                        // write. Flush explicitly only when a slow reader lets output pile up.
                        if ws.feed(msg).is_err() {
                            break;
                        }
                        if ws.buffered_amount() > 256 * 1024 && ws.flush().await.is_err() {
                            break;
                        }
                    }
                }
            });
        }
    })
}
