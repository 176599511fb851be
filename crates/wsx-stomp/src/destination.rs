//! Destinations (`/topic/NAME`, `/queue/NAME`) and the glob patterns that grant access to them.
//!
//! A topic fans each message out to every subscriber; a queue hands each message to exactly one
//! subscriber. Patterns are configured by the server (see [`crate::Principal`]): `*` matches any
//! run of characters except `/`, `**` matches anything, every other character matches itself.

use std::fmt;
use std::sync::Arc;

/// Whether a destination is a topic or a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DestinationKind {
    /// `/topic/NAME`: every subscriber gets every message.
    Topic,
    /// `/queue/NAME`: each message goes to one subscriber, round-robin.
    Queue,
}

/// A parsed destination. Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Destination {
    full: Arc<str>,
    kind: DestinationKind,
}

impl Destination {
    /// Parse `/topic/NAME` or `/queue/NAME` (NAME not empty); `None` for anything else.
    pub fn parse(s: &str) -> Option<Destination> {
        let (kind, name) = if let Some(name) = s.strip_prefix("/topic/") {
            (DestinationKind::Topic, name)
        } else if let Some(name) = s.strip_prefix("/queue/") {
            (DestinationKind::Queue, name)
        } else {
            return None;
        };
        (!name.is_empty()).then(|| Destination {
            full: Arc::from(s),
            kind,
        })
    }

    /// Topic or queue.
    pub fn kind(&self) -> DestinationKind {
        self.kind
    }

    /// The whole destination (`/queue/jobs`), as in the `destination` header.
    pub fn as_str(&self) -> &str {
        &self.full
    }

    /// The part after `/topic/` or `/queue/`.
    pub fn name(&self) -> &str {
        let prefix = match self.kind {
            DestinationKind::Topic => "/topic/".len(),
            DestinationKind::Queue => "/queue/".len(),
        };
        &self.full[prefix..]
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
