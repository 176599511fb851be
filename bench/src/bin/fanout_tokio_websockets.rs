//! tokio-websockets fan-out server for `wsx bench --fanout raw`: `fanout_tokio_websockets
//! LISTEN_ADDR`. Every message a client sends goes to every client ([`wsx_bench::broadcast`]).

use tokio::sync::broadcast;
use tokio_websockets::{Message, ServerBuilder};

fn main() -> std::io::Result<()> {
    let (hub, _) = broadcast::channel::<Message>(wsx_bench::broadcast::CHANNEL_CAPACITY);
    wsx_bench::serve("tokio-websockets", false, move |tcp, _| {
        let hub = hub.clone();
        async move {
            if let Ok((_request, ws)) = ServerBuilder::new().accept(tcp).await {
                wsx_bench::broadcast::relay(ws, hub, |m| m.is_text() || m.is_binary()).await;
            }
        }
    })
}
