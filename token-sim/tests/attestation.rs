//! Attestation from the factory: a key made with a manufacturer CA attests its generated keys
//! with a chain (ATTEST <- F9 <- factory) that the portal's verifier and openssl accept, and
//! every way of faking one is refused.

mod common;

use std::sync::Arc;

use ca::attestation::{self, AttestationError, Roots};
use common::*;
use proto::clock::FixedClock;
use proto::piv::{Algorithm, PinPolicy, TouchPolicy};
use proto::Sw;
use token_sim::piv::{Card, NoStorage};
use token_sim::rng::SimRng;
use token_sim::virtual_key::KeySpec;

fn factory(dir: &std::path::Path, name: &str) -> Arc<ca::Ca> {
    Arc::new(ca::Ca::create(&dir.join(name), &format!("CN={name},O=ukey"), 36_500, &FixedClock(NOW - 100)).unwrap())
}

fn roots(f: &ca::Ca) -> Roots {
    let mut r = Roots::default();
    r.add_der(&f.certificate_der()).unwrap();
    r
}

fn key(factory: Option<Arc<ca::Ca>>, serial: u32) -> Box<Card<NoStorage, SimRng>> {
    card_with(&KeySpec { serial: Some(serial), seed: Some(serial as u64), factory, ..KeySpec::default() }, NoStorage)
}

/// Generate a P-256 key in `slot` with `pin_policy` (Yubico tag AA); the public point.
fn generate_with(c: &mut Card<NoStorage, SimRng>, slot: u8, pin_policy: u8) -> Vec<u8> {
    assert_eq!(mgmt_auth(c, Algorithm::Tdes, &MGMT), Sw::OK);
    let (data, sw) = tx(c, &apdu(0x47, 0, slot, &[0xAC, 0x06, 0x80, 0x01, 0x11, 0xAA, 0x01, pin_policy]));
    assert_eq!(sw, Sw::OK);
    data[5..].to_vec()
}

/// (ATTEST of `slot`, the F9 certificate), both DER.
fn attest(c: &mut Card<NoStorage, SimRng>, slot: u8) -> (Vec<u8>, Vec<u8>) {
    let (mut d, mut s) = tx(c, &[0, 0xF9, slot, 0, 0]);
    while let Some(n) = s.bytes_remaining() {
        let (m, s2) = tx(c, &[0, 0xC0, 0, 0, n as u8]);
        d.extend(m);
        s = s2;
    }
    assert_eq!(s, Sw::OK, "ATTEST {slot:02x}");
    let (f9, _) = read_object(c, 0x5FFF01);
    (d, proto::piv::cert_object::decode(&f9).unwrap().certificate.to_vec())
}

#[test]
fn a_factory_key_attests_up_to_the_factory() {
    let dir = tempfile::tempdir().unwrap();
    let f = factory(dir.path(), "factory");
    let mut c = key(Some(f.clone()), 31_415_926);
    let point = generate_with(&mut c, 0x9A, 2);
    let (att, f9) = attest(&mut c, 0x9A);
    let a = attestation::verify(&att, &f9, &roots(&f), NOW).unwrap();
    assert_eq!(a.public_key.subject_public_key.raw_bytes(), &point[..], "the generated key is the one attested");
    assert_eq!(a.serial, Some(31_415_926));
    assert_eq!(a.firmware_string().as_deref(), Some("5.4.3"));
    assert_eq!(a.pin_policy, Some(PinPolicy::Once));
    assert_eq!(a.touch_policy, Some(TouchPolicy::Never));
    assert_eq!(a.manufacturer, "CN=factory,O=ukey");

    // The key's PIN policy is what the attestation says, "never" included.
    let _ = generate_with(&mut c, 0x9D, 1);
    let (att, f9) = attest(&mut c, 0x9D);
    assert_eq!(attestation::verify(&att, &f9, &roots(&f), NOW).unwrap().pin_policy, Some(PinPolicy::Never));

    // openssl, as a third party, builds the same chain: factory root, F9 untrusted intermediate.
    let tmp = dir.path();
    let pem = |name: &str, der: &[u8]| {
        let p = tmp.join(name);
        std::fs::write(&p, der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, der).unwrap()).unwrap();
        p
    };
    let (root, inter, leaf) = (pem("root.pem", &f.certificate_der()), pem("f9.pem", &f9), pem("att.pem", &att));
    match std::process::Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(&root)
        .arg("-untrusted")
        .arg(&inter)
        .arg(&leaf)
        .output()
    {
        Ok(out) => assert!(
            out.status.success(),
            "openssl verify: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => {
            testsupport::skip(format_args!("openssl as the judge ({e})"));
        }
    }
}

#[test]
fn keys_without_a_trusted_factory_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let trusted = factory(dir.path(), "trusted");
    let r = roots(&trusted);

    // No factory: the F9 certificate signs itself.
    let mut c = key(None, 1001);
    generate_with(&mut c, 0x9A, 2);
    let (att, f9) = attest(&mut c, 0x9A);
    assert!(matches!(attestation::verify(&att, &f9, &r, NOW), Err(AttestationError::Untrusted { .. })));

    // Another factory.
    let mut c = key(Some(factory(dir.path(), "other")), 1002);
    generate_with(&mut c, 0x9A, 2);
    let (att, f9) = attest(&mut c, 0x9A);
    let err = attestation::verify(&att, &f9, &r, NOW).unwrap_err();
    assert!(matches!(err, AttestationError::Untrusted { .. }), "{err}");
    assert!(err.to_string().contains("CN=other,O=ukey") && err.to_string().contains("CN=trusted,O=ukey"), "{err}");

    // A forged factory of the same name: the name matches, the signature does not.
    let forged =
        Arc::new(ca::Ca::create(&dir.path().join("forged"), "CN=trusted,O=ukey", 10, &FixedClock(NOW - 100)).unwrap());
    let mut c = key(Some(forged), 1003);
    generate_with(&mut c, 0x9A, 2);
    let (att, f9) = attest(&mut c, 0x9A);
    assert!(matches!(attestation::verify(&att, &f9, &r, NOW), Err(AttestationError::Untrusted { .. })));

    // No roots at all.
    assert!(matches!(attestation::verify(&att, &f9, &Roots::default(), NOW), Err(AttestationError::NoRoots)));
}

#[test]
fn a_tampered_or_borrowed_attestation_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let f = factory(dir.path(), "factory");
    let r = roots(&f);
    let mut a = key(Some(f.clone()), 2001);
    let mut b = key(Some(f.clone()), 2002);
    generate_with(&mut a, 0x9A, 2);
    generate_with(&mut b, 0x9A, 2);
    let (att_a, f9_a) = attest(&mut a, 0x9A);
    let (_, f9_b) = attest(&mut b, 0x9A);

    // A's attestation with B's (genuine) F9 certificate: not signed by that F9 key.
    assert!(matches!(attestation::verify(&att_a, &f9_b, &r, NOW), Err(AttestationError::NotSignedByF9)));

    // One bit of the attested public key changed (so it names another key): the signature fails.
    let cert = <x509_cert::Certificate as der::Decode>::from_der(&att_a).unwrap();
    let point = cert.tbs_certificate.subject_public_key_info.subject_public_key.raw_bytes();
    let at = att_a.windows(point.len()).position(|w| w == point).unwrap() + point.len() - 1;
    let mut bad = att_a.clone();
    bad[at] ^= 1;
    assert!(matches!(attestation::verify(&bad, &f9_a, &r, NOW), Err(AttestationError::NotSignedByF9)));

    // Garbage.
    assert!(matches!(attestation::verify(b"\x30\x03abc", &f9_a, &r, NOW), Err(AttestationError::Malformed { .. })));

    // After the F9 certificate's 20 years.
    let late = NOW + 21 * 365 * 86_400;
    assert!(matches!(attestation::verify(&att_a, &f9_a, &r, late), Err(AttestationError::NotValidNow { .. })));
}

#[test]
fn roots_must_be_ca_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let f = factory(dir.path(), "factory");
    let mut c = key(Some(f.clone()), 3001);
    generate_with(&mut c, 0x9A, 2);
    let (att, f9) = attest(&mut c, 0x9A);
    let mut r = Roots::default();
    let err = r.add_der(&att).unwrap_err();
    assert!(err.to_string().contains("not a CA certificate"), "{err}");
    // A PEM bundle: every certificate in it; the F9 certificate is a CA (path length 0).
    let pem: String = [f.certificate_der(), f9.clone()]
        .iter()
        .map(|d| der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, d).unwrap())
        .collect();
    assert_eq!(Roots::from_pem(pem.as_bytes()).unwrap().len(), 2);
    assert!(matches!(Roots::from_pem(b"nothing here"), Err(AttestationError::BadRoots(_))));
}

#[test]
fn an_f9_that_is_not_a_ca_certificate_is_refused() {
    // A trusted CA's ordinary certificate (here: a client certificate for a key its holder
    // has) signing an "attestation" of another key.
    use der::Encode;
    use x509_cert::builder::{Builder, CertificateBuilder, Profile};
    let dir = tempfile::tempdir().unwrap();
    let f = factory(dir.path(), "factory");
    let holder = p256::ecdsa::SigningKey::random(&mut rand_core::OsRng);
    let spki = p256::pkcs8::EncodePublicKey::to_public_key_der(holder.verifying_key()).unwrap();
    let leaf_cert =
        f.issue(&ca::parse_name("CN=ukey PIV Attestation").unwrap(), spki.as_bytes(), NOW - 60, NOW + 86_400).unwrap();
    let victim = p256::ecdsa::SigningKey::random(&mut rand_core::OsRng);
    let victim_spki = x509_cert::spki::SubjectPublicKeyInfoOwned::from_key(*victim.verifying_key()).unwrap();
    let validity = x509_cert::time::Validity {
        not_before: ca::x509_time(NOW - 60).unwrap(),
        not_after: ca::x509_time(NOW + 86_400).unwrap(),
    };
    let issuer = <x509_cert::Certificate as der::Decode>::from_der(&leaf_cert).unwrap().tbs_certificate.subject;
    let profile = Profile::Leaf { issuer, enable_key_agreement: false, enable_key_encipherment: false };
    let serial = x509_cert::serial_number::SerialNumber::new(&[1]).unwrap();
    let subject = ca::parse_name("CN=ukey PIV Attestation 9a").unwrap();
    let forged = CertificateBuilder::new(profile, serial, validity, subject, victim_spki, &holder)
        .unwrap()
        .build::<p256::ecdsa::DerSignature>()
        .unwrap()
        .to_der()
        .unwrap();
    let err = attestation::verify(&forged, &leaf_cert, &roots(&f), NOW).unwrap_err();
    assert!(err.to_string().contains("not a CA certificate"), "{err}");
}
