//! The host driver against an in-process virtual key. The driver only sees a `Transport`.

mod suite;

use host_driver::{Applet, MgmtKey, PinOutcome, PinStatus, Piv, PivError};
use proto::clock::FixedClock;
use proto::piv::{object, Algorithm, Slot};
use proto::{CommandApdu, Sw, Transport, TransportError};
use suite::{Maker, NOW};
use testsupport::Tap;
use token_sim::piv::state::Flavor;
use token_sim::{KeySpec, VirtualKey};

struct InProcess;

impl Maker for InProcess {
    type T = VirtualKey;
    fn make(&self, spec: KeySpec) -> Piv<VirtualKey> {
        Piv::new(VirtualKey::in_memory(&spec, &FixedClock(NOW)).unwrap())
    }
}

key_suite!(InProcess);

#[test]
fn removed_key_is_a_transport_error() {
    let mut p = InProcess.fresh();
    p.transport().remove();
    assert!(matches!(p.verify_pin(&"123456".into()), Err(PivError::Transport(TransportError::NoCard(_)))));
    p.transport().insert();
    assert_eq!(p.pin_status().unwrap(), PinStatus::NotVerified { retries_left: 3 });
}

/// A card that wants the exact Le, as some real cards do: a read (GET DATA, GET VERSION,
/// GET SERIAL, GET METADATA) whose Le is not the answer's length gets 6Cxx and is not
/// executed.
fn exact_le() -> Piv<Tap<VirtualKey>> {
    let key = VirtualKey::in_memory(&KeySpec { seed: Some(5), ..KeySpec::default() }, &FixedClock(NOW)).unwrap();
    Piv::new(Tap::new(key, |apdu, key| {
        let cmd = CommandApdu::parse(apdu).expect("the driver sends well-formed APDUs");
        let r = key.transmit(apdu)?;
        let data_len = r.len() - 2;
        let read = matches!(cmd.ins, 0xCB | 0xFD | 0xF8 | 0xF7);
        if read && r[data_len..] == [0x90, 0x00] && data_len < 256 && cmd.le.is_some_and(|le| le != data_len) {
            return Ok(vec![0x6C, data_len as u8]);
        }
        Ok(r)
    }))
}

#[test]
fn wrong_le_answer_to_a_read_is_retried_with_the_right_le() {
    let mut p = exact_le();
    assert_eq!(p.version().unwrap(), [5, 4, 3]);
    assert_eq!(p.transport().sent, vec![vec![0x00, 0xFD, 0, 0, 0x00], vec![0x00, 0xFD, 0, 0, 0x03]]);

    // GET DATA (case 4: data and Le): only the Le changes, the tag list stays as it was.
    let mut honest =
        Piv::new(VirtualKey::in_memory(&KeySpec { seed: Some(5), ..KeySpec::default() }, &FixedClock(NOW)).unwrap());
    let expect = honest.read_object(object::CHUID).unwrap().unwrap();
    p.transport().sent.clear();
    assert_eq!(p.read_object(object::CHUID).unwrap().unwrap(), expect);
    let sent = p.transport().sent.clone();
    assert_eq!(sent.len(), 2, "{sent:02X?}");
    let (first, again) = (&sent[0], &sent[1]);
    assert_eq!(first, &[0x00, 0xCB, 0x3F, 0xFF, 0x05, 0x5C, 0x03, 0x5F, 0xC1, 0x02, 0x00]);
    assert_eq!(again[..again.len() - 1], first[..first.len() - 1], "same command, same data");
    assert_eq!(*again.last().unwrap() as usize, expect.len() + 2, "Le: the 53 object's length");
}

/// Whether an APDU carries a PIN block (VERIFY, CHANGE REFERENCE, RESET RETRY with data).
fn pin_command(apdu: &[u8]) -> bool {
    matches!(apdu[1], 0x20 | 0x24 | 0x2C) && apdu.len() > 5
}

/// A card that answers the first VERIFY, CHANGE REFERENCE or RESET RETRY it gets with 6C08
/// without looking at it, and hands every later one to the key: had the driver "corrected the
/// Le" of those commands, the key would see a PIN block whose last byte is 08 and count a try.
fn six_c_on_pins(key: VirtualKey) -> Tap<VirtualKey> {
    let mut answered_6c = false;
    Tap::new(key, move |apdu, key| {
        if pin_command(apdu) && !answered_6c {
            answered_6c = true;
            return Ok(vec![0x6C, 0x08]);
        }
        key.transmit(apdu)
    })
}

/// The PIN-carrying APDUs sent.
fn pins_sent(p: &mut Piv<Tap<VirtualKey>>) -> Vec<Vec<u8>> {
    p.transport().sent.iter().filter(|a| pin_command(a)).cloned().collect()
}

#[test]
fn wrong_le_answer_to_verify_change_or_unblock_never_resends_the_pin_block() {
    let six_c = || {
        let key = VirtualKey::in_memory(&KeySpec { seed: Some(6), ..KeySpec::default() }, &FixedClock(NOW)).unwrap();
        Piv::new(six_c_on_pins(key))
    };
    let pin_block = |pin: &[u8]| {
        let mut b = [0xFF; 8];
        b[..pin.len()].copy_from_slice(pin);
        b
    };

    // VERIFY with an 8-character PIN: its last byte is a PIN digit, nothing else.
    let mut p = six_c();
    let err = p.verify_pin(&"12345678".into()).unwrap_err();
    assert!(matches!(err, PivError::Card { sw: Sw(0x6C08), .. }), "the 6C08 is reported, not followed: {err}");
    let verify = [&[0x00, 0x20, 0x00, 0x80, 0x08][..], &pin_block(b"12345678")].concat();
    assert_eq!(pins_sent(&mut p), vec![verify], "one VERIFY, the PIN block as typed");
    assert_eq!(p.pin_status().unwrap(), PinStatus::NotVerified { retries_left: 3 }, "no try spent");

    // CHANGE REFERENCE and RESET RETRY: old || new, 16 bytes, no Le either.
    let mut p = six_c();
    assert!(matches!(p.change_pin(&"123456".into(), &"65432178".into()), Err(PivError::Card { sw: Sw(0x6C08), .. })));
    let change = [&[0x00, 0x24, 0x00, 0x80, 0x10][..], &pin_block(b"123456"), &pin_block(b"65432178")].concat();
    assert_eq!(pins_sent(&mut p), vec![change]);
    assert_eq!(p.pin_status().unwrap(), PinStatus::NotVerified { retries_left: 3 });
    assert_eq!(p.verify_pin(&"123456".into()).unwrap(), PinOutcome::Ok, "the PIN was not changed");

    let mut p = six_c();
    assert!(matches!(
        p.unblock_pin(&"12345678".into(), &"11112222".into()),
        Err(PivError::Card { sw: Sw(0x6C08), .. })
    ));
    let unblock = [&[0x00, 0x2C, 0x00, 0x80, 0x10][..], &pin_block(b"12345678"), &pin_block(b"11112222")].concat();
    assert_eq!(pins_sent(&mut p), vec![unblock]);
    assert_eq!(p.metadata(0x81).unwrap().retries_remaining, Some(3), "no PUK try spent");
}

/// Hands every APDU to the key and records it.
/// P1 of every management-key (9B) GENERAL AUTHENTICATE sent so far.
fn mgmt_steps(tap: &Tap<VirtualKey>) -> Vec<u8> {
    tap.sent.iter().filter(|a| a[1] == 0x87 && a[3] == 0x9B).map(|a| a[2]).collect()
}

fn recorded(spec: KeySpec) -> Piv<Tap<VirtualKey>> {
    Piv::new(Tap::recording(VirtualKey::in_memory(&spec, &FixedClock(NOW)).unwrap()))
}

fn aes128_spec(flavor: Flavor) -> KeySpec {
    KeySpec {
        mgmt_alg: Algorithm::Aes128,
        mgmt_key: vec![0x42; 16].into(),
        flavor,
        seed: Some(8),
        ..KeySpec::default()
    }
}

#[test]
fn random_asks_the_card_under_its_real_algorithm() {
    // A plain card cannot say its algorithm: 3DES and AES-192 are refused (6A86), AES-128
    // gives 16 bytes a round trip, and is used from then on.
    let mut p = recorded(aes128_spec(Flavor::Plain));
    assert_eq!(p.random(40).unwrap().len(), 40);
    assert_eq!(mgmt_steps(p.transport()), vec![0x03, 0x0A, 0x08, 0x08, 0x08]);
    assert_eq!(p.random(16).unwrap().len(), 16);
    assert_eq!(mgmt_steps(p.transport()), vec![0x03, 0x0A, 0x08, 0x08, 0x08, 0x08]);

    // A card with metadata tells it at once.
    let mut p = recorded(aes128_spec(Flavor::Yubico { version: [5, 7, 1] }));
    p.random(16).unwrap();
    assert_eq!(mgmt_steps(p.transport()), vec![0x08]);

    // A caller who knows it says so.
    let mut p = recorded(aes128_spec(Flavor::Plain));
    p.set_management_algorithm(Algorithm::Aes128).unwrap();
    p.random(8).unwrap();
    assert_eq!(mgmt_steps(p.transport()), vec![0x08]);
    assert!(p.set_management_algorithm(Algorithm::EccP256).is_err());

    // Two calls do not give the same bytes; nor are they all zero.
    let (a, b) = (p.random(32).unwrap(), p.random(32).unwrap());
    assert_ne!(a, b);
    assert_ne!(a, vec![0; 32]);
}

#[test]
fn random_after_authentication_leaves_it_in_place() {
    let mut p = recorded(KeySpec { seed: Some(9), ..KeySpec::default() });
    p.authenticate(&MgmtKey::default()).unwrap();
    assert!(p.is_mgmt_authenticated());
    let steps = mgmt_steps(p.transport());
    assert_eq!(p.random(64).unwrap().len(), 64);
    assert_eq!(mgmt_steps(p.transport()), steps, "no 9B step while authenticated: the card would drop it");
    p.generate(Slot::Authentication, None, None).expect("GENERATE right after random() is still authorised");

    // A failed authentication is one the card no longer holds: the card is asked again.
    let wrong = MgmtKey::from_hex(&"11".repeat(24), None).unwrap();
    assert!(p.authenticate(&wrong).is_err());
    assert!(!p.is_mgmt_authenticated());
    let before = mgmt_steps(p.transport()).len();
    p.random(8).unwrap();
    assert_eq!(mgmt_steps(p.transport()).len(), before + 1);
}

#[test]
fn management_key_of_a_plain_card_is_found_by_trying_its_length() {
    // AES-192 on a card without metadata: the 24 bytes are taken for 3DES first; the card's
    // 6A86 sends the driver to AES-192.
    let key = vec![0x5A; 24];
    let spec = KeySpec {
        mgmt_alg: Algorithm::Aes192,
        mgmt_key: key.clone().into(),
        flavor: Flavor::Plain,
        seed: Some(10),
        ..KeySpec::default()
    };
    let mut p = recorded(spec);
    let bytes_only = MgmtKey::from_hex(&hex::encode(&key), None).unwrap();
    assert_eq!(bytes_only.alg, Algorithm::Tdes);
    p.authenticate_auto(&bytes_only).unwrap();
    assert_eq!(mgmt_steps(p.transport()), vec![0x03, 0x0A, 0x0A]);
    p.generate(Slot::Signature, None, None).unwrap();
    // Known now: no more guessing, and random() keeps the authentication.
    p.random(20).unwrap();
    p.write_certificate(Slot::Signature, &[0x30, 0x00]).expect("still authenticated");

    // A wrong key is still a wrong key under either algorithm.
    let mut p = recorded(KeySpec {
        mgmt_alg: Algorithm::Aes192,
        mgmt_key: key.into(),
        flavor: Flavor::Plain,
        ..KeySpec::default()
    });
    let wrong = MgmtKey::from_hex(&"11".repeat(24), None).unwrap();
    assert!(matches!(p.authenticate_auto(&wrong), Err(PivError::NotAuthorized { .. })));
}

/// Answers 6A82 to SELECTs of the AIDs it is told to refuse, as some cards do.
fn picky(refuse: &[&[u8]]) -> Piv<Tap<VirtualKey>> {
    let key = VirtualKey::in_memory(&KeySpec::default(), &FixedClock(NOW)).unwrap();
    let refuse: Vec<Vec<u8>> = refuse.iter().map(|a| a.to_vec()).collect();
    Piv::new(Tap::new(key, move |apdu, key| match apdu[1] == 0xA4 && refuse.contains(&selected(apdu)) {
        true => Ok(vec![0x6A, 0x82]),
        false => key.transmit(apdu),
    }))
}

/// The AID of a SELECT.
fn selected(apdu: &[u8]) -> Vec<u8> {
    apdu[5..5 + apdu[4] as usize].to_vec()
}

/// The AIDs selected so far.
fn selects(p: &mut Piv<Tap<VirtualKey>>) -> Vec<Vec<u8>> {
    p.transport().sent_with(0xA4).into_iter().map(selected).collect()
}

#[test]
fn select_uses_the_full_aid_first_and_falls_back_only_when_refused() {
    let full = &proto::piv::PIV_AID[..];
    let mut p = picky(&[]);
    let applet = p.select().unwrap();
    assert_eq!(selects(&mut p), vec![full.to_vec()], "one SELECT, with the full AID");
    assert_eq!(applet.aid.as_deref(), Some(&full[5..]), "the card reports PIV's PIX");

    let mut p = picky(&[full]);
    p.select().unwrap();
    assert_eq!(selects(&mut p), vec![full.to_vec(), full[..9].to_vec()]);

    let mut p = picky(&[full, &full[..9], &full[..5]]);
    let err = p.select().unwrap_err();
    assert!(matches!(err, PivError::NoPiv { sw } if sw == Sw::FILE_NOT_FOUND), "{err}");
    assert_eq!(
        err.to_string(),
        "no PIV application on this card (SELECT answered 6A82 (file or application not found))"
    );
}

#[test]
fn select_answer_must_be_piv() {
    assert_eq!(Applet::parse(&[]).unwrap(), Applet::default(), "older cards answer a bare 9000");
    let apt = [0x61, 0x0D, 0x4F, 0x06, 0, 0, 0x10, 0, 1, 0, 0x50, 0x03, b'a', b'b', b'c'];
    let a = Applet::parse(&apt).unwrap();
    assert_eq!(a.label.as_deref(), Some("abc"));
    let other = [0x61, 0x07, 0x4F, 0x05, 0xA0, 0, 0, 5, 0x27];
    assert!(Applet::parse(&other).unwrap_err().to_string().contains("A000000527 is not PIV"));
    assert!(Applet::parse(&[0x6F, 0x00]).is_err());
}

// ---- what cargo-mutants found untested in piv.rs ----

/// A card that answers every APDU with one byte and 61 01 ("one more byte") until it has had
/// `endless` GET RESPONSEs, then 90 00.
fn chatty(endless: usize) -> Piv<Tap<testsupport::tap::NoCard>> {
    let mut get_responses = 0;
    Piv::new(Tap::card(move |apdu| {
        if apdu[1] == 0xC0 {
            get_responses += 1;
        }
        Ok(if get_responses < endless { vec![0x00, 0x61, 0x01] } else { vec![0x00, 0x90, 0x00] })
    }))
}

#[test]
fn get_response_follows_a_card_1024_times_and_no_more() {
    let mut p = chatty(1024);
    let (data, sw) = p.exchange(0xCB, 0x3F, 0xFF, &[0x5C, 0x01, 0x7E]).unwrap();
    assert_eq!((data.len(), sw), (1025, Sw::OK), "1024 GET RESPONSEs are followed");
    let mut p = chatty(5000);
    assert!(matches!(p.exchange(0xCB, 0x3F, 0xFF, &[0x5C, 0x01, 0x7E]), Err(PivError::Malformed { .. })));
    assert_eq!(p.transport().sent_with(0xC0).len(), 1024, "then the driver gives up");
}

#[test]
fn commands_longer_than_255_bytes_are_chained_and_no_others() {
    let mut p = recorded(KeySpec { seed: Some(31), ..KeySpec::default() });
    p.select().unwrap();
    p.authenticate(&MgmtKey::default()).unwrap();
    let puts = |p: &mut Piv<Tap<VirtualKey>>| -> Vec<u8> {
        let v: Vec<u8> = p.transport().sent.iter().filter(|a| a[1] == 0xDB).map(|a| a[0]).collect();
        p.transport().sent.clear();
        v
    };
    puts(&mut p);
    // 5C 03 tag + 53 81 F7 + 247 bytes: exactly 255 bytes of data, one APDU.
    p.write_object(object::SECURITY_OBJECT, &[0x11; 247]).unwrap();
    assert_eq!(puts(&mut p), vec![0x00]);
    p.write_object(object::SECURITY_OBJECT, &[0x22; 248]).unwrap();
    assert_eq!(puts(&mut p), vec![0x10, 0x00], "256 bytes: one chained piece, then the last");
    p.write_object(object::SECURITY_OBJECT, &[0x33; 600]).unwrap();
    assert_eq!(puts(&mut p), vec![0x10, 0x10, 0x00]);
    assert_eq!(p.read_object(object::SECURITY_OBJECT).unwrap().unwrap(), vec![0x33; 600]);
}

/// A card whose PIN metadata leaves out the retry counts (tag 06).
fn no_counts(key: VirtualKey) -> Tap<VirtualKey> {
    Tap::new(key, |apdu, key| {
        let r = key.transmit(apdu)?;
        if apdu[1] == 0xF7 && apdu[3] == 0x80 && r.ends_with(&[0x90, 0x00]) {
            let body = &r[..r.len() - 2];
            let mut kept: Vec<u8> = proto::tlv::iter(body)
                .filter_map(Result::ok)
                .filter(|t| t.tag != 0x06)
                .flat_map(|t| proto::tlv::to_vec(t.tag, t.value))
                .collect();
            kept.extend([0x90, 0x00]);
            return Ok(kept);
        }
        Ok(r)
    })
}

#[test]
fn pin_retries_falls_back_to_verify_when_metadata_has_no_counts() {
    let key = VirtualKey::in_memory(&KeySpec { seed: Some(32), ..KeySpec::default() }, &FixedClock(NOW)).unwrap();
    let mut p = Piv::new(no_counts(key));
    p.select().unwrap();
    assert_eq!(p.verify_pin(&"000000".into()).unwrap(), PinOutcome::WrongPin { retries_left: 2 });
    assert_eq!(p.pin_retries().unwrap(), (Some(2), None), "from an empty VERIFY, no total");
}

#[test]
fn a_16_byte_key_refused_for_its_algorithm_is_not_retried_as_3des() {
    // A plain card (no metadata) with a 3DES management key, given an AES-128 key: the card's
    // refusal comes back as it is (a 16-byte key has no other algorithm to try).
    let mut p = InProcess.make(KeySpec { flavor: Flavor::Plain, seed: Some(33), ..KeySpec::default() });
    p.select().unwrap();
    let aes = MgmtKey::new(Algorithm::Aes128, &[0x42; 16]).unwrap();
    match p.authenticate_auto(&aes) {
        Err(PivError::Card { sw, .. }) => assert_eq!(sw, Sw::INCORRECT_P1P2),
        other => panic!("expected the card's 6A86, got {other:?}"),
    }
}

#[test]
fn metadata_tells_policies_origin_and_public_key_and_import_is_real() {
    use proto::piv::metadata::Origin;
    use proto::piv::{PinPolicy, TouchPolicy};
    let mut p = InProcess.make(KeySpec { seed: Some(34), ..KeySpec::default() });
    p.select().unwrap();
    p.authenticate(&MgmtKey::default()).unwrap();
    let public = p.generate(Slot::Signature, Some(PinPolicy::Always), Some(TouchPolicy::Never)).unwrap();
    let m = p.metadata(Slot::Signature.key_ref()).unwrap();
    assert_eq!(
        (m.pin_policy, m.touch_policy, m.origin),
        (Some(PinPolicy::Always), Some(TouchPolicy::Never), Some(Origin::Generated)),
        "{m:?}"
    );
    assert_eq!(m.public_key.as_deref(), Some(public.to_sec1_bytes().as_ref()));

    let sk = p256::SecretKey::random(&mut rand_core::OsRng);
    p.import_key(Slot::KeyManagement, &sk, Some(PinPolicy::Once), None).unwrap();
    let m = p.metadata(Slot::KeyManagement.key_ref()).unwrap();
    assert_eq!((m.pin_policy, m.origin), (Some(PinPolicy::Once), Some(Origin::Imported)), "imported: {m:?}");
    assert_eq!(m.public_key.as_deref(), Some(sk.public_key().to_sec1_bytes().as_ref()));
    p.verify_pin(&"123456".into()).unwrap();
    let sig = p.sign_digest(Slot::KeyManagement, &[7u8; 32]).unwrap();
    use p256::ecdsa::signature::hazmat::PrehashVerifier;
    p256::ecdsa::VerifyingKey::from(sk.public_key())
        .verify_prehash(&[7u8; 32], &p256::ecdsa::Signature::from_slice(&sig.raw).unwrap())
        .expect("the imported key signs");
}

/// Replacing a slot's key pair treats its certificate as the caller's policy says: kept,
/// removed (it names the old key), or the replacement refused with the key untouched.
#[test]
fn regenerate_keeps_removes_or_refuses_by_the_callers_policy() {
    use host_driver::piv::OldCertificate;
    let mut p = InProcess.make(KeySpec { seed: Some(35), ..KeySpec::default() });
    p.select().unwrap();
    p.authenticate(&MgmtKey::default()).unwrap();
    let first = p.regenerate(Slot::Authentication, None, None, OldCertificate::RefuseIfPresent).unwrap();
    assert!(first.stale_certificate.is_none(), "an empty slot has no certificate to treat");
    // Any certificate will do (here a CA's own): the slot's key is not the one it names.
    let dir = tempfile::tempdir().unwrap();
    let cert = ca::Ca::create(dir.path(), "CN=Test CA", 30, &FixedClock(NOW)).unwrap().certificate_der();
    p.write_certificate(Slot::Authentication, &cert).unwrap();

    match p.regenerate(Slot::Authentication, None, None, OldCertificate::RefuseIfPresent) {
        Err(PivError::SlotInUse { slot: Slot::Authentication }) => {}
        other => panic!("expected SlotInUse, got {other:?}"),
    }
    let m = p.metadata(Slot::Authentication.key_ref()).unwrap();
    assert_eq!(m.public_key.as_deref(), Some(first.public.to_sec1_bytes().as_ref()), "the key is untouched");

    let kept = p.regenerate(Slot::Authentication, None, None, OldCertificate::Keep).unwrap();
    assert!(kept.stale_certificate.is_none());
    assert_eq!(p.read_certificate(Slot::Authentication).unwrap(), Some(cert.clone()), "kept");

    let removed = p.regenerate(Slot::Authentication, None, None, OldCertificate::RemoveIfStale).unwrap();
    assert!(matches!(removed.stale_certificate, Some(Ok(()))), "{removed:?}");
    assert_eq!(p.read_certificate(Slot::Authentication).unwrap(), None, "removed");
    assert_ne!(removed.public, kept.public);
}
