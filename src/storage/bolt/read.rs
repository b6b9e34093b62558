//! Reads a bbolt file page by page (an etcd data file or snapshot), without loading it whole.
//!
//! [`BoltFile::open`] validates the meta pages and takes the current one; [`BoltFile::buckets`]
//! lists the top-level buckets; [`BoltFile::pairs`] walks one bucket's tree depth first, holding
//! one page per level. Every malformed structure (a page id past the end, a page of the wrong
//! kind, an element pointing outside its page) is a [`StorageError::Corrupt`] naming the file
//! and the page's offset, never a panic.

use std::path::PathBuf;

use super::{
    u32_at, u64_at, Meta, PageHeader, BRANCH_PAGE, BUCKET_HEADER, BUCKET_LEAF, ELEMENT, LEAF_PAGE,
    PAGE_HEADER,
};
use crate::io::RandomFile;
use crate::storage::backend::Pair;
use crate::storage::StorageError;

/// Where a bucket's tree is: a page, or a leaf page stored inline in its parent's value.
#[derive(Clone, Debug)]
pub enum BucketRoot {
    /// The root page's id.
    Page(u64),
    /// The bucket's whole leaf page.
    Inline(Vec<u8>),
}

/// An open bbolt file.
pub struct BoltFile {
    file: RandomFile,
    path: PathBuf,
    page_size: u64,
    meta: Meta,
}

impl BoltFile {
    /// Opens `file` (a bbolt file, possibly followed by other bytes such as a snapshot's
    /// trailer).
    pub fn open(file: RandomFile) -> Result<BoltFile, StorageError> {
        let path = file.path().to_path_buf();
        let len = file.len()?;
        let mut first = vec![0u8; PAGE_HEADER + 64];
        if len < first.len() as u64 {
            return Err(corrupt(&path, 0, "too short for a bbolt file".into()));
        }
        file.read_at(0, &mut first)?;
        let meta0 = Meta::decode(&first[PAGE_HEADER..]);
        let page_size = match &meta0 {
            Ok(m) => u64::from(m.page_size),
            // Meta 0 is damaged: find meta 1 at the usual page sizes.
            Err(_) => 4096,
        };
        let mut second = vec![0u8; PAGE_HEADER + 64];
        let meta1 = if len >= page_size + second.len() as u64 {
            file.read_at(page_size, &mut second)?;
            Meta::decode(&second[PAGE_HEADER..])
        } else {
            Err("no second meta page".into())
        };
        let meta = match (meta0, meta1) {
            (Ok(a), Ok(b)) => {
                if b.txid > a.txid {
                    b
                } else {
                    a
                }
            }
            (Ok(m), Err(_)) | (Err(_), Ok(m)) => m,
            (Err(e), Err(_)) => return Err(corrupt(&path, 0, e)),
        };
        let page_size = u64::from(meta.page_size);
        if !(512..=65536).contains(&page_size) || !page_size.is_power_of_two() {
            return Err(corrupt(&path, 0, format!("page size {page_size}")));
        }
        if meta.pgid.saturating_mul(page_size) > len {
            return Err(corrupt(
                &path,
                0,
                format!("{} pages in use but the file holds {len} bytes", meta.pgid),
            ));
        }
        Ok(BoltFile {
            file,
            path,
            page_size,
            meta,
        })
    }

    /// Bytes in use (pages in use × page size: what bbolt's `Tx.Size` reports).
    pub fn size(&self) -> u64 {
        self.meta.pgid * self.page_size
    }

    /// Page `id`, with the pages it overflows into.
    fn page(&self, id: u64) -> Result<Vec<u8>, StorageError> {
        let offset = id.saturating_mul(self.page_size);
        if id >= self.meta.pgid {
            return Err(self.corrupt(offset, format!("page {id} is past the end")));
        }
        let mut head = vec![0u8; PAGE_HEADER];
        self.file.read_at(offset, &mut head)?;
        let header = PageHeader::decode(&head);
        let pages = u64::from(header.overflow) + 1;
        if header.id != id || id + pages > self.meta.pgid {
            return Err(self.corrupt(offset, format!("bad page header {header:?}")));
        }
        let mut page = vec![0u8; (pages * self.page_size) as usize];
        self.file.read_at(offset, &mut page)?;
        Ok(page)
    }

    fn corrupt(&self, offset: u64, reason: String) -> StorageError {
        corrupt(&self.path, offset, reason)
    }

    /// The top-level buckets, ascending by name.
    pub fn buckets(&self) -> Result<Vec<(Vec<u8>, BucketRoot)>, StorageError> {
        let mut out = Vec::new();
        for item in self.walk(BucketRoot::Page(self.meta.root)) {
            let (flags, name, value) = item?;
            if flags & BUCKET_LEAF == 0 {
                continue;
            }
            if value.len() < BUCKET_HEADER {
                return Err(self.corrupt(0, format!("bucket {name:?}: short header")));
            }
            let root = u64_at(&value, 0);
            let root = if root == 0 {
                BucketRoot::Inline(value[BUCKET_HEADER..].to_vec())
            } else {
                BucketRoot::Page(root)
            };
            out.push((name, root));
        }
        Ok(out)
    }

    /// The pairs of a bucket, ascending by key (nested buckets are left out).
    pub fn pairs(&self, root: BucketRoot) -> impl Iterator<Item = Result<Pair, StorageError>> + '_ {
        self.walk(root).filter_map(|item| match item {
            Ok((flags, _, _)) if flags & BUCKET_LEAF != 0 => None,
            Ok((_, k, v)) => Some(Ok((k, v))),
            Err(e) => Some(Err(e)),
        })
    }

    fn walk(&self, root: BucketRoot) -> Walk<'_> {
        Walk {
            file: self,
            stack: Vec::new(),
            start: Some(root),
            failed: false,
        }
    }
}

fn corrupt(path: &std::path::Path, offset: u64, reason: String) -> StorageError {
    StorageError::Corrupt {
        path: path.to_path_buf(),
        offset,
        reason,
    }
}

/// A leaf element: flags, key, value.
type Element = (u32, Vec<u8>, Vec<u8>);

/// A page being walked: its bytes, header, and the next element.
struct Open {
    page: Vec<u8>,
    header: PageHeader,
    next: usize,
}

/// Depth-first walk over a bucket's tree, yielding leaf elements `(flags, key, value)`.
struct Walk<'a> {
    file: &'a BoltFile,
    stack: Vec<Open>,
    start: Option<BucketRoot>,
    failed: bool,
}

impl Walk<'_> {
    fn push(&mut self, page: Vec<u8>) -> Result<(), StorageError> {
        if page.len() < PAGE_HEADER {
            return Err(self.file.corrupt(0, "inline page cut short".into()));
        }
        let header = PageHeader::decode(&page);
        if header.flags & (LEAF_PAGE | BRANCH_PAGE) == 0 {
            let reason = format!("page {} is neither leaf nor branch", header.id);
            return Err(self.file.corrupt(header.id * self.file.page_size, reason));
        }
        if self.stack.len() > 64 {
            return Err(self.file.corrupt(0, "tree deeper than 64 levels".into()));
        }
        self.stack.push(Open {
            page,
            header,
            next: 0,
        });
        Ok(())
    }

    /// The bytes `at..at + len` of `page`, or an error naming the page.
    fn slice(&self, open: &Open, at: usize, len: usize) -> Result<Vec<u8>, StorageError> {
        open.page
            .get(at..at.saturating_add(len))
            .map(<[u8]>::to_vec)
            .ok_or_else(|| {
                let reason = format!("element of page {} outside the page", open.header.id);
                self.file
                    .corrupt(open.header.id * self.file.page_size, reason)
            })
    }

    fn step(&mut self) -> Result<Option<Element>, StorageError> {
        if let Some(root) = self.start.take() {
            let page = match root {
                BucketRoot::Page(id) => self.file.page(id)?,
                BucketRoot::Inline(page) => page,
            };
            self.push(page)?;
        }
        loop {
            let Some(open) = self.stack.last() else {
                return Ok(None);
            };
            if open.next >= usize::from(open.header.count) {
                self.stack.pop();
                continue;
            }
            let at = PAGE_HEADER + ELEMENT * open.next;
            let element = self.slice(open, at, ELEMENT)?;
            let leaf = open.header.flags & LEAF_PAGE != 0;
            self.stack.last_mut().expect("just read").next += 1;
            let open = self.stack.last().expect("just read");
            if leaf {
                let flags = u32_at(&element, 0);
                let key_at = at + u32_at(&element, 4) as usize;
                let (ksize, vsize) = (u32_at(&element, 8) as usize, u32_at(&element, 12) as usize);
                let key = self.slice(open, key_at, ksize)?;
                let value = self.slice(open, key_at + ksize, vsize)?;
                return Ok(Some((flags, key, value)));
            }
            let child = u64_at(&element, 8);
            let page = self.file.page(child)?;
            self.push(page)?;
        }
    }
}

impl Iterator for Walk<'_> {
    type Item = Result<Element, StorageError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match self.step() {
            Ok(item) => item.map(Ok),
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}
