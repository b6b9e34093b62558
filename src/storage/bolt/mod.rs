//! bbolt's file format (the B+tree file etcd keeps its data in, and the body of an etcd
//! snapshot), written by [`write`] and read by [`read`], so that detcd's snapshots open in
//! etcd's tools and etcd's snapshots restore into detcd.
//!
//! The format, as bbolt documents it (every integer little-endian):
//! * The file is a sequence of pages of `page_size` bytes (4096 here). Each page starts with a
//!   16-byte header: `id u64`, `flags u16` (branch 0x01, leaf 0x02, meta 0x04, freelist 0x10),
//!   `count u16` (elements), `overflow u32` (further pages the page spans).
//! * Pages 0 and 1 are meta pages: after the header, `magic u32` (0xED0CDAED), `version u32`
//!   (2), `page_size u32`, `flags u32`, the root bucket (`root pgid u64`, `sequence u64`),
//!   `freelist pgid u64`, `pgid u64` (pages in use: the high-water mark), `txid u64`, and a
//!   checksum `u64`: FNV-1a (64 bit) of the 56 bytes before it. The valid meta with the higher
//!   txid is current.
//! * A leaf page holds `count` elements of 16 bytes (`flags u32`, `pos u32`, `ksize u32`,
//!   `vsize u32`; `pos` counts from the element's own start to its key), then the keys and
//!   values. Flag 0x01 marks a nested bucket, whose value is `root pgid u64, sequence u64`,
//!   followed, when the root is 0, by the bucket's whole leaf page inline.
//! * A branch page holds `count` elements of 16 bytes (`pos u32`, `ksize u32`, `pgid u64`), each
//!   the first key of a child page, then the keys.
//! * The root bucket's leaf lists the top-level buckets (etcd has no deeper nesting).
//!
//! Invariant: a file [`write::BoltWriter`] produces is exactly `pgid × page_size` bytes, its
//! buckets and keys ascending, every page reachable, so bbolt (and [`read::BoltFile`]) opens it.

pub mod read;
pub mod write;

#[cfg(test)]
mod tests;

/// Page size of the files written here (bbolt's default on Linux).
pub const PAGE_SIZE: usize = 4096;
/// bbolt's magic number.
const MAGIC: u32 = 0xED0C_DAED;
/// bbolt's file format version.
const VERSION: u32 = 2;
/// Bytes of a page header.
const PAGE_HEADER: usize = 16;
/// Bytes of a leaf or branch element.
const ELEMENT: usize = 16;
/// Bytes of a bucket header (`root`, `sequence`).
const BUCKET_HEADER: usize = 16;
/// Bytes of the meta fields the checksum covers.
const META_CHECKED: usize = 56;

const BRANCH_PAGE: u16 = 0x01;
const LEAF_PAGE: u16 = 0x02;
const META_PAGE: u16 = 0x04;
const FREELIST_PAGE: u16 = 0x10;
/// Leaf element flag: the value is a nested bucket.
const BUCKET_LEAF: u32 = 0x01;

/// A page header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PageHeader {
    id: u64,
    flags: u16,
    count: u16,
    overflow: u32,
}

impl PageHeader {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.id.to_le_bytes());
        out.extend_from_slice(&self.flags.to_le_bytes());
        out.extend_from_slice(&self.count.to_le_bytes());
        out.extend_from_slice(&self.overflow.to_le_bytes());
    }

    fn decode(b: &[u8]) -> PageHeader {
        PageHeader {
            id: u64_at(b, 0),
            flags: u16::from_le_bytes([b[8], b[9]]),
            count: u16::from_le_bytes([b[10], b[11]]),
            overflow: u32_at(b, 12),
        }
    }
}

/// The fields of a meta page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Meta {
    page_size: u32,
    root: u64,
    freelist: u64,
    pgid: u64,
    txid: u64,
}

impl Meta {
    /// The meta page body (after the page header), checksum included.
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(META_CHECKED + 8);
        out.extend_from_slice(&MAGIC.to_le_bytes());
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&self.page_size.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&self.root.to_le_bytes());
        out.extend_from_slice(&0u64.to_le_bytes());
        out.extend_from_slice(&self.freelist.to_le_bytes());
        out.extend_from_slice(&self.pgid.to_le_bytes());
        out.extend_from_slice(&self.txid.to_le_bytes());
        let sum = fnv1a(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        out
    }

    /// The meta in `body` (a meta page after its header), if its magic, version and checksum
    /// are right.
    fn decode(body: &[u8]) -> Result<Meta, String> {
        if body.len() < META_CHECKED + 8 {
            return Err("meta page cut short".into());
        }
        if u32_at(body, 0) != MAGIC {
            return Err("not a bbolt file (bad magic)".into());
        }
        if u32_at(body, 4) != VERSION {
            return Err(format!(
                "bbolt version {} (want {VERSION})",
                u32_at(body, 4)
            ));
        }
        if u64_at(body, META_CHECKED) != fnv1a(&body[..META_CHECKED]) {
            return Err("meta checksum mismatch".into());
        }
        Ok(Meta {
            page_size: u32_at(body, 8),
            root: u64_at(body, 16),
            freelist: u64_at(body, 32),
            pgid: u64_at(body, 40),
            txid: u64_at(body, 48),
        })
    }
}

/// FNV-1a, 64 bit (bbolt's meta checksum).
fn fnv1a(bytes: &[u8]) -> u64 {
    use std::hash::Hasher as _;
    let mut h = fnv::FnvHasher::default();
    h.write(bytes);
    h.finish()
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Pages a block of `bytes` bytes occupies.
fn pages_for(bytes: usize) -> usize {
    bytes.div_ceil(PAGE_SIZE).max(1)
}
