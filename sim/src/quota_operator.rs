//! The operator of a quota run: what an etcd user does when NOSPACE is raised. Every second it
//! asks one member for the alarm list; when an alarm is up it compacts the history at the
//! current revision (a recorded `Compact`, so the compaction checks see it), defragments that
//! member and disarms every alarm, counting the alarms it lowered in `disarmed`. Every call has a
//! deadline (a member may die under it). It stops issuing requests once `stop` is set (before
//! the history is checked).

use crate::cluster::member_channel;
use crate::history::Request;
use crate::workload::Client;
use detcd::pb::etcdserverpb::kv_client::KvClient;
use detcd::pb::etcdserverpb::maintenance_client::MaintenanceClient;
use detcd::pb::etcdserverpb::{
    alarm_request::AlarmAction, AlarmMember, AlarmRequest, DefragmentRequest, RangeRequest,
};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long the operator waits for one call.
const CALL_DEADLINE: Duration = Duration::from_secs(3);

/// The response of `call`, or `None` if it failed or missed its deadline.
async fn within<T>(
    call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Option<T> {
    match tokio::time::timeout(CALL_DEADLINE, call).await {
        Ok(Ok(response)) => Some(response.into_inner()),
        _ => None,
    }
}

/// Keeps the cluster writable: compact, defragment and disarm whenever an alarm is raised.
pub async fn operate(
    mut client: Client,
    members: usize,
    stop: Arc<AtomicBool>,
    disarmed: Arc<AtomicUsize>,
) {
    let mut round = 0usize;
    while !stop.load(Ordering::Acquire) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        round += 1;
        let member = round % members;
        let mut maintenance = MaintenanceClient::new(member_channel(member));
        let Some(listed) = within(maintenance.alarm(AlarmRequest::default())).await else {
            continue;
        };
        if listed.alarms.is_empty() {
            continue;
        }
        let probe = RangeRequest {
            key: b"\0".to_vec().into(),
            serializable: true,
            ..Default::default()
        };
        let mut kv = KvClient::new(member_channel(member));
        let Some(read) = within(kv.range(probe)).await else {
            continue;
        };
        let revision = read.header.map_or(0, |h| h.revision);
        if stop.load(Ordering::Acquire) {
            return;
        }
        client.invoke(member, Request::Compact { revision }).await;
        // What the runbook says next; it must change nothing a client can see.
        within(maintenance.defragment(DefragmentRequest {})).await;
        for AlarmMember { member_id, alarm } in listed.alarms {
            let lower = AlarmRequest {
                action: AlarmAction::Deactivate as i32,
                member_id,
                alarm,
            };
            if let Some(lowered) = within(maintenance.alarm(lower)).await {
                disarmed.fetch_add(lowered.alarms.len(), Ordering::Relaxed);
            }
        }
    }
}
