//! PIV constants (NIST SP 800-73-4) and the Yubico extensions most host tools rely on, and
//! the data formats card and host both speak ([`cert_object`], [`metadata`]).

pub mod cert_object;
pub mod metadata;

/// PIV application identifier, with version: A0 00 00 03 08 00 00 10 00 01 00.
pub const PIV_AID: [u8; 11] = [0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00];
/// Shortest truncation a SELECT may use (NIST RID; libykpiv selects with it).
pub const PIV_AID_MIN_LEN: usize = 5;

/// Instruction bytes.
pub mod ins {
    pub const SELECT: u8 = 0xA4;
    pub const GET_DATA: u8 = 0xCB;
    pub const PUT_DATA: u8 = 0xDB;
    pub const VERIFY: u8 = 0x20;
    pub const CHANGE_REFERENCE: u8 = 0x24;
    pub const RESET_RETRY: u8 = 0x2C;
    pub const GENERATE: u8 = 0x47;
    pub const GENERAL_AUTHENTICATE: u8 = 0x87;
    pub const GET_RESPONSE: u8 = 0xC0;
    // Yubico extensions.
    pub const SET_MGMKEY: u8 = 0xFF;
    pub const IMPORT_KEY: u8 = 0xFE;
    pub const GET_VERSION: u8 = 0xFD;
    pub const RESET: u8 = 0xFB;
    pub const SET_PIN_RETRIES: u8 = 0xFA;
    pub const ATTEST: u8 = 0xF9;
    pub const GET_SERIAL: u8 = 0xF8;
    pub const GET_METADATA: u8 = 0xF7;
    /// MOVE KEY (firmware 5.7): P1 the destination slot, or FF to delete; P2 the source.
    pub const MOVE_KEY: u8 = 0xF6;

    /// Whether `ins` is one of the Yubico extensions (absent on a plain PIV card).
    pub const fn is_yubico(ins: u8) -> bool {
        matches!(ins, 0xF6..=0xFB | 0xFD..=0xFF)
    }
}

/// Key references used by VERIFY, CHANGE REFERENCE DATA and friends.
pub mod key_ref {
    pub const GLOBAL_PIN: u8 = 0x00;
    pub const PIN: u8 = 0x80;
    pub const PUK: u8 = 0x81;
    pub const MANAGEMENT: u8 = 0x9B;
}

/// Algorithm identifiers (SP 800-78-4 table 6-2 and Yubico's additions).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Algorithm {
    Tdes = 0x03,
    Aes128 = 0x08,
    Aes192 = 0x0A,
    Aes256 = 0x0C,
    EccP256 = 0x11,
}

impl Algorithm {
    pub const fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            0x03 => Self::Tdes,
            0x08 => Self::Aes128,
            0x0A => Self::Aes192,
            0x0C => Self::Aes256,
            0x11 => Self::EccP256,
            _ => return None,
        })
    }
    /// Symmetric key length in bytes, for management-key algorithms.
    pub const fn key_len(self) -> Option<usize> {
        match self {
            Self::Tdes | Self::Aes192 => Some(24),
            Self::Aes128 => Some(16),
            Self::Aes256 => Some(32),
            Self::EccP256 => None,
        }
    }
    /// Block size of a management-key algorithm (challenge and witness length).
    pub const fn block_len(self) -> Option<usize> {
        match self {
            Self::Tdes => Some(8),
            Self::Aes128 | Self::Aes192 | Self::Aes256 => Some(16),
            Self::EccP256 => None,
        }
    }
    pub const fn name(self) -> &'static str {
        match self {
            Self::Tdes => "3DES",
            Self::Aes128 => "AES-128",
            Self::Aes192 => "AES-192",
            Self::Aes256 => "AES-256",
            Self::EccP256 => "ECC P-256",
        }
    }
}

/// An asymmetric key slot. Only slots that exist can be written down.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Slot {
    /// 9A: PIV authentication (login).
    Authentication,
    /// 9C: digital signature (PIN before every use).
    Signature,
    /// 9D: key management.
    KeyManagement,
    /// 9E: card authentication (no PIN).
    CardAuthentication,
    /// 82..95: retired key management keys, numbered 1..=20.
    Retired(u8),
    /// F9: Yubico attestation key.
    Attestation,
}

impl Slot {
    /// The four primary PIV slots, in the order tools list them.
    pub const PRIMARY: [Slot; 4] =
        [Slot::Authentication, Slot::Signature, Slot::KeyManagement, Slot::CardAuthentication];

    pub const fn from_key_ref(b: u8) -> Option<Slot> {
        Some(match b {
            0x9A => Slot::Authentication,
            0x9C => Slot::Signature,
            0x9D => Slot::KeyManagement,
            0x9E => Slot::CardAuthentication,
            0x82..=0x95 => Slot::Retired(b - 0x81),
            0xF9 => Slot::Attestation,
            _ => return None,
        })
    }

    pub const fn key_ref(self) -> u8 {
        match self {
            Slot::Authentication => 0x9A,
            Slot::Signature => 0x9C,
            Slot::KeyManagement => 0x9D,
            Slot::CardAuthentication => 0x9E,
            Slot::Retired(n) => 0x81 + n,
            Slot::Attestation => 0xF9,
        }
    }

    /// Dense index (0..25) for fixed-size tables.
    pub const fn index(self) -> usize {
        match self {
            Slot::Authentication => 0,
            Slot::Signature => 1,
            Slot::KeyManagement => 2,
            Slot::CardAuthentication => 3,
            Slot::Retired(n) => 3 + n as usize,
            Slot::Attestation => 24,
        }
    }
    pub const COUNT: usize = 25;

    /// The slot at `index` (the inverse of [`index`](Self::index)).
    pub const fn from_index(index: usize) -> Option<Slot> {
        Some(match index {
            0 => Slot::Authentication,
            1 => Slot::Signature,
            2 => Slot::KeyManagement,
            3 => Slot::CardAuthentication,
            4..=23 => Slot::Retired((index - 3) as u8),
            24 => Slot::Attestation,
            _ => return None,
        })
    }

    /// Data object holding this slot's certificate.
    pub const fn certificate_object(self) -> u32 {
        match self {
            Slot::Authentication => object::CERT_9A,
            Slot::Signature => object::CERT_9C,
            Slot::KeyManagement => object::CERT_9D,
            Slot::CardAuthentication => object::CERT_9E,
            Slot::Retired(n) => 0x5FC10D + n as u32 - 1,
            Slot::Attestation => object::ATTESTATION_CERT,
        }
    }

    /// PIN policy a key gets when the generate/import command leaves it to the card.
    pub const fn default_pin_policy(self) -> PinPolicy {
        match self {
            Slot::Signature => PinPolicy::Always,
            Slot::CardAuthentication | Slot::Attestation => PinPolicy::Never,
            _ => PinPolicy::Once,
        }
    }
}

impl core::fmt::Display for Slot {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:02x}", self.key_ref())
    }
}

impl core::str::FromStr for Slot {
    type Err = &'static str;
    /// Accepts `9a`, `9A`, `0x9a` and the names `authentication`, `signature`,
    /// `key-management`, `card-authentication`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let named = [
            ("authentication", Slot::Authentication),
            ("signature", Slot::Signature),
            ("key-management", Slot::KeyManagement),
            ("card-authentication", Slot::CardAuthentication),
        ];
        if let Some((_, slot)) = named.iter().find(|(n, _)| n.eq_ignore_ascii_case(s)) {
            return Ok(*slot);
        }
        let hex = s.trim_start_matches("0x").trim_start_matches("0X");
        u8::from_str_radix(hex, 16)
            .ok()
            .and_then(Slot::from_key_ref)
            .ok_or("not a PIV key slot: use 9a, 9c, 9d, 9e, 82..95 or f9")
    }
}

/// When the card demands the PIN before a private-key operation (Yubico tag AA).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PinPolicy {
    Never = 1,
    Once = 2,
    Always = 3,
}

impl PinPolicy {
    pub const fn from_byte(b: u8) -> Option<Self> {
        match b {
            1 => Some(Self::Never),
            2 => Some(Self::Once),
            3 => Some(Self::Always),
            _ => None,
        }
    }
}

/// Touch policy (Yubico tag AB). The virtual key records it; touch is always "given".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TouchPolicy {
    Never = 1,
    Always = 2,
    Cached = 3,
}

impl TouchPolicy {
    pub const fn from_byte(b: u8) -> Option<Self> {
        match b {
            1 => Some(Self::Never),
            2 => Some(Self::Always),
            3 => Some(Self::Cached),
            _ => None,
        }
    }
}

/// Data object tags (BER-TLV tag numbers as used in GET DATA's `5C` list).
pub mod object {
    pub const DISCOVERY: u32 = 0x7E;
    pub const BIOMETRIC_GROUP: u32 = 0x7F61;
    pub const CERT_9E: u32 = 0x5FC101;
    pub const CHUID: u32 = 0x5FC102;
    pub const FINGERPRINTS: u32 = 0x5FC103;
    pub const CERT_9A: u32 = 0x5FC105;
    pub const SECURITY_OBJECT: u32 = 0x5FC106;
    pub const CCC: u32 = 0x5FC107;
    pub const FACIAL_IMAGE: u32 = 0x5FC108;
    pub const PRINTED_INFO: u32 = 0x5FC109;
    pub const CERT_9C: u32 = 0x5FC10A;
    pub const CERT_9D: u32 = 0x5FC10B;
    pub const KEY_HISTORY: u32 = 0x5FC10C;
    pub const IRIS_IMAGES: u32 = 0x5FC121;
    /// Yubico: attestation certificate of the F9 key.
    pub const ATTESTATION_CERT: u32 = 0x5FFF01;
    /// Yubico: admin data / PIN-protected data (used by yubico-piv-tool).
    pub const YUBICO_ADMIN: u32 = 0x5FFF00;

    /// Objects readable only after PIN verification (SP 800-73-4 table 2 and PIV-NOTES).
    pub const fn pin_protected(tag: u32) -> bool {
        matches!(tag, FINGERPRINTS | FACIAL_IMAGE | PRINTED_INFO | IRIS_IMAGES)
    }

    /// Tags a card may store with PUT DATA.
    pub const fn writable(tag: u32) -> bool {
        matches!(tag, 0x5FC101..=0x5FC123 | 0x5FFF00..=0x5FFF15)
    }
}

/// Tags inside the dynamic authentication template (7C) of GENERAL AUTHENTICATE.
pub mod auth_tag {
    pub const TEMPLATE: u32 = 0x7C;
    pub const WITNESS: u32 = 0x80;
    pub const CHALLENGE: u32 = 0x81;
    pub const RESPONSE: u32 = 0x82;
    pub const EXPONENTIATION: u32 = 0x85;
}

/// Default credentials of a new key (the same as a YubiKey's factory state).
pub mod defaults {
    pub const PIN: &[u8] = b"123456";
    pub const PUK: &[u8] = b"12345678";
    pub const MANAGEMENT_KEY: [u8; 24] = [1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8];
    pub const RETRIES: u8 = 3;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_round_trip_through_key_refs() {
        for b in 0u8..=255 {
            if let Some(slot) = Slot::from_key_ref(b) {
                assert_eq!(slot.key_ref(), b);
                assert!(slot.index() < Slot::COUNT);
                assert_eq!(Slot::from_index(slot.index()), Some(slot));
            }
        }
        assert_eq!("9a".parse::<Slot>(), Ok(Slot::Authentication));
        assert_eq!("0x9C".parse::<Slot>(), Ok(Slot::Signature));
        assert_eq!("82".parse::<Slot>(), Ok(Slot::Retired(1)));
        assert!("9b".parse::<Slot>().is_err());
        assert_eq!(Slot::Retired(1).certificate_object(), 0x5FC10D);
        assert_eq!(Slot::Retired(20).certificate_object(), 0x5FC120);
    }

    #[test]
    fn policies_match_piv_defaults() {
        assert_eq!(Slot::Signature.default_pin_policy(), PinPolicy::Always);
        assert_eq!(Slot::Authentication.default_pin_policy(), PinPolicy::Once);
        assert_eq!(Slot::CardAuthentication.default_pin_policy(), PinPolicy::Never);
        assert!(object::pin_protected(object::PRINTED_INFO));
        assert!(!object::pin_protected(object::CHUID));
        assert!(object::writable(object::CERT_9A));
        assert!(!object::writable(object::DISCOVERY));
    }
}
