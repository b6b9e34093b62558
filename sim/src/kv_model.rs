//! The sequential etcd KV model the linearizability search runs, in a compact hashable form.
//!
//! Owns: translating requests and responses into model terms ([`compile_write`],
//! [`compile_read`]), string interning ([`Interner`]: keys and values become dense `u32` ids,
//! assigned in first-seen order of a deterministic walk of the history, plus one reserved value id
//! that no string maps to, standing for "a value no response ever showed"), the model state
//! ([`ModelState`]: store revision + one optional [`Entry`] per interned key), state transitions
//! ([`Effect`] guarded by a [`Guard`]) and response checks of read-like operations
//! ([`ReadCheck`]).
//!
//! Semantics (etcd v3, single keys): a `Put` bumps the revision by one and sets the key's value,
//! `mod_revision` = new revision, `version` + 1 (`create_revision` = new revision and `version` = 1
//! if the key was absent). Deleting a present key bumps the revision and removes the key; deleting
//! an absent key changes nothing. A Cas whose compare holds (`expected_mod == 0` and key absent, or
//! key present with `mod_revision == expected_mod`) is a put, otherwise it changes nothing and
//! reports the key's current state. Reads report the current revision and key state.
//!
//! Invariants: `ModelState::keys.len()` equals the interner's key count; the revision only changes
//! through [`ModelState::apply`], which always bumps it by exactly one. `ModelState` is `Eq + Hash`
//! so it can key the search's memo table; it never carries strings.

use std::collections::BTreeMap;

use crate::history::{KeyState, Request, Response};

pub(crate) type KeyId = u32;
pub(crate) type ValueId = u32;

/// Dense ids for the keys and values mentioned in a history.
#[derive(Default, Debug)]
pub(crate) struct Interner {
    key_ids: BTreeMap<String, KeyId>,
    key_names: Vec<String>,
    value_ids: BTreeMap<String, ValueId>,
    value_names: Vec<String>,
    unobserved: Option<ValueId>,
}

impl Interner {
    pub fn key(&mut self, key: &str) -> KeyId {
        intern(&mut self.key_ids, &mut self.key_names, key)
    }

    pub fn value(&mut self, value: &str) -> ValueId {
        intern(&mut self.value_ids, &mut self.value_names, value)
    }

    /// A value id no string interns to: stands for the value of an `Unknown` put that no `Ok`
    /// response ever showed, so that such puts of one key are interchangeable in the search.
    pub fn unobserved_value(&mut self) -> ValueId {
        if let Some(id) = self.unobserved {
            return id;
        }
        let id = u32::try_from(self.value_names.len()).expect("more than 2^32 distinct strings");
        self.value_names
            .push("<value of an Unknown put no response saw>".to_string());
        self.unobserved = Some(id);
        id
    }

    pub fn key_count(&self) -> usize {
        self.key_names.len()
    }

    pub fn key_name(&self, key: KeyId) -> &str {
        &self.key_names[key as usize]
    }

    pub fn value_name(&self, value: ValueId) -> &str {
        &self.value_names[value as usize]
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
            value: self.value_names[e.value as usize].clone(),
            create_revision: e.create,
            mod_revision: e.modr,
            version: e.version,
        }
    }

    /// `absent` or the rendered key state.
    pub fn render(&self, e: Option<&Entry>) -> String {
        match e {
            None => "absent".to_string(),
            Some(e) => self.key_state(e).to_string(),
        }
    }
}

fn intern(ids: &mut BTreeMap<String, u32>, names: &mut Vec<String>, s: &str) -> u32 {
    if let Some(&id) = ids.get(s) {
        return id;
    }
    let id = u32::try_from(names.len()).expect("more than 2^32 distinct strings");
    ids.insert(s.to_string(), id);
    names.push(s.to_string());
    id
}

/// A present key's state, with the value interned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Entry {
    pub value: ValueId,
    pub create: i64,
    pub modr: i64,
    pub version: i64,
}

/// A state change: what happens when a write takes effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Effect {
    Put { key: KeyId, value: ValueId },
    Delete { key: KeyId },
}

impl Effect {
    pub fn key(self) -> KeyId {
        match self {
            Effect::Put { key, .. } | Effect::Delete { key } => key,
        }
    }
}

/// The precondition under which a write changes the state (else it is a no-op).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Guard {
    /// Plain put.
    Always,
    /// Cas compare: `mod_revision(key) == expected`, with 0 meaning "key absent".
    ModEquals(i64),
    /// Delete: the key must be present to be removed.
    Present,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ModelState {
    revision: i64,
    keys: Vec<Option<Entry>>,
}

impl ModelState {
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

    /// Whether `guard` holds for `key` in this state.
    pub fn holds(&self, guard: Guard, key: KeyId) -> bool {
        cas_compare(guard, self.get(key))
    }

    /// Applies `effect` as the write creating revision `self.revision() + 1`. Callers must have
    /// checked the effect's guard (a delete of an absent key is a caller bug).
    pub fn apply(&mut self, effect: Effect) {
        self.revision += 1;
        let slot = &mut self.keys[effect.key() as usize];
        *slot = apply_to(effect, slot.as_ref(), self.revision);
    }

    /// Forgets `key` (used to canonicalize memo keys over keys nothing can observe any more).
    pub fn erase(&mut self, key: KeyId) {
        self.keys[key as usize] = None;
    }

    /// The present keys, by name, for error messages.
    pub fn describe(&self, interner: &Interner) -> Vec<(String, KeyState)> {
        let mut out: Vec<(String, KeyState)> = self
            .keys
            .iter()
            .enumerate()
            .filter_map(|(k, e)| {
                let e = e.as_ref()?;
                Some((
                    interner.key_name(k as KeyId).to_string(),
                    interner.key_state(e),
                ))
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

/// The key's state after `effect` creates revision `rev`, given its state `current` before.
pub(crate) fn apply_to(effect: Effect, current: Option<&Entry>, rev: i64) -> Option<Entry> {
    match (effect, current) {
        (Effect::Put { value, .. }, Some(e)) => Some(Entry {
            value,
            create: e.create,
            modr: rev,
            version: e.version + 1,
        }),
        (Effect::Put { value, .. }, None) => Some(Entry {
            value,
            create: rev,
            modr: rev,
            version: 1,
        }),
        (Effect::Delete { .. }, cur) => {
            debug_assert!(cur.is_some(), "delete of an absent key");
            None
        }
    }
}

/// Whether `guard` holds for a key whose state is `current`.
pub(crate) fn cas_compare(guard: Guard, current: Option<&Entry>) -> bool {
    match (guard, current) {
        (Guard::Always, _) => true,
        (Guard::Present, cur) => cur.is_some(),
        (Guard::ModEquals(expected), None) => expected == 0,
        (Guard::ModEquals(expected), Some(e)) => e.modr == expected,
    }
}

/// The effect and guard of a Put, Cas or Delete request.
pub(crate) fn compile_write(req: &Request, interner: &mut Interner) -> (Effect, Guard) {
    let key = interner.key(req.key());
    match req {
        Request::Put { value, .. } => (
            Effect::Put {
                key,
                value: interner.value(value),
            },
            Guard::Always,
        ),
        Request::Cas {
            value,
            expected_mod,
            ..
        } => (
            Effect::Put {
                key,
                value: interner.value(value),
            },
            Guard::ModEquals(*expected_mod),
        ),
        Request::Delete { .. } => (Effect::Delete { key }, Guard::Present),
        Request::Get { .. } => unreachable!("gets are not writes"),
    }
}

/// The claim of an `Ok` response that did not change the state (get, failed Cas, delete of
/// nothing). The response kind must match the request kind.
pub(crate) fn compile_read(req: &Request, resp: &Response, interner: &mut Interner) -> ReadCheck {
    let key = interner.key(req.key());
    match (req, resp) {
        (Request::Get { .. }, Response::Get { kv, .. }) => ReadCheck::Get {
            key,
            kv: kv.as_ref().map(|kv| interner.entry(kv)),
        },
        (Request::Cas { expected_mod, .. }, Response::Cas { kv, .. }) => ReadCheck::CasFailed {
            key,
            expected: *expected_mod,
            kv: kv.as_ref().map(|kv| interner.entry(kv)),
        },
        (Request::Delete { .. }, Response::Delete { .. }) => ReadCheck::DeleteAbsent { key },
        _ => unreachable!("validated: response kind matches request kind"),
    }
}

/// What a read-like `Ok` operation (one that did not change the state) claims about the state at
/// its header revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ReadCheck {
    /// A get saw `kv`.
    Get { key: KeyId, kv: Option<Entry> },
    /// A Cas whose compare failed, then saw `kv` in its failure branch.
    CasFailed {
        key: KeyId,
        expected: i64,
        kv: Option<Entry>,
    },
    /// A delete that deleted nothing: the key was absent.
    DeleteAbsent { key: KeyId },
}

impl ReadCheck {
    pub fn key(&self) -> KeyId {
        match self {
            ReadCheck::Get { key, .. }
            | ReadCheck::CasFailed { key, .. }
            | ReadCheck::DeleteAbsent { key } => *key,
        }
    }

    /// The key state the operation reported, if it reported one.
    pub fn seen(&self) -> Option<&Entry> {
        match self {
            ReadCheck::Get { kv, .. } | ReadCheck::CasFailed { kv, .. } => kv.as_ref(),
            ReadCheck::DeleteAbsent { .. } => None,
        }
    }

    /// `Ok` if the operation's response is what the model gives in `state`; else why not.
    pub fn check(&self, state: &ModelState, interner: &Interner) -> Result<(), String> {
        self.check_entry(state.get(self.key()), state.revision(), interner)
    }

    /// [`ReadCheck::check`] against the key's state `current` at revision `rev`.
    pub fn check_entry(
        &self,
        current: Option<&Entry>,
        rev: i64,
        interner: &Interner,
    ) -> Result<(), String> {
        let name = interner.key_name(self.key());
        match self {
            ReadCheck::Get { kv, .. } => {
                if kv.as_ref() == current {
                    return Ok(());
                }
                Err(format!(
                    "it saw {name:?} = {}, but at revision {rev} the model has {}",
                    interner.render(kv.as_ref()),
                    interner.render(current)
                ))
            }
            ReadCheck::CasFailed { expected, kv, .. } => {
                if cas_compare(Guard::ModEquals(*expected), current) {
                    return Err(format!(
                        "its compare failed, but at revision {rev} it holds ({name:?} = {})",
                        interner.render(current)
                    ));
                }
                if kv.as_ref() == current {
                    return Ok(());
                }
                Err(format!(
                    "its failure branch saw {name:?} = {}, but at revision {rev} the model has {}",
                    interner.render(kv.as_ref()),
                    interner.render(current)
                ))
            }
            ReadCheck::DeleteAbsent { .. } => match current {
                None => Ok(()),
                Some(e) => Err(format!(
                    "it deleted nothing, but at revision {rev} the model has {name:?} = {}",
                    interner.render(Some(e))
                )),
            },
        }
    }
}

/// Why a write's guard fails in `state`, for error messages.
pub(crate) fn explain_guard_failure(
    guard: Guard,
    key: KeyId,
    current: Option<&Entry>,
    rev: i64,
    interner: &Interner,
) -> String {
    let name = interner.key_name(key);
    let current = interner.render(current);
    match guard {
        Guard::Always => "a put always applies".to_string(),
        Guard::Present => format!("it deleted {name:?}, but at revision {rev} it is absent"),
        Guard::ModEquals(expected) => format!(
            "its compare (mod_revision == {expected}) held, but at revision {rev} {name:?} = {current}"
        ),
    }
}
