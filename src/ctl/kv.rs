//! The key-value commands `get`, `put`, `del` and `compaction`: etcdctl's argument checks
//! (same texts, same exit codes, same order), the request each builds (prefix and from-key
//! ranges, clientv3's sort quirks) — shared with `txn` — and their output.

use super::cli::{CompactionArgs, DelArgs, GetArgs, PutArgs};
use super::error::{CtlError, CtlResult};
use super::Ctx;
use crate::gofmt::parse_int;
use crate::pb::etcdserverpb::kv_client::KvClient;
use crate::pb::etcdserverpb::range_request::{SortOrder, SortTarget};
use crate::pb::etcdserverpb::{CompactionRequest, DeleteRangeRequest, PutRequest, RangeRequest};
use bytes::Bytes;
use std::io::Read;

/// The range end covering every key with `key` as prefix (clientv3's `GetPrefixRangeEnd`).
pub fn prefix_end(key: &[u8]) -> Vec<u8> {
    let mut end = key.to_vec();
    while let Some(last) = end.last_mut() {
        if *last < 0xff {
            *last += 1;
            return end;
        }
        end.pop();
    }
    vec![0]
}

/// Key and range end for `--prefix` / `--from-key` / an explicit range end.
fn key_range(key: &str, end: Option<&str>, prefix: bool, from_key: bool) -> (Bytes, Bytes) {
    let mut key = key.as_bytes().to_vec();
    let mut range_end = end.map(|e| e.as_bytes().to_vec()).unwrap_or_default();
    if prefix {
        if key.is_empty() {
            key = vec![0];
            range_end = vec![0];
        } else {
            range_end = prefix_end(&key);
        }
    }
    if from_key {
        if key.is_empty() {
            key = vec![0];
        }
        range_end = vec![0];
    }
    (key.into(), range_end.into())
}

const RANGE_ARGS: &str = "one argument as key and an optional argument as range_end";
const BOTH: &str = "`--prefix` and `--from-key` cannot be set at the same time, choose one";
const TOO_MANY: &str =
    "too many arguments, only accept one argument when `--prefix` or `--from-key` is set";

/// `get`'s request, after etcdctl's checks.
pub fn get_request(a: &GetArgs) -> CtlResult<RangeRequest> {
    if a.args.is_empty() {
        return Err(CtlError::BadArgs(format!("get command needs {RANGE_ARGS}")));
    }
    if a.prefix && a.from_key {
        return Err(CtlError::BadArgs(BOTH.into()));
    }
    let serializable = match a.consistency.as_str() {
        "s" => true,
        "l" => false,
        c => {
            return Err(CtlError::BadFeature(format!(
                "unknown consistency flag {}",
                crate::gofmt::quote(c.as_bytes())
            )))
        }
    };
    if a.args.len() > 1 && (a.prefix || a.from_key) {
        return Err(CtlError::BadArgs(TOO_MANY.into()));
    }
    let mut order = match a.order.to_uppercase().as_str() {
        "ASCEND" => SortOrder::Ascend,
        "DESCEND" => SortOrder::Descend,
        "" => SortOrder::None,
        _ => return Err(CtlError::BadFeature(format!("bad sort order {}", a.order))),
    };
    let target = match a.sort_by.to_uppercase().as_str() {
        "CREATE" => SortTarget::Create,
        "KEY" | "" => SortTarget::Key,
        "MODIFY" => SortTarget::Mod,
        "VALUE" => SortTarget::Value,
        "VERSION" => SortTarget::Version,
        _ => {
            return Err(CtlError::BadFeature(format!(
                "bad sort target {}",
                a.sort_by
            )))
        }
    };
    if target == SortTarget::Key && order == SortOrder::Ascend {
        order = SortOrder::None;
    }
    let (key, range_end) = key_range(
        &a.args[0],
        a.args.get(1).map(String::as_str),
        a.prefix,
        a.from_key,
    );
    Ok(RangeRequest {
        key,
        range_end,
        limit: a.limit,
        revision: a.rev.max(0),
        sort_order: order as i32,
        sort_target: target as i32,
        serializable,
        keys_only: a.keys_only,
        count_only: a.count_only,
        ..Default::default()
    })
}

/// All of stdin, if there is any (etcdctl's `argOrStdin`).
pub fn read_stdin() -> Option<String> {
    let mut s = String::new();
    match std::io::stdin().read_to_string(&mut s) {
        Ok(_) if !s.is_empty() => Some(s),
        _ => None,
    }
}

/// `put`'s request, after etcdctl's checks (`stdin` supplies a missing value).
pub fn put_request(a: &PutArgs, stdin: impl FnOnce() -> Option<String>) -> CtlResult<PutRequest> {
    const NEEDS: &str = "put command needs 1 argument and input from stdin or 2 arguments";
    let Some(key) = a.args.first() else {
        return Err(CtlError::BadArgs(NEEDS.into()));
    };
    if a.ignore_value && a.args.len() > 1 {
        return Err(CtlError::BadArgs(
            "put command needs only 1 argument when 'ignore-value' is set".into(),
        ));
    }
    let mut value = String::new();
    if !a.ignore_value {
        value = match a.args.get(1) {
            Some(v) => v.clone(),
            None => stdin().ok_or_else(|| CtlError::BadArgs(NEEDS.into()))?,
        };
    }
    let lease = parse_int(&a.lease, 16)
        .map_err(|e| CtlError::BadArgs(format!("bad lease ID ({e}), expecting ID in Hex")))?;
    Ok(PutRequest {
        key: Bytes::from(key.clone().into_bytes()),
        value: Bytes::from(value.into_bytes()),
        lease,
        prev_kv: a.prev_kv,
        ignore_value: a.ignore_value,
        ignore_lease: a.ignore_lease,
    })
}

/// `del`'s request, after etcdctl's checks.
pub fn del_request(a: &DelArgs) -> CtlResult<DeleteRangeRequest> {
    if a.args.is_empty() || a.args.len() > 2 {
        return Err(CtlError::BadArgs(format!("del command needs {RANGE_ARGS}")));
    }
    if a.prefix && a.from_key {
        return Err(CtlError::BadArgs(BOTH.into()));
    }
    if a.args.len() > 1 && (a.prefix || a.from_key) {
        return Err(CtlError::BadArgs(TOO_MANY.into()));
    }
    let (key, range_end) = key_range(
        &a.args[0],
        a.args.get(1).map(String::as_str),
        a.prefix,
        a.from_key,
    );
    Ok(DeleteRangeRequest {
        key,
        range_end,
        prev_kv: a.prev_kv,
    })
}

/// `etcdctl get`.
pub async fn get(ctx: &mut Ctx, a: GetArgs) -> CtlResult {
    let req = get_request(&a)?;
    let mut display = ctx.display()?;
    let resp = ctx
        .conn
        .call(rpc!(KvClient, range, req))
        .await
        .map_err(CtlError::Failed)?;
    if a.print_value_only {
        if display.format != super::display::Format::Simple {
            return Err(CtlError::BadArgs(
                "print-value-only is only for `--write-out=simple`".into(),
            ));
        }
        display.style.value_only = true;
    }
    display.get(&resp)
}

/// `etcdctl put`.
pub async fn put(ctx: &mut Ctx, a: PutArgs) -> CtlResult {
    let req = put_request(&a, read_stdin)?;
    let display = ctx.display()?;
    let resp = ctx
        .conn
        .call(rpc!(KvClient, put, req))
        .await
        .map_err(CtlError::Failed)?;
    display.put(&resp)
}

/// `etcdctl del`.
pub async fn del(ctx: &mut Ctx, a: DelArgs) -> CtlResult {
    let req = del_request(&a)?;
    let display = ctx.display()?;
    let resp = ctx
        .conn
        .call(rpc!(KvClient, delete_range, req))
        .await
        .map_err(CtlError::Failed)?;
    display.delete(&resp)
}

/// `etcdctl compaction`.
pub async fn compaction(ctx: &mut Ctx, a: CompactionArgs) -> CtlResult {
    if a.args.len() != 1 {
        return Err(CtlError::BadArgs(
            "compaction command needs 1 argument".into(),
        ));
    }
    let revision = parse_int(&a.args[0], 10).map_err(CtlError::Failed)?;
    ctx.display()?;
    let req = CompactionRequest {
        revision,
        physical: a.physical,
    };
    ctx.conn
        .call(rpc!(KvClient, compact, req))
        .await
        .map_err(CtlError::Failed)?;
    super::display::stdout(&format!("compacted revision {revision}\n"));
    Ok(())
}
