//! Golden state files: a key written by an older ukey must still open, and answer a fixed
//! command script byte for byte as it did when the file was written.
//!
//! `golden/v1/card.ukey` is a state file of format 1 (postcard, fields by position), written
//! by the format-1 build (commit 284a330, test `make_v1_golden`: a deterministic key, seed
//! 20261202, `provisioned` by a test CA, one wrong PIN); `golden/v1/transcript.txt` is that
//! build's answer to [`script`]. Nothing may regenerate them: every later format reads them.

mod common;

use std::fmt::Write as _;
use std::path::Path;

use common::*;
use token_sim::VirtualKey;

/// Commands whose answers depend only on the stored state (no challenge, no fresh salt).
fn script() -> Vec<Vec<u8>> {
    let pin_block = padded(PIN);
    let wrong_block = padded(b"000000");
    let mut change = padded(PIN);
    change.extend(padded(b"654321"));
    let digest = [0x5Au8; 32];
    let mut sign = vec![0x7C, 0x24, 0x82, 0x00, 0x81, 0x20];
    sign.extend(digest);
    // The P-256 generator as the peer point: ECDH answers the slot key's public x-coordinate.
    let g = hex_decode(
        "046B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C2964FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5",
    );
    let mut ecdh = vec![0x7C, 0x45, 0x82, 0x00, 0x85, 0x41];
    ecdh.extend(g);
    vec![
        apdu_le(0xA4, 0x04, 0x00, &proto::piv::PIV_AID, 256),
        apdu_le(0xCB, 0x3F, 0xFF, &[0x5C, 0x03, 0x5F, 0xC1, 0x02], 256), // CHUID
        apdu_le(0xCB, 0x3F, 0xFF, &[0x5C, 0x03, 0x5F, 0xC1, 0x07], 256), // CCC
        apdu_le(0xCB, 0x3F, 0xFF, &[0x5C, 0x01, 0x7E], 256),             // Discovery
        apdu_le(0xCB, 0x3F, 0xFF, &[0x5C, 0x03, 0x5F, 0xC1, 0x0C], 256), // key history
        apdu_le(0xCB, 0x3F, 0xFF, &[0x5C, 0x03, 0x5F, 0xC1, 0x05], 0),   // 9A certificate (extended)
        apdu_le(0xCB, 0x3F, 0xFF, &[0x5C, 0x03, 0x5F, 0xFF, 0x01], 0),   // F9 certificate
        apdu_le(0xCB, 0x3F, 0xFF, &[0x5C, 0x03, 0x5F, 0xC1, 0x0A], 256), // 9C: absent
        apdu_le(0xFD, 0, 0, &[], 256),
        apdu_le(0xF8, 0, 0, &[], 256),
        apdu_le(0xF7, 0, 0x80, &[], 256),
        apdu_le(0xF7, 0, 0x81, &[], 256),
        apdu_le(0xF7, 0, 0x9B, &[], 256),
        apdu_le(0xF7, 0, 0x9A, &[], 256),
        apdu_le(0xF7, 0, 0xF9, &[], 256),
        apdu(0x20, 0, 0x80, &[]),
        apdu_le(0x87, 0x11, 0x9A, &sign, 256), // before VERIFY: 6982
        apdu(0x20, 0, 0x80, &wrong_block),
        apdu(0x20, 0, 0x80, &pin_block),
        apdu(0x20, 0, 0x80, &[]),
        apdu_le(0x87, 0x11, 0x9A, &sign, 256), // RFC 6979: the same signature every time
        apdu_le(0x87, 0x11, 0x9A, &ecdh, 256),
        apdu_le(0xF9, 0x9A, 0, &[], 0), // attestation certificate for 9A
        apdu(0x24, 0, 0x80, &change),
        apdu(0x20, 0, 0x80, &padded(b"654321")),
        apdu(0x20, 0xFF, 0x80, &[]),
        apdu(0x20, 0, 0x80, &[]),
        apdu(0x20, 0, 0x80, &wrong_block),
        apdu(0x20, 0, 0x80, &wrong_block),
        apdu(0x20, 0, 0x80, &wrong_block),
        apdu(0x20, 0, 0x80, &[]),
        apdu(0x2C, 0, 0x80, &[padded(PUK), padded(PIN)].concat()),
        apdu(0x20, 0, 0x80, &pin_block),
        apdu_le(0xF7, 0, 0x80, &[], 256),
        apdu_le(0xF7, 0, 0x81, &[], 256),
    ]
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02X}");
        s
    })
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// Run the script on a copy of `golden_dir`'s key; one line per command.
fn transcript_of(golden_dir: &Path) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("key");
    std::fs::create_dir(&dir).unwrap();
    std::fs::copy(golden_dir.join("card.ukey"), dir.join("card.ukey")).unwrap();
    let mut key = VirtualKey::open(&dir).unwrap_or_else(|e| panic!("the golden key must open: {e}"));
    let mut out = String::new();
    for cmd in script() {
        let resp = key.exchange(&cmd);
        writeln!(out, "{} -> {}", hex(&cmd), hex(&resp)).unwrap();
    }
    drop(key);
    // What the script left behind survives a reopen, now in today's format.
    let bytes = std::fs::read(dir.join("card.ukey")).unwrap();
    let (version, _) = token_sim::store::format::check_frame(&bytes).unwrap();
    assert_eq!(version, token_sim::store::FORMAT_VERSION, "the first write converts the file");
    let key = VirtualKey::open(&dir).unwrap();
    writeln!(out, "after reopen: pin {:?} puk {:?}", key.card().state().pin.counter, key.card().state().puk.counter)
        .unwrap();
    out
}

fn golden(version: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(version)
}

/// The format-1 meta comes across whole (and its open count starts).
#[test]
fn v1_meta_survives_the_migration() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("key");
    std::fs::create_dir(&dir).unwrap();
    std::fs::copy(golden("v1").join("card.ukey"), dir.join("card.ukey")).unwrap();
    let key = VirtualKey::open(&dir).unwrap();
    let meta = key.meta().unwrap();
    assert_eq!((meta.created, meta.scenario.as_str(), meta.seed, meta.boots), (NOW, "fresh", Some(20261202), 1));
    // Format-1 builds took a seeded key's serial from the seed; the serial is the key's identity.
    assert_eq!(key.serial(), 30_261_202, "the v1 key's serial");
}

#[test]
fn v1_key_opens_and_answers_as_it_did() {
    let dir = golden("v1");
    let expected = std::fs::read_to_string(dir.join("transcript.txt")).unwrap();
    let got = transcript_of(&dir);
    for (n, (e, g)) in expected.lines().zip(got.lines()).enumerate() {
        assert_eq!(g, e, "line {} of the v1 transcript differs", n + 1);
    }
    assert_eq!(got.lines().count(), expected.lines().count());
}
