//! GENERATE ASYMMETRIC KEY PAIR and the key it makes: the public key returned is the one that
//! signs and agrees keys later. These make a key in the last retired slot (95), or in 9D on a
//! card without retired slots, replacing what was there: destructive (run with
//! --destructive, or on a key made for the run).

use p256::ecdsa::signature::hazmat::PrehashVerifier;
use proto::piv::Slot;

use super::support::{refused, step, tried};
use crate::card::Card;
use crate::catalog::{Check, Family, Severity, Verdict};

/// The last retired slot (95) spares the key's working slots; a card without retired slots
/// gets its 9D replaced.
const SPARE: Slot = Slot::Retired(20);

/// GENERATE P-256 (after management-key authentication) in 95, or where the card has no
/// retired slots in 9D: the slot and the public point.
fn generate(card: &mut Card) -> Result<(Slot, p256::PublicKey), Verdict> {
    card.mgmt_auth()?;
    for slot in [SPARE, Slot::KeyManagement] {
        match card.piv().generate(slot, None, None) {
            Ok(public) => return Ok((slot, public)),
            Err(host_driver::PivError::Card { sw, .. })
                if slot == SPARE && matches!(sw.0, 0x6A80 | 0x6A86 | 0x6A88) => {}
            Err(e) if slot == SPARE && e.is_not_supported() => {}
            // No P-256 on this card (SP 800-78 also allows RSA-2048 alone): these checks, which
            // use P-256, do not apply.
            Err(host_driver::PivError::Card { sw, .. }) if matches!(sw.0, 0x6A80 | 0x6A86) => {
                return Err(Verdict::NotSupported(format!("GENERATE of a P-256 key answered {:04X}", sw.0)));
            }
            Err(e) => return Err(Verdict::Fail(format!("GENERATE in {:02X}: {e}", slot.key_ref()))),
        }
    }
    unreachable!("9D is the last slot tried")
}

fn signs_for_returned_key(card: &mut Card) -> Verdict {
    let (slot, public) = tried!(generate(card));
    // 9D and the retired slots have the PIN policy "once": verify, then sign.
    tried!(card.verify_pin());
    let digest = [0x5Au8; 32];
    let sig = match card.piv().sign_digest(slot, &digest) {
        Ok(s) => s,
        Err(e) => return Verdict::Fail(format!("signing with the new {:02X} key: {e}", slot.key_ref())),
    };
    let key = p256::ecdsa::VerifyingKey::from(&public);
    match p256::ecdsa::Signature::from_der(&sig.der).map(|s| key.verify_prehash(&digest, &s)) {
        Ok(Ok(())) => Verdict::Pass,
        _ => Verdict::Fail("the new key's signature does not verify with the public key GENERATE returned".into()),
    }
}

fn ecdh_agrees(card: &mut Card) -> Verdict {
    let (slot, public) = tried!(generate(card));
    tried!(card.verify_pin());
    let ours = p256::SecretKey::from_slice(&[0x42u8; 32]).expect("a valid scalar");
    let expected = p256::ecdh::diffie_hellman(ours.to_nonzero_scalar(), public.as_affine());
    match card.piv().ecdh(slot, &ours.public_key()) {
        Ok(shared) if shared == expected.raw_secret_bytes().as_slice() => Verdict::Pass,
        Ok(_) => Verdict::Fail("the key's ECDH secret differs from the host's".into()),
        Err(e) => Verdict::Fail(format!("ECDH with {:02X}: {e}", slot.key_ref())),
    }
}

fn needs_management_key(card: &mut Card) -> Verdict {
    let data = [0xAC, 0x03, 0x80, 0x01, 0x11];
    let (_, sw) = step!(card.cmd(0x47, 0x00, 0x9D, &data));
    if sw.0 == 0x9000 {
        return Verdict::Fail("GENERATE without management-key authentication made a key".into());
    }
    refused(sw, "GENERATE before management-key authentication")
}

fn returned_point_is_p256(card: &mut Card) -> Verdict {
    tried!(card.mgmt_auth());
    let data = [0xAC, 0x03, 0x80, 0x01, 0x11];
    let (mut resp, mut sw) = step!(card.cmd(0x47, 0x00, SPARE.key_ref(), &data));
    if matches!(sw.0, 0x6A80 | 0x6A86 | 0x6A88) {
        (resp, sw) = step!(card.cmd(0x47, 0x00, 0x9D, &data));
    }
    if matches!(sw.0, 0x6A80 | 0x6A86) {
        return Verdict::NotSupported(format!("GENERATE of a P-256 key answered {:04X}", sw.0));
    }
    if sw.0 != 0x9000 {
        return Verdict::Fail(format!("GENERATE answered {:04X}", sw.0));
    }
    let point = proto::tlv::parse_exact(&resp, 0x7F49).ok().and_then(|b| proto::tlv::find(b, 0x86).ok().flatten());
    match point {
        Some(p) if p.len() == 65 && p[0] == 0x04 && p256::PublicKey::from_sec1_bytes(p).is_ok() => Verdict::Pass,
        Some(p) => Verdict::Fail(format!("86 is {} bytes that are not an uncompressed P-256 point", p.len())),
        None => Verdict::Fail("no 7F49 { 86 point } in the answer".into()),
    }
}

pub const CHECKS: &[Check] = &[
    Check {
        id: "PIV-GEN-001",
        title: "GENERATE answers 7F49 with an uncompressed P-256 point",
        clause: "SP 800-73-4 Part 2 §3.3.2, Table 10",
        family: Family::Generate,
        severity: Severity::Must,
        destructive: true,
        run: returned_point_is_p256,
    },
    Check {
        id: "PIV-GEN-002",
        title: "the generated key signs, verifiably with the public key returned",
        clause: "SP 800-73-4 Part 2 §3.3.2; SP 800-78-4 §3",
        family: Family::Generate,
        severity: Severity::Must,
        destructive: true,
        run: signs_for_returned_key,
    },
    Check {
        id: "PIV-GEN-003",
        title: "ECDH with the generated key agrees with the host's secret",
        clause: "SP 800-73-4 Part 2 §3.2.4, SP 800-56A",
        family: Family::Generate,
        severity: Severity::Must,
        destructive: true,
        run: ecdh_agrees,
    },
    Check {
        id: "PIV-GEN-004",
        title: "GENERATE needs management-key authentication",
        clause: "SP 800-73-4 Part 1 §3",
        family: Family::Generate,
        severity: Severity::Must,
        destructive: true,
        run: needs_management_key,
    },
];
