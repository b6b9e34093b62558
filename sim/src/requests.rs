//! The multi-key parts of the workload vocabulary: range queries, range deletes, transactions
//! with compares, and their results, as recorded in a `crate::history::History`.
//!
//! These mirror the etcd v3 API without depending on the protobuf types: a range is etcd's
//! `[key, range_end)` (`range_end` empty = just `key`, `"\0"` = every key `>= key`), with limit,
//! sort order/target, keys-only, count-only, a read revision (0 = current) and serializability.
//! A [`TxnSpec`] holds compares (all must hold) and a success and a failure branch of
//! [`TxnOp`]s; its result lists one [`OpResult`] per op of the branch taken.
//!
//! Invariants the workload keeps and `crate::history::Operation::check_well_formed` checks: a
//! result matches its op kind and position, and `deleted == prev_kvs.len()` whenever `prev_kv`
//! was asked for.

use std::fmt;

use crate::history::KeyState;

/// etcd's sort order of a range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SortOrder {
    None,
    Ascend,
    Descend,
}

/// etcd's sort target of a range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SortTarget {
    Key,
    Version,
    Create,
    Mod,
    Value,
}

/// A Range request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeSpec {
    pub key: String,
    /// etcd's `range_end`: empty = just `key`, `"\0"` = every key from `key` on.
    pub range_end: String,
    /// Read revision; 0 = current.
    pub revision: i64,
    /// 0 = no limit.
    pub limit: i64,
    pub sort_order: SortOrder,
    pub sort_target: SortTarget,
    pub keys_only: bool,
    pub count_only: bool,
    pub serializable: bool,
}

impl RangeSpec {
    /// A plain linearizable range over `[key, range_end)` at the current revision.
    pub fn new(key: impl Into<String>, range_end: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            range_end: range_end.into(),
            revision: 0,
            limit: 0,
            sort_order: SortOrder::None,
            sort_target: SortTarget::Key,
            keys_only: false,
            count_only: false,
            serializable: false,
        }
    }
}

/// A DeleteRange request (or op inside a txn).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeleteSpec {
    pub key: String,
    pub range_end: String,
    pub prev_kv: bool,
}

/// What a compare looks at, and the operand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CmpTarget {
    Value(String),
    Version(i64),
    Create(i64),
    Mod(i64),
}

/// How a compare relates the key's field to the operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CmpResult {
    Equal,
    Greater,
    Less,
    NotEqual,
}

/// One compare of a txn, on a single key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compare {
    pub key: String,
    pub target: CmpTarget,
    pub result: CmpResult,
}

/// One op of a txn branch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxnOp {
    Put { key: String, value: String },
    Delete(DeleteSpec),
    Range(RangeSpec),
}

/// A Txn request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnSpec {
    pub compares: Vec<Compare>,
    pub success: Vec<TxnOp>,
    pub failure: Vec<TxnOp>,
}

impl TxnSpec {
    /// The ops of the branch taken.
    pub fn branch(&self, succeeded: bool) -> &[TxnOp] {
        if succeeded {
            &self.success
        } else {
            &self.failure
        }
    }
}

/// What a range returned (keys with their states; values empty if keys-only).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RangeResult {
    pub kvs: Vec<(String, KeyState)>,
    pub more: bool,
    pub count: i64,
}

/// The result of one txn op.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpResult {
    Put,
    Delete {
        deleted: i64,
        prev_kvs: Vec<(String, KeyState)>,
    },
    Range(RangeResult),
}

impl OpResult {
    /// Whether the op changed the store.
    pub fn changed(&self) -> bool {
        match self {
            OpResult::Put => true,
            OpResult::Delete { deleted, .. } => *deleted > 0,
            OpResult::Range(_) => false,
        }
    }

    /// Whether the result is of the kind `op` produces.
    pub fn matches(&self, op: &TxnOp) -> bool {
        matches!(
            (op, self),
            (TxnOp::Put { .. }, OpResult::Put)
                | (TxnOp::Delete(_), OpResult::Delete { .. })
                | (TxnOp::Range(_), OpResult::Range(_))
        )
    }
}

fn fmt_range(f: &mut fmt::Formatter<'_>, key: &str, end: &str) -> fmt::Result {
    match end {
        "" => write!(f, "{key:?}"),
        "\0" => write!(f, "[{key:?}..)"),
        _ => write!(f, "[{key:?}..{end:?})"),
    }
}

impl fmt::Display for RangeSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.serializable {
            "SerializableRange("
        } else {
            "Range("
        })?;
        fmt_range(f, &self.key, &self.range_end)?;
        if self.revision > 0 {
            write!(f, " @{}", self.revision)?;
        }
        if self.limit > 0 {
            write!(f, " limit {}", self.limit)?;
        }
        if self.sort_order != SortOrder::None || self.sort_target != SortTarget::Key {
            write!(f, " sort {:?} {:?}", self.sort_order, self.sort_target)?;
        }
        if self.keys_only {
            f.write_str(" keys-only")?;
        }
        if self.count_only {
            f.write_str(" count-only")?;
        }
        f.write_str(")")
    }
}

impl fmt::Display for DeleteSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DeleteRange(")?;
        fmt_range(f, &self.key, &self.range_end)?;
        f.write_str(if self.prev_kv { " prev_kv)" } else { ")" })
    }
}

impl fmt::Display for TxnOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TxnOp::Put { key, value } => write!(f, "Put({key:?}={value:?})"),
            TxnOp::Delete(d) => d.fmt(f),
            TxnOp::Range(r) => r.fmt(f),
        }
    }
}

impl fmt::Display for Compare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.result {
            CmpResult::Equal => "==",
            CmpResult::Greater => ">",
            CmpResult::Less => "<",
            CmpResult::NotEqual => "!=",
        };
        let key = &self.key;
        match &self.target {
            CmpTarget::Value(v) => write!(f, "value({key:?}) {op} {v:?}"),
            CmpTarget::Version(n) => write!(f, "version({key:?}) {op} {n}"),
            CmpTarget::Create(n) => write!(f, "create({key:?}) {op} {n}"),
            CmpTarget::Mod(n) => write!(f, "mod({key:?}) {op} {n}"),
        }
    }
}

/// Renders items separated by `", "`.
pub(crate) struct List<'a, T>(pub &'a [T]);

impl<T: fmt::Display> fmt::Display for List<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, x) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            x.fmt(f)?;
        }
        Ok(())
    }
}

impl fmt::Display for TxnSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Txn(if [{}] then [{}] else [{}])",
            List(&self.compares),
            List(&self.success),
            List(&self.failure)
        )
    }
}

/// Renders `key = state` pairs.
pub(crate) struct Kvs<'a>(pub &'a [(String, KeyState)]);

impl fmt::Display for Kvs<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, (k, kv)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{k:?}: {kv}")?;
        }
        f.write_str("}")
    }
}

impl fmt::Display for RangeResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} count {}", Kvs(&self.kvs), self.count)?;
        if self.more {
            f.write_str(" more")?;
        }
        Ok(())
    }
}

impl fmt::Display for OpResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpResult::Put => f.write_str("put"),
            OpResult::Delete { deleted, prev_kvs } if prev_kvs.is_empty() => {
                write!(f, "deleted {deleted}")
            }
            OpResult::Delete { deleted, prev_kvs } => {
                write!(f, "deleted {deleted} {}", Kvs(prev_kvs))
            }
            OpResult::Range(r) => r.fmt(f),
        }
    }
}
