//! The members of a room on the other nodes, as their live events tell (see
//! [`super::bridge::LiveEvent`]).
//!
//! Each node announces its own members of a room: a `join` or `leave` as they come and go, and
//! its whole list (`here`) every [`PRESENCE_REFRESH`] and whenever a node says `hello` (its room
//! just started there). A node not heard from for [`PRESENCE_EXPIRY`] (it died, or lost Redis)
//! is forgotten, and its members count as gone: they leave the presence lists of the other
//! nodes within `PRESENCE_EXPIRY` + `PRESENCE_REFRESH` of the node's last word. A node whose
//! last member left says `here` with an empty list, and is forgotten at once.
//!
//! A node gives a joining member a name none of the members it knows of has, here or on the
//! other nodes (see [`super::names`]); only two joins under one name on two nodes at the same
//! moment can both get it, and presence lists then show both.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use tokio::time::Instant;

/// How often a node announces its whole member list of each room it has members in.
pub const PRESENCE_REFRESH: Duration = Duration::from_secs(3);
/// How long a node may stay silent before its members count as gone.
pub const PRESENCE_EXPIRY: Duration = Duration::from_secs(10);

/// The members of the other nodes.
#[derive(Debug, Default)]
pub struct RemotePresence {
    /// By node id (sorted, so that presence lists have a stable order).
    nodes: BTreeMap<String, RemoteNode>,
}

#[derive(Debug)]
struct RemoteNode {
    /// Member names, in the order they joined.
    names: Vec<String>,
    /// When the node was last heard from.
    seen: Instant,
}

/// What changed in the presence list.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Names that joined.
    pub joined: Vec<String>,
    /// Names that left.
    pub left: Vec<String>,
}

impl RemotePresence {
    /// Every member of the other nodes, node by node, each in the order they joined.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.nodes
            .values()
            .flat_map(|n| n.names.iter().map(String::as_str))
    }

    /// `name` joined on `node`.
    pub fn join(&mut self, node: &str, name: String, now: Instant) -> Changes {
        let entry = self.heard(node, now);
        entry.names.push(name.clone());
        Changes {
            joined: vec![name],
            left: Vec::new(),
        }
    }

    /// `name` left `node`.
    pub fn leave(&mut self, node: &str, name: &str, now: Instant) -> Changes {
        let entry = self.heard(node, now);
        let mut changes = Changes::default();
        if let Some(at) = entry.names.iter().position(|n| n == name) {
            changes.left.push(entry.names.remove(at));
        }
        changes
    }

    /// `node`'s whole list is `names`.
    pub fn here(&mut self, node: &str, names: Vec<String>, now: Instant) -> Changes {
        let old = if names.is_empty() {
            self.nodes.remove(node).map(|n| n.names).unwrap_or_default()
        } else {
            std::mem::replace(&mut self.heard(node, now).names, names.clone())
        };
        difference(&old, &names)
    }

    /// Forget the nodes not heard from since `now - PRESENCE_EXPIRY`; their members left.
    pub fn expire(&mut self, now: Instant) -> Changes {
        let mut changes = Changes::default();
        self.nodes.retain(|_, node| {
            let alive = now.saturating_duration_since(node.seen) < PRESENCE_EXPIRY;
            if !alive {
                changes.left.append(&mut node.names);
            }
            alive
        });
        changes
    }

    fn heard(&mut self, node: &str, now: Instant) -> &mut RemoteNode {
        let entry = self
            .nodes
            .entry(node.to_owned())
            .or_insert_with(|| RemoteNode {
                names: Vec::new(),
                seen: now,
            });
        entry.seen = now;
        entry
    }
}

/// Who is in `new` and not `old` (joined), and the reverse (left), counting repeats.
fn difference(old: &[String], new: &[String]) -> Changes {
    let mut counts: HashMap<&str, i64> = HashMap::new();
    for name in old {
        *counts.entry(name).or_default() -= 1;
    }
    for name in new {
        *counts.entry(name).or_default() += 1;
    }
    let mut changes = Changes::default();
    for name in new {
        if let Some(n) = counts.get_mut(name.as_str())
            && *n > 0
        {
            *n -= 1;
            changes.joined.push(name.clone());
        }
    }
    for name in old {
        if let Some(n) = counts.get_mut(name.as_str())
            && *n < 0
        {
            *n += 1;
            changes.left.push(name.clone());
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn joins_leaves_and_lists() {
        let now = Instant::now();
        let mut remote = RemotePresence::default();
        assert_eq!(remote.join("b", "bob".into(), now).joined, ["bob"]);
        assert_eq!(remote.join("a", "ann".into(), now).joined, ["ann"]);
        assert_eq!(remote.names().collect::<Vec<_>>(), ["ann", "bob"]);
        assert_eq!(remote.leave("b", "bob", now).left, ["bob"]);
        assert!(remote.leave("b", "bob", now).left.is_empty());
        let changes = remote.here("a", names(&["ann", "cy", "cy"]), now);
        assert_eq!(changes.joined, ["cy", "cy"]);
        assert!(changes.left.is_empty());
        let changes = remote.here("a", names(&["cy", "dee"]), now);
        assert_eq!(changes.joined, ["dee"]);
        assert_eq!(changes.left, ["ann", "cy"]);
        // An empty list forgets the node.
        assert_eq!(remote.here("a", Vec::new(), now).left, ["cy", "dee"]);
        assert_eq!(remote.names().count(), 0);
    }

    #[test]
    fn silent_nodes_expire() {
        let start = Instant::now();
        let mut remote = RemotePresence::default();
        remote.join("old", "ann".into(), start);
        remote.join("new", "bob".into(), start + PRESENCE_EXPIRY / 2);
        assert!(remote.expire(start + PRESENCE_EXPIRY / 2).left.is_empty());
        assert_eq!(remote.expire(start + PRESENCE_EXPIRY).left, ["ann"]);
        assert_eq!(remote.names().collect::<Vec<_>>(), ["bob"]);
    }
}
