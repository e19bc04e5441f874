//! ULIDs as redis-om makes primary keys: 48 bits of Unix milliseconds and 80 random bits,
//! in Crockford's base32 (26 characters).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    h.write_u32(std::process::id());
    h.finish()
}

pub(crate) fn new() -> String {
    let ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    let random = ((random_u64() as u128) << 16) ^ (random_u64() as u128 & 0xFFFF_FFFF_FFFF_FFFF_FFFF);
    let random = random & ((1u128 << 80) - 1);
    let value: u128 = ((ms as u128 & ((1u128 << 48) - 1)) << 80) | random;
    (0..26).rev().map(|i| ALPHABET[((value >> (i * 5)) & 31) as usize] as char).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn ulids_are_26_crockford_chars_and_distinct() {
        let a = super::new();
        let b = super::new();
        assert_eq!(a.len(), 26);
        assert!(a.bytes().all(|c| super::ALPHABET.contains(&c)));
        assert_ne!(a, b);
        assert!(a.as_bytes()[0] <= b'7', "the first char holds 3 bits only: {a}");
    }
}
