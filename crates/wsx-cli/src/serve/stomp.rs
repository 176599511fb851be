//! `/stomp`: STOMP 1.0, 1.1 and 1.2 over WebSocket, on the broker of crate `wsx-broker`
//! (in memory with `--broker memory`, the default, or one node of a broker shared through
//! Redis with `--broker redis://HOST:PORT[/DB]`). This module adapts it to the router: the
//! names the flags and the router use, and the session tied to the server's shutdown.

use std::sync::Arc;

use tokio::sync::watch;
use wsx::{MaybeTlsStream, WebSocket};
use wsx_stomp::ConnectionInfo;

pub use wsx_broker::{
    Broker as Stomp, BrokerOptions as StompOptions, BrokerUrl, DEFAULT_JWT_LEEWAY_SECS,
    HeartBeatMs, JwtOptions, JwtSecret, MemorySettings, RedisSettings, connection_info,
};

use super::State;

/// Run a STOMP session on an upgraded `/stomp` connection until it ends; at shutdown the
/// broker closes it with 1001.
pub async fn session(
    ws: WebSocket<MaybeTlsStream>,
    info: ConnectionInfo,
    stomp: Arc<Stomp>,
    _state: Arc<State>,
    mut shutdown: watch::Receiver<bool>,
) {
    let close_at_shutdown = async {
        super::wait_shutdown(&mut shutdown).await;
        stomp.close_sessions();
        std::future::pending::<()>().await;
    };
    tokio::select! {
        () = stomp.serve_websocket(ws, info) => {}
        () = close_at_shutdown => {}
    }
}
