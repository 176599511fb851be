//! tokio-tungstenite fan-out server for `wsx bench --fanout raw`: `fanout_tungstenite
//! LISTEN_ADDR`. Every message a client sends goes to every client ([`wsx_bench::broadcast`]).

use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::Message;

fn main() -> std::io::Result<()> {
    let (hub, _) = broadcast::channel::<Message>(wsx_bench::broadcast::CHANNEL_CAPACITY);
    wsx_bench::serve("tokio-tungstenite", false, move |tcp, _| {
        let hub = hub.clone();
        async move {
            if let Ok(ws) = tokio_tungstenite::accept_async(tcp).await {
                wsx_bench::broadcast::relay(ws, hub, |m| m.is_text() || m.is_binary()).await;
            }
        }
    })
}
