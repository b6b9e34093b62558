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
//! - an `Ok` outcome's response variant matches the request variant (a `Compacted` response only
//!   answers a `Range` at a past revision or a `Compact`), and a `Delete` reports `deleted` of 0
//!   or 1 (single-key deletes only); a txn's results match the ops of the branch it took.
//!
//! The single-key variants (`Put`, `Get`, `Delete`, `Cas`) are special cases of `Range`,
//! `DeleteRange` and `Txn` (see `crate::requests`); checkers treat them as such.
//!
//! An `Unknown` operation's `complete` is meaningless (the recording API stores `None`); the
//! checkers ignore it. An operation that was invoked but never completed stays `Unknown`.

use std::fmt;

use crate::requests::{DeleteSpec, Kvs, List, OpResult, RangeResult, RangeSpec, TxnSpec};

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
    /// A range read (see [`RangeSpec`]).
    Range(RangeSpec),
    /// Delete every key of a range.
    DeleteRange(DeleteSpec),
    /// A multi-key transaction.
    Txn(TxnSpec),
    /// Compact history up to `revision`.
    Compact { revision: i64 },
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
    Range {
        revision: i64,
        result: RangeResult,
    },
    DeleteRange {
        revision: i64,
        deleted: i64,
        prev_kvs: Vec<(String, KeyState)>,
    },
    /// One result per op of the branch taken.
    Txn {
        revision: i64,
        succeeded: bool,
        results: Vec<OpResult>,
    },
    Compact {
        revision: i64,
    },
    /// Rejected with `etcdserver: mvcc: required revision has been compacted` (no header).
    Compacted,
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
    /// Whether the request may change the keyspace (everything but reads and compactions).
    pub fn is_write(&self) -> bool {
        !matches!(
            self,
            Request::Get { .. } | Request::Range(_) | Request::Compact { .. }
        )
    }

    /// Whether this is a serializable (possibly stale) read.
    pub fn is_serializable_read(&self) -> bool {
        match self {
            Request::Get { serializable, .. } => *serializable,
            Request::Range(r) => r.serializable,
            _ => false,
        }
    }
}

impl Response {
    /// The header revision of the response (`None` for `Compacted`, which has no header).
    pub fn revision(&self) -> Option<i64> {
        match self {
            Response::Put { revision }
            | Response::Get { revision, .. }
            | Response::Delete { revision, .. }
            | Response::Cas { revision, .. }
            | Response::Range { revision, .. }
            | Response::DeleteRange { revision, .. }
            | Response::Txn { revision, .. }
            | Response::Compact { revision } => Some(*revision),
            Response::Compacted => None,
        }
    }

    /// Whether the response reports a state change: a put, a delete that removed a key, a Cas
    /// whose compare held, a txn whose branch put or deleted something. Such a response's
    /// revision is the revision the op created.
    pub fn is_state_change(&self) -> bool {
        match self {
            Response::Put { .. } => true,
            Response::Get { .. }
            | Response::Range { .. }
            | Response::Compact { .. }
            | Response::Compacted => false,
            Response::Delete { deleted, .. } | Response::DeleteRange { deleted, .. } => {
                *deleted > 0
            }
            Response::Cas { succeeded, .. } => *succeeded,
            Response::Txn { results, .. } => results.iter().any(OpResult::changed),
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
            | (Request::Cas { .. }, Response::Cas { .. })
            | (Request::Range(_), Response::Range { .. })
            | (Request::Compact { .. }, Response::Compact { .. } | Response::Compacted) => Ok(()),
            (Request::Range(r), Response::Compacted) if r.revision > 0 => Ok(()),
            (
                Request::DeleteRange(d),
                Response::DeleteRange {
                    deleted, prev_kvs, ..
                },
            ) => {
                if d.prev_kv && *deleted != prev_kvs.len() as i64 {
                    return Err(format!("deleted {deleted} but {} prev_kvs", prev_kvs.len()));
                }
                Ok(())
            }
            (
                Request::Txn(t),
                Response::Txn {
                    succeeded, results, ..
                },
            ) => {
                let ops = t.branch(*succeeded);
                if ops.len() != results.len() || ops.iter().zip(results).any(|(o, r)| !r.matches(o))
                {
                    return Err("txn results do not match the ops of its branch".to_string());
                }
                Ok(())
            }
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
            Request::Range(r) => r.fmt(f),
            Request::DeleteRange(d) => d.fmt(f),
            Request::Txn(t) => t.fmt(f),
            Request::Compact { revision } => write!(f, "Compact({revision})"),
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
            Response::Range { revision, result } => write!(f, "rev {revision}, {result}"),
            Response::DeleteRange {
                revision,
                deleted,
                prev_kvs,
            } => write!(f, "rev {revision}, deleted {deleted} {}", Kvs(prev_kvs)),
            Response::Txn {
                revision,
                succeeded,
                results,
            } => {
                let branch = if *succeeded { "succeeded" } else { "failed" };
                write!(f, "rev {revision}, {branch}: [{}]", List(results))
            }
            Response::Compact { revision } => write!(f, "rev {revision}, compacted"),
            Response::Compacted => f.write_str("error: required revision has been compacted"),
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
