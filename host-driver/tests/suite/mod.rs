//! Key tests every transport must pass: the same assertions run against an in-process key
//! (driver.rs), a virtual key in a PC/SC reader (pcsc.rs), and a virtual key as a USB CCID
//! token on the software bus and over USB/IP (ccid.rs).
#![allow(dead_code)]

use host_driver::certinfo::{public_key, CertInfo};
use host_driver::{csr, inspect, MgmtKey, PinOutcome, PinStatus, Piv, PivError};
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use proto::clock::FixedClock;
use proto::piv::{object, Algorithm, Slot};
use proto::Transport;
use token_sim::piv::state::Flavor;
use token_sim::KeySpec;

pub const NOW: u64 = 1_790_000_000;

/// Makes a new key from a spec and connects the driver to it.
pub trait Maker {
    type T: Transport;
    fn make(&self, spec: KeySpec) -> Piv<Self::T>;
    fn fresh(&self) -> Piv<Self::T> {
        self.make(KeySpec { seed: Some(1), ..KeySpec::default() })
    }
}

/// One `#[test]` per suite function, over the given maker.
#[macro_export]
macro_rules! key_suite {
    ($maker:expr) => {
        key_suite!(@ $maker; verify_pin_outcomes, change_and_unblock, management_key_auth_and_change, generate_sign_verify_with_p256, csr_from_the_card_is_issued_by_the_ca_and_stored_back, csr_without_pin_reports_the_card_error, self_signed_certificate_verifies, large_certificate_round_trips, yubico_extensions_and_plain_fallback, attestation_chains_to_the_f9_certificate, ecdh_and_random, random_keeps_management_key_authentication, random_with_an_aes_management_key, reset_after_blocking_both, set_pin_retries_through_the_driver, move_and_delete_keys_need_the_management_key);
    };
    (@ $maker:expr; $($name:ident),*) => {
        $(
            #[test]
            fn $name() {
                suite::$name(&$maker)
            }
        )*
    };
}

pub fn verify_pin_outcomes<M: Maker>(m: &M) {
    let mut p = m.fresh();
    assert_eq!(p.pin_status().unwrap(), PinStatus::NotVerified { retries_left: 3 });
    assert_eq!(p.verify_pin(&"000000".into()).unwrap(), PinOutcome::WrongPin { retries_left: 2 });
    assert_eq!(p.pin_retries().unwrap(), (Some(2), Some(3)));
    assert_eq!(p.verify_pin(&"123456".into()).unwrap(), PinOutcome::Ok);
    assert_eq!(p.pin_status().unwrap(), PinStatus::Verified);
    p.logout().unwrap();
    for left in [2, 1] {
        assert_eq!(p.verify_pin(&"000000".into()).unwrap(), PinOutcome::WrongPin { retries_left: left });
    }
    assert_eq!(p.verify_pin(&"000000".into()).unwrap(), PinOutcome::Blocked, "63C0 means blocked now");
    assert_eq!(p.verify_pin(&"123456".into()).unwrap(), PinOutcome::Blocked);
    assert_eq!(p.pin_status().unwrap(), PinStatus::Blocked);
    assert!(matches!(p.verify_pin(&"12".into()), Err(PivError::Input(_))), "too short, never sent");
}

pub fn change_and_unblock<M: Maker>(m: &M) {
    let mut p = m.fresh();
    assert_eq!(p.change_pin(&"000000".into(), &"222222".into()).unwrap(), PinOutcome::WrongPin { retries_left: 2 });
    assert_eq!(p.change_pin(&"123456".into(), &"222222".into()).unwrap(), PinOutcome::Ok);
    assert_eq!(p.verify_pin(&"222222".into()).unwrap(), PinOutcome::Ok);
    assert_eq!(p.change_puk(&"12345678".into(), &"87654321".into()).unwrap(), PinOutcome::Ok);
    for _ in 0..3 {
        p.verify_pin(&"000000".into()).unwrap();
    }
    assert_eq!(p.unblock_pin(&"12345678".into(), &"333333".into()).unwrap(), PinOutcome::WrongPin { retries_left: 2 });
    assert_eq!(p.unblock_pin(&"87654321".into(), &"333333".into()).unwrap(), PinOutcome::Ok);
    assert_eq!(p.verify_pin(&"333333".into()).unwrap(), PinOutcome::Ok);
}

pub fn management_key_auth_and_change<M: Maker>(m: &M) {
    let mut p = m.fresh();
    let wrong = MgmtKey::from_hex(&"11".repeat(24), None).unwrap();
    assert!(matches!(p.authenticate(&wrong), Err(PivError::NotAuthorized { .. })));
    assert!(matches!(p.generate(Slot::Authentication, None, None), Err(PivError::NotAuthorized { .. })));
    p.authenticate(&MgmtKey::default()).unwrap();
    let aes = MgmtKey::from_hex(&"AB".repeat(24), Some(Algorithm::Aes192)).unwrap();
    p.set_management_key(&aes, false).unwrap();
    p.transport().reset().unwrap();
    // The user passes bytes only; the card's metadata tells the algorithm.
    let same_bytes = MgmtKey::from_hex(&"AB".repeat(24), None).unwrap();
    assert_eq!(same_bytes.alg, Algorithm::Tdes);
    p.authenticate_auto(&same_bytes).unwrap();
    assert!(p.metadata(0x9B).unwrap().is_default == Some(false));
}

pub fn generate_sign_verify_with_p256<M: Maker>(m: &M) {
    let mut p = m.fresh();
    p.authenticate(&MgmtKey::default()).unwrap();
    let public = p.generate(Slot::Authentication, None, None).unwrap();
    assert!(matches!(p.sign_message(Slot::Authentication, b"x"), Err(PivError::NotAuthorized { .. })));
    assert_eq!(p.verify_pin(&"123456".into()).unwrap(), PinOutcome::Ok);
    let sig = p.sign_message(Slot::Authentication, b"hello ukey").unwrap();
    let vk = VerifyingKey::from(&public);
    vk.verify(b"hello ukey", &Signature::from_der(&sig.der).unwrap()).expect("DER form verifies");
    vk.verify(b"hello ukey", &Signature::from_slice(&sig.raw).unwrap()).expect("raw r||s form verifies");
    assert!(vk.verify(b"hello ukeY", &Signature::from_der(&sig.der).unwrap()).is_err());
    assert!(matches!(p.sign_digest(Slot::KeyManagement, &[1; 32]), Err(PivError::Empty { .. })));
    assert!(matches!(p.sign_digest(Slot::Authentication, &[1; 33]), Err(PivError::Input(_))));
}

pub fn csr_from_the_card_is_issued_by_the_ca_and_stored_back<M: Maker>(m: &M) {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca::Ca::create(dir.path(), "CN=Test CA", 3650, &FixedClock(NOW)).unwrap();
    let mut p = m.fresh();
    p.authenticate(&MgmtKey::default()).unwrap();
    let public = p.generate(Slot::Authentication, None, None).unwrap();
    p.verify_pin(&"123456".into()).unwrap();
    let req = csr::certificate_request(&mut p, Slot::Authentication, &public, "CN=Zhang San,O=Example Co").unwrap();
    let cert = ca.issue_from_csr(&req, 365, &FixedClock(NOW)).unwrap();
    p.write_certificate(Slot::Authentication, &cert).unwrap();
    let back = p.read_certificate(Slot::Authentication).unwrap().unwrap();
    assert_eq!(back, cert);
    assert_eq!(public_key(&back).unwrap(), public, "certificate names the card's key");
    let info = CertInfo::parse(&back).unwrap();
    assert_eq!(info.subject, "CN=Zhang San,O=Example Co");
    assert_eq!(info.days_left(NOW), 365);
    assert!(ca.verify_issued(&back));
}

pub fn csr_without_pin_reports_the_card_error<M: Maker>(m: &M) {
    let mut p = m.fresh();
    p.authenticate(&MgmtKey::default()).unwrap();
    let public = p.generate(Slot::Authentication, None, None).unwrap();
    let err = csr::certificate_request(&mut p, Slot::Authentication, &public, "CN=x").unwrap_err();
    assert!(matches!(err, PivError::NotAuthorized { .. }), "{err}");
    let err = csr::certificate_request(&mut p, Slot::Authentication, &public, "nonsense").unwrap_err();
    assert!(err.to_string().contains("RFC 4514"), "{err}");
    // Another key's public half (a stale certificate's, a wrong file): refused, not returned.
    p.verify_pin(&"123456".into()).unwrap();
    let other = p256::SecretKey::random(&mut rand_core::OsRng).public_key();
    let err = csr::certificate_request(&mut p, Slot::Authentication, &other, "CN=x").unwrap_err();
    assert!(matches!(err, PivError::NotTheSlotKey { slot: Slot::Authentication }), "{err}");
    let err = csr::self_signed_certificate(&mut p, Slot::Authentication, &other, "CN=x", NOW, NOW + 60).unwrap_err();
    assert!(matches!(err, PivError::NotTheSlotKey { .. }), "{err}");
    csr::certificate_request(&mut p, Slot::Authentication, &public, "CN=x").expect("the slot's own key");
}

pub fn self_signed_certificate_verifies<M: Maker>(m: &M) {
    let mut p = m.fresh();
    p.authenticate(&MgmtKey::default()).unwrap();
    let public = p.generate(Slot::Signature, None, None).unwrap();
    p.verify_pin(&"123456".into()).unwrap();
    let der = csr::self_signed_certificate(&mut p, Slot::Signature, &public, "CN=self", NOW, NOW + 86_400).unwrap();
    assert!(ca::verify_signed_by(&der, &VerifyingKey::from(&public)));
}

pub fn large_certificate_round_trips<M: Maker>(m: &M) {
    let mut p = m.fresh();
    p.authenticate(&MgmtKey::default()).unwrap();
    let blob: Vec<u8> = (0..3500u32).map(|i| (i % 251) as u8).collect();
    p.write_certificate(Slot::KeyManagement, &blob).unwrap();
    assert_eq!(p.read_certificate(Slot::KeyManagement).unwrap().unwrap(), blob);
    p.delete_certificate(Slot::KeyManagement).unwrap();
    assert_eq!(p.read_certificate(Slot::KeyManagement).unwrap(), None);
}

pub fn yubico_extensions_and_plain_fallback<M: Maker>(m: &M) {
    let mut p = m.fresh();
    assert_eq!(p.version().unwrap(), [5, 4, 3]);
    let serial = p.serial().unwrap();
    let info = inspect(&mut p, "k").unwrap();
    assert_eq!(info.serial, Some(serial.to_string()));
    assert_eq!((info.pin_retries, info.pin_retries_total), (Some(3), Some(3)));

    let mut plain = m.make(KeySpec { flavor: Flavor::Plain, seed: Some(2), ..KeySpec::default() });
    assert!(plain.version().unwrap_err().is_not_supported());
    let info = inspect(&mut plain, "plain").expect("works without Yubico extensions");
    assert_eq!(info.version, None);
    assert_eq!(info.serial.as_ref().map(String::len), Some(32), "CHUID GUID as serial");
    assert_eq!((info.pin_retries, info.pin_retries_total), (Some(3), None));
    plain.verify_pin(&"000000".into()).unwrap();
    assert_eq!(plain.pin_retries().unwrap(), (Some(2), None));
}

pub fn attestation_chains_to_the_f9_certificate<M: Maker>(m: &M) {
    let mut p = m.fresh();
    p.authenticate(&MgmtKey::default()).unwrap();
    let public = p.generate(Slot::Authentication, None, None).unwrap();
    let att = p.attest(Slot::Authentication).unwrap();
    let f9 = p.read_object(object::ATTESTATION_CERT).unwrap().unwrap();
    let f9_der = proto::tlv::find(&f9, 0x70).unwrap().unwrap();
    assert!(ca::verify_signed_by(&att, &VerifyingKey::from(&public_key(f9_der).unwrap())));
    assert_eq!(public_key(&att).unwrap(), public);
    assert!(matches!(p.attest(Slot::Signature), Err(PivError::Empty { .. })));
}

pub fn ecdh_and_random<M: Maker>(m: &M) {
    let mut p = m.fresh();
    p.authenticate(&MgmtKey::default()).unwrap();
    let card_pub = p.generate(Slot::KeyManagement, None, None).unwrap();
    p.verify_pin(&"123456".into()).unwrap();
    let host = p256::SecretKey::random(&mut rand_core::OsRng);
    let shared = p.ecdh(Slot::KeyManagement, &host.public_key()).unwrap();
    let expect = p256::ecdh::diffie_hellman(host.to_nonzero_scalar(), card_pub.as_affine());
    assert_eq!(shared, expect.raw_secret_bytes().to_vec());
    let r = p.random(20).unwrap();
    assert_eq!(r.len(), 20);
    assert_ne!(r, vec![0; 20]);
}

pub fn random_keeps_management_key_authentication<M: Maker>(m: &M) {
    let mut p = m.fresh();
    p.authenticate(&MgmtKey::default()).unwrap();
    assert_eq!(p.random(32).unwrap().len(), 32);
    p.generate(Slot::Authentication, None, None).expect("authenticate, random(), generate: still authorised");
    p.random(8).unwrap();
    p.write_certificate(Slot::Authentication, &[0x30, 0x00]).expect("and PUT DATA too");
}

pub fn random_with_an_aes_management_key<M: Maker>(m: &M) {
    let aes = [0x42; 16];
    for flavor in [Flavor::Plain, Flavor::Yubico { version: [5, 7, 1] }] {
        let spec = KeySpec {
            mgmt_alg: Algorithm::Aes128,
            mgmt_key: aes.to_vec().into(),
            flavor,
            seed: Some(4),
            ..KeySpec::default()
        };
        let mut p = m.make(spec);
        let r = p.random(33).unwrap();
        assert_eq!(r.len(), 33);
        assert_ne!(r, p.random(33).unwrap());
        p.authenticate_auto(&MgmtKey::new(Algorithm::Aes128, &aes).unwrap()).unwrap();
        p.random(16).unwrap();
        p.generate(Slot::Signature, None, None).unwrap();
    }
}

pub fn reset_after_blocking_both<M: Maker>(m: &M) {
    let mut p = m.fresh();
    assert!(p.reset().unwrap_err().to_string().contains("block PIN and PUK first"));
    for _ in 0..3 {
        p.verify_pin(&"000000".into()).unwrap();
        p.unblock_pin(&"00000000".into(), &"111111".into()).unwrap();
    }
    p.reset().unwrap();
    assert_eq!(p.verify_pin(&"123456".into()).unwrap(), PinOutcome::Ok);
    p.authenticate(&MgmtKey::default()).unwrap();
    assert!(matches!(p.metadata(0x9A), Err(PivError::Empty { .. })));
}

pub fn set_pin_retries_through_the_driver<M: Maker>(m: &M) {
    let mut p = m.fresh();
    p.authenticate(&MgmtKey::default()).unwrap();
    p.verify_pin(&"123456".into()).unwrap();
    p.set_pin_retries(5, 4).unwrap();
    assert_eq!(p.pin_retries().unwrap(), (Some(5), Some(5)));
}

/// MOVE KEY (Yubico 5.7): the management key moves a key to an empty slot or deletes it; a key
/// never lands on another, a missing one is 6A88, and without the management key nothing moves.
pub fn move_and_delete_keys_need_the_management_key<M: Maker>(m: &M) {
    let mut p = m.fresh();
    assert!(matches!(p.delete_key(Slot::Authentication), Err(PivError::NotAuthorized { .. })));
    p.authenticate(&MgmtKey::default()).unwrap();
    let public = p.generate(Slot::Authentication, None, None).unwrap();
    p.move_key(Slot::Authentication, Slot::KeyManagement).unwrap();
    assert!(matches!(p.metadata(0x9A), Err(PivError::Empty { .. })));
    let moved = p.metadata(0x9D).unwrap().public_key.unwrap();
    assert_eq!(p256::PublicKey::from_sec1_bytes(&moved).unwrap(), public);
    p.generate(Slot::Authentication, None, None).unwrap();
    assert!(matches!(
        p.move_key(Slot::Authentication, Slot::KeyManagement),
        Err(PivError::Card { sw: proto::Sw::CONDITIONS_NOT_SATISFIED, .. })
    ));
    p.delete_key(Slot::KeyManagement).unwrap();
    assert!(matches!(p.metadata(0x9D), Err(PivError::Empty { .. })));
    assert!(matches!(p.delete_key(Slot::KeyManagement), Err(PivError::Empty { .. })));
    // The deleted key no longer signs; the new 9A key does.
    p.verify_pin(&"123456".into()).unwrap();
    assert!(p.sign_digest(Slot::KeyManagement, &[7; 32]).is_err());
    p.sign_digest(Slot::Authentication, &[7; 32]).unwrap();
}
