//! Checks of serializable (possibly stale) gets, which are outside the linearizability search.
//!
//! Owns [`check_serializable_reads`]. A serializable get is served by any member from its local
//! state, so it may be arbitrarily stale: it only has to show *some* state of the store at its
//! header revision `H`. The check is a set of necessary conditions that hold in every valid
//! execution and need no search. For each `Ok` serializable get of key `k` that completed at time
//! `c` and returned header revision `H` and `kv`:
//!
//! 1. `H >= initial_revision`; if an `Ok` write reported creating revision `H`, it was invoked
//!    no later than `c` (a member cannot have applied a write proposed after the read returned);
//!    otherwise (`H > initial_revision`) some `Unknown` write invoked no later than `c` may create
//!    `H`, and the revisions in `initial_revision+1..=H` no `Ok` write reported are no more than
//!    the `Unknown` writes invoked no later than `c`.
//! 2. If `kv` is `Some(ks)`:
//!    - `initial_revision < ks.create_revision <= ks.mod_revision <= H`, `ks.version >= 1`, and
//!      `ks.version == 1` exactly when `create_revision == mod_revision`;
//!    - the write of revision `ks.mod_revision` put `k = ks.value` and was invoked no later than `c`:
//!      if an `Ok` write reported that revision it must be a Put / succeeded Cas of `k` with that
//!      value, otherwise some `Unknown` Put or Cas of `k` with that value, invoked no later than
//!      `c`, that may create that revision (no `Ok` op with a revision `>= ks.mod_revision`
//!      completed before it was invoked);
//!    - no `Ok` write touched `k` at a revision in `(ks.mod_revision, H]`;
//!    - if an `Ok` write reported revision `ks.create_revision`, it is a Put / Cas of `k`; no `Ok`
//!      delete of `k` lies in `(create_revision, mod_revision)`; and `ks.version` lies between the
//!      number of `Ok` puts of `k` in `[create_revision, mod_revision]` and that number plus the
//!      revisions in that range no `Ok` write reported.
//! 3. If `kv` is `None`: if the last `Ok` write of `k` at a revision `<= H` is a put at `m`, some
//!    `Unknown` delete of `k` invoked no later than `c` can have deleted it at a revision in
//!    `(m, H]` that no `Ok` write reported (and that it may create, as above).
//!
//! Not checked: per-client monotonicity (not guaranteed by etcd for serializable reads across
//! members), any bound on staleness, agreement with the particular order the linearizability
//! search picked for `Unknown` writes, or agreement between serializable gets.

use std::collections::BTreeMap;

use crate::history::{History, KeyState, MaybeKv, Operation, Outcome, Request, Response};
use crate::linearizability::LinearizabilityError;
use crate::revision_order::{check_revision_order, ok_linearizable, validate, CompletionIndex};

/// An `Ok` write: op index and value (`None` for a delete).
struct Write<'h> {
    op: usize,
    key: &'h str,
    value: Option<&'h str>,
}

struct Index<'h> {
    history: &'h History,
    initial: i64,
    /// `Ok` writes by the revision they created.
    writes: BTreeMap<i64, Write<'h>>,
    /// Per key: revision -> value written (`None` = deleted) by `Ok` writes.
    per_key: BTreeMap<&'h str, BTreeMap<i64, Option<&'h str>>>,
    /// `Unknown` writes: op index, key, value (`None` = delete), lowest revision it may create.
    unknown: Vec<(usize, &'h str, Option<&'h str>, i64)>,
}

/// Checks every `Ok` serializable get of `history` (see the module docs for exactly what).
pub fn check_serializable_reads(
    history: &History,
    initial_revision: i64,
) -> Result<(), LinearizabilityError> {
    validate(history)?;
    let ok = ok_linearizable(history);
    check_revision_order(history, &ok)?;
    let completions = CompletionIndex::new(history, &ok);
    let mut index = Index {
        history,
        initial: initial_revision,
        writes: BTreeMap::new(),
        per_key: BTreeMap::new(),
        unknown: Vec::new(),
    };
    for (i, op) in history.ops.iter().enumerate() {
        let value = match &op.request {
            Request::Put { value, .. } | Request::Cas { value, .. } => Some(value.as_str()),
            Request::Delete { .. } => None,
            Request::Get { .. } => continue,
        };
        let key = op.request.key();
        match &op.outcome {
            Outcome::Ok(resp) if resp.is_state_change() => {
                let rev = resp.revision();
                index.writes.insert(rev, Write { op: i, key, value });
                index.per_key.entry(key).or_default().insert(rev, value);
            }
            Outcome::Unknown => {
                let min_slot = completions.min_slot(op.invoke, initial_revision);
                index.unknown.push((i, key, value, min_slot));
            }
            _ => {}
        }
    }
    for op in &history.ops {
        if let (
            Request::Get {
                key,
                serializable: true,
            },
            Outcome::Ok(Response::Get { revision, kv }),
        ) = (&op.request, &op.outcome)
        {
            index
                .check(op, key, *revision, kv.as_ref())
                .map_err(|reason| LinearizabilityError::SerializableRead {
                    op: op.id,
                    reason: format!("{op}: {reason} (saw {})", MaybeKv(kv)),
                })?;
        }
    }
    Ok(())
}

impl Index<'_> {
    fn op(&self, i: usize) -> &Operation {
        &self.history.ops[i]
    }

    /// Revisions in `lo..=hi` that no `Ok` write reported.
    fn unclaimed(&self, lo: i64, hi: i64) -> i64 {
        if lo > hi {
            return 0;
        }
        (hi - lo + 1) - self.writes.range(lo..=hi).count() as i64
    }

    fn check(&self, g: &Operation, key: &str, h: i64, kv: Option<&KeyState>) -> Result<(), String> {
        let c = g.complete.expect("Ok ops complete");
        if h < self.initial {
            return Err(format!(
                "header revision {h} precedes the initial revision {}",
                self.initial
            ));
        }
        if let Some(w) = self.writes.get(&h).filter(|w| self.op(w.op).invoke > c) {
            return Err(format!(
                "its header revision {h} was created by {}, invoked after this get completed",
                self.op(w.op)
            ));
        }
        if h > self.initial && !self.writes.contains_key(&h) {
            let early: Vec<i64> = self
                .unknown
                .iter()
                .filter(|u| self.op(u.0).invoke <= c)
                .map(|u| u.3)
                .collect();
            if !early.iter().any(|&min_slot| min_slot <= h)
                || self.unclaimed(self.initial + 1, h) > early.len() as i64
            {
                return Err(format!(
                    "no Ok write reported creating its header revision {h}, and too few Unknown writes \
                     invoked before it completed can have created the revisions missing up to {h}"
                ));
            }
        }
        let no_writes = BTreeMap::new();
        let key_writes = self.per_key.get(key).unwrap_or(&no_writes);
        let Some(ks) = kv else {
            let Some((&m, Some(_))) = key_writes.range(..=h).next_back() else {
                return Ok(()); // never written by an Ok write, or last deleted, by revision h
            };
            let deletable = self.unknown.iter().any(|&(u, k, v, min_slot)| {
                k == key
                    && v.is_none()
                    && self.op(u).invoke <= c
                    && self.unclaimed((m + 1).max(min_slot), h) > 0
            });
            if deletable {
                return Ok(());
            }
            let w = &self.writes[&m];
            return Err(format!(
                "key absent at revision {h}, but {} put it at revision {m} and no delete can have removed it by {h}",
                self.op(w.op)
            ));
        };
        let (create, modr, version) = (ks.create_revision, ks.mod_revision, ks.version);
        if !(self.initial < create && create <= modr && modr <= h) {
            return Err(format!(
                "needs initial revision {} < create_revision <= mod_revision <= header revision {h}",
                self.initial
            ));
        }
        if version < 1 || (version == 1) != (create == modr) {
            return Err(
                "version is inconsistent with create_revision and mod_revision".to_string(),
            );
        }
        match self.writes.get(&modr) {
            Some(w) => {
                if w.key != key || w.value != Some(ks.value.as_str()) {
                    return Err(format!("revision {modr} was created by {}", self.op(w.op)));
                }
                if self.op(w.op).invoke > c {
                    return Err(format!(
                        "it saw {}, invoked after this get completed",
                        self.op(w.op)
                    ));
                }
            }
            None => {
                let writer = self.unknown.iter().any(|&(u, k, v, min_slot)| {
                    k == key
                        && v == Some(ks.value.as_str())
                        && self.op(u).invoke <= c
                        && min_slot <= modr
                });
                if !writer {
                    return Err(format!(
                        "no Ok write reported revision {modr} and no Unknown write of that value can have created it"
                    ));
                }
            }
        }
        if let Some((r, _)) = key_writes.range(modr..=h).find(|(r, _)| **r > modr) {
            return Err(format!(
                "{} wrote the key at revision {r}, after {modr} and by {h}",
                self.op(self.writes[r].op)
            ));
        }
        if let Some(w) = self
            .writes
            .get(&create)
            .filter(|w| w.key != key || w.value.is_none())
        {
            return Err(format!(
                "revision {create} was created by {}",
                self.op(w.op)
            ));
        }
        let mut puts = 0;
        for (r, v) in key_writes.range(create..=modr) {
            match v {
                Some(_) => puts += 1,
                None if *r > create => {
                    return Err(format!(
                        "{} deleted the key at revision {r}, between its creation and modification",
                        self.op(self.writes[r].op)
                    ))
                }
                None => {}
            }
        }
        let unclaimed = self.unclaimed(create, modr);
        if version < puts || version > puts + unclaimed {
            return Err(format!(
                "version {version}, but revisions {create}..={modr} hold {puts} Ok puts of the key and \
                 {unclaimed} revisions of unknown writes"
            ));
        }
        Ok(())
    }
}
