//! `/ws/echo`: every data message is sent back as it came.
//!
//! The router hands an upgraded connection to [`session`]. Echoes are queued with
//! [`wsx::WebSocket::feed`] and written by the next `recv` (several at once when they pile up);
//! above [`ECHO_HIGH_WATER`] unwritten bytes the session flushes before reading more, so a client
//! that sends without reading cannot make the server buffer without bound.

use std::sync::Arc;

use tokio::sync::watch;
use tracing::debug;
use wsx::{CloseCode, MaybeTlsStream, WebSocket};

use super::State;

/// Unwritten echo bytes above which the session waits for the socket before reading more.
const ECHO_HIGH_WATER: usize = 256 * 1024;

/// Run an echo session until the client closes, the connection fails or the server shuts down.
pub async fn session(
    mut ws: WebSocket<MaybeTlsStream>,
    state: Arc<State>,
    mut shutdown: watch::Receiver<bool>,
) {
    let result = loop {
        tokio::select! {
            () = super::wait_shutdown(&mut shutdown) => {
                break ws.close(CloseCode::GOING_AWAY, "server shutting down").await;
            }
            msg = ws.recv() => match msg {
                None => break Ok(()),
                Some(Err(e)) => break Err(e),
                Some(Ok(msg)) if msg.is_data() => {
                    let len = msg.payload().len();
                    state.metrics.received(len);
                    if let Err(e) = ws.feed(msg) {
                        break Err(e);
                    }
                    state.metrics.sent(len);
                    if ws.buffered_amount() > ECHO_HIGH_WATER {
                        tokio::select! {
                            () = super::wait_shutdown(&mut shutdown) => {
                                break ws.close(CloseCode::GOING_AWAY, "server shutting down").await;
                            }
                            flushed = ws.flush() => {
                                if let Err(e) = flushed {
                                    break Err(e);
                                }
                            }
                        }
                    }
                }
                Some(Ok(_)) => {}
            },
        }
    };
    if let Err(e) = result {
        debug!("echo connection ended: {e}");
    }
}
