//! tokio-websockets echo server for the side-by-side benchmarks:
//! `echo_tokio_websockets LISTEN_ADDR`.
//!
//! As the crate's own `examples/echo_server.rs`: `ServerBuilder::accept` with unlimited frame
//! size and limits, then `next` / `send`, on an `unconstrained` task. tokio-websockets has no
//! permessage-deflate, so `--deflate` is ignored.

use futures_util::{SinkExt, StreamExt};
use tokio_websockets::{Config, Limits, ServerBuilder};

fn main() -> std::io::Result<()> {
    wsx_bench::serve("tokio-websockets", false, |tcp, _| {
        tokio::task::unconstrained(async move {
            let Ok((_request, mut ws)) = ServerBuilder::new()
                .config(Config::default().frame_size(usize::MAX))
                .limits(Limits::unlimited())
                .accept(tcp)
                .await
            else {
                return;
            };
            while let Some(Ok(msg)) = ws.next().await {
                if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                    break;
                }
            }
        })
    })
}
