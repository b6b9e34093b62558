//! Range queries of the KV model: which keys of an id interval a Range returns, in which order,
//! with `more` and `count`, exactly as detcd's `src/server/range.rs` (and etcd) compute them.
//!
//! Owns [`Query`] (an interned [`crate::requests::RangeSpec`] without its read revision, which
//! the search handles by checking the read at that revision) and [`RangeOut`] (what a range
//! returned, interned). Semantics: `count` is every present key of the interval; without a
//! requested sort order only the first `limit + 1` keys (in key order) are fetched; results are
//! sorted by the target (a stable sort of key order; a non-key target without an order means
//! ascending; descending reverses the ascending order), truncated to `limit` with `more` set if
//! anything was cut, emptied by count-only, and keys-only blanks every value.

use crate::kv_model::{Entry, Interner, KeyId};
use crate::requests::{RangeResult, RangeSpec, SortOrder, SortTarget};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Query {
    pub lo: KeyId,
    pub hi: KeyId,
    limit: i64,
    order: SortOrder,
    target: SortTarget,
    keys_only: bool,
    count_only: bool,
}

/// What a range returned, interned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RangeOut {
    pub kvs: Vec<(KeyId, Entry)>,
    pub more: bool,
    pub count: i64,
}

impl Query {
    /// A plain read of one key.
    pub fn single(key: KeyId) -> Self {
        Self {
            lo: key,
            hi: key + 1,
            limit: 0,
            order: SortOrder::None,
            target: SortTarget::Key,
            keys_only: false,
            count_only: false,
        }
    }

    pub fn new(r: &RangeSpec, interner: &Interner) -> Self {
        let (lo, hi) = interner.span(&r.key, &r.range_end);
        Self {
            lo,
            hi,
            limit: r.limit.max(0),
            order: r.sort_order,
            target: r.sort_target,
            keys_only: r.keys_only,
            count_only: r.count_only,
        }
    }

    /// The result over `present`: the present keys of the interval, in key order.
    pub fn eval(
        &self,
        present: impl Iterator<Item = (KeyId, Entry)>,
        interner: &Interner,
    ) -> RangeOut {
        let mut kvs: Vec<(KeyId, Entry)> = present.collect();
        let count = kvs.len() as i64;
        if self.count_only {
            // etcd 3.4 counts the key index: no key-values, and `more` is false whatever the
            // limit (checked against etcd 3.4.23).
            return RangeOut {
                kvs: Vec::new(),
                more: false,
                count,
            };
        }
        if self.order == SortOrder::None && self.limit > 0 {
            // etcd fetches only `limit + 1` keys (in key order) unless an order was requested,
            // even when a non-key target then sorts them.
            kvs.truncate(self.limit as usize + 1);
        }
        let order = match (self.order, self.target) {
            (SortOrder::None, SortTarget::Key) => SortOrder::None,
            (SortOrder::None, _) => SortOrder::Ascend,
            (o, _) => o,
        };
        if !(order == SortOrder::None
            || (order == SortOrder::Ascend && self.target == SortTarget::Key))
        {
            match self.target {
                SortTarget::Key => {}
                SortTarget::Version => kvs.sort_by_key(|kv| kv.1.version),
                SortTarget::Create => kvs.sort_by_key(|kv| kv.1.create),
                SortTarget::Mod => kvs.sort_by_key(|kv| kv.1.modr),
                SortTarget::Value => kvs.sort_by(|a, b| {
                    interner
                        .value_name(a.1.value)
                        .cmp(interner.value_name(b.1.value))
                }),
            }
            if order == SortOrder::Descend {
                kvs.reverse();
            }
        }
        let mut more = false;
        if self.limit > 0 && kvs.len() as i64 > self.limit {
            kvs.truncate(self.limit as usize);
            more = true;
        }
        if self.keys_only {
            for kv in &mut kvs {
                kv.1.value = interner.empty_value();
            }
        }
        RangeOut { kvs, more, count }
    }
}

impl RangeOut {
    /// An unlimited, unsorted result holding `kvs`.
    pub fn all(kvs: Vec<(KeyId, Entry)>) -> Self {
        let count = kvs.len() as i64;
        Self {
            kvs,
            more: false,
            count,
        }
    }

    /// An observed result, interned with `kvs`.
    pub fn observed(
        r: &RangeResult,
        kvs: &mut impl FnMut(&[(String, crate::history::KeyState)]) -> Vec<(KeyId, Entry)>,
    ) -> Self {
        Self {
            kvs: kvs(&r.kvs),
            more: r.more,
            count: r.count,
        }
    }

    pub fn render(&self, interner: &Interner) -> String {
        let more = if self.more { " more" } else { "" };
        format!(
            "{} count {}{more}",
            interner.render_kvs(&self.kvs),
            self.count
        )
    }
}
