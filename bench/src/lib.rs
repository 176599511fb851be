//! Shared pieces of the side-by-side benchmark suite (`scripts/bench.sh`).
//!
//! Where it sits in the flow: the script builds this crate, starts one echo server binary per
//! implementation (`src/bin/echo_*.rs`, each a thin shell around [`serve`]), drives it with
//! `wsx bench` and with `idle_clients` (which uses [`proc`] to sample the server), and finally
//! renders `bench/RESULTS.md` and the SVG charts with the `report` binary.
//!
//! The fan-out servers (`src/bin/fanout_*.rs`, for `scripts/bench_fanout_peers.sh`) share
//! [`broadcast::relay`]: every message a client sends goes to every client.
//!
//! Every echo server is started as `echo_NAME LISTEN_ADDR [--deflate]` (or with
//! `BENCH_DEFLATE=1` in the environment): it runs on a current-thread tokio runtime, sets
//! `TCP_NODELAY` on every accepted socket, echoes every text and binary message and, with
//! `--deflate`, accepts permessage-deflate when the implementation supports it.

pub mod broadcast;
pub mod proc;

use std::future::Future;
use std::io;

use tokio::net::{TcpListener, TcpStream};

/// The command line shared by all echo servers.
#[derive(Debug, Clone)]
pub struct ServerArgs {
    /// Where to listen, e.g. `127.0.0.1:9001`.
    pub addr: String,
    /// Whether to accept permessage-deflate (when the implementation supports it).
    pub deflate: bool,
}

impl ServerArgs {
    /// Parse `LISTEN_ADDR [--deflate]` from the process's arguments; `BENCH_DEFLATE=1` in the
    /// environment also turns deflate on.
    pub fn from_env() -> Result<Self, String> {
        let mut addr = None;
        let mut deflate = matches!(
            std::env::var("BENCH_DEFLATE").as_deref(),
            Ok("1" | "on" | "true")
        );
        for arg in std::env::args().skip(1) {
            match arg.as_str() {
                "--deflate" => deflate = true,
                "-h" | "--help" => {
                    return Err("usage: echo_NAME LISTEN_ADDR [--deflate]".to_string());
                }
                other if addr.is_none() && !other.starts_with('-') => addr = Some(arg),
                other => return Err(format!("unexpected argument {other:?}")),
            }
        }
        let addr = addr.unwrap_or_else(|| "127.0.0.1:9001".to_string());
        Ok(Self { addr, deflate })
    }
}

/// Run an echo server: parse [`ServerArgs`], build a current-thread runtime, listen, and hand
/// every accepted TCP connection (with `TCP_NODELAY` set) to `handle` on its own task.
///
/// `supports_deflate` says whether the implementation can negotiate permessage-deflate; when
/// it cannot and `--deflate` was given, a note goes to stderr and the server runs without.
/// The first line on stdout is `listening on ADDR`.
pub fn serve<F, Fut>(name: &str, supports_deflate: bool, handle: F) -> io::Result<()>
where
    F: Fn(TcpStream, bool) -> Fut + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let args = ServerArgs::from_env().map_err(io::Error::other)?;
    let deflate = args.deflate && supports_deflate;
    if args.deflate && !supports_deflate {
        eprintln!("{name}: permessage-deflate is not supported; running without it");
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(&args.addr).await?;
        println!(
            "{name} echo server listening on {} (permessage-deflate {})",
            listener.local_addr()?,
            if deflate { "on" } else { "off" }
        );
        loop {
            let (tcp, _) = match listener.accept().await {
                Ok(conn) => conn,
                // Out of file descriptors and the like: keep serving the connections we have.
                Err(e) => {
                    eprintln!("{name}: accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            };
            if tcp.set_nodelay(true).is_err() {
                continue;
            }
            tokio::spawn(handle(tcp, deflate));
        }
    })
}
