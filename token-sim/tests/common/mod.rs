#![allow(dead_code)]
//! Helpers for driving the card with raw APDUs.

use proto::clock::FixedClock;
use proto::piv::Algorithm;
use proto::Sw;
use token_sim::piv::Card;
use token_sim::piv::Storage;
use token_sim::rng::{make_rng, SimRng};
use token_sim::virtual_key::{manufacture, KeySpec};

pub const NOW: u64 = 1_790_000_000;
pub const PIN: &[u8] = b"123456";
pub const PUK: &[u8] = b"12345678";
pub const MGMT: [u8; 24] = proto::piv::defaults::MANAGEMENT_KEY;

pub fn spec(seed: u64) -> KeySpec {
    KeySpec { seed: Some(seed), ..KeySpec::default() }
}

pub fn card_with<S: Storage>(spec: &KeySpec, storage: S) -> Box<Card<S, SimRng>> {
    let mut rng = make_rng(spec.seed, 0);
    let state = manufacture(spec, &mut rng, &FixedClock(NOW)).unwrap();
    Box::new(Card::new(state, storage, rng))
}

pub fn card() -> Box<Card<token_sim::piv::NoStorage, SimRng>> {
    card_with(&spec(1), token_sim::piv::NoStorage)
}

/// Send an APDU; return (data, sw).
pub fn tx<S: Storage>(card: &mut Card<S, SimRng>, apdu: &[u8]) -> (Vec<u8>, Sw) {
    let r = card.transmit(apdu);
    assert!(r.len() >= 2, "every answer carries a status word");
    let (data, sw) = r.split_at(r.len() - 2);
    (data.to_vec(), Sw::from_bytes(sw[0], sw[1]))
}

pub fn sw<S: Storage>(card: &mut Card<S, SimRng>, apdu: &[u8]) -> Sw {
    tx(card, apdu).1
}

pub fn apdu(ins: u8, p1: u8, p2: u8, data: &[u8]) -> Vec<u8> {
    proto::CommandApdu::new(0, ins, p1, p2, data, None).to_vec()
}

pub fn apdu_le(ins: u8, p1: u8, p2: u8, data: &[u8], le: usize) -> Vec<u8> {
    proto::CommandApdu::new(0, ins, p1, p2, data, Some(le)).to_vec()
}

pub fn padded(pin: &[u8]) -> Vec<u8> {
    let mut v = pin.to_vec();
    v.resize(8, 0xFF);
    v
}

pub fn verify<S: Storage>(card: &mut Card<S, SimRng>, pin: &[u8]) -> Sw {
    sw(card, &apdu(0x20, 0, 0x80, &padded(pin)))
}

/// Mutual management-key authentication as libykpiv does it.
pub fn mgmt_auth<S: Storage>(card: &mut Card<S, SimRng>, alg: Algorithm, key: &[u8]) -> Sw {
    let (data, sw) = tx(card, &apdu(0x87, alg as u8, 0x9B, &[0x7C, 0x02, 0x80, 0x00]));
    if !sw.is_ok() {
        return sw;
    }
    let bl = alg.block_len().unwrap();
    assert_eq!(data[..4], [0x7C, bl as u8 + 2, 0x80, bl as u8]);
    let mut witness = data[4..].to_vec();
    proto::mgmt::crypt_block(alg, key, &mut witness, false).unwrap();
    let challenge = vec![0x42u8; bl];
    let mut body = vec![0x80, bl as u8];
    body.extend_from_slice(&witness);
    body.extend_from_slice(&[0x81, bl as u8]);
    body.extend_from_slice(&challenge);
    let mut msg = vec![0x7C, body.len() as u8];
    msg.extend_from_slice(&body);
    let (resp, sw) = tx(card, &apdu(0x87, alg as u8, 0x9B, &msg));
    if sw.is_ok() {
        let mut expect = challenge.clone();
        proto::mgmt::crypt_block(alg, key, &mut expect, true).unwrap();
        assert_eq!(resp[4..], expect[..], "card proves it knows the key too");
    }
    sw
}

pub fn generate<S: Storage>(card: &mut Card<S, SimRng>, slot: u8) -> (Vec<u8>, Sw) {
    tx(card, &apdu(0x47, 0, slot, &[0xAC, 0x03, 0x80, 0x01, 0x11]))
}

pub fn sign_apdu(slot: u8, digest: &[u8]) -> Vec<u8> {
    let mut inner = vec![0x82, 0x00, 0x81, digest.len() as u8];
    inner.extend_from_slice(digest);
    let mut data = vec![0x7C, inner.len() as u8];
    data.extend_from_slice(&inner);
    apdu_le(0x87, 0x11, slot, &data, 256)
}

/// GET DATA for a three-byte object tag.
pub fn get_data_apdu(tag: u32) -> Vec<u8> {
    let t = tag.to_be_bytes();
    apdu_le(0xCB, 0x3F, 0xFF, &[0x5C, 0x03, t[1], t[2], t[3]], 256)
}

/// Read a whole object, following 61xx with GET RESPONSE.
pub fn read_object<S: Storage>(card: &mut Card<S, SimRng>, tag: u32) -> (Vec<u8>, Sw) {
    let (mut data, mut sw) = tx(card, &get_data_apdu(tag));
    while let Some(n) = sw.bytes_remaining() {
        let (more, s) = tx(card, &[0x00, 0xC0, 0x00, 0x00, n as u8]);
        data.extend(more);
        sw = s;
    }
    (data, sw)
}

/// Send a long command in CLA-10 chunks of 255 bytes; returns the final answer.
pub fn chained<S: Storage>(card: &mut Card<S, SimRng>, ins: u8, p1: u8, p2: u8, data: &[u8]) -> (Vec<u8>, Sw) {
    let chunks: Vec<&[u8]> = data.chunks(255).collect();
    for c in &chunks[..chunks.len() - 1] {
        let mut a = proto::CommandApdu::new(0x10, ins, p1, p2, c, None).to_vec();
        a[0] = 0x10;
        assert_eq!(sw(card, &a), Sw::OK, "intermediate chunk");
    }
    tx(card, &apdu(ins, p1, p2, chunks[chunks.len() - 1]))
}

pub fn put_data_body(tag: u32, value: &[u8]) -> Vec<u8> {
    let t = tag.to_be_bytes();
    let mut data = vec![0x5C, 0x03, t[1], t[2], t[3]];
    data.extend(proto::tlv::to_vec(0x53, value));
    data
}
