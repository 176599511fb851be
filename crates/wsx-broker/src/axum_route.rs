//! Mounting the broker on axum 0.8 (feature `axum`): [`Broker::axum_route`] is a `GET`
//! route that upgrades with wsx's axum extractor ([`wsx::axum::WebSocketUpgrade`]) and runs
//! the STOMP session.
//!
//! Where it sits in the flow: axum (on hyper) routed the request to the broker's path; the
//! extractor validated the upgrade (or answered it with its HTTP error); the route picks the
//! STOMP subprotocol the client offers and the broker's WebSocket settings, answers 101, and
//! once hyper hands the connection over runs [`Broker::serve_websocket`] with the request's
//! path, query, headers (cookies among them) and, when the app is served with
//! `into_make_service_with_connect_info::<SocketAddr>()`, the peer address.
//!
//! ```no_run
//! use std::net::SocketAddr;
//! use axum::Router;
//! use wsx_broker::Broker;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let broker = Broker::builder().build()?;
//! let app = Router::new().route("/stomp", broker.axum_route());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await?;
//! # Ok(()) }
//! ```

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request};
use axum::response::Response;
use axum::routing::{MethodRouter, get};
use wsx::axum::WebSocketUpgrade;
use wsx_stomp::{ConnectionInfo, Transport};

use crate::broker::{Broker, SUBPROTOCOLS};

impl Broker {
    /// A `GET` route serving STOMP over WebSocket on axum: mount it at the broker's path
    /// (`Router::new().route("/stomp", broker.axum_route())`).
    pub fn axum_route<S>(self: &Arc<Self>) -> MethodRouter<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        let broker = self.clone();
        get(move |ws: WebSocketUpgrade, request: Request| {
            let broker = broker.clone();
            async move { broker.axum_upgrade(ws, &request) }
        })
    }

    /// Answer the upgrade and run the session once hyper hands the connection over.
    fn axum_upgrade(self: Arc<Self>, ws: WebSocketUpgrade, request: &Request) -> Response {
        let info = axum_connection_info(request);
        ws.config(self.ws_config.clone())
            .protocols(SUBPROTOCOLS)
            .on_upgrade(move |ws| async move {
                self.serve_websocket(ws, info).await;
            })
    }
}

/// What the authenticator learns about an axum request: path, query, headers (values that
/// are not visible ASCII left out), peer (when the app is served with connect info).
fn axum_connection_info(request: &Request) -> ConnectionInfo {
    let headers = request.headers().iter().filter_map(|(name, value)| {
        value
            .to_str()
            .ok()
            .map(|value| (name.as_str().to_owned(), value.to_owned()))
    });
    let mut info = ConnectionInfo::new()
        .with_path(request.uri().path())
        .with_headers(headers)
        .with_transport(Transport::WebSocket);
    if let Some(query) = request.uri().query() {
        info = info.with_query(query);
    }
    if let Some(ConnectInfo(peer)) = request.extensions().get::<ConnectInfo<SocketAddr>>() {
        info = info.with_peer_addr(*peer);
    }
    info
}
