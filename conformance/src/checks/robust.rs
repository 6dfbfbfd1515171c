//! Malformed and unknown commands get ISO 7816-4's status words, and leave the key as it was.

use proto::status::Sw;

use super::support::{self, expect, step, tried};
use crate::card::Card;
use crate::catalog::{Check, Family, Severity, Verdict};
use crate::guard::{Secret, Use};

fn unknown_ins(card: &mut Card) -> Verdict {
    let (_, sw) = step!(card.raw(&[0x00, 0x02, 0x00, 0x00]));
    expect(sw, &[0x6D00], "an instruction PIV does not define (INS 02)")
}

fn unknown_class(card: &mut Card) -> Verdict {
    let (_, sw) = step!(card.raw(&[0xA0, 0x20, 0x00, 0x80]));
    expect(sw, &[0x6E00], "a class byte of no ISO class (CLA A0)")
}

fn secure_messaging(card: &mut Card) -> Verdict {
    let (_, sw) = step!(card.raw(&[0x0C, 0x20, 0x00, 0x80]));
    expect(sw, &[0x6882, 0x6E00], "VERIFY with secure messaging indicated (CLA 0C)")
}

fn missing_data(card: &mut Card) -> Verdict {
    // Lc says 8 bytes follow; 3 do. (Header plus one byte alone would be Le, a status query.)
    // A key that pads and compares them spends a try: a risk, given back after the check.
    let apdu = [0x00, 0x20, 0x00, 0x80, 0x08, 0x31, 0x32, 0x33];
    let (_, sw) = step!(tried!(card.send_secret(Use::Risk(Secret::Pin), &apdu)));
    expect(sw, &[0x6700], "VERIFY whose Lc promises data that is not there")
}

fn malformed_template(card: &mut Card) -> Verdict {
    // 7C claims 5 bytes and holds 2.
    let (_, sw) = step!(card.raw(&[0x00, 0x87, 0x11, 0x9A, 0x04, 0x7C, 0x05, 0x82, 0x00]));
    expect(sw, &[0x6A80, 0x6700, 0x6982], "GENERAL AUTHENTICATE with a truncated 7C template")
}

fn state_unchanged(card: &mut Card) -> Verdict {
    let before = tried!(support::pin_status(card));
    let refused: [&[u8]; 6] = [
        &[0x00, 0x02, 0x00, 0x00],
        &[0x00, 0x20, 0x00, 0x80, 0x08, 0x31, 0x32, 0x33],
        &[0x00, 0x20, 0x00, 0x80, 0x02, 0x31, 0x32],
        &[0x00, 0x24, 0x00, 0x80, 0x03, 0x31, 0x32, 0x33],
        &[0x00, 0x2C, 0x00, 0x80, 0x01, 0x00],
        &[0x00, 0xCB, 0x00, 0x00, 0x05, 0x5C, 0x03, 0x5F, 0xC1, 0x02],
    ];
    for apdu in refused {
        // Those that carry a PIN or PUK go under the guard's rules; one it will not send (a
        // secret not given, too few tries) is left out, not the whole check.
        let answer = match apdu[1] {
            0x20 | 0x24 => card.send_secret(Use::Risk(Secret::Pin), apdu),
            0x2C => card.send_secret(Use::Risk(Secret::Puk), apdu),
            _ => Ok(card.raw(apdu)),
        };
        let Ok(answer) = answer else { continue };
        let (_, sw) = step!(answer);
        if sw.0 == 0x9000 {
            return Verdict::Fail(format!("{} was accepted", hex::encode_upper(apdu)));
        }
    }
    let after = tried!(support::pin_status(card));
    if after == before {
        Verdict::Pass
    } else {
        Verdict::Fail(format!("refused commands changed the PIN's state: {before:04X} before, {after:04X} after"))
    }
}

fn unknown_algorithm(card: &mut Card) -> Verdict {
    // P1 = 07 (RSA 2048) on 9A, which holds a P-256 key or none.
    let (_, sw) = step!(card.raw(&[0x00, 0x87, 0x07, 0x9A, 0x06, 0x7C, 0x04, 0x82, 0x00, 0x81, 0x00]));
    if sw.0 == 0x9000 {
        return Verdict::Fail("GENERAL AUTHENTICATE with an algorithm the slot does not hold answered 9000".into());
    }
    Verdict::Pass
}

fn wrong_slot(card: &mut Card) -> Verdict {
    let (_, sw) = step!(card.raw(&[0x00, 0x87, 0x11, 0x77, 0x06, 0x7C, 0x04, 0x82, 0x00, 0x81, 0x00]));
    expect(sw, &[0x6A86, 0x6A88, 0x6A80], "GENERAL AUTHENTICATE of key reference 77, which PIV does not define")
}

fn oversized_pin(card: &mut Card) -> Verdict {
    // A try this spends must be given back: only with the PIN at hand and two tries left.
    tried!(support::spendable_pin(card));
    let before = tried!(support::pin_status(card));
    // An extended APDU with 300 bytes of "PIN".
    let mut apdu = vec![0x00, 0x20, 0x00, 0x80, 0x00, 0x01, 0x2C];
    apdu.extend([0x31; 300]);
    let (_, sw) = step!(tried!(card.send_secret(Use::Risk(Secret::Pin), &apdu)));
    let after = tried!(support::pin_status(card));
    if sw.0 == 0x9000 {
        return Verdict::Fail("a 300-byte PIN was accepted".into());
    }
    if after != before {
        return Verdict::Fail(format!("a 300-byte PIN spent a try ({before:04X} -> {after:04X})"));
    }
    Verdict::Pass
}

fn chained_verify(card: &mut Card) -> Verdict {
    // A try this spends must be given back: only with the PIN at hand and two tries left.
    tried!(support::spendable_pin(card));
    let before = tried!(support::pin_status(card));
    let mut apdu = vec![0x10, 0x20, 0x00, 0x80, 0x08];
    apdu.extend([0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0xFF, 0xFF]);
    step!(tried!(card.send_secret(Use::Risk(Secret::Pin), &apdu)));
    // Whatever the card makes of it (a piece awaiting the rest, or a refusal), a piece of a
    // chain is not a PIN to count. An unrelated command ends the chain.
    let _ = card.raw(&[0x00, 0x02, 0x00, 0x00]);
    let after = tried!(support::pin_status(card));
    if after != before {
        return Verdict::Fail(format!("a chained VERIFY piece counted as a try ({before:04X} -> {after:04X})"));
    }
    Verdict::Pass
}

fn get_data_without_list(card: &mut Card) -> Verdict {
    let (_, sw) = step!(card.raw(&[0x00, 0xCB, 0x3F, 0xFF, 0x00]));
    if sw.0 == 0x9000 || sw.0 >> 8 == 0x61 {
        return Verdict::Fail(format!("GET DATA without a tag list answered {:04X}", sw.0));
    }
    Verdict::Pass
}

fn tag_out_of_range(card: &mut Card) -> Verdict {
    let (_, sw) = step!(card.raw(&[0x00, 0xCB, 0x3F, 0xFF, 0x05, 0x5C, 0x03, 0x5F, 0xC2, 0x00, 0x00]));
    if sw.0 == 0x9000 {
        return Verdict::Fail("GET DATA of 5FC200, outside PIV's object tags, answered 9000".into());
    }
    Verdict::Pass
}

fn le_respected(card: &mut Card) -> Verdict {
    // The CHUID is longer than 16 bytes on every PIV card: Le 16 must not bring more.
    let mut apdu = support::get_data_apdu(0x5FC102);
    if let Some(le) = apdu.last_mut() {
        *le = 0x10;
    }
    let (resp, sw) = step!(card.raw(&apdu));
    if sw == Sw::FILE_NOT_FOUND {
        return Verdict::NotSupported("no CHUID to read".into());
    }
    if resp.len() > 16 {
        return Verdict::Fail(format!(
            "GET DATA with Le 16 was answered with {} bytes ({:04X}): Le ignored",
            resp.len(),
            sw.0
        ));
    }
    Verdict::Pass
}

pub const CHECKS: &[Check] = &[
    Check {
        id: "PIV-ROBUST-001",
        title: "an unknown instruction is 6D00",
        clause: "ISO 7816-4 §5.1.3 (6D00 instruction not supported; meanings only, no shall)",
        family: Family::Robustness,
        severity: Severity::Should,
        destructive: false,
        run: unknown_ins,
    },
    Check {
        id: "PIV-ROBUST-002",
        title: "an invalid class byte is 6E00",
        clause: "ISO 7816-4 §5.4.1",
        family: Family::Robustness,
        severity: Severity::Should,
        destructive: false,
        run: unknown_class,
    },
    Check {
        id: "PIV-ROBUST-003",
        title: "secure messaging, which PIV does not use here, is refused",
        clause: "ISO 7816-4 §10",
        family: Family::Robustness,
        severity: Severity::Should,
        destructive: false,
        run: secure_messaging,
    },
    Check {
        id: "PIV-ROBUST-004",
        title: "an APDU shorter than its Lc is 6700",
        clause: "ISO 7816-4 §5.1",
        family: Family::Robustness,
        severity: Severity::Should,
        destructive: false,
        run: missing_data,
    },
    Check {
        id: "PIV-ROBUST-005",
        title: "a truncated dynamic authentication template is refused",
        clause: "SP 800-73-4 Part 2 §3.2.4 (status word table; no shall for a malformed template)",
        family: Family::Robustness,
        severity: Severity::Should,
        destructive: false,
        run: malformed_template,
    },
    Check {
        id: "PIV-ROBUST-006",
        title: "refused commands leave the PIN's state as it was",
        clause: "ISO 7816-4 §5.1; SP 800-73-4 Part 2 §3.2.1, §3.2.2 allow a malformed PIN to spend a try (63CX)",
        family: Family::Robustness,
        severity: Severity::Should,
        destructive: false,
        run: state_unchanged,
    },
    Check {
        id: "PIV-ROBUST-007",
        title: "GENERAL AUTHENTICATE with an algorithm the slot does not hold is refused",
        clause: "SP 800-73-4 Part 2 §3.2.4 (status word table)",
        family: Family::Robustness,
        severity: Severity::Should,
        destructive: false,
        run: unknown_algorithm,
    },
    Check {
        id: "PIV-ROBUST-008",
        title: "GENERAL AUTHENTICATE of an undefined key reference is refused",
        clause: "SP 800-73-4 Part 2 §3.2.4",
        family: Family::Robustness,
        severity: Severity::Should,
        destructive: false,
        run: wrong_slot,
    },
    Check {
        id: "PIV-ROBUST-009",
        title: "an oversized PIN (300 bytes, extended) is refused and spends no try",
        clause: "ISO 7816-4 §5.1; SP 800-73-4 Part 2 §2.4.3",
        family: Family::Robustness,
        severity: Severity::Should,
        destructive: false,
        run: oversized_pin,
    },
    Check {
        id: "PIV-ROBUST-010",
        title: "a chained piece of VERIFY does not spend a PIN try",
        clause: "ISO 7816-4 §5.1.1.1",
        family: Family::Robustness,
        severity: Severity::Should,
        destructive: false,
        run: chained_verify,
    },
    Check {
        id: "PIV-ROBUST-011",
        title: "GET DATA without a tag list is refused",
        clause: "SP 800-73-4 Part 2 §3.1.2",
        family: Family::Robustness,
        severity: Severity::Should,
        destructive: false,
        run: get_data_without_list,
    },
    Check {
        id: "PIV-ROBUST-012",
        title: "GET DATA of a tag outside PIV's range is refused",
        clause: "SP 800-73-4 Part 1 Table 3, Part 2 §3.1.2",
        family: Family::Robustness,
        severity: Severity::Should,
        destructive: false,
        run: tag_out_of_range,
    },
    Check {
        id: "PIV-ROBUST-013",
        title: "an answer never carries more bytes than Le asked for",
        clause: "ISO/IEC 7816-4:2005 §5.1 Table 1: response data field Nr at most Ne",
        family: Family::Robustness,
        severity: Severity::Must,
        destructive: false,
        run: le_respected,
    },
];
