//! `wsx serve`: accept connections, route plain HTTP and WebSocket upgrades.

use std::net::SocketAddr;

use clap::{Args, ValueEnum};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, info};
use wsx::{Accept, DeflateConfig, WebSocketConfig};

/// Options of `wsx serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// permessage-deflate: accept it when a client offers it (on) or never (off).
    #[arg(long, value_enum, default_value_t = OnOff::On)]
    pub compression: OnOff,
}

impl Default for ServeArgs {
    fn default() -> Self {
        ServeArgs {
            listen: "127.0.0.1:8080".parse().expect("valid default address"),
            compression: OnOff::On,
        }
    }
}

/// A switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    /// Enabled.
    On,
    /// Disabled.
    Off,
}

/// Run the server until the process is stopped.
pub fn run(args: ServeArgs) -> Result<(), Box<dyn std::error::Error>> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(args.listen).await?;
        info!("wsx serve listening on http://{}", listener.local_addr()?);
        let mut config = WebSocketConfig::default();
        if args.compression == OnOff::On {
            config = config.compression(DeflateConfig::default());
        }
        loop {
            let (tcp, peer) = listener.accept().await?;
            let config = config.clone();
            tokio::spawn(async move {
                if let Err(e) = handle(tcp, &config).await {
                    debug!(%peer, "connection ended: {e}");
                }
            });
        }
    })
}

async fn handle(mut tcp: TcpStream, config: &WebSocketConfig) -> Result<(), wsx::Error> {
    tcp.set_nodelay(true)?;
    let (req, leftover) = wsx::read_request(&mut tcp, config.max_header_bytes).await?;
    if !req.is_websocket_upgrade() {
        let body = b"wsx: connect a WebSocket client to any path to get an echo\n";
        return wsx::respond(
            &mut tcp,
            200,
            &[("Content-Type", "text/plain; charset=utf-8")],
            body,
        )
        .await;
    }
    let mut ws = wsx::upgrade(tcp, &req, &leftover, config, Accept::default()).await?;
    while let Some(msg) = ws.recv().await {
        let msg = msg?;
        if msg.is_data() {
            ws.feed(msg)?;
            if ws.buffered_amount() > 256 * 1024 {
                ws.flush().await?;
            }
        }
    }
    Ok(())
}
