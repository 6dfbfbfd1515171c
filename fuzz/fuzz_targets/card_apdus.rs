//! Arbitrary bytes against the card's whole command surface. The first byte chooses the
//! card and how far in the run starts: bit 0 management-key authentication, bit 1 the PIN
//! verified, bit 2 a plain PIV card (no Yubico extensions), bit 3 a 9A key generated, bit 4
//! an AES-128 management key. The rest is cut into APDUs (one length byte before each) and
//! sent in order. Any panic is a bug: the card answers every byte string with a status word.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use proto::clock::FixedClock;
use proto::piv::Algorithm;
use proto::Transport;
use token_sim::piv::state::Flavor;
use token_sim::{KeySpec, VirtualKey};

const AES_KEY: [u8; 16] = *b"fuzz-mgmt-key-16";

fn ok(key: &mut VirtualKey, apdu: &[u8]) -> Vec<u8> {
    let mut r = key.transmit(apdu).unwrap();
    let sw = r.split_off(r.len() - 2);
    assert_eq!(sw, [0x90, 0x00], "setup APDU {apdu:02X?}");
    r
}

/// Mutual authentication as libykpiv does it.
fn authenticate(key: &mut VirtualKey, alg: Algorithm, mgmt: &[u8]) {
    let p1 = alg as u8;
    let bl = alg.block_len().unwrap();
    let r = ok(key, &[0x00, 0x87, p1, 0x9B, 0x04, 0x7C, 0x02, 0x80, 0x00]);
    let mut witness = r[4..4 + bl].to_vec();
    proto::mgmt::crypt_block(alg, mgmt, &mut witness, false).unwrap();
    let mut inner = proto::tlv::to_vec(0x80, &witness);
    inner.extend(proto::tlv::to_vec(0x81, &vec![0x42; bl]));
    let data = proto::tlv::to_vec(0x7C, &inner);
    ok(key, &proto::CommandApdu::new(0, 0x87, p1, 0x9B, &data, None).to_vec());
}

/// The factory state of each card kind (plain or not, AES or 3DES, with or without a 9A
/// key), made once: manufacturing signs an attestation certificate, too slow for every run.
fn factory(kind: u8) -> (VirtualKey, Algorithm, Vec<u8>) {
    static STATES: OnceLock<Vec<token_sim::piv::PersistentState>> = OnceLock::new();
    let specs = |kind: u8| {
        let mut spec = KeySpec { seed: Some(1), ..KeySpec::default() };
        if kind & 1 != 0 {
            spec.flavor = Flavor::Plain;
        }
        if kind & 2 != 0 {
            spec.mgmt_alg = Algorithm::Aes128;
            spec.mgmt_key = AES_KEY.to_vec().into();
        }
        spec
    };
    let states = STATES.get_or_init(|| {
        (0..8u8)
            .map(|kind| {
                let spec = specs(kind & 3);
                let mut key = VirtualKey::in_memory(&spec, &FixedClock(1_790_000_000)).unwrap();
                if kind & 4 != 0 {
                    authenticate(&mut key, spec.mgmt_alg, &spec.mgmt_key);
                    ok(&mut key, &[0x00, 0x47, 0x00, 0x9A, 0x05, 0xAC, 0x03, 0x80, 0x01, 0x11]);
                }
                key.card().state().clone()
            })
            .collect()
    });
    let spec = specs(kind & 3);
    (VirtualKey::in_memory_from(states[kind as usize & 7].clone(), Some(1), 1), spec.mgmt_alg, spec.mgmt_key.to_vec())
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, mut rest)) = data.split_first() else { return };
    let kind = (mode >> 2 & 1) | (mode >> 3 & 2) | (mode >> 1 & 4);
    let (mut key, alg, mgmt) = factory(kind);
    if mode & 1 != 0 {
        authenticate(&mut key, alg, &mgmt);
    }
    if mode & 2 != 0 {
        ok(&mut key, b"\x00\x20\x00\x80\x08123456\xFF\xFF");
    }
    while let Some((&len, tail)) = rest.split_first() {
        let n = (len as usize).min(tail.len());
        let (apdu, next) = tail.split_at(n);
        let r = key.transmit(apdu).unwrap();
        assert!(r.len() >= 2);
        rest = next;
    }
});
