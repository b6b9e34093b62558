//! `etcdctl lock` and `etcdctl elect`, built on detcd's v3lock / v3election services with a
//! clientv3-style session (a lease kept alive in the background: `--ttl` 10s for lock, 60s
//! for elect). Output and exits follow etcdctl: the held key is printed (or `-- cmd` runs with
//! ETCD_LOCK_KEY / ETCD_LOCK_REV), SIGINT/SIGTERM releases and exits 0.

use super::cli::{ElectArgs, LockArgs};
use super::conn::Conn;
use super::error::{status_text, CtlError, CtlResult};
use super::Ctx;
use crate::io::signal::interrupted;
use crate::pb::etcdserverpb::kv_client::KvClient;
use crate::pb::etcdserverpb::lease_client::LeaseClient;
use crate::pb::etcdserverpb::{
    LeaseGrantRequest, LeaseKeepAliveRequest, RangeRequest, RangeResponse,
};
use crate::pb::v3electionpb::election_client::ElectionClient;
use crate::pb::v3electionpb::{CampaignRequest, LeaderRequest, ResignRequest};
use crate::pb::v3lockpb::lock_client::LockClient;
use crate::pb::v3lockpb::{LockRequest, UnlockRequest};
use std::time::Duration;
use tokio::sync::oneshot;

/// A lease kept alive in the background; `done` fires when it is lost.
struct Session {
    lease: i64,
    done: oneshot::Receiver<()>,
}

async fn keep_alive_loop(mut conn: Conn, lease: i64, ttl: i64, done: oneshot::Sender<()>) {
    let period = (Duration::from_secs(ttl.max(1) as u64) / 3).max(Duration::from_millis(500));
    loop {
        tokio::time::sleep(period).await;
        let Ok(ch) = conn.channel(None).await else {
            continue;
        };
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        if tx.send(LeaseKeepAliveRequest { id: lease }).await.is_err() {
            continue;
        }
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
        let Ok(resp) = LeaseClient::new(ch)
            .lease_keep_alive(super::conn::authorized(stream))
            .await
        else {
            conn.fail_over();
            continue;
        };
        match resp.into_inner().message().await {
            Ok(Some(r)) if r.ttl <= 0 => break,
            Ok(Some(_)) => {}
            _ => conn.fail_over(),
        }
    }
    let _ = done.send(());
}

async fn new_session(conn: &mut Conn, ttl: i64) -> CtlResult<Session> {
    let grant = conn
        .call_until(
            None,
            rpc!(LeaseClient, lease_grant, LeaseGrantRequest { ttl, id: 0 }),
        )
        .await
        .map_err(CtlError::Failed)?;
    let (tx, rx) = oneshot::channel();
    tokio::spawn(keep_alive_loop(conn.clone(), grant.id, grant.ttl, tx));
    Ok(Session {
        lease: grant.id,
        done: rx,
    })
}

/// Go's error text for a command that could not run or failed.
fn exec_error(cmd: &str, e: std::io::Error) -> String {
    if e.kind() != std::io::ErrorKind::NotFound {
        return e.to_string();
    }
    if cmd.contains('/') {
        format!("fork/exec {cmd}: no such file or directory")
    } else {
        format!("exec: \"{cmd}\": executable file not found in $PATH")
    }
}

async fn get_key(conn: &mut Conn, key: bytes::Bytes) -> CtlResult<RangeResponse> {
    let req = RangeRequest {
        key,
        ..Default::default()
    };
    conn.call_until(None, rpc!(KvClient, range, req))
        .await
        .map_err(CtlError::Failed)
}

/// `etcdctl lock <name> [-- cmd args]`.
pub async fn lock(ctx: &mut Ctx, a: LockArgs) -> CtlResult {
    let Some(name) = a.args.first().cloned() else {
        return Err(CtlError::BadArgs(
            "lock takes a lock name argument and an optional command to execute".into(),
        ));
    };
    let display = ctx.display()?;
    let mut session = new_session(&mut ctx.conn, a.ttl).await?;
    let lease = session.lease;
    let req = LockRequest {
        name: name.into_bytes().into(),
        lease,
    };
    let locked = tokio::select! {
        r = ctx.conn.call_until(None, rpc!(LockClient, lock, req)) => r,
        _ = interrupted() => return Err(CtlError::Failed("context canceled".into())),
    }
    .map_err(CtlError::Failed)?;
    let key = locked.key.clone();
    let unlock = |mut conn: Conn, key: bytes::Bytes| async move {
        conn.call_until(
            None,
            rpc!(LockClient, unlock, UnlockRequest { key: key.clone() }),
        )
        .await
        .map(|_| ())
        .map_err(CtlError::Failed)
    };
    if a.args.len() > 1 {
        let cmd = &a.args[1..];
        let status = std::process::Command::new(&cmd[0])
            .args(&cmd[1..])
            .env("ETCD_LOCK_KEY", String::from_utf8_lossy(&key).as_ref())
            .env(
                "ETCD_LOCK_REV",
                locked.header.unwrap_or_default().revision.to_string(),
            )
            .status();
        let unlocked = unlock(ctx.conn.clone(), key).await;
        return match status {
            Ok(s) if s.success() => unlocked,
            Ok(s) => Err(CtlError::Failed(format!(
                "exit status {}",
                s.code().unwrap_or(-1)
            ))),
            Err(e) => Err(CtlError::Failed(exec_error(&cmd[0], e))),
        };
    }
    let resp = get_key(&mut ctx.conn, key.clone()).await?;
    if resp.kvs.is_empty() {
        return Err(CtlError::Failed("lock lost on init".into()));
    }
    display.get(&resp)?;
    tokio::select! {
        _ = interrupted() => unlock(ctx.conn.clone(), key).await,
        _ = &mut session.done => Err(CtlError::Failed("session expired".into())),
    }
}

/// `etcdctl elect <name> [proposal]` and `elect -l <name>`.
pub async fn elect(ctx: &mut Ctx, a: ElectArgs) -> CtlResult {
    if a.args.is_empty() || a.args.len() > 2 {
        return Err(CtlError::BadArgs(
            "elect takes one election name argument and an optional proposal argument".into(),
        ));
    }
    let display = ctx.display()?;
    let name: bytes::Bytes = a.args[0].clone().into_bytes().into();
    if a.args.len() == 1 {
        if !a.listen {
            return Err(CtlError::BadArgs(
                "no proposal argument but -l not set".into(),
            ));
        }
        let _session = new_session(&mut ctx.conn, 60).await?;
        return tokio::select! {
            r = observe(&mut ctx.conn, &display, name) => r,
            _ = interrupted() => Ok(()),
        };
    }
    let mut session = new_session(&mut ctx.conn, 60).await?;
    let req = CampaignRequest {
        name,
        lease: session.lease,
        value: a.args[1].clone().into_bytes().into(),
    };
    let won = tokio::select! {
        r = ctx.conn.call_until(None, rpc!(ElectionClient, campaign, req)) => r,
        _ = interrupted() => return Err(CtlError::Failed("context canceled".into())),
    }
    .map_err(CtlError::Failed)?;
    let leader = won.leader.unwrap_or_default();
    display.get(&get_key(&mut ctx.conn, leader.key.clone()).await?)?;
    tokio::select! {
        _ = interrupted() => {}
        _ = &mut session.done => return Err(CtlError::Failed("elect: session expired".into())),
    }
    let req = ResignRequest {
        leader: Some(leader),
    };
    ctx.conn
        .call_until(None, rpc!(ElectionClient, resign, req))
        .await
        .map(|_| ())
        .map_err(CtlError::Failed)
}

/// Prints every leader the election reports, until the stream ends.
async fn observe(
    conn: &mut Conn,
    display: &super::display::Display,
    name: bytes::Bytes,
) -> CtlResult {
    let ch = conn.channel(None).await.map_err(CtlError::Failed)?;
    let mut stream = ElectionClient::new(ch)
        .observe(super::conn::authorized(LeaderRequest { name }))
        .await
        .map_err(|s| CtlError::Failed(status_text(&s)))?
        .into_inner();
    while let Ok(Some(r)) = stream.message().await {
        let resp = RangeResponse {
            header: r.header,
            kvs: r.kv.into_iter().collect(),
            more: false,
            count: 1,
        };
        display.get(&resp)?;
    }
    Err(CtlError::Failed("elect: observer lost".into()))
}
