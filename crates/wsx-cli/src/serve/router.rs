//! The route handler of `wsx serve`'s [`wsx::Server`]: where each request goes, and its answer.
//!
//! | path | plain GET | WebSocket upgrade |
//! | --- | --- | --- |
//! | `/`, `/app.js`, `/stomp.js`, `/style.css`, `/favicon.svg` | the embedded chat page | 404 |
//! | `/quotes`, `/quotes.js` | the quote page (its feed: `--demo-quotes`) | 404 |
//! | `/healthz` | 200 `ok` | 404 |
//! | `/metrics` | Prometheus text | 404 |
//! | `/ws/echo` | 426 | echo ([`super::echo`]) |
//! | `/ws/chat/{room}` | 426 | chat ([`super::chat`]) |
//! | `/stomp` (unless `--stomp off`) | 426 | STOMP ([`super::stomp`]) |
//! | `/api/publish` (unless `--stomp off`) | `POST`: publish ([`super::publish`]), others 405 | 405 |
//! | anything else | 404 | 404 |
//!
//! The server reads the request head (within `--handshake-timeout`, after the TLS handshake
//! with `--tls-cert`), counts the connection against `--max-connections` and closes WebSockets
//! with 1001 at shutdown; [`answer`] only routes. Plain responses close the connection
//! (`Connection: close`) over HTTP/1.1; over HTTP/2 (`--http2`, ALPN `h2` or h2c) the same
//! routes answer each stream, WebSockets are RFC 8441 extended CONNECTs, and the connection
//! stays open. A request for a WebSocket path is answered with an upgrade even
//! without `Upgrade: websocket`, so that the server gives it the right error (426 with
//! `Upgrade: websocket`, 400 …), counted by reason in the metrics.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::watch;
use tracing::debug;
use wsx::{Accept, Answer, HttpResponse, MaybeTlsStream, Upgrade, WebSocket};

use super::{State, chat, echo, publish, static_files, stomp};
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
    Publish,
    NotFound,
}

fn route(path: &str) -> Route<'_> {
    match path {
        "/healthz" => Route::Health,
        "/metrics" => Route::Metrics,
        "/ws/echo" => Route::Echo,
        "/stomp" => Route::Stomp,
        "/api/publish" => Route::Publish,
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

/// Answer one request: a plain response, or an upgrade to the session of its WebSocket route.
pub fn answer(
    info: &wsx::ConnectionInfo,
    state: &Arc<State>,
    shutdown: &watch::Receiver<bool>,
) -> Answer {
    let req = &info.request;
    let path = req.path();
    let shutdown = shutdown.clone();
    match (route(path), &state.stomp) {
        (Route::Echo, _) => {
            let session_state = state.clone();
            websocket(state, move |ws, _| {
                echo::session(ws, session_state, shutdown)
            })
            .config(state.echo_config.clone())
            .into()
        }
        (Route::Chat(room), _) => {
            let (room, session_state) = (room.to_owned(), state.clone());
            websocket(state, move |ws, _| {
                chat::session(ws, room, session_state, shutdown)
            })
            .config(state.chat_config.clone())
            .into()
        }
        (Route::Stomp, Some(stomp)) => {
            let (endpoint, session_state) = (stomp.clone(), state.clone());
            websocket(state, move |ws, conn| async move {
                let info = stomp::connection_info(&conn.request, conn.peer);
                stomp::session(ws, info, endpoint, session_state, shutdown).await;
            })
            .accept(stomp.accept(req, Accept::default()))
            .config(stomp.ws_config().clone())
            .into()
        }
        (Route::Publish, Some(stomp)) => {
            state.metrics.http_request();
            debug!(peer = %info.peer, method = %Escaped(&req.method), path = %Escaped(path), "http");
            publish::answer(info, stomp, state)
        }
        (plain, _) => {
            state.metrics.http_request();
            debug!(peer = %info.peer, method = %Escaped(&req.method), path = %Escaped(path), "http");
            // Without a broker, nothing to publish to.
            let plain = if plain == Route::Publish {
                Route::NotFound
            } else {
                plain
            };
            respond_plain(plain, req.method == "GET", state).into()
        }
    }
}

/// An upgrade to `session`, counted in the connections gauge while it runs. Every session
/// watches the `shutdown` channel itself (it waits on its room or the STOMP hub too) and closes
/// with 1001 "server shutting down".
fn websocket<F, Fut>(state: &Arc<State>, session: F) -> Upgrade
where
    F: FnOnce(WebSocket<MaybeTlsStream>, wsx::ConnectionInfo) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let state = state.clone();
    Upgrade::new(move |ws, info| async move {
        let _active = state.metrics.connection_opened(ws.get_ref().is_http2());
        let (peer, path) = (info.peer, info.request.path().to_owned());
        let http = if ws.get_ref().is_http2() { "2" } else { "1.1" };
        debug!(%peer, path = %Escaped(&path), compressed = ws.is_compressed(), http, "websocket open");
        session(ws, info).await;
        debug!(%peer, path = %Escaped(&path), "websocket closed");
    })
    .session_handles_shutdown()
}

/// The response to a request that is not a WebSocket route.
fn respond_plain(route: Route<'_>, is_get: bool, state: &State) -> HttpResponse {
    const TEXT: &str = "text/plain; charset=utf-8";
    if route != Route::NotFound && !is_get {
        return HttpResponse::new(405, &b"method not allowed\n"[..])
            .header("Content-Type", TEXT)
            .header("Allow", "GET");
    }
    match route {
        Route::Asset(asset) => {
            let mut response = HttpResponse::new(200, asset.body)
                .header("Content-Type", asset.content_type)
                .header("Cache-Control", "no-cache")
                .header("X-Content-Type-Options", "nosniff");
            if asset.content_type.starts_with("text/html") {
                response = response
                    .header(
                        "Content-Security-Policy",
                        static_files::CONTENT_SECURITY_POLICY,
                    )
                    .header("Referrer-Policy", "no-referrer");
            }
            response
        }
        Route::Health => HttpResponse::new(200, &b"ok"[..]).header("Content-Type", TEXT),
        Route::Metrics => HttpResponse::new(200, state.metrics.render())
            .header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            .header("Cache-Control", "no-store"),
        Route::NotFound | Route::Echo | Route::Chat(_) | Route::Stomp | Route::Publish => {
            HttpResponse::new(404, &b"not found\n"[..]).header("Content-Type", TEXT)
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
        assert_eq!(route("/api/publish"), Route::Publish);
        assert_eq!(route("/ws/chat/lobby"), Route::Chat("lobby"));
        assert_eq!(route("/ws/chat/"), Route::NotFound);
        assert_eq!(route("/ws/chat/a/b"), Route::NotFound);
        assert_eq!(route("/nope"), Route::NotFound);
        assert!(matches!(route("/"), Route::Asset(_)));
        assert!(matches!(route("/style.css"), Route::Asset(_)));
        assert!(matches!(route("/quotes"), Route::Asset(_)));
    }
}
