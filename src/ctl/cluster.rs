//! Cluster-level commands: `endpoint status` and `endpoint hashkv` (each endpoint
//! asked in turn, failures reported as `Failed to get the status of endpoint …` and exit 1) and
//! `endpoint health` (endpoints checked concurrently with a linearizable read plus the alarm
//! list, reported in completion order; any unhealthy endpoint → `unhealthy cluster`).

use super::error::{CtlError, CtlResult};
use super::json::{self, Obj};
use super::{fields, Ctx};
use crate::gofmt::{duration_string, human_bytes};
use crate::pb::etcdserverpb::kv_client::KvClient;
use crate::pb::etcdserverpb::maintenance_client::MaintenanceClient;
use crate::pb::etcdserverpb::{
    alarm_type_name, AlarmRequest, HashKvRequest, HashKvResponse, RangeRequest, StatusRequest,
    StatusResponse,
};
use futures::StreamExt;
use tokio::time::Instant;

fn status_json(ep: &str, r: &StatusResponse) -> String {
    let errors = r.errors.iter().map(|e| json::string(e)).collect();
    let status = Obj::new()
        .header(r.header.as_ref())
        .str_omit("version", &r.version)
        .num_omit("dbSize", r.db_size)
        .num_omit("leader", r.leader)
        .num_omit("raftIndex", r.raft_index)
        .num_omit("raftTerm", r.raft_term)
        .num_omit("raftAppliedIndex", r.raft_applied_index)
        .list_omit("errors", errors)
        .num_omit("dbSizeInUse", r.db_size_in_use)
        .num_omit("isLearner", r.is_learner)
        .end();
    Obj::new().str("Endpoint", ep).raw("Status", &status).end()
}

/// `endpoint status`.
pub async fn endpoint_status(ctx: &mut Ctx) -> CtlResult {
    let display = ctx.display()?;
    let mut ok: Vec<(String, StatusResponse)> = Vec::new();
    let mut failed = false;
    for ep in ctx.conn.endpoints().to_vec() {
        let mut conn = ctx.conn.single(&ep);
        match conn
            .call(rpc!(MaintenanceClient, status, StatusRequest {}))
            .await
        {
            Ok(r) => ok.push((ep, r)),
            Err(e) => {
                eprintln!("Failed to get the status of endpoint {ep} ({e})");
                failed = true;
            }
        }
    }
    let rows: Vec<Vec<String>> = ok
        .iter()
        .map(|(ep, r)| {
            let member = r.header.unwrap_or_default().member_id;
            vec![
                ep.clone(),
                format!("{member:x}"),
                r.version.clone(),
                human_bytes(r.db_size.max(0) as u64),
                (r.leader == member).to_string(),
                r.is_learner.to_string(),
                r.raft_term.to_string(),
                r.raft_index.to_string(),
                r.raft_applied_index.to_string(),
                r.errors.join(", "),
            ]
        })
        .collect();
    display.records(
        &[
            "endpoint",
            "ID",
            "version",
            "db size",
            "is leader",
            "is learner",
            "raft term",
            "raft index",
            "raft applied index",
            "errors",
        ],
        &rows,
        || json::array(ok.iter().map(|(ep, r)| status_json(ep, r)).collect()),
        |o| ok.iter().for_each(|(ep, r)| fields::status(o, ep, r)),
    )?;
    if failed {
        return Err(CtlError::Quiet(1));
    }
    Ok(())
}

/// `endpoint hashkv [--rev N]`: each endpoint's HashKV, asked in turn; a failure is reported
/// as `Failed to get the hash of endpoint …`, then etcdctl's `Error:` line and exit 1.
pub async fn endpoint_hashkv(ctx: &mut Ctx, revision: i64) -> CtlResult {
    let display = ctx.display()?;
    let mut ok: Vec<(String, HashKvResponse)> = Vec::new();
    let mut failure = None;
    let request = HashKvRequest { revision };
    for ep in ctx.conn.endpoints().to_vec() {
        let mut conn = ctx.conn.single(&ep);
        match conn.call(rpc!(MaintenanceClient, hash_kv, request)).await {
            Ok(r) => ok.push((ep, r)),
            Err(e) => {
                eprintln!("Failed to get the hash of endpoint {ep} ({e})");
                failure = Some(e);
            }
        }
    }
    let rows: Vec<Vec<String>> = ok
        .iter()
        .map(|(ep, r)| vec![ep.clone(), r.hash.to_string()])
        .collect();
    let to_json = || {
        let items = ok.iter().map(|(ep, r)| {
            let hash = Obj::new()
                .header(r.header.as_ref())
                .num_omit("hash", r.hash)
                .num_omit("compact_revision", r.compact_revision)
                .end();
            Obj::new().str("Endpoint", ep).raw("HashKV", &hash).end()
        });
        json::array(items.collect())
    };
    display.records(&["endpoint", "hash"], &rows, to_json, |o| {
        ok.iter().for_each(|(ep, r)| fields::hash_kv(o, ep, r))
    })?;
    match failure {
        Some(e) => Err(CtlError::Failed(e)),
        None => Ok(()),
    }
}

/// One endpoint's health.
struct Health {
    ep: String,
    healthy: bool,
    took: String,
    error: String,
}

async fn check(mut conn: super::conn::Conn, ep: String) -> Health {
    let start = Instant::now();
    let read = conn
        .call(rpc!(
            KvClient,
            range,
            RangeRequest {
                key: "health".into(),
                ..Default::default()
            }
        ))
        .await;
    let took = duration_string(start.elapsed());
    let mut h = Health {
        ep,
        healthy: false,
        took,
        error: String::new(),
    };
    match read {
        Ok(_) => h.healthy = true,
        Err(e) if e == "etcdserver: permission denied" => h.healthy = true,
        Err(e) => h.error = e,
    }
    if h.healthy {
        let alarms = conn
            .call(rpc!(MaintenanceClient, alarm, AlarmRequest::default()))
            .await;
        match alarms {
            Ok(a) if !a.alarms.is_empty() => {
                h.healthy = false;
                let names: Vec<String> =
                    a.alarms.iter().map(|x| alarm_type_name(x.alarm)).collect();
                h.error = format!("Active Alarm(s): {}", names.join(" "));
            }
            Ok(_) => {}
            Err(_) => {
                h.healthy = false;
                h.error = "Unable to fetch the alarm list".into();
            }
        }
    }
    h
}

/// `endpoint health`.
pub async fn endpoint_health(ctx: &mut Ctx) -> CtlResult {
    let display = ctx.display()?;
    let mut pending: futures::stream::FuturesUnordered<_> = ctx
        .conn
        .endpoints()
        .iter()
        .map(|ep| check(ctx.conn.single(ep), ep.clone()))
        .collect();
    let mut all = Vec::new();
    while let Some(h) = pending.next().await {
        all.push(h);
    }
    if display.format == super::display::Format::Simple {
        for h in &all {
            if h.healthy {
                eprintln!(
                    "{} is healthy: successfully committed proposal: took = {}",
                    h.ep, h.took
                );
            } else {
                eprintln!(
                    "{} is unhealthy: failed to commit proposal: {}",
                    h.ep, h.error
                );
            }
        }
    } else {
        let rows: Vec<Vec<String>> = all
            .iter()
            .map(|h| {
                vec![
                    h.ep.clone(),
                    h.healthy.to_string(),
                    h.took.clone(),
                    h.error.clone(),
                ]
            })
            .collect();
        let to_json = || {
            let items = all
                .iter()
                .map(|h| {
                    Obj::new()
                        .str("endpoint", &h.ep)
                        .num("health", h.healthy)
                        .str("took", &h.took)
                        .str_omit("error", &h.error)
                        .end()
                })
                .collect();
            json::array(items)
        };
        display.records(
            &["endpoint", "health", "took", "error"],
            &rows,
            to_json,
            |o| {
                all.iter()
                    .for_each(|h| fields::health(o, &h.ep, h.healthy, &h.took, &h.error))
            },
        )?;
    }
    if all.iter().any(|h| !h.healthy) {
        return Err(CtlError::Failed("unhealthy cluster".into()));
    }
    Ok(())
}
