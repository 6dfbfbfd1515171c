//! Secrets by type. A PIN, a PUK or a management key is held in one of these from where it
//! enters (a flag, a prompt, a request body, an APDU) to where it is used: `{:?}` shows
//! `<redacted>`, never the bytes in any encoding, and the memory is wiped when it is dropped.

use core::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

/// Equality in constant time (subtle), so comparing two secrets takes the same time whatever
/// they hold; only their lengths may show.
fn same(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

/// A PIN or PUK as PIV carries it: 8 bytes, the value padded with FF.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct PinBlock([u8; 8]);

impl PinBlock {
    /// Pad a 6- to 8-byte PIN/PUK (SP 800-73-4: no FF inside); `None` if not allowed.
    pub fn pad(value: &[u8]) -> Option<PinBlock> {
        if !(6..=8).contains(&value.len()) || value.contains(&0xFF) {
            return None;
        }
        let mut out = [0xFF; 8];
        out[..value.len()].copy_from_slice(value);
        Some(PinBlock(out))
    }

    /// An already padded block as VERIFY carries it; `None` unless it is 6 to 8 bytes of
    /// value followed only by FF.
    pub fn from_padded(block: &[u8]) -> Option<PinBlock> {
        let block: [u8; 8] = block.try_into().ok()?;
        let len = block.iter().position(|b| *b == 0xFF).unwrap_or(8);
        if len < 6 || block[len..].iter().any(|b| *b != 0xFF) {
            return None;
        }
        Some(PinBlock(block))
    }

    pub fn as_bytes(&self) -> &[u8; 8] {
        &self.0
    }
}

impl PartialEq for PinBlock {
    fn eq(&self, other: &Self) -> bool {
        same(&self.0, &other.0)
    }
}
impl Eq for PinBlock {}

impl fmt::Debug for PinBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PinBlock(<redacted>)")
    }
}

/// Secret bytes borrowed from a command being parsed (a key to set, a scalar to import):
/// printable as `<redacted>` only.
#[derive(Clone, Copy)]
pub struct SecretRef<'a>(pub &'a [u8]);

impl SecretRef<'_> {
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl PartialEq for SecretRef<'_> {
    fn eq(&self, other: &Self) -> bool {
        same(self.0, other.0)
    }
}
impl Eq for SecretRef<'_> {}

impl fmt::Debug for SecretRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretRef(<redacted {} bytes>)", self.0.len())
    }
}

#[cfg(feature = "alloc")]
mod owned {
    use alloc::string::String;
    use alloc::vec::Vec;
    use core::fmt;

    use zeroize::{Zeroize, ZeroizeOnDrop};

    use super::{same, PinBlock};

    macro_rules! secret_text {
        ($(#[$doc:meta])* $name:ident, $what:literal) => {
            $(#[$doc])*
            #[derive(Clone, Default, Zeroize, ZeroizeOnDrop)]
            pub struct $name(String);

            impl $name {
                pub fn new(value: impl Into<String>) -> Self {
                    $name(value.into())
                }
                /// The value itself, for the one place that needs it (padding into an APDU).
                pub fn expose(&self) -> &str {
                    &self.0
                }
                /// The 8-byte FF-padded block; `None` unless 6 to 8 bytes without FF.
                pub fn block(&self) -> Option<PinBlock> {
                    PinBlock::pad(self.0.as_bytes())
                }
                pub fn len(&self) -> usize {
                    self.0.len()
                }
                pub fn is_empty(&self) -> bool {
                    self.0.is_empty()
                }
            }

            impl fmt::Debug for $name {
                fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str(concat!(stringify!($name), "(<redacted>)"))
                }
            }

            impl PartialEq for $name {
                fn eq(&self, other: &Self) -> bool {
                    same(self.0.as_bytes(), other.0.as_bytes())
                }
            }
            impl Eq for $name {}

            impl From<&str> for $name {
                fn from(value: &str) -> Self {
                    $name(value.into())
                }
            }
            impl From<String> for $name {
                fn from(value: String) -> Self {
                    $name(value)
                }
            }
            /// For command-line parsers: never fails, the card judges the value.
            impl core::str::FromStr for $name {
                type Err = core::convert::Infallible;
                fn from_str(value: &str) -> Result<Self, Self::Err> {
                    Ok($name(value.into()))
                }
            }

            #[cfg(feature = "serde")]
            impl<'de> serde::Deserialize<'de> for $name {
                fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                    String::deserialize(d).map($name)
                }
            }
        };
    }

    secret_text!(
        /// A PIN as the holder typed it.
        Pin,
        "PIN"
    );
    secret_text!(
        /// A PUK (PIN unblocking key) as the holder typed it.
        Puk,
        "PUK"
    );
    secret_text!(
        /// A management key as typed: hex digits (parsed once its algorithm is known).
        KeyHex,
        "management key"
    );
    secret_text!(
        /// An account password (the business system's first factor).
        Password,
        "password"
    );

    /// Raw symmetric key bytes (a management key before its algorithm is known).
    #[derive(Clone, Default, Zeroize, ZeroizeOnDrop)]
    pub struct KeyBytes(Vec<u8>);

    impl KeyBytes {
        pub fn as_bytes(&self) -> &[u8] {
            &self.0
        }
    }

    impl From<Vec<u8>> for KeyBytes {
        fn from(value: Vec<u8>) -> Self {
            KeyBytes(value)
        }
    }
    impl From<&[u8]> for KeyBytes {
        fn from(value: &[u8]) -> Self {
            KeyBytes(value.to_vec())
        }
    }

    impl PartialEq for KeyBytes {
        fn eq(&self, other: &Self) -> bool {
            same(&self.0, &other.0)
        }
    }
    impl Eq for KeyBytes {}

    impl fmt::Debug for KeyBytes {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "KeyBytes(<redacted {} bytes>)", self.0.len())
        }
    }

    impl core::ops::Deref for KeyBytes {
        type Target = [u8];
        fn deref(&self) -> &[u8] {
            &self.0
        }
    }
}

#[cfg(feature = "alloc")]
pub use owned::{KeyBytes, KeyHex, Password, Pin, Puk};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_rules() {
        assert_eq!(PinBlock::pad(b"123456").unwrap().as_bytes(), b"123456\xFF\xFF");
        assert_eq!(PinBlock::pad(b"12345678").unwrap().as_bytes(), b"12345678");
        assert!(PinBlock::pad(b"12345").is_none() && PinBlock::pad(b"123456789").is_none());
        assert!(PinBlock::pad(b"1234\xFF6").is_none());
        assert!(PinBlock::from_padded(b"123456\xFF\xFF").is_some());
        assert!(PinBlock::from_padded(b"12345\xFF\xFF\xFF").is_none());
        assert!(PinBlock::from_padded(b"1234\xFF567\xFF").is_none());
        assert!(PinBlock::from_padded(b"123456\xFF").is_none());
    }
}
