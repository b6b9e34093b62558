//! Range semantics on top of an MVCC read: limit/`more`, sort order and target, min/max
//! create/mod revision filters, keys-only and count-only — exactly as etcd's applier does it.
//! One implementation serves both the Range RPC (reading the store) and ranges inside a Txn
//! (reading the write transaction), through [`RangeSource`].

use super::apply::ReplicatedState;
use crate::mvcc::{KeyValue, MvccError, RangeResult};
use crate::pb::etcdserverpb::range_request::{SortOrder, SortTarget};
use crate::pb::etcdserverpb::{RangeRequest, RangeResponse, ResponseHeader};
use crate::pb::mvccpb;

/// Something ranges can read from.
pub trait RangeSource {
    /// Keys in etcd's `[key, range_end)` at `rev` (0 = latest), at most `limit` (0 = all).
    fn read(
        &self,
        key: &[u8],
        range_end: &[u8],
        rev: i64,
        limit: usize,
    ) -> Result<RangeResult, MvccError>;

    /// How many keys [`RangeSource::read`] would find (no key-values returned).
    fn count(&self, key: &[u8], range_end: &[u8], rev: i64) -> Result<RangeResult, MvccError> {
        let mut found = self.read(key, range_end, rev, 0)?;
        found.kvs.clear();
        Ok(found)
    }
}

impl RangeSource for crate::mvcc::Store {
    fn read(
        &self,
        key: &[u8],
        range_end: &[u8],
        rev: i64,
        limit: usize,
    ) -> Result<RangeResult, MvccError> {
        self.range(key, range_end, rev, limit)
    }

    fn count(&self, key: &[u8], range_end: &[u8], rev: i64) -> Result<RangeResult, MvccError> {
        crate::mvcc::Store::count(self, key, range_end, rev)
    }
}

/// Reads the member's store holding its lock only while the key index is walked: the records
/// are read from the backend after the lock is released (see `mvcc::store::reads`).
pub struct Unlocked<'a>(pub &'a ReplicatedState);

impl RangeSource for Unlocked<'_> {
    fn read(
        &self,
        key: &[u8],
        range_end: &[u8],
        rev: i64,
        limit: usize,
    ) -> Result<RangeResult, MvccError> {
        let planned = self.0.store().plan_range(key, range_end, rev, limit)?;
        Ok(planned.fetch())
    }

    fn count(&self, key: &[u8], range_end: &[u8], rev: i64) -> Result<RangeResult, MvccError> {
        self.0.store().count(key, range_end, rev)
    }
}

/// Runs a Range request. The header carries only the revision; the caller adds the rest.
pub fn execute(src: &impl RangeSource, r: &RangeRequest) -> Result<RangeResponse, MvccError> {
    if r.count_only {
        // As etcd: the key index is counted (filters and limit do not apply), no value is read.
        let found = src.count(&r.key, &r.range_end, r.revision.max(0))?;
        return Ok(RangeResponse {
            header: Some(ResponseHeader {
                revision: found.revision,
                ..Default::default()
            }),
            kvs: Vec::new(),
            more: false,
            count: found.count,
        });
    }
    let order = SortOrder::try_from(r.sort_order).unwrap_or(SortOrder::None);
    let target = SortTarget::try_from(r.sort_target).unwrap_or(SortTarget::Key);
    let filtered = r.min_mod_revision != 0
        || r.max_mod_revision != 0
        || r.min_create_revision != 0
        || r.max_create_revision != 0;
    let sorted = order != SortOrder::None;
    let requested_limit = usize::try_from(r.limit.max(0)).unwrap_or(usize::MAX);
    let fetch_limit = if sorted || filtered || requested_limit == 0 {
        0
    } else {
        requested_limit.saturating_add(1)
    };
    let result = src.read(&r.key, &r.range_end, r.revision.max(0), fetch_limit)?;
    let mut kvs = result.kvs;
    kvs.retain(|kv| passes_filters(kv, r));
    sort(&mut kvs, order, target);
    let mut more = false;
    if requested_limit > 0 && kvs.len() > requested_limit {
        kvs.truncate(requested_limit);
        more = true;
        #[cfg(madsim)]
        if crate::fault::active(crate::fault::Bug::RangeMoreFalse) {
            more = false;
        }
    }
    let kvs = kvs
        .into_iter()
        .map(|kv| to_proto(kv, r.keys_only))
        .collect();
    Ok(RangeResponse {
        header: Some(ResponseHeader {
            revision: result.revision,
            ..Default::default()
        }),
        kvs,
        more,
        count: result.count,
    })
}

fn passes_filters(kv: &KeyValue, r: &RangeRequest) -> bool {
    (r.max_mod_revision == 0 || kv.mod_revision <= r.max_mod_revision)
        && (r.min_mod_revision == 0 || kv.mod_revision >= r.min_mod_revision)
        && (r.max_create_revision == 0 || kv.create_revision <= r.max_create_revision)
        && (r.min_create_revision == 0 || kv.create_revision >= r.min_create_revision)
}

/// etcd: a non-key target with no order means ascending; keys come ascending already.
fn sort(kvs: &mut [KeyValue], order: SortOrder, target: SortTarget) {
    let order = if order == SortOrder::None && target != SortTarget::Key {
        SortOrder::Ascend
    } else {
        order
    };
    if order == SortOrder::None || (order == SortOrder::Ascend && target == SortTarget::Key) {
        return;
    }
    match target {
        SortTarget::Key => {}
        SortTarget::Version => kvs.sort_by_key(|kv| kv.version),
        SortTarget::Create => kvs.sort_by_key(|kv| kv.create_revision),
        SortTarget::Mod => kvs.sort_by_key(|kv| kv.mod_revision),
        SortTarget::Value => kvs.sort_by(|a, b| a.value.cmp(&b.value)),
    }
    if order == SortOrder::Descend {
        kvs.reverse();
    }
}

/// Converts an MVCC key-value to the wire type.
pub fn to_proto(kv: KeyValue, keys_only: bool) -> mvccpb::KeyValue {
    mvccpb::KeyValue {
        key: kv.key.into(),
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
        version: kv.version,
        value: if keys_only {
            Default::default()
        } else {
            kv.value.into()
        },
        lease: kv.lease,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mvcc::Store;

    fn store() -> Store {
        let mut s = Store::new();
        for (k, v) in [("a", "3"), ("b", "1"), ("c", "2")] {
            let mut w = s.write();
            w.put(k.as_bytes(), v.as_bytes(), 0);
            w.commit();
        }
        let mut w = s.write();
        w.put(b"a", b"3", 0);
        w.commit();
        s
    }

    fn req(f: impl FnOnce(&mut RangeRequest)) -> RangeRequest {
        let mut r = RangeRequest {
            key: b"a".to_vec().into(),
            range_end: b"z".to_vec().into(),
            ..Default::default()
        };
        f(&mut r);
        r
    }

    fn keys(resp: &RangeResponse) -> Vec<String> {
        resp.kvs
            .iter()
            .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
            .collect()
    }

    #[test]
    fn limit_sets_more_and_count_is_total() {
        let resp = execute(&store(), &req(|r| r.limit = 2)).unwrap();
        assert_eq!(keys(&resp), ["a", "b"]);
        assert!(resp.more);
        assert_eq!(resp.count, 3);
        let resp = execute(&store(), &req(|r| r.limit = 3)).unwrap();
        assert!(!resp.more);
    }

    #[test]
    fn sort_by_value_descending_and_by_version() {
        let resp = execute(
            &store(),
            &req(|r| {
                r.sort_order = SortOrder::Descend as i32;
                r.sort_target = SortTarget::Value as i32;
            }),
        )
        .unwrap();
        assert_eq!(keys(&resp), ["a", "c", "b"]);
        let resp = execute(
            &store(),
            &req(|r| r.sort_target = SortTarget::Version as i32),
        )
        .unwrap();
        assert_eq!(keys(&resp).last().map(String::as_str), Some("a"));
        let resp = execute(&store(), &req(|r| r.sort_order = SortOrder::Descend as i32)).unwrap();
        assert_eq!(keys(&resp), ["c", "b", "a"]);
    }

    #[test]
    fn revision_filters_keys_only_and_count_only() {
        let resp = execute(&store(), &req(|r| r.min_mod_revision = 4)).unwrap();
        assert_eq!(keys(&resp), ["a", "c"]);
        let resp = execute(&store(), &req(|r| r.keys_only = true)).unwrap();
        assert!(resp.kvs.iter().all(|kv| kv.value.is_empty()));
        let resp = execute(&store(), &req(|r| r.count_only = true)).unwrap();
        assert!(resp.kvs.is_empty());
        assert_eq!(resp.count, 3);
        // etcd 3.4: a count ignores limit and filters, and says no more.
        let resp = execute(
            &store(),
            &req(|r| {
                r.count_only = true;
                r.limit = 1;
                r.min_mod_revision = 4;
            }),
        )
        .unwrap();
        assert_eq!((resp.count, resp.more, resp.kvs.len()), (3, false, 0));
    }
}
