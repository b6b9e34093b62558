//! A sealed word: one u64 in a 16-byte block, `magic` (4 bytes), the value (u64 LE), CRC32 of the
//! preceding 12 bytes. The commit mark's slots and the member id record are such blocks; a block
//! that is torn, damaged or of another kind decodes as nothing.

/// Bytes of a sealed word.
pub const SEALED_LEN: usize = 16;

/// Seals `value` under `magic`.
pub fn seal(magic: &[u8; 4], value: u64) -> [u8; SEALED_LEN] {
    let mut out = [0u8; SEALED_LEN];
    out[..4].copy_from_slice(magic);
    out[4..12].copy_from_slice(&value.to_le_bytes());
    let crc = crc32fast::hash(&out[..12]);
    out[12..].copy_from_slice(&crc.to_le_bytes());
    out
}

/// The value `bytes` seal under `magic`, if they are exactly such a block and intact.
pub fn unseal(magic: &[u8; 4], bytes: &[u8]) -> Option<u64> {
    if bytes.len() != SEALED_LEN || &bytes[..4] != magic {
        return None;
    }
    let crc = u32::from_le_bytes(bytes[12..].try_into().ok()?);
    if crc32fast::hash(&bytes[..12]) != crc {
        return None;
    }
    Some(u64::from_le_bytes(bytes[4..12].try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_word_opens_only_intact_and_under_its_magic() {
        let block = seal(b"TEST", 0x0123_4567_89ab_cdef);
        assert_eq!(unseal(b"TEST", &block), Some(0x0123_4567_89ab_cdef));
        assert_eq!(unseal(b"OTHR", &block), None);
        assert_eq!(unseal(b"TEST", &block[..15]), None);
        for at in 0..SEALED_LEN {
            let mut bad = block;
            bad[at] ^= 0x20;
            assert_eq!(unseal(b"TEST", &bad), None, "byte {at} flipped");
        }
    }
}
