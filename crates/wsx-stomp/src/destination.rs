//! Destinations (`/topic/NAME`, `/queue/NAME`, `/user/{principal}/queue/NAME`, `/app/NAME`) and
//! the glob patterns that grant access to them.
//!
//! A topic fans each message out to every subscriber; a queue hands each message to exactly one
//! subscriber. A user destination (Spring's convention) is one principal's private topic: a
//! client subscribes to `/user/queue/NAME`, which its session resolves to
//! `/user/{its principal}/queue/NAME`, and gets what is sent there on every one of its
//! sessions; the MESSAGE frames carry the destination it subscribed to, `/user/queue/NAME`
//! ([`Destination::alias`]). An application destination (`/app/NAME`) takes SENDs only, for a
//! handler of the application the I/O layer puts in front of the engine.
//!
//! Patterns are configured by the server (see [`crate::Principal`]): `*` matches any run of
//! characters except `/`, `**` matches anything, every other character matches itself.

use std::fmt;
use std::sync::Arc;

/// The prefix of user destinations.
const USER_PREFIX: &str = "/user/";
/// The prefix of application destinations.
const APP_PREFIX: &str = "/app/";

/// What a destination is: where its messages go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DestinationKind {
    /// `/topic/NAME`: every subscriber gets every message.
    Topic,
    /// `/queue/NAME`: each message goes to one subscriber, round-robin.
    Queue,
    /// `/user/{principal}/queue/NAME` (or `/user/{principal}/topic/NAME`): every session of
    /// that principal subscribed to it (through `/user/queue/NAME`) gets every message, as on
    /// a topic.
    User,
    /// `/app/NAME`: a SEND for the application's handler; nobody subscribes to it.
    App,
}

impl DestinationKind {
    /// Whether every subscriber gets every message (a topic or a user destination), rather
    /// than one subscriber each (a queue).
    #[inline]
    pub fn fans_out(self) -> bool {
        matches!(self, DestinationKind::Topic | DestinationKind::User)
    }
}

/// A parsed destination. Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Destination {
    full: Arc<str>,
    kind: DestinationKind,
    /// Where NAME starts in `full`.
    name_at: usize,
    /// A user destination: where its principal ends in `full`, and `/user/queue/NAME`.
    user: Option<(usize, Arc<str>)>,
}

impl Destination {
    /// Parse `/topic/NAME`, `/queue/NAME`, `/user/{principal}/queue/NAME`,
    /// `/user/{principal}/topic/NAME` or `/app/NAME` (NAME and principal not empty, the
    /// principal without `/`); `None` for anything else.
    ///
    /// The principal is the first segment after `/user/`: `/user/queue/jobs` (the alias a
    /// client subscribes to) does not parse (user `queue`, path `/jobs`); sessions resolve it
    /// before parsing, with [`Destination::for_user`].
    pub fn parse(s: &str) -> Option<Destination> {
        if let Some(rest) = s.strip_prefix(USER_PREFIX) {
            let (principal, path) = rest.split_at(rest.find('/')?);
            let inner = Destination::parse_plain(path)?;
            if principal.is_empty() {
                return None;
            }
            let principal_end = USER_PREFIX.len() + principal.len();
            let alias: Arc<str> = Arc::from(format!("/user{path}"));
            return Some(Destination {
                full: Arc::from(s),
                kind: DestinationKind::User,
                name_at: principal_end + inner.name_at,
                user: Some((principal_end, alias)),
            });
        }
        if let Some(name) = s.strip_prefix(APP_PREFIX) {
            return (!name.is_empty()).then(|| Destination {
                full: Arc::from(s),
                kind: DestinationKind::App,
                name_at: APP_PREFIX.len(),
                user: None,
            });
        }
        Destination::parse_plain(s)
    }

    /// Parse `/topic/NAME` or `/queue/NAME`.
    fn parse_plain(s: &str) -> Option<Destination> {
        let (kind, prefix) = if s.starts_with("/topic/") {
            (DestinationKind::Topic, "/topic/".len())
        } else if s.starts_with("/queue/") {
            (DestinationKind::Queue, "/queue/".len())
        } else {
            return None;
        };
        (s.len() > prefix).then(|| Destination {
            full: Arc::from(s),
            kind,
            name_at: prefix,
            user: None,
        })
    }

    /// The user destination of `principal` for `path` (`/queue/NAME` or `/topic/NAME`):
    /// `/user/{principal}/queue/NAME`. `None` if `principal` is empty or holds a `/`, or
    /// `path` is not a topic or queue destination. This is how a session resolves a
    /// SUBSCRIBE to `/user/queue/NAME`, and how a server sends to a user.
    pub fn for_user(principal: &str, path: &str) -> Option<Destination> {
        if principal.is_empty() || principal.contains('/') {
            return None;
        }
        Destination::parse(&format!("{USER_PREFIX}{principal}{path}"))
    }

    /// What a destination is.
    #[inline]
    pub fn kind(&self) -> DestinationKind {
        self.kind
    }

    /// The whole destination (`/queue/jobs`), as in the `destination` header.
    #[inline]
    pub fn as_str(&self) -> &str {
        &self.full
    }

    /// The part after `/topic/`, `/queue/` or `/app/`; for a user destination, after
    /// `/user/{principal}/queue/` (or `/topic/`).
    pub fn name(&self) -> &str {
        &self.full[self.name_at..]
    }

    /// The principal of a user destination (`alice` in `/user/alice/queue/x`).
    pub fn principal(&self) -> Option<&str> {
        let (end, _) = self.user.as_ref()?;
        Some(&self.full[USER_PREFIX.len()..*end])
    }

    /// The destination a subscriber of a user destination subscribed to, `/user/queue/NAME`
    /// for `/user/{principal}/queue/NAME`: what its MESSAGE frames carry. `None` for the
    /// other kinds.
    pub fn alias(&self) -> Option<&str> {
        self.user.as_ref().map(|(_, alias)| &**alias)
    }

    /// The `destination` header of the MESSAGE frames of this destination: the
    /// [alias](Destination::alias) of a user destination, the destination itself otherwise.
    #[inline]
    pub fn delivered_as(&self) -> &str {
        match &self.user {
            Some((_, alias)) => alias,
            None => &self.full,
        }
    }

    /// The whole destination as a shared string.
    pub fn shared(&self) -> &Arc<str> {
        &self.full
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

/// A glob over destinations: `*` is any run without `/`, `**` is any run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationPattern {
    pattern: String,
    tokens: Vec<Token>,
}

impl DestinationPattern {
    /// A pattern such as `/topic/**` or `/queue/user-*`.
    pub fn new(pattern: impl Into<String>) -> Self {
        let pattern = pattern.into();
        let tokens = tokens(&pattern);
        DestinationPattern { pattern, tokens }
    }

    /// The pattern text.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// Whether `destination` matches. Runs in O(pattern × destination), whatever the input.
    pub fn matches(&self, destination: &str) -> bool {
        let text = destination.as_bytes();
        // reachable[j]: the pattern consumed so far can match text[..j].
        let mut reachable = vec![false; text.len() + 1];
        let mut next = vec![false; text.len() + 1];
        reachable[0] = true;
        for &token in &self.tokens {
            next[0] = false;
            match token {
                Token::Byte(b) => {
                    for j in 0..text.len() {
                        next[j + 1] = reachable[j] && text[j] == b;
                    }
                }
                Token::Star | Token::DoubleStar => {
                    let crosses_slash = token == Token::DoubleStar;
                    for j in 0..=text.len() {
                        next[j] = reachable[j]
                            || (j > 0 && next[j - 1] && (crosses_slash || text[j - 1] != b'/'));
                    }
                }
            }
            std::mem::swap(&mut reachable, &mut next);
        }
        reachable[text.len()]
    }
}

impl From<&str> for DestinationPattern {
    fn from(pattern: &str) -> Self {
        DestinationPattern::new(pattern)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Byte(u8),
    Star,
    DoubleStar,
}

fn tokens(pattern: &str) -> Vec<Token> {
    let bytes = pattern.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'*' {
            if bytes.get(i + 1) == Some(&b'*') {
                out.push(Token::DoubleStar);
                i += 2;
            } else {
                out.push(Token::Star);
                i += 1;
            }
        } else {
            out.push(Token::Byte(bytes[i]));
            i += 1;
        }
    }
    out
}
