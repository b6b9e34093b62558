//! `-w simple` (the default): etcdctl's line-oriented output for every response type —
//! `key\nvalue` pairs (optionally `--hex` or value-only), `OK`, deletion counts,
//! `SUCCESS`/`FAILURE` blocks, watch events, lease sentences and comma-joined table rows.

use crate::gofmt::{hex_escape, string_list};
use crate::pb::etcdserverpb::{
    response_op, AlarmResponse, DeleteRangeResponse, LeaseGrantResponse, LeaseKeepAliveResponse,
    LeaseLeasesResponse, LeaseTimeToLiveResponse, PutResponse, RangeResponse, TxnResponse,
    WatchResponse,
};
use crate::pb::mvccpb::KeyValue;

/// How key/value pairs are written.
#[derive(Clone, Copy, Debug, Default)]
pub struct KvStyle {
    /// `--hex`: bytes as `\xNN`.
    pub hex: bool,
    /// `--print-value-only`.
    pub value_only: bool,
}

fn text(b: &[u8], hex: bool) -> String {
    if hex {
        hex_escape(b)
    } else {
        String::from_utf8_lossy(b).into_owned()
    }
}

/// One key/value pair.
pub fn kv(out: &mut String, st: KvStyle, kv: &KeyValue) {
    if !st.value_only {
        out.push_str(&text(&kv.key, st.hex));
        out.push('\n');
    }
    out.push_str(&text(&kv.value, st.hex));
    out.push('\n');
}

/// `get`.
pub fn range(out: &mut String, st: KvStyle, r: &RangeResponse) {
    for k in &r.kvs {
        kv(out, st, k);
    }
}

/// `put`.
pub fn put(out: &mut String, st: KvStyle, r: &PutResponse) {
    out.push_str("OK\n");
    if let Some(p) = &r.prev_kv {
        kv(out, st, p);
    }
}

/// `del`.
pub fn delete(out: &mut String, st: KvStyle, r: &DeleteRangeResponse) {
    out.push_str(&format!("{}\n", r.deleted));
    for k in &r.prev_kvs {
        kv(out, st, k);
    }
}

/// `txn`.
pub fn txn(out: &mut String, st: KvStyle, r: &TxnResponse) {
    out.push_str(if r.succeeded {
        "SUCCESS\n"
    } else {
        "FAILURE\n"
    });
    for op in &r.responses {
        out.push('\n');
        match &op.response {
            Some(response_op::Response::ResponseRange(x)) => range(out, st, x),
            Some(response_op::Response::ResponsePut(x)) => put(out, st, x),
            Some(response_op::Response::ResponseDeleteRange(x)) => delete(out, st, x),
            other => out.push_str(&format!("unexpected response {other:?}\n")),
        }
    }
}

/// Go's name of an mvccpb event type.
pub fn event_type(t: i32) -> String {
    match t {
        0 => "PUT".to_string(),
        1 => "DELETE".to_string(),
        n => n.to_string(),
    }
}

/// One watch response's events.
pub fn watch(out: &mut String, st: KvStyle, r: &WatchResponse) {
    for e in &r.events {
        out.push_str(&event_type(e.r#type));
        out.push('\n');
        if let Some(p) = &e.prev_kv {
            kv(out, st, p);
        }
        kv(out, st, e.kv.as_ref().unwrap_or(&KeyValue::default()));
    }
}

/// `lease grant`.
pub fn grant(r: &LeaseGrantResponse) -> String {
    format!("lease {:016x} granted with TTL({}s)\n", r.id, r.ttl)
}

/// `lease revoke`.
pub fn revoke(id: i64) -> String {
    format!("lease {id:016x} revoked\n")
}

/// `lease keep-alive`.
pub fn keep_alive(r: &LeaseKeepAliveResponse) -> String {
    format!("lease {:016x} keepalived with TTL({})\n", r.id, r.ttl)
}

/// `lease timetolive`.
pub fn time_to_live(r: &LeaseTimeToLiveResponse, keys: bool) -> String {
    if r.granted_ttl == 0 && r.ttl == -1 {
        return format!("lease {:016x} already expired\n", r.id);
    }
    let mut s = format!(
        "lease {:016x} granted with TTL({}s), remaining({}s)",
        r.id, r.granted_ttl, r.ttl
    );
    if keys {
        let ks: Vec<String> = r
            .keys
            .iter()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect();
        s.push_str(&format!(", attached keys({})", string_list(&ks)));
    }
    s + "\n"
}

/// `lease list`.
pub fn leases(r: &LeaseLeasesResponse) -> String {
    let mut s = format!("found {} leases\n", r.leases.len());
    for l in &r.leases {
        s.push_str(&format!("{:016x}\n", l.id));
    }
    s
}

/// `alarm list` / `alarm disarm`: each alarm in Go's `%+v` form of the message.
pub fn alarms(r: &AlarmResponse) -> String {
    r.alarms.iter().map(|a| a.text() + "\n").collect()
}

/// Table rows printed comma-joined (member list, endpoint status).
pub fn rows(rows: &[Vec<String>]) -> String {
    rows.iter().map(|r| r.join(", ") + "\n").collect()
}
