//! The objects a token shows, as OpenSC's PIV module shows them (so configurations written for
//! it keep working): for each of 9A, 9C, 9D, 9E that holds a key, its certificate, public key
//! and private key, with CKA_ID 01, 02, 03, 04 and OpenSC's labels.

use cryptoki_sys::*;
use der::{Decode, Encode};
use proto::piv::Slot;

/// DER of the prime256v1 OID: the CKA_EC_PARAMS of every key here.
pub const P256_PARAMS: [u8; 10] = [0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];

/// The PIV slots a token shows, with their CKA_ID and OpenSC's names for them.
pub const SLOTS: [(Slot, u8, &str, &str); 4] = [
    (Slot::Authentication, 1, "PIV AUTH", "PIV Authentication"),
    (Slot::Signature, 2, "SIGN", "Digital Signature"),
    (Slot::KeyManagement, 3, "KEY MAN", "Key Management"),
    (Slot::CardAuthentication, 4, "CARD AUTH", "Card Authentication"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Certificate,
    Public,
    Private,
}

impl Kind {
    fn class(self) -> CK_OBJECT_CLASS {
        match self {
            Kind::Certificate => CKO_CERTIFICATE,
            Kind::Public => CKO_PUBLIC_KEY,
            Kind::Private => CKO_PRIVATE_KEY,
        }
    }
    fn code(self) -> u64 {
        match self {
            Kind::Certificate => 1,
            Kind::Public => 2,
            Kind::Private => 3,
        }
    }
    fn from_code(c: u64) -> Option<Kind> {
        match c {
            1 => Some(Kind::Certificate),
            2 => Some(Kind::Public),
            3 => Some(Kind::Private),
            _ => None,
        }
    }
}

/// What one PIV slot holds: its certificate (DER) and its public key (uncompressed point).
#[derive(Debug, Clone)]
pub struct SlotContent {
    pub slot: Slot,
    pub id: u8,
    pub cert: Option<Vec<u8>>,
    pub point: Vec<u8>,
    /// The certificate's subject, DER (empty without a certificate).
    pub subject: Vec<u8>,
    pub issuer: Vec<u8>,
    pub serial: Vec<u8>,
    /// The card holds the slot's private key (false once C_DestroyObject deleted it).
    pub private_key: bool,
    /// The public key object is there (false once C_DestroyObject removed it; a PIV public
    /// key outlives its private key until then, as PKCS#11 objects are independent).
    pub public_key: bool,
}

impl SlotContent {
    /// From the slot's certificate: its key and names. `None` when it is no P-256 certificate.
    pub fn from_cert(slot: Slot, id: u8, der: Vec<u8>) -> Option<SlotContent> {
        let cert = x509_cert::Certificate::from_der(&der).ok()?;
        let tbs = &cert.tbs_certificate;
        let point = tbs.subject_public_key_info.subject_public_key.as_bytes()?.to_vec();
        p256::PublicKey::from_sec1_bytes(&point).ok()?;
        Some(SlotContent {
            slot,
            id,
            subject: tbs.subject.to_der().ok()?,
            issuer: tbs.issuer.to_der().ok()?,
            serial: tbs.serial_number.to_der().ok()?,
            cert: Some(der),
            point,
            private_key: true,
            public_key: true,
        })
    }

    /// A key without a certificate (its point from the key's metadata or GENERATE).
    pub fn key_only(slot: Slot, id: u8, point: Vec<u8>) -> SlotContent {
        SlotContent {
            slot,
            id,
            cert: None,
            point,
            subject: Vec::new(),
            issuer: Vec::new(),
            serial: Vec::new(),
            private_key: true,
            public_key: true,
        }
    }

    fn names(&self) -> (&'static str, &'static str) {
        let (_, _, short, long) = SLOTS.iter().find(|(s, ..)| *s == self.slot).copied().unwrap_or(SLOTS[0]);
        (short, long)
    }
}

/// An object handle: which token (its slot id), which PIV slot, which kind. Stable for as
/// long as the module is initialised, and never 0 (CK_INVALID_HANDLE).
pub fn handle(slot_id: CK_SLOT_ID, piv_id: u8, kind: Kind) -> CK_OBJECT_HANDLE {
    ((slot_id + 1) << 16) | ((piv_id as u64) << 4) | kind.code()
}

/// The token (slot id), CKA_ID and kind of `handle`.
pub fn parse_handle(handle: CK_OBJECT_HANDLE) -> Option<(CK_SLOT_ID, u8, Kind)> {
    let slot = (handle >> 16).checked_sub(1)?;
    let id = ((handle >> 4) & 0xFFF) as u8;
    Some((slot, id, Kind::from_code(handle & 0xF)?))
}

/// The kinds of object a slot's content shows.
pub fn kinds(c: &SlotContent) -> Vec<Kind> {
    let mut k = Vec::new();
    if c.cert.is_some() {
        k.push(Kind::Certificate);
    }
    if c.public_key {
        k.push(Kind::Public);
    }
    if c.private_key {
        k.push(Kind::Private);
    }
    k
}

/// The value of an attribute, or why there is none.
#[derive(Debug, PartialEq, Eq)]
pub enum Attr {
    Value(Vec<u8>),
    /// The object has it, but never shows it (a private key's value).
    Sensitive,
    /// The object has no such attribute.
    Invalid,
}

fn ulong(v: CK_ULONG) -> Attr {
    Attr::Value(v.to_ne_bytes().to_vec())
}
fn boolean(v: bool) -> Attr {
    Attr::Value(vec![v as u8])
}

/// The EC point as PKCS#11 carries it: DER OCTET STRING of the uncompressed point.
pub fn ec_point(point: &[u8]) -> Vec<u8> {
    der::asn1::OctetString::new(point.to_vec()).and_then(|o| o.to_der()).unwrap_or_default()
}

/// The SubjectPublicKeyInfo (DER) of a P-256 point: CKA_PUBLIC_KEY_INFO.
pub fn spki(point: &[u8]) -> Vec<u8> {
    use p256::pkcs8::EncodePublicKey;
    p256::PublicKey::from_sec1_bytes(point)
        .ok()
        .and_then(|k| k.to_public_key_der().ok())
        .map(|d| d.as_bytes().to_vec())
        .unwrap_or_default()
}

/// Attribute `t` of the `kind` object of slot content `c`.
pub fn attribute(c: &SlotContent, kind: Kind, t: CK_ATTRIBUTE_TYPE) -> Attr {
    let (short, long) = c.names();
    let private = kind == Kind::Private;
    match t {
        CKA_CLASS => ulong(kind.class()),
        CKA_TOKEN => boolean(true),
        CKA_PRIVATE => boolean(private),
        CKA_MODIFIABLE | CKA_COPYABLE | CKA_DESTROYABLE => boolean(false),
        CKA_LABEL => Attr::Value(
            match kind {
                Kind::Certificate => format!("Certificate for {long}"),
                Kind::Public => format!("{short} pubkey"),
                Kind::Private => format!("{short} key"),
            }
            .into_bytes(),
        ),
        CKA_ID => Attr::Value(vec![c.id]),
        CKA_SUBJECT if kind == Kind::Certificate || !c.subject.is_empty() => Attr::Value(c.subject.clone()),
        _ => match kind {
            Kind::Certificate => cert_attribute(c, t),
            Kind::Public | Kind::Private => key_attribute(c, kind, t),
        },
    }
}

fn cert_attribute(c: &SlotContent, t: CK_ATTRIBUTE_TYPE) -> Attr {
    match t {
        CKA_CERTIFICATE_TYPE => ulong(CKC_X_509),
        CKA_VALUE => Attr::Value(c.cert.clone().unwrap_or_default()),
        CKA_ISSUER => Attr::Value(c.issuer.clone()),
        CKA_SERIAL_NUMBER => Attr::Value(c.serial.clone()),
        CKA_TRUSTED => boolean(false),
        CKA_CERTIFICATE_CATEGORY => ulong(0),
        _ => Attr::Invalid,
    }
}

fn key_attribute(c: &SlotContent, kind: Kind, t: CK_ATTRIBUTE_TYPE) -> Attr {
    let private = kind == Kind::Private;
    match t {
        CKA_KEY_TYPE => ulong(CKK_EC),
        CKA_EC_PARAMS => Attr::Value(P256_PARAMS.to_vec()),
        // On the private key too: programs (GnuTLS) read the public half from the key they use.
        CKA_EC_POINT => Attr::Value(ec_point(&c.point)),
        CKA_PUBLIC_KEY_INFO => Attr::Value(spki(&c.point)),
        CKA_LOCAL => boolean(false),
        // Both halves, as p11test's usage check wants: the pair agrees keys (ECDH) in every slot.
        CKA_DERIVE => boolean(true),
        CKA_SIGN => boolean(private),
        CKA_VERIFY => boolean(!private),
        CKA_ENCRYPT | CKA_DECRYPT | CKA_WRAP | CKA_UNWRAP | CKA_SIGN_RECOVER | CKA_VERIFY_RECOVER => boolean(false),
        CKA_SENSITIVE | CKA_ALWAYS_SENSITIVE | CKA_NEVER_EXTRACTABLE if private => boolean(true),
        CKA_EXTRACTABLE if private => boolean(false),
        CKA_ALWAYS_AUTHENTICATE if private => boolean(c.slot == Slot::Signature),
        CKA_VALUE if private => Attr::Sensitive,
        CKA_KEY_GEN_MECHANISM => ulong(CKM_EC_KEY_PAIR_GEN),
        _ => Attr::Invalid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_round_trip_and_are_never_zero() {
        for slot in [0, 1, 7] {
            for id in 1..=4 {
                for kind in [Kind::Certificate, Kind::Public, Kind::Private] {
                    let h = handle(slot, id, kind);
                    assert_ne!(h, CK_INVALID_HANDLE);
                    assert_eq!(parse_handle(h), Some((slot, id, kind)));
                }
            }
        }
        assert_eq!(parse_handle(0), None);
        assert_eq!(parse_handle(0x10010), None, "kind 0 is no kind");
    }

    #[test]
    fn private_values_are_sensitive_and_9c_always_authenticates() {
        let c = SlotContent::key_only(Slot::Signature, 2, vec![4; 65]);
        assert_eq!(attribute(&c, Kind::Private, CKA_VALUE), Attr::Sensitive);
        assert_eq!(attribute(&c, Kind::Private, CKA_ALWAYS_AUTHENTICATE), Attr::Value(vec![1]));
        assert_eq!(attribute(&c, Kind::Public, CKA_VALUE), Attr::Invalid);
        assert_eq!(attribute(&c, Kind::Private, CKA_LABEL), Attr::Value(b"SIGN key".to_vec()));
        assert_eq!(ec_point(&[4; 65])[..2], [0x04, 0x41]);
    }
}
