//! Shared by the integration tests: an echo server on an ephemeral port.
#![allow(dead_code)]

use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use wsx::{Accept, WebSocketConfig};

/// Echo every data message on `ws` until it closes.
pub async fn echo<S: AsyncRead + AsyncWrite + Unpin>(
    mut ws: wsx::WebSocket<S>,
) -> Result<(), wsx::Error> {
    while let Some(msg) = ws.recv().await {
        let msg = msg?;
        if msg.is_data() {
            ws.send(msg).await?;
        }
    }
    Ok(())
}

/// Start an echo server with `config` on 127.0.0.1; returns its address.
pub async fn echo_server_with(config: WebSocketConfig) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let config = config.clone();
            tokio::spawn(async move {
                let ws = wsx::accept_with(tcp, &config, |_| Ok(Accept::default())).await?;
                echo(ws).await
            });
        }
    });
    addr
}

/// Start an echo server with default settings.
pub async fn echo_server() -> SocketAddr {
    echo_server_with(WebSocketConfig::default()).await
}
