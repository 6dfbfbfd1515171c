//! Yubico's GET METADATA answer (INS F7), for a key slot, the PIN, the PUK or the management
//! key: `01` algorithm, `02` PIN and touch policy, `03` origin, `04 { 86 <EC point> }` public
//! key, `05` default value, `06` tries (total, left). The card encodes it, the host decodes it.

use super::{Algorithm, PinPolicy, TouchPolicy};
use crate::tlv::{self, Full, Sink, TlvError};

/// Tags of the answer.
pub mod tag {
    pub const ALGORITHM: u32 = 0x01;
    pub const POLICY: u32 = 0x02;
    pub const ORIGIN: u32 = 0x03;
    pub const PUBLIC_KEY: u32 = 0x04;
    pub const IS_DEFAULT: u32 = 0x05;
    pub const RETRIES: u32 = 0x06;
    /// Inside PUBLIC_KEY: an EC point.
    pub const EC_POINT: u32 = 0x86;
}

/// What tag 01 names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyAlgorithm {
    /// An algorithm this crate knows (management-key ciphers, P-256).
    Piv(Algorithm),
    /// FF: the PIN or the PUK.
    Pin,
    /// Anything else (RSA, P-384, Ed25519 on other keys): its byte.
    Other(u8),
}

impl KeyAlgorithm {
    pub const fn from_byte(b: u8) -> Self {
        match (b, Algorithm::from_byte(b)) {
            (0xFF, _) => Self::Pin,
            (_, Some(a)) => Self::Piv(a),
            (b, None) => Self::Other(b),
        }
    }
    pub const fn byte(self) -> u8 {
        match self {
            Self::Piv(a) => a as u8,
            Self::Pin => 0xFF,
            Self::Other(b) => b,
        }
    }
}

/// How a private key came to be on the card (tag 03).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Origin {
    Generated = 1,
    Imported = 2,
}

impl Origin {
    pub const fn from_byte(b: u8) -> Option<Self> {
        match b {
            1 => Some(Self::Generated),
            2 => Some(Self::Imported),
            _ => None,
        }
    }
}

/// The longest EC point kept (P-384, uncompressed); a longer one reads as absent.
pub const MAX_POINT: usize = 97;

/// A GET METADATA answer. A policy byte the standard values do not name (00 "default", the
/// management key's PIN policy, or a biometric one) reads as `None` and is written as 00.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metadata {
    pub algorithm: Option<KeyAlgorithm>,
    /// Whether tag 02 was there (the policies below are its two bytes).
    pub has_policy: bool,
    pub pin_policy: Option<PinPolicy>,
    pub touch_policy: Option<TouchPolicy>,
    pub origin: Option<Origin>,
    /// The key's EC point (04 { 86 }), uncompressed.
    pub public_key: Option<heapless::Vec<u8, MAX_POINT>>,
    pub is_default: Option<bool>,
    pub retries_total: Option<u8>,
    pub retries_remaining: Option<u8>,
}

impl Metadata {
    /// Read an answer; tags it does not know, or of a length it does not expect, are skipped
    /// (newer firmware adds some).
    pub fn decode(answer: &[u8]) -> Result<Metadata, TlvError> {
        let mut m = Metadata::default();
        for item in tlv::iter(answer) {
            let item = item?;
            match (item.tag, item.value) {
                (tag::ALGORITHM, [a]) => m.algorithm = Some(KeyAlgorithm::from_byte(*a)),
                (tag::POLICY, [p, t]) => {
                    (m.has_policy, m.pin_policy, m.touch_policy) =
                        (true, PinPolicy::from_byte(*p), TouchPolicy::from_byte(*t))
                }
                (tag::ORIGIN, [o]) => m.origin = Origin::from_byte(*o),
                (tag::PUBLIC_KEY, v) => {
                    m.public_key = tlv::find(v, tag::EC_POINT)?.and_then(|p| heapless::Vec::from_slice(p).ok())
                }
                (tag::IS_DEFAULT, [d]) => m.is_default = Some(*d != 0),
                (tag::RETRIES, [total, left]) => (m.retries_total, m.retries_remaining) = (Some(*total), Some(*left)),
                _ => {}
            }
        }
        Ok(m)
    }

    /// Write the answer, in tag order, with the fields that are set.
    pub fn encode<S: Sink + ?Sized>(&self, out: &mut S) -> Result<(), Full> {
        if let Some(a) = self.algorithm {
            tlv::write(out, tag::ALGORITHM, &[a.byte()])?;
        }
        if self.has_policy {
            let pin = self.pin_policy.map_or(0, |p| p as u8);
            tlv::write(out, tag::POLICY, &[pin, self.touch_policy.map_or(0, |t| t as u8)])?;
        }
        if let Some(o) = self.origin {
            tlv::write(out, tag::ORIGIN, &[o as u8])?;
        }
        if let Some(point) = &self.public_key {
            let mut inner: heapless::Vec<u8, { MAX_POINT + 3 }> = heapless::Vec::new();
            tlv::write(&mut inner, tag::EC_POINT, point)?;
            tlv::write(out, tag::PUBLIC_KEY, &inner)?;
        }
        if let Some(d) = self.is_default {
            tlv::write(out, tag::IS_DEFAULT, &[d as u8])?;
        }
        if let (Some(total), Some(left)) = (self.retries_total, self.retries_remaining) {
            tlv::write(out, tag::RETRIES, &[total, left])?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(m: &Metadata) -> heapless::Vec<u8, 160> {
        let mut out = heapless::Vec::new();
        m.encode(&mut out).unwrap();
        assert_eq!(&Metadata::decode(&out).unwrap(), m);
        out
    }

    #[test]
    fn each_kind_of_answer_round_trips() {
        let point = heapless::Vec::from_slice(&[0x04; 65]).unwrap();
        let key = Metadata {
            algorithm: Some(KeyAlgorithm::Piv(Algorithm::EccP256)),
            has_policy: true,
            pin_policy: Some(PinPolicy::Once),
            touch_policy: Some(TouchPolicy::Never),
            origin: Some(Origin::Generated),
            public_key: Some(point),
            ..Default::default()
        };
        let bytes = round_trip(&key);
        assert_eq!(&bytes[..11], &[0x01, 0x01, 0x11, 0x02, 0x02, 0x02, 0x01, 0x03, 0x01, 0x01, 0x04]);
        let pin = Metadata {
            algorithm: Some(KeyAlgorithm::Pin),
            is_default: Some(true),
            retries_total: Some(3),
            retries_remaining: Some(2),
            ..Default::default()
        };
        assert_eq!(&round_trip(&pin)[..], &[0x01, 0x01, 0xFF, 0x05, 0x01, 0x01, 0x06, 0x02, 0x03, 0x02]);
        let mgmt = Metadata {
            algorithm: Some(KeyAlgorithm::Piv(Algorithm::Aes192)),
            has_policy: true,
            touch_policy: Some(TouchPolicy::Always),
            is_default: Some(false),
            ..Default::default()
        };
        assert_eq!(&round_trip(&mgmt)[..], &[0x01, 0x01, 0x0A, 0x02, 0x02, 0x00, 0x02, 0x05, 0x01, 0x00]);
    }

    #[test]
    fn other_keys_answers_are_read() {
        // An RSA key (07) with a biometric PIN policy (04), a newer tag (07) and an RSA
        // public key (81/82, no EC point).
        let m = Metadata::decode(&[
            0x01, 0x01, 0x07, 0x02, 0x02, 0x04, 0x01, 0x07, 0x00, 0x04, 0x05, 0x81, 0x01, 0x01, 0x82, 0x00,
        ])
        .unwrap();
        assert_eq!(m.algorithm, Some(KeyAlgorithm::Other(7)));
        assert_eq!((m.has_policy, m.pin_policy, m.touch_policy), (true, None, Some(TouchPolicy::Never)));
        assert_eq!(m.public_key, None);
        assert!(Metadata::decode(&[0x01, 0x05, 0x11]).is_err());
    }
}
