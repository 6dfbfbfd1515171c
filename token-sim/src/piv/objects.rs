//! Data objects the card makes itself: the application property template, Discovery,
//! and the CHUID / CCC / key history a fresh card carries so middleware accepts it.

use proto::piv::PIV_AID;
use proto::tlv::{self, Full, Sink};

/// Application label shown by tools that read the property template.
pub const APPLICATION_LABEL: &[u8] = b"ukey virtual PIV";

/// SELECT answer: `61 { 4F PIX, 79 { 4F RID }, 50 label, AC { 80 alg.., 06 00 } }`.
pub fn write_property_template<S: Sink>(out: &mut S) -> Result<(), Full> {
    let mut algs: heapless::Vec<u8, 32> = heapless::Vec::new();
    for alg in [0x03u8, 0x08, 0x0A, 0x0C, 0x11] {
        tlv::write(&mut algs, 0x80, &[alg])?;
    }
    tlv::write(&mut algs, 0x06, &[0x00])?;
    let mut body: heapless::Vec<u8, 96> = heapless::Vec::new();
    tlv::write(&mut body, 0x4F, &PIV_AID[5..])?;
    tlv::write(&mut body, 0x79, &[0x4F, 0x05, 0xA0, 0x00, 0x00, 0x03, 0x08])?;
    tlv::write(&mut body, 0x50, APPLICATION_LABEL)?;
    tlv::write(&mut body, 0xAC, &algs)?;
    tlv::write(out, 0x61, &body)
}

/// Discovery object: PIV AID and PIN usage policy (application PIN only, 40 00).
pub fn write_discovery<S: Sink>(out: &mut S) -> Result<(), Full> {
    let mut body: heapless::Vec<u8, 32> = heapless::Vec::new();
    tlv::write(&mut body, 0x4F, &PIV_AID)?;
    tlv::write(&mut body, 0x5F2F, &[0x40, 0x00])?;
    tlv::write(out, 0x7E, &body)
}

/// FASC-N of a non-government card (agency code 9999), as SP 800-73 examples use it.
const FASC_N: [u8; 25] = [
    0xD4, 0xE7, 0x39, 0xDA, 0x73, 0x9C, 0xED, 0x39, 0xCE, 0x73, 0x9D, 0x83, 0x68, 0x58, 0x21, 0x08, 0x42, 0x10, 0x84,
    0x21, 0xC8, 0x42, 0x10, 0xC3, 0xEB,
];

/// CHUID: FASC-N, a GUID unique to this key (OpenSC uses it as the token serial), an expiry
/// date, an empty signature and the error-detection code.
pub fn chuid(guid: &[u8; 16]) -> heapless::Vec<u8, 96> {
    let mut body: heapless::Vec<u8, 80> = heapless::Vec::new();
    let mut out = heapless::Vec::new();
    let _ = (|| {
        tlv::write(&mut body, 0x30, &FASC_N)?;
        tlv::write(&mut body, 0x34, guid)?;
        tlv::write(&mut body, 0x35, b"20991231")?;
        tlv::write(&mut body, 0x3E, &[])?;
        tlv::write(&mut body, 0xFE, &[])?;
        tlv::write(&mut out, 0x53, &body)
    })();
    out
}

/// Card Capability Container. Deliberately without `F3 A0 00 00 00 79 04` (that switches
/// OpenSC into CAC mode).
pub fn ccc(card_id: &[u8; 14]) -> heapless::Vec<u8, 96> {
    let mut body: heapless::Vec<u8, 80> = heapless::Vec::new();
    let mut out = heapless::Vec::new();
    let _ = (|| {
        let mut id: heapless::Vec<u8, 21> = heapless::Vec::new();
        id.put(&[0xA0, 0x00, 0x00, 0x01, 0x16, 0xFF, 0x02])?;
        id.put(card_id)?;
        tlv::write(&mut body, 0xF0, &id)?;
        for (tag, value) in [
            (0xF1u32, &[0x21u8][..]),
            (0xF2, &[0x21]),
            (0xF3, &[]),
            (0xF4, &[0x00]),
            (0xF5, &[0x10]),
            (0xF6, &[]),
            (0xF7, &[]),
            (0xFA, &[]),
            (0xFB, &[]),
            (0xFC, &[]),
            (0xFD, &[]),
            (0xFE, &[]),
        ] {
            tlv::write(&mut body, tag, value)?;
        }
        tlv::write(&mut out, 0x53, &body)
    })();
    out
}

/// Key history with no retired keys on the card and none off it.
pub fn key_history() -> heapless::Vec<u8, 16> {
    let mut out = heapless::Vec::new();
    let _ = tlv::write(&mut out, 0x53, &[0xC1, 0x01, 0x00, 0xC2, 0x01, 0x00, 0xFE, 0x00]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_are_single_well_formed_tlvs() {
        let mut apt: heapless::Vec<u8, 128> = heapless::Vec::new();
        write_property_template(&mut apt).unwrap();
        let body = tlv::parse_exact(&apt, 0x61).unwrap();
        assert_eq!(tlv::find(body, 0x4F).unwrap(), Some(&[0, 0, 0x10, 0, 1, 0][..]));
        let mut disc: heapless::Vec<u8, 64> = heapless::Vec::new();
        write_discovery(&mut disc).unwrap();
        assert_eq!(
            &disc[..],
            &[0x7E, 0x12, 0x4F, 0x0B, 0xA0, 0, 0, 3, 8, 0, 0, 0x10, 0, 1, 0, 0x5F, 0x2F, 2, 0x40, 0][..]
        );
        let c = chuid(&[9; 16]);
        let body = tlv::parse_exact(&c, 0x53).unwrap();
        assert_eq!(tlv::find(body, 0x34).unwrap(), Some(&[9u8; 16][..]));
        assert_eq!(tlv::find(body, 0x30).unwrap().map(|f| f.len()), Some(25));
        let cc = ccc(&[1; 14]);
        let body = tlv::parse_exact(&cc, 0x53).unwrap();
        assert_eq!(tlv::find(body, 0xF3).unwrap(), Some(&[][..]));
        assert!(tlv::parse_exact(&key_history(), 0x53).is_ok());
    }
}
