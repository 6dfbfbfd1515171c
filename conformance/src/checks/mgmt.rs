//! Management-key authentication: GENERAL AUTHENTICATE with key reference 9B, witness and
//! challenge (SP 800-73-4 Part 2 Appendix A.2 and A.3).

use host_driver::MgmtKey;
use proto::piv::Algorithm;
use proto::status::Sw;
use proto::tlv;

use super::support::{step, tried};
use crate::card::Card;
use crate::catalog::{Check, Family, Severity, Verdict};
use crate::preconditions::other_algorithm;

const GA: u8 = 0x87;
const MGMT: u8 = 0x9B;

/// Ask for a witness under `key`'s algorithm (the other 24-byte one if the key refuses it):
/// the key as the card uses it, and the encrypted witness.
fn witness(card: &mut Card) -> Result<(MgmtKey, Vec<u8>), Verdict> {
    let mut key = card.secrets.mgmt.clone();
    for attempt in 0..2 {
        let (resp, sw) = card.cmd(GA, key.alg as u8, MGMT, &[0x7C, 0x02, 0x80, 0x00]).map_err(Verdict::fail)?;
        if sw == Sw::INCORRECT_P1P2 && attempt == 0 && key.alg.key_len() == Some(24) {
            let other = if key.alg == Algorithm::Tdes { Algorithm::Aes192 } else { Algorithm::Tdes };
            key = key.with_alg(other).map_err(|e| Verdict::Fail(e.to_string()))?;
            continue;
        }
        if sw == Sw::INCORRECT_P1P2 {
            // Every algorithm a key of this length can be was refused: the key's management key
            // is of another length, so the one given cannot be its own.
            return Err(other_algorithm(card.secrets.mgmt.bytes().len()));
        }
        if !sw.is_ok() {
            return Err(Verdict::Fail(format!("asking for a witness answered {:04X}", sw.0)));
        }
        let body = tlv::parse_exact(&resp, 0x7C).map_err(|e| Verdict::Fail(format!("witness answer: {e:?}")))?;
        let w = tlv::find(body, 0x80)
            .ok()
            .flatten()
            .ok_or_else(|| Verdict::Fail("no witness (80) in the answer".into()))?;
        return Ok((key, w.to_vec()));
    }
    unreachable!("the loop returns on its second pass")
}

/// The second step: the decrypted witness (as given) and our challenge.
fn answer(card: &mut Card, key: &MgmtKey, witness: &[u8], challenge: &[u8]) -> Result<(Vec<u8>, Sw), Verdict> {
    let mut inner = tlv::to_vec(0x80, witness);
    inner.extend(tlv::to_vec(0x81, challenge));
    card.cmd(GA, key.alg as u8, MGMT, &tlv::to_vec(0x7C, &inner)).map_err(Verdict::fail)
}

fn decrypt(key: &MgmtKey, enc: &[u8]) -> Result<Vec<u8>, Verdict> {
    let mut w = enc.to_vec();
    key.crypt(&mut w, false).map_err(|e| Verdict::Fail(e.to_string()))?;
    Ok(w)
}

fn mutual(card: &mut Card) -> Verdict {
    let (key, enc) = tried!(witness(card));
    let w = tried!(decrypt(&key, &enc));
    let challenge = vec![0x5A; w.len()];
    let (resp, sw) = tried!(answer(card, &key, &w, &challenge));
    if sw == Sw::SECURITY_STATUS_NOT_SATISFIED {
        return Verdict::Skipped("the management key given is not this key's; pass --mgmt-key".into());
    }
    if !sw.is_ok() {
        return Verdict::Fail(format!("the witness and challenge answered {:04X}", sw.0));
    }
    let mut expect = challenge;
    if let Err(e) = key.crypt(&mut expect, true) {
        return Verdict::Fail(e.to_string());
    }
    let got = tlv::parse_exact(&resp, 0x7C).ok().and_then(|b| tlv::find(b, 0x82).ok().flatten());
    if got == Some(&expect[..]) {
        Verdict::Pass
    } else {
        Verdict::Fail("the key's response (82) to our challenge is not the challenge encrypted".into())
    }
}

fn wrong_key(card: &mut Card) -> Verdict {
    let (key, enc) = tried!(witness(card));
    let mut bytes = key.bytes().to_vec();
    for b in &mut bytes {
        *b ^= 0x5A;
    }
    let wrong = step!(MgmtKey::new(key.alg, &bytes));
    let w = tried!(decrypt(&wrong, &enc));
    let challenge = vec![0x11; w.len()];
    let (_, sw) = tried!(answer(card, &wrong, &w, &challenge));
    if sw.is_ok() {
        return Verdict::Fail("a wrong management key was accepted".into());
    }
    if sw == Sw::SECURITY_STATUS_NOT_SATISFIED {
        Verdict::Pass
    } else {
        Verdict::Fail(format!("a wrong management key answered {:04X}, not 6982", sw.0))
    }
}

fn short_witness(card: &mut Card) -> Verdict {
    let (key, enc) = tried!(witness(card));
    let w = tried!(decrypt(&key, &enc));
    // Only a prefix of the right witness: a card comparing just the bytes sent lets this in.
    let challenge = vec![0x22; w.len()];
    let (_, sw) = tried!(answer(card, &key, &w[..w.len() - 1], &challenge));
    if sw.is_ok() {
        Verdict::Fail("a witness one byte short (a prefix of the right one) was accepted".into())
    } else {
        Verdict::Pass
    }
}

fn replayed(card: &mut Card) -> Verdict {
    let (key, enc) = tried!(witness(card));
    let w = tried!(decrypt(&key, &enc));
    let challenge = vec![0x33; w.len()];
    match answer(card, &key, &w, &challenge) {
        Ok((_, sw)) if sw.is_ok() => {}
        Ok((_, sw)) if sw == Sw::SECURITY_STATUS_NOT_SATISFIED => {
            return Verdict::Skipped("the management key given is not this key's; pass --mgmt-key".into())
        }
        Ok((_, sw)) => return Verdict::Fail(format!("authentication answered {:04X}", sw.0)),
        Err(v) => return v,
    }
    // A new witness, answered with the old one: a recorded exchange must not open the key.
    if let Err(v) = witness(card) {
        return v;
    }
    match answer(card, &key, &w, &challenge) {
        Ok((_, sw)) if sw.is_ok() => Verdict::Fail("a replayed witness answer was accepted".into()),
        Ok(_) => Verdict::Pass,
        Err(v) => v,
    }
}

fn no_witness_asked(card: &mut Card) -> Verdict {
    let key = card.secrets.mgmt.clone();
    let n = key.alg.block_len().unwrap_or(8);
    let (_, sw) = match answer(card, &key, &vec![0u8; n], &vec![0x44; n]) {
        Ok(v) => v,
        Err(v) => return v,
    };
    if sw.is_ok() {
        Verdict::Fail("a witness answer without a witness asked for was accepted".into())
    } else {
        Verdict::Pass
    }
}

fn reset_drops_authentication(card: &mut Card) -> Verdict {
    // The scratch object must be free: the undo below deletes it.
    match card.piv().read_object(0x5FC120) {
        Ok(None) => {}
        Ok(Some(_)) => return Verdict::Skipped("object 5FC120 holds data: it is not used as scratch".into()),
        Err(e) => return Verdict::Skipped(format!("object 5FC120 cannot be read ({e}): it is not used as scratch")),
    }
    step!(card.fresh());
    tried!(card.mgmt_auth());
    step!(card.fresh());
    // A scratch object write: refused now that the authentication is gone.
    let data = [0x5C, 0x03, 0x5F, 0xC1, 0x20, 0x53, 0x01, 0x00];
    let (_, sw) = step!(card.cmd(0xDB, 0x3F, 0xFF, &data));
    if sw.0 == 0x9000 {
        // Undo the write.
        if card.mgmt_auth().is_ok() {
            let _ = card.cmd(0xDB, 0x3F, 0xFF, &[0x5C, 0x03, 0x5F, 0xC1, 0x20, 0x53, 0x00]);
        }
        return Verdict::Fail("the management-key authentication outlived a card reset".into());
    }
    if sw.0 == 0x6982 {
        Verdict::Pass
    } else {
        Verdict::Fail(format!("PUT DATA after a reset answered {:04X}, not 6982", sw.0))
    }
}

fn wrong_algorithm(card: &mut Card) -> Verdict {
    // P1 = 07 (RSA 2048) for the management key, which is symmetric.
    let (resp, sw) = step!(card.cmd(GA, 0x07, MGMT, &[0x7C, 0x02, 0x80, 0x00]));
    if sw.is_ok() && !resp.is_empty() {
        return Verdict::Fail("a witness was given for an RSA management key".into());
    }
    Verdict::Pass
}

pub const CHECKS: &[Check] = &[
    Check {
        id: "PIV-MGMT-001",
        title: "mutual authentication with the management key succeeds and the key proves itself",
        clause: "SP 800-73-4 Part 2 Appendix A (informative): mutual authentication with 9B",
        family: Family::MgmtAuth,
        severity: Severity::Should,
        destructive: false,
        run: mutual,
    },
    Check {
        id: "PIV-MGMT-002",
        title: "a wrong management key is refused with 6982",
        clause: "SP 800-73-4 Part 2 §3.2.4",
        family: Family::MgmtAuth,
        severity: Severity::Must,
        destructive: false,
        run: wrong_key,
    },
    Check {
        id: "PIV-MGMT-003",
        title: "a witness of the wrong length (a prefix of the right one) is refused",
        clause: "SP 800-73-4 Part 2 Appendix A.3 (CVE-2025-25201 class)",
        family: Family::MgmtAuth,
        severity: Severity::Must,
        destructive: false,
        run: short_witness,
    },
    Check {
        id: "PIV-MGMT-004",
        title: "a replayed witness answer is refused after a new witness",
        clause: "SP 800-73-4 Part 2 Appendix A.3",
        family: Family::MgmtAuth,
        severity: Severity::Must,
        destructive: false,
        run: replayed,
    },
    Check {
        id: "PIV-MGMT-005",
        title: "a witness answer with no witness asked for is refused",
        clause: "SP 800-73-4 Part 2 Appendix A.3",
        family: Family::MgmtAuth,
        severity: Severity::Must,
        destructive: false,
        run: no_witness_asked,
    },
    Check {
        id: "PIV-MGMT-006",
        title: "a card reset ends the management-key authentication",
        clause: "ISO 7816-4 (security status after a reset); no SP 800-73-4 shall found",
        family: Family::MgmtAuth,
        severity: Severity::Should,
        destructive: false,
        run: reset_drops_authentication,
    },
    Check {
        id: "PIV-MGMT-007",
        title: "a witness is not given for an algorithm the management key is not",
        clause: "SP 800-73-4 Part 2 §3.2.4; SP 800-78-4 Table 5",
        family: Family::MgmtAuth,
        severity: Severity::Should,
        destructive: false,
        run: wrong_algorithm,
    },
];
