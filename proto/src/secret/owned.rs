//! Owned secrets (host side): PIN, PUK, password and management-key material, wiped on drop.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

use super::block::{same, PinBlock};

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
