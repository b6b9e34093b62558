//! `etcdctl txn`: reads compares, success requests and failure requests from stdin (each
//! section ended by a blank line; `-i` prints the prompts), parses them exactly like etcdctl
//! (its `argify` tokenizer, `fmt.Sscanf("%q) %s %q")` compare syntax, the put/get/del command
//! flags per request line) and commits one Txn.

use super::cli::{TxnArgs, TxnOp};
use super::error::{CtlError, CtlResult};
use super::kv::{del_request, get_request, put_request};
use super::Ctx;
use crate::gofmt::{parse_int, quote};
use crate::pb::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use crate::pb::etcdserverpb::kv_client::KvClient;
use crate::pb::etcdserverpb::{request_op, Compare, RequestOp, TxnRequest};
use clap::Parser;
use std::io::BufRead;

/// A Go runtime panic: etcdctl dies with exit status 2.
fn panic(msg: &str) -> CtlError {
    eprintln!("panic: {msg}\n\ngoroutine 1 [running]:");
    CtlError::Quiet(2)
}

/// Go's `strconv.Unquote` of a double-quoted literal (without the quotes), as bytes.
fn unquote(body: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        fn hex(chars: &mut impl Iterator<Item = char>, n: usize) -> Option<u32> {
            let s: String = chars.take(n).collect();
            if s.chars().count() != n {
                return None;
            }
            u32::from_str_radix(&s, 16).ok()
        }
        match chars.next()? {
            'a' => out.push(7),
            'b' => out.push(8),
            'f' => out.push(12),
            'n' => out.push(b'\n'),
            'r' => out.push(b'\r'),
            't' => out.push(b'\t'),
            'v' => out.push(11),
            '\\' => out.push(b'\\'),
            '"' => out.push(b'"'),
            'x' => out.push(u8::try_from(hex(&mut chars, 2)?).ok()?),
            'u' => {
                out.extend_from_slice(char::from_u32(hex(&mut chars, 4)?)?.to_string().as_bytes())
            }
            'U' => {
                out.extend_from_slice(char::from_u32(hex(&mut chars, 8)?)?.to_string().as_bytes())
            }
            d @ '0'..='7' => {
                let rest: String = (0..2).filter_map(|_| chars.next()).collect();
                let v = u32::from_str_radix(&format!("{d}{rest}"), 8).ok()?;
                out.push(u8::try_from(v).ok()?);
            }
            _ => return None,
        }
    }
    Some(out)
}

/// A cursor implementing the bits of `fmt.Sscanf` the compare syntax uses.
struct Scan<'a> {
    s: &'a str,
}

impl Scan<'_> {
    fn skip_spaces(&mut self) {
        self.s = self.s.trim_start_matches([' ', '\t', '\r']);
    }

    /// `%q`: a double- or back-quoted Go string.
    fn quoted(&mut self) -> Option<String> {
        self.skip_spaces();
        let s = self.s;
        if let Some(rest) = s.strip_prefix('`') {
            let end = rest.find('`')?;
            self.s = &rest[end + 1..];
            return Some(rest[..end].to_string());
        }
        let rest = s.strip_prefix('"')?;
        let bytes = rest.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' => i += 2,
                b'"' => break,
                _ => i += 1,
            }
        }
        if i >= bytes.len() {
            return None;
        }
        let v = unquote(&rest[..i])?;
        self.s = &rest[i + 1..];
        Some(String::from_utf8_lossy(&v).into_owned())
    }

    /// A literal character in the format.
    fn literal(&mut self, c: char) -> bool {
        match self.s.strip_prefix(c) {
            Some(rest) => {
                self.s = rest;
                true
            }
            None => false,
        }
    }

    /// A space in the format: one or more spaces, or the end of input.
    fn space(&mut self) -> bool {
        if self.s.is_empty() {
            return true;
        }
        let before = self.s.len();
        self.skip_spaces();
        self.s.len() < before
    }

    /// `%s`: a run of non-space characters.
    fn word(&mut self) -> Option<String> {
        self.skip_spaces();
        let end = self.s.find(char::is_whitespace).unwrap_or(self.s.len());
        if end == 0 {
            return None;
        }
        let w = self.s[..end].to_string();
        self.s = &self.s[end..];
        Some(w)
    }
}

/// One compare line, e.g. `mod("key") > "3"`.
pub fn parse_compare(line: &str) -> CtlResult<Compare> {
    let bad = |m: String| CtlError::InvalidInput(format!("malformed comparison: {m}"));
    let Some((target, rest)) = line.split_once('(') else {
        return Err(bad(line.to_string()));
    };
    let mut sc = Scan { s: rest };
    let (mut key, mut op, mut val, mut n) = (String::new(), String::new(), String::new(), 0);
    if let Some(k) = sc.quoted() {
        key = k;
        n = 1;
        if sc.literal(')') && sc.space() {
            if let Some(o) = sc.word() {
                op = o;
                n = 2;
                if sc.space() {
                    if let Some(v) = sc.quoted() {
                        val = v;
                        n = 3;
                    }
                }
            }
        }
    }
    if n != 3 {
        return Err(bad(format!(
            "{line}; got {target}({}) {op} {}",
            quote(key.as_bytes()),
            quote(val.as_bytes())
        )));
    }
    let target = match target {
        "ver" | "version" => CompareTarget::Version,
        "c" | "create" => CompareTarget::Create,
        "m" | "mod" => CompareTarget::Mod,
        "val" | "value" => CompareTarget::Value,
        "lease" => CompareTarget::Lease,
        t => return Err(bad(format!("{line} (unknown target {t})"))),
    };
    let number = || {
        parse_int(&val, 10)
            .map_err(|_| CtlError::InvalidInput(format!("invalid txn compare request: {line}")))
    };
    let union = match target {
        CompareTarget::Version => TargetUnion::Version(number()?),
        CompareTarget::Create => TargetUnion::CreateRevision(number()?),
        CompareTarget::Mod => TargetUnion::ModRevision(number()?),
        CompareTarget::Value => TargetUnion::Value(val.clone().into_bytes().into()),
        CompareTarget::Lease => TargetUnion::Lease(0),
    };
    let result = match op.as_str() {
        "=" => CompareResult::Equal,
        "!=" => CompareResult::NotEqual,
        "<" => CompareResult::Less,
        ">" => CompareResult::Greater,
        _ => return Err(panic("Unknown result op")),
    };
    if target == CompareTarget::Lease {
        return Err(panic("bad value"));
    }
    Ok(Compare {
        result: result as i32,
        target: target as i32,
        key: key.into_bytes().into(),
        range_end: Default::default(),
        target_union: Some(union),
    })
}

/// etcdctl's `argify`: shell-like words, `"..."` unquoted Go-style, `'...'` cut (sic) at
/// the number of words.
pub fn argify(line: &str) -> CtlResult<Vec<String>> {
    let b = line.as_bytes();
    let space = |c: u8| matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0c);
    let mut raw: Vec<&str> = Vec::new();
    let mut pos = 0;
    while pos < b.len() {
        let c = b[pos];
        if space(c) {
            pos += 1;
        } else if c == b'"' || c == b'\'' {
            let mut j = pos + 1;
            while j < b.len() && b[j] != c {
                j += if c == b'"' && b[j] == b'\\' { 2 } else { 1 };
            }
            if j < b.len() {
                raw.push(&line[pos..=j]);
                pos = j + 1;
            } else {
                pos += 1;
            }
        } else {
            let end = (pos..b.len()).find(|&j| space(b[j])).unwrap_or(b.len());
            raw.push(&line[pos..end]);
            pos = end;
        }
    }
    let n = raw.len();
    raw.iter()
        .map(|a| {
            if a.starts_with('\'') {
                let end = n.saturating_sub(1);
                if end < 1 || end > a.len() {
                    return Err(panic("runtime error: slice bounds out of range"));
                }
                Ok(String::from_utf8_lossy(&a.as_bytes()[1..end]).into_owned())
            } else if a.starts_with('"') {
                let mut sc = Scan { s: a };
                sc.quoted()
                    .ok_or_else(|| CtlError::InvalidInput("invalid syntax".into()))
            } else {
                Ok(a.to_string())
            }
        })
        .collect()
}

/// One request line, e.g. `put k v --prev-kv`.
pub fn parse_op(line: &str) -> CtlResult<RequestOp> {
    let args = argify(line)?;
    if args.len() < 2 {
        return Err(CtlError::InvalidInput(format!(
            "invalid txn compare request: {line}"
        )));
    }
    let op = TxnOp::try_parse_from(&args)
        .map_err(|_| CtlError::InvalidInput(format!("invalid txn request: {line}")))?;
    let request = match op {
        TxnOp::Put(a) => request_op::Request::RequestPut(put_request(&a, || None)?),
        TxnOp::Get(a) => request_op::Request::RequestRange(get_request(&a)?),
        TxnOp::Del(a) => request_op::Request::RequestDeleteRange(del_request(&a)?),
    };
    Ok(RequestOp {
        request: Some(request),
    })
}

/// Reads one line; a missing final newline is Go's `io.EOF` (exit 3).
fn read_line(input: &mut impl BufRead) -> CtlResult<String> {
    let mut buf = Vec::new();
    match input.read_until(b'\n', &mut buf) {
        Ok(_) if buf.ends_with(b"\n") => Ok(String::from_utf8_lossy(&buf).trim().to_string()),
        Ok(_) => Err(CtlError::InvalidInput("EOF".into())),
        Err(e) => Err(CtlError::InvalidInput(e.to_string())),
    }
}

/// Parses a whole txn from `input`, printing prompts when interactive.
pub fn read_txn(input: &mut impl BufRead, interactive: bool) -> CtlResult<TxnRequest> {
    let prompt = |s: &str| {
        if interactive {
            super::display::stdout(&format!("{s}\n"));
        }
    };
    let mut req = TxnRequest::default();
    prompt("compares:");
    loop {
        let line = read_line(input)?;
        if line.is_empty() {
            break;
        }
        req.compare.push(parse_compare(&line)?);
    }
    for (title, success) in [("success", true), ("failure", false)] {
        prompt(&format!("{title} requests (get, put, del):"));
        loop {
            let line = read_line(input)?;
            if line.is_empty() {
                break;
            }
            let op = parse_op(&line)?;
            if success {
                req.success.push(op);
            } else {
                req.failure.push(op);
            }
        }
    }
    Ok(req)
}

/// `etcdctl txn`.
pub async fn run(ctx: &mut Ctx, a: TxnArgs) -> CtlResult {
    if !a.args.is_empty() {
        return Err(CtlError::BadArgs(
            "txn command does not accept argument".into(),
        ));
    }
    let display = ctx.display()?;
    ctx.conn.authenticate_now().await?;
    let req = read_txn(&mut std::io::stdin().lock(), a.interactive)?;
    let resp = ctx
        .conn
        .call_until(None, rpc!(KvClient, txn, req))
        .await
        .map_err(CtlError::Failed)?;
    display.txn(&resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argify_like_etcdctl() {
        assert_eq!(
            argify(r#"put "a b" "c\"d""#).unwrap(),
            vec!["put", "a b", "c\"d"]
        );
        assert_eq!(argify("put 'a b' 'c d'").unwrap(), vec!["put", "a", "c"]);
    }

    #[test]
    fn compare_errors_like_etcdctl() {
        let e = parse_compare(r#"value("k") ="v3""#)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            r#"malformed comparison: value("k") ="v3"; got value("k") ="v3" """#
        );
        let e = parse_compare(r#"value("k")= "v3""#)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            r#"malformed comparison: value("k")= "v3"; got value("k")  """#
        );
        assert!(parse_compare(r#"mod("k") > "0""#).is_ok());
    }
}
