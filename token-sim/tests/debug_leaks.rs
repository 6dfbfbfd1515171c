//! `{:?}` of every type that holds a PIN, a PUK, a management key or a private scalar, and of
//! every parsed command carrying one, shows none of them in any encoding.

mod common;
#[path = "../../testsupport/leaks.rs"]
mod leaks;

use common::*;
use leaks::assert_hidden;
use proto::piv::Algorithm;
use proto::Sw;
use token_sim::piv::state::{Block, MgmtChallenge};
use token_sim::piv::Command;

const SECRET_PIN: &[u8] = b"739184";
const SECRET_NEW_PIN: &[u8] = b"264958";
const SECRET_PUK: &[u8] = b"58204617";
const SECRET_MGMT: [u8; 24] = [
    0xA7, 0x3C, 0x91, 0x5E, 0x08, 0xD2, 0x6B, 0xF4, 0x19, 0xC8, 0x72, 0x3D, 0xE5, 0x0A, 0x96, 0x4F, 0xB1, 0x2E, 0x83,
    0x57, 0xCA, 0x64, 0x1D, 0xF9,
];
const SECRET_SCALAR: [u8; 32] = [
    0x3B, 0x8E, 0x17, 0xC4, 0x62, 0xA9, 0x05, 0xDF, 0x71, 0x2C, 0xB8, 0x4E, 0x93, 0x16, 0xEA, 0x58, 0x2F, 0xC1, 0x7D,
    0x04, 0xB6, 0x69, 0xE3, 0x38, 0x9A, 0x45, 0xF2, 0x0B, 0x87, 0x6D, 0x13, 0xCE,
];

fn check_all(what: &str, debug: &str) {
    for secret in [SECRET_PIN, SECRET_NEW_PIN, SECRET_PUK, &SECRET_MGMT[..], &SECRET_SCALAR[..]] {
        assert_hidden(what, debug, secret);
    }
}

#[test]
fn the_leak_check_itself_sees_secrets() {
    leaks::self_test();
}

#[test]
fn secrets_never_show_in_debug_output() {
    let spec = token_sim::KeySpec {
        pin: std::str::from_utf8(SECRET_PIN).unwrap().into(),
        puk: std::str::from_utf8(SECRET_PUK).unwrap().into(),
        mgmt_alg: Algorithm::Tdes,
        mgmt_key: SECRET_MGMT.to_vec().into(),
        ..spec(40)
    };
    check_all("KeySpec", &format!("{spec:?}"));
    let mut c = card_with(&spec, token_sim::piv::NoStorage);
    assert_eq!(mgmt_auth(&mut c, Algorithm::Tdes, &SECRET_MGMT), Sw::OK);
    let mut import = tlv_scalar();
    import.extend([0xAA, 0x01, 0x02]);
    assert_eq!(sw(&mut c, &apdu(0xFE, 0x11, 0x9A, &import)), Sw::OK);
    assert_eq!(verify(&mut c, SECRET_PIN), Sw::OK);
    check_all("PersistentState", &format!("{:?}", c.state()));
    check_all("KeySlot", &format!("{:?}", c.state().keys[0]));
    check_all("MgmtKey", &format!("{:?}", c.state().mgmt));
    check_all("PIN Credential", &format!("{:?}", c.state().pin));
    let pending = MgmtChallenge::Witness(Block::from_slice(&SECRET_MGMT[..16]).unwrap());
    check_all("MgmtChallenge", &format!("{pending:?}"));

    // Every command that carries a secret, parsed.
    let mut set_key = vec![Algorithm::Tdes as u8, 0x9B, 24];
    set_key.extend(SECRET_MGMT);
    let commands = [
        apdu(0x20, 0, 0x80, &padded(SECRET_PIN)),
        apdu(0x24, 0, 0x80, &[padded(SECRET_PIN), padded(SECRET_NEW_PIN)].concat()),
        apdu(0x24, 0, 0x81, &[padded(SECRET_PUK), padded(SECRET_PUK)].concat()),
        apdu(0x2C, 0, 0x80, &[padded(SECRET_PUK), padded(SECRET_NEW_PIN)].concat()),
        apdu(0xFF, 0xFF, 0xFF, &set_key),
        apdu(0xFE, 0x11, 0x9A, &tlv_scalar()),
    ];
    for bytes in commands {
        let parsed = Command::parse(&proto::CommandApdu::parse(&bytes).unwrap()).expect("a valid command");
        check_all(&format!("Command from {:02X?}", &bytes[..4]), &format!("{parsed:?}"));
    }
    let defaults = token_sim::piv::Defaults {
        pin: SECRET_PIN,
        puk: SECRET_PUK,
        mgmt_alg: Algorithm::Tdes,
        mgmt_key: &SECRET_MGMT,
        pin_retries: 3,
        puk_retries: 3,
    };
    check_all("Defaults", &format!("{defaults:?}"));
    assert_eq!(format!("{defaults:?}"), "Defaults(<redacted>)", "says what it is, not what it holds");
    // The seed of a deterministic key predicts all it draws: redacted, the rest shown.
    let meta = token_sim::store::SimMeta {
        created: 1_790_000_000,
        scenario: "fresh".into(),
        seed: Some(0x5EED_5EED_5EED),
        boots: 4,
    };
    let dbg = format!("{meta:?}");
    assert!(dbg.contains("1790000000") && dbg.contains("fresh") && dbg.contains("<redacted>"), "{dbg}");
    for seed in [format!("{}", 0x5EED_5EED_5EEDu64), format!("{:x}", 0x5EED_5EED_5EEDu64)] {
        assert!(!dbg.contains(&seed), "seed in {dbg}");
    }
}

fn tlv_scalar() -> Vec<u8> {
    proto::tlv::to_vec(0x06, &SECRET_SCALAR)
}
