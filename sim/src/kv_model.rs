//! The sequential etcd KV model the linearizability search runs, in a compact hashable form.
//!
//! Owns: string interning ([`Interner`]), the model state ([`Store`]: store revision + one
//! optional [`Entry`] per interned key), requests compiled into [`Program`]s (compares, then the
//! success or failure branch of [`Step`]s), their execution ([`run`], giving an [`Exec`]: the
//! results plus the writes, applied with [`Store::commit`]) and responses compiled into the
//! results they claim ([`Expect`], compared with [`mismatch`]). Range evaluation lives in
//! `crate::kv_range`, compiling requests and responses in `crate::kv_compile`.
//!
//! Semantics (etcd v3): every request is a txn (a Put is a txn with one put and no compares, a
//! Cas compares `mod_revision` and puts or reads, ...). Compares all see the state before the
//! txn; a compare on an absent key sees version, create and mod revision 0, and a value compare
//! on an absent key fails. Ops of the branch run in order at revision `revision + 1`, later ops
//! seeing earlier ones: a put sets the value, `mod_revision` = the new revision, `version` + 1
//! (`create_revision` = new revision and `version` = 1 if absent); a delete removes the present
//! keys of its range. If anything was put or deleted the revision goes up by exactly one,
//! otherwise the txn changed nothing.
//!
//! Interning: keys get dense ids in *sorted* order, so a range `[key, range_end)` is an id
//! interval. Every key a request names or a response shows is interned (a key no request puts
//! can never exist, so ranges need no others). Values no response showed and no compare names
//! all map to one reserved id (so otherwise identical unknown writes are interchangeable), unless
//! the history orders values (value compares with `<`/`>`), in which case every value keeps its
//! own id. Invariants: `Store::keys.len()` equals the key count; the revision only changes
//! through [`Store::commit`]; `Store` is `Eq + Hash` and never carries strings.

use std::collections::{BTreeMap, BTreeSet};

use crate::history::{History, KeyState, Outcome, Request, Response};
use crate::kv_range::{Query, RangeOut};
use crate::requests::{CmpResult, CmpTarget, DeleteSpec, OpResult, RangeSpec, TxnOp};

pub(crate) type KeyId = u32;
pub(crate) type ValueId = u32;

/// Dense ids for the keys and values mentioned in a history.
#[derive(Debug)]
pub(crate) struct Interner {
    key_names: Vec<String>,
    key_ids: BTreeMap<String, KeyId>,
    value_ids: BTreeMap<String, ValueId>,
    value_names: Vec<String>,
    /// Values worth telling apart; `None` = all of them.
    observed: Option<BTreeSet<String>>,
    unobserved: ValueId,
    empty: ValueId,
}

impl Interner {
    /// Interns every key of `history` and decides which values are observable.
    pub fn new(history: &History) -> Self {
        let mut keys = BTreeSet::new();
        let mut observed = BTreeSet::new();
        let mut ordered = false;
        for op in &history.ops {
            request_strings(&op.request, &mut keys, &mut observed, &mut ordered);
            if let Outcome::Ok(resp) = &op.outcome {
                for (k, kv) in response_kvs(&op.request, resp) {
                    keys.insert(k.to_string());
                    observed.insert(kv.value.clone());
                }
            }
        }
        let key_names: Vec<String> = keys.into_iter().collect();
        let key_ids = key_names
            .iter()
            .enumerate()
            .map(|(i, k)| (k.clone(), i as KeyId))
            .collect();
        let mut interner = Self {
            key_names,
            key_ids,
            value_ids: BTreeMap::new(),
            value_names: vec!["<a value no response showed>".to_string()],
            observed: (!ordered).then_some(observed),
            unobserved: 0,
            empty: 0,
        };
        interner.empty = interner.value("");
        interner
    }

    pub fn key_count(&self) -> usize {
        self.key_names.len()
    }

    pub fn key_name(&self, key: KeyId) -> &str {
        &self.key_names[key as usize]
    }

    /// The id of a key the history names.
    pub fn key(&self, key: &str) -> KeyId {
        self.key_ids[key]
    }

    /// The id interval of etcd's range `[key, end)`.
    pub fn span(&self, key: &str, end: &str) -> (KeyId, KeyId) {
        let pp = |s: &str| self.key_names.partition_point(|k| k.as_str() < s) as KeyId;
        match end {
            "" => self.key_ids.get(key).map_or((0, 0), |&k| (k, k + 1)),
            "\0" => (pp(key), self.key_names.len() as KeyId),
            _ => {
                let (lo, hi) = (pp(key), pp(end));
                (lo, hi.max(lo))
            }
        }
    }

    pub fn value(&mut self, value: &str) -> ValueId {
        if self.observed.as_ref().is_some_and(|o| !o.contains(value)) {
            return self.unobserved;
        }
        if let Some(&id) = self.value_ids.get(value) {
            return id;
        }
        let id = u32::try_from(self.value_names.len()).expect("more than 2^32 distinct values");
        self.value_ids.insert(value.to_string(), id);
        self.value_names.push(value.to_string());
        id
    }

    pub fn value_name(&self, value: ValueId) -> &str {
        &self.value_names[value as usize]
    }

    /// The id standing for every value nothing observes (never a real value's id).
    pub fn unobserved_value(&self) -> ValueId {
        self.unobserved
    }

    /// The value id keys-only ranges report.
    pub fn empty_value(&self) -> ValueId {
        self.empty
    }

    pub fn entry(&mut self, kv: &KeyState) -> Entry {
        Entry {
            value: self.value(&kv.value),
            create: kv.create_revision,
            modr: kv.mod_revision,
            version: kv.version,
        }
    }

    pub fn key_state(&self, e: &Entry) -> KeyState {
        KeyState {
            value: self.value_name(e.value).to_string(),
            create_revision: e.create,
            mod_revision: e.modr,
            version: e.version,
        }
    }

    /// `{key: state, ...}`.
    pub fn render_kvs(&self, kvs: &[(KeyId, Entry)]) -> String {
        let items: Vec<String> = kvs
            .iter()
            .map(|(k, e)| format!("{:?}: {}", self.key_name(*k), self.key_state(e)))
            .collect();
        format!("{{{}}}", items.join(", "))
    }
}

fn request_strings(
    req: &Request,
    keys: &mut BTreeSet<String>,
    observed: &mut BTreeSet<String>,
    ordered: &mut bool,
) {
    let op_keys = |op: &TxnOp, keys: &mut BTreeSet<String>| match op {
        TxnOp::Put { key, .. } => {
            keys.insert(key.clone());
        }
        TxnOp::Delete(DeleteSpec { key, range_end, .. })
        | TxnOp::Range(RangeSpec { key, range_end, .. }) => {
            if range_end.is_empty() {
                keys.insert(key.clone());
            }
        }
    };
    match req {
        Request::Put { key, .. }
        | Request::Get { key, .. }
        | Request::Delete { key }
        | Request::Cas { key, .. } => {
            keys.insert(key.clone());
        }
        Request::Range(r) => op_keys(&TxnOp::Range(r.clone()), keys),
        Request::DeleteRange(d) => op_keys(&TxnOp::Delete(d.clone()), keys),
        Request::Txn(t) => {
            for c in &t.compares {
                keys.insert(c.key.clone());
                if let CmpTarget::Value(v) = &c.target {
                    observed.insert(v.clone());
                    *ordered |= !matches!(c.result, CmpResult::Equal | CmpResult::NotEqual);
                }
            }
            for op in t.success.iter().chain(&t.failure) {
                op_keys(op, keys);
            }
        }
        Request::Compact { .. } => {}
    }
}

/// Every key state an `Ok` response shows, with its key.
pub(crate) fn response_kvs<'h>(
    req: &'h Request,
    resp: &'h Response,
) -> Vec<(&'h str, &'h KeyState)> {
    let pairs = |kvs: &'h [(String, KeyState)]| kvs.iter().map(|(k, v)| (k.as_str(), v));
    match (req, resp) {
        (
            Request::Get { key, .. } | Request::Cas { key, .. },
            Response::Get { kv, .. } | Response::Cas { kv, .. },
        ) => kv.iter().map(|kv| (key.as_str(), kv)).collect(),
        (_, Response::Range { result, .. }) => pairs(&result.kvs).collect(),
        (_, Response::DeleteRange { prev_kvs, .. }) => pairs(prev_kvs).collect(),
        (_, Response::Txn { results, .. }) => results
            .iter()
            .flat_map(|r| match r {
                OpResult::Put => Vec::new(),
                OpResult::Delete { prev_kvs, .. } => pairs(prev_kvs).collect(),
                OpResult::Range(r) => pairs(&r.kvs).collect(),
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// A present key's state, with the value interned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Entry {
    pub value: ValueId,
    pub create: i64,
    pub modr: i64,
    pub version: i64,
}

/// The whole keyspace at one revision.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Store {
    revision: i64,
    keys: Vec<Option<Entry>>,
}

/// Pending writes of a txn: key -> new state (`None` = deleted), in key order.
pub(crate) type Writes = BTreeMap<KeyId, Option<Entry>>;

impl Store {
    pub fn new(initial_revision: i64, key_count: usize) -> Self {
        Self {
            revision: initial_revision,
            keys: vec![None; key_count],
        }
    }

    pub fn revision(&self) -> i64 {
        self.revision
    }

    pub fn get(&self, key: KeyId) -> Option<&Entry> {
        self.keys[key as usize].as_ref()
    }

    /// Applies the writes of a txn that changed something, creating revision `revision + 1`.
    pub fn commit(&mut self, writes: &Writes) {
        debug_assert!(!writes.is_empty(), "a txn that changed nothing");
        self.revision += 1;
        for (&k, e) in writes {
            self.keys[k as usize] = *e;
        }
    }

    /// Forgets `key` (used to canonicalize memo keys over keys nothing can observe any more).
    pub fn erase(&mut self, key: KeyId) {
        self.keys[key as usize] = None;
    }

    /// The present keys, by name, for error messages.
    pub fn describe(&self, interner: &Interner) -> Vec<(String, KeyState)> {
        self.keys
            .iter()
            .enumerate()
            .filter_map(|(k, e)| {
                let e = e.as_ref()?;
                Some((
                    interner.key_name(k as KeyId).to_string(),
                    interner.key_state(e),
                ))
            })
            .collect()
    }
}

/// A compare operand, interned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum CmpOn {
    Value(ValueId),
    Version(i64),
    Create(i64),
    Mod(i64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Cmp {
    pub key: KeyId,
    pub on: CmpOn,
    pub result: CmpResult,
}

/// One op of a branch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Step {
    Put { key: KeyId, value: ValueId },
    Delete { lo: KeyId, hi: KeyId, prev_kv: bool },
    Range(Query),
}

/// A request as a txn.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Program {
    pub compares: Vec<Cmp>,
    pub success: Vec<Step>,
    pub failure: Vec<Step>,
}

impl Program {
    /// The steps of the success or the failure branch.
    pub fn branch(&self, succeeded: bool) -> &[Step] {
        if succeeded {
            &self.success
        } else {
            &self.failure
        }
    }
}

/// What one step produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Out {
    Put,
    Delete {
        deleted: i64,
        prev: Vec<(KeyId, Entry)>,
    },
    Range(RangeOut),
}

/// The outcome of running a program: the branch, one result per step, and the writes.
#[derive(Clone, Debug)]
pub(crate) struct Exec {
    pub succeeded: bool,
    pub results: Vec<Out>,
    pub writes: Writes,
}

impl Exec {
    pub fn changed(&self) -> bool {
        !self.writes.is_empty()
    }
}

/// What an `Ok` response claims the program produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Expect {
    pub succeeded: bool,
    pub results: Vec<Out>,
}

fn holds(c: &Cmp, e: Option<&Entry>) -> bool {
    let ord = match (c.on, e) {
        (CmpOn::Value(_), None) => return false,
        (CmpOn::Value(v), Some(e)) => e.value.cmp(&v),
        (CmpOn::Version(n), e) => e.map_or(0, |e| e.version).cmp(&n),
        (CmpOn::Create(n), e) => e.map_or(0, |e| e.create).cmp(&n),
        (CmpOn::Mod(n), e) => e.map_or(0, |e| e.modr).cmp(&n),
    };
    match c.result {
        CmpResult::Equal => ord.is_eq(),
        CmpResult::Greater => ord.is_gt(),
        CmpResult::Less => ord.is_lt(),
        CmpResult::NotEqual => ord.is_ne(),
    }
}

/// Runs `prog` against `store` without changing it.
pub(crate) fn run(prog: &Program, store: &Store, interner: &Interner) -> Exec {
    let rev = store.revision + 1;
    let succeeded = prog.compares.iter().all(|c| holds(c, store.get(c.key)));
    let steps = prog.branch(succeeded);
    let mut writes = Writes::new();
    let mut results = Vec::with_capacity(steps.len());
    for step in steps {
        let get =
            |k: KeyId, w: &Writes| w.get(&k).copied().unwrap_or_else(|| store.get(k).copied());
        results.push(match *step {
            Step::Put { key, value } => {
                let new = match get(key, &writes) {
                    Some(e) => Entry {
                        value,
                        create: e.create,
                        modr: rev,
                        version: e.version + 1,
                    },
                    None => Entry {
                        value,
                        create: rev,
                        modr: rev,
                        version: 1,
                    },
                };
                writes.insert(key, Some(new));
                Out::Put
            }
            Step::Delete { lo, hi, prev_kv } => {
                let present: Vec<(KeyId, Entry)> = (lo..hi)
                    .filter_map(|k| Some((k, get(k, &writes)?)))
                    .collect();
                for &(k, _) in &present {
                    writes.insert(k, None);
                }
                Out::Delete {
                    deleted: present.len() as i64,
                    prev: if prev_kv { present } else { Vec::new() },
                }
            }
            Step::Range(q) => {
                let present = (q.lo..q.hi).filter_map(|k| Some((k, get(k, &writes)?)));
                Out::Range(q.eval(present, interner))
            }
        });
    }
    Exec {
        succeeded,
        results,
        writes,
    }
}

/// The first way `exec` differs from what the response claimed, if any.
pub(crate) fn mismatch(expect: &Expect, exec: &Exec, interner: &Interner) -> Option<String> {
    if expect.succeeded != exec.succeeded {
        let (said, model) = if expect.succeeded {
            ("held", "fail")
        } else {
            ("failed", "hold")
        };
        return Some(format!(
            "its compares {said}, but in the model they {model}"
        ));
    }
    for (i, (want, got)) in expect.results.iter().zip(&exec.results).enumerate() {
        if want == got {
            continue;
        }
        let render = |o: &Out| match o {
            Out::Put => "put".to_string(),
            Out::Delete { deleted, prev } => {
                format!("deleted {deleted} {}", interner.render_kvs(prev))
            }
            Out::Range(r) => r.render(interner),
        };
        return Some(format!(
            "op {i} of its branch returned {}, but the model returns {}",
            render(want),
            render(got)
        ));
    }
    None
}
