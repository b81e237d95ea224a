//! A Cerbos `callId` as a hash-map key that does not allocate for ids up to 32 bytes (ULIDs are 26).

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash, Hasher};

const INLINE: usize = 32;

/// A call id, stored inline when short. Hashes and compares as its bytes, so maps keyed by it
/// are looked up with `id.as_bytes()`.
#[derive(Clone)]
pub(crate) enum CallKey {
    /// Up to [`INLINE`] bytes.
    Inline {
        /// How many bytes of `bytes` are used.
        len: u8,
        /// The id, zero-padded.
        bytes: [u8; INLINE],
    },
    /// A longer id.
    Heap(Box<[u8]>),
}

impl CallKey {
    /// The key of `id`.
    pub(crate) fn new(id: &str) -> Self {
        let b = id.as_bytes();
        match u8::try_from(b.len()) {
            Ok(len) if b.len() <= INLINE => {
                let mut bytes = [0; INLINE];
                bytes[..b.len()].copy_from_slice(b);
                CallKey::Inline { len, bytes }
            }
            _ => CallKey::Heap(b.into()),
        }
    }

    /// The id's bytes (valid UTF-8: they came from a `&str`).
    pub(crate) fn as_bytes(&self) -> &[u8] {
        match self {
            CallKey::Inline { len, bytes } => &bytes[..usize::from(*len)],
            CallKey::Heap(b) => b,
        }
    }

    /// The id as an owned string.
    pub(crate) fn to_owned_string(&self) -> String {
        String::from_utf8_lossy(self.as_bytes()).into_owned()
    }
}

impl std::fmt::Debug for CallKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&String::from_utf8_lossy(self.as_bytes()), f)
    }
}

impl PartialEq for CallKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for CallKey {}

impl Hash for CallKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

/// Builds [`KeyHasher`]s with a random seed per map: what maps keyed by [`CallKey`] use
/// instead of SipHash, which costed more than the rest of the join. Call ids are ULIDs that
/// the Cerbos PDP generates, not values a client chooses, so a keyed multiplicative hash is
/// enough (the seed still differs between maps and processes).
#[derive(Clone)]
pub(crate) struct KeyHashState {
    seed: u64,
}

impl Default for KeyHashState {
    fn default() -> Self {
        KeyHashState {
            seed: std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64) | 1,
        }
    }
}

impl std::fmt::Debug for KeyHashState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyHashState")
    }
}

impl BuildHasher for KeyHashState {
    type Hasher = KeyHasher;

    fn build_hasher(&self) -> KeyHasher {
        KeyHasher { h: self.seed }
    }
}

/// An FxHash-style hasher over 8-byte words with a final mix (see [`KeyHashState`]).
pub(crate) struct KeyHasher {
    h: u64,
}

const MUL: u64 = 0x9e37_79b9_7f4a_7c15;

impl KeyHasher {
    #[inline]
    fn mix(&mut self, word: u64) {
        self.h = (self.h.rotate_left(26) ^ word).wrapping_mul(MUL);
    }
}

impl Hasher for KeyHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0; 8];
            word.copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.mix(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.mix(n as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // Spreads the high bits of the last product into the low bits the table indexes by.
        let h = self.h ^ (self.h >> 32);
        h.wrapping_mul(MUL) ^ (h >> 29)
    }
}

impl Borrow<[u8]> for CallKey {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::{CallKey, KeyHashState};

    #[test]
    fn short_and_long_ids_round_trip_and_are_found_by_their_bytes() {
        let ulid = "01M7ZT1KDQP2A9KCF1TRW5HA7W";
        let long = "x".repeat(100);
        let set: HashSet<CallKey> = [CallKey::new(ulid), CallKey::new(&long)].into();
        assert!(set.contains(ulid.as_bytes()));
        assert!(set.contains(long.as_bytes()));
        assert!(!set.contains("01M7ZT1KDQP2A9KCF1TRW5HA7".as_bytes()));
        assert_eq!(CallKey::new(ulid).to_owned_string(), ulid);
        assert_eq!(CallKey::new(&long).to_owned_string(), long);
        assert_eq!(CallKey::new("").as_bytes(), b"");
    }

    #[test]
    fn the_key_hasher_spreads_ulids_over_the_low_bits() {
        let state = KeyHashState::default();
        let mut set: HashSet<CallKey, KeyHashState> = HashSet::with_hasher(state.clone());
        let mut buckets = HashSet::new();
        for i in 0..4096 {
            let id = format!("01M7ZT1K{i:018}");
            assert!(set.insert(CallKey::new(&id)));
            buckets.insert(std::hash::BuildHasher::hash_one(&state, CallKey::new(&id)) & 4095);
        }
        assert!(set.contains("01M7ZT1K000000000000000042".as_bytes()));
        // A uniform hash fills about 63 % of 4096 buckets with 4096 keys.
        assert!(buckets.len() > 2300, "{} buckets", buckets.len());
    }
}
