//! Compiling workload requests and `Ok` responses into the interned terms of `crate::kv_model`.
//!
//! Owns [`compile`] (a request as a [`Program`]: a Put is a txn with one put, a Get a txn with one
//! single-key range, a Cas a txn comparing `mod_revision` with a put on success and a get on
//! failure, ...) and [`compile_expect`] (what an `Ok` response claims the program produced).
//! Invariant: the two agree on shape, so `crate::kv_model::mismatch` compares results op by op.

use crate::history::{KeyState, Request, Response};
use crate::kv_model::{Cmp, CmpOn, Entry, Expect, Interner, KeyId, Out, Program, Step};
use crate::kv_range::{Query, RangeOut};
use crate::requests::{CmpResult, CmpTarget, DeleteSpec, OpResult, TxnOp};

/// Compiles a request into a program (`None` for a compaction, which is not a txn).
pub(crate) fn compile(req: &Request, interner: &mut Interner) -> Option<Program> {
    let single = |s: Step| Program {
        compares: Vec::new(),
        success: vec![s],
        failure: Vec::new(),
    };
    let get = |key: &str, i: &Interner| Step::Range(Query::single(i.key(key)));
    Some(match req {
        Request::Put { key, value } => single(Step::Put {
            key: interner.key(key),
            value: interner.value(value),
        }),
        Request::Get { key, .. } => single(get(key, interner)),
        Request::Delete { key } => single(delete_step(
            &DeleteSpec {
                key: key.clone(),
                range_end: String::new(),
                prev_kv: false,
            },
            interner,
        )),
        Request::Cas {
            key,
            expected_mod,
            value,
        } => Program {
            compares: vec![Cmp {
                key: interner.key(key),
                on: CmpOn::Mod(*expected_mod),
                result: CmpResult::Equal,
            }],
            success: vec![Step::Put {
                key: interner.key(key),
                value: interner.value(value),
            }],
            failure: vec![get(key, interner)],
        },
        Request::Range(r) => single(Step::Range(Query::new(r, interner))),
        Request::DeleteRange(d) => single(delete_step(d, interner)),
        Request::Txn(t) => {
            let compares = t
                .compares
                .iter()
                .map(|c| Cmp {
                    key: interner.key(&c.key),
                    on: match &c.target {
                        CmpTarget::Value(v) => CmpOn::Value(interner.value(v)),
                        CmpTarget::Version(n) => CmpOn::Version(*n),
                        CmpTarget::Create(n) => CmpOn::Create(*n),
                        CmpTarget::Mod(n) => CmpOn::Mod(*n),
                    },
                    result: c.result,
                })
                .collect();
            let mut branch = |ops: &[TxnOp]| -> Vec<Step> {
                ops.iter()
                    .map(|op| match op {
                        TxnOp::Put { key, value } => Step::Put {
                            key: interner.key(key),
                            value: interner.value(value),
                        },
                        TxnOp::Delete(d) => delete_step(d, interner),
                        TxnOp::Range(r) => Step::Range(Query::new(r, interner)),
                    })
                    .collect()
            };
            let success = branch(&t.success);
            let failure = branch(&t.failure);
            Program {
                compares,
                success,
                failure,
            }
        }
        Request::Compact { .. } => return None,
    })
}

fn delete_step(d: &DeleteSpec, interner: &Interner) -> Step {
    let (lo, hi) = interner.span(&d.key, &d.range_end);
    Step::Delete {
        lo,
        hi,
        prev_kv: d.prev_kv,
    }
}

/// Compiles an `Ok` response (with a header) into what it claims the program produced.
pub(crate) fn compile_expect(req: &Request, resp: &Response, interner: &mut Interner) -> Expect {
    let mut kvs = |kvs: &[(String, KeyState)]| -> Vec<(KeyId, Entry)> {
        kvs.iter()
            .map(|(k, kv)| (interner.key(k), interner.entry(kv)))
            .collect()
    };
    let one = |out: Out| Expect {
        succeeded: true,
        results: vec![out],
    };
    match (req, resp) {
        (Request::Put { .. }, _) => one(Out::Put),
        (Request::Get { key, .. }, Response::Get { kv, .. }) => {
            let kv: Vec<(String, KeyState)> =
                kv.iter().map(|kv| (key.clone(), kv.clone())).collect();
            one(Out::Range(RangeOut::all(kvs(&kv))))
        }
        (Request::Delete { .. }, Response::Delete { deleted, .. }) => one(Out::Delete {
            deleted: *deleted,
            prev: Vec::new(),
        }),
        (Request::Cas { key, .. }, Response::Cas { succeeded, kv, .. }) => {
            let out = if *succeeded {
                Out::Put
            } else {
                let kv: Vec<(String, KeyState)> =
                    kv.iter().map(|kv| (key.clone(), kv.clone())).collect();
                Out::Range(RangeOut::all(kvs(&kv)))
            };
            Expect {
                succeeded: *succeeded,
                results: vec![out],
            }
        }
        (Request::Range(_), Response::Range { result, .. }) => {
            one(Out::Range(RangeOut::observed(result, &mut kvs)))
        }
        (
            Request::DeleteRange(_),
            Response::DeleteRange {
                deleted, prev_kvs, ..
            },
        ) => one(Out::Delete {
            deleted: *deleted,
            prev: kvs(prev_kvs),
        }),
        (
            Request::Txn(_),
            Response::Txn {
                succeeded, results, ..
            },
        ) => Expect {
            succeeded: *succeeded,
            results: results
                .iter()
                .map(|r| match r {
                    OpResult::Put => Out::Put,
                    OpResult::Delete { deleted, prev_kvs } => Out::Delete {
                        deleted: *deleted,
                        prev: kvs(prev_kvs),
                    },
                    OpResult::Range(r) => Out::Range(RangeOut::observed(r, &mut kvs)),
                })
                .collect(),
        },
        _ => unreachable!("validated: response kind matches request kind"),
    }
}
