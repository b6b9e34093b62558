//! `etcdctl watch [key [range_end]] [--prefix] [--rev] [--prev-kv] [-- cmd args]`: one
//! watch stream printed until interrupted (re-established from the next revision if the
//! connection drops); a server cancel prints `watch was canceled (...)` and exits 5 with
//! `watch is canceled by the server`, like clientv3's closed channel. `-i` is not supported.

use super::cli::WatchArgs;
use super::display::Display;
use super::error::{CtlError, CtlResult};
use super::simple::event_type;
use super::Ctx;
use crate::gofmt::quote;
use crate::pb::etcdserverpb::watch_client::WatchClient;
use crate::pb::etcdserverpb::{watch_request, WatchCreateRequest, WatchRequest, WatchResponse};
use std::time::Duration;

/// The error clientv3's `WatchResponse.Err()` reports for a canceled watch.
fn cancel_text(r: &WatchResponse) -> String {
    if r.compact_revision != 0 {
        "etcdserver: mvcc: required revision has been compacted".into()
    } else if r.cancel_reason.starts_with("etcdserver: ") {
        r.cancel_reason.clone()
    } else if !r.cancel_reason.is_empty() {
        format!(
            "rpc error: code = FailedPrecondition desc = {}",
            r.cancel_reason
        )
    } else {
        "etcdserver: mvcc: required revision is a future revision".into()
    }
}

/// Runs `-- cmd args` once per event, with etcdctl's `ETCD_WATCH_*` variables.
fn exec_for_events(cmd: &[String], r: &WatchResponse) -> CtlResult {
    for e in &r.events {
        let kv = e.kv.clone().unwrap_or_default();
        let status = std::process::Command::new(&cmd[0])
            .args(&cmd[1..])
            .env(
                "ETCD_WATCH_REVISION",
                r.header.unwrap_or_default().revision.to_string(),
            )
            .env(
                "ETCD_WATCH_EVENT_TYPE",
                quote(event_type(e.r#type).as_bytes()),
            )
            .env("ETCD_WATCH_KEY", quote(&kv.key))
            .env("ETCD_WATCH_VALUE", quote(&kv.value))
            .status();
        let failure = match status {
            Ok(s) if s.success() => continue,
            Ok(s) => format!("exit status {}", s.code().unwrap_or(-1)),
            Err(e) => e.to_string(),
        };
        let quoted: Vec<String> = cmd.iter().map(|c| quote(c.as_bytes())).collect();
        eprintln!("command [{}] error ({failure})", quoted.join(" "));
        return Err(CtlError::Quiet(1));
    }
    Ok(())
}

/// Splits positional arguments from the `-- cmd args` part (found in the raw argv).
fn split_exec(args: &[String]) -> (Vec<String>, Vec<String>) {
    let argv: Vec<String> = std::env::args().collect();
    let exec = match argv.iter().position(|a| a == "--") {
        Some(i) => argv[i + 1..].to_vec(),
        None => Vec::new(),
    };
    let keep = args.len().saturating_sub(exec.len());
    (args[..keep].to_vec(), exec)
}

/// `etcdctl watch`.
pub async fn run(ctx: &mut Ctx, a: WatchArgs) -> CtlResult {
    let env_key = std::env::var("ETCDCTL_WATCH_KEY").unwrap_or_default();
    let env_range = std::env::var("ETCDCTL_WATCH_RANGE_END").unwrap_or_default();
    if env_key.is_empty() && !env_range.is_empty() {
        return Err(CtlError::BadArgs(format!(
            "ETCDCTL_WATCH_KEY is empty but got ETCDCTL_WATCH_RANGE_END={}",
            quote(env_range.as_bytes())
        )));
    }
    if a.interactive {
        return Err(CtlError::BadFeature(
            "interactive watch is not supported by detcdctl".into(),
        ));
    }
    let (mut args, exec) = split_exec(&a.args);
    if args.is_empty() && !env_key.is_empty() {
        args.push(env_key);
        if !env_range.is_empty() {
            args.push(env_range);
        }
    }
    let display = ctx.display()?;
    if args.is_empty() {
        return Err(CtlError::BadArgs("bad number of arguments".into()));
    }
    let mut key = args[0].clone().into_bytes();
    let mut range_end = Vec::new();
    if args.len() == 2 {
        if a.prefix {
            return Err(CtlError::BadArgs(
                "`range_end` and `--prefix` are mutually exclusive".into(),
            ));
        }
        range_end = args[1].clone().into_bytes();
    }
    if a.prefix {
        if key.is_empty() {
            key = vec![0];
            range_end = vec![0];
        } else {
            range_end = super::kv::prefix_end(&key);
        }
    }
    let mut create = WatchCreateRequest {
        key: key.into(),
        range_end: range_end.into(),
        start_revision: a.rev,
        progress_notify: a.progress_notify,
        prev_kv: a.prev_kv,
        ..Default::default()
    };
    loop {
        match watch_stream(ctx, &display, &create, &exec, a.progress_notify).await? {
            Some(next_rev) => {
                if next_rev > 0 {
                    create.start_revision = next_rev;
                }
                ctx.conn.fail_over();
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            None => {
                return Err(CtlError::Interrupted(
                    "watch is canceled by the server".into(),
                ))
            }
        }
    }
}

/// Runs one watch stream. `Ok(Some(rev))`: the stream broke, resume at `rev`;
/// `Ok(None)`: the server canceled the watch.
async fn watch_stream(
    ctx: &mut Ctx,
    display: &Display,
    create: &WatchCreateRequest,
    exec: &[String],
    progress: bool,
) -> CtlResult<Option<i64>> {
    let Ok(ch) = ctx.conn.channel(None).await else {
        return Ok(Some(0));
    };
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let req = WatchRequest {
        request_union: Some(watch_request::RequestUnion::CreateRequest(create.clone())),
    };
    if tx.send(req).await.is_err() {
        return Ok(Some(0));
    }
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    let mut resp = match WatchClient::new(ch)
        .watch(super::conn::authorized(stream))
        .await
    {
        Ok(r) => r.into_inner(),
        Err(_) => return Ok(Some(0)),
    };
    let mut next_rev = 0;
    loop {
        let r = match resp.message().await {
            Ok(Some(r)) => r,
            _ => return Ok(Some(next_rev)),
        };
        if r.created && !r.canceled && r.events.is_empty() {
            continue;
        }
        if r.canceled {
            eprintln!("watch was canceled ({})", cancel_text(&r));
        }
        let quiet = r.events.is_empty() && !r.canceled;
        if progress && quiet {
            super::display::stdout(&format!(
                "progress notify: {}\n",
                r.header.unwrap_or_default().revision
            ));
        }
        display.watch(&r)?;
        if !exec.is_empty() {
            exec_for_events(exec, &r)?;
        }
        if r.canceled {
            drop(tx);
            return Ok(None);
        }
        if let Some(last) = r.events.last().and_then(|e| e.kv.as_ref()) {
            next_rev = last.mod_revision + 1;
        }
    }
}
