//! `etcdctl lease grant|revoke|timetolive|list|keep-alive`: argument checks and error
//! wrapping as etcdctl does them, and keep-alive's renewal loop (first renewal at once, then
//! every TTL/3, ending with `lease … expired or revoked.` when the server reports TTL ≤ 0).

use super::error::{CtlError, CtlResult};
use super::Ctx;
use crate::gofmt::parse_int;
use crate::pb::etcdserverpb::lease_client::LeaseClient;
use crate::pb::etcdserverpb::{
    LeaseGrantRequest, LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseLeasesRequest,
    LeaseRevokeRequest, LeaseTimeToLiveRequest,
};
use std::time::Duration;

/// etcdctl's `leaseFromArgs`: a hex lease ID.
pub fn lease_from_arg(arg: &str) -> CtlResult<i64> {
    parse_int(arg, 16)
        .map_err(|e| CtlError::BadArgs(format!("bad lease ID arg ({e}), expecting ID in Hex")))
}

fn one_arg(args: &[String], msg: &str) -> CtlResult<String> {
    match args {
        [a] => Ok(a.clone()),
        _ => Err(CtlError::BadArgs(msg.into())),
    }
}

/// `lease grant <ttl>`.
pub async fn grant(ctx: &mut Ctx, args: Vec<String>) -> CtlResult {
    let arg = one_arg(&args, "lease grant command needs TTL argument")?;
    let ttl = parse_int(&arg, 10).map_err(|e| CtlError::BadArgs(format!("bad TTL ({e})")))?;
    let display = ctx.display()?;
    let resp = ctx
        .conn
        .call(rpc!(
            LeaseClient,
            lease_grant,
            LeaseGrantRequest { ttl, id: 0 }
        ))
        .await
        .map_err(|e| CtlError::Failed(format!("failed to grant lease ({e})")))?;
    display.grant(&resp)
}

/// `lease revoke <id>`.
pub async fn revoke(ctx: &mut Ctx, args: Vec<String>) -> CtlResult {
    let id = lease_from_arg(&one_arg(&args, "lease revoke command needs 1 argument")?)?;
    let display = ctx.display()?;
    let resp = ctx
        .conn
        .call(rpc!(LeaseClient, lease_revoke, LeaseRevokeRequest { id }))
        .await
        .map_err(|e| CtlError::Failed(format!("failed to revoke lease ({e})")))?;
    display.revoke(id, &resp)
}

/// `lease timetolive <id> [--keys]`.
pub async fn time_to_live(ctx: &mut Ctx, args: Vec<String>, keys: bool) -> CtlResult {
    let id = lease_from_arg(&one_arg(
        &args,
        "lease timetolive command needs lease ID as argument",
    )?)?;
    let display = ctx.display()?;
    let req = LeaseTimeToLiveRequest { id, keys };
    let resp = ctx
        .conn
        .call_until(None, rpc!(LeaseClient, lease_time_to_live, req))
        .await
        .map_err(|e| CtlError::Failed(format!("failed to get TTL of lease ({e})")))?;
    display.time_to_live(&resp, keys)
}

/// `lease list`.
pub async fn list(ctx: &mut Ctx) -> CtlResult {
    let display = ctx.display()?;
    let resp = ctx
        .conn
        .call_until(None, rpc!(LeaseClient, lease_leases, LeaseLeasesRequest {}))
        .await
        .map_err(|e| CtlError::Failed(format!("failed to list leases ({e})")))?;
    display.leases(&resp)
}

/// One keep-alive round trip on a fresh stream (None: the stream failed).
async fn renew_once(ctx: &mut Ctx, id: i64) -> Result<LeaseKeepAliveResponse, String> {
    let ch = ctx.conn.channel(None).await?;
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(LeaseKeepAliveRequest { id })
        .await
        .map_err(|e| e.to_string())?;
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    let mut resp = LeaseClient::new(ch)
        .lease_keep_alive(super::conn::authorized(stream))
        .await
        .map_err(|s| super::error::status_text(&s))?
        .into_inner();
    match resp.message().await {
        Ok(Some(r)) => Ok(r),
        Ok(None) => Err("keep-alive stream closed".into()),
        Err(s) => Err(super::error::status_text(&s)),
    }
}

/// `lease keep-alive <id> [--once]`.
pub async fn keep_alive(ctx: &mut Ctx, args: Vec<String>, once: bool) -> CtlResult {
    let id = lease_from_arg(&one_arg(
        &args,
        "lease keep-alive command needs lease ID as argument",
    )?)?;
    let display = ctx.display()?;
    if once {
        let resp = renew_once(ctx, id).await.map_err(CtlError::BadConnection)?;
        if resp.ttl <= 0 {
            return Err(CtlError::BadConnection(
                "etcdserver: requested lease not found".into(),
            ));
        }
        return display.keep_alive(&resp);
    }
    loop {
        let resp = match renew_once(ctx, id).await {
            Ok(r) => r,
            Err(_) => {
                ctx.conn.fail_over();
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        if resp.ttl <= 0 {
            break;
        }
        display.keep_alive(&resp)?;
        let pause = Duration::from_secs(resp.ttl as u64) / 3;
        tokio::time::sleep(pause.max(Duration::from_millis(500))).await;
    }
    if display.format == super::display::Format::Simple {
        super::display::stdout(&format!("lease {id:016x} expired or revoked.\n"));
    }
    Ok(())
}
