//! Static analysis of a history ahead of the linearizability search: revision slots and pruning.
//!
//! Owns the [`Plan`] the search runs on (built after the checks of `crate::revision_order`).
//!
//! Key fact: every state change bumps the store revision by exactly one and every `Ok` response
//! carries a revision, so in *every* valid linearization an `Ok` write sits exactly at the revision
//! it reported and an `Ok` read-like op (get, failed Cas, delete of nothing) sits between the write
//! creating its header revision `R` and the write creating `R + 1`. Hence:
//! - [`Plan::slots`] holds, per revision `R` in `initial..=max_rev`, the `Ok` write that created it
//!   (if any) and the `Ok` reads at `R` (sorted by invoke, which is consistent with real time);
//! - real-time order among `Ok` ops is a static check (`crate::revision_order`);
//! - every revision no `Ok` write claims (a *gap*) must be created by an `Unknown` write, which
//!   may sit at revision `S` only if every `Ok` op that completed before its invoke has a revision
//!   `< S` ([`UnknownWrite::min_slot`]);
//! - `Ok` responses pin gap writes ([`GapInfo`]): a reported `mod_revision == S` means revision
//!   `S` was a put of that key and value; `create_revision == S` means a put creating the key; a
//!   succeeded Cas expecting `S` means a put of its key; a read at `R` reporting `mod_revision m`
//!   forbids any write to its key at gaps in `(m, R]`. Where such a revision was created by an
//!   `Ok` write, that write must match. A reported key state must also be self-consistent
//!   (`initial < create_revision <= mod_revision <= R`, `version == 1` iff created at
//!   `mod_revision`), and its lifetime `[create, mod]` holds no delete of the key and exactly
//!   `version` puts of it ([`Plan::lifetimes`]). These facts hold in every valid linearization,
//!   so pruning with them never rejects a valid history.
//!
//! Invariants of a built plan: `slots.len() == max_rev - initial + 1`; `slots[0]` (the initial
//! revision) has no write; the number of gaps is at most the number of unknown writes; `gaps` has
//! exactly the revisions in `initial+1..=max_rev` whose slot has no write.

use std::collections::{BTreeMap, BTreeSet};

use crate::history::{History, Outcome, Request};
use crate::kv_model::{
    compile_read, compile_write, Effect, Guard, Interner, KeyId, ReadCheck, ValueId,
};
use crate::linearizability::{Failure, LinearizabilityError};
use crate::revision_order::{check_revision_order, ok_linearizable, validate, CompletionIndex};

/// An `Ok` write: the op at `op` (index into `History::ops`) created its reported revision.
#[derive(Debug)]
pub(crate) struct OkWrite {
    pub op: usize,
    pub effect: Effect,
    pub guard: Guard,
}

#[derive(Debug)]
pub(crate) struct OkRead {
    pub op: usize,
    pub check: ReadCheck,
}

#[derive(Debug, Default)]
pub(crate) struct Slot {
    pub write: Option<OkWrite>,
    pub reads: Vec<OkRead>,
}

/// An `Unknown` Put, Cas or Delete: may fill one gap (or be left out).
#[derive(Debug)]
pub(crate) struct UnknownWrite {
    pub op: usize,
    pub effect: Effect,
    pub guard: Guard,
    /// Lowest revision it may create: one more than the highest revision of any `Ok` op that
    /// completed before it was invoked.
    pub min_slot: i64,
    /// Set when this is the only unknown write able to satisfy the pin of gap `S`.
    pub reserved_for: Option<i64>,
    /// Unknown writes with equal `(effect, guard)` share a class: they differ only in
    /// `min_slot`, so once eligible they are interchangeable.
    pub class: usize,
}

/// What `Ok` responses imply about the write that created a gap revision.
#[derive(Debug, Default)]
pub(crate) struct GapInfo {
    /// The write must be a put of this key (`None`: unconstrained; any pin implies a put).
    pub key: Option<KeyId>,
    pub value: Option<ValueId>,
    /// The put must create the key (it was absent before).
    pub creates: bool,
    /// The op whose response set the first pin.
    pub pinned_by: Option<usize>,
    /// Set (to the op index of the second claim) if responses contradict each other about
    /// this revision.
    pub conflict: Option<usize>,
    /// Keys no write at this revision may touch (sorted, deduplicated).
    pub forbidden: Vec<KeyId>,
    /// Keys this revision may not delete (sorted, deduplicated).
    pub no_delete: Vec<KeyId>,
}

impl GapInfo {
    fn pin(&mut self, key: KeyId, value: Option<ValueId>, creates: bool, by: usize) {
        if self.key.is_some_and(|k| k != key)
            || (value.is_some() && self.value.is_some() && value != self.value)
        {
            self.conflict.get_or_insert(by);
        }
        self.key = Some(key);
        self.value = self.value.or(value);
        self.creates |= creates;
        self.pinned_by.get_or_insert(by);
    }

    /// What responses say about this revision, for error messages ("" if nothing).
    pub fn describe(&self, interner: &Interner, history: &History) -> String {
        let id = |op: usize| history.ops[op].id;
        if let (Some(c), Some(first)) = (self.conflict, self.pinned_by) {
            return format!(
                " (ops #{} and #{} disagree about what this revision wrote)",
                id(first),
                id(c)
            );
        }
        let Some(k) = self.key else {
            return String::new();
        };
        let value = self
            .value
            .map_or(String::new(), |v| format!("={:?}", interner.value_name(v)));
        let by = self
            .pinned_by
            .map_or(String::new(), |op| format!(" (first #{})", id(op)));
        format!(
            "; responses{by} show it was a put of {:?}{value}",
            interner.key_name(k)
        )
    }

    /// Whether a write of `key` may create this revision, as far as the pins tell.
    pub fn admits_key(&self, key: KeyId) -> bool {
        self.forbidden.binary_search(&key).is_err() && self.key.is_none_or(|k| k == key)
    }

    /// Whether `effect` satisfies the pins (the guard and `creates` depend on the state).
    pub fn admits(&self, effect: Effect) -> bool {
        if self.forbidden.binary_search(&effect.key()).is_ok() {
            return false;
        }
        match (self.key, effect) {
            (None, Effect::Delete { key }) => self.no_delete.binary_search(&key).is_err(),
            (None, _) => true,
            (Some(_), Effect::Delete { .. }) => false,
            (Some(k), Effect::Put { key, value }) => {
                k == key && self.value.is_none_or(|v| v == value)
            }
        }
    }
}

#[derive(Debug)]
pub(crate) struct Plan {
    pub interner: Interner,
    pub initial: i64,
    pub max_rev: i64,
    pub slots: Vec<Slot>,
    pub gaps: BTreeMap<i64, GapInfo>,
    pub unknown: Vec<UnknownWrite>,
    /// Number of distinct `UnknownWrite::class`es.
    pub classes: usize,
    /// Number of `Ok` linearizable ops.
    pub ok_ops: usize,
    /// Per key: highest revision of an `Ok` op on it (`i64::MIN` if none).
    pub last_ok_rev: Vec<i64>,
    /// Per key: whether some unknown write on it has a guard (Cas or Delete).
    pub guarded: Vec<bool>,
}

impl Plan {
    pub fn slot(&self, revision: i64) -> &Slot {
        &self.slots[(revision - self.initial) as usize]
    }

    /// Whether nothing after revision `r` can observe `key`: no `Ok` op on it has a higher
    /// revision and no unknown write on it depends on its state. Monotone in `r`.
    pub fn dead(&self, key: KeyId, r: i64) -> bool {
        !self.guarded[key as usize] && self.last_ok_rev[key as usize] <= r
    }
}

/// The role of one operation in the linearizability check.
enum Role {
    Ignored,
    OkWrite {
        rev: i64,
        effect: Effect,
        guard: Guard,
    },
    OkRead {
        rev: i64,
        check: ReadCheck,
    },
    Unknown {
        effect: Effect,
        guard: Guard,
    },
}

fn role(req: &Request, outcome: &Outcome, interner: &mut Interner) -> Role {
    match outcome {
        Outcome::Failed => Role::Ignored,
        Outcome::Unknown if req.is_write() => {
            let (effect, guard) = compile_write(req, interner);
            Role::Unknown { effect, guard }
        }
        Outcome::Unknown => Role::Ignored,
        Outcome::Ok(_) if req.is_serializable_get() => Role::Ignored,
        Outcome::Ok(resp) => {
            let rev = resp.revision();
            if resp.is_state_change() {
                let (effect, guard) = compile_write(req, interner);
                return Role::OkWrite { rev, effect, guard };
            }
            let check = compile_read(req, resp, interner);
            Role::OkRead { rev, check }
        }
    }
}

impl Plan {
    /// Builds the plan, or fails early with a definite violation.
    pub fn build(history: &History, initial: i64) -> Result<Plan, LinearizabilityError> {
        validate(history)?;
        let ok = ok_linearizable(history);
        check_revision_order(history, &ok)?;
        let ops = &history.ops;
        let early = |reason: String| {
            LinearizabilityError::NotLinearizable(Box::new(Failure::early(reason, ok.len())))
        };
        let mut interner = Interner::default();
        let roles: Vec<Role> = ops
            .iter()
            .map(|op| role(&op.request, &op.outcome, &mut interner))
            .collect();

        let mut max_rev = initial;
        let mut ok_writes = 0i64;
        let mut unknown_count = 0i64;
        for (i, r) in roles.iter().enumerate() {
            let (rev, lowest, what) = match r {
                Role::OkWrite { rev, .. } => (*rev, initial + 1, "a write"),
                Role::OkRead { rev, .. } => (*rev, initial, "a read"),
                Role::Unknown { .. } => {
                    unknown_count += 1;
                    continue;
                }
                Role::Ignored => continue,
            };
            if rev < lowest {
                return Err(early(format!(
                    "{}: {what} at revision {rev}, but the run started at revision {initial}",
                    ops[i]
                )));
            }
            ok_writes += i64::from(matches!(r, Role::OkWrite { .. }));
            max_rev = max_rev.max(rev);
        }
        let gap_count = max_rev.saturating_sub(initial) - ok_writes;
        if gap_count > unknown_count {
            return Err(early(format!(
                "no Ok write reported creating {gap_count} of the revisions {}..={max_rev}, but \
                 there are only {unknown_count} Unknown writes to have created them",
                initial + 1
            )));
        }

        let mut slots: Vec<Slot> = (initial..=max_rev).map(|_| Slot::default()).collect();
        let index = CompletionIndex::new(history, &ok);
        let mut unknown = Vec::new();
        for (i, r) in roles.into_iter().enumerate() {
            match r {
                Role::OkWrite { rev, effect, guard } => {
                    slots[(rev - initial) as usize].write = Some(OkWrite {
                        op: i,
                        effect,
                        guard,
                    })
                }
                Role::OkRead { rev, check } => slots[(rev - initial) as usize]
                    .reads
                    .push(OkRead { op: i, check }),
                Role::Unknown { effect, guard } => unknown.push(UnknownWrite {
                    op: i,
                    effect,
                    guard,
                    min_slot: index.min_slot(ops[i].invoke, initial),
                    reserved_for: None,
                    class: 0,
                }),
                Role::Ignored => {}
            }
        }
        for slot in &mut slots {
            slot.reads.sort_by_key(|r| (ops[r.op].invoke, r.op));
        }
        let mut gaps: BTreeMap<i64, GapInfo> = BTreeMap::new();
        for rev in initial + 1..=max_rev {
            if slots[(rev - initial) as usize].write.is_none() {
                gaps.insert(rev, GapInfo::default());
            }
        }
        // Unknown puts whose value no response saw are interchangeable: give them one value.
        let mut observed = BTreeSet::new();
        let keys = interner.key_count();
        let (mut last_ok_rev, mut guarded) = (vec![i64::MIN; keys], vec![false; keys]);
        for (s, slot) in slots.iter().enumerate() {
            let rev = initial + s as i64;
            for r in &slot.reads {
                observed.extend(r.check.seen().map(|e| (r.check.key(), e.value)));
                last_ok_rev[r.check.key() as usize] = rev;
            }
            if let Some(w) = &slot.write {
                last_ok_rev[w.effect.key() as usize] = rev;
            }
        }
        let mut classes: BTreeMap<(Effect, Guard), usize> = BTreeMap::new();
        for u in &mut unknown {
            guarded[u.effect.key() as usize] |= u.guard != Guard::Always;
            if let Effect::Put { key, value } = &mut u.effect {
                if !observed.contains(&(*key, *value)) {
                    *value = interner.unobserved_value();
                }
            }
            let next = classes.len();
            u.class = *classes.entry((u.effect, u.guard)).or_insert(next);
        }
        let mut plan = Plan {
            interner,
            initial,
            max_rev,
            slots,
            gaps,
            unknown,
            classes: classes.len(),
            ok_ops: ok.len(),
            last_ok_rev,
            guarded,
        };
        plan.derive_pins(history).map_err(early)?;
        let nothing_used = vec![0u64; plan.unknown.len().div_ceil(64)];
        for (&s, g) in &plan.gaps {
            let fillable = g.conflict.is_none()
                && plan.unknown.iter().any(|u| {
                    u.min_slot <= s && u.reserved_for.is_none_or(|r| r == s) && g.admits(u.effect)
                });
            if !fillable {
                return Err(early(format!(
                    "revision {s}: no Ok write reported creating it, and no Unknown write can have{}{}",
                    g.describe(&plan.interner, history),
                    plan.tally(s, &nothing_used)
                )));
            }
        }
        Ok(plan)
    }

    /// Fills `gaps` with what `Ok` responses imply, reserves unknown writes (module docs), and
    /// checks those implications against the `Ok` writes of claimed revisions.
    fn derive_pins(&mut self, history: &History) -> Result<(), String> {
        let initial = self.initial;
        let mut claims: Vec<Claim> = Vec::new();
        for (s, slot) in self.slots.iter().enumerate() {
            let rev = initial + s as i64;
            for read in &slot.reads {
                let (op, key) = (read.op, read.check.key());
                let Some(e) = read.check.seen() else {
                    continue;
                };
                if !(initial < e.create && e.create <= e.modr && e.modr <= rev)
                    || e.version < 1
                    || (e.version == 1) != (e.create == e.modr)
                {
                    return Err(format!(
                        "{}: no state can hold this key state at revision {rev} (needs {initial} < \
                         create_revision <= mod_revision <= {rev}, and version 1 exactly when \
                         create_revision == mod_revision)",
                        history.ops[op]
                    ));
                }
                let value = Some(e.value);
                let creates = e.version == 1;
                claims.push(Claim {
                    op,
                    key,
                    rev: e.modr,
                    value,
                    creates,
                });
                if e.create < e.modr {
                    claims.push(Claim {
                        op,
                        key,
                        rev: e.create,
                        value: None,
                        creates: true,
                    });
                }
                forbid(&mut self.gaps, key, e.modr + 1, rev);
            }
            if let Some(OkWrite {
                op,
                effect,
                guard: Guard::ModEquals(expected),
            }) = &slot.write
            {
                if *expected > 0 && *expected < rev {
                    let (op, key) = (*op, effect.key());
                    claims.push(Claim {
                        op,
                        key,
                        rev: *expected,
                        value: None,
                        creates: false,
                    });
                    forbid(&mut self.gaps, key, expected + 1, rev - 1);
                }
            }
        }
        for c in claims {
            if let Some(g) = self.gaps.get_mut(&c.rev) {
                g.pin(c.key, c.value, c.creates, c.op);
                continue;
            }
            let Some(w) = (initial < c.rev && c.rev <= self.max_rev)
                .then(|| self.slot(c.rev).write.as_ref())
                .flatten()
            else {
                continue; // before the run: the model rejects it
            };
            let fits = matches!(w.effect, Effect::Put { key, value }
                if key == c.key && c.value.is_none_or(|v| v == value));
            if !fits {
                let value = c.value.map_or(String::new(), |v| {
                    format!("={:?}", self.interner.value_name(v))
                });
                return Err(format!(
                    "{}: its response implies revision {} was a put of {:?}{value}, but {} created it",
                    history.ops[c.op],
                    c.rev,
                    self.interner.key_name(c.key),
                    history.ops[w.op]
                ));
            }
        }
        self.lifetimes(history)?;
        for (&s, g) in &mut self.gaps {
            g.forbidden.sort_unstable();
            g.forbidden.dedup();
            g.no_delete.sort_unstable();
            g.no_delete.dedup();
            let (Some(key), Some(value)) = (g.key, g.value) else {
                continue;
            };
            let put = Effect::Put { key, value };
            let mut matching = self.unknown.iter_mut().filter(|u| u.effect == put);
            if let (Some(u), None) = (matching.next(), matching.next()) {
                u.reserved_for.get_or_insert(s);
            }
        }
        Ok(())
    }

    /// A reported key state `(create c, mod m, version v)` means the key existed throughout
    /// `[c, m]` (no delete in between) and was put exactly `v` times there: gap writes inside
    /// `(c, m)` may not delete it, and if the `Ok` puts (plus the gaps at `c` and `m`, which
    /// pins make puts of the key) already account for `v`, they may not touch it at all.
    fn lifetimes(&mut self, history: &History) -> Result<(), String> {
        let mut ok_writes: BTreeMap<(KeyId, i64), bool> = BTreeMap::new();
        for (s, slot) in self.slots.iter().enumerate() {
            if let Some(w) = &slot.write {
                let is_put = matches!(w.effect, Effect::Put { .. });
                ok_writes.insert((w.effect.key(), self.initial + s as i64), is_put);
            }
        }
        for slot in &self.slots {
            for read in &slot.reads {
                let (key, Some(e)) = (read.check.key(), read.check.seen()) else {
                    continue;
                };
                let mut puts = 0;
                for (&(_, r), &is_put) in ok_writes.range((key, e.create)..=(key, e.modr)) {
                    if !is_put && r > e.create {
                        return Err(format!(
                            "{}: the key existed from revision {} to {}, but {} deleted it at {r}",
                            history.ops[read.op],
                            e.create,
                            e.modr,
                            history.ops[self.slot(r).write.as_ref().expect("Ok write").op]
                        ));
                    }
                    puts += i64::from(is_put);
                }
                let pinned = [e.create, e.modr];
                let pinned = pinned
                    .iter()
                    .enumerate()
                    .filter(|&(i, r)| (i == 0 || e.modr != e.create) && self.gaps.contains_key(r));
                let extra = e.version - puts - pinned.count() as i64;
                if extra < 0 {
                    return Err(format!(
                        "{}: version {}, but Ok writes already put the key {puts} times in \
                         revisions {}..={}",
                        history.ops[read.op], e.version, e.create, e.modr
                    ));
                }
                if e.create + 1 < e.modr {
                    for (_, g) in self.gaps.range_mut(e.create + 1..e.modr) {
                        if extra == 0 {
                            g.forbidden.push(key);
                        } else {
                            g.no_delete.push(key);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Why unknown writes cannot create gap `s`, as counts, for error messages.
    pub fn tally(&self, s: i64, used: &[u64]) -> String {
        let gap = &self.gaps[&s];
        let (mut placed, mut late, mut ruled_out, mut no_effect) = (0, 0, 0, 0);
        for (i, u) in self.unknown.iter().enumerate() {
            if is_used(used, i) {
                placed += 1;
            } else if u.min_slot > s {
                late += 1;
            } else if u.reserved_for.is_some_and(|r| r != s) || !gap.admits(u.effect) {
                ruled_out += 1;
            } else {
                no_effect += 1;
            }
        }
        format!(
            " [{} Unknown writes: {placed} already placed, {late} invoked after an op of revision \
             >= {s} completed, {ruled_out} contradict what responses saw, {no_effect} would \
             change nothing here]",
            self.unknown.len()
        )
    }
}

/// What an `Ok` response implies about the write that created revision `rev`.
struct Claim {
    op: usize,
    key: KeyId,
    rev: i64,
    value: Option<ValueId>,
    creates: bool,
}

/// No write may touch `key` at gaps in `from..=to`.
fn forbid(gaps: &mut BTreeMap<i64, GapInfo>, key: KeyId, from: i64, to: i64) {
    if from <= to {
        for (_, g) in gaps.range_mut(from..=to) {
            g.forbidden.push(key);
        }
    }
}

/// Whether unknown write `i` is marked in bitset `used`.
pub(crate) fn is_used(used: &[u64], i: usize) -> bool {
    used[i / 64] & (1 << (i % 64)) != 0
}
