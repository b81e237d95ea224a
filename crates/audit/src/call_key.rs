//! A Cerbos `callId` as a hash-map key that does not allocate for ids up to 32 bytes (ULIDs are 26).

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};

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

impl Borrow<[u8]> for CallKey {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::CallKey;

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
}
