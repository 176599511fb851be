//! The names taken in one chat room: a joining member gets the name it asked for, or that name
//! with the next free suffix (`bob`, `bob 2`, `bob 3` …), in O(log n) whatever the number of
//! members and whatever names they chose.
//!
//! Names compare without regard to ASCII case. Every taken name that ends in ` K` (K a number
//! from 2 on, written without leading zeros) also counts in the *family* of what precedes the
//! suffix, which records the suffixes in use; a name already taken gets the family's highest
//! suffix plus one, so no join probes the names one by one (a long name is cut to keep the
//! suffixed name within [`MAX_NAME_CHARS`]; its family is that of the cut name). Everything is
//! released when its member leaves: the registry holds only the names of present members.
//!
//! With rooms spanning nodes, a join also passes over the names the room's members have on the
//! other nodes, as far as this node knows them ([`Names::claim_avoiding`]); two members who join
//! two nodes under one name within the same instant may still both get it.

use std::collections::{BTreeSet, HashMap, HashSet};

use super::MAX_NAME_CHARS;

/// Suffixes past this are not recorded in families (a name like `bob 99999999999` is taken as
/// is, and never collides with a generated one before a billion joins).
const MAX_FAMILY_SUFFIX: u64 = 999_999_999;

/// The names of a room's members.
#[derive(Debug, Default)]
pub struct Names {
    /// Every taken name, ASCII-lowercased.
    taken: HashSet<String>,
    /// For each lowercased prefix, the suffixes in use after it.
    families: HashMap<String, BTreeSet<u64>>,
    /// Candidate names examined so far (how much work joins took).
    #[cfg(test)]
    probes: u64,
}

impl Names {
    /// Take `wanted` (already validated), or its first free suffixed form; returns the name
    /// taken.
    #[cfg(test)]
    pub fn claim(&mut self, wanted: &str) -> String {
        self.claim_avoiding(wanted, |_| false)
    }

    /// [`Names::claim`], also passing over the names `elsewhere` says are taken (given
    /// lowercased): the room's members on other nodes. Each of those costs one more probe.
    pub fn claim_avoiding(&mut self, wanted: &str, elsewhere: impl Fn(&str) -> bool) -> String {
        let is_free = |names: &mut Self, name: &str| {
            names.is_free(name) && !elsewhere(&name.to_ascii_lowercase())
        };
        if is_free(self, wanted) {
            self.insert(wanted);
            return wanted.to_owned();
        }
        let mut k: u64 = 2;
        loop {
            let suffix = format!(" {k}");
            let room = MAX_NAME_CHARS.saturating_sub(suffix.len());
            let cut: String = wanted.chars().take(room).collect();
            let prefix = cut.trim_end();
            let highest = self
                .families
                .get(&prefix.to_ascii_lowercase())
                .and_then(|family| family.last().copied());
            if let Some(highest) = highest
                && highest >= k
            {
                // Past every suffix in use (the cut, and so the family, may change with the
                // number of digits: look again).
                k = highest + 1;
                continue;
            }
            let candidate = format!("{prefix}{suffix}");
            if is_free(self, &candidate) {
                self.insert(&candidate);
                return candidate;
            }
            // Taken on another node, or past MAX_FAMILY_SUFFIX, where families record nothing.
            k += 1;
        }
    }

    /// Give `name` back (its member left).
    pub fn release(&mut self, name: &str) {
        if !self.taken.remove(&name.to_ascii_lowercase()) {
            return;
        }
        if let Some((prefix, k)) = split_suffix(name) {
            let key = prefix.to_ascii_lowercase();
            if let Some(family) = self.families.get_mut(&key) {
                family.remove(&k);
                if family.is_empty() {
                    self.families.remove(&key);
                }
            }
        }
    }

    fn is_free(&mut self, name: &str) -> bool {
        #[cfg(test)]
        {
            self.probes += 1;
        }
        !self.taken.contains(&name.to_ascii_lowercase())
    }

    fn insert(&mut self, name: &str) {
        self.taken.insert(name.to_ascii_lowercase());
        if let Some((prefix, k)) = split_suffix(name) {
            self.families
                .entry(prefix.to_ascii_lowercase())
                .or_default()
                .insert(k);
        }
    }
}

/// `bob 12` → (`bob`, 12): a name that ends in a space and a number from 2 to
/// [`MAX_FAMILY_SUFFIX`] without leading zeros.
fn split_suffix(name: &str) -> Option<(&str, u64)> {
    let (prefix, digits) = name.rsplit_once(' ')?;
    if prefix.is_empty()
        || digits.starts_with('0')
        || digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let k: u64 = digits.parse().ok()?;
    (2..=MAX_FAMILY_SUFFIX).contains(&k).then_some((prefix, k))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_taken_on_other_nodes_are_passed_over() {
        let mut names = Names::default();
        let remote = ["bob", "bob 2", "carol"];
        let elsewhere = |n: &str| remote.contains(&n);
        assert_eq!(names.claim_avoiding("Bob", elsewhere), "Bob 3");
        assert_eq!(names.claim_avoiding("bob", elsewhere), "bob 4");
        assert_eq!(names.claim_avoiding("CAROL", elsewhere), "CAROL 2");
        assert_eq!(names.claim_avoiding("dave", elsewhere), "dave");
    }

    #[test]
    fn same_name_gets_the_next_suffix() {
        let mut names = Names::default();
        let got: Vec<String> = (0..5).map(|_| names.claim("bob")).collect();
        assert_eq!(got, ["bob", "bob 2", "bob 3", "bob 4", "bob 5"]);
        // Without regard to ASCII case.
        assert_eq!(names.claim("BOB"), "BOB 6");
        assert_eq!(names.claim("alice"), "alice");
    }

    #[test]
    fn n_joins_with_one_name_get_unique_names_in_constant_probes_each() {
        const N: u64 = 5_000;
        let mut names = Names::default();
        let mut seen = HashSet::new();
        for _ in 0..N {
            let before = names.probes;
            let name = names.claim("bob");
            assert!(seen.insert(name.to_ascii_lowercase()), "{name} given twice");
            // The wanted name, then at most one candidate per change of digit count.
            assert!(
                names.probes - before <= 3,
                "{} probes",
                names.probes - before
            );
        }
        assert_eq!(seen.len() as u64, N);
        assert_eq!(names.taken.len() as u64, N);
        assert_eq!(names.families.len(), 1);
    }

    #[test]
    fn names_that_look_suffixed_are_skipped_without_probing_them() {
        let mut names = Names::default();
        // Others took `bob 2` … `bob 1000` literally.
        for k in 2..=1000 {
            assert_eq!(names.claim(&format!("bob {k}")), format!("bob {k}"));
        }
        assert_eq!(names.claim("bob"), "bob");
        let before = names.probes;
        assert_eq!(names.claim("bob"), "bob 1001");
        assert!(
            names.probes - before <= 2,
            "{} probes",
            names.probes - before
        );
        // Leading zeros and 1 are no suffixes: `bob 01` is taken as is.
        assert_eq!(names.claim("bob 01"), "bob 01");
        assert_eq!(names.claim("bob 01"), "bob 01 2");
    }

    #[test]
    fn long_names_are_cut_to_fit_the_suffix() {
        let mut names = Names::default();
        let long = "x".repeat(MAX_NAME_CHARS);
        assert_eq!(names.claim(&long), long);
        let second = names.claim(&long);
        assert_eq!(second, format!("{} 2", "x".repeat(MAX_NAME_CHARS - 2)));
        assert!(second.chars().count() <= MAX_NAME_CHARS);
        // Cut before a space: no double space.
        let spaced = format!("{} y", "a".repeat(29));
        assert_eq!(names.claim(&spaced), spaced);
        assert_eq!(names.claim(&spaced), format!("{} 2", "a".repeat(29)));
        // Through a change of digit count the cut changes too, names stay unique.
        let mut seen = HashSet::new();
        for _ in 0..200 {
            let name = names.claim(&long);
            assert!(name.chars().count() <= MAX_NAME_CHARS, "{name}");
            assert!(seen.insert(name.clone()), "{name} given twice");
        }
    }

    #[test]
    fn leaving_releases_everything() {
        let mut names = Names::default();
        let got: Vec<String> = (0..10).map(|_| names.claim("eve")).collect();
        names.release("eve 3");
        // The highest suffix in use goes on; a freed lower one is not reused.
        assert_eq!(names.claim("eve"), "eve 11");
        names.release("eve");
        assert_eq!(names.claim("eve"), "eve");
        for name in got.iter().chain(["eve 11".to_owned()].iter()) {
            names.release(name);
        }
        assert!(names.taken.is_empty(), "{:?}", names.taken);
        assert!(names.families.is_empty(), "{:?}", names.families);
        // Releasing an unknown name changes nothing.
        names.release("nobody");
        assert!(names.taken.is_empty());
    }
}
