//! [`AppMessage`]: what an application handler ([`crate::AppHandler`]) gets for a SEND to one
//! of its `/app/...` destinations, and how it answers (publish, reply to the sender).
//!
//! Where it sits in the flow: built by [`crate::app_engine`] once the SEND matched a route,
//! handed to the handler in a task of its own on the node the client is connected to. What the
//! handler publishes goes through the broker's engine like any SEND (with Redis, to every
//! node).

use std::sync::Arc;

use bytes::Bytes;
use wsx_stomp::{ConnId, Destination, Headers, Publish, Refusal};

use crate::broker::Broker;
use crate::error::Error;

/// A SEND to an application destination, for its handler.
#[derive(Debug, Clone)]
pub struct AppMessage {
    pub(crate) broker: Arc<Broker>,
    pub(crate) principal: String,
    pub(crate) conn: ConnId,
    pub(crate) destination: String,
    pub(crate) params: Vec<(String, String)>,
    pub(crate) headers: Headers,
    pub(crate) body: Bytes,
}

impl AppMessage {
    /// The sender's principal (the `user-id` of its CONNECTED).
    pub fn principal(&self) -> &str {
        &self.principal
    }

    /// The sender's session id (the `session` header of its CONNECTED).
    pub fn session_id(&self) -> String {
        format!("session-{}", self.conn.0)
    }

    /// The destination the client sent to (`/app/chat.lobby`).
    pub fn destination(&self) -> &str {
        &self.destination
    }

    /// The value of placeholder `{name}` of the route's pattern.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every placeholder and its value, in the pattern's order.
    pub fn params(&self) -> &[(String, String)] {
        &self.params
    }

    /// The SEND's headers (without `destination`, `receipt`, `content-length` and the other
    /// headers the broker manages).
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The SEND's body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The body as text, if it is UTF-8.
    pub fn body_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.body).ok()
    }

    /// The broker (for anything else: [`Broker::subscribe`], other users …).
    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    /// Publish a message to a topic, queue or user destination ([`Broker::publish`]).
    pub fn publish(
        &self,
        destination: &str,
        headers: Headers,
        body: impl Into<Bytes>,
    ) -> Result<(), Error> {
        self.broker.publish(destination, headers, body)
    }

    /// Reply to the sending session alone on its user destination `path` (`/queue/replies`:
    /// the client subscribed to `/user/queue/replies`), like Spring's
    /// `@SendToUser(broadcast = false)`; nothing is sent when that session has no such
    /// subscription (or is gone). To reach every session of the sender's principal, on every
    /// node, use [`Broker::send_to_user`] with [`AppMessage::principal`]. Errors for a `path`
    /// that is not `/queue/NAME` or `/topic/NAME`.
    pub fn reply(&self, path: &str, headers: Headers, body: impl Into<Bytes>) -> Result<(), Error> {
        let destination = Destination::for_user(&self.principal, path).ok_or_else(|| {
            Error::Refused(format!("`{path}`: expected /queue/NAME or /topic/NAME"))
        })?;
        self.broker
            .hub
            .deliver_to_session(self.conn, Publish::new(destination, headers, body.into()));
        Ok(())
    }
}

/// A broker error refuses the SEND with its message (so a handler can use `?`).
impl From<Error> for Refusal {
    fn from(error: Error) -> Self {
        Refusal::new(error.to_string())
    }
}
