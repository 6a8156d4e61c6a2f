//! Stable, dependency-free hashing for identifiers that must not change
//! between runs or machines (unique-name suffixes, plan fingerprints).

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
}
