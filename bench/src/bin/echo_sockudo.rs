//! sockudo-ws echo server for the side-by-side benchmarks: `echo_sockudo LISTEN_ADDR [--deflate]`.
//!
//! The upgrade is answered with the crate's own pieces (`parse_request`, `generate_accept_key`,
//! `build_response`, as in its `examples/simple_echo.rs`), then the `Stream` / `Sink` loop of
//! that example (`next` / `send`) runs on a `WebSocketStream`. With `--deflate`, an offered
//! permessage-deflate is negotiated (`negotiate_server_deflate` with the crate's default
//! `DeflateConfig`) and the connection runs as a `CompressedWebSocketStream`.

use bytes::{Buf, BytesMut};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use sockudo_ws::deflate::negotiate_server_deflate;
use sockudo_ws::handshake::{build_response, generate_accept_key, parse_request};
use sockudo_ws::{
    CompressedWebSocketStream, Config, DeflateConfig, Message, Role, WebSocketStream,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The longest upgrade request accepted.
const MAX_REQUEST: usize = 16 * 1024;

async fn echo<W>(mut ws: W)
where
    W: Stream<Item = sockudo_ws::Result<Message>> + Sink<Message> + Unpin,
{
    while let Some(Ok(msg)) = ws.next().await {
        match msg {
            Message::Text(_) | Message::Binary(_) => {
                if ws.send(msg).await.is_err() {
                    break;
                }
            }
            Message::Close(_) => break,
            // Pongs are answered by the stream itself.
            Message::Ping(_) | Message::Pong(_) => {}
        }
    }
}

/// Answer the upgrade request (negotiating permessage-deflate when `deflate` and offered) and
/// run the echo loop.
async fn accept(mut tcp: TcpStream, deflate: bool) -> Option<()> {
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        if buf.len() > MAX_REQUEST || tcp.read_buf(&mut buf).await.ok()? == 0 {
            return None;
        }
        let Some((req, consumed)) = parse_request(&buf).ok()? else {
            continue;
        };
        let accept = generate_accept_key(req.key);
        let negotiated = req
            .extensions
            .filter(|_| deflate)
            .and_then(|offer| negotiate_server_deflate(offer, &DeflateConfig::default()));
        let header = negotiated.as_ref().map(|n| n.to_response_header());
        let response = build_response(&accept, None, header.as_deref());
        tcp.write_all(&response).await.ok()?;
        buf.advance(consumed);
        let leftover = (!buf.is_empty()).then(|| buf.split().freeze());
        match negotiated {
            Some(n) => {
                let ws = CompressedWebSocketStream::server_with_leftover(
                    tcp,
                    Config::default(),
                    n.config,
                    leftover,
                );
                echo(ws).await;
            }
            None => {
                let ws = WebSocketStream::from_raw_with_leftover(
                    tcp,
                    Role::Server,
                    Config::default(),
                    leftover,
                );
                echo(ws).await;
            }
        }
        return Some(());
    }
}

fn main() -> std::io::Result<()> {
    wsx_bench::serve("sockudo-ws", true, |tcp, deflate| async move {
        accept(tcp, deflate).await;
    })
}
