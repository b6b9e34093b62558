//! Round trips through the bbolt writer and reader: every bucket and pair comes back, whatever
//! the sizes (empty buckets, values spanning pages, trees several branch levels deep).

use super::read::{BoltFile, BucketRoot};
use super::write::{BoltWriter, BucketSource, PairIter};
use super::PAGE_SIZE;
use crate::io::Disk;
use crate::storage::backend::Pair;
use proptest::prelude::*;

#[derive(Clone)]
struct Fixed(Vec<(Vec<u8>, Vec<Pair>)>);

impl BucketSource for Fixed {
    fn names(&self) -> Vec<Vec<u8>> {
        self.0.iter().map(|(n, _)| n.clone()).collect()
    }

    fn pairs(&self, bucket: usize) -> Result<PairIter, crate::storage::StorageError> {
        Ok(Box::new(self.0[bucket].1.clone().into_iter().map(Ok)))
    }
}

/// Writes `source` into a file and reads every bucket back.
fn round_trip(source: Fixed) -> Vec<(Vec<u8>, Vec<Pair>)> {
    let dir = tempfile::tempdir().unwrap();
    let disk = Disk::new(dir.path());
    disk.create_dir_all("").unwrap();
    let writer = BoltWriter::new(source, 3000).unwrap();
    let expected_len = writer.file_bytes();
    let bytes: Vec<u8> = writer.flat_map(|c| c.unwrap()).collect();
    assert_eq!(bytes.len() as u64, expected_len);
    assert_eq!(bytes.len() % PAGE_SIZE, 0);
    disk.write_atomic("db", &bytes).unwrap();
    let file = BoltFile::open(disk.open_random("db").unwrap()).unwrap();
    assert_eq!(file.size(), expected_len);
    file.buckets()
        .unwrap()
        .into_iter()
        .map(|(name, root)| {
            let pairs = file.pairs(root).collect::<Result<Vec<_>, _>>().unwrap();
            (name, pairs)
        })
        .collect()
}

fn numbered(n: usize, value_len: usize) -> Vec<Pair> {
    (0..n)
        .map(|i| (format!("k{i:08}").into_bytes(), vec![i as u8; value_len]))
        .collect()
}

#[test]
fn empty_buckets_and_deep_trees_come_back() {
    let source = Fixed(vec![
        (b"a".to_vec(), vec![]),
        (b"big".to_vec(), numbered(3, 3 * PAGE_SIZE + 5)),
        // Enough small pairs for two branch levels above the leaves.
        (b"many".to_vec(), numbered(60_000, 3)),
        (b"z".to_vec(), numbered(1, 0)),
    ]);
    assert_eq!(round_trip(source.clone()), source.0);
}

#[test]
fn a_damaged_meta_page_is_refused_when_both_are() {
    let dir = tempfile::tempdir().unwrap();
    let disk = Disk::new(dir.path());
    disk.create_dir_all("").unwrap();
    let source = Fixed(vec![(b"key".to_vec(), numbered(10, 10))]);
    let mut bytes: Vec<u8> = BoltWriter::new(source.clone(), 1 << 16)
        .unwrap()
        .flat_map(|c| c.unwrap())
        .collect();
    // One meta page damaged: the other serves.
    bytes[20] ^= 1;
    disk.write_atomic("one", &bytes).unwrap();
    let file = BoltFile::open(disk.open_random("one").unwrap()).unwrap();
    let (_, root) = file.buckets().unwrap().remove(0);
    assert_eq!(file.pairs(root).count(), 10);
    // Both damaged: refused.
    bytes[PAGE_SIZE + 20] ^= 1;
    disk.write_atomic("both", &bytes).unwrap();
    assert!(BoltFile::open(disk.open_random("both").unwrap()).is_err());
}

#[test]
fn inline_buckets_are_read() {
    // A root page whose one bucket is stored inline, as bbolt stores small buckets.
    let mut inline = Vec::new();
    super::PageHeader {
        id: 0,
        flags: super::LEAF_PAGE,
        count: 1,
        overflow: 0,
    }
    .encode(&mut inline);
    inline.extend_from_slice(&0u32.to_le_bytes());
    inline.extend_from_slice(&16u32.to_le_bytes());
    inline.extend_from_slice(&1u32.to_le_bytes());
    inline.extend_from_slice(&2u32.to_le_bytes());
    inline.extend_from_slice(b"kvv");
    let dir = tempfile::tempdir().unwrap();
    let disk = Disk::new(dir.path());
    disk.create_dir_all("").unwrap();
    let mut value = vec![0u8; 16];
    value.extend_from_slice(&inline);
    // Written as a plain bucket pair, then read back as the bucket's inline root.
    let outer = Fixed(vec![(b"root".to_vec(), vec![(b"meta".to_vec(), value)])]);
    let bytes: Vec<u8> = BoltWriter::new(outer, 1 << 16)
        .unwrap()
        .flat_map(|c| c.unwrap())
        .collect();
    disk.write_atomic("db", &bytes).unwrap();
    let file = BoltFile::open(disk.open_random("db").unwrap()).unwrap();
    let (_, root) = file.buckets().unwrap().remove(0);
    let (_, value) = file.pairs(root).next().unwrap().unwrap();
    let pairs: Vec<Pair> = file
        .pairs(BucketRoot::Inline(value[16..].to_vec()))
        .map(Result::unwrap)
        .collect();
    assert_eq!(pairs, vec![(b"k".to_vec(), b"vv".to_vec())]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn any_sorted_buckets_round_trip(
        buckets in prop::collection::btree_map(
            prop::collection::vec(any::<u8>(), 1..8),
            prop::collection::btree_map(
                prop::collection::vec(any::<u8>(), 1..40),
                prop::collection::vec(any::<u8>(), 0..6000),
                0..40,
            ),
            0..5,
        )
    ) {
        let source = Fixed(
            buckets
                .into_iter()
                .map(|(name, pairs)| (name, pairs.into_iter().collect()))
                .collect(),
        );
        prop_assert_eq!(round_trip(source.clone()), source.0);
    }
}
