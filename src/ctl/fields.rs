//! `-w fields`: etcdctl's `"Name" : value` lines for every response type (headers,
//! key/values with an optional `Prev` prefix, lease, member and endpoint records).

use super::simple::event_type;
use crate::gofmt::{quote, string_list};
use crate::pb::etcdserverpb::{
    response_op, AlarmResponse, DeleteRangeResponse, HashKvResponse, LeaseGrantResponse,
    LeaseKeepAliveResponse, LeaseLeasesResponse, LeaseTimeToLiveResponse, MemberListResponse,
    PutResponse, RangeResponse, ResponseHeader, StatusResponse, TxnResponse, WatchResponse,
};
use crate::pb::mvccpb::KeyValue;

fn line(out: &mut String, name: &str, value: impl std::fmt::Display) {
    out.push_str(&format!("\"{name}\" : {value}\n"));
}

/// A response header.
pub fn header(out: &mut String, h: Option<&ResponseHeader>) {
    let d = ResponseHeader::default();
    let h = h.unwrap_or(&d);
    line(out, "ClusterID", h.cluster_id);
    line(out, "MemberID", h.member_id);
    line(out, "Revision", h.revision);
    line(out, "RaftTerm", h.raft_term);
}

fn kv(out: &mut String, pfx: &str, kv: &KeyValue) {
    line(out, &format!("{pfx}Key"), quote(&kv.key));
    line(out, &format!("{pfx}CreateRevision"), kv.create_revision);
    line(out, &format!("{pfx}ModRevision"), kv.mod_revision);
    line(out, &format!("{pfx}Version"), kv.version);
    line(out, &format!("{pfx}Value"), quote(&kv.value));
    line(out, &format!("{pfx}Lease"), kv.lease);
}

/// `alarm list` / `alarm disarm` (the header only when the server sent one: etcd sends none).
pub fn alarms(out: &mut String, r: &AlarmResponse) {
    if r.header.is_some() {
        header(out, r.header.as_ref());
    }
    for a in &r.alarms {
        line(out, "MemberID", a.member_id);
        line(
            out,
            "AlarmType",
            crate::pb::etcdserverpb::alarm_type_name(a.alarm),
        );
    }
}

/// `get`.
pub fn range(out: &mut String, r: &RangeResponse) {
    header(out, r.header.as_ref());
    for k in &r.kvs {
        kv(out, "", k);
    }
    line(out, "More", r.more);
    line(out, "Count", r.count);
}

/// `put`.
pub fn put(out: &mut String, r: &PutResponse) {
    header(out, r.header.as_ref());
    if let Some(p) = &r.prev_kv {
        kv(out, "Prev", p);
    }
}

/// `del`.
pub fn delete(out: &mut String, r: &DeleteRangeResponse) {
    header(out, r.header.as_ref());
    line(out, "Deleted", r.deleted);
    for k in &r.prev_kvs {
        kv(out, "Prev", k);
    }
}

/// `txn`.
pub fn txn(out: &mut String, r: &TxnResponse) {
    header(out, r.header.as_ref());
    line(out, "Succeeded", r.succeeded);
    for op in &r.responses {
        match &op.response {
            Some(response_op::Response::ResponseRange(x)) => range(out, x),
            Some(response_op::Response::ResponsePut(x)) => put(out, x),
            Some(response_op::Response::ResponseDeleteRange(x)) => delete(out, x),
            other => line(out, "Unknown", quote(format!("{other:?}").as_bytes())),
        }
    }
}

/// One watch response.
pub fn watch(out: &mut String, r: &WatchResponse) {
    header(out, r.header.as_ref());
    for e in &r.events {
        line(out, "Type", event_type(e.r#type));
        if let Some(p) = &e.prev_kv {
            kv(out, "Prev", p);
        }
        kv(out, "", e.kv.as_ref().unwrap_or(&KeyValue::default()));
    }
}

/// `lease grant`.
pub fn grant(out: &mut String, r: &LeaseGrantResponse) {
    header(out, r.header.as_ref());
    line(out, "ID", r.id);
    line(out, "TTL", r.ttl);
}

/// `lease keep-alive`.
pub fn keep_alive(out: &mut String, r: &LeaseKeepAliveResponse) {
    header(out, r.header.as_ref());
    line(out, "ID", r.id);
    line(out, "TTL", r.ttl);
}

/// `lease timetolive`.
pub fn time_to_live(out: &mut String, r: &LeaseTimeToLiveResponse) {
    header(out, r.header.as_ref());
    line(out, "ID", r.id);
    line(out, "TTL", r.ttl);
    line(out, "GrantedTTL", r.granted_ttl);
    for k in &r.keys {
        line(out, "Key", quote(k));
    }
}

/// `lease list`.
pub fn leases(out: &mut String, r: &LeaseLeasesResponse) {
    header(out, r.header.as_ref());
    for l in &r.leases {
        line(out, "ID", l.id);
    }
}

/// `member list`.
pub fn members(out: &mut String, r: &MemberListResponse) {
    header(out, r.header.as_ref());
    for m in &r.members {
        line(out, "ID", m.id);
        line(out, "Name", quote(m.name.as_bytes()));
        for u in &m.peer_ur_ls {
            line(out, "PeerURL", quote(u.as_bytes()));
        }
        for u in &m.client_ur_ls {
            line(out, "ClientURL", quote(u.as_bytes()));
        }
        line(out, "IsLearner", m.is_learner);
        out.push('\n');
    }
}

/// `endpoint status`, one endpoint.
pub fn status(out: &mut String, ep: &str, r: &StatusResponse) {
    header(out, r.header.as_ref());
    line(out, "Version", quote(r.version.as_bytes()));
    line(out, "DBSize", r.db_size);
    line(out, "Leader", r.leader);
    line(out, "IsLearner", r.is_learner);
    line(out, "RaftIndex", r.raft_index);
    line(out, "RaftTerm", r.raft_term);
    line(out, "RaftAppliedIndex", r.raft_applied_index);
    line(out, "Errors", string_list(&r.errors));
    line(out, "Endpoint", quote(ep.as_bytes()));
    out.push('\n');
}

/// `endpoint hashkv`, one endpoint.
pub fn hash_kv(out: &mut String, ep: &str, r: &HashKvResponse) {
    header(out, r.header.as_ref());
    line(out, "Endpoint", quote(ep.as_bytes()));
    line(out, "Hash", r.hash);
    out.push('\n');
}

/// `endpoint health`, one endpoint.
pub fn health(out: &mut String, ep: &str, healthy: bool, took: &str, error: &str) {
    line(out, "Endpoint", quote(ep.as_bytes()));
    line(out, "Health", healthy);
    line(out, "Took", took);
    line(out, "Error", error);
    out.push('\n');
}
