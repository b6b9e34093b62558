//! Rewrites an HPACK header block (RFC 7541 §6) so that none of its string literals is
//! Huffman-coded: the same fields in the same representations, so the same changes to the
//! dynamic table, only every Huffman-coded string replaced by its raw octets.
//!
//! [`super::authority`] decodes the header blocks of some clients with `loona_hpack`, whose
//! Huffman decoder builds its code table anew for every string it decodes (a third of the
//! server's CPU under a put load). Strings decoded here, with the precomputed tables of
//! `httlib_huffman`, reach that decoder raw, and it only copies them.
//!
//! Invariant: the output decodes to exactly the fields the input decodes to; an input that is
//! not a well-formed block gives `None` (the caller then leaves the block to h2 untouched). A
//! Huffman string counts as well formed only when encoding its decoded octets gives it back.

use httlib_huffman::DecoderSpeed;

/// `block` with every Huffman-coded string literal decoded to a raw one; `None` if it is not a
/// well-formed sequence of header field representations.
pub fn without_huffman(block: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(block.len() + block.len() / 2);
    let mut rest = block;
    while let Some(&first) = rest.first() {
        // (prefix bits of the leading integer, whether string literals follow)
        let (prefix, literal) = if first & 0x80 != 0 {
            (7, false) // indexed field
        } else if first & 0x40 != 0 {
            (6, true) // literal with incremental indexing
        } else if first & 0x20 != 0 {
            (5, false) // dynamic table size update
        } else {
            (4, true) // literal without indexing, or never indexed
        };
        let (index, used) = integer(rest, prefix)?;
        out.extend_from_slice(&rest[..used]);
        rest = &rest[used..];
        if literal {
            if index == 0 {
                rest = copy_string(rest, &mut out)?; // the name, given as a literal
            }
            rest = copy_string(rest, &mut out)?;
        }
    }
    Some(out)
}

/// Decodes the integer at the start of `buf` with a `prefix`-bit prefix (RFC 7541 §5.1);
/// returns it and the bytes it took.
fn integer(buf: &[u8], prefix: u8) -> Option<(usize, usize)> {
    let max = (1u64 << prefix) - 1;
    let mut value = u64::from(*buf.first()?) & max;
    if value < max {
        return Some((value as usize, 1));
    }
    for (i, &byte) in buf.iter().enumerate().skip(1) {
        let shift = 7 * (i as u32 - 1);
        if shift > 28 {
            return None; // far beyond any length a header block can hold
        }
        value += u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some((usize::try_from(value).ok()?, i + 1));
        }
    }
    None
}

/// Appends the string literal at the start of `buf` to `out`, raw (RFC 7541 §5.2); returns
/// what follows it.
fn copy_string<'a>(buf: &'a [u8], out: &mut Vec<u8>) -> Option<&'a [u8]> {
    let huffman = *buf.first()? & 0x80 != 0;
    let (len, used) = integer(buf, 7)?;
    let end = used.checked_add(len)?;
    let body = buf.get(used..end)?;
    if huffman {
        let mut raw = Vec::with_capacity(len * 8 / 5 + 1);
        httlib_huffman::decode(body, &mut raw, DecoderSpeed::FourBits).ok()?;
        // A valid encoding is the only one of its string (padding: under 8 bits, all ones).
        // Encoding back catches what the decoder lets through, such as zero padding.
        let mut again = Vec::with_capacity(len);
        httlib_huffman::encode(&raw, &mut again).ok()?;
        if again != body {
            return None;
        }
        loona_hpack::encoder::encode_integer_into(raw.len(), 7, 0, &mut *out).ok()?;
        out.extend_from_slice(&raw);
    } else {
        out.extend_from_slice(&buf[..end]);
    }
    Some(&buf[end..])
}

#[cfg(test)]
mod tests {
    use super::*;

    type Fields = Vec<(Vec<u8>, Vec<u8>)>;

    fn decode(block: &[u8]) -> Fields {
        let mut fields = Vec::new();
        loona_hpack::Decoder::new()
            .decode_with_cb(block, |n, v| fields.push((n.into_owned(), v.into_owned())))
            .expect("a valid block");
        fields
    }

    /// A string literal, Huffman-coded when `huffman`.
    fn string(out: &mut Vec<u8>, s: &[u8], huffman: bool) {
        if huffman {
            let mut coded = Vec::new();
            httlib_huffman::encode(s, &mut coded).unwrap();
            loona_hpack::encoder::encode_integer_into(coded.len(), 7, 0x80, &mut *out).unwrap();
            out.extend_from_slice(&coded);
        } else {
            loona_hpack::encoder::encode_integer_into(s.len(), 7, 0, &mut *out).unwrap();
            out.extend_from_slice(s);
        }
    }

    /// A block like the ones grpc-go clients send: every representation, Huffman strings,
    /// a dynamic-table entry referred to later, and a long value (multi-byte lengths).
    fn sample() -> Vec<u8> {
        let mut b = vec![0x3f, 0xe1, 0x1f]; // table size update to 4096
        b.push(0x82); // :method GET (static index 2)
        b.push(0x41); // literal with incremental indexing, name :authority (static index 1)
        string(&mut b, b"http://127.0.0.1:2379", true);
        b.push(0x40); // literal with incremental indexing, new name
        string(&mut b, b"grpc-timeout", true);
        string(&mut b, b"4999m", true);
        b.push(0x00); // literal without indexing, new name, raw strings
        string(&mut b, b"x-raw", false);
        string(&mut b, &[b'v'; 300], false);
        b.push(0x10); // never indexed, new name
        string(&mut b, b"authorization", true);
        string(&mut b, &[b'z'; 200], true);
        b.push(0xbe); // the newest dynamic entry (grpc-timeout), index 62
        b.push(0xbf); // the one before it (:authority), index 63
        b
    }

    #[test]
    fn strings_come_out_raw_and_the_block_decodes_to_the_same_fields() {
        let block = sample();
        let raw = without_huffman(&block).expect("well formed");
        assert_eq!(decode(&raw), decode(&block));
        assert_eq!(decode(&raw)[5].0, b"grpc-timeout");
        assert_eq!(decode(&raw)[6].1, b"http://127.0.0.1:2379");
        // No Huffman-coded string is left: the raw block holds every value verbatim.
        let text = String::from_utf8_lossy(&raw);
        for s in [
            "http://127.0.0.1:2379",
            "grpc-timeout",
            "4999m",
            "authorization",
        ] {
            assert!(text.contains(s), "{s} is not raw in the output");
        }
    }

    fn try_decode(block: &[u8]) -> Option<Fields> {
        let mut fields = Vec::new();
        loona_hpack::Decoder::new()
            .decode_with_cb(block, |n, v| fields.push((n.into_owned(), v.into_owned())))
            .ok()
            .map(|_| fields)
    }

    #[test]
    fn a_cut_or_damaged_block_is_refused() {
        let block = sample();
        for cut in 1..block.len() {
            let prefix = &block[..cut];
            match without_huffman(prefix) {
                // Cut between two representations: the same fields (or the same refusal).
                Some(raw) => assert_eq!(try_decode(&raw), try_decode(prefix), "cut at {cut}"),
                None => assert_eq!(try_decode(prefix), None, "cut at {cut}"),
            }
        }
        // A Huffman string padded with something other than the EOS prefix.
        let bad = [0x00, 0x01, b'x', 0x81, 0x00];
        assert_eq!(without_huffman(&bad), None);
        // An integer that never ends.
        assert_eq!(
            without_huffman(&[0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            None
        );
    }
}
