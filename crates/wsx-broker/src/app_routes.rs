//! Application destinations: the table of `/app/...` patterns ([`crate::Broker::route`]) and
//! the handlers they lead to ([`AppHandler`]).
//!
//! Where it sits in the flow: a client SENDs to `/app/chat.lobby`; its session hands the
//! message to the engine, where [`crate::app_engine::AppEngine`] (in front of the memory or
//! Redis engine) looks the destination up here. A match starts the handler in a task of its
//! own with an [`crate::AppMessage`] (the `{name}` values of the pattern among its
//! parameters); no match leaves the SEND to the engine behind, which refuses it with the ERROR
//! `no handler for /app/...`.
//!
//! A pattern is `/app/` and then text with `{name}` placeholders: `/app/chat.{room}`,
//! `/app/{game}/move`. A placeholder matches one character or more, never a `/`; the first
//! pattern added that matches wins.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, PoisonError, RwLock};

use wsx_stomp::Refusal;

use crate::app_message::AppMessage;
use crate::broker::Broker;
use crate::error::Error;

/// The most SENDs of one session to `/app/` handlers that may be in flight (handed to a
/// handler, not answered yet); past it the session's next one is refused with an ERROR.
pub const MAX_APP_SENDS: usize = 1024;

/// The most bytes (headers and bodies) of one session's SENDs in flight to `/app/` handlers;
/// past it the session's next one is refused with an ERROR. Above the largest frame, so one
/// SEND of any size the decoder takes is always handled.
pub const MAX_APP_BYTES: usize = 8 << 20;

/// The future an [`AppHandler`] answers with: `Ok` accepts the message (its RECEIPT goes out),
/// `Err` refuses it (the sender gets an ERROR with the refusal's message and is closed, as for
/// any refused SEND).
pub type AppFuture = Pin<Box<dyn Future<Output = Result<(), Refusal>> + Send>>;

/// Handles the SENDs to an application destination: any
/// `Fn(AppMessage) -> impl Future<Output = Result<(), Refusal>> + Send` is one.
pub trait AppHandler: Send + Sync + 'static {
    /// Handle one message.
    fn handle(&self, message: AppMessage) -> AppFuture;
}

impl<F, Fut> AppHandler for F
where
    F: Fn(AppMessage) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), Refusal>> + Send + 'static,
{
    fn handle(&self, message: AppMessage) -> AppFuture {
        Box::pin(self(message))
    }
}

impl Broker {
    /// Hand the SENDs to destinations matching `pattern` to `handler`, from now on; routes
    /// added earlier match first. A pattern is `/app/` and text with `{name}` placeholders
    /// (`/app/chat.{room}`, `/app/{game}/move`); a placeholder matches one character or more,
    /// never `/`, and its value is [`AppMessage::param`]. Errors for an invalid pattern.
    pub fn route(&self, pattern: &str, handler: impl AppHandler) -> Result<(), Error> {
        self.routes
            .add(RoutePattern::parse(pattern)?, Arc::new(handler));
        Ok(())
    }
}

/// One piece of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    /// Text that must be there as it is.
    Literal(String),
    /// `{name}`: one character or more, no `/`.
    Placeholder(String),
}

/// A parsed `/app/...` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RoutePattern {
    pieces: Vec<Piece>,
}

impl RoutePattern {
    /// Parse `pattern`; errors for the user (no `/app/` prefix, an unclosed or empty `{}`,
    /// two placeholders in a row).
    pub(crate) fn parse(pattern: &str) -> Result<RoutePattern, Error> {
        let invalid = |why: &str| Error::Config(format!("app route `{pattern}`: {why}"));
        if !pattern.starts_with("/app/") || pattern.len() == "/app/".len() {
            return Err(invalid("must start with /app/ and name something"));
        }
        let mut pieces = Vec::new();
        let mut rest = pattern;
        while !rest.is_empty() {
            match rest.find('{') {
                Some(0) => {
                    let end = rest.find('}').ok_or_else(|| invalid("unclosed `{`"))?;
                    let name = &rest[1..end];
                    if name.is_empty() || name.contains(['{', '/']) {
                        return Err(invalid("a placeholder needs a name without `{` or `/`"));
                    }
                    if matches!(pieces.last(), Some(Piece::Placeholder(_))) {
                        return Err(invalid("two placeholders need text between them"));
                    }
                    pieces.push(Piece::Placeholder(name.to_owned()));
                    rest = &rest[end + 1..];
                }
                found => {
                    let end = found.unwrap_or(rest.len());
                    if rest[..end].contains('}') {
                        return Err(invalid("`}` without `{`"));
                    }
                    pieces.push(Piece::Literal(rest[..end].to_owned()));
                    rest = &rest[end..];
                }
            }
        }
        Ok(RoutePattern { pieces })
    }

    /// The placeholder values if `destination` matches.
    pub(crate) fn matches(&self, destination: &str) -> Option<Vec<(String, String)>> {
        let mut params = Vec::new();
        match_pieces(&self.pieces, destination, &mut params).then_some(params)
    }
}

/// Whether `s` matches `pieces`, collecting the placeholder values (backtracking over the
/// length of each placeholder).
fn match_pieces(pieces: &[Piece], s: &str, params: &mut Vec<(String, String)>) -> bool {
    match pieces.split_first() {
        None => s.is_empty(),
        Some((Piece::Literal(text), rest)) => s
            .strip_prefix(text.as_str())
            .is_some_and(|after| match_pieces(rest, after, params)),
        Some((Piece::Placeholder(name), rest)) => {
            let limit = s.find('/').unwrap_or(s.len());
            let ends = s[..limit]
                .char_indices()
                .map(|(at, _)| at)
                .skip(1)
                .chain([limit])
                .filter(|&end| end > 0);
            for end in ends {
                params.push((name.clone(), s[..end].to_owned()));
                if match_pieces(rest, &s[end..], params) {
                    return true;
                }
                params.pop();
            }
            false
        }
    }
}

/// A pattern and its handler.
struct Route {
    pattern: RoutePattern,
    handler: Arc<dyn AppHandler>,
}

/// The route a destination matched.
pub(crate) struct RouteMatch {
    /// The route's handler.
    pub(crate) handler: Arc<dyn AppHandler>,
    /// The placeholders' values, in the pattern's order.
    pub(crate) params: Vec<(String, String)>,
}

/// The application destinations of a broker; routes may be added while it runs.
#[derive(Default)]
pub(crate) struct AppRoutes {
    routes: RwLock<Vec<Route>>,
}

impl std::fmt::Debug for AppRoutes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let routes = self.routes.read().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("AppRoutes")
            .field("routes", &routes.len())
            .finish()
    }
}

impl AppRoutes {
    /// Add a route (after those already there).
    pub(crate) fn add(&self, pattern: RoutePattern, handler: Arc<dyn AppHandler>) {
        self.routes
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Route { pattern, handler });
    }

    /// The handler of the first route matching `destination`, and the placeholder values.
    pub(crate) fn find(&self, destination: &str) -> Option<RouteMatch> {
        let routes = self.routes.read().unwrap_or_else(PoisonError::into_inner);
        routes.iter().find_map(|route| {
            route.pattern.matches(destination).map(|params| RouteMatch {
                handler: route.handler.clone(),
                params,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pattern: &str, destination: &str) -> Option<Vec<(String, String)>> {
        RoutePattern::parse(pattern)
            .expect("a valid pattern")
            .matches(destination)
    }

    fn pair(name: &str, value: &str) -> (String, String) {
        (name.to_owned(), value.to_owned())
    }

    #[test]
    fn placeholders_take_what_lies_between_the_text() {
        assert_eq!(params("/app/greet", "/app/greet"), Some(vec![]));
        assert_eq!(params("/app/greet", "/app/greets"), None);
        assert_eq!(
            params("/app/chat.{room}", "/app/chat.lobby"),
            Some(vec![pair("room", "lobby")])
        );
        assert_eq!(
            params("/app/chat.{room}", "/app/chat.a.b"),
            Some(vec![pair("room", "a.b")])
        );
        assert_eq!(params("/app/chat.{room}", "/app/chat."), None);
        assert_eq!(params("/app/chat.{room}", "/app/chat.a/b"), None);
        assert_eq!(
            params("/app/{game}/move.{n}", "/app/chess/move.12"),
            Some(vec![pair("game", "chess"), pair("n", "12")])
        );
        assert_eq!(
            params("/app/{a}.x", "/app/é.y.x"),
            Some(vec![pair("a", "é.y")])
        );
    }

    #[test]
    fn bad_patterns_are_refused() {
        for bad in [
            "/topic/x",
            "/app/",
            "/app/{",
            "/app/{}",
            "/app/{a}{b}",
            "/app/a}",
            "/app/{a/b}",
        ] {
            assert!(RoutePattern::parse(bad).is_err(), "{bad}");
        }
    }
}
