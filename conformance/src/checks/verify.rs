//! VERIFY of the PIV Card Application PIN (key reference 80).

use super::support::{self, expect, step, tried, wrong_pin};
use crate::card::{pin_block, Card, CardError};
use crate::catalog::{Check, Family, Severity, Verdict};
use crate::guard::{Secret, Use};

const STATUS: [u8; 4] = [0x00, 0x20, 0x00, 0x80];

fn verify_apdu(p1: u8, p2: u8, data: &[u8]) -> Vec<u8> {
    support::apdu(0x20, p1, p2, data, None)
}

/// The tries left, read without spending one; a verdict when the key cannot say.
fn tries(card: &mut Card) -> Result<u8, Verdict> {
    match support::pin_status(card)? {
        0x6983 => Ok(0),
        w if w & 0xFFF0 == 0x63C0 => Ok((w & 0x0F) as u8),
        w => Err(Verdict::Fail(format!("VERIFY without data answered {w:04X}, not 63Cx"))),
    }
}

/// Spending a wrong try needs the right PIN to put it back, and at least two tries left.
fn spendable(card: &mut Card) -> Result<u8, Verdict> {
    card.pin_usable()?;
    let n = tries(card)?;
    if n < 2 {
        return Err(Verdict::Skipped(format!("only {n} tries left: a wrong PIN is not tried")));
    }
    Ok(n)
}

/// A VERIFY that may spend a try (given back after the check).
fn risk(card: &mut Card, apdu: &[u8]) -> Result<Result<crate::card::Answer, CardError>, Verdict> {
    card.send_secret(Use::Risk(Secret::Pin), apdu)
}

/// A wrong PIN's block.
fn wrong_block(card: &Card) -> Vec<u8> {
    pin_block(wrong_pin(card.secrets.pin.expose()).as_bytes())
}

/// The right PIN (known right): resets the count.
fn restore(card: &mut Card) -> Result<(), Verdict> {
    card.verify_pin()
}

fn status_query(card: &mut Card) -> Verdict {
    let first = tried!(tries(card));
    let second = tried!(tries(card));
    if first != second {
        return Verdict::Fail(format!("asking the count spent a try ({first} then {second})"));
    }
    Verdict::Pass
}

fn decrement(card: &mut Card) -> Verdict {
    let before = tried!(spendable(card));
    let wrong = wrong_block(card);
    let (_, sw) = step!(tried!(risk(card, &verify_apdu(0x00, 0x80, &wrong))));
    let said = if sw.0 & 0xFFF0 == 0x63C0 { Some((sw.0 & 0x0F) as u8) } else { None };
    let after = tried!(tries(card));
    if let Err(v) = restore(card) {
        return v;
    }
    match said {
        Some(n) if n == before - 1 && after == before - 1 => Verdict::Pass,
        Some(n) => Verdict::Fail(format!("{before} tries, one wrong PIN: the key said {n} left and counts {after}")),
        None => Verdict::Fail(format!("a wrong PIN answered {:04X}, not 63C{:X}", sw.0, before - 1)),
    }
}

fn reset_on_success(card: &mut Card) -> Verdict {
    let before = tried!(spendable(card));
    let wrong = wrong_block(card);
    step!(tried!(risk(card, &verify_apdu(0x00, 0x80, &wrong))));
    if let Err(v) = restore(card) {
        return v;
    }
    step!(card.fresh());
    match tries(card) {
        Ok(n) if n >= before => Verdict::Pass,
        Ok(n) => Verdict::Fail(format!("the right PIN after a wrong one left {n} tries, not {before}")),
        Err(v) => v,
    }
}

fn verified_status(card: &mut Card) -> Verdict {
    if let Err(v) = restore(card) {
        return v;
    }
    let (_, sw) = step!(card.raw(&STATUS));
    expect(sw, &[0x9000], "VERIFY without data after the right PIN")
}

fn short_pin(card: &mut Card) -> Verdict {
    let before = tried!(spendable(card));
    let (_, sw) = step!(tried!(risk(card, &verify_apdu(0x00, 0x80, &pin_block(b"12345")))));
    let after = tried!(tries(card));
    // Either is conformant: 6A80 and no try spent, or 63CX with one try spent (given back).
    match (sw.0, after) {
        (0x6A80, a) if a == before => Verdict::Pass,
        (w, a) if w & 0xFFF0 == 0x63C0 && a + 1 == before && u16::from(a) == w & 0x0F => Verdict::Pass,
        (w, a) => Verdict::Fail(format!(
            "VERIFY with a PIN of 5 digits answered {w:04X} and left {a} of {before} tries: not 6A80 with none spent, nor 63C{:X} with one",
            before - 1
        )),
    }
}

fn bad_length(card: &mut Card) -> Verdict {
    let before = tried!(spendable(card));
    let (_, sw) = step!(tried!(risk(card, &verify_apdu(0x00, 0x80, &[0x31; 7]))));
    let after = tried!(tries(card));
    if after != before {
        return Verdict::Fail(format!("a 7-byte PIN block spent a try ({before} -> {after})"));
    }
    expect(sw, &[0x6A80, 0x6700], "VERIFY with a 7-byte PIN block")
}

fn logout(card: &mut Card) -> Verdict {
    if let Err(v) = restore(card) {
        return v;
    }
    let (_, sw) = step!(card.raw(&[0x00, 0x20, 0xFF, 0x80]));
    let v = expect(sw, &[0x9000], "VERIFY P1=FF (reset the PIN's security status)");
    if v != Verdict::Pass {
        return v;
    }
    let (_, sw) = step!(card.raw(&STATUS));
    if sw.0 & 0xFFF0 == 0x63C0 {
        Verdict::Pass
    } else {
        Verdict::Fail(format!("after P1=FF the PIN still counts as verified ({:04X})", sw.0))
    }
}

fn wrong_reference(card: &mut Card) -> Verdict {
    // Not the PIN: a key that took 8F for its PIN spends a try, which is given back.
    tried!(spendable(card));
    let wrong = wrong_block(card);
    let (_, sw) = step!(tried!(risk(card, &verify_apdu(0x00, 0x8F, &wrong))));
    expect(sw, &[0x6A88, 0x6A86], "VERIFY of key reference 8F, which PIV does not define")
}

fn lockout(card: &mut Card) -> Verdict {
    tried!(card.pin_usable());
    tried!(card.puk_usable());
    let mut left = tried!(tries(card));
    let wrong = wrong_block(card);
    let mut said = Vec::new();
    while left > 0 && said.len() < 16 {
        let (_, sw) = step!(tried!(card.send_secret(Use::Exhaust(Secret::Pin), &verify_apdu(0x00, 0x80, &wrong))));
        said.push(sw.0);
        left = tried!(tries(card));
    }
    // Blocked: even the right PIN is refused with 6983 (not a refusal of the PIN given).
    let block = pin_block(card.secrets.pin.expose().as_bytes());
    let (_, right) = step!(tried!(card.send_secret(Use::Exhaust(Secret::Pin), &verify_apdu(0x00, 0x80, &block))));
    // Put it back: RESET RETRY COUNTER with the PUK, to the same PIN.
    let mut data = pin_block(card.secrets.puk.expose().as_bytes());
    data.extend(&block);
    let (_, restored) =
        step!(tried!(card.send_secret(Use::Right(Secret::Puk), &support::apdu(0x2C, 0x00, 0x80, &data, None))));
    if restored.0 != 0x9000 {
        card.stop(Secret::Pin, format!("left blocked: unblocking with the PUK answered {:04X}", restored.0));
        return Verdict::Fail(format!("unblocking with the PUK answered {:04X}: the PIN stays blocked", restored.0));
    }
    if let Err(v) = restore(card) {
        return v;
    }
    match said.last() {
        Some(0x63C0) | Some(0x6983) if right.0 == 0x6983 => Verdict::Pass,
        _ if right.0 != 0x6983 => {
            Verdict::Fail(format!("with no tries left the right PIN answered {:04X}, not 6983", right.0))
        }
        last => Verdict::Fail(format!("the last wrong PIN answered {last:04X?}, not 63C0 or 6983")),
    }
}

/// A try is written down before the PIN is compared. With the power cut at the card's next
/// write, VERIFY of the right PIN must get no answer (a card that compares first writes only
/// for a wrong PIN, so a host that cuts the power when it sees a write guesses for free), and
/// afterwards the count is one a power loss may leave: as before, or one less.
fn spent_before_compare(card: &mut Card) -> Verdict {
    let before = tried!(spendable(card));
    if !card.cut_power_at_next_write() {
        return Verdict::NotSupported(
            "needs a key whose power the suite can cut (--sim, or a served key with --power DIR)".into(),
        );
    }
    let block = pin_block(card.secrets.pin.expose().as_bytes());
    // A try may be lost with the power: a risk, given back after the check.
    let answer = tried!(risk(card, &verify_apdu(0x00, 0x80, &block)));
    card.cancel_power_cut();
    if let Ok((_, sw)) = answer {
        return Verdict::Fail(format!(
            "with the power cut at the card's next write, VERIFY of the right PIN still answered {:04X}: \
             the key compares the PIN before it writes the try down (a cut timed on that write is a free guess)",
            sw.0
        ));
    }
    // A key in a reader comes back from the power loss as a new insertion: give it a moment.
    let back = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while let Err(e) = card.fresh() {
        if std::time::Instant::now() >= back {
            return Verdict::Fail(format!("the key did not come back from the power loss: {e}"));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let after = tried!(tries(card));
    if let Err(v) = restore(card) {
        return v;
    }
    if after == before || after + 1 == before {
        Verdict::Pass
    } else {
        Verdict::Fail(format!("after the power loss the PIN has {after} tries, not {before} or {}", before - 1))
    }
}

/// SELECT starts no new count: a wrong PIN stays spent across it.
fn select_keeps_count(card: &mut Card) -> Verdict {
    let before = tried!(spendable(card));
    let wrong = wrong_block(card);
    step!(tried!(risk(card, &verify_apdu(0x00, 0x80, &wrong))));
    let (_, sw) = step!(card.raw(&support::apdu(0xA4, 0x04, 0x00, &proto::piv::PIV_AID, Some(256))));
    let after = tried!(tries(card));
    if let Err(v) = restore(card) {
        return v;
    }
    if sw.0 != 0x9000 {
        return Verdict::Fail(format!("SELECT of PIV answered {:04X}", sw.0));
    }
    if after == before - 1 {
        Verdict::Pass
    } else {
        Verdict::Fail(format!(
            "{before} tries, one wrong PIN, then SELECT: the key counts {after}, so SELECT gives spent tries back"
        ))
    }
}

fn wrong_p1(card: &mut Card) -> Verdict {
    // Not the PIN: a key that ignores P1 spends a try, which is given back.
    tried!(spendable(card));
    let wrong = wrong_block(card);
    let (_, sw) = step!(tried!(risk(card, &verify_apdu(0x01, 0x80, &wrong))));
    expect(sw, &[0x6A86], "VERIFY with P1 other than 00 or FF")
}

fn puk_not_verifiable(card: &mut Card) -> Verdict {
    // The right PUK, known to be right: a card that counted VERIFY 81 as a PUK try spends none.
    tried!(card.puk_usable());
    let block = pin_block(card.secrets.puk.expose().as_bytes());
    let (_, sw) = step!(tried!(card.send_secret(Use::Right(Secret::Puk), &verify_apdu(0x00, 0x81, &block))));
    if sw.0 == 0x9000 {
        return Verdict::Fail("VERIFY of the PUK (81) answered 9000: the PUK may only reset the PIN".into());
    }
    Verdict::Pass
}

pub const CHECKS: &[Check] = &[
    Check {
        id: "PIV-VERIFY-001",
        title: "VERIFY without data reports the tries left without spending one",
        clause: "SP 800-73-4 Part 2 §3.2.1 (VERIFY without data \"can be used\" to read the tries left)",
        family: Family::Verify,
        severity: Severity::Should,
        destructive: false,
        run: status_query,
    },
    Check {
        id: "PIV-VERIFY-002",
        title: "a wrong PIN spends one try and says how many are left (63Cx)",
        clause: "SP 800-73-4 Part 2 §3.2.1",
        family: Family::Verify,
        severity: Severity::Must,
        destructive: false,
        run: decrement,
    },
    Check {
        id: "PIV-VERIFY-003",
        title: "the right PIN resets the retry counter",
        clause: "SP 800-73-4 Part 2 §3.2.1",
        family: Family::Verify,
        severity: Severity::Must,
        destructive: false,
        run: reset_on_success,
    },
    Check {
        id: "PIV-VERIFY-004",
        title: "after the right PIN, VERIFY without data is 9000",
        clause: "SP 800-73-4 Part 2 §3.2.1 (VERIFY without data \"can\" say 9000 when verified)",
        family: Family::Verify,
        severity: Severity::Should,
        destructive: false,
        run: verified_status,
    },
    Check {
        id: "PIV-VERIFY-005",
        title: "a PIN shorter than 6 digits is 6A80 (no try spent) or 63CX (one try spent)",
        clause: "SP 800-73-4 Part 2 §3.2.1, §2.4.3: a PIN not of the format shall fail with 6A80 (no try spent) or 63CX (one try spent)",
        family: Family::Verify,
        severity: Severity::Must,
        destructive: false,
        run: short_pin,
    },
    Check {
        id: "PIV-VERIFY-006",
        title: "a PIN block that is not 8 bytes is refused and spends no try",
        clause: "SP 800-73-4 Part 2 §2.4.3",
        family: Family::Verify,
        severity: Severity::Should,
        destructive: false,
        run: bad_length,
    },
    Check {
        id: "PIV-VERIFY-007",
        title: "VERIFY P1=FF logs the PIN out",
        clause: "SP 800-73-4 Part 2 §3.2.1",
        family: Family::Verify,
        severity: Severity::Should,
        destructive: false,
        run: logout,
    },
    Check {
        id: "PIV-VERIFY-008",
        title: "VERIFY of an undefined key reference is refused",
        clause: "SP 800-73-4 Part 2 §3.2.1",
        family: Family::Verify,
        severity: Severity::Should,
        destructive: false,
        run: wrong_reference,
    },
    Check {
        id: "PIV-VERIFY-009",
        title: "wrong PINs block it at zero (6983 even for the right PIN); the PUK unblocks",
        clause: "SP 800-73-4 Part 2 §3.2.1, §3.2.3",
        family: Family::Verify,
        severity: Severity::Must,
        destructive: true,
        run: lockout,
    },
    Check {
        id: "PIV-VERIFY-010",
        title: "VERIFY with P1 other than 00 or FF is 6A86",
        clause: "SP 800-73-4 Part 2 §3.2.1",
        family: Family::Verify,
        severity: Severity::Should,
        destructive: false,
        run: wrong_p1,
    },
    Check {
        id: "PIV-VERIFY-011",
        title: "VERIFY of the PUK (key reference 81) is refused",
        clause: "SP 800-73-4 Part 2 §3.2.1",
        family: Family::Verify,
        severity: Severity::Should,
        destructive: false,
        run: puk_not_verifiable,
    },
    Check {
        id: "PIV-VERIFY-012",
        title: "the try is written before the PIN is compared (power cut at the card's next write)",
        clause: "ukey DESIGN (anti-tearing); not required by SP 800-73-4",
        family: Family::Verify,
        severity: Severity::Should,
        destructive: false,
        run: spent_before_compare,
    },
    Check {
        id: "PIV-VERIFY-013",
        title: "SELECT leaves the PIN's retry counter as it was",
        clause: "SP 800-73-4 Part 2 §3.2.1, §3.1.1",
        family: Family::Verify,
        severity: Severity::Must,
        destructive: false,
        run: select_keeps_count,
    },
];
