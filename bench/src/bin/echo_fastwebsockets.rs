//! fastwebsockets echo server for the side-by-side benchmarks:
//! `echo_fastwebsockets LISTEN_ADDR`.
//!
//! As the crate's own `examples/echo_server.rs`: hyper 1 serves the HTTP/1.1 upgrade request
//! (`upgrade::upgrade`, the `upgrade` feature), then a `FragmentCollector` reads whole messages
//! and writes each echo back, on an `unconstrained` task. fastwebsockets has no
//! permessage-deflate, so `--deflate` is ignored.

use fastwebsockets::{FragmentCollector, OpCode, WebSocketError, upgrade};
use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};

async fn echo(fut: upgrade::UpgradeFut) -> Result<(), WebSocketError> {
    let mut ws = FragmentCollector::new(fut.await?);
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Close => break,
            OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
            _ => {}
        }
    }
    Ok(())
}

async fn server_upgrade(
    mut req: Request<Incoming>,
) -> Result<Response<Empty<Bytes>>, WebSocketError> {
    let (response, fut) = upgrade::upgrade(&mut req)?;
    tokio::spawn(tokio::task::unconstrained(async move {
        let _ = echo(fut).await;
    }));
    Ok(response)
}

fn main() -> std::io::Result<()> {
    wsx_bench::serve("fastwebsockets", false, |tcp, _| async move {
        let io = hyper_util::rt::TokioIo::new(tcp);
        let _ = http1::Builder::new()
            .serve_connection(io, service_fn(server_upgrade))
            .with_upgrades()
            .await;
    })
}
