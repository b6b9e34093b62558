//! `-w json`: a small JSON emitter reproducing Go's `encoding/json` output for the structs
//! etcdctl marshals (gogo-protobuf messages with `omitempty` snake_case tags, clientv3 wrapper
//! structs with embedded headers), with base64 bytes and Go's string escaping.

use crate::pb::etcdserverpb::{
    response_op, DeleteRangeResponse, PutResponse, RangeResponse, ResponseHeader, TxnResponse,
};
use crate::pb::mvccpb::KeyValue;

/// Builds one JSON object field by field, in Go's declaration order.
#[derive(Default)]
pub struct Obj {
    buf: String,
}

impl Obj {
    /// An empty object.
    pub fn new() -> Obj {
        Obj::default()
    }

    /// Adds a field whose value is already JSON.
    pub fn raw(mut self, key: &str, json: &str) -> Obj {
        if !self.buf.is_empty() {
            self.buf.push(',');
        }
        self.buf.push_str(&string(key));
        self.buf.push(':');
        self.buf.push_str(json);
        self
    }

    /// Adds a number or boolean (anything displayed as JSON literally).
    pub fn num(self, key: &str, v: impl std::fmt::Display) -> Obj {
        self.raw(key, &v.to_string())
    }

    /// Adds a number unless zero (`omitempty`).
    pub fn num_omit<T: std::fmt::Display + Default + PartialEq>(self, key: &str, v: T) -> Obj {
        if v == T::default() {
            self
        } else {
            self.num(key, v)
        }
    }

    /// Adds a string.
    pub fn str(self, key: &str, v: &str) -> Obj {
        let s = string(v);
        self.raw(key, &s)
    }

    /// Adds a string unless empty (`omitempty`).
    pub fn str_omit(self, key: &str, v: &str) -> Obj {
        if v.is_empty() {
            self
        } else {
            self.str(key, v)
        }
    }

    /// Adds bytes as base64 unless empty (`omitempty`).
    pub fn bytes_omit(self, key: &str, v: &[u8]) -> Obj {
        if v.is_empty() {
            self
        } else {
            let s = string(&base64(v));
            self.raw(key, &s)
        }
    }

    /// Adds a non-empty array of already-encoded values (`omitempty`).
    pub fn list_omit(self, key: &str, items: Vec<String>) -> Obj {
        if items.is_empty() {
            self
        } else {
            self.raw(key, &array(items))
        }
    }

    /// Adds the fields of an embedded `*pb.ResponseHeader` (flattened, as Go does).
    pub fn header_fields(self, h: Option<&ResponseHeader>) -> Obj {
        match h {
            None => self,
            Some(h) => self
                .num_omit("cluster_id", h.cluster_id)
                .num_omit("member_id", h.member_id)
                .num_omit("revision", h.revision)
                .num_omit("raft_term", h.raft_term),
        }
    }

    /// Adds `"header":{...}` unless absent.
    pub fn header(self, h: Option<&ResponseHeader>) -> Obj {
        match h {
            None => self,
            Some(h) => self.raw("header", &header(h)),
        }
    }

    /// The finished object.
    pub fn end(self) -> String {
        format!("{{{}}}", self.buf)
    }
}

/// A JSON array of encoded values.
pub fn array(items: Vec<String>) -> String {
    format!("[{}]", items.join(","))
}

/// A Go `encoding/json` string literal (HTML-safe escaping, invalid UTF-8 as U+FFFD).
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Standard base64 with padding (Go's encoding of `[]byte`).
pub fn base64(b: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(b.len().div_ceil(3) * 4);
    for chunk in b.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, x)| acc | (u32::from(*x) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `pb.ResponseHeader`.
pub fn header(h: &ResponseHeader) -> String {
    Obj::new().header_fields(Some(h)).end()
}

/// `mvccpb.KeyValue`.
pub fn kv(kv: &KeyValue) -> String {
    Obj::new()
        .bytes_omit("key", &kv.key)
        .num_omit("create_revision", kv.create_revision)
        .num_omit("mod_revision", kv.mod_revision)
        .num_omit("version", kv.version)
        .bytes_omit("value", &kv.value)
        .num_omit("lease", kv.lease)
        .end()
}

/// `pb.RangeResponse`.
pub fn range(r: &RangeResponse) -> String {
    Obj::new()
        .header(r.header.as_ref())
        .list_omit("kvs", r.kvs.iter().map(kv).collect())
        .num_omit("more", r.more)
        .num_omit("count", r.count)
        .end()
}

/// `pb.PutResponse`.
pub fn put(r: &PutResponse) -> String {
    let o = Obj::new().header(r.header.as_ref());
    match &r.prev_kv {
        Some(p) => o.raw("prev_kv", &kv(p)).end(),
        None => o.end(),
    }
}

/// `pb.DeleteRangeResponse`.
pub fn delete(r: &DeleteRangeResponse) -> String {
    Obj::new()
        .header(r.header.as_ref())
        .num_omit("deleted", r.deleted)
        .list_omit("prev_kvs", r.prev_kvs.iter().map(kv).collect())
        .end()
}

/// `pb.TxnResponse` (responses as `{"Response":{"ResponsePut":{...}}}`).
pub fn txn(r: &TxnResponse) -> String {
    let ops = r
        .responses
        .iter()
        .map(|op| {
            let inner = match &op.response {
                None => "null".to_string(),
                Some(response_op::Response::ResponseRange(x)) => {
                    Obj::new().raw("ResponseRange", &range(x)).end()
                }
                Some(response_op::Response::ResponsePut(x)) => {
                    Obj::new().raw("ResponsePut", &put(x)).end()
                }
                Some(response_op::Response::ResponseDeleteRange(x)) => {
                    Obj::new().raw("ResponseDeleteRange", &delete(x)).end()
                }
                Some(response_op::Response::ResponseTxn(x)) => {
                    Obj::new().raw("ResponseTxn", &txn(x)).end()
                }
            };
            Obj::new().raw("Response", &inner).end()
        })
        .collect();
    Obj::new()
        .header(r.header.as_ref())
        .num_omit("succeeded", r.succeeded)
        .list_omit("responses", ops)
        .end()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_go() {
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"bar2"), "YmFyMg==");
        assert_eq!(base64(b"a"), "YQ==");
        assert_eq!(base64(b""), "");
    }

    #[test]
    fn strings_escape_like_go() {
        assert_eq!(
            string("a<b>&\"\n\x01"),
            r#""a\u003cb\u003e\u0026\"\n\u0001""#
        );
    }
}
