//! Mounting the broker on a [`wsx::Server`]: [`Broker::upgrade`] answers a request for the
//! STOMP endpoint of an application's route handler ([`wsx::Server::serve_routes`]).
//!
//! Where it sits in the flow: the server has read the request head and the application's route
//! handler chose the broker's path; [`Broker::upgrade`] picks the STOMP subprotocol the client
//! offers (`v12.stomp`, `v11.stomp`, `v10.stomp`, or none), the broker's WebSocket settings,
//! and the session: once upgraded, the connection's [`wsx_stomp::ConnectionInfo`] (path,
//! query, headers and cookies, peer, [`wsx_stomp::Transport::WebSocket`], see
//! [`crate::connection_info`]) goes to [`Broker::serve_websocket`].
//!
//! ```no_run
//! use wsx::{Answer, Server};
//! use wsx_broker::Broker;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let broker = Broker::builder().build()?;
//! let server = Server::bind("127.0.0.1:8080").await?;
//! server
//!     .serve_routes(move |info| match info.request.path() {
//!         "/stomp" => broker.upgrade(info).into(),
//!         _ => Answer::text(404, "not found"),
//!     })
//!     .await?;
//! # Ok(()) }
//! ```

use std::sync::Arc;

use wsx::Upgrade;

use crate::broker::{Broker, choose_subprotocol, connection_info};

impl Broker {
    /// The answer of a [`wsx::Server::serve_routes`] route handler to a request for the
    /// broker's endpoint: upgrade with the best STOMP subprotocol offered and the broker's
    /// WebSocket settings, then run the STOMP session. The server checks the upgrade and
    /// applies its policy first.
    pub fn upgrade(self: &Arc<Self>, request: &wsx::ConnectionInfo) -> Upgrade {
        let broker = self.clone();
        let upgrade = Upgrade::new(move |ws, info: wsx::ConnectionInfo| async move {
            let info = connection_info(&info.request, info.peer);
            broker.serve_websocket(ws, info).await;
        })
        .config(self.ws_config.clone());
        match choose_subprotocol(&request.request) {
            Some(protocol) => upgrade.subprotocol(protocol),
            None => upgrade,
        }
    }
}
