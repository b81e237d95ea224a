//! A list that holds zero or one element without allocating (most CheckResources calls have one input, one output, one role).

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

use serde::de::{Deserialize, Deserializer, SeqAccess, Visitor};

/// A `Vec` that allocates only from its second element on. Decodes like a `Vec` (a JSON array).
#[derive(Debug, Clone, Default)]
pub(crate) enum Few<T> {
    /// Empty.
    #[default]
    Zero,
    /// One element, inline.
    One(T),
    /// Two or more.
    Many(Vec<T>),
}

impl<T> Few<T> {
    /// Appends `x` (in place: an element is moved only when the list starts to allocate).
    #[inline]
    pub(crate) fn push(&mut self, x: T) {
        match self {
            Few::Zero => *self = Few::One(x),
            Few::Many(v) => v.push(x),
            Few::One(_) => {
                if let Few::One(a) = std::mem::take(self) {
                    *self = Few::Many(vec![a, x]);
                }
            }
        }
    }
}

impl<T> Few<T> {
    /// The elements as a `Vec`.
    pub(crate) fn into_vec(self) -> Vec<T> {
        match self {
            Few::Zero => Vec::new(),
            Few::One(a) => vec![a],
            Few::Many(v) => v,
        }
    }
}

impl<T> Deref for Few<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        match self {
            Few::Zero => &[],
            Few::One(a) => std::slice::from_ref(a),
            Few::Many(v) => v,
        }
    }
}

impl<T> DerefMut for Few<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        match self {
            Few::Zero => &mut [],
            Few::One(a) => std::slice::from_mut(a),
            Few::Many(v) => v,
        }
    }
}

impl<'b, T> IntoIterator for &'b Few<T> {
    type Item = &'b T;
    type IntoIter = std::slice::Iter<'b, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<T> FromIterator<T> for Few<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let mut few = Few::Zero;
        for x in iter {
            few.push(x);
        }
        few
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Few<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Few<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a sequence")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Few<T>, A::Error> {
                let mut few = Few::Zero;
                while let Some(x) = seq.next_element()? {
                    few.push(x);
                }
                Ok(few)
            }
        }
        d.deserialize_seq(V(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::Few;

    #[test]
    fn pushes_keep_order_from_zero_to_many() {
        let mut few = Few::Zero;
        assert!(few.is_empty());
        for i in 0..4 {
            few.push(i);
            assert_eq!(&few[..], &(0..=i).collect::<Vec<_>>()[..]);
        }
        let decoded: Few<u8> = serde_json::from_str("[7]").expect("array");
        assert!(matches!(decoded, Few::One(7)));
        assert!(serde_json::from_str::<Few<u8>>("7").is_err());
    }
}
