//! Permission checks as etcd makes them: a user's key permissions, from all its roles, merged
//! into disjoint intervals per kind (read, write; `readwrite` counts as both), and a request
//! for `[key, range_end)` allowed only when one merged interval covers it whole.
//!
//! Keys and range ends are etcd's: an empty `range_end` means the single key, `"\0"` means
//! every key from `key` on. A permission granted with an empty key and `"\0"` covers all keys.

use std::cmp::Ordering;

/// One end of an interval: a key, or past every key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Bound {
    Key(Vec<u8>),
    Infinite,
}

/// The half-open interval `[start, end)` a key and range end denote.
fn interval(key: &[u8], range_end: &[u8]) -> (Vec<u8>, Bound) {
    match range_end {
        [] => {
            // The single key: [key, key + "\0").
            let mut end = key.to_vec();
            end.push(0);
            (key.to_vec(), Bound::Key(end))
        }
        [0] => (key.to_vec(), Bound::Infinite),
        end => (key.to_vec(), Bound::Key(end.to_vec())),
    }
}

/// Disjoint, sorted intervals of keys.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyRanges {
    intervals: Vec<(Vec<u8>, Bound)>,
}

impl KeyRanges {
    /// The union of `[key, range_end)` for every pair.
    pub fn union<'a>(pairs: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) -> KeyRanges {
        let mut all: Vec<(Vec<u8>, Bound)> = pairs
            .into_iter()
            .map(|(k, e)| interval(k, e))
            .filter(|(start, end)| match end {
                Bound::Key(end) => start.as_slice() < end.as_slice(),
                Bound::Infinite => true,
            })
            .collect();
        all.sort();
        let mut merged: Vec<(Vec<u8>, Bound)> = Vec::with_capacity(all.len());
        for (start, end) in all {
            if let Some(last) = merged.last_mut() {
                let touches = match &last.1 {
                    Bound::Infinite => true,
                    Bound::Key(last_end) => start.as_slice().cmp(last_end) != Ordering::Greater,
                };
                if touches {
                    if end > last.1 {
                        last.1 = end;
                    }
                    continue;
                }
            }
            merged.push((start, end));
        }
        KeyRanges { intervals: merged }
    }

    /// Whether one interval covers `[key, range_end)` whole.
    pub fn covers(&self, key: &[u8], range_end: &[u8]) -> bool {
        let (start, end) = interval(key, range_end);
        if let Bound::Key(e) = &end {
            if start.as_slice() >= e.as_slice() {
                // An empty range (etcd answers it with nothing): allowed if its start is.
                return self.covers(key, &[]);
            }
        }
        self.intervals
            .iter()
            .any(|(s, e)| s.as_slice() <= start.as_slice() && *e >= end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges(pairs: &[(&str, &str)]) -> KeyRanges {
        KeyRanges::union(pairs.iter().map(|(k, e)| (k.as_bytes(), e.as_bytes())))
    }

    #[test]
    fn single_keys_prefixes_and_open_ends() {
        let r = ranges(&[("foo", ""), ("dir/", "dir0"), ("z", "\0")]);
        assert!(r.covers(b"foo", b""));
        assert!(!r.covers(b"fo", b""));
        assert!(
            !r.covers(b"foo", b"fop"),
            "foo alone does not cover the foo* prefix"
        );
        assert!(r.covers(b"dir/a", b""));
        assert!(r.covers(b"dir/", b"dir0"));
        assert!(r.covers(b"dir/a", b"dir/b"));
        assert!(!r.covers(b"dir/", b"\0"));
        assert!(r.covers(b"zz", b"\0"));
        assert!(r.covers(b"z", b""));
        assert!(!r.covers(b"a", b"\0"));
    }

    #[test]
    fn adjacent_and_overlapping_grants_merge() {
        let r = ranges(&[("a", "c"), ("c", "e"), ("b", "d")]);
        assert!(r.covers(b"a", b"e"));
        assert!(!r.covers(b"a", b"f"));
        let all = ranges(&[("", "\0")]);
        assert!(all.covers(b"", b"\0"));
        assert!(all.covers(b"anything", b""));
        assert!(!ranges(&[]).covers(b"k", b""));
    }
}
