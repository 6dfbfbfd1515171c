//! Byte buffers with a fixed upper bound. Without `alloc` (firmware) they are inline and
//! always take their whole capacity; with `alloc` they live on the heap and take what they
//! hold, so an idle virtual key costs its content, not its limits (10,000 keys in one
//! process for a portal's load test). Either way the bound is the same and is enforced.

use core::fmt;
use core::ops::{Deref, DerefMut};

use proto::tlv::{Full, Sink};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Clone, Default, PartialEq, Eq)]
pub struct Buf<const N: usize> {
    #[cfg(feature = "alloc")]
    bytes: alloc::vec::Vec<u8>,
    #[cfg(not(feature = "alloc"))]
    bytes: heapless::Vec<u8, N>,
}

/// A buffer that held more than this gives its memory back when cleared.
#[cfg(feature = "alloc")]
const KEEP_ON_CLEAR: usize = 512;

impl<const N: usize> Buf<N> {
    pub const CAPACITY: usize = N;

    pub const fn new() -> Self {
        Buf {
            #[cfg(feature = "alloc")]
            bytes: alloc::vec::Vec::new(),
            #[cfg(not(feature = "alloc"))]
            bytes: heapless::Vec::new(),
        }
    }

    pub fn from_slice(bytes: &[u8]) -> Result<Self, Full> {
        let mut b = Self::new();
        b.extend_from_slice(bytes)?;
        Ok(b)
    }

    pub fn extend_from_slice(&mut self, bytes: &[u8]) -> Result<(), Full> {
        if bytes.len() > N - self.bytes.len() {
            return Err(Full);
        }
        #[cfg(feature = "alloc")]
        {
            let needed = self.bytes.len() + bytes.len();
            if needed > self.bytes.capacity() {
                // Grow by hand: Vec's own growth would free the old block unwiped.
                let mut grown = alloc::vec::Vec::with_capacity(needed.max(2 * self.bytes.capacity()).min(N));
                grown.extend_from_slice(&self.bytes);
                use zeroize::Zeroize;
                self.bytes.as_mut_slice().zeroize();
                self.bytes = grown;
            }
            self.bytes.extend_from_slice(bytes);
            Ok(())
        }
        #[cfg(not(feature = "alloc"))]
        self.bytes.extend_from_slice(bytes).map_err(|_| Full)
    }

    /// Shorten to `len`, wiping what is cut off (it stays in the allocation otherwise).
    pub fn truncate(&mut self, len: usize) {
        use zeroize::Zeroize;
        if let Some(tail) = self.bytes.get_mut(len..) {
            tail.zeroize();
        }
        self.bytes.truncate(len);
    }

    /// Empty the buffer, wiping what it held (it may have carried a PIN or a key).
    pub fn clear(&mut self) {
        use zeroize::Zeroize;
        self.bytes.as_mut_slice().zeroize();
        #[cfg(feature = "alloc")]
        if self.bytes.capacity() > KEEP_ON_CLEAR {
            self.bytes = alloc::vec::Vec::new();
            return;
        }
        self.bytes.clear();
    }
}

/// What a buffer held (a chained IMPORT KEY's scalar, an ECDH secret) does not outlive it.
impl<const N: usize> Drop for Buf<N> {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.bytes.as_mut_slice().zeroize();
    }
}

impl<const N: usize> Deref for Buf<N> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

impl<const N: usize> DerefMut for Buf<N> {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.bytes
    }
}

impl<const N: usize> Sink for Buf<N> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), Full> {
        self.extend_from_slice(bytes)
    }
}

impl<const N: usize> fmt::Debug for Buf<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Buf({} bytes)", self.bytes.len())
    }
}

/// Serialized as a byte string: the same bytes as a sequence of u8 in postcard (the state
/// file's format 1), compact in CBOR (format 2). Either form is read back.
impl<const N: usize> Serialize for Buf<N> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.bytes)
    }
}

impl<'de, const N: usize> Deserialize<'de> for Buf<N> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor<const N: usize>;
        impl<'de, const N: usize> serde::de::Visitor<'de> for Visitor<N> {
            type Value = Buf<N>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "at most {N} bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Buf<N>, E> {
                Buf::from_slice(v).map_err(|_| E::invalid_length(v.len(), &self))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Buf<N>, A::Error> {
                let mut b = Buf::new();
                while let Some(byte) = seq.next_element::<u8>()? {
                    b.extend_from_slice(&[byte]).map_err(|_| serde::de::Error::invalid_length(N + 1, &self))?;
                }
                Ok(b)
            }
        }
        d.deserialize_bytes(Visitor::<N>)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_is_enforced_and_clear_wipes() {
        let mut b = Buf::<4>::new();
        b.extend_from_slice(&[1, 2, 3]).unwrap();
        assert_eq!(b.extend_from_slice(&[4, 5]), Err(Full));
        assert_eq!(&b[..], &[1, 2, 3], "a refused write changes nothing");
        b.put(&[4]).unwrap();
        assert_eq!(b.put(&[5]), Err(Full));
        b.clear();
        assert!(b.is_empty());
    }

    #[test]
    fn a_big_buffer_gives_its_memory_back_when_cleared_a_small_one_keeps_it() {
        let mut big = Buf::<4096>::from_slice(&[7; 2000]).unwrap();
        big.clear();
        assert_eq!(big.bytes.capacity(), 0, "over {KEEP_ON_CLEAR} bytes: released");
        let mut small = Buf::<4096>::from_slice(&[7; KEEP_ON_CLEAR]).unwrap();
        let cap = small.bytes.capacity();
        assert!(cap <= KEEP_ON_CLEAR, "{cap}");
        small.clear();
        assert_eq!(small.bytes.capacity(), cap, "kept for the next answer");
        let mut edge = Buf::<4096>::new();
        edge.bytes.reserve_exact(KEEP_ON_CLEAR + 1);
        edge.extend_from_slice(&[1]).unwrap();
        edge.clear();
        assert_eq!(edge.bytes.capacity(), 0, "one byte over the limit: released");
    }

    #[test]
    fn debug_shows_the_length_only() {
        extern crate std;
        assert_eq!(std::format!("{:?}", Buf::<8>::from_slice(&[0xAB; 3]).unwrap()), "Buf(3 bytes)");
    }

    #[test]
    fn read_back_from_cbor_as_bytes_or_as_an_array() {
        extern crate std;
        use std::vec::Vec;
        let b = Buf::<8>::from_slice(&[9, 8, 7]).unwrap();
        let mut cbor = Vec::new();
        ciborium::into_writer(&b, &mut cbor).unwrap();
        assert_eq!(cbor, [0x43, 9, 8, 7], "a CBOR byte string");
        assert_eq!(ciborium::from_reader::<Buf<8>, _>(&cbor[..]).unwrap(), b);
        let array = ciborium::Value::Array([9u8, 8, 7].iter().map(|x| (*x).into()).collect());
        let mut cbor = Vec::new();
        ciborium::into_writer(&array, &mut cbor).unwrap();
        assert_eq!(ciborium::from_reader::<Buf<8>, _>(&cbor[..]).unwrap(), b, "an array of bytes reads too");
        let long = ciborium::Value::Array((0..9u8).map(Into::into).collect());
        let mut cbor = Vec::new();
        ciborium::into_writer(&long, &mut cbor).unwrap();
        let err = ciborium::from_reader::<Buf<8>, _>(&cbor[..]).unwrap_err().to_string();
        assert!(err.contains("at most 8 bytes") && err.contains('9'), "{err}");
        let err = postcard::from_bytes::<Buf<2>>(&[3, 1, 2, 3]).unwrap_err();
        let _ = err;
    }

    #[test]
    fn postcard_bytes_equal_a_sequence_of_u8() {
        extern crate std;
        let b = Buf::<8>::from_slice(&[9, 8, 7]).unwrap();
        let h: heapless::Vec<u8, 8> = heapless::Vec::from_slice(&[9, 8, 7]).unwrap();
        let a = postcard::to_allocvec(&b).unwrap();
        assert_eq!(a, postcard::to_allocvec(&h).unwrap());
        let back: Buf<8> = postcard::from_bytes(&a).unwrap();
        assert_eq!(back, b);
        let too_long: heapless::Vec<u8, 16> = heapless::Vec::from_slice(&[0; 9]).unwrap();
        assert!(postcard::from_bytes::<Buf<8>>(&postcard::to_allocvec(&too_long).unwrap()).is_err());
    }
}
