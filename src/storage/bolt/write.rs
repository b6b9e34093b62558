//! Writes a bbolt file from sorted buckets, as a stream of chunks: the body of a snapshot.
//!
//! Two passes over one consistent source: [`BoltWriter::new`] reads every bucket once to plan
//! the pages (how many elements each leaf takes, the page ids, the branch levels above the
//! leaves: the first key of every page is all it keeps), then the chunks re-read the buckets
//! and emit the pages in file order — meta pages, an empty freelist, the root bucket's leaf, then
//! per bucket its leaves and its branch pages bottom up. Memory is bounded by the plan (one key
//! per page) plus one chunk, whatever the data size.
//!
//! Invariant: the second pass must meet exactly the pairs the first one planned (the source is
//! one read view); if it does not, the stream ends with an error instead of a damaged file.

use std::ops::Range;

use super::{
    pages_for, Meta, PageHeader, BRANCH_PAGE, BUCKET_HEADER, BUCKET_LEAF, ELEMENT, FREELIST_PAGE,
    LEAF_PAGE, META_PAGE, PAGE_HEADER, PAGE_SIZE,
};
use crate::storage::backend::Pair;
use crate::storage::StorageError;

/// Pairs of one bucket, ascending by key.
pub type PairIter = Box<dyn Iterator<Item = Result<Pair, StorageError>> + Send>;

/// What a bbolt file is written from. `pairs` is called twice per bucket and must yield the
/// same pairs both times.
pub trait BucketSource: Send {
    /// Bucket names, ascending.
    fn names(&self) -> Vec<Vec<u8>>;
    /// The pairs of the bucket `names()[bucket]`, ascending by key.
    fn pairs(&self, bucket: usize) -> Result<PairIter, StorageError>;
}

/// Page ids of the fixed pages.
const FREELIST_ID: u64 = 2;
const ROOT_ID: u64 = 3;
const FIRST_FREE_ID: u64 = 4;

/// One page of the plan: its id, the pages it spans, and the first key under it.
#[derive(Debug)]
struct Node {
    id: u64,
    pages: usize,
    first_key: Vec<u8>,
}

/// A level of a bucket's tree: its pages and, above the leaves, the range of pages of the
/// level below each one holds.
#[derive(Debug, Default)]
struct Level {
    nodes: Vec<Node>,
    children: Vec<Range<usize>>,
}

/// The planned pages of one bucket; `leaf_counts[i]` and `leaf_bytes[i]` describe leaf `i`.
#[derive(Debug)]
struct BucketPlan {
    name: Vec<u8>,
    leaf_counts: Vec<u16>,
    leaf_bytes: Vec<usize>,
    /// `levels[0]` are the leaves; the last level has one page, the bucket's root.
    levels: Vec<Level>,
}

impl BucketPlan {
    fn root(&self) -> u64 {
        self.levels.last().expect("at least the leaves").nodes[0].id
    }
}

/// Groups the pages of `below` into branch pages, numbered from `next_id`.
fn branch_level(below: &Level, next_id: &mut u64) -> Level {
    let mut level = Level::default();
    let mut start = 0;
    while start < below.nodes.len() {
        let mut bytes = PAGE_HEADER;
        let mut end = start;
        while end < below.nodes.len() {
            let add = ELEMENT + below.nodes[end].first_key.len();
            if end > start && bytes + add > PAGE_SIZE {
                break;
            }
            bytes += add;
            end += 1;
        }
        let pages = pages_for(bytes);
        level.nodes.push(Node {
            id: *next_id,
            pages,
            first_key: below.nodes[start].first_key.clone(),
        });
        *next_id += pages as u64;
        level.children.push(start..end);
        start = end;
    }
    level
}

/// Plans bucket `index` of `source`, numbering its pages from `next_id`.
fn plan_bucket(
    source: &dyn BucketSource,
    index: usize,
    name: Vec<u8>,
    next_id: &mut u64,
) -> Result<BucketPlan, StorageError> {
    let mut plan = BucketPlan {
        name,
        leaf_counts: Vec::new(),
        leaf_bytes: Vec::new(),
        levels: vec![Level::default()],
    };
    let mut open: Option<(Vec<u8>, u16, usize)> = None;
    let mut close = |plan: &mut BucketPlan, (first_key, count, bytes): (Vec<u8>, u16, usize)| {
        let pages = pages_for(bytes);
        plan.levels[0].nodes.push(Node {
            id: *next_id,
            pages,
            first_key,
        });
        *next_id += pages as u64;
        plan.leaf_counts.push(count);
        plan.leaf_bytes.push(bytes);
    };
    for pair in source.pairs(index)? {
        let (key, value) = pair?;
        let add = ELEMENT + key.len() + value.len();
        match &mut open {
            Some((_, count, bytes)) if *bytes + add <= PAGE_SIZE && *count < u16::MAX => {
                *count += 1;
                *bytes += add;
            }
            _ => {
                if let Some(full) = open.take() {
                    close(&mut plan, full);
                }
                open = Some((key, 1, PAGE_HEADER + add));
            }
        }
    }
    // An empty bucket still has its (empty) leaf.
    close(&mut plan, open.unwrap_or((Vec::new(), 0, PAGE_HEADER)));
    while plan.levels.last().expect("leaves").nodes.len() > 1 {
        let level = branch_level(plan.levels.last().expect("leaves"), next_id);
        plan.levels.push(level);
    }
    Ok(plan)
}

/// Where the second pass is.
enum Stage {
    Head,
    Leaves {
        bucket: usize,
        pairs: PairIter,
        leaf: usize,
    },
    Branches {
        bucket: usize,
        level: usize,
    },
    Done,
}

/// A bbolt file of a [`BucketSource`], produced as chunks (an iterator of byte blocks of
/// `chunk_bytes`, the last one shorter).
pub struct BoltWriter<S> {
    source: S,
    buckets: Vec<BucketPlan>,
    pgid: u64,
    stage: Stage,
    out: Vec<u8>,
    chunk_bytes: usize,
    failed: bool,
}

impl<S: BucketSource> BoltWriter<S> {
    /// Plans the file (the first pass over `source`).
    pub fn new(source: S, chunk_bytes: usize) -> Result<BoltWriter<S>, StorageError> {
        let mut next_id = FIRST_FREE_ID;
        let mut buckets = Vec::new();
        for (index, name) in source.names().into_iter().enumerate() {
            buckets.push(plan_bucket(&source, index, name, &mut next_id)?);
        }
        let root_bytes = PAGE_HEADER
            + buckets
                .iter()
                .map(|b| ELEMENT + b.name.len() + BUCKET_HEADER)
                .sum::<usize>();
        if root_bytes > PAGE_SIZE {
            return Err(mismatch("too many buckets for one root page"));
        }
        Ok(BoltWriter {
            source,
            buckets,
            pgid: next_id,
            stage: Stage::Head,
            out: Vec::new(),
            chunk_bytes: chunk_bytes.max(1),
            failed: false,
        })
    }

    /// Bytes of the whole file.
    pub fn file_bytes(&self) -> u64 {
        self.pgid * PAGE_SIZE as u64
    }

    /// Appends the next pages to `out`; false once everything is written.
    fn fill(&mut self) -> Result<bool, StorageError> {
        match std::mem::replace(&mut self.stage, Stage::Done) {
            Stage::Head => {
                self.write_head();
                self.stage = self.start_bucket(0)?;
            }
            Stage::Leaves {
                bucket,
                mut pairs,
                leaf,
            } => {
                let plan = &self.buckets[bucket];
                if leaf == plan.leaf_counts.len() {
                    if pairs.next().is_some() {
                        return Err(mismatch("more pairs than planned"));
                    }
                    self.stage = Stage::Branches { bucket, level: 1 };
                    return Ok(true);
                }
                let count = plan.leaf_counts[leaf] as usize;
                let mut elements = Vec::with_capacity(count);
                for _ in 0..count {
                    let (k, v) = pairs.next().ok_or_else(|| mismatch("fewer pairs"))??;
                    elements.push((0, k, v));
                }
                let node = &plan.levels[0].nodes[leaf];
                let (id, pages, bytes) = (node.id, node.pages, plan.leaf_bytes[leaf]);
                if !write_leaf(&mut self.out, id, pages, &elements, bytes) {
                    return Err(mismatch("pairs differ from the plan"));
                }
                self.stage = Stage::Leaves {
                    bucket,
                    pairs,
                    leaf: leaf + 1,
                };
            }
            Stage::Branches { bucket, level } => {
                let plan = &self.buckets[bucket];
                if level == plan.levels.len() {
                    self.stage = self.start_bucket(bucket + 1)?;
                    return Ok(true);
                }
                let (below, this) = (&plan.levels[level - 1], &plan.levels[level]);
                for (node, children) in this.nodes.iter().zip(&this.children) {
                    write_branch(&mut self.out, node, &below.nodes[children.clone()]);
                }
                self.stage = Stage::Branches {
                    bucket,
                    level: level + 1,
                };
            }
            Stage::Done => return Ok(false),
        }
        Ok(true)
    }

    fn start_bucket(&self, bucket: usize) -> Result<Stage, StorageError> {
        Ok(if bucket < self.buckets.len() {
            Stage::Leaves {
                bucket,
                pairs: self.source.pairs(bucket)?,
                leaf: 0,
            }
        } else {
            Stage::Done
        })
    }

    /// The meta pages, the freelist and the root bucket's leaf.
    fn write_head(&mut self) {
        for id in 0..2u64 {
            let meta = Meta {
                page_size: PAGE_SIZE as u32,
                root: ROOT_ID,
                freelist: FREELIST_ID,
                pgid: self.pgid,
                txid: 1,
            };
            let start = self.out.len();
            header(id, META_PAGE, 0, 1).encode(&mut self.out);
            self.out.extend_from_slice(&meta.encode());
            self.out.resize(start + PAGE_SIZE, 0);
        }
        let start = self.out.len();
        header(FREELIST_ID, FREELIST_PAGE, 0, 1).encode(&mut self.out);
        self.out.resize(start + PAGE_SIZE, 0);
        let roots: Vec<(u32, Vec<u8>, Vec<u8>)> = self
            .buckets
            .iter()
            .map(|b| {
                let mut value = b.root().to_le_bytes().to_vec();
                value.extend_from_slice(&0u64.to_le_bytes());
                (BUCKET_LEAF, b.name.clone(), value)
            })
            .collect();
        let bytes = PAGE_HEADER
            + roots
                .iter()
                .map(|(_, k, v)| ELEMENT + k.len() + v.len())
                .sum::<usize>();
        write_leaf(&mut self.out, ROOT_ID, 1, &roots, bytes);
    }
}

fn header(id: u64, flags: u16, count: usize, pages: usize) -> PageHeader {
    PageHeader {
        id,
        flags,
        count: count as u16,
        overflow: (pages - 1) as u32,
    }
}

fn mismatch(what: &str) -> StorageError {
    StorageError::Corrupt {
        path: "snapshot".into(),
        offset: 0,
        reason: format!("the backend view changed while it was written out: {what}"),
    }
}

/// Writes a leaf page of `pages` pages holding `elements` (flags, key, value); false (and
/// nothing written) if they do not take `bytes` bytes, as planned.
fn write_leaf(
    out: &mut Vec<u8>,
    id: u64,
    pages: usize,
    elements: &[(u32, Vec<u8>, Vec<u8>)],
    bytes: usize,
) -> bool {
    let used: usize = elements
        .iter()
        .map(|(_, k, v)| ELEMENT + k.len() + v.len())
        .sum();
    if PAGE_HEADER + used != bytes {
        return false;
    }
    let start = out.len();
    header(id, LEAF_PAGE, elements.len(), pages).encode(out);
    let mut data = PAGE_HEADER + ELEMENT * elements.len();
    for (i, (flags, k, v)) in elements.iter().enumerate() {
        let element_at = PAGE_HEADER + ELEMENT * i;
        out.extend_from_slice(&flags.to_le_bytes());
        out.extend_from_slice(&((data - element_at) as u32).to_le_bytes());
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
        data += k.len() + v.len();
    }
    for (_, k, v) in elements {
        out.extend_from_slice(k);
        out.extend_from_slice(v);
    }
    out.resize(start + pages * PAGE_SIZE, 0);
    true
}

/// Writes the branch page `node` over `children`.
fn write_branch(out: &mut Vec<u8>, node: &Node, children: &[Node]) {
    let start = out.len();
    header(node.id, BRANCH_PAGE, children.len(), node.pages).encode(out);
    let mut data = PAGE_HEADER + ELEMENT * children.len();
    for (i, child) in children.iter().enumerate() {
        let element_at = PAGE_HEADER + ELEMENT * i;
        out.extend_from_slice(&((data - element_at) as u32).to_le_bytes());
        out.extend_from_slice(&(child.first_key.len() as u32).to_le_bytes());
        out.extend_from_slice(&child.id.to_le_bytes());
        data += child.first_key.len();
    }
    for child in children {
        out.extend_from_slice(&child.first_key);
    }
    out.resize(start + node.pages * PAGE_SIZE, 0);
}

impl<S: BucketSource> Iterator for BoltWriter<S> {
    type Item = Result<Vec<u8>, StorageError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        while self.out.len() < self.chunk_bytes {
            match self.fill() {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
        if self.out.is_empty() {
            return None;
        }
        let rest = self.out.split_off(self.chunk_bytes.min(self.out.len()));
        Some(Ok(std::mem::replace(&mut self.out, rest)))
    }
}
