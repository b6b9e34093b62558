//! etcd's `(key, range_end)` convention, decoded once into a [`KeyRange`].
//!
//! Rules (from etcd's `RangeRequest`):
//! * `range_end` empty: the single key `key`.
//! * `range_end == [0]`: every key `>= key`; and when `key == [0]` too, every
//!   key at all (including the empty key, although etcd rejects empty keys
//!   before they ever reach the store).
//! * otherwise: the half-open interval `[key, range_end)`; it is empty when
//!   `range_end <= key`.
//!
//! Invariant: [`KeyRange::bounds`] never returns bounds that would make
//! `BTreeMap::range` panic (start > end, or equal excluded bounds); an empty
//! interval is reported as `None` instead.
//!
//! Example: `("a", "c")` holds `a`, `ab`, `b`, `bzz` but not `c`;
//! `("b", "\0")` holds `b`, `c`, ...; `("b", "")` holds only `b`.

use std::ops::Bound;

/// Lower and upper bound of a non-empty [`KeyRange`], for `BTreeMap::range`.
pub(crate) type KeyBounds<'a> = (Bound<&'a [u8]>, Bound<&'a [u8]>);

/// Decoded form of an etcd `(key, range_end)` pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyRange<'a> {
    /// Exactly one key.
    Single(&'a [u8]),
    /// Every key `>= start`.
    From(&'a [u8]),
    /// Every key.
    All,
    /// `[start, end)` with `start < end`.
    Between(&'a [u8], &'a [u8]),
    /// Matches nothing (`range_end <= key`).
    Empty,
}

impl<'a> KeyRange<'a> {
    /// Decode an etcd-style `(key, range_end)` pair.
    pub(crate) fn new(key: &'a [u8], range_end: &'a [u8]) -> Self {
        if range_end.is_empty() {
            KeyRange::Single(key)
        } else if range_end == [0] {
            if key == [0] {
                KeyRange::All
            } else {
                KeyRange::From(key)
            }
        } else if key < range_end {
            KeyRange::Between(key, range_end)
        } else {
            KeyRange::Empty
        }
    }

    /// Whether `k` is inside the range.
    pub(crate) fn contains(&self, k: &[u8]) -> bool {
        match *self {
            KeyRange::Single(key) => k == key,
            KeyRange::From(start) => k >= start,
            KeyRange::All => true,
            KeyRange::Between(start, end) => start <= k && k < end,
            KeyRange::Empty => false,
        }
    }

    /// Bounds for `BTreeMap::range` over `[u8]`-borrowing keys, or `None`
    /// when the range is empty.
    pub(crate) fn bounds(&self) -> Option<KeyBounds<'a>> {
        match *self {
            KeyRange::Single(key) => Some((Bound::Included(key), Bound::Included(key))),
            KeyRange::From(start) => Some((Bound::Included(start), Bound::Unbounded)),
            KeyRange::All => Some((Bound::Unbounded, Bound::Unbounded)),
            KeyRange::Between(start, end) => Some((Bound::Included(start), Bound::Excluded(end))),
            KeyRange::Empty => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::KeyRange;
    use std::collections::BTreeMap;

    #[test]
    fn decodes_etcd_conventions() {
        assert_eq!(KeyRange::new(b"a", b""), KeyRange::Single(b"a"));
        assert_eq!(KeyRange::new(b"a", b"\0"), KeyRange::From(b"a"));
        assert_eq!(KeyRange::new(b"\0", b"\0"), KeyRange::All);
        assert_eq!(KeyRange::new(b"a", b"c"), KeyRange::Between(b"a", b"c"));
        assert_eq!(KeyRange::new(b"c", b"a"), KeyRange::Empty);
        assert_eq!(KeyRange::new(b"c", b"c"), KeyRange::Empty);
        assert_eq!(KeyRange::new(b"", b""), KeyRange::Single(b""));
    }

    #[test]
    fn contains_agrees_with_bounds() {
        let keys: Vec<&[u8]> = vec![b"", b"\0", b"a", b"ab", b"b", b"c", b"d"];
        let map: BTreeMap<Vec<u8>, ()> = keys.iter().map(|k| (k.to_vec(), ())).collect();
        for key in &keys {
            for end in &keys {
                let kr = KeyRange::new(key, end);
                let via_bounds: Vec<&[u8]> = match kr.bounds() {
                    Some(b) => map.range::<[u8], _>(b).map(|(k, _)| k.as_slice()).collect(),
                    None => Vec::new(),
                };
                let via_contains: Vec<&[u8]> =
                    keys.iter().copied().filter(|k| kr.contains(k)).collect();
                assert_eq!(via_bounds, via_contains, "key={key:?} end={end:?}");
            }
        }
        assert!(KeyRange::new(b"\0", b"\0").contains(b""));
        assert!(!KeyRange::new(b"a", b"\0").contains(b""));
    }
}
