//! Shared by the integration tests: an echo server on an ephemeral port.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use wsx::{Accept, CloseCode, Message, WebSocketConfig};

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

/// `f`, which must finish within 10 s.
pub async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .expect("timed out")
}

/// Split `ws`, whose peer echoes, among four sender tasks of 250 messages each: every
/// sender's messages come back in its order; then the close handshake ends the receiver.
pub async fn four_split_senders_are_echoed_in_order<S>(ws: wsx::WebSocket<S>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (tx, mut rx) = ws.split();
    let mut tasks = Vec::new();
    for t in 0..4 {
        let tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..250 {
                tx.send(Message::text(format!("{t}:{i}"))).await.unwrap();
            }
        }));
    }
    let mut next = [0usize; 4];
    for _ in 0..1000 {
        let m = within(rx.recv()).await.unwrap().unwrap();
        let text = m.as_text().unwrap().to_string();
        let (t, i) = text.split_once(':').unwrap();
        let t: usize = t.parse().unwrap();
        assert_eq!(
            i.parse::<usize>().unwrap(),
            next[t],
            "per-sender order is kept"
        );
        next[t] += 1;
    }
    for t in tasks {
        t.await.unwrap();
    }
    tx.close(CloseCode::NORMAL, "done").await.unwrap();
    let m = within(rx.recv()).await.unwrap().unwrap();
    assert!(matches!(m, Message::Close(Some(f)) if f.code == CloseCode::NORMAL));
    assert!(within(rx.recv()).await.is_none());
    assert!(tx.is_closed());
}
