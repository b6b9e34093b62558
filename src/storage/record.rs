//! On-disk encoding of the write-ahead log.
//!
//! Owns the byte layout of WAL segments; `wal` owns the file handling.
//!
//! Segment file = header, then zero or more record frames:
//! * Header (`SEGMENT_HEADER_LEN` = 20 bytes): magic `b"DWAL"`, `u8`
//!   version (1), `u8` flags (bit 0 = *base*: replay may start here and
//!   everything older is obsolete), 2 zero bytes, `u64` segment sequence
//!   number, `u32` CRC32 of the preceding 16 bytes.
//! * Frame (`FRAME_HEADER_LEN` = 9 bytes + payload): `u32` payload length,
//!   `u32` CRC32 of (kind byte ++ payload), `u8` kind, payload.
//!
//! All integers are little-endian. Invariant: a frame is valid iff its
//! header and the full payload lie inside the buffer and the CRC matches.

/// Bytes of a segment header.
pub const SEGMENT_HEADER_LEN: usize = 20;
/// Bytes of a frame header (length, crc, kind).
pub const FRAME_HEADER_LEN: usize = 9;
/// Largest payload a frame can carry.
pub const MAX_PAYLOAD_LEN: usize = u32::MAX as usize;

const SEGMENT_MAGIC: [u8; 4] = *b"DWAL";
const SEGMENT_VERSION: u8 = 1;
const FLAG_BASE: u8 = 1;

/// One typed WAL record. The WAL never interprets `kind` or `payload`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Record {
    pub kind: u8,
    pub payload: Vec<u8>,
}

impl Record {
    /// Convenience constructor.
    pub fn new(kind: u8, payload: impl Into<Vec<u8>>) -> Record {
        Record {
            kind,
            payload: payload.into(),
        }
    }
}

/// Header of one segment file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SegmentHeader {
    pub seq: u64,
    pub base: bool,
}

impl SegmentHeader {
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_LEN] {
        let mut out = [0u8; SEGMENT_HEADER_LEN];
        out[0..4].copy_from_slice(&SEGMENT_MAGIC);
        out[4] = SEGMENT_VERSION;
        out[5] = if self.base { FLAG_BASE } else { 0 };
        out[8..16].copy_from_slice(&self.seq.to_le_bytes());
        let crc = crc32fast::hash(&out[0..16]);
        out[16..20].copy_from_slice(&crc.to_le_bytes());
        out
    }

    pub fn decode(buf: &[u8]) -> Result<SegmentHeader, String> {
        if buf.len() < SEGMENT_HEADER_LEN {
            return Err(format!("segment header truncated ({} bytes)", buf.len()));
        }
        let stored = read_u32(buf, 16);
        let computed = crc32fast::hash(&buf[0..16]);
        if stored != computed {
            return Err(format!(
                "segment header checksum mismatch (stored {stored:08x}, computed {computed:08x})"
            ));
        }
        if buf[0..4] != SEGMENT_MAGIC {
            return Err("bad segment magic".to_string());
        }
        if buf[4] != SEGMENT_VERSION {
            return Err(format!("unsupported segment version {}", buf[4]));
        }
        if buf[5] & !FLAG_BASE != 0 {
            return Err(format!("unknown segment flags {:#04x}", buf[5]));
        }
        Ok(SegmentHeader {
            seq: read_u64(buf, 8),
            base: buf[5] & FLAG_BASE != 0,
        })
    }
}

fn read_u32(buf: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(buf[at..at + 4].try_into().expect("4 bytes"))
}

fn read_u64(buf: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(buf[at..at + 8].try_into().expect("8 bytes"))
}

fn frame_crc(kind: u8, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&[kind]);
    h.update(payload);
    h.finalize()
}

/// Frame header for `payload` (caller checked `payload.len() <= MAX_PAYLOAD_LEN`).
pub(crate) fn frame_header(kind: u8, payload: &[u8]) -> [u8; FRAME_HEADER_LEN] {
    let len = u32::try_from(payload.len()).expect("payload length checked by caller");
    let mut out = [0u8; FRAME_HEADER_LEN];
    out[0..4].copy_from_slice(&len.to_le_bytes());
    out[4..8].copy_from_slice(&frame_crc(kind, payload).to_le_bytes());
    out[8] = kind;
    out
}

/// Appends a whole frame to `out`.
pub(crate) fn encode_frame(out: &mut Vec<u8>, kind: u8, payload: &[u8]) {
    out.extend_from_slice(&frame_header(kind, payload));
    out.extend_from_slice(payload);
}

/// A frame decoded in place: kind and payload range within the buffer.
struct Frame {
    kind: u8,
    payload: std::ops::Range<usize>,
}

/// Decodes the frame starting at `pos`; `Err` carries a human reason.
fn decode_frame(buf: &[u8], pos: usize) -> Result<Frame, String> {
    let have = buf.len() - pos;
    if have < FRAME_HEADER_LEN {
        return Err(format!(
            "truncated record header ({have} of {FRAME_HEADER_LEN} bytes)"
        ));
    }
    let len = read_u32(buf, pos) as usize;
    let start = pos + FRAME_HEADER_LEN;
    if len > buf.len() - start {
        return Err(format!(
            "truncated record payload ({} of {len} bytes)",
            buf.len() - start
        ));
    }
    let kind = buf[pos + 8];
    let payload = start..start + len;
    let stored = read_u32(buf, pos + 4);
    let computed = frame_crc(kind, &buf[payload.clone()]);
    if stored != computed {
        return Err(format!(
            "record checksum mismatch (stored {stored:08x}, computed {computed:08x})"
        ));
    }
    Ok(Frame { kind, payload })
}

/// Result of decoding the frames of one segment.
#[derive(Debug)]
pub(crate) struct SegmentScan {
    /// Valid records in order, up to the first damaged frame.
    pub records: Vec<Record>,
    /// First damaged frame, if any: its offset and why it is invalid.
    /// Everything from that offset on was not decoded.
    pub damage: Option<(usize, String)>,
}

/// Decodes every frame after the segment header of `buf` (the header must
/// already have been validated).
pub(crate) fn scan_segment(buf: &[u8]) -> SegmentScan {
    let mut records = Vec::new();
    let mut pos = SEGMENT_HEADER_LEN;
    while pos < buf.len() {
        match decode_frame(buf, pos) {
            Ok(frame) => {
                records.push(Record {
                    kind: frame.kind,
                    payload: buf[frame.payload.clone()].to_vec(),
                });
                pos = frame.payload.end;
            }
            Err(reason) => {
                return SegmentScan {
                    records,
                    damage: Some((pos, reason)),
                }
            }
        }
    }
    SegmentScan {
        records,
        damage: None,
    }
}

/// Whether damage found at frame offset `pos` of a segment's tail is what a crash during an
/// append leaves (see `crate::io`): a frame cut short (its header or payload runs past the end of
/// the file), or one whose bytes end in zeros through the end of the file (the size grew before
/// the data reached the disk). A complete frame that fails its checksum and ends in data is
/// corruption of synced bytes, never a torn write; so is a frame "cut short" only because its
/// length field grew (a shorter length matches its checksum). (A frame that happens to end in a
/// zero byte cannot be told apart, so it counts as torn.)
pub(crate) fn is_torn_tail(buf: &[u8], pos: usize) -> bool {
    let have = buf.len() - pos;
    if have < FRAME_HEADER_LEN {
        return true;
    }
    let len = read_u32(buf, pos) as usize;
    let end = pos + FRAME_HEADER_LEN + len;
    if end > buf.len() {
        // Cut short, unless a damaged length field only makes it look so: a tear keeps a prefix
        // of the frame, so no shorter payload can match the stored checksum (but for a 2^-32
        // chance per length), whereas after a changed length the real payload does.
        return !shorter_payload_matches(buf, pos);
    }
    buf[end - 1..].iter().all(|&b| b == 0)
}

/// Whether some payload length that fits in `buf` matches the checksum of the frame at `pos`.
fn shorter_payload_matches(buf: &[u8], pos: usize) -> bool {
    let stored = read_u32(buf, pos + 4);
    let mut h = crc32fast::Hasher::new();
    h.update(&[buf[pos + 8]]);
    if h.clone().finalize() == stored {
        return true;
    }
    buf[pos + FRAME_HEADER_LEN..].iter().any(|&b| {
        h.update(&[b]);
        h.clone().finalize() == stored
    })
}

/// Offset of the first valid frame starting strictly after `pos`, if any.
/// Used to tell a torn tail (nothing valid follows the damage) from
/// corruption in the middle (valid records follow it).
pub(crate) fn find_valid_frame_after(buf: &[u8], pos: usize) -> Option<usize> {
    (pos + 1..buf.len()).find(|&at| decode_frame(buf, at).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_damage() {
        let h = SegmentHeader {
            seq: 42,
            base: true,
        };
        let mut bytes = h.encode();
        assert_eq!(SegmentHeader::decode(&bytes).unwrap(), h);
        assert!(SegmentHeader::decode(&bytes[..19]).is_err());
        bytes[9] ^= 1;
        assert!(SegmentHeader::decode(&bytes).is_err());
    }

    #[test]
    fn frames_round_trip_and_zero_fill_is_invalid() {
        let mut buf = SegmentHeader { seq: 1, base: true }.encode().to_vec();
        encode_frame(&mut buf, 3, b"abc");
        encode_frame(&mut buf, 0, b"");
        let good_len = buf.len();
        buf.extend_from_slice(&[0u8; 40]);
        let scan = scan_segment(&buf);
        assert_eq!(
            scan.records,
            vec![Record::new(3, "abc"), Record::new(0, "")]
        );
        assert_eq!(scan.damage.as_ref().unwrap().0, good_len);
        assert_eq!(find_valid_frame_after(&buf, good_len), None);
    }
}
