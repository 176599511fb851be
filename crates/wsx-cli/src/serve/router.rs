//! One accepted TCP connection: read the request head, route it, answer it.
//!
//! | path | plain GET | WebSocket upgrade |
//! | --- | --- | --- |
//! | `/`, `/app.js`, `/stomp.js`, `/style.css`, `/favicon.svg` | the embedded chat page | 404 |
//! | `/healthz` | 200 `ok` | 404 |
//! | `/metrics` | Prometheus text | 404 |
//! | `/ws/echo` | 426 | echo ([`super::echo`]) |
//! | `/ws/chat/{room}` | 426 | chat ([`super::chat`]) |
//! | `/stomp` (unless `--stomp off`) | 426 | STOMP ([`super::stomp`]) |
//! | anything else | 404 | 404 |
//!
//! Plain responses close the connection (`Connection: close`). A request for a WebSocket path
//! is validated as an upgrade even without `Upgrade: websocket`, so that it gets the right
//! error (426 with `Upgrade: websocket`, 400 …); every such failure is counted by reason.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::debug;
use wsx::MaybeTlsStream;
use wsx_proto::handshake::{error_response, validate_upgrade};

use super::{State, chat, echo, static_files, stomp};
use wsx_broker::Escaped;

/// Where a request goes.
#[derive(Debug, PartialEq, Eq)]
enum Route<'a> {
    Asset(static_files::Asset),
    Health,
    Metrics,
    Echo,
    Chat(&'a str),
    Stomp,
    NotFound,
}

/// The WebSocket session a route runs.
enum Endpoint {
    Echo,
    Chat(String),
    Stomp(Arc<stomp::Stomp>),
}

fn route(path: &str) -> Route<'_> {
    match path {
        "/healthz" => Route::Health,
        "/metrics" => Route::Metrics,
        "/ws/echo" => Route::Echo,
        "/stomp" => Route::Stomp,
        _ => {
            if let Some(room) = path.strip_prefix("/ws/chat/") {
                if chat::valid_room(room) {
                    return Route::Chat(room);
                }
                return Route::NotFound;
            }
            static_files::lookup(path).map_or(Route::NotFound, Route::Asset)
        }
    }
}

/// Serve one TCP connection, counted in `_slot` (taken, and checked against
/// `--max-connections`, by the accept loop).
pub async fn handle(
    tcp: TcpStream,
    peer: SocketAddr,
    state: Arc<State>,
    mut shutdown: watch::Receiver<bool>,
    _slot: Slot,
) {
    if let Err(e) = tcp.set_nodelay(true) {
        debug!(%peer, "set_nodelay: {e}");
    }
    // One deadline for the TLS handshake (with --tls-cert) and the request head together.
    let deadline = tokio::time::Instant::now() + state.handshake_timeout;
    let mut tcp: MaybeTlsStream = match &state.tls {
        None => tcp.into(),
        Some(acceptor) => match tokio::time::timeout_at(deadline, acceptor.accept_tls(tcp)).await {
            Ok(Ok(tls)) => tls.into(),
            Ok(Err(e)) => {
                debug!(%peer, "TLS handshake failed: {e}");
                return;
            }
            Err(_) => {
                debug!(%peer, "no TLS handshake in time");
                return;
            }
        },
    };
    let read = tokio::time::timeout_at(
        deadline,
        wsx::read_request(&mut tcp, state.echo_config.max_header_bytes),
    );
    let (req, leftover) = tokio::select! {
        () = super::wait_shutdown(&mut shutdown) => return,
        read = read => match read {
            Err(_) => {
                debug!(%peer, "no request head in time");
                let _ = wsx::respond(&mut tcp, 408, &[], b"request timeout\n").await;
                return;
            }
            Ok(Err(e)) => {
                // Malformed or oversized heads were answered (400, 431) by read_request.
                if let Some(h) = e.as_handshake() {
                    state.metrics.handshake_failed(h);
                }
                debug!(%peer, "bad request: {}", Escaped(&e));
                return;
            }
            Ok(Ok(r)) => r,
        },
    };
    let path = req.path().to_owned();
    let (config, endpoint) = match (route(&path), &state.stomp) {
        (Route::Echo, _) => (&state.echo_config, Endpoint::Echo),
        (Route::Chat(room), _) => (&state.chat_config, Endpoint::Chat(room.to_owned())),
        (Route::Stomp, Some(stomp)) => (stomp.ws_config(), Endpoint::Stomp(stomp.clone())),
        (plain, _) => {
            state.metrics.http_request();
            let is_get = req.method == "GET";
            if let Err(e) = respond_plain(&mut tcp, plain, is_get, &state).await {
                debug!(%peer, "writing response: {e}");
            }
            debug!(%peer, method = %Escaped(&req.method), path = %Escaped(&path), "http");
            return;
        }
    };
    // Validated here first so that the failure is counted before the client sees the answer.
    if let Err(e) = validate_upgrade(&req) {
        state.metrics.handshake_failed(&e);
        debug!(%peer, path = %Escaped(&path), "handshake refused: {}", Escaped(&e));
        let refusal = async {
            tcp.write_all(&error_response(&e)).await?;
            tcp.shutdown().await
        };
        let _ = tokio::time::timeout(wsx::RESPONSE_TIMEOUT, refusal).await;
        return;
    }
    let accept = match state.policy.evaluate(&req, peer) {
        Ok(accept) => match &endpoint {
            Endpoint::Stomp(stomp) => stomp.accept(&req, accept),
            _ => accept,
        },
        Err(reject) => {
            debug!(%peer, path = %Escaped(&path), status = reject.status, "refused: {}", Escaped(&reject.body));
            let _ = wsx::respond(&mut tcp, reject.status, &[], reject.body.as_bytes()).await;
            return;
        }
    };
    let ws = match wsx::upgrade(tcp, &req, &leftover, config, accept).await {
        Ok(ws) => ws,
        Err(e) => {
            if let Some(h) = e.as_handshake() {
                state.metrics.handshake_failed(h);
            }
            debug!(%peer, path = %Escaped(&path), "handshake failed: {}", Escaped(&e));
            return;
        }
    };
    let _active = state.metrics.connection_opened();
    debug!(%peer, path = %Escaped(&path), compressed = ws.is_compressed(), "websocket open");
    match endpoint {
        Endpoint::Echo => echo::session(ws, state.clone(), shutdown).await,
        Endpoint::Chat(room) => chat::session(ws, room, state.clone(), shutdown).await,
        Endpoint::Stomp(stomp) => {
            let info = stomp::connection_info(&req, peer);
            stomp::session(ws, info, stomp, state.clone(), shutdown).await;
        }
    }
    debug!(%peer, path = %Escaped(&path), "websocket closed");
}

/// One counted connection; the count drops with it.
pub struct Slot {
    state: Arc<State>,
    count: usize,
}

impl Slot {
    /// Count a connection that was just accepted.
    pub fn take(state: &Arc<State>) -> Self {
        let count = state.open_connections.fetch_add(1, Ordering::Relaxed) + 1;
        Slot {
            state: state.clone(),
            count,
        }
    }

    /// Whether this connection is past `--max-connections`.
    pub fn over_limit(&self) -> bool {
        self.state
            .max_connections
            .is_some_and(|max| self.count > max)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.state.open_connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Answer a request that is not a WebSocket route.
async fn respond_plain(
    tcp: &mut MaybeTlsStream,
    route: Route<'_>,
    is_get: bool,
    state: &State,
) -> Result<(), wsx::Error> {
    const TEXT: &str = "text/plain; charset=utf-8";
    if route != Route::NotFound && !is_get {
        let headers = [("Content-Type", TEXT), ("Allow", "GET")];
        return wsx::respond(tcp, 405, &headers, b"method not allowed\n").await;
    }
    match route {
        Route::Asset(asset) => {
            let mut headers = vec![
                ("Content-Type", asset.content_type),
                ("Cache-Control", "no-cache"),
                ("X-Content-Type-Options", "nosniff"),
            ];
            if asset.content_type.starts_with("text/html") {
                headers.push((
                    "Content-Security-Policy",
                    static_files::CONTENT_SECURITY_POLICY,
                ));
                headers.push(("Referrer-Policy", "no-referrer"));
            }
            wsx::respond(tcp, 200, &headers, asset.body).await
        }
        Route::Health => wsx::respond(tcp, 200, &[("Content-Type", TEXT)], b"ok").await,
        Route::Metrics => {
            let body = state.metrics.render();
            let headers = [
                ("Content-Type", "text/plain; version=0.0.4; charset=utf-8"),
                ("Cache-Control", "no-store"),
            ];
            wsx::respond(tcp, 200, &headers, body.as_bytes()).await
        }
        Route::NotFound | Route::Echo | Route::Chat(_) | Route::Stomp => {
            wsx::respond(tcp, 404, &[("Content-Type", TEXT)], b"not found\n").await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route("/healthz"), Route::Health);
        assert_eq!(route("/metrics"), Route::Metrics);
        assert_eq!(route("/ws/echo"), Route::Echo);
        assert_eq!(route("/stomp"), Route::Stomp);
        assert_eq!(route("/ws/chat/lobby"), Route::Chat("lobby"));
        assert_eq!(route("/ws/chat/"), Route::NotFound);
        assert_eq!(route("/ws/chat/a/b"), Route::NotFound);
        assert_eq!(route("/nope"), Route::NotFound);
        assert!(matches!(route("/"), Route::Asset(_)));
        assert!(matches!(route("/style.css"), Route::Asset(_)));
    }
}
