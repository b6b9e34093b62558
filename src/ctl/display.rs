//! The `-w/--write-out` dispatcher: picks the simple, json, fields, table or protobuf form of
//! each response and writes it, failing with etcdctl's `unsupported output format` /
//! `<format> not supported as output format` (exit 4) exactly where etcdctl does.

use super::error::{CtlError, CtlResult};
use super::json::{self, Obj};
use super::simple::{self, KvStyle};
use super::{fields, table};
use crate::pb::etcdserverpb::{
    AlarmResponse, DeleteRangeResponse, LeaseGrantResponse, LeaseKeepAliveResponse,
    LeaseLeasesResponse, LeaseRevokeResponse, LeaseTimeToLiveResponse, PutResponse, RangeResponse,
    TxnResponse, WatchResponse,
};
use prost::Message;
use std::io::Write;

/// An output format name given to `-w`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `simple`.
    Simple,
    /// `json`.
    Json,
    /// `fields`.
    Fields,
    /// `table`.
    Table,
    /// `protobuf`.
    Protobuf,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Simple => "simple",
            Format::Json => "json",
            Format::Fields => "fields",
            Format::Table => "table",
            Format::Protobuf => "protobuf",
        }
    }
}

/// Writes text to stdout (a closed pipe is not an error worth reporting).
pub fn stdout(s: &str) {
    stdout_bytes(s.as_bytes());
}

/// Writes raw bytes to stdout.
pub fn stdout_bytes(b: &[u8]) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(b);
    let _ = out.flush();
}

/// The chosen output format plus the simple printer's options.
#[derive(Clone, Copy, Debug)]
pub struct Display {
    /// The format.
    pub format: Format,
    /// Simple-format options.
    pub style: KvStyle,
}

impl Display {
    /// etcdctl's `NewPrinter`: an unknown name is `unsupported output format` (exit 4).
    pub fn new(write_out: &str, hex: bool) -> CtlResult<Display> {
        let format = match write_out {
            "simple" => Format::Simple,
            "json" => Format::Json,
            "fields" => Format::Fields,
            "table" => Format::Table,
            "protobuf" => Format::Protobuf,
            _ => return Err(CtlError::BadFeature("unsupported output format".into())),
        };
        Ok(Display {
            format,
            style: KvStyle {
                hex,
                value_only: false,
            },
        })
    }

    /// The error for a format a command cannot print.
    pub fn unsupported(&self) -> CtlError {
        CtlError::BadFeature(format!(
            "{} not supported as output format",
            self.format.name()
        ))
    }

    /// Prints one response in the chosen format.
    fn emit(
        &self,
        simple: impl FnOnce(&mut String),
        json: impl FnOnce() -> String,
        fields: impl FnOnce(&mut String),
        protobuf: Option<Vec<u8>>,
    ) -> CtlResult {
        let mut out = String::new();
        match self.format {
            Format::Simple => simple(&mut out),
            Format::Json => out = json() + "\n",
            Format::Fields => fields(&mut out),
            Format::Protobuf => match protobuf {
                Some(b) => {
                    stdout_bytes(&b);
                    return Ok(());
                }
                None => return Err(self.unsupported()),
            },
            Format::Table => return Err(self.unsupported()),
        }
        stdout(&out);
        Ok(())
    }

    /// `get`.
    pub fn get(&self, r: &RangeResponse) -> CtlResult {
        let st = self.style;
        self.emit(
            |o| simple::range(o, st, r),
            || json::range(r),
            |o| fields::range(o, r),
            Some(r.encode_to_vec()),
        )
    }

    /// `put`.
    pub fn put(&self, r: &PutResponse) -> CtlResult {
        let st = self.style;
        self.emit(
            |o| simple::put(o, st, r),
            || json::put(r),
            |o| fields::put(o, r),
            Some(r.encode_to_vec()),
        )
    }

    /// `del`.
    pub fn delete(&self, r: &DeleteRangeResponse) -> CtlResult {
        let st = self.style;
        self.emit(
            |o| simple::delete(o, st, r),
            || json::delete(r),
            |o| fields::delete(o, r),
            Some(r.encode_to_vec()),
        )
    }

    /// `txn`.
    pub fn txn(&self, r: &TxnResponse) -> CtlResult {
        let st = self.style;
        self.emit(
            |o| simple::txn(o, st, r),
            || json::txn(r),
            |o| fields::txn(o, r),
            Some(r.encode_to_vec()),
        )
    }

    /// One `watch` response (clientv3's `WatchResponse` shape in json).
    pub fn watch(&self, r: &WatchResponse) -> CtlResult {
        let st = self.style;
        let to_json = || {
            let events: Vec<String> = r
                .events
                .iter()
                .map(|e| {
                    let o = Obj::new().num_omit("type", e.r#type);
                    let o = match &e.kv {
                        Some(kv) => o.raw("kv", &json::kv(kv)),
                        None => o,
                    };
                    match &e.prev_kv {
                        Some(kv) => o.raw("prev_kv", &json::kv(kv)).end(),
                        None => o.end(),
                    }
                })
                .collect();
            let events = if events.is_empty() {
                "null".to_string()
            } else {
                json::array(events)
            };
            Obj::new()
                .raw("Header", &json::header(&r.header.unwrap_or_default()))
                .raw("Events", &events)
                .num("CompactRevision", r.compact_revision)
                .num("Canceled", r.canceled)
                .num("Created", r.created)
                .end()
        };
        self.emit(
            |o| simple::watch(o, st, r),
            to_json,
            |o| fields::watch(o, r),
            Some(r.encode_to_vec()),
        )
    }

    /// `lease grant`.
    pub fn grant(&self, r: &LeaseGrantResponse) -> CtlResult {
        self.emit(
            |o| o.push_str(&simple::grant(r)),
            || {
                Obj::new()
                    .header_fields(r.header.as_ref())
                    .num("ID", r.id)
                    .num("TTL", r.ttl)
                    .str("Error", &r.error)
                    .end()
            },
            |o| fields::grant(o, r),
            None,
        )
    }

    /// `lease revoke`.
    pub fn revoke(&self, id: i64, r: &LeaseRevokeResponse) -> CtlResult {
        self.emit(
            |o| o.push_str(&simple::revoke(id)),
            || Obj::new().header(r.header.as_ref()).end(),
            |o| fields::header(o, r.header.as_ref()),
            Some(r.encode_to_vec()),
        )
    }

    /// `lease keep-alive`.
    pub fn keep_alive(&self, r: &LeaseKeepAliveResponse) -> CtlResult {
        self.emit(
            |o| o.push_str(&simple::keep_alive(r)),
            || {
                Obj::new()
                    .header_fields(r.header.as_ref())
                    .num("ID", r.id)
                    .num("TTL", r.ttl)
                    .end()
            },
            |o| fields::keep_alive(o, r),
            None,
        )
    }

    /// `lease timetolive`.
    pub fn time_to_live(&self, r: &LeaseTimeToLiveResponse, keys: bool) -> CtlResult {
        self.emit(
            |o| o.push_str(&simple::time_to_live(r, keys)),
            || {
                let ks = if r.keys.is_empty() {
                    "null".to_string()
                } else {
                    json::array(
                        r.keys
                            .iter()
                            .map(|k| json::string(&json::base64(k)))
                            .collect(),
                    )
                };
                Obj::new()
                    .header_fields(r.header.as_ref())
                    .num("id", r.id)
                    .num("ttl", r.ttl)
                    .num("granted-ttl", r.granted_ttl)
                    .raw("keys", &ks)
                    .end()
            },
            |o| fields::time_to_live(o, r),
            None,
        )
    }

    /// `lease list`.
    pub fn leases(&self, r: &LeaseLeasesResponse) -> CtlResult {
        self.emit(
            |o| o.push_str(&simple::leases(r)),
            || {
                let ls = r
                    .leases
                    .iter()
                    .map(|l| Obj::new().num("id", l.id).end())
                    .collect();
                Obj::new()
                    .header_fields(r.header.as_ref())
                    .raw("leases", &json::array(ls))
                    .end()
            },
            |o| fields::leases(o, r),
            None,
        )
    }

    /// `alarm list` and `alarm disarm`.
    pub fn alarms(&self, r: &AlarmResponse) -> CtlResult {
        self.emit(
            |o| o.push_str(&simple::alarms(r)),
            || {
                let alarms = r
                    .alarms
                    .iter()
                    .map(|a| {
                        Obj::new()
                            .num_omit("memberID", a.member_id)
                            .num_omit("alarm", a.alarm)
                            .end()
                    })
                    .collect();
                Obj::new()
                    .header(r.header.as_ref())
                    .list_omit("alarms", alarms)
                    .end()
            },
            |o| fields::alarms(o, r),
            Some(r.encode_to_vec()),
        )
    }

    /// A table-capable record set (member list, endpoint status/health).
    pub fn records(
        &self,
        headers: &[&str],
        rows: &[Vec<String>],
        json: impl FnOnce() -> String,
        fields: impl FnOnce(&mut String),
    ) -> CtlResult {
        if self.format == Format::Table {
            stdout(&table::render(headers, rows));
            return Ok(());
        }
        self.emit(|o| o.push_str(&simple::rows(rows)), json, fields, None)
    }
}
