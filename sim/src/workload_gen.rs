//! Random KV requests over a seed-chosen keyspace, steered by what the client has seen.
//!
//! Owns [`Keyspace`] (1–4 prefixes `a/`..`d/`, 2 to ~200 keys in all, named `a/007`; a few hot
//! keys per prefix take most single-key traffic so ops contend) and [`Generator`] (one client's
//! request mix, remembering the newest key states and header revision it saw so compares often
//! hold and past-revision reads and compactions land near the present).
//!
//! Mix: puts, single-key gets (linearizable and serializable), ranges (prefix, `[key, end)` or one
//! key; limit, sort order/target, keys-only, count-only, serializable, past revision), range
//! deletes (prev_kv optional), multi-key txns (1–3 compares on value / version / create / mod
//! revision with `==`, `!=`, `<`, `>`; success and failure branches of puts, deletes and
//! ranges), and compactions at a recently seen revision.
//!
//! Invariants (what the server and the checker rely on): every put value is unique in the run
//! (`c<client>-<n>[-<j>]`); a txn branch never writes a key twice (no put inside another write's
//! range), as etcd requires; value compares use only `==`/`!=` and value sorts come without
//! limit, keys-only or count-only, so values nobody saw never decide an outcome.

use std::collections::BTreeMap;

use madsim::rand::prelude::*;

use crate::history::{KeyState, Request, Response};
use crate::requests::{
    CmpResult, CmpTarget, Compare, DeleteSpec, OpResult, RangeSpec, SortOrder, SortTarget, TxnOp,
    TxnSpec,
};

/// The keys a run uses.
#[derive(Clone, Debug)]
pub struct Keyspace {
    prefixes: Vec<String>,
    per_prefix: usize,
}

/// etcd's `range_end` for "every key starting with `prefix`".
pub fn prefix_end(prefix: &str) -> String {
    let mut bytes = prefix.as_bytes().to_vec();
    if let Some(last) = bytes.last_mut() {
        *last += 1;
    }
    String::from_utf8(bytes).expect("ASCII prefixes")
}

impl Keyspace {
    /// A keyspace drawn from the seeded RNG: small (2–8 keys), medium (10–60) or large
    /// (100–200).
    pub fn random(rng: &mut impl Rng) -> Self {
        let prefixes = rng.gen_range(1..=4usize);
        let total = match rng.gen_range(0..10) {
            0..=3 => rng.gen_range(2..=8),
            4..=7 => rng.gen_range(10..=60),
            _ => rng.gen_range(100..=200),
        };
        Self {
            prefixes: (0..prefixes)
                .map(|p| format!("{}/", (b'a' + p as u8) as char))
                .collect(),
            per_prefix: (total / prefixes).max(1),
        }
    }

    pub fn len(&self) -> usize {
        self.prefixes.len() * self.per_prefix
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The prefixes, e.g. `a/`.
    pub fn prefixes(&self) -> &[String] {
        &self.prefixes
    }

    fn key(&self, p: usize, i: usize) -> String {
        format!("{}{i:03}", self.prefixes[p])
    }

    /// A key, hot ones (the first three of each prefix) most of the time.
    fn random_key(&self, rng: &mut impl Rng) -> String {
        let p = rng.gen_range(0..self.prefixes.len());
        let i = if rng.gen_ratio(3, 5) {
            rng.gen_range(0..self.per_prefix.min(3))
        } else {
            rng.gen_range(0..self.per_prefix)
        };
        self.key(p, i)
    }

    /// `(key, range_end)`: one key, a few consecutive keys, a prefix, or everything.
    fn random_span(&self, rng: &mut impl Rng) -> (String, String) {
        let p = rng.gen_range(0..self.prefixes.len());
        match rng.gen_range(0..20) {
            0..=5 => (self.random_key(rng), String::new()),
            6..=12 => {
                let i = rng.gen_range(0..self.per_prefix);
                let j = (i + rng.gen_range(1..=4)).min(self.per_prefix);
                let end = if j == self.per_prefix {
                    prefix_end(&self.prefixes[p])
                } else {
                    self.key(p, j)
                };
                (self.key(p, i), end)
            }
            13..=18 => (self.prefixes[p].clone(), prefix_end(&self.prefixes[p])),
            _ => ("\0".to_string(), "\0".to_string()),
        }
    }
}

/// Whether `key` lies in etcd's range `[start, end)`.
fn in_span(key: &str, start: &str, end: &str) -> bool {
    match end {
        "" => key == start,
        "\0" => key >= start,
        _ => key >= start && key < end,
    }
}

/// One client's request generator.
pub struct Generator {
    id: u64,
    n: u64,
    keys: Keyspace,
    /// Newest state seen per key (`None` = seen absent).
    seen: BTreeMap<String, Option<KeyState>>,
    max_revision: i64,
}

impl Generator {
    pub fn new(id: u64, keys: Keyspace) -> Self {
        Self {
            id,
            n: 0,
            keys,
            seen: BTreeMap::new(),
            max_revision: 1,
        }
    }

    /// The next request (a compaction only if `compact`).
    pub fn next(&mut self, rng: &mut impl Rng, compact: bool) -> Request {
        self.n += 1;
        let value = format!("c{}-{}", self.id, self.n);
        match rng.gen_range(0..100) {
            0..=21 => Request::Put {
                key: self.keys.random_key(rng),
                value,
            },
            22..=31 => Request::Get {
                key: self.keys.random_key(rng),
                serializable: false,
            },
            32..=35 => Request::Get {
                key: self.keys.random_key(rng),
                serializable: true,
            },
            36..=55 => Request::Range(self.range(rng, true)),
            56..=62 => Request::DeleteRange(self.delete(rng)),
            63..=97 => Request::Txn(self.txn(rng, &value)),
            _ if !compact => Request::Txn(self.txn(rng, &value)),
            _ => Request::Compact {
                revision: (self.max_revision - rng.gen_range(0..20)).max(1),
            },
        }
    }

    fn range(&mut self, rng: &mut impl Rng, top_level: bool) -> RangeSpec {
        let (key, range_end) = self.keys.random_span(rng);
        let mut r = RangeSpec::new(key, range_end);
        if rng.gen_ratio(3, 10) {
            r.limit = rng.gen_range(1..=5);
        }
        if rng.gen_ratio(1, 4) {
            r.sort_order =
                [SortOrder::None, SortOrder::Ascend, SortOrder::Descend][rng.gen_range(0..3)];
            r.sort_target = [
                SortTarget::Key,
                SortTarget::Version,
                SortTarget::Create,
                SortTarget::Mod,
                SortTarget::Value,
            ][rng.gen_range(0..5)];
        }
        r.keys_only = rng.gen_ratio(1, 10);
        r.count_only = rng.gen_ratio(1, 10);
        if r.sort_target == SortTarget::Value {
            (r.limit, r.keys_only, r.count_only) = (0, false, false);
        }
        if top_level {
            r.serializable = rng.gen_ratio(1, 5);
            if rng.gen_ratio(1, 5) {
                r.revision = (self.max_revision - rng.gen_range(0..40)).max(1);
            }
        }
        r
    }

    fn delete(&mut self, rng: &mut impl Rng) -> DeleteSpec {
        let (key, range_end) = match rng.gen_range(0..20) {
            0..=13 => (self.keys.random_key(rng), String::new()),
            _ => {
                let (k, e) = self.keys.random_span(rng);
                if k == "\0" {
                    (self.keys.random_key(rng), String::new())
                } else {
                    (k, e)
                }
            }
        };
        DeleteSpec {
            key,
            range_end,
            prev_kv: rng.gen_bool(0.5),
        }
    }

    fn compare(&mut self, rng: &mut impl Rng) -> Compare {
        let key = self.keys.random_key(rng);
        let seen = self.seen.get(&key).cloned().flatten();
        let mut result = match rng.gen_range(0..20) {
            0..=11 => CmpResult::Equal,
            12..=14 => CmpResult::NotEqual,
            15..=17 => CmpResult::Greater,
            _ => CmpResult::Less,
        };
        let near = |rng: &mut dyn RngCore, n: i64| n + [-1, 0, 0, 1][(rng.next_u32() % 4) as usize];
        let target = match (rng.gen_range(0..20), &seen) {
            (0..=6, s) => CmpTarget::Mod(near(rng, s.as_ref().map_or(0, |s| s.mod_revision))),
            (7..=11, s) => CmpTarget::Version(near(rng, s.as_ref().map_or(0, |s| s.version))),
            (12..=14, s) => CmpTarget::Create(s.as_ref().map_or(0, |s| s.create_revision)),
            (_, Some(s)) => {
                if !matches!(result, CmpResult::Equal | CmpResult::NotEqual) {
                    result = CmpResult::Equal;
                }
                CmpTarget::Value(s.value.clone())
            }
            (_, None) => CmpTarget::Version(0),
        };
        Compare {
            key,
            target,
            result,
        }
    }

    /// A branch of up to `max` ops that never writes a key twice.
    fn branch(&mut self, rng: &mut impl Rng, max: usize, value: &str, tag: usize) -> Vec<TxnOp> {
        let mut ops = Vec::new();
        let mut puts: Vec<String> = Vec::new();
        let mut deletes: Vec<(String, String)> = Vec::new();
        for j in 0..rng.gen_range(0..=max) {
            let op = match rng.gen_range(0..10) {
                0..=4 => TxnOp::Put {
                    key: self.keys.random_key(rng),
                    value: format!("{value}-{}", tag * 10 + j),
                },
                5..=6 => TxnOp::Delete(self.delete(rng)),
                _ => TxnOp::Range(self.range(rng, false)),
            };
            let clashes = match &op {
                TxnOp::Put { key, .. } => {
                    deletes.iter().any(|(s, e)| in_span(key, s, e)) || puts.contains(key)
                }
                TxnOp::Delete(d) => {
                    d.key == "\0"
                        || puts.iter().any(|k| in_span(k, &d.key, &d.range_end))
                        || !deletes.is_empty()
                }
                TxnOp::Range(_) => false,
            };
            if clashes {
                continue;
            }
            match &op {
                TxnOp::Put { key, .. } => puts.push(key.clone()),
                TxnOp::Delete(d) => deletes.push((d.key.clone(), d.range_end.clone())),
                TxnOp::Range(_) => {}
            }
            ops.push(op);
        }
        ops
    }

    fn txn(&mut self, rng: &mut impl Rng, value: &str) -> TxnSpec {
        let compares = (0..rng.gen_range(1..=3))
            .map(|_| self.compare(rng))
            .collect();
        let mut success = self.branch(rng, 3, value, 0);
        if success.is_empty() {
            success.push(TxnOp::Put {
                key: self.keys.random_key(rng),
                value: format!("{value}-9"),
            });
        }
        let failure = self.branch(rng, 2, value, 1);
        TxnSpec {
            compares,
            success,
            failure,
        }
    }

    /// Remembers what an `Ok` response showed.
    pub fn observe(&mut self, request: &Request, response: &Response) {
        if let Some(rev) = response.revision() {
            self.max_revision = self.max_revision.max(rev);
        }
        let past = matches!(request, Request::Range(r) if r.revision > 0);
        let mut remember = |kvs: &[(String, KeyState)]| {
            if !past {
                for (k, kv) in kvs {
                    self.seen.insert(k.clone(), Some(kv.clone()));
                }
            }
        };
        match (request, response) {
            (Request::Get { key, .. }, Response::Get { kv, .. }) => {
                self.seen.insert(key.clone(), kv.clone());
            }
            (_, Response::Range { result, .. })
                if !result.kvs.iter().any(|kv| kv.1.value.is_empty()) =>
            {
                remember(&result.kvs)
            }
            (Request::DeleteRange(d), Response::DeleteRange { prev_kvs, .. }) => {
                for (k, _) in prev_kvs {
                    self.seen.insert(k.clone(), None);
                }
                if d.range_end.is_empty() {
                    self.seen.insert(d.key.clone(), None);
                }
            }
            (_, Response::Txn { results, .. }) => {
                for r in results {
                    if let OpResult::Range(r) = r {
                        if !r.kvs.iter().any(|kv| kv.1.value.is_empty()) {
                            remember(&r.kvs);
                        }
                    }
                }
            }
            _ => {}
        }
    }
}
