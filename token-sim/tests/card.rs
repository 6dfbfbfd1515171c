//! The card, instruction by instruction and status word by status word, over raw APDUs.

mod common;
use common::*;

use p256::ecdsa::signature::hazmat::PrehashVerifier;
use p256::ecdsa::{Signature, VerifyingKey};
use proto::piv::Algorithm;
use proto::tlv;
use proto::Sw;
use token_sim::piv::state::Flavor;

const SELECT_FULL: [u8; 16] = [0, 0xA4, 4, 0, 11, 0xA0, 0, 0, 3, 8, 0, 0, 0x10, 0, 1, 0];

fn public_key_of(generate_reply: &[u8]) -> VerifyingKey {
    assert_eq!(generate_reply[..5], [0x7F, 0x49, 0x43, 0x86, 0x41], "short-form 7F49 response");
    VerifyingKey::from_sec1_bytes(&generate_reply[5..]).unwrap()
}

fn der_signature(reply: &[u8]) -> Signature {
    let body = tlv::parse_exact(reply, 0x7C).unwrap();
    let der = tlv::parse_exact(body, 0x82).unwrap();
    Signature::from_der(der).unwrap()
}

#[test]
fn select_answers_the_property_template() {
    let mut c = card();
    let (data, sw) = tx(&mut c, &SELECT_FULL);
    assert_eq!(sw, Sw::OK);
    let body = tlv::parse_exact(&data, 0x61).unwrap();
    assert_eq!(tlv::find(body, 0x4F).unwrap().unwrap(), &[0, 0, 0x10, 0, 1, 0]);
    let algs = tlv::find(body, 0xAC).unwrap().unwrap();
    assert!(tlv::iter(algs).any(|t| t.unwrap().value == [0x11]), "advertises ECC P-256");
    // libykpiv's 5-byte form.
    assert_eq!(sw_of(&mut c, &[0, 0xA4, 4, 0, 5, 0xA0, 0, 0, 3, 8]), Sw::OK);
}

fn sw_of(c: &mut token_sim::piv::Card<token_sim::piv::NoStorage, token_sim::rng::SimRng>, a: &[u8]) -> Sw {
    sw(c, a)
}

#[test]
fn other_aids_answer_6a82_and_keep_piv_state() {
    let mut c = card();
    assert_eq!(verify(&mut c, PIN), Sw::OK);
    // Yubico OTP and management AIDs that libykpiv probes.
    assert_eq!(sw(&mut c, &[0, 0xA4, 4, 0, 8, 0xA0, 0, 0, 5, 0x27, 0x20, 1, 1]), Sw::FILE_NOT_FOUND);
    assert_eq!(sw(&mut c, &[0, 0xA4, 4, 0, 8, 0xA0, 0, 0, 5, 0x27, 0x47, 0x11, 0x17]), Sw::FILE_NOT_FOUND);
    assert_eq!(sw(&mut c, &[0, 0x20, 0, 0x80]), Sw::OK, "still verified");
    // Re-selecting PIV keeps the security status too.
    assert_eq!(sw(&mut c, &SELECT_FULL), Sw::OK);
    assert_eq!(sw(&mut c, &[0, 0x20, 0, 0x80]), Sw::OK);
}

#[test]
fn piv_is_selected_at_power_on() {
    let mut c = card();
    let (data, sw) = tx(&mut c, &[0, 0xCB, 0x3F, 0xFF, 3, 0x5C, 1, 0x7E, 0]);
    assert_eq!(sw, Sw::OK);
    assert_eq!(data[..4], [0x7E, 0x12, 0x4F, 0x0B]);
    assert_eq!(data[data.len() - 5..], [0x5F, 0x2F, 0x02, 0x40, 0x00]);
}

#[test]
fn fresh_key_has_chuid_ccc_and_key_history_with_unique_guid() {
    let mut a = card_with(&spec(1), token_sim::piv::NoStorage);
    let mut b = card_with(&spec(2), token_sim::piv::NoStorage);
    let (chuid_a, sw) = read_object(&mut a, 0x5FC102);
    assert_eq!(sw, Sw::OK);
    let (chuid_b, _) = read_object(&mut b, 0x5FC102);
    let guid = |o: &[u8]| tlv::find(tlv::parse_exact(o, 0x53).unwrap(), 0x34).unwrap().unwrap().to_vec();
    assert_eq!(guid(&chuid_a).len(), 16);
    assert_ne!(guid(&chuid_a), guid(&chuid_b));
    let (ccc, sw) = read_object(&mut a, 0x5FC107);
    assert_eq!(sw, Sw::OK);
    assert_eq!(tlv::find(tlv::parse_exact(&ccc, 0x53).unwrap(), 0xF0).unwrap().unwrap().len(), 21);
    assert_eq!(read_object(&mut a, 0x5FC10C).1, Sw::OK);
}

#[test]
fn get_data_status_words() {
    let mut c = card();
    assert_eq!(read_object(&mut c, 0x5FC105).1, Sw::FILE_NOT_FOUND, "no certificate yet");
    assert_eq!(sw(&mut c, &[0, 0xCB, 0x3F, 0xFE, 5, 0x5C, 3, 0x5F, 0xC1, 0x02]), Sw::INCORRECT_P1P2);
    assert_eq!(sw(&mut c, &[0, 0xCB, 0x3F, 0xFF, 5, 0x5D, 3, 0x5F, 0xC1, 0x02]), Sw::WRONG_DATA);
    assert_eq!(sw(&mut c, &[0, 0xCB, 0x3F, 0xFF, 4, 0x5C, 3, 0x5F, 0xC1]), Sw::WRONG_DATA);
    // PIN-protected objects: 6982 before VERIFY even though absent, 6A82 after.
    for tag in [0x5FC103, 0x5FC108, 0x5FC109, 0x5FC121] {
        assert_eq!(read_object(&mut c, tag).1, Sw::SECURITY_STATUS_NOT_SATISFIED);
    }
    assert_eq!(verify(&mut c, PIN), Sw::OK);
    assert_eq!(read_object(&mut c, 0x5FC109).1, Sw::FILE_NOT_FOUND);
}

#[test]
fn verify_counts_down_then_blocks() {
    let mut c = card();
    assert_eq!(sw(&mut c, &[0, 0x20, 0, 0x80]), Sw(0x63C3), "4-byte status query");
    assert_eq!(sw(&mut c, &[0, 0x20, 0, 0x80, 0]), Sw(0x63C3), "5-byte status query");
    assert_eq!(verify(&mut c, b"000000"), Sw(0x63C2));
    assert_eq!(verify(&mut c, b"000000"), Sw(0x63C1));
    assert_eq!(verify(&mut c, PIN), Sw::OK, "right PIN restores the counter");
    assert_eq!(sw(&mut c, &[0, 0x20, 0, 0x80]), Sw::OK);
    for expect in [0x63C2, 0x63C1, 0x63C0] {
        assert_eq!(verify(&mut c, b"999999"), Sw(expect));
    }
    assert_eq!(verify(&mut c, PIN), Sw::AUTH_METHOD_BLOCKED, "blocked: right PIN no longer helps");
    assert_eq!(sw(&mut c, &[0, 0x20, 0, 0x80]), Sw::AUTH_METHOD_BLOCKED);
    assert_eq!(c.state().pin.counter.remaining, 0);
}

#[test]
fn malformed_pin_is_refused_without_counting() {
    let mut c = card();
    assert_eq!(sw(&mut c, b"\x00\x20\x00\x80\x0812345\xFF\xFF\xFF"), Sw::WRONG_DATA);
    assert_eq!(sw(&mut c, b"\x00\x20\x00\x80\x06123456"), Sw::WRONG_DATA);
    assert_eq!(sw(&mut c, b"\x00\x20\x00\x80\x08123\xFF5678"), Sw::WRONG_DATA);
    assert_eq!(sw(&mut c, b"\x00\x20\x00\x81\x0812345678"), Sw::REFERENCE_NOT_FOUND);
    assert_eq!(sw(&mut c, b"\x00\x20\x00\x00\x08123456\xFF\xFF"), Sw::REFERENCE_NOT_FOUND);
    assert_eq!(sw(&mut c, &[0, 0x20, 0, 0x80]), Sw(0x63C3), "nothing was counted");
}

#[test]
fn logout_clears_pin_state() {
    let mut c = card();
    assert_eq!(verify(&mut c, PIN), Sw::OK);
    assert_eq!(sw(&mut c, &[0, 0x20, 0xFF, 0x80]), Sw::OK);
    assert_eq!(sw(&mut c, &[0, 0x20, 0, 0x80]), Sw(0x63C3));
}

fn change(
    c: &mut token_sim::piv::Card<token_sim::piv::NoStorage, token_sim::rng::SimRng>,
    p2: u8,
    old: &[u8],
    new: &[u8],
) -> Sw {
    let mut data = padded(old);
    data.extend(padded(new));
    sw(c, &apdu(0x24, 0, p2, &data))
}

#[test]
fn change_pin_and_puk() {
    let mut c = card();
    assert_eq!(change(&mut c, 0x80, b"000000", b"654321"), Sw(0x63C2));
    assert_eq!(change(&mut c, 0x80, PIN, b"654321"), Sw::OK);
    assert_eq!(verify(&mut c, PIN), Sw(0x63C2));
    assert_eq!(verify(&mut c, b"654321"), Sw::OK);
    assert_eq!(change(&mut c, 0x80, b"654321", b"12345"), Sw::WRONG_DATA, "new PIN too short");
    assert_eq!(change(&mut c, 0x81, PUK, b"87654321"), Sw::OK);
    assert_eq!(change(&mut c, 0x81, PUK, b"11111111"), Sw(0x63C2));
    assert_eq!(change(&mut c, 0x82, PUK, b"11111111"), Sw::REFERENCE_NOT_FOUND);
    assert!(!c.state().pin.is_default && !c.state().puk.is_default);
}

fn unblock(
    c: &mut token_sim::piv::Card<token_sim::piv::NoStorage, token_sim::rng::SimRng>,
    puk: &[u8],
    new: &[u8],
) -> Sw {
    let mut data = padded(puk);
    data.extend(padded(new));
    sw(c, &apdu(0x2C, 0, 0x80, &data))
}

#[test]
fn reset_retry_counter_with_puk() {
    let mut c = card();
    for _ in 0..3 {
        verify(&mut c, b"000000");
    }
    assert_eq!(verify(&mut c, PIN), Sw::AUTH_METHOD_BLOCKED);
    assert_eq!(unblock(&mut c, b"00000000", b"222222"), Sw(0x63C2));
    assert_eq!(unblock(&mut c, PUK, b"222222"), Sw::OK);
    assert_eq!(sw(&mut c, &[0, 0x20, 0, 0x80]), Sw(0x63C3), "unblocked, not logged in");
    assert_eq!(verify(&mut c, b"222222"), Sw::OK);
}

#[test]
fn blocked_puk_leaves_pin_alone() {
    let mut c = card();
    for expect in [0x63C2, 0x63C1, 0x63C0] {
        assert_eq!(unblock(&mut c, b"00000000", b"222222"), Sw(expect));
    }
    assert_eq!(unblock(&mut c, PUK, b"222222"), Sw::AUTH_METHOD_BLOCKED);
    assert_eq!(verify(&mut c, PIN), Sw::OK, "PIN untouched");
}

#[test]
fn management_key_mutual_and_external_auth() {
    let mut c = card();
    assert_eq!(generate(&mut c, 0x9A).1, Sw::SECURITY_STATUS_NOT_SATISFIED);
    let mut wrong = MGMT;
    wrong[0] ^= 1;
    wrong[8] ^= 0x10;
    assert_eq!(mgmt_auth(&mut c, Algorithm::Tdes, &wrong), Sw::SECURITY_STATUS_NOT_SATISFIED);
    assert_eq!(generate(&mut c, 0x9A).1, Sw::SECURITY_STATUS_NOT_SATISFIED, "a wrong key grants nothing");
    assert_eq!(mgmt_auth(&mut c, Algorithm::Aes192, &[0; 24]), Sw::INCORRECT_P1P2, "algorithm must match the key");
    assert_eq!(mgmt_auth(&mut c, Algorithm::Tdes, &MGMT), Sw::OK);
    assert_eq!(generate(&mut c, 0x9A).1, Sw::OK);

    // External authentication: 81 00 -> challenge, then 82 E(challenge).
    let mut c = card();
    let (data, s) = tx(&mut c, &apdu(0x87, 0x03, 0x9B, &[0x7C, 0x02, 0x81, 0x00]));
    assert_eq!(s, Sw::OK);
    assert_eq!(data[..4], [0x7C, 0x0A, 0x81, 0x08]);
    let mut resp = data[4..].to_vec();
    proto::mgmt::crypt_block(Algorithm::Tdes, &MGMT, &mut resp, true).unwrap();
    let mut msg = vec![0x7C, 0x0A, 0x82, 0x08];
    msg.extend(&resp);
    assert_eq!(sw(&mut c, &apdu(0x87, 0x03, 0x9B, &msg)), Sw::OK);
    assert_eq!(generate(&mut c, 0x9D).1, Sw::OK);
    // A response with no pending challenge is refused.
    assert_eq!(sw(&mut c, &apdu(0x87, 0x03, 0x9B, &msg)), Sw::CONDITIONS_NOT_SATISFIED);
}

/// Every byte of a management-key answer counts: a wrong external-authentication response,
/// and a witness that is only a prefix, a longer string or one bit off, all grant nothing.
#[test]
fn management_key_answers_are_checked_in_full() {
    let mut c = card();
    let external = |c: &mut token_sim::piv::Card<token_sim::piv::NoStorage, token_sim::rng::SimRng>,
                    tamper: fn(&mut Vec<u8>)| {
        let (data, s) = tx(c, &apdu(0x87, 0x03, 0x9B, &[0x7C, 0x02, 0x81, 0x00]));
        assert_eq!(s, Sw::OK);
        let mut resp = data[4..].to_vec();
        proto::mgmt::crypt_block(Algorithm::Tdes, &MGMT, &mut resp, true).unwrap();
        tamper(&mut resp);
        let mut msg = vec![0x7C, resp.len() as u8 + 2, 0x82, resp.len() as u8];
        msg.extend(&resp);
        sw(c, &apdu(0x87, 0x03, 0x9B, &msg))
    };
    type Tamper = fn(&mut Vec<u8>);
    let tampered: [(&str, Tamper); 4] = [
        ("last bit flipped", |r| *r.last_mut().unwrap() ^= 1),
        ("first byte only", |r| r.truncate(1)),
        ("one byte short", |r| r.truncate(7)),
        ("one byte more", |r| r.push(0)),
    ];
    for (what, tamper) in tampered {
        assert_ne!(external(&mut c, tamper), Sw::OK, "external authentication, response {what}");
        assert_eq!(generate(&mut c, 0x9A).1, Sw::SECURITY_STATUS_NOT_SATISFIED, "external, {what}: no grant");
    }
    assert_eq!(external(&mut c, |_| {}), Sw::OK);
    assert_eq!(generate(&mut c, 0x9A).1, Sw::OK);

    let mutual = |c: &mut token_sim::piv::Card<token_sim::piv::NoStorage, token_sim::rng::SimRng>,
                  tamper: fn(&mut Vec<u8>)| {
        let (data, s) = tx(c, &apdu(0x87, 0x03, 0x9B, &[0x7C, 0x02, 0x80, 0x00]));
        assert_eq!(s, Sw::OK);
        let mut witness = data[4..].to_vec();
        proto::mgmt::crypt_block(Algorithm::Tdes, &MGMT, &mut witness, false).unwrap();
        tamper(&mut witness);
        let mut inner = tlv::to_vec(0x80, &witness);
        inner.extend(tlv::to_vec(0x81, &[0x11; 8]));
        sw(c, &apdu(0x87, 0x03, 0x9B, &tlv::to_vec(0x7C, &inner)))
    };
    let mut c = card();
    for (what, tamper) in tampered {
        assert_ne!(mutual(&mut c, tamper), Sw::OK, "mutual authentication, witness {what}");
        assert_eq!(generate(&mut c, 0x9A).1, Sw::SECURITY_STATUS_NOT_SATISFIED, "mutual, {what}: no grant");
    }
    assert_eq!(mutual(&mut c, |_| {}), Sw::OK);
    assert_eq!(generate(&mut c, 0x9A).1, Sw::OK);
}

#[test]
fn management_key_aes_variants() {
    for (alg, len) in [(Algorithm::Aes128, 16), (Algorithm::Aes192, 24), (Algorithm::Aes256, 32)] {
        let key: Vec<u8> = (0..len as u8).collect();
        let s = token_sim::KeySpec { mgmt_alg: alg, mgmt_key: key.clone().into(), ..spec(3) };
        let mut c = card_with(&s, token_sim::piv::NoStorage);
        assert_eq!(mgmt_auth(&mut c, Algorithm::Tdes, &MGMT), Sw::INCORRECT_P1P2);
        assert_eq!(mgmt_auth(&mut c, alg, &key), Sw::OK, "{alg:?}");
        assert_eq!(generate(&mut c, 0x9A).1, Sw::OK);
    }
}

#[test]
fn opensc_random_request() {
    let mut c = card();
    let (a, s) = tx(&mut c, &[0x00, 0x87, 0x00, 0x9B, 0x04, 0x7C, 0x02, 0x81, 0x00]);
    assert_eq!(s, Sw::OK);
    assert_eq!(a.len(), 12);
    assert_eq!(a[..4], [0x7C, 0x0A, 0x81, 0x08]);
    let (b, _) = tx(&mut c, &[0x00, 0x87, 0x00, 0x9B, 0x04, 0x7C, 0x02, 0x81, 0x00]);
    assert_ne!(a, b, "fresh bytes every time");
}

#[test]
fn sign_with_9a_needs_pin_once_and_verifies() {
    let mut c = card();
    assert_eq!(mgmt_auth(&mut c, Algorithm::Tdes, &MGMT), Sw::OK);
    let (reply, _) = generate(&mut c, 0x9A);
    let vk = public_key_of(&reply);
    let digest = [0x5Au8; 32];
    assert_eq!(sw(&mut c, &sign_apdu(0x9A, &digest)), Sw::SECURITY_STATUS_NOT_SATISFIED);
    assert_eq!(verify(&mut c, PIN), Sw::OK);
    for _ in 0..3 {
        let (reply, s) = tx(&mut c, &sign_apdu(0x9A, &digest));
        assert_eq!(s, Sw::OK);
        vk.verify_prehash(&digest, &der_signature(&reply)).expect("signature verifies");
    }
    // Shorter digests (SHA-1, SHA-224) are read as big-endian integers.
    for len in [20usize, 28] {
        let d: Vec<u8> = (1..=len as u8).collect();
        let (reply, s) = tx(&mut c, &sign_apdu(0x9A, &d));
        assert_eq!(s, Sw::OK);
        let mut padded = vec![0u8; 32 - len];
        padded.extend(&d);
        vk.verify_prehash(&padded, &der_signature(&reply)).expect("short digest signature verifies");
    }
    assert_eq!(sw(&mut c, &sign_apdu(0x9A, &[1u8; 33])), Sw::WRONG_DATA);
    assert_eq!(sw(&mut c, &sign_apdu(0x9D, &digest)), Sw::REFERENCE_NOT_FOUND, "empty slot");
    // A reset logs out.
    c.reset();
    assert_eq!(sw(&mut c, &sign_apdu(0x9A, &digest)), Sw::SECURITY_STATUS_NOT_SATISFIED);
}

#[test]
fn signature_slot_needs_pin_before_every_signature() {
    let mut c = card();
    mgmt_auth(&mut c, Algorithm::Tdes, &MGMT);
    let vk = public_key_of(&generate(&mut c, 0x9C).0);
    let digest = [7u8; 32];
    assert_eq!(verify(&mut c, PIN), Sw::OK);
    let (reply, s) = tx(&mut c, &sign_apdu(0x9C, &digest));
    assert_eq!(s, Sw::OK);
    vk.verify_prehash(&digest, &der_signature(&reply)).unwrap();
    assert_eq!(sw(&mut c, &sign_apdu(0x9C, &digest)), Sw::SECURITY_STATUS_NOT_SATISFIED, "one signature per VERIFY");
    assert_eq!(verify(&mut c, PIN), Sw::OK);
    assert_eq!(sw(&mut c, &[0, 0x20, 0, 0x80]), Sw::OK);
    assert_eq!(sw(&mut c, &sign_apdu(0x9C, &digest)), Sw::SECURITY_STATUS_NOT_SATISFIED, "only right after VERIFY");
}

/// The PIN-always grant of a VERIFY belongs to the very next command: any APDU in between,
/// refused at whatever layer (CLA, length, parsing, GET RESPONSE, a broken chain), spends it.
#[test]
fn pin_always_grant_is_dropped_by_any_next_command() {
    let mut c = card();
    mgmt_auth(&mut c, Algorithm::Tdes, &MGMT);
    let vk = public_key_of(&generate(&mut c, 0x9C).0);
    let digest = [7u8; 32];
    let in_between: [(&str, Vec<u8>, Sw); 7] = [
        ("proprietary CLA", vec![0x80, 0xCA, 0x00, 0x00], Sw::CLA_NOT_SUPPORTED),
        ("short VERIFY", vec![0x00, 0x20, 0x00], Sw::WRONG_LENGTH),
        ("unknown INS", vec![0x00, 0x01, 0x00, 0x00], Sw::INS_NOT_SUPPORTED),
        ("GET RESPONSE with nothing pending", vec![0x00, 0xC0, 0x00, 0x00, 0x00], Sw::CONDITIONS_NOT_SATISFIED),
        ("malformed GENERAL AUTHENTICATE", apdu(0x87, 0x11, 0x9C, &[0x7C, 0x02, 0x99, 0x00]), Sw::WRONG_DATA),
        ("VERIFY status query", vec![0x00, 0x20, 0x00, 0x80], Sw::OK),
        ("secure-messaging CLA", vec![0x0C, 0xCA, 0x00, 0x00], Sw::SECURE_MESSAGING_NOT_SUPPORTED),
    ];
    for (what, between, expect) in in_between {
        assert_eq!(verify(&mut c, PIN), Sw::OK);
        assert_eq!(sw(&mut c, &between), expect, "{what}");
        assert_eq!(sw(&mut c, &sign_apdu(0x9C, &digest)), Sw::SECURITY_STATUS_NOT_SATISFIED, "after {what}");
    }
    // Nothing in between: the grant signs once.
    assert_eq!(verify(&mut c, PIN), Sw::OK);
    let (reply, s) = tx(&mut c, &sign_apdu(0x9C, &digest));
    assert_eq!(s, Sw::OK);
    vk.verify_prehash(&digest, &der_signature(&reply)).unwrap();
    // A chained signature is one command: the grant taken by its first part signs ...
    let whole = sign_apdu(0x9C, &digest);
    let data = &whole[5..whole.len() - 1];
    let (head, tail) = data.split_at(10);
    let first = proto::CommandApdu::new(0x10, 0x87, 0x11, 0x9C, head, None).to_vec();
    let last = proto::CommandApdu::new(0x00, 0x87, 0x11, 0x9C, tail, Some(256)).to_vec();
    assert_eq!(verify(&mut c, PIN), Sw::OK);
    assert_eq!(sw(&mut c, &first), Sw::OK);
    let (reply, s) = tx(&mut c, &last);
    assert_eq!(s, Sw::OK, "chained 9C signature right after VERIFY");
    vk.verify_prehash(&digest, &der_signature(&reply)).unwrap();
    // A refused APDU of any kind between the pieces abandons the chain and its grant.
    let refused: [&[u8]; 4] =
        [&[0x80, 0xCA, 0x00, 0x00], &[0x00, 0x20, 0x00], &[0x00, 0xC0, 0x00, 0x00, 0x00], &[0x00, 0x01, 0x00, 0x00]];
    for between in refused {
        assert_eq!(verify(&mut c, PIN), Sw::OK);
        assert_eq!(sw(&mut c, &first), Sw::OK);
        assert!(!sw(&mut c, between).is_ok(), "{between:02X?} is refused");
        assert_ne!(sw(&mut c, &last), Sw::OK, "a chain broken by {between:02X?} signs nothing");
    }
    // ... and a chain begun by another command after VERIFY carries none.
    assert_eq!(verify(&mut c, PIN), Sw::OK);
    assert_eq!(sw(&mut c, &[0x00, 0x01, 0x00, 0x00]), Sw::INS_NOT_SUPPORTED);
    assert_eq!(sw(&mut c, &first), Sw::OK);
    assert_eq!(sw(&mut c, &last), Sw::SECURITY_STATUS_NOT_SATISFIED);
}

#[test]
fn card_authentication_slot_needs_no_pin() {
    let mut c = card();
    mgmt_auth(&mut c, Algorithm::Tdes, &MGMT);
    let vk = public_key_of(&generate(&mut c, 0x9E).0);
    c.reset();
    let (reply, s) = tx(&mut c, &sign_apdu(0x9E, &[3u8; 32]));
    assert_eq!(s, Sw::OK);
    vk.verify_prehash(&[3u8; 32], &der_signature(&reply)).unwrap();
}

#[test]
fn pin_policy_from_generate_is_honoured() {
    let mut c = card();
    mgmt_auth(&mut c, Algorithm::Tdes, &MGMT);
    // 9A with PIN policy "never".
    let (_, s) = tx(&mut c, &apdu(0x47, 0, 0x9A, &[0xAC, 0x06, 0x80, 0x01, 0x11, 0xAA, 0x01, 0x01]));
    assert_eq!(s, Sw::OK);
    assert_eq!(sw(&mut c, &sign_apdu(0x9A, &[1u8; 32])), Sw::OK);
}

#[test]
fn ecdh_matches_the_host_computation() {
    let mut c = card();
    mgmt_auth(&mut c, Algorithm::Tdes, &MGMT);
    let card_pub = p256::PublicKey::from_sec1_bytes(&generate(&mut c, 0x9D).0[5..]).unwrap();
    let host = p256::SecretKey::random(&mut rand_core::OsRng);
    let host_pub = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&host.public_key(), false);
    let mut data = vec![0x7C, 0x45, 0x82, 0x00, 0x85, 0x41];
    data.extend_from_slice(host_pub.as_bytes());
    assert_eq!(sw(&mut c, &apdu(0x87, 0x11, 0x9D, &data)), Sw::SECURITY_STATUS_NOT_SATISFIED);
    verify(&mut c, PIN);
    let (reply, s) = tx(&mut c, &apdu(0x87, 0x11, 0x9D, &data));
    assert_eq!(s, Sw::OK);
    assert_eq!(reply[..4], [0x7C, 0x22, 0x82, 0x20]);
    let expect = p256::ecdh::diffie_hellman(host.to_nonzero_scalar(), card_pub.as_affine());
    assert_eq!(&reply[4..], expect.raw_secret_bytes().as_slice());
    // A point not on the curve.
    data[10] ^= 0xFF;
    assert_eq!(sw(&mut c, &apdu(0x87, 0x11, 0x9D, &data)), Sw::WRONG_DATA);
}

/// The limits are exact: an object of MAX_OBJECT bytes (its 53 wrapper included) is stored
/// and read back whole, one byte more is refused and changes nothing.
#[test]
fn largest_object_fits_and_one_byte_more_does_not() {
    use token_sim::piv::state::MAX_OBJECT;
    let mut c = card();
    mgmt_auth(&mut c, Algorithm::Tdes, &MGMT);
    let value_len = MAX_OBJECT - 4; // 53 82 LL LL
    let value: Vec<u8> = (0..value_len as u32).map(|i| (i * 13) as u8).collect();
    let data = put_data_body(0x5FC10A, &value);
    assert_eq!(chained(&mut c, 0xDB, 0x3F, 0xFF, &data).1, Sw::OK);
    let (whole, s) = read_object(&mut c, 0x5FC10A);
    assert_eq!(s, Sw::OK);
    assert_eq!(whole.len(), MAX_OBJECT);
    assert_eq!(whole, tlv::to_vec(0x53, &value));
    // With an extended Le the whole object comes in one answer.
    let (one, s) = tx(&mut c, &apdu_le(0xCB, 0x3F, 0xFF, &[0x5C, 3, 0x5F, 0xC1, 0x0A], 65536));
    assert_eq!((one.len(), s), (MAX_OBJECT, Sw::OK));
    assert_eq!(one, whole);
    let too_big: Vec<u8> = vec![0x42; value_len + 1];
    let sw = chained(&mut c, 0xDB, 0x3F, 0xFF, &put_data_body(0x5FC10A, &too_big)).1;
    assert_ne!(sw, Sw::OK, "one byte over the object limit");
    assert_eq!(read_object(&mut c, 0x5FC10A).0, whole, "the stored object is unchanged");
}

#[test]
fn large_certificate_round_trips_through_chaining_and_get_response() {
    let mut c = card();
    let cert: Vec<u8> = (0..3200u32).map(|i| (i * 7) as u8).collect();
    let object = {
        let mut body = tlv::to_vec(0x70, &cert);
        body.extend([0x71, 0x01, 0x00, 0xFE, 0x00]);
        body
    };
    let data = put_data_body(0x5FC105, &object);
    assert_eq!(chained(&mut c, 0xDB, 0x3F, 0xFF, &data).1, Sw::SECURITY_STATUS_NOT_SATISFIED);
    mgmt_auth(&mut c, Algorithm::Tdes, &MGMT);
    assert_eq!(chained(&mut c, 0xDB, 0x3F, 0xFF, &data).1, Sw::OK);

    // First chunk: 256 bytes and 61xx.
    let (first, s) = tx(&mut c, &get_data_apdu(0x5FC105));
    assert_eq!(first.len(), 256);
    assert_eq!(s.sw1(), 0x61);
    let (whole, s) = read_object(&mut c, 0x5FC105);
    assert_eq!(s, Sw::OK);
    assert_eq!(whole, tlv::to_vec(0x53, &object));

    // OpenSC asks with Le=08 first to learn the length.
    let (head, s) = tx(&mut c, &apdu_le(0xCB, 0x3F, 0xFF, &[0x5C, 3, 0x5F, 0xC1, 0x05], 8));
    assert_eq!(head.len(), 8);
    assert_eq!(s, Sw(0x6100));
    // libykpiv sends no Le and still gets data.
    let (nole, s) = tx(&mut c, &apdu(0xCB, 0x3F, 0xFF, &[0x5C, 3, 0x5F, 0xC1, 0x05]));
    assert_eq!((nole.len(), s.sw1()), (256, 0x61));
    // Extended Le gets it in one go.
    let ext = [0x00, 0xCB, 0x3F, 0xFF, 0x00, 0x00, 0x05, 0x5C, 0x03, 0x5F, 0xC1, 0x05, 0x00, 0x00];
    let (all, s) = tx(&mut c, &ext);
    assert_eq!((all.len(), s), (whole.len(), Sw::OK));

    // `53 00` deletes.
    assert_eq!(sw(&mut c, &apdu(0xDB, 0x3F, 0xFF, &[0x5C, 3, 0x5F, 0xC1, 0x05, 0x53, 0x00])), Sw::OK);
    assert_eq!(read_object(&mut c, 0x5FC105).1, Sw::FILE_NOT_FOUND);
}

#[test]
fn extended_length_put_data() {
    let mut c = card();
    mgmt_auth(&mut c, Algorithm::Tdes, &MGMT);
    let data = put_data_body(0x5FC109, &[0x41; 600]);
    let cmd = proto::CommandApdu { extended: true, ..proto::CommandApdu::new(0, 0xDB, 0x3F, 0xFF, &data, None) };
    assert_eq!(sw(&mut c, &cmd.to_vec()), Sw::OK);
    verify(&mut c, PIN);
    assert_eq!(read_object(&mut c, 0x5FC109).0.len(), 604);
}

#[test]
fn interrupted_chain_is_discarded_and_get_response_without_data_fails() {
    let mut c = card();
    mgmt_auth(&mut c, Algorithm::Tdes, &MGMT);
    let data = put_data_body(0x5FC105, &[0x70, 0x82, 0x01, 0x2C].iter().copied().chain([1u8; 300]).collect::<Vec<_>>());
    let mut first = apdu(0xDB, 0x3F, 0xFF, &data[..255]);
    first[0] = 0x10;
    assert_eq!(sw(&mut c, &first), Sw::OK);
    assert_eq!(sw(&mut c, &[0, 0x20, 0, 0x80]), Sw(0x63C3), "another command in between");
    // The tail alone is not a valid PUT DATA.
    assert_eq!(sw(&mut c, &apdu(0xDB, 0x3F, 0xFF, &data[255..])), Sw::WRONG_DATA);
    assert_eq!(sw(&mut c, &[0, 0xC0, 0, 0, 0]), Sw::CONDITIONS_NOT_SATISFIED);
    // Too much chained data.
    let big = vec![0u8; 255];
    let mut chunk = apdu(0xDB, 0x3F, 0xFF, &big);
    chunk[0] = 0x10;
    let answers: Vec<Sw> = (0..20).map(|_| sw(&mut c, &chunk)).collect();
    assert_eq!(answers.iter().position(|s| *s == Sw::WRONG_LENGTH), Some(16), "overflow after 4 KB");
}

#[test]
fn transport_level_errors() {
    let mut c = card();
    assert_eq!(sw(&mut c, &[0, 0xCA]), Sw::WRONG_LENGTH);
    assert_eq!(sw(&mut c, &[0, 0x20, 0, 0x80, 5, 1]), Sw::WRONG_LENGTH);
    assert_eq!(sw(&mut c, &[0x80, 0x20, 0, 0x80]), Sw::CLA_NOT_SUPPORTED);
    assert_eq!(sw(&mut c, &[0x0C, 0x20, 0, 0x80]), Sw::SECURE_MESSAGING_NOT_SUPPORTED);
    assert_eq!(sw(&mut c, &[0, 0x12, 0, 0]), Sw::INS_NOT_SUPPORTED);
    assert_eq!(sw(&mut c, &[0, 0xC0, 1, 0, 0]), Sw::INCORRECT_P1P2);
}

#[test]
fn yubico_version_serial_and_plain_fallback() {
    let mut a = card_with(&spec(10), token_sim::piv::NoStorage);
    let (v, s) = tx(&mut a, &[0, 0xFD, 0, 0, 0]);
    assert_eq!((v, s), (vec![5, 4, 3], Sw::OK));
    let (s1, _) = tx(&mut a, &[0, 0xF8, 0, 0, 0]);
    let mut b = card_with(&spec(11), token_sim::piv::NoStorage);
    let (s2, _) = tx(&mut b, &[0, 0xF8, 0, 0, 0]);
    assert_eq!(s1.len(), 4);
    assert_ne!(s1, s2, "serials are unique per key");
    assert_eq!(u32::from_be_bytes(s1.try_into().unwrap()), a.state().serial);

    let custom = token_sim::KeySpec { flavor: Flavor::Yubico { version: [5, 7, 1] }, ..spec(12) };
    assert_eq!(tx(&mut card_with(&custom, token_sim::piv::NoStorage), &[0, 0xFD, 0, 0, 0]).0, vec![5, 7, 1]);

    let plain = token_sim::KeySpec { flavor: Flavor::Plain, ..spec(13) };
    let mut p = card_with(&plain, token_sim::piv::NoStorage);
    for ins in [0xFDu8, 0xF8, 0xF7, 0xFB] {
        assert_eq!(sw(&mut p, &[0, ins, 0, 0x80, 0]), Sw::INS_NOT_SUPPORTED, "INS {ins:02X}");
    }
    assert_eq!(verify(&mut p, PIN), Sw::OK, "PIV itself works");
}

#[test]
fn metadata_for_pin_puk_mgmt_and_slots() {
    let mut c = card();
    let (pin, s) = tx(&mut c, &[0, 0xF7, 0, 0x80, 0]);
    assert_eq!(s, Sw::OK);
    assert_eq!(tlv::find(&pin, 0x01).unwrap(), Some(&[0xFF][..]));
    assert_eq!(tlv::find(&pin, 0x05).unwrap(), Some(&[1][..]), "default PIN");
    assert_eq!(tlv::find(&pin, 0x06).unwrap(), Some(&[3, 3][..]));
    verify(&mut c, b"000000");
    let (pin, _) = tx(&mut c, &[0, 0xF7, 0, 0x80, 0]);
    assert_eq!(tlv::find(&pin, 0x06).unwrap(), Some(&[3, 2][..]));
    let (puk, _) = tx(&mut c, &[0, 0xF7, 0, 0x81, 0]);
    assert_eq!(tlv::find(&puk, 0x06).unwrap(), Some(&[3, 3][..]));
    let (m, _) = tx(&mut c, &[0, 0xF7, 0, 0x9B, 0]);
    assert_eq!(tlv::find(&m, 0x01).unwrap(), Some(&[0x03][..]));
    assert_eq!(tlv::find(&m, 0x05).unwrap(), Some(&[1][..]));
    assert_eq!(sw(&mut c, &[0, 0xF7, 0, 0x9A, 0]), Sw::REFERENCE_NOT_FOUND, "empty slot");
    mgmt_auth(&mut c, Algorithm::Tdes, &MGMT);
    let (gen, _) = generate(&mut c, 0x9A);
    let (k, s) = tx(&mut c, &[0, 0xF7, 0, 0x9A, 0]);
    assert_eq!(s, Sw::OK);
    assert_eq!(tlv::find(&k, 0x01).unwrap(), Some(&[0x11][..]));
    assert_eq!(tlv::find(&k, 0x02).unwrap(), Some(&[2, 1][..]), "PIN once, touch never");
    assert_eq!(tlv::find(&k, 0x03).unwrap(), Some(&[1][..]), "generated");
    let point = tlv::find(&k, 0x04).unwrap().unwrap();
    assert_eq!(tlv::parse_exact(point, 0x86).unwrap(), &gen[5..]);
}

#[test]
fn set_management_key() {
    let mut c = card();
    let new: Vec<u8> = (100..124).collect();
    let mut cmd = vec![0x0A, 0x9B, 24];
    cmd.extend(&new);
    assert_eq!(sw(&mut c, &apdu(0xFF, 0xFF, 0xFF, &cmd)), Sw::SECURITY_STATUS_NOT_SATISFIED);
    mgmt_auth(&mut c, Algorithm::Tdes, &MGMT);
    assert_eq!(sw(&mut c, &apdu(0xFF, 0xFF, 0xFF, &[0x0A, 0x9B, 3, 1, 2, 3])), Sw::WRONG_DATA, "wrong length");
    assert_eq!(sw(&mut c, &apdu(0xFF, 0xFF, 0xFF, &cmd)), Sw::OK);
    c.reset();
    assert_eq!(mgmt_auth(&mut c, Algorithm::Tdes, &MGMT), Sw::INCORRECT_P1P2, "now AES-192");
    assert_eq!(mgmt_auth(&mut c, Algorithm::Aes192, &MGMT), Sw::SECURITY_STATUS_NOT_SATISFIED, "old bytes");
    assert_eq!(mgmt_auth(&mut c, Algorithm::Aes192, &new), Sw::OK);
    let (m, _) = tx(&mut c, &[0, 0xF7, 0, 0x9B, 0]);
    assert_eq!(tlv::find(&m, 0x05).unwrap(), Some(&[0][..]), "no longer default");
}

#[test]
fn import_key_signs_and_cannot_be_attested() {
    let mut c = card();
    let sk = p256::SecretKey::random(&mut rand_core::OsRng);
    let mut data = vec![0x06, 0x20];
    data.extend_from_slice(&sk.to_bytes());
    assert_eq!(sw(&mut c, &apdu(0xFE, 0x11, 0x9A, &data)), Sw::SECURITY_STATUS_NOT_SATISFIED);
    mgmt_auth(&mut c, Algorithm::Tdes, &MGMT);
    assert_eq!(sw(&mut c, &apdu(0xFE, 0x11, 0x9A, &data[..20])), Sw::WRONG_DATA);
    assert_eq!(sw(&mut c, &apdu(0xFE, 0x11, 0x9A, &data)), Sw::OK);
    verify(&mut c, PIN);
    let (reply, _) = tx(&mut c, &sign_apdu(0x9A, &[9u8; 32]));
    VerifyingKey::from(sk.public_key()).verify_prehash(&[9u8; 32], &der_signature(&reply)).unwrap();
    let (m, _) = tx(&mut c, &[0, 0xF7, 0, 0x9A, 0]);
    assert_eq!(tlv::find(&m, 0x03).unwrap(), Some(&[2][..]), "imported");
    assert_eq!(sw(&mut c, &[0, 0xF9, 0x9A, 0, 0]), Sw::WRONG_DATA);
    assert_eq!(sw(&mut c, &[0, 0xF9, 0x9C, 0, 0]), Sw::REFERENCE_NOT_FOUND);
}

#[test]
fn attestation_certificate_is_signed_by_the_f9_key() {
    use der::Decode;
    use p256::ecdsa::signature::Verifier;
    use p256::pkcs8::DecodePublicKey;
    let mut c = card();
    mgmt_auth(&mut c, Algorithm::Tdes, &MGMT);
    let (gen, _) = generate(&mut c, 0x9A);
    let (cert_der, s) = {
        let (mut d, mut s) = tx(&mut c, &[0, 0xF9, 0x9A, 0, 0]);
        while let Some(n) = s.bytes_remaining() {
            let (m, s2) = tx(&mut c, &[0, 0xC0, 0, 0, n as u8]);
            d.extend(m);
            s = s2;
        }
        (d, s)
    };
    assert_eq!(s, Sw::OK);
    let cert = x509_cert::Certificate::from_der(&cert_der).expect("attestation is a DER certificate");
    let (f9_obj, _) = read_object(&mut c, 0x5FFF01);
    let f9_der = proto::piv::cert_object::decode(&f9_obj).unwrap().certificate;
    let f9 = x509_cert::Certificate::from_der(f9_der).unwrap();
    assert_eq!(cert.tbs_certificate.issuer, f9.tbs_certificate.subject);
    let f9_key =
        VerifyingKey::from_public_key_der(&der::Encode::to_der(&f9.tbs_certificate.subject_public_key_info).unwrap())
            .unwrap();
    let tbs = der::Encode::to_der(&cert.tbs_certificate).unwrap();
    let sig = Signature::from_der(cert.signature.raw_bytes()).unwrap();
    f9_key.verify(&tbs, &sig).expect("attestation signature verifies under the F9 key");
    assert_eq!(cert.tbs_certificate.subject_public_key_info.subject_public_key.raw_bytes(), &gen[5..]);
    assert!(cert.tbs_certificate.subject.to_string().contains("Attestation 9a"));
    let exts = cert.tbs_certificate.extensions.unwrap();
    let fw = exts.iter().find(|e| e.extn_id.to_string() == "1.3.6.1.4.1.41482.3.3").unwrap();
    assert_eq!(fw.extn_value.as_bytes(), &[5, 4, 3]);
}

#[test]
fn set_pin_retries_needs_mgmt_key_and_pin() {
    let mut c = card();
    assert_eq!(sw(&mut c, &[0, 0xFA, 5, 6]), Sw::SECURITY_STATUS_NOT_SATISFIED);
    mgmt_auth(&mut c, Algorithm::Tdes, &MGMT);
    assert_eq!(sw(&mut c, &[0, 0xFA, 5, 6]), Sw::SECURITY_STATUS_NOT_SATISFIED, "PIN too");
    change(&mut c, 0x80, PIN, b"999999");
    verify(&mut c, b"999999");
    assert_eq!(sw(&mut c, &[0, 0xFA, 0, 6]), Sw::INCORRECT_P1P2);
    assert_eq!(sw(&mut c, &[0, 0xFA, 5, 6]), Sw::OK);
    assert_eq!(sw(&mut c, &[0, 0x20, 0, 0x80]), Sw(0x63C5));
    assert_eq!(verify(&mut c, PIN), Sw::OK, "PIN back to default");
    let (puk, _) = tx(&mut c, &[0, 0xF7, 0, 0x81, 0]);
    assert_eq!(tlv::find(&puk, 0x06).unwrap(), Some(&[6, 6][..]));
}

#[test]
fn reset_only_when_pin_and_puk_are_blocked() {
    let mut c = card();
    mgmt_auth(&mut c, Algorithm::Tdes, &MGMT);
    generate(&mut c, 0x9A);
    let serial = c.state().serial;
    let f9 = read_object(&mut c, 0x5FFF01).0;
    assert_eq!(sw(&mut c, &[0, 0xFB, 0, 0]), Sw::CONDITIONS_NOT_SATISFIED);
    // The PUK blocked alone is not enough either (the PIN still works).
    let mut only_puk = card();
    for _ in 0..3 {
        unblock(&mut only_puk, b"00000000", b"111111");
    }
    assert_eq!(sw(&mut only_puk, &[0, 0xFB, 0, 0]), Sw::CONDITIONS_NOT_SATISFIED, "PIN still alive");
    assert_eq!(verify(&mut only_puk, PIN), Sw::OK, "and nothing was wiped");
    for _ in 0..3 {
        verify(&mut c, b"000000");
    }
    assert_eq!(sw(&mut c, &[0, 0xFB, 0, 0]), Sw::CONDITIONS_NOT_SATISFIED, "PUK still alive");
    for _ in 0..3 {
        unblock(&mut c, b"00000000", b"111111");
    }
    assert_eq!(sw(&mut c, &[0, 0xFB, 0, 0]), Sw::OK);
    assert_eq!(verify(&mut c, PIN), Sw::OK, "default PIN again");
    assert_eq!(sw(&mut c, &[0, 0xF7, 0, 0x9A, 0]), Sw::REFERENCE_NOT_FOUND, "keys wiped");
    assert_eq!(mgmt_auth(&mut c, Algorithm::Tdes, &MGMT), Sw::OK, "default management key");
    assert_eq!(c.state().serial, serial);
    assert_eq!(read_object(&mut c, 0x5FFF01).0, f9, "attestation kept");
    assert_eq!(generate(&mut c, 0x9A).1, Sw::OK);
    assert_eq!(sw(&mut c, &[0, 0xF9, 0x9A, 0, 0]).sw1(), 0x61, "and still attests");
}

#[test]
fn power_off_clears_security_status() {
    let mut c = card();
    verify(&mut c, PIN);
    mgmt_auth(&mut c, Algorithm::Tdes, &MGMT);
    c.power_off();
    assert_eq!(sw(&mut c, &[0, 0x20, 0, 0x80]), Sw::CONDITIONS_NOT_SATISFIED, "no power, no answer");
    c.reset();
    assert_eq!(sw(&mut c, &[0, 0x20, 0, 0x80]), Sw(0x63C3));
    assert_eq!(generate(&mut c, 0x9A).1, Sw::SECURITY_STATUS_NOT_SATISFIED);
}

#[test]
fn debug_output_never_shows_secrets() {
    let mut c = card();
    mgmt_auth(&mut c, Algorithm::Tdes, &MGMT);
    generate(&mut c, 0x9A);
    let dbg = format!("{:?}", c.state());
    assert!(dbg.contains("redacted"));
    assert!(!dbg.contains("scalar"));
    let key = c.state().keys[0].as_ref().unwrap();
    let scalar_hex: String = format!("{:?}", key);
    assert!(!scalar_hex.contains("private: ["));
}

#[test]
fn printed_info_and_key_history_round_trip() {
    let mut c = card();
    mgmt_auth(&mut c, Algorithm::Tdes, &MGMT);
    let printed = [0x01, 0x05, b'A', b'l', b'i', b'c', b'e', 0xFE, 0x00];
    assert_eq!(sw(&mut c, &apdu(0xDB, 0x3F, 0xFF, &put_data_body(0x5FC109, &printed))), Sw::OK);
    assert_eq!(
        read_object(&mut c, 0x5FC109).1,
        Sw::SECURITY_STATUS_NOT_SATISFIED,
        "management key auth is not PIN auth"
    );
    let history = [0xC1, 0x01, 0x01, 0xC2, 0x01, 0x00, 0xFE, 0x00];
    assert_eq!(sw(&mut c, &apdu(0xDB, 0x3F, 0xFF, &put_data_body(0x5FC10C, &history))), Sw::OK);
    assert_eq!(read_object(&mut c, 0x5FC10C).0, tlv::to_vec(0x53, &history));
}

#[test]
fn printed_info_needs_the_pin_to_read() {
    let mut c = card();
    mgmt_auth(&mut c, Algorithm::Tdes, &MGMT);
    assert_eq!(sw(&mut c, &apdu(0xDB, 0x3F, 0xFF, &put_data_body(0x5FC109, &[0x01, 0x01, b'A']))), Sw::OK);
    c.reset();
    assert_eq!(read_object(&mut c, 0x5FC109).1, Sw::SECURITY_STATUS_NOT_SATISFIED);
    verify(&mut c, PIN);
    assert_eq!(read_object(&mut c, 0x5FC109).0, vec![0x53, 0x03, 0x01, 0x01, b'A']);
}

#[test]
fn discovery_is_read_only_and_logout_takes_no_data() {
    let mut c = card();
    mgmt_auth(&mut c, Algorithm::Tdes, &MGMT);
    assert_eq!(sw(&mut c, &apdu(0xDB, 0x3F, 0xFF, &[0x5C, 0x01, 0x7E, 0x53, 0x00])), Sw::WRONG_DATA);
    assert_eq!(sw(&mut c, &apdu(0x20, 0xFF, 0x80, &padded(PIN))), Sw::WRONG_LENGTH);
}

#[test]
fn retired_and_card_auth_slots_hold_keys() {
    let mut c = card();
    mgmt_auth(&mut c, Algorithm::Tdes, &MGMT);
    for slot in [0x82u8, 0x95, 0x9E] {
        let (reply, s) = generate(&mut c, slot);
        assert_eq!(s, Sw::OK, "slot {slot:02X}");
        public_key_of(&reply);
    }
    assert_eq!(generate(&mut c, 0x96).1, Sw::INCORRECT_P1P2);
    assert_eq!(generate(&mut c, 0xF9).1, Sw::INCORRECT_P1P2, "the attestation key cannot be replaced");
}

#[test]
fn unknown_management_key_step_is_refused_and_resets_auth() {
    let mut c = card();
    assert_eq!(mgmt_auth(&mut c, Algorithm::Tdes, &MGMT), Sw::OK);
    // A witness answer with no witness outstanding.
    let mut body = vec![0x80, 8];
    body.extend([0u8; 8]);
    body.extend([0x81, 8]);
    body.extend([0u8; 8]);
    let mut msg = vec![0x7C, body.len() as u8];
    msg.extend(body);
    assert_eq!(sw(&mut c, &apdu(0x87, 0x03, 0x9B, &msg)), Sw::CONDITIONS_NOT_SATISFIED);
    assert_eq!(generate(&mut c, 0x9A).1, Sw::SECURITY_STATUS_NOT_SATISFIED, "a failed step drops the authentication");
}

#[test]
fn select_answer_can_be_read_in_pieces() {
    let mut c = card();
    let mut short = SELECT_FULL.to_vec();
    short.push(0x05);
    let (head, s) = tx(&mut c, &short);
    assert_eq!(head.len(), 5);
    let rest_len = s.bytes_remaining().unwrap();
    let (rest, s) = tx(&mut c, &[0, 0xC0, 0, 0, rest_len as u8]);
    assert_eq!(s, Sw::OK);
    assert_eq!([head, rest].concat()[0], 0x61);
}
