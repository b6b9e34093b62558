//! Client-observed operation histories of the simulation workload.
//!
//! Owns the vocabulary shared by the workload (which records operations) and the checkers in
//! `crate::linearizability` and `crate::serializable` (which judge them): [`Request`],
//! [`Response`], [`Outcome`], [`Operation`] and [`History`], plus the recording API
//! ([`History::record_invoke`] / [`History::record_complete`]) and human-readable rendering used in
//! error messages.
//!
//! Invariants of a well-formed history (checked by [`Operation::check_well_formed`] and enforced by
//! the checkers, which report violations as malformed input):
//! - operation ids are unique (the recording API makes `ops[i].id == i`);
//! - an `Ok` or `Failed` operation has `complete = Some(t)` with `t >= invoke`;
//! - an `Ok` outcome's response variant matches the request variant, and a `Delete` reports
//!   `deleted` of 0 or 1 (single-key deletes only).
//!
//! An `Unknown` operation's `complete` is meaningless (the recording API stores `None`); the
//! checkers ignore it. An operation that was invoked but never completed stays `Unknown`.

use std::fmt;

/// Simulated time in nanoseconds since the run started.
pub type Time = u64;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Put key=value; response is the revision the put created.
    Put { key: String, value: String },
    /// Linearizable (serializable=false) or serializable single-key get.
    Get { key: String, serializable: bool },
    /// Delete one key; response = number deleted (0 or 1) and revision.
    Delete { key: String },
    /// Compare-and-swap txn: if mod_revision(key) == expected_mod (0 = key absent) then put key=value, else get key.
    Cas {
        key: String,
        expected_mod: i64,
        value: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyState {
    pub value: String,
    pub create_revision: i64,
    pub mod_revision: i64,
    pub version: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    /// header revision = the store revision after the put (= the put's own revision)
    Put {
        revision: i64,
    },
    /// header revision of the read and what it saw (None = key absent)
    Get {
        revision: i64,
        kv: Option<KeyState>,
    },
    Delete {
        revision: i64,
        deleted: i64,
    },
    /// succeeded = whether the compare held; revision = header revision; on failure `kv` is what the get in the failure branch saw
    Cas {
        revision: i64,
        succeeded: bool,
        kv: Option<KeyState>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok(Response),
    /// Definitely did not happen (e.g. rejected before proposing: "no leader" returned by raft refusing the proposal).
    Failed,
    /// Timed out or connection lost: may or may not have taken effect, at any time after invoke.
    Unknown,
}

#[derive(Clone, Debug)]
pub struct Operation {
    pub id: usize,
    pub client: u64,
    pub invoke: Time,
    /// `None` for `Unknown` outcomes.
    pub complete: Option<Time>,
    pub request: Request,
    pub outcome: Outcome,
}

#[derive(Default, Clone, Debug)]
pub struct History {
    pub ops: Vec<Operation>,
}

impl Request {
    /// The single key the request touches.
    pub fn key(&self) -> &str {
        match self {
            Request::Put { key, .. }
            | Request::Get { key, .. }
            | Request::Delete { key }
            | Request::Cas { key, .. } => key,
        }
    }

    /// Whether the request may change the store (Put, Delete, Cas).
    pub fn is_write(&self) -> bool {
        !matches!(self, Request::Get { .. })
    }

    /// Whether this is a serializable (possibly stale) get.
    pub fn is_serializable_get(&self) -> bool {
        matches!(
            self,
            Request::Get {
                serializable: true,
                ..
            }
        )
    }
}

impl Response {
    /// The header revision of the response.
    pub fn revision(&self) -> i64 {
        match self {
            Response::Put { revision }
            | Response::Get { revision, .. }
            | Response::Delete { revision, .. }
            | Response::Cas { revision, .. } => *revision,
        }
    }

    /// Whether the response reports a state change: a put, a delete that removed a key, or a
    /// Cas whose compare held. Such a response's revision is the revision the op created.
    pub fn is_state_change(&self) -> bool {
        match self {
            Response::Put { .. } => true,
            Response::Get { .. } => false,
            Response::Delete { deleted, .. } => *deleted > 0,
            Response::Cas { succeeded, .. } => *succeeded,
        }
    }
}

impl Operation {
    /// Checks the per-operation well-formedness invariants listed in the module docs.
    pub fn check_well_formed(&self) -> Result<(), String> {
        match (&self.outcome, self.complete) {
            (Outcome::Unknown, _) => return Ok(()),
            (_, None) => return Err("completed outcome without a completion time".to_string()),
            (_, Some(c)) if c < self.invoke => {
                return Err(format!("completes at {c}, before its invocation"))
            }
            _ => {}
        }
        let Outcome::Ok(response) = &self.outcome else {
            return Ok(());
        };
        match (&self.request, response) {
            (Request::Put { .. }, Response::Put { .. })
            | (Request::Get { .. }, Response::Get { .. })
            | (Request::Cas { .. }, Response::Cas { .. }) => Ok(()),
            (Request::Delete { .. }, Response::Delete { deleted, .. }) => {
                if *deleted == 0 || *deleted == 1 {
                    Ok(())
                } else {
                    Err(format!("a single-key delete reported deleted={deleted}"))
                }
            }
            _ => Err("response kind does not match the request kind".to_string()),
        }
    }
}

impl History {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the invocation of `request` by `client` at `time` and returns the operation id to
    /// pass to [`History::record_complete`]. Until completed, the operation is `Unknown`.
    pub fn record_invoke(&mut self, client: u64, time: Time, request: Request) -> usize {
        let id = self.ops.len();
        self.ops.push(Operation {
            id,
            client,
            invoke: time,
            complete: None,
            request,
            outcome: Outcome::Unknown,
        });
        id
    }

    /// Records how operation `id` ended. For `Outcome::Unknown` the time is not stored (an
    /// unknown operation has no upper bound on when it may take effect).
    ///
    /// # Panics
    /// If `id` was not returned by `record_invoke`, or the operation already has a completion
    /// time. These are bugs in the workload, not in the system under test.
    pub fn record_complete(&mut self, id: usize, time: Time, outcome: Outcome) {
        let op = self
            .ops
            .get_mut(id)
            .unwrap_or_else(|| panic!("record_complete: unknown operation id {id}"));
        assert!(
            op.complete.is_none(),
            "record_complete: operation {id} completed twice"
        );
        op.complete = match outcome {
            Outcome::Unknown => None,
            _ => Some(time),
        };
        op.outcome = outcome;
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

impl fmt::Display for KeyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} (create {}, mod {}, ver {})",
            self.value, self.create_revision, self.mod_revision, self.version
        )
    }
}

/// Renders an optional key state as `absent` or the key state.
pub struct MaybeKv<'a>(pub &'a Option<KeyState>);

impl fmt::Display for MaybeKv<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => f.write_str("absent"),
            Some(kv) => kv.fmt(f),
        }
    }
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Request::Put { key, value } => write!(f, "Put({key:?}={value:?})"),
            Request::Get {
                key,
                serializable: false,
            } => write!(f, "Get({key:?})"),
            Request::Get {
                key,
                serializable: true,
            } => write!(f, "SerializableGet({key:?})"),
            Request::Delete { key } => write!(f, "Delete({key:?})"),
            Request::Cas {
                key,
                expected_mod,
                value,
            } => write!(f, "Cas({key:?} if mod=={expected_mod} then ={value:?})"),
        }
    }
}

impl fmt::Display for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Response::Put { revision } => write!(f, "rev {revision}"),
            Response::Get { revision, kv } => write!(f, "rev {revision}, {}", MaybeKv(kv)),
            Response::Delete { revision, deleted } => {
                write!(f, "rev {revision}, deleted {deleted}")
            }
            Response::Cas {
                revision,
                succeeded: true,
                ..
            } => write!(f, "rev {revision}, succeeded"),
            Response::Cas {
                revision,
                succeeded: false,
                kv,
            } => write!(f, "rev {revision}, failed, saw {}", MaybeKv(kv)),
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Ok(r) => write!(f, "Ok({r})"),
            Outcome::Failed => f.write_str("Failed"),
            Outcome::Unknown => f.write_str("Unknown"),
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{} client {} [{}, ", self.id, self.client, self.invoke)?;
        match (&self.outcome, self.complete) {
            (Outcome::Unknown, _) | (_, None) => f.write_str("?]")?,
            (_, Some(c)) => write!(f, "{c}]")?,
        }
        write!(f, " {} -> {}", self.request, self.outcome)
    }
}
