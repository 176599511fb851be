//! The fan-out servers' shared loop (bench/src/bin/fanout_*.rs, for `wsx bench --fanout raw`):
//! every text or binary message a client sends goes to every connected client, itself included.
//!
//! The shape tokio's documentation gives for a chat server and the peers' own chat examples
//! follow: one `tokio::sync::broadcast` channel for the server; per connection, one task that
//! splits the socket (`StreamExt::split`) and forwards what it reads to the channel and what the
//! channel brings to the socket. A receiver that lags behind the channel's capacity skips what
//! it missed (`RecvError::Lagged`), as the examples do: the benchmark counts deliveries, so a
//! server that drops shows fewer of them.

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::sync::broadcast;

/// Messages the channel holds for its slowest receiver.
pub const CHANNEL_CAPACITY: usize = 1024;

/// Serve one connection: forward its data messages (`is_data`) to `hub`, and `hub`'s messages
/// to it, until either side ends.
pub async fn relay<W, M, E>(ws: W, hub: broadcast::Sender<M>, is_data: fn(&M) -> bool)
where
    W: Stream<Item = Result<M, E>> + Sink<M> + Unpin,
    M: Clone,
{
    let mut from_hub = hub.subscribe();
    let (mut sink, mut stream) = ws.split();
    loop {
        tokio::select! {
            read = stream.next() => match read {
                Some(Ok(msg)) if is_data(&msg) => {
                    let _ = hub.send(msg);
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break,
            },
            got = from_hub.recv() => match got {
                Ok(msg) => {
                    if sink.send(msg).await.is_err() {
                        break;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => break,
            },
        }
    }
}
