//! X.509 certificates the card itself signs: ATTEST (a certificate for a key generated on
//! the card, signed by the F9 attestation key) and the self-signed F9 certificate made at
//! manufacture. Encoded with `der` in its allocation-free mode, so the card core stays no_std.

use der::asn1::{
    AnyRef, BitStringRef, GeneralizedTime, ObjectIdentifier, OctetStringRef, SequenceOf, SetOf, UintRef, UtcTime,
    Utf8StringRef,
};
use der::{Choice, Decode, Encode, Sequence, ValueOrd};
use proto::piv::Slot;
use proto::tlv::Sink;
use proto::Sw;
use sha2::{Digest, Sha256};

use super::reply::Reply;
use super::state::{KeySlot, PersistentState};

const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const PRIME256V1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const COMMON_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");
/// Yubico attestation extensions: firmware version, serial, PIN/touch policy.
const YUBICO_FIRMWARE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.41482.3.3");
const YUBICO_SERIAL: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.41482.3.7");
const YUBICO_POLICY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.41482.3.8");
const BASIC_CONSTRAINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.19");
const KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.15");
/// `SEQUENCE { cA TRUE }`: the F9 certificate issues attestation certificates.
const CA_TRUE: [u8; 5] = [0x30, 0x03, 0x01, 0x01, 0xFF];
/// `BIT STRING { keyCertSign }`.
const KEY_CERT_SIGN: [u8; 4] = [0x03, 0x02, 0x02, 0x04];

#[derive(Sequence)]
struct SigAlg {
    oid: ObjectIdentifier,
}

#[derive(Sequence)]
struct EcAlg {
    oid: ObjectIdentifier,
    curve: ObjectIdentifier,
}

#[derive(Sequence)]
struct Spki<'a> {
    alg: EcAlg,
    key: BitStringRef<'a>,
}

#[derive(Sequence, ValueOrd)]
struct Atv<'a> {
    oid: ObjectIdentifier,
    value: Utf8StringRef<'a>,
}

#[derive(Sequence)]
struct Extension<'a> {
    oid: ObjectIdentifier,
    #[asn1(default = "not_critical")]
    critical: bool,
    value: OctetStringRef<'a>,
}

fn not_critical() -> bool {
    false
}

#[derive(Clone, Copy, Choice)]
enum Time {
    #[asn1(type = "UTCTime")]
    Utc(UtcTime),
    #[asn1(type = "GeneralizedTime")]
    General(GeneralizedTime),
}

#[derive(Sequence)]
struct Validity {
    not_before: Time,
    not_after: Time,
}

#[derive(Sequence)]
struct Tbs<'a> {
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT")]
    version: u8,
    serial: UintRef<'a>,
    sig: SigAlg,
    issuer: AnyRef<'a>,
    validity: AnyRef<'a>,
    subject: AnyRef<'a>,
    spki: Spki<'a>,
    #[asn1(context_specific = "3", tag_mode = "EXPLICIT", optional = "true")]
    extensions: Option<SequenceOf<Extension<'a>, 3>>,
}

#[derive(Sequence)]
struct Certificate<'a> {
    tbs: Tbs<'a>,
    alg: SigAlg,
    signature: BitStringRef<'a>,
}

/// Only the parts of an issuer certificate that attestation copies (subject, validity).
#[derive(Sequence)]
struct TbsView<'a> {
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    version: Option<u8>,
    serial: AnyRef<'a>,
    sig: AnyRef<'a>,
    issuer: AnyRef<'a>,
    validity: AnyRef<'a>,
    subject: AnyRef<'a>,
    spki: AnyRef<'a>,
    #[asn1(context_specific = "3", tag_mode = "EXPLICIT", optional = "true")]
    extensions: Option<AnyRef<'a>>,
}

#[derive(Sequence)]
struct CertView<'a> {
    tbs: TbsView<'a>,
    alg: AnyRef<'a>,
    signature: AnyRef<'a>,
}

const BUF: usize = 1024;

/// `CN=<cn>` as a DER Name, into `buf`.
fn encode_name<'b>(cn: &str, buf: &'b mut [u8]) -> der::Result<&'b [u8]> {
    let mut rdn: SetOf<Atv<'_>, 1> = SetOf::new();
    rdn.insert(Atv { oid: COMMON_NAME, value: Utf8StringRef::new(cn)? })?;
    let mut name: SequenceOf<SetOf<Atv<'_>, 1>, 1> = SequenceOf::new();
    name.add(rdn)?;
    name.encode_to_slice(buf)
}

fn time(unix: u64) -> der::Result<Time> {
    let dt = der::DateTime::from_unix_duration(core::time::Duration::from_secs(unix))?;
    // RFC 5280: UTCTime through 2049, GeneralizedTime from 2050.
    Ok(if dt.year() < 2050 {
        Time::Utc(UtcTime::from_date_time(dt)?)
    } else {
        Time::General(GeneralizedTime::from_date_time(dt))
    })
}

/// What a certificate says, minus the issuer and signature.
struct CertSpec<'a> {
    serial: &'a [u8],
    issuer: &'a [u8],
    validity: &'a [u8],
    subject: &'a [u8],
    public_point: &'a [u8; 65],
    extensions: Option<SequenceOf<Extension<'a>, 3>>,
}

/// Encode the TBS, sign it with `signer`, write the whole certificate to `out`.
fn sign_certificate<S: Sink>(spec: CertSpec<'_>, signer: &KeySlot, out: &mut S) -> der::Result<()> {
    let tbs = Tbs {
        version: 2,
        serial: UintRef::new(spec.serial)?,
        sig: SigAlg { oid: ECDSA_WITH_SHA256 },
        issuer: AnyRef::from_der(spec.issuer)?,
        validity: AnyRef::from_der(spec.validity)?,
        subject: AnyRef::from_der(spec.subject)?,
        spki: Spki {
            alg: EcAlg { oid: EC_PUBLIC_KEY, curve: PRIME256V1 },
            key: BitStringRef::from_bytes(spec.public_point)?,
        },
        extensions: spec.extensions,
    };
    let mut tbs_buf = [0u8; BUF];
    let tbs_der = tbs.encode_to_slice(&mut tbs_buf)?;
    let digest: [u8; 32] = Sha256::digest(tbs_der).into();
    let sig = signer.sign_prehash(&digest).ok_or(der::ErrorKind::Failed)?;
    let sig_der = sig.to_der();
    let cert = Certificate {
        tbs,
        alg: SigAlg { oid: ECDSA_WITH_SHA256 },
        signature: BitStringRef::from_bytes(sig_der.as_bytes())?,
    };
    let mut cert_buf = [0u8; BUF];
    let der = cert.encode_to_slice(&mut cert_buf)?;
    out.put(der).map_err(|_| der::ErrorKind::Overlength.into())
}

fn serial_from(seed: &[u8; 16]) -> [u8; 16] {
    let mut s = *seed;
    s[0] &= 0x7F; // positive
    s[0] |= 0x01; // no leading zero byte to strip
    s
}

/// The self-signed certificate of the attestation key (F9), made at manufacture.
pub fn self_signed_attestation_cert<S: Sink>(
    key: &KeySlot,
    serial_seed: &[u8; 16],
    not_before: u64,
    not_after: u64,
    out: &mut S,
) -> der::Result<()> {
    let mut name_buf = [0u8; 128];
    let name = encode_name("ukey PIV Attestation", &mut name_buf)?;
    let validity = Validity { not_before: time(not_before)?, not_after: time(not_after)? };
    let mut val_buf = [0u8; 64];
    let validity = validity.encode_to_slice(&mut val_buf)?;
    let serial = serial_from(serial_seed);
    let point = key.public_point();
    // Verifiers (openssl verify) accept it as the issuer of attestations only as a CA.
    let mut exts: SequenceOf<Extension<'_>, 3> = SequenceOf::new();
    exts.add(Extension { oid: BASIC_CONSTRAINTS, critical: true, value: OctetStringRef::new(&CA_TRUE)? })?;
    exts.add(Extension { oid: KEY_USAGE, critical: true, value: OctetStringRef::new(&KEY_CERT_SIGN)? })?;
    let spec = CertSpec {
        serial: &serial,
        issuer: name,
        validity,
        subject: name,
        public_point: &point,
        extensions: Some(exts),
    };
    sign_certificate(spec, key, out)
}

/// ATTEST: a certificate for `key` (generated in `slot`), issued by the F9 key under the
/// subject and validity of the F9 certificate, with Yubico's attestation extensions.
pub fn write_attestation(
    state: &PersistentState,
    slot: Slot,
    key: &KeySlot,
    attester: &KeySlot,
    issuer_object: &[u8],
    out: &mut Reply,
) -> Result<(), Sw> {
    let issuer_der = proto::piv::cert_object::decode(issuer_object).map_err(|_| Sw::REFERENCE_NOT_FOUND)?.certificate;
    let issuer = CertView::from_der(issuer_der).map_err(|_| Sw::REFERENCE_NOT_FOUND)?;
    let mut issuer_name = [0u8; 256];
    let issuer_name = issuer.tbs.subject.encode_to_slice(&mut issuer_name).map_err(|_| Sw::UNKNOWN)?;
    let mut validity = [0u8; 64];
    let validity = issuer.tbs.validity.encode_to_slice(&mut validity).map_err(|_| Sw::UNKNOWN)?;

    let mut cn: heapless::String<32> = heapless::String::new();
    let _ = core::fmt::write(&mut cn, format_args!("ukey PIV Attestation {slot}"));
    let mut subject = [0u8; 128];
    let subject = encode_name(&cn, &mut subject).map_err(|_| Sw::UNKNOWN)?;

    let version = match state.flavor {
        super::state::Flavor::Yubico { version } => version,
        super::state::Flavor::Plain => [0, 0, 0],
    };
    let mut serial_int = [0u8; 8];
    let serial_int = (state.serial as u64).encode_to_slice(&mut serial_int).map_err(|_| Sw::UNKNOWN)?;
    let policy = [key.pin_policy, key.touch_policy];
    let mut exts: SequenceOf<Extension<'_>, 3> = SequenceOf::new();
    let ext = |oid, value| -> Result<Extension<'_>, Sw> {
        Ok(Extension { oid, critical: false, value: OctetStringRef::new(value).map_err(|_| Sw::UNKNOWN)? })
    };
    exts.add(ext(YUBICO_FIRMWARE, &version)?).map_err(|_| Sw::UNKNOWN)?;
    exts.add(ext(YUBICO_SERIAL, serial_int)?).map_err(|_| Sw::UNKNOWN)?;
    exts.add(ext(YUBICO_POLICY, &policy)?).map_err(|_| Sw::UNKNOWN)?;

    // Serial: a hash of the attested public key, so the same key attests the same way.
    let point = key.public_point();
    let h: [u8; 32] = Sha256::digest(point).into();
    let serial = serial_from(&h[..16].try_into().map_err(|_| Sw::UNKNOWN)?);
    let spec = CertSpec {
        serial: &serial,
        issuer: issuer_name,
        validity,
        subject,
        public_point: &point,
        extensions: Some(exts),
    };
    sign_certificate(spec, attester, out).map_err(|_| Sw::UNKNOWN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_time_through_2049_generalized_time_from_2050() {
        const END_OF_2049: u64 = 2_524_607_999; // 2049-12-31T23:59:59Z
        assert!(matches!(time(END_OF_2049).unwrap(), Time::Utc(_)));
        assert!(matches!(time(END_OF_2049 + 1).unwrap(), Time::General(_)));
        assert!(matches!(time(1_790_000_000).unwrap(), Time::Utc(_)));
    }
}
