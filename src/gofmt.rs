//! Go formatting conventions etcd's flags and etcdctl's output depend on, re-implemented: `%q` quoting
//! (`strconv.Quote`), `--hex` byte escaping, `strconv.ParseInt` and `time.ParseDuration` with
//! their error texts, `time.Duration.String()`, and go-humanize's SI byte sizes.

use std::time::Duration;

/// `strconv.Quote(string(b))`: a double-quoted Go string literal.
pub fn quote(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len() + 2);
    out.push('"');
    let mut rest = b;
    while !rest.is_empty() {
        let (ch, len) = decode_utf8(rest);
        match ch {
            None => out.push_str(&format!("\\x{:02x}", rest[0])),
            Some(c) => push_quoted_char(&mut out, c),
        }
        rest = &rest[len..];
    }
    out.push('"');
    out
}

/// Decodes one UTF-8 char; `None` (length 1) for an invalid byte.
fn decode_utf8(b: &[u8]) -> (Option<char>, usize) {
    let want = match b[0] {
        0x00..=0x7f => 1,
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => return (None, 1),
    };
    if b.len() < want {
        return (None, 1);
    }
    match std::str::from_utf8(&b[..want]) {
        Ok(s) => (s.chars().next(), want),
        Err(_) => (None, 1),
    }
}

fn push_quoted_char(out: &mut String, c: char) {
    match c {
        '"' => out.push_str("\\\""),
        '\\' => out.push_str("\\\\"),
        '\x07' => out.push_str("\\a"),
        '\x08' => out.push_str("\\b"),
        '\x0c' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\x0b' => out.push_str("\\v"),
        c if is_print(c) => out.push(c),
        c if (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
        c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
        c => out.push_str(&format!("\\U{:08x}", c as u32)),
    }
}

/// An approximation of Go's `unicode.IsPrint`.
fn is_print(c: char) -> bool {
    if c.is_ascii() {
        return (' '..='~').contains(&c);
    }
    let u = c as u32;
    let format_char = matches!(u, 0xad | 0x200b..=0x200f | 0x2028..=0x202e | 0x2060..=0x206f | 0xfeff)
        || (0xe000..=0xf8ff).contains(&u)
        || (0xfff9..=0xfffb).contains(&u);
    !(c.is_control() || c.is_whitespace() || format_char)
}

/// etcdctl's `--hex` form: every byte as `\xNN`.
pub fn hex_escape(b: &[u8]) -> String {
    b.iter().map(|x| format!("\\x{x:02x}")).collect()
}

/// Plain lowercase hex of bytes.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `strconv.ParseInt(s, base, 64)` with Go's error text.
pub fn parse_int(s: &str, base: u32) -> Result<i64, String> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    check_digits("ParseInt", s, digits, base)?;
    i64::from_str_radix(s, base).map_err(|_| out_of_range("ParseInt", s))
}

/// `strconv.ParseUint(s, base, 64)` with Go's error text.
pub fn parse_uint(s: &str, base: u32) -> Result<u64, String> {
    check_digits("ParseUint", s, s, base)?;
    u64::from_str_radix(s, base).map_err(|_| out_of_range("ParseUint", s))
}

fn check_digits(func: &str, s: &str, digits: &str, base: u32) -> Result<(), String> {
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(base)) {
        return Err(format!(
            "strconv.{func}: parsing {}: invalid syntax",
            quote(s.as_bytes())
        ));
    }
    Ok(())
}

fn out_of_range(func: &str, s: &str) -> String {
    format!(
        "strconv.{func}: parsing {}: value out of range",
        quote(s.as_bytes())
    )
}

/// `time.ParseDuration` with Go's error texts.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let orig = quote(s.as_bytes());
    let invalid = || format!("time: invalid duration {orig}");
    let mut rest = s;
    let neg = rest.starts_with('-');
    rest = rest.strip_prefix(['+', '-']).unwrap_or(rest);
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num = &rest[..num_len];
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return Err(invalid());
        }
        let value: f64 = num.parse().map_err(|_| invalid())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let scale = match unit {
            "" => return Err(format!("time: missing unit in duration {orig}")),
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            u => {
                return Err(format!(
                    "time: unknown unit {} in duration {orig}",
                    quote(u.as_bytes())
                ))
            }
        };
        total += value * scale;
    }
    if neg {
        // etcdctl treats a negative timeout like an already expired one.
        return Ok(Duration::ZERO);
    }
    Ok(Duration::from_nanos(total as u64))
}

/// `time.Duration.String()`.
pub fn duration_string(d: Duration) -> String {
    let ns = d.as_nanos() as u64;
    if ns == 0 {
        return "0s".to_string();
    }
    if ns < 1_000 {
        return format!("{ns}ns");
    }
    if ns < 1_000_000 {
        return format!("{}µs", fraction(ns, 1_000, 3));
    }
    if ns < 1_000_000_000 {
        return format!("{}ms", fraction(ns, 1_000_000, 6));
    }
    let hours = ns / 3_600_000_000_000;
    let mins = (ns / 60_000_000_000) % 60;
    let secs = fraction(ns % 60_000_000_000, 1_000_000_000, 9);
    if hours > 0 {
        format!("{hours}h{mins}m{secs}s")
    } else if mins > 0 {
        format!("{mins}m{secs}s")
    } else {
        format!("{secs}s")
    }
}

fn fraction(v: u64, unit: u64, digits: usize) -> String {
    let (int, frac) = (v / unit, v % unit);
    if frac == 0 {
        return int.to_string();
    }
    let f = format!("{frac:0digits$}");
    format!("{int}.{}", f.trim_end_matches('0'))
}

/// go-humanize's `Bytes`: SI units with one decimal below 10.
pub fn human_bytes(s: u64) -> String {
    const SIZES: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    if s < 10 {
        return format!("{s} B");
    }
    let e = ((s as f64).ln() / 1000f64.ln()).floor();
    let suffix = SIZES[(e as usize).min(SIZES.len() - 1)];
    let val = ((s as f64) / 1000f64.powf(e) * 10.0 + 0.5).floor() / 10.0;
    if val < 10.0 {
        format!("{val:.1} {suffix}")
    } else {
        format!("{val:.0} {suffix}")
    }
}

/// Go's `fmt.Sprint` of a `[]string`.
pub fn string_list(items: &[String]) -> String {
    format!("[{}]", items.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_matches_go() {
        assert_eq!(quote(b"a\"b\\c\n"), r#""a\"b\\c\n""#);
        assert_eq!(quote(b"\x00\xff\x7f"), r#""\x00\xff\x7f""#);
        assert_eq!(quote("é\u{a0}".as_bytes()), "\"é\\u00a0\"");
    }

    #[test]
    fn durations_match_go() {
        assert_eq!(duration_string(Duration::from_micros(2455)), "2.455ms");
        assert_eq!(
            duration_string(Duration::from_nanos(2_455_475)),
            "2.455475ms"
        );
        assert_eq!(duration_string(Duration::from_millis(61_500)), "1m1.5s");
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(
            parse_duration("x"),
            Err("time: invalid duration \"x\"".into())
        );
    }

    #[test]
    fn sizes_match_humanize() {
        assert_eq!(human_bytes(1649), "1.6 kB");
        assert_eq!(human_bytes(20480), "20 kB");
        assert_eq!(human_bytes(5), "5 B");
    }

    #[test]
    fn parse_int_errors() {
        assert_eq!(parse_int("ff", 16), Ok(255));
        assert_eq!(
            parse_int("zz", 16),
            Err("strconv.ParseInt: parsing \"zz\": invalid syntax".into())
        );
    }
}
