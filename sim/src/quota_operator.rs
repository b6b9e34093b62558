//! The operator of a quota run: what an etcd user does when NOSPACE is raised. Every second it
//! asks one member for the alarm list; when an alarm is up it compacts the history at the
//! current revision (a recorded `Compact`, so the compaction checks see it) and disarms every
//! alarm, counting the alarms it lowered in `disarmed`. It stops issuing requests once `stop` is
//! set (before the history is checked).

use crate::cluster::member_channel;
use crate::history::Request;
use crate::workload::Client;
use detcd::pb::etcdserverpb::kv_client::KvClient;
use detcd::pb::etcdserverpb::maintenance_client::MaintenanceClient;
use detcd::pb::etcdserverpb::{alarm_request::AlarmAction, AlarmRequest, RangeRequest};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Keeps the cluster writable: compact and disarm whenever an alarm is raised.
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
        let Ok(listed) = maintenance.alarm(AlarmRequest::default()).await else {
            continue;
        };
        let alarms = listed.into_inner().alarms;
        if alarms.is_empty() {
            continue;
        }
        let probe = RangeRequest {
            key: b"\0".to_vec().into(),
            serializable: true,
            ..Default::default()
        };
        let Ok(read) = KvClient::new(member_channel(member)).range(probe).await else {
            continue;
        };
        let revision = read.into_inner().header.map_or(0, |h| h.revision);
        if stop.load(Ordering::Acquire) {
            return;
        }
        client.invoke(member, Request::Compact { revision }).await;
        for alarm in alarms {
            let lower = AlarmRequest {
                action: AlarmAction::Deactivate as i32,
                member_id: alarm.member_id,
                alarm: alarm.alarm,
            };
            if let Ok(lowered) = maintenance.alarm(lower).await {
                disarmed.fetch_add(lowered.into_inner().alarms.len(), Ordering::Relaxed);
            }
        }
    }
}
