//! Stable, dependency-free hashing for identifiers that must not change
//! between runs or machines (unique-name suffixes, plan fingerprints), and
//! a fast hasher for the engine's in-memory maps keyed by addresses and ids.

/// 64-bit FNV-1a over `bytes`. Stable across platforms and releases.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// Incremental FNV-1a, for hashing many parts without building one buffer.
#[derive(Debug, Clone)]
pub struct Fnv64(u64);

impl Default for Fnv64 {
    fn default() -> Self {
        Fnv64(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv64 {
    pub fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// Writes `bytes` followed by a separator, so ("ab","c") ≠ ("a","bc").
    pub fn part(&mut self, bytes: &[u8]) {
        self.write(bytes);
        self.write(&[0xff]);
    }

    pub fn finish(&self) -> u64 {
        self.0
    }
}

/// Lets serializers write straight into the hash (no intermediate string).
impl std::io::Write for Fnv64 {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Fnv64::write(self, buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The suffix `unique` appends to a name: derived from stack, env and address
/// only, so re-plans stay quiet. Six base-36 characters.
pub fn unique_suffix(stack: &str, env: &str, address: &str) -> String {
    let mut h = Fnv64::default();
    h.part(stack.as_bytes());
    h.part(env.as_bytes());
    h.part(address.as_bytes());
    let mut n = h.finish();
    let alphabet = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = [0u8; 6];
    for slot in out.iter_mut() {
        *slot = alphabet[(n % 36) as usize];
        n /= 36;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A fast, non-cryptographic hasher (the Fx multiply-rotate scheme, a word
/// at a time) for maps keyed by addresses and ids: hashing is a visible part
/// of planning 100,000 resources, and the keys are the user's own, so the
/// hash-flooding resistance of the standard `SipHash` buys nothing here.
/// Not stable across releases: never persist its values.
#[derive(Debug, Clone, Copy, Default)]
pub struct FastHasher(u64);

impl FastHasher {
    const K: u64 = 0xf135_7aea_2e62_a9c5;

    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(26) ^ word).wrapping_mul(Self::K);
    }
}

impl std::hash::Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 59));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        // Spread the high bits down: hashbrown takes its bucket from the
        // low bits and its tag from the top seven.
        self.0.rotate_left(20)
    }
}

/// A `HashMap` with [`FastHasher`].
pub type FastMap<K, V> = std::collections::HashMap<K, V, std::hash::BuildHasherDefault<FastHasher>>;

/// A `HashSet` with [`FastHasher`].
pub type FastSet<T> = std::collections::HashSet<T, std::hash::BuildHasherDefault<FastHasher>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_known_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn unique_suffix_is_stable_and_distinct() {
        let a = unique_suffix("demo", "default", "sim_role.exec");
        assert_eq!(a, unique_suffix("demo", "default", "sim_role.exec"));
        assert_ne!(a, unique_suffix("demo", "production", "sim_role.exec"));
        assert_eq!(a.len(), 6);
    }

    #[test]
    fn fast_hasher_separates_close_keys() {
        use std::hash::BuildHasher;
        let b = std::hash::BuildHasherDefault::<FastHasher>::default();
        let keys = [
            "sim_node.n1",
            "sim_node.n10",
            "sim_node.n1\0",
            "a",
            "b",
            "",
            "abcdefgh",
            "abcdefgh\0",
        ];
        let hashes: std::collections::HashSet<u64> = keys.iter().map(|k| b.hash_one(k)).collect();
        assert_eq!(hashes.len(), keys.len());
        let mut map: FastMap<String, usize> = FastMap::default();
        for i in 0..10_000 {
            map.insert(format!("sim_node.n{i}"), i);
        }
        assert!((0..10_000).all(|i| map[&format!("sim_node.n{i}")] == i));
    }
}
