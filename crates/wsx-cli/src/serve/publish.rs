//! `POST /api/publish`: the HTTP publish API of `wsx serve`, on the STOMP broker (see
//! [`wsx_broker::PublishRequest`] for what it answers and who may publish). This module adapts
//! it to the router: the request's head is admitted first ([`wsx_broker::Broker::admit_publish`]:
//! auth, destination and the announced length against the budget of bodies being read, before
//! any of the body is read), then head and body (read by the server, at most the broker's body
//! limit) become a [`PublishRequest`], the answer a JSON response; `--api-token` is the
//! [`ApiToken`].

use std::str::FromStr;
use std::sync::Arc;

use wsx::{Answer, HttpResponse, ReadBody};
use wsx_broker::{PublishAnswer, PublishHead, PublishRequest};

use super::State;
use super::stomp::Stomp;

/// The `--api-token` value; `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken(String);

impl ApiToken {
    /// The token.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiToken(…)")
    }
}

impl FromStr for ApiToken {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().is_empty() || s.chars().any(char::is_whitespace) {
            return Err("the token must not be empty nor contain spaces".to_owned());
        }
        Ok(ApiToken(s.to_owned()))
    }
}

/// Answer a request to `/api/publish` on `stomp`: read its body, then publish it.
pub fn answer(info: &wsx::ConnectionInfo, stomp: &Arc<Stomp>, state: &Arc<State>) -> Answer {
    let req = &info.request;
    if req.method != "POST" {
        return json(PublishAnswer::error(405, "use POST"))
            .header("Allow", "POST")
            .into();
    }
    let header = |name: &str| req.header_str(name).map(str::to_owned);
    let query = req.query().map(str::to_owned);
    let (authorization, content_type, conflation_key) = (
        header("authorization"),
        header("content-type"),
        header("x-conflation-key"),
    );
    let peer = info.peer.ip();
    let api_token = state.api_token.as_ref().map(ApiToken::as_str);
    // Nothing of the body is held for a request refused by its head, nor past the budget.
    let head = PublishHead {
        query: query.as_deref(),
        authorization: authorization.as_deref(),
        peer,
        content_length: req
            .header_str("content-length")
            .and_then(|v| v.trim().parse().ok()),
    };
    let admission = match stomp.admit_publish(head, api_token) {
        Ok(admission) => admission,
        Err(answer) => return json(answer).into(),
    };
    let (stomp, state) = (stomp.clone(), state.clone());
    ReadBody::new(stomp.max_publish_body(), move |body| async move {
        let _admission = admission;
        let answer = match body {
            Err(refused) => PublishAnswer::error(refused.status, refused.reason),
            Ok(body) => {
                stomp
                    .publish_http(
                        PublishRequest {
                            query: query.as_deref(),
                            authorization: authorization.as_deref(),
                            content_type: content_type.as_deref(),
                            conflation_key: conflation_key.as_deref(),
                            peer,
                            body,
                        },
                        state.api_token.as_ref().map(ApiToken::as_str),
                    )
                    .await
            }
        };
        json(answer)
    })
    .into()
}

/// `answer` as a JSON response.
fn json(answer: PublishAnswer) -> HttpResponse {
    let unauthorized = answer.status == 401;
    let mut response = HttpResponse::new(answer.status, answer.body)
        .header("Content-Type", "application/json")
        .header("Cache-Control", "no-store");
    if unauthorized {
        response = response.header("WWW-Authenticate", "Bearer");
    }
    response
}
