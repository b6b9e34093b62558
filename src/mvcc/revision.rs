//! Revisions: the logical clock of the MVCC store.
//!
//! Owns [`Revision`], the `(main, sub)` pair that names one change in the
//! store's history, exactly like etcd's `revision{main, sub}`:
//!
//! * `main` is the store-wide revision a write transaction commits at; every
//!   change of one transaction shares it.
//! * `sub` numbers the changes inside that transaction, starting at 0, in the
//!   order they were made.
//!
//! Invariants:
//! * Ordering is lexicographic on `(main, sub)` (the derived `Ord` relies on
//!   the field order), so iterating a `BTreeMap<Revision, _>` walks history
//!   in commit order.
//! * A revision never repeats: the store only appends at `current + 1`.
//!
//! Example: a transaction committed at main revision 7 that puts `a`, puts
//! `b` and deletes `c` produces revisions `7.0`, `7.1` and `7.2`; all three
//! appear to readers at revision 7 and are invisible at revision 6.

use serde::{Deserialize, Serialize};
use std::fmt;

/// One point in the store's history: main (transaction) and sub (change
/// within that transaction) revision.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Revision {
    /// The store-wide revision of the transaction that made the change.
    pub main: i64,
    /// The index of the change inside its transaction.
    pub sub: i64,
}

impl Revision {
    /// A revision from its two parts.
    pub const fn new(main: i64, sub: i64) -> Self {
        Self { main, sub }
    }

    /// The smallest revision with the given main revision (`main.0`); useful
    /// as an inclusive lower bound for "everything from `main` on".
    pub const fn first_of(main: i64) -> Self {
        Self { main, sub: 0 }
    }

    /// Fixed 16-byte big-endian encoding (`main` then `sub`). Big-endian keeps
    /// byte order equal to revision order for non-negative revisions; it is
    /// what the deterministic hash feeds to crc32.
    pub fn to_bytes(self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.main.to_be_bytes());
        out[8..].copy_from_slice(&self.sub.to_be_bytes());
        out
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.main, self.sub)
    }
}

#[cfg(test)]
mod tests {
    use super::Revision;

    #[test]
    fn orders_by_main_then_sub() {
        let mut revs = vec![
            Revision::new(3, 0),
            Revision::new(2, 5),
            Revision::new(2, 0),
            Revision::new(3, 1),
        ];
        revs.sort();
        assert_eq!(
            revs,
            vec![
                Revision::new(2, 0),
                Revision::new(2, 5),
                Revision::new(3, 0),
                Revision::new(3, 1),
            ]
        );
        assert!(Revision::first_of(3) > Revision::new(2, i64::MAX));
    }

    #[test]
    fn bytes_are_big_endian_and_order_preserving() {
        let a = Revision::new(2, 9).to_bytes();
        let b = Revision::new(3, 0).to_bytes();
        assert!(a < b);
        assert_eq!(&a[..8], &2i64.to_be_bytes());
        assert_eq!(&a[8..], &9i64.to_be_bytes());
        assert_eq!(Revision::new(4, 1).to_string(), "4.1");
    }
}
