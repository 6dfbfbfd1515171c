//! The Yubico extensions host tools expect (yubico-piv-tool, ykman, OpenSC's YubiKey paths). A
//! key without one says "not supported": that is no failure.

use der::{Decode, Encode};
use proto::piv::metadata::KeyAlgorithm;
use proto::piv::{Algorithm, Slot};

use super::support::{step, tried};
use crate::card::Card;
use crate::catalog::{Check, Family, Severity, Verdict};
use crate::guard::Secret;

/// An instruction the key does not know: not supported.
fn unsupported(sw: u16) -> bool {
    matches!(sw, 0x6D00 | 0x6E00 | 0x6A81)
}

/// RESET wipes a key only when both its PIN and PUK are blocked (else one lost PIN would
/// erase it). Destructive: a key with the defect is wiped.
fn reset_refused(card: &mut Card) -> Verdict {
    let (_, sw) = step!(card.raw(&[0x00, 0xFD, 0x00, 0x00, 0x00]));
    if unsupported(sw.0) {
        return Verdict::NotSupported(format!("no Yubico extensions (GET VERSION {:04X})", sw.0));
    }
    // The assertion needs the PIN known unblocked: on a key whose PIN and PUK happen to be
    // both blocked a RESET is right to wipe it.
    match card.tries(Secret::Pin) {
        Ok(Some(n)) if n > 0 => {}
        Ok(n) => {
            return Verdict::Skipped(format!(
                "needs the PIN known unblocked (its tries: {n:?}): RESET might rightly wipe the key"
            ))
        }
        Err(e) => return Verdict::fail(e),
    }
    let (_, sw) = tried!(card.send_reset(&[0x00, 0xFB, 0x00, 0x00]));
    match sw.0 {
        0x6985 => Verdict::Pass,
        0x9000 => Verdict::Fail("RESET answered 9000 with the PIN and PUK not blocked: the key was wiped".into()),
        w if unsupported(w) => Verdict::NotSupported(format!("no RESET ({w:04X})")),
        w => Verdict::Fail(format!("RESET with the PIN not blocked answered {w:04X}, not 6985")),
    }
}

fn version(card: &mut Card) -> Verdict {
    let (data, sw) = step!(card.raw(&[0x00, 0xFD, 0x00, 0x00, 0x00]));
    match sw.0 {
        0x9000 if data.len() == 3 => Verdict::Pass,
        0x9000 => Verdict::Fail(format!("GET VERSION answered {} bytes, not 3", data.len())),
        w if unsupported(w) => Verdict::NotSupported(format!("no GET VERSION ({w:04X})")),
        w => Verdict::Fail(format!("GET VERSION answered {w:04X}")),
    }
}

fn serial(card: &mut Card) -> Verdict {
    let (data, sw) = step!(card.raw(&[0x00, 0xF8, 0x00, 0x00, 0x00]));
    match sw.0 {
        0x9000 if data.len() == 4 => Verdict::Pass,
        0x9000 => Verdict::Fail(format!("GET SERIAL answered {} bytes, not 4", data.len())),
        w if unsupported(w) => Verdict::NotSupported(format!("no GET SERIAL ({w:04X})")),
        w => Verdict::Fail(format!("GET SERIAL answered {w:04X}")),
    }
}

fn pin_metadata(card: &mut Card) -> Verdict {
    let (_, sw) = step!(card.raw(&[0x00, 0x20, 0x00, 0x80]));
    let Some(left) = (sw.0 & 0xFFF0 == 0x63C0).then_some((sw.0 & 0x0F) as u8) else {
        return Verdict::Skipped(format!("VERIFY gives no count to compare ({:04X})", sw.0));
    };
    match card.piv().metadata(0x80) {
        Ok(m) => match m.retries_remaining {
            Some(n) if n == left => Verdict::Pass,
            Some(n) => Verdict::Fail(format!("metadata says {n} PIN tries left, VERIFY says {left}")),
            None => Verdict::Fail("PIN metadata without retries (06)".into()),
        },
        Err(e) if e.is_not_supported() => Verdict::NotSupported("no GET METADATA".into()),
        Err(e) => Verdict::Fail(format!("PIN metadata: {e}")),
    }
}

fn attestation(card: &mut Card) -> Verdict {
    let cert = match card.piv().read_certificate(Slot::Authentication) {
        Ok(Some(c)) => c,
        Ok(None) => return Verdict::NotSupported("no certificate in 9A to compare the attestation with".into()),
        Err(e) => return Verdict::Fail(e.to_string()),
    };
    let attested = match card.piv().attest(Slot::Authentication) {
        Ok(a) => a,
        Err(e) if e.is_not_supported() => return Verdict::NotSupported("no ATTEST".into()),
        Err(e) => return Verdict::NotSupported(format!("no attestation of 9A ({e})")),
    };
    let key_of = |der: &[u8]| {
        x509_cert::Certificate::from_der(der)
            .map_err(|e| e.to_string())
            .and_then(|c| c.tbs_certificate.subject_public_key_info.to_der().map_err(|e| e.to_string()))
    };
    match (key_of(&attested), key_of(&cert)) {
        (Ok(a), Ok(c)) if a == c => Verdict::Pass,
        (Ok(_), Ok(_)) => Verdict::NotSupported(
            "the attested key is not the 9A certificate's (an imported or replaced certificate)".into(),
        ),
        (Err(e), _) => Verdict::Fail(format!("the attestation is not an X.509 certificate: {e}")),
        (_, Err(e)) => Verdict::Fail(format!("the 9A certificate: {e}")),
    }
}

fn slot_metadata(card: &mut Card) -> Verdict {
    let has_cert = matches!(card.piv().read_certificate(Slot::Authentication), Ok(Some(_)));
    match card.piv().metadata(0x9A) {
        Ok(m) => match (m.algorithm, m.public_key) {
            (Some(KeyAlgorithm::Piv(Algorithm::EccP256)), Some(point)) if point.len() == 65 => Verdict::Pass,
            (Some(KeyAlgorithm::Piv(Algorithm::EccP256)), _) => {
                Verdict::Fail("9A's metadata names P-256 but gives no 65-byte public point".into())
            }
            (Some(a), _) => Verdict::NotSupported(format!("9A holds algorithm {:02X}, not P-256", a.byte())),
            (None, _) => Verdict::Fail("9A's metadata has no algorithm (01)".into()),
        },
        Err(e) if e.is_not_supported() => Verdict::NotSupported("no GET METADATA".into()),
        Err(_) if !has_cert => Verdict::NotSupported("no key in 9A".into()),
        Err(e) => Verdict::Fail(format!("9A metadata: {e}")),
    }
}

fn management_metadata(card: &mut Card) -> Verdict {
    match card.piv().metadata(0x9B) {
        Ok(m) => match m.algorithm {
            Some(KeyAlgorithm::Piv(a)) if a.block_len().is_some() => Verdict::Pass,
            Some(a) => Verdict::Fail(format!("the management key's metadata names algorithm {:02X}", a.byte())),
            None => Verdict::Fail("the management key's metadata has no algorithm (01)".into()),
        },
        Err(e) if e.is_not_supported() => Verdict::NotSupported("no GET METADATA".into()),
        Err(e) => Verdict::Fail(format!("9B metadata: {e}")),
    }
}

fn attest_empty_slot(card: &mut Card) -> Verdict {
    // The first slot without a key: 9C, 9D and 9E are empty on most keys, the 20 retired
    // slots (82-95) on nearly all.
    let empty = [0x9C, 0x9D, 0x9E].into_iter().chain(0x82..=0x95).find(|&r| card.piv().metadata(r).is_err());
    let Some(slot) = empty else {
        return Verdict::Skipped("every slot holds a key here".into());
    };
    let (_, sw) = step!(card.raw(&[0x00, 0xF9, slot, 0x00, 0x00]));
    match sw.0 {
        0x9000 => Verdict::Fail("ATTEST of an empty slot answered 9000".into()),
        w if unsupported(w) => Verdict::NotSupported(format!("no ATTEST ({w:04X})")),
        _ => Verdict::Pass,
    }
}

pub const CHECKS: &[Check] = &[
    Check {
        id: "PIV-YK-001",
        title: "GET VERSION answers three bytes",
        clause: "Yubico PIV extension (INS FD)",
        family: Family::Yubico,
        severity: Severity::Info,
        destructive: false,
        run: version,
    },
    Check {
        id: "PIV-YK-002",
        title: "GET SERIAL answers four bytes",
        clause: "Yubico PIV extension (INS F8)",
        family: Family::Yubico,
        severity: Severity::Info,
        destructive: false,
        run: serial,
    },
    Check {
        id: "PIV-YK-003",
        title: "where the key has metadata, the PIN's counts the same tries as VERIFY",
        clause: "Yubico PIV extension GET METADATA (INS F7); not SP 800-73-4",
        family: Family::Yubico,
        severity: Severity::Should,
        destructive: false,
        run: pin_metadata,
    },
    Check {
        id: "PIV-YK-004",
        title: "ATTEST of 9A certifies the key of the 9A certificate",
        clause: "Yubico PIV extension (INS F9)",
        family: Family::Yubico,
        severity: Severity::Info,
        destructive: false,
        run: attestation,
    },
    Check {
        id: "PIV-YK-005",
        title: "9A's metadata names P-256 and gives the public point",
        clause: "Yubico PIV extension (INS F7)",
        family: Family::Yubico,
        severity: Severity::Info,
        destructive: false,
        run: slot_metadata,
    },
    Check {
        id: "PIV-YK-006",
        title: "the management key's metadata names a 3DES or AES algorithm",
        clause: "Yubico PIV extension (INS F7)",
        family: Family::Yubico,
        severity: Severity::Info,
        destructive: false,
        run: management_metadata,
    },
    Check {
        id: "PIV-YK-007",
        title: "ATTEST of a slot without a key is refused",
        clause: "Yubico PIV extension (INS F9)",
        family: Family::Yubico,
        severity: Severity::Info,
        destructive: false,
        run: attest_empty_slot,
    },
    Check {
        id: "PIV-YK-008",
        title: "RESET is refused (6985) while the PIN and PUK are not both blocked",
        clause: "Yubico PIV extension RESET (INS FB); not SP 800-73-4",
        family: Family::Yubico,
        severity: Severity::Should,
        destructive: true,
        run: reset_refused,
    },
];
