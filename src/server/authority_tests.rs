use super::*;
use loona_hpack::Encoder;

type Fields = Vec<(Vec<u8>, Vec<u8>)>;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    f.extend_from_slice(&[kind, flags]);
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn request(authority: &str, path: &str) -> Fields {
    [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", path),
        (":authority", authority),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ]
    .iter()
    .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
    .collect()
}

fn encode(encoder: &mut Encoder, fields: &Fields) -> Vec<u8> {
    encoder.encode(fields.iter().map(|(n, v)| (n.as_slice(), v.as_slice())))
}

/// Feeds `input` to a rewriter `step` bytes at a time and returns what h2 would read.
fn rewrite(input: &[u8], step: usize) -> Vec<u8> {
    let mut r = Rewriter::new();
    let mut out = Vec::new();
    for piece in input.chunks(step) {
        r.input.put_slice(piece);
        r.process();
        out.extend_from_slice(&r.output.split());
    }
    out
}

/// Splits an HTTP/2 client stream (after the preface) into frames.
fn frames(mut bytes: &[u8]) -> Vec<(u8, u8, u32, Vec<u8>)> {
    assert!(bytes.starts_with(PREFACE));
    bytes = &bytes[PREFACE.len()..];
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let len = u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]]) as usize;
        let stream = u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]);
        out.push((bytes[3], bytes[4], stream, bytes[9..9 + len].to_vec()));
        bytes = &bytes[9 + len..];
    }
    out
}

fn authority_of(fields: &Fields) -> Option<String> {
    fields
        .iter()
        .find(|(n, _)| n == b":authority")
        .map(|(_, v)| String::from_utf8(v.clone()).unwrap())
}

#[test]
fn authorities_the_etcd_clients_send_are_normalised() {
    let n = |v: &str| normalised_authority(v.as_bytes()).map(|v| String::from_utf8(v).unwrap());
    assert_eq!(n("127.0.0.1:2379").as_deref(), Some("127.0.0.1:2379"));
    assert_eq!(
        n("http://127.0.0.1:2379").as_deref(),
        Some("127.0.0.1:2379")
    );
    assert_eq!(
        n("https://etcd-0.example:2379/").as_deref(),
        Some("etcd-0.example:2379")
    );
    assert_eq!(
        n("#initially=[https://127.0.0.1:2379;https://127.0.0.1:22379]").as_deref(),
        Some("127.0.0.1:2379")
    );
    assert_eq!(n("/var/run/etcd.sock"), None);
    assert_eq!(n(""), None);
}

#[test]
fn header_blocks_are_rewritten_and_everything_else_passes_through() {
    let mut encoder = Encoder::new();
    let first = request("http://127.0.0.1:2379", "/etcdserverpb.Maintenance/Status");
    let second = request("http://127.0.0.1:2379", "/etcdserverpb.KV/Range");
    let good = request("localhost:2379", "/etcdserverpb.KV/Put");
    let mut input = PREFACE.to_vec();
    input.extend(frame(0x4, 0, 0, &[0, 3, 0, 0, 0, 100])); // SETTINGS
    input.extend(frame(
        HEADERS,
        END_HEADERS,
        1,
        &encode(&mut encoder, &first),
    ));
    input.extend(frame(0x0, END_STREAM, 1, b"\0\0\0\0\x03abc")); // DATA
                                                                 // The second request refers to the first's authority through the dynamic table, and comes
                                                                 // padded, with priority, split over a CONTINUATION frame.
    let block = encode(&mut encoder, &second);
    let (a, b) = block.split_at(block.len() / 2);
    let mut padded = vec![2u8, 0, 0, 0, 0, 16];
    padded.extend_from_slice(a);
    padded.extend_from_slice(&[0, 0]);
    input.extend(frame(HEADERS, PADDED | PRIORITY | END_STREAM, 3, &padded));
    input.extend(frame(CONTINUATION, END_HEADERS, 3, b));
    input.extend(frame(HEADERS, END_HEADERS, 5, &encode(&mut encoder, &good)));

    for step in [1, 7, 4096] {
        let out = frames(&rewrite(&input, step));
        let kinds: Vec<(u8, u8, u32)> = out.iter().map(|(k, f, s, _)| (*k, *f, *s)).collect();
        assert_eq!(
            kinds,
            vec![
                (0x4, 0, 0),
                (HEADERS, END_HEADERS, 1),
                (0x0, END_STREAM, 1),
                (HEADERS, END_HEADERS | END_STREAM, 3),
                (HEADERS, END_HEADERS, 5),
            ],
            "step {step}"
        );
        assert_eq!(out[2].3, b"\0\0\0\0\x03abc");
        let mut decoder = Decoder::new();
        let mut decode = |p: &[u8]| -> Fields { decoder.decode(p).unwrap() };
        let (one, two, three) = (decode(&out[1].3), decode(&out[3].3), decode(&out[4].3));
        assert_eq!(authority_of(&one).as_deref(), Some("127.0.0.1:2379"));
        assert_eq!(authority_of(&two).as_deref(), Some("127.0.0.1:2379"));
        assert_eq!(three, good, "a valid block keeps every field");
        let without = |f: &Fields| -> Fields {
            f.iter()
                .filter(|(n, _)| n != b":authority")
                .cloned()
                .collect()
        };
        assert_eq!(without(&two), without(&second));
    }
}

#[test]
fn a_large_block_is_split_into_continuations() {
    let mut encoder = Encoder::new();
    let mut fields = request("http://h:1", "/x");
    fields.push((b"x-big".to_vec(), vec![b'v'; 40_000]));
    let mut input = PREFACE.to_vec();
    let block = encode(&mut encoder, &fields);
    for (i, part) in block.chunks(MAX_FRAME).enumerate() {
        let last = (i + 1) * MAX_FRAME >= block.len();
        let kind = if i == 0 { HEADERS } else { CONTINUATION };
        input.extend(frame(kind, if last { END_HEADERS } else { 0 }, 1, part));
    }
    let out = frames(&rewrite(&input, 1000));
    assert!(out.len() >= 3);
    assert!(out.iter().all(|(_, _, _, p)| p.len() <= MAX_FRAME));
    let block: Vec<u8> = out.iter().flat_map(|(_, _, _, p)| p.clone()).collect();
    let decoded = Decoder::new().decode(&block).unwrap();
    assert_eq!(authority_of(&decoded).as_deref(), Some("h:1"));
    assert_eq!(decoded.last().unwrap().1.len(), 40_000);
}

#[test]
fn what_is_not_http2_or_does_not_decode_passes_through_unchanged() {
    let http1 = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
    assert_eq!(rewrite(&http1, 3), http1);
    let mut broken = PREFACE.to_vec();
    broken.extend(frame(HEADERS, END_HEADERS, 1, &[0xff, 0xff, 0xff]));
    broken.extend(frame(0x0, 0, 1, b"after"));
    assert_eq!(rewrite(&broken, 5), broken);
}

#[test]
fn a_connection_whose_first_block_is_valid_passes_through_unchanged() {
    let mut encoder = Encoder::new();
    let good = request("localhost:2379", "/etcdserverpb.KV/Put");
    let later = request("http://127.0.0.1:2379", "/etcdserverpb.KV/Range");
    let mut input = PREFACE.to_vec();
    input.extend(frame(HEADERS, END_HEADERS, 1, &encode(&mut encoder, &good)));
    input.extend(frame(0x0, END_STREAM, 1, b"\0\0\0\0\x03abc"));
    input.extend(frame(
        HEADERS,
        END_HEADERS,
        3,
        &encode(&mut encoder, &later),
    ));
    for step in [1, 7, 4096] {
        assert_eq!(rewrite(&input, step), input, "step {step}");
    }
}
