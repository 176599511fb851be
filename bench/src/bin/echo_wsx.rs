//! wsx echo server for the side-by-side benchmarks: `echo_wsx LISTEN_ADDR [--deflate]`.
//!
//! The library's fastest echo shape, as in `crates/wsx/examples/echo_server.rs`: `recv` the
//! next message, `feed` the echo (queued, no write yet); the next `recv` writes everything
//! queued before it waits for input, so echoes of messages that arrived together leave in one
//! write. permessage-deflate is accepted with `--deflate`.
//!
//! A connection that starts with the HTTP/2 preface (h2c with prior knowledge) is served as
//! HTTP/2 (RFC 8441, `wsx::http2::Http2Server`), each of its WebSockets with the same echo: the
//! same process serves both, for scripts/bench_http2.sh.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use wsx::http2::Http2Server;
use wsx::{DeflateConfig, WebSocket, WebSocketConfig};

/// How an HTTP/2 connection starts (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n";

fn main() -> std::io::Result<()> {
    wsx_bench::serve("wsx", true, |tcp, deflate| async move {
        let mut config = WebSocketConfig::default();
        if deflate {
            config = config.compression(DeflateConfig::default());
        }
        if starts_with_h2_preface(&tcp).await {
            let Ok(peer) = tcp.peer_addr() else {
                return;
            };
            // Boxed: the HTTP/1.1 connections' tasks stay as small as without HTTP/2.
            let served = Box::pin(async move {
                let server = Http2Server::new().config(config);
                server
                    .serve_connection(tcp, peer, |_| Ok(|ws, _| echo(ws)))
                    .await
            });
            let _ = served.await;
            return;
        }
        let Ok(ws) = wsx::accept_with(tcp, &config, |_| Ok(wsx::Accept::default())).await else {
            return;
        };
        echo(ws).await;
    })
}

/// Whether the connection's first bytes are the HTTP/2 preface (peeked, not read).
async fn starts_with_h2_preface(tcp: &TcpStream) -> bool {
    let mut head = [0u8; H2_PREFACE.len()];
    loop {
        match tcp.peek(&mut head).await {
            Ok(0) | Err(_) => return false,
            Ok(n) if head[..n] != H2_PREFACE[..n] => return false,
            Ok(n) if n == H2_PREFACE.len() => return true,
            // A prefix of the preface so far: wait for the rest.
            Ok(_) => tokio::time::sleep(Duration::from_millis(1)).await,
        }
    }
}

async fn echo<S: AsyncRead + AsyncWrite + Unpin>(mut ws: WebSocket<S>) {
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
}
