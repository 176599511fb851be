//! The HTTP publish API: `POST /api/publish?destination=/topic/NAME` publishes the request's
//! body to a topic or queue of the broker, for a backend that does not speak STOMP.
//!
//! Where it sits in the flow: the HTTP server (`wsx serve`'s router, or an application's)
//! reads the request head and asks [`Broker::admit_publish`] whether to read the body at all:
//! the destination, the caller's right to publish and the announced length are checked before
//! a byte of the body is held, and the length is reserved from the broker's budget of bodies
//! being read ([`PUBLISH_BODIES_BUDGET`]); then it reads the body (at most
//! [`Broker::max_publish_body`], the broker's body limit) and hands head and body over as a
//! [`PublishRequest`]; [`Broker::publish_http`] checks again (it also serves servers that skip
//! the admission), publishes like [`Broker::publish`] (through the engine: with Redis, to every
//! node) and returns the [`PublishAnswer`] to send, always JSON:
//!
//! | case | status | body |
//! | --- | --- | --- |
//! | published to a topic | 200 | `{"destination": "/topic/NAME", "offset": N}` once stored (`null`: stored, offset unknown) |
//! | published to a queue | 202 | `{"destination": "/queue/NAME"}` once stored (with Redis: once Redis answered) |
//! | no, or a bad, destination (only `/topic/NAME`, `/queue/NAME`) | 400 | `{"error": "…"}` |
//! | auth configured and no token, or a token that is neither the API token nor a valid JWT | 401 | `{"error": "…"}` (with `WWW-Authenticate: Bearer`) |
//! | a JWT whose `send` claim does not allow the destination; no auth configured and a client not on loopback | 403 | `{"error": "…"}` |
//! | a destination the server reserves for itself ([`crate::BrokerBuilder::reserve`]) | 403 | `{"error": "…"}` |
//! | a body longer than the broker's body limit | 413 | `{"error": "…"}` |
//! | the engine refuses (a budget crossed, Redis unreachable with its backlog full); the budget of bodies being read is spent | 503 | `{"error": "…"}` |
//!
//! Auth: `Authorization: Bearer TOKEN` where TOKEN is the API token (`--api-token`: allowed to
//! publish anywhere) or a JWT the broker's `--jwt-*` settings accept whose `send` claim allows
//! the destination. With neither configured, only loopback clients may publish.
//!
//! The body is the message's body; the request's `Content-Type` becomes its `content-type`
//! header and `X-Conflation-Key` its `x-conflation-key` (see [`wsx_stomp::CONFLATION_KEY`]).

use std::net::IpAddr;
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::OwnedSemaphorePermit;
use wsx_stomp::{CONFLATION_KEY, Destination, DestinationKind, Headers, Publish};

use crate::broker::Broker;
use crate::jwt::percent_decode;

/// One `POST /api/publish` request, as the HTTP layer read it.
#[derive(Debug, Clone)]
pub struct PublishRequest<'a> {
    /// The request's query string (`destination=/topic/NAME`, percent-encoded or not).
    pub query: Option<&'a str>,
    /// The `Authorization` header.
    pub authorization: Option<&'a str>,
    /// The `Content-Type` header.
    pub content_type: Option<&'a str>,
    /// The `X-Conflation-Key` header.
    pub conflation_key: Option<&'a str>,
    /// The client's address.
    pub peer: IpAddr,
    /// The body: the message's body.
    pub body: Bytes,
}

/// The bytes of request bodies all HTTP publishes of a broker may be reading at once (or the
/// broker's body limit, if larger): what each request's `Content-Length` announces is reserved
/// by [`Broker::admit_publish`] before its body is read, and released when the answer is made.
/// Past it a request is answered `503` at once: slow uploads cannot make the server hold more.
pub const PUBLISH_BODIES_BUDGET: usize = 16 << 20;

/// A publish request's head, before its body is read ([`Broker::admit_publish`]).
#[derive(Debug, Clone)]
pub struct PublishHead<'a> {
    /// The request's query string (`destination=/topic/NAME`, percent-encoded or not).
    pub query: Option<&'a str>,
    /// The `Authorization` header.
    pub authorization: Option<&'a str>,
    /// The client's address.
    pub peer: IpAddr,
    /// The body's length as `Content-Length` announces it (`None`: no or a malformed header,
    /// which the body reader refuses itself).
    pub content_length: Option<usize>,
}

/// A request admitted to have its body read: holds its share of [`PUBLISH_BODIES_BUDGET`]
/// until dropped (keep it until the answer is made).
#[derive(Debug)]
pub struct PublishAdmission {
    _reserved: Option<OwnedSemaphorePermit>,
}

/// What to answer to an HTTP publish request: a status and a JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishAnswer {
    /// 200, 202, 400, 401, 403, 413 or 503 (see the module docs).
    pub status: u16,
    /// The JSON body.
    pub body: String,
}

impl PublishAnswer {
    /// An error answer: `{"error": reason}` with `status` (also for what the HTTP layer refuses
    /// itself: 413 for a body past [`Broker::max_publish_body`], say).
    pub fn error(status: u16, reason: &str) -> Self {
        PublishAnswer {
            status,
            body: serde_json::json!({ "error": reason }).to_string(),
        }
    }
}

impl Broker {
    /// The largest body an HTTP publish may carry: the broker's message body limit.
    pub fn max_publish_body(&self) -> usize {
        self.max_body_size
    }

    /// Whether to read the body of a publish request with this head (see the module docs):
    /// `Err` with the answer to make at once (400, 401, 403, 413, or 503 when the bodies being
    /// read already hold [`PUBLISH_BODIES_BUDGET`]), else the admission to keep until the
    /// answer is made. `api_token` is `--api-token`.
    pub fn admit_publish(
        &self,
        head: PublishHead<'_>,
        api_token: Option<&str>,
    ) -> Result<PublishAdmission, PublishAnswer> {
        self.check_head(head.query, head.authorization, head.peer, api_token)?;
        let length = head.content_length.unwrap_or(0);
        if length > self.max_body_size {
            return Err(PublishAnswer::error(413, "request body too large"));
        }
        let permits = u32::try_from(length).unwrap_or(u32::MAX);
        match self.publish_bodies.clone().try_acquire_many_owned(permits) {
            Ok(permit) => Ok(PublishAdmission {
                _reserved: Some(permit),
            }),
            Err(_) => Err(PublishAnswer::error(
                503,
                "too many request bodies being received: try again",
            )),
        }
    }

    /// Answer one `POST /api/publish` (see the module docs); `api_token` is `--api-token`.
    pub async fn publish_http(
        &self,
        request: PublishRequest<'_>,
        api_token: Option<&str>,
    ) -> PublishAnswer {
        let destination = match self.check_head(
            request.query,
            request.authorization,
            request.peer,
            api_token,
        ) {
            Ok(destination) => destination,
            Err(answer) => return answer,
        };
        if request.body.len() > self.max_body_size {
            return PublishAnswer::error(413, "request body too large");
        }
        let mut headers = Headers::new();
        if let Some(content_type) = request.content_type {
            headers.push("content-type", content_type);
        }
        if let Some(key) = request.conflation_key {
            headers.push(CONFLATION_KEY, key);
        }
        let name = destination.as_str().to_owned();
        let kind = destination.kind();
        match self.store(destination, headers, request.body).await {
            Err(refused) => PublishAnswer::error(503, &refused),
            Ok(offset) if kind == DestinationKind::Topic => PublishAnswer {
                status: 200,
                body: serde_json::json!({ "destination": name, "offset": offset }).to_string(),
            },
            Ok(_) => PublishAnswer {
                status: 202,
                body: serde_json::json!({ "destination": name }).to_string(),
            },
        }
    }

    /// Publish through the hub: a topic message once stored, with the offset it got in its
    /// topic (`None` in the rare case the store could not report it, after a retried Redis
    /// pipeline); a queue message once stored (in memory at once, with Redis once Redis
    /// answered the write).
    async fn store(
        &self,
        destination: Destination,
        headers: Headers,
        body: Bytes,
    ) -> Result<Option<u64>, String> {
        if destination.kind() == DestinationKind::Topic {
            return self
                .publish_with_offset(destination.as_str(), headers, body)
                .await
                .map(|offset| (offset != 0).then_some(offset))
                .map_err(|e| e.to_string());
        }
        let publish = Publish::new(destination, headers, body);
        let pending = self
            .hub
            .publish_through(DestinationKind::Queue, |engine, out| {
                engine.backend_mut().publish_stored(publish, out)
            })?;
        pending.stored().await.map(|_| None)
    }

    /// The destination a request's head names, if the caller may publish there; else the
    /// answer to make (400, 401 or 403).
    fn check_head(
        &self,
        query: Option<&str>,
        authorization: Option<&str>,
        peer: IpAddr,
        api_token: Option<&str>,
    ) -> Result<Destination, PublishAnswer> {
        let destination =
            destination_of(query).map_err(|reason| PublishAnswer::error(400, &reason))?;
        self.may_publish(authorization, peer, api_token, &destination)
            .map_err(|(status, reason)| PublishAnswer::error(status, &reason))?;
        if let Some(prefix) = self
            .reserved
            .iter()
            .find(|p| destination.as_str().starts_with(p.as_str()))
        {
            let reason = format!("{prefix}... is reserved for the server's own traffic");
            return Err(PublishAnswer::error(403, &reason));
        }
        Ok(destination)
    }

    /// Whether the client at `peer` with `authorization` may publish to `destination`: `Err`
    /// with the status and reason otherwise.
    fn may_publish(
        &self,
        authorization: Option<&str>,
        peer: IpAddr,
        api_token: Option<&str>,
        destination: &Destination,
    ) -> Result<(), (u16, String)> {
        if api_token.is_none() && self.jwt.is_none() {
            return if peer.to_canonical().is_loopback() {
                Ok(())
            } else {
                Err((
                    403,
                    "publishing over HTTP is open to loopback clients only: configure \
                     --api-token or --jwt-secret"
                        .to_owned(),
                ))
            };
        }
        let Some(token) = authorization.and_then(bearer) else {
            return Err((
                401,
                "authentication required: Authorization: Bearer TOKEN".to_owned(),
            ));
        };
        if api_token.is_some_and(|api| same_secret(api, token)) {
            return Ok(());
        }
        let Some(jwt) = &self.jwt else {
            return Err((401, "invalid token".to_owned()));
        };
        let principal = jwt
            .verify(token, Instant::now())
            .map_err(|refusal| (401, refusal.message))?;
        if principal.may_send(destination.as_str()) {
            Ok(())
        } else {
            Err((
                403,
                format!("the token may not send to {}", destination.as_str()),
            ))
        }
    }
}

/// The destination named by the query's `destination` parameter: a topic or a queue.
fn destination_of(query: Option<&str>) -> Result<Destination, String> {
    let raw = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| pair.strip_prefix("destination="))
        .ok_or("missing ?destination=/topic/NAME or /queue/NAME")?;
    let name = percent_decode(raw);
    Destination::parse(&name)
        .filter(|d| matches!(d.kind(), DestinationKind::Topic | DestinationKind::Queue))
        .ok_or_else(|| format!("`{name}`: expected /topic/NAME or /queue/NAME"))
}

/// The token of an `Authorization: Bearer TOKEN` header.
fn bearer(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Whether `given` is `secret`, compared in time independent of where they differ.
fn same_secret(secret: &str, given: &str) -> bool {
    secret.len() == given.len()
        && secret
            .bytes()
            .zip(given.bytes())
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_from_the_query() {
        let name = |q: &str| destination_of(Some(q)).map(|d| d.as_str().to_owned());
        assert_eq!(name("destination=/topic/a"), Ok("/topic/a".to_owned()));
        assert_eq!(
            name("x=1&destination=%2Fqueue%2Fb"),
            Ok("/queue/b".to_owned())
        );
        assert!(name("destination=/app/x").is_err());
        assert!(name("destination=/user/u/queue/x").is_err());
        assert!(name("destination=").is_err());
        assert!(destination_of(None).is_err());
    }

    #[tokio::test]
    async fn without_auth_only_loopback_peers_publish() {
        let broker = Broker::builder().build().expect("a broker");
        let from = async |peer: &str, token: Option<&str>| {
            broker
                .publish_http(
                    PublishRequest {
                        query: Some("destination=/topic/t"),
                        authorization: None,
                        content_type: None,
                        conflation_key: None,
                        peer: peer.parse().expect("an address"),
                        body: Bytes::from_static(b"x"),
                    },
                    token,
                )
                .await
                .status
        };
        assert_eq!(from("127.0.0.1", None).await, 200);
        assert_eq!(from("::1", None).await, 200);
        assert_eq!(from("::ffff:127.0.0.1", None).await, 200);
        assert_eq!(from("10.0.0.1", None).await, 403);
        assert_eq!(from("2001:db8::1", None).await, 403);
        // With an API token configured, loopback needs it too.
        assert_eq!(from("127.0.0.1", Some("secret")).await, 401);
    }

    #[test]
    fn bearer_tokens_and_secrets() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert!(same_secret("s3cret", "s3cret"));
        assert!(!same_secret("s3cret", "s3creT"));
        assert!(!same_secret("s3cret", "s3cre"));
    }
}
