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

/// The [`FastHasher`] hash of a value.
pub fn fast_hash<T: std::hash::Hash + ?Sized>(value: &T) -> u64 {
    use std::hash::BuildHasher;
    std::hash::BuildHasherDefault::<FastHasher>::default().hash_one(value)
}

/// Positions in a list, found by the key of the item there: a map from key
/// to index for a list that holds the keys, without copying them. The
/// caller passes the list (or a way to read an item's key) to each call.
/// At 100,000 addresses the copies a `HashMap<Address, _>` keeps were
/// 200,000 small allocations of their own.
#[derive(Debug, Clone, Default)]
pub struct Positions(hashbrown::HashTable<u32>);

impl Positions {
    pub fn with_capacity(n: usize) -> Positions {
        Positions(hashbrown::HashTable::with_capacity(n))
    }

    /// The position whose key is `key`; `key_at(i)` is the key at `i`.
    pub fn get<'k, K, Q>(&self, key: &Q, key_at: impl Fn(u32) -> &'k K) -> Option<u32>
    where
        K: std::borrow::Borrow<Q> + 'k + ?Sized,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        self.0
            .find(fast_hash(key), |&i| key_at(i).borrow() == key)
            .copied()
    }

    /// Records `at` for `key` (the key at `at`); returns the position it
    /// replaces, if `key` had one.
    pub fn insert<'k, K, Q>(
        &mut self,
        key: &Q,
        at: u32,
        key_at: impl Fn(u32) -> &'k K,
    ) -> Option<u32>
    where
        K: std::borrow::Borrow<Q> + 'k + ?Sized,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        let hash = fast_hash(key);
        match self.0.entry(
            hash,
            |&i| key_at(i).borrow() == key,
            |&i| fast_hash(key_at(i).borrow()),
        ) {
            hashbrown::hash_table::Entry::Occupied(mut slot) => {
                Some(std::mem::replace(slot.get_mut(), at))
            }
            hashbrown::hash_table::Entry::Vacant(slot) => {
                slot.insert(at);
                None
            }
        }
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

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
    fn positions_find_keys_in_their_list_and_replace_on_insert() {
        let names: Vec<String> = (0..5_000).map(|i| format!("n{i}")).collect();
        let mut p = Positions::with_capacity(2);
        for (i, name) in names.iter().enumerate() {
            assert_eq!(
                p.insert(name.as_str(), i as u32, |i| &names[i as usize]),
                None
            );
        }
        assert_eq!(p.len(), names.len());
        let at = |i: u32| &names[i as usize];
        assert!((0..5_000).all(|i| p.get(format!("n{i}").as_str(), at) == Some(i)));
        assert_eq!(p.get("n5000", at), None);
        // A second item with the same key takes its place.
        let mut twice = names.clone();
        twice.push("n7".into());
        let at = |i: u32| &twice[i as usize];
        assert_eq!(p.insert("n7", 5_000, at), Some(7));
        assert_eq!(p.get("n7", at), Some(5_000));
        assert_eq!(p.len(), names.len());
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
