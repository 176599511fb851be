//! An axum app with a wsx WebSocket route: `/ws` echoes every message (subprotocol `echo` when
//! the client offers it, permessage-deflate when it offers that), `/` answers with plain text.
//!
//! ```sh
//! cargo run -p wsx --features axum --example axum_echo -- 127.0.0.1:3000
//! wsx connect ws://127.0.0.1:3000/ws
//! ```
//!
//! The first argument is the listen address (default `127.0.0.1:3000`; port 0 picks a free
//! one). The address actually bound is printed as `listening on ADDR`.

use axum::Router;
use axum::response::Response;
use axum::routing::get;
use wsx::axum::WebSocketUpgrade;
use wsx::{DeflateConfig, WebSocketConfig};

/// `/ws`: upgrade and echo data messages until the client closes.
async fn ws_echo(ws: WebSocketUpgrade) -> Response {
    let config = WebSocketConfig::default().compression(DeflateConfig::default());
    ws.protocols(["echo"])
        .config(config)
        .on_upgrade(|mut ws| async move {
            while let Some(msg) = ws.recv().await {
                match msg {
                    Ok(msg) if msg.is_data() => {
                        if let Err(e) = ws.send(msg).await {
                            eprintln!("send failed: {e}");
                            break;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        eprintln!("connection failed: {e}");
                        break;
                    }
                }
            }
        })
}

/// `/`: plain text.
async fn index() -> &'static str {
    "wsx axum echo: connect a WebSocket client to /ws\n"
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3000".to_owned());
    let app = Router::new()
        .route("/", get(index))
        .route("/ws", get(ws_echo));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on {}", listener.local_addr()?);
    axum::serve(listener, app).await
}
