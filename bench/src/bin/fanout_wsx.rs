//! wsx fan-out server for `wsx bench --fanout raw`: `fanout_wsx LISTEN_ADDR [--deflate]`.
//! Every message a client sends goes to every client ([`wsx_bench::broadcast`]), the same loop
//! as the peers' (`wsx serve`'s chat rooms and STOMP topics are measured on their own).

use tokio::sync::broadcast;
use wsx::{DeflateConfig, Message, WebSocketConfig};

fn main() -> std::io::Result<()> {
    let (hub, _) = broadcast::channel::<Message>(wsx_bench::broadcast::CHANNEL_CAPACITY);
    wsx_bench::serve("wsx", true, move |tcp, deflate| {
        let hub = hub.clone();
        async move {
            let mut config = WebSocketConfig::default();
            if deflate {
                config = config.compression(DeflateConfig::default());
            }
            if let Ok(ws) = wsx::accept_with(tcp, &config, |_| Ok(wsx::Accept::default())).await
            {
                wsx_bench::broadcast::relay(ws, hub, Message::is_data).await;
            }
        }
    })
}
