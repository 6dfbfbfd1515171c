//! CHANGE REFERENCE DATA and RESET RETRY COUNTER for the PIN and the PUK. Every change is put
//! back: the PIN changed is changed again to the one given, the PIN unblocked is set to it.

use super::support::{self, expect, step, tried, wrong_pin};
use crate::card::{pin_block, Answer, Card, CardError};
use crate::catalog::{Check, Family, Severity, Verdict};
use crate::guard::{Secret, Use};

/// CHANGE REFERENCE DATA or RESET RETRY COUNTER (`ins`) of `p2` with two PIN blocks.
fn apdu(ins: u8, p2: u8, a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut data = pin_block(a);
    data.extend(pin_block(b));
    support::apdu(ins, 0x00, p2, &data, None)
}

/// Send under the guard's rules (see [`crate::guard`]).
fn send(card: &mut Card, how: Use, apdu: &[u8]) -> Result<Result<Answer, CardError>, Verdict> {
    card.send_secret(how, apdu)
}

/// The given PIN still verifies (nothing changed it).
fn pin_still_works(card: &mut Card) -> Result<(), Verdict> {
    card.fresh().map_err(Verdict::fail)?;
    card.verify_pin()
}

/// A change the key took: put the given value back at once, or say what it is now.
fn put_back(card: &mut Card, s: Secret, now: &str) -> Result<(), Verdict> {
    card.put_back(s, now).map_err(Verdict::fail)
}

fn change_wrong_old(card: &mut Card) -> Verdict {
    tried!(card.pin_usable());
    let before = tried!(support::pin_status(card));
    // Three: the wrong old PIN spends one, and a key that took the new PIN while refusing
    // costs one more when the given PIN is tried after it.
    if before & 0xFFF0 != 0x63C0 || before & 0x0F < 3 {
        return Verdict::Skipped(format!("fewer than three PIN tries left ({before:04X})"));
    }
    let pin = card.secrets.pin.expose().to_string();
    let new = if pin == "13572468" { "24681357" } else { "13572468" };
    let answer =
        tried!(send(card, Use::Risk(Secret::Pin), &apdu(0x24, 0x80, wrong_pin(&pin).as_bytes(), new.as_bytes())));
    if let Ok((_, sw)) = &answer {
        if sw.0 == 0x9000 {
            tried!(put_back(card, Secret::Pin, new));
            return Verdict::Fail("CHANGE REFERENCE DATA accepted a wrong old PIN (the PIN was put back)".into());
        }
    }
    if let Err(v) = pin_still_works(card) {
        // Refused now: a key may have taken the new PIN while saying no.
        return match card.recover_pin(new) {
            Ok(()) => Verdict::Fail(format!(
                "CHANGE REFERENCE DATA with a wrong old PIN changed the PIN to {new} while refusing it (put back)"
            )),
            Err(e) => Verdict::Fail(format!("{}; {e}", v.detail())),
        };
    }
    let (_, sw) = step!(answer);
    expect(sw, &[before - 1], "CHANGE REFERENCE DATA with a wrong old PIN (one try spent)")
}

fn change_short_new(card: &mut Card) -> Verdict {
    tried!(card.pin_usable());
    let pin = card.secrets.pin.expose().to_string();
    let answer = tried!(send(card, Use::Right(Secret::Pin), &apdu(0x24, 0x80, pin.as_bytes(), b"12345")));
    if matches!(&answer, Ok((_, sw)) if sw.0 == 0x9000) {
        // The key took a 5-digit PIN: the given one back before anything else.
        tried!(put_back(card, Secret::Pin, "12345"));
    }
    let (_, sw) = step!(answer);
    let v = expect(sw, &[0x6A80], "CHANGE REFERENCE DATA to a 5-digit PIN");
    tried!(pin_still_works(card));
    v
}

fn change_and_back(card: &mut Card) -> Verdict {
    tried!(card.pin_usable());
    let pin = card.secrets.pin.expose().to_string();
    let other = if pin == "13572468" { "24681357" } else { "13572468" };
    let answer = tried!(send(card, Use::Right(Secret::Pin), &apdu(0x24, 0x80, pin.as_bytes(), other.as_bytes())));
    let (_, sw) = step!(answer);
    if sw.0 != 0x9000 {
        return Verdict::Fail(format!("CHANGE REFERENCE DATA with the right PIN answered {:04X}", sw.0));
    }
    // Back at once: CHANGE REFERENCE DATA from the new PIN, which the key accepts only if the
    // new one is its PIN now.
    if let Err(e) = card.put_back(Secret::Pin, other) {
        return Verdict::Fail(format!("the new PIN did not change back: {e}"));
    }
    tried!(pin_still_works(card));
    Verdict::Pass
}

fn puk_wrong(card: &mut Card) -> Verdict {
    tried!(card.puk_usable());
    tried!(card.pin_usable());
    let puk = card.secrets.puk.expose().to_string();
    let pin = card.secrets.pin.expose().to_string();
    let wrong = if puk == "87654321" { "11223344" } else { "87654321" };
    let (_, sw) =
        step!(tried!(send(card, Use::Risk(Secret::Puk), &apdu(0x2C, 0x80, wrong.as_bytes(), pin.as_bytes()))));
    // The right PUK to itself resets its count.
    if let Err(e) = card.give_back(Secret::Puk) {
        return Verdict::Fail(format!("the right PUK after a wrong one: {e}"));
    }
    if sw.0 == 0x9000 {
        return Verdict::Fail("RESET RETRY COUNTER accepted a wrong PUK".into());
    }
    if sw.0 & 0xFFF0 == 0x63C0 {
        Verdict::Pass
    } else {
        Verdict::Fail(format!("a wrong PUK answered {:04X}, not 63Cx", sw.0))
    }
}

fn unblock_sets_pin(card: &mut Card) -> Verdict {
    tried!(card.puk_usable());
    tried!(card.pin_usable());
    let puk = card.secrets.puk.expose().to_string();
    let pin = card.secrets.pin.expose().to_string();
    let (_, sw) = step!(tried!(send(card, Use::Right(Secret::Puk), &apdu(0x2C, 0x80, puk.as_bytes(), pin.as_bytes()))));
    let v = expect(sw, &[0x9000], "RESET RETRY COUNTER with the right PUK");
    if v != Verdict::Pass {
        return v;
    }
    tried!(pin_still_works(card));
    step!(card.fresh());
    match tried!(support::pin_status(card)) {
        w if w & 0xFFF0 == 0x63C0 && w & 0x0F >= 1 => Verdict::Pass,
        w => Verdict::Fail(format!("after the reset the PIN's count reads {w:04X}")),
    }
}

fn puk_short_new(card: &mut Card) -> Verdict {
    tried!(card.puk_usable());
    tried!(card.pin_usable());
    let puk = card.secrets.puk.expose().to_string();
    let answer = tried!(send(card, Use::Right(Secret::Puk), &apdu(0x2C, 0x80, puk.as_bytes(), b"12345")));
    if matches!(&answer, Ok((_, sw)) if sw.0 == 0x9000) {
        tried!(put_back(card, Secret::Pin, "12345"));
    }
    let (_, sw) = step!(answer);
    let v = expect(sw, &[0x6A80], "RESET RETRY COUNTER to a 5-digit PIN");
    tried!(pin_still_works(card));
    v
}

fn puk_change_and_back(card: &mut Card) -> Verdict {
    tried!(card.puk_usable());
    let puk = card.secrets.puk.expose().to_string();
    let other = if puk == "86427531" { "97531864" } else { "86427531" };
    let (_, sw) =
        step!(tried!(send(card, Use::Right(Secret::Puk), &apdu(0x24, 0x81, puk.as_bytes(), other.as_bytes()))));
    if matches!(sw.0, 0x6A88 | 0x6A81 | 0x6A86) {
        // Changing the PUK is optional (SP 800-73-4 Part 2 §3.2.2).
        return Verdict::NotSupported(format!("the key does not change its PUK ({:04X})", sw.0));
    }
    if sw.0 != 0x9000 {
        return Verdict::Fail(format!("CHANGE REFERENCE DATA of the PUK with the right PUK answered {:04X}", sw.0));
    }
    // The old PUK no longer opens it (a wrong try now, refunded by the change back); the
    // change back comes whatever that answered, or if it did not answer.
    let old = card.send_secret(Use::Risk(Secret::Puk), &apdu(0x24, 0x81, puk.as_bytes(), puk.as_bytes()));
    // (A key that took the old PUK again has it back already.)
    let took_old = matches!(&old, Ok(Ok((_, sw))) if sw.0 == 0x9000);
    if !took_old {
        if let Err(e) = card.put_back(Secret::Puk, other) {
            return Verdict::Fail(format!("the PUK did not change back: {e}"));
        }
    }
    let (_, old) = step!(tried!(old));
    if old.0 == 0x9000 {
        return Verdict::Fail("after the change the old PUK still opened it".into());
    }
    if old.0 & 0xFFF0 == 0x63C0 {
        Verdict::Pass
    } else {
        Verdict::Fail(format!("the old PUK after the change answered {:04X}, not 63Cx", old.0))
    }
}

fn puk_lockout(card: &mut Card) -> Verdict {
    if !card.throwaway {
        // A blocked PUK stays blocked: only a reset of the whole key undoes it.
        return Verdict::Skipped("blocks the PUK for good: only on a key made for the run (--sim)".into());
    }
    tried!(card.puk_usable());
    tried!(card.pin_usable());
    let puk = card.secrets.puk.expose().to_string();
    let pin = card.secrets.pin.expose().to_string();
    let wrong = if puk == "87654321" { "11223344" } else { "87654321" };
    let mut said = Vec::new();
    loop {
        let (_, sw) =
            step!(tried!(send(card, Use::Exhaust(Secret::Puk), &apdu(0x2C, 0x80, wrong.as_bytes(), pin.as_bytes()))));
        said.push(sw.0);
        if sw.0 == 0x6983 || sw.0 == 0x63C0 || said.len() >= 16 {
            break;
        }
    }
    let (_, right) =
        step!(tried!(send(card, Use::Exhaust(Secret::Puk), &apdu(0x2C, 0x80, puk.as_bytes(), pin.as_bytes()))));
    card.stop(Secret::Puk, "blocked on purpose (a key made for the run)".into());
    if right.0 == 0x9000 {
        return Verdict::Fail(format!("after wrong PUKs ({said:04X?}) the right PUK still reset the PIN"));
    }
    expect(right, &[0x6983], &format!("the right PUK once blocked (after {said:04X?})"))
}

fn wrong_reference(card: &mut Card) -> Verdict {
    // Old and new are the key's own PIN: a card that took 9B for its PIN changes nothing.
    tried!(support::spendable_pin(card));
    let pin = card.secrets.pin.expose().as_bytes().to_vec();
    let (_, sw) = step!(tried!(send(card, Use::Risk(Secret::Pin), &apdu(0x24, 0x9B, &pin, &pin))));
    expect(sw, &[0x6A88, 0x6A86, 0x6A80], "CHANGE REFERENCE DATA of key reference 9B (not a PIN)")
}

pub const CHECKS: &[Check] = &[
    Check {
        id: "PIV-CHANGE-001",
        title: "CHANGE REFERENCE DATA with a wrong old PIN is refused and spends one try",
        clause: "SP 800-73-4 Part 2 §3.2.2",
        family: Family::PinMgmt,
        severity: Severity::Must,
        destructive: false,
        run: change_wrong_old,
    },
    Check {
        id: "PIV-CHANGE-002",
        title: "a new PIN shorter than 6 digits is 6A80 and the PIN stays",
        clause: "SP 800-73-4 Part 2 §3.2.2, §2.4.3",
        family: Family::PinMgmt,
        severity: Severity::Must,
        destructive: false,
        run: change_short_new,
    },
    Check {
        id: "PIV-CHANGE-003",
        title: "the PIN changes, the new one verifies, and it changes back",
        clause: "SP 800-73-4 Part 2 §3.2.2",
        family: Family::PinMgmt,
        severity: Severity::Must,
        destructive: false,
        run: change_and_back,
    },
    Check {
        id: "PIV-CHANGE-004",
        title: "CHANGE REFERENCE DATA of a key reference that is no PIN is refused",
        clause: "SP 800-73-4 Part 2 §3.2.2",
        family: Family::PinMgmt,
        severity: Severity::Should,
        destructive: false,
        run: wrong_reference,
    },
    Check {
        id: "PIV-RESET-001",
        title: "RESET RETRY COUNTER with a wrong PUK is refused with the PUK's tries (63Cx)",
        clause: "SP 800-73-4 Part 2 §3.2.3",
        family: Family::PinMgmt,
        severity: Severity::Must,
        destructive: false,
        run: puk_wrong,
    },
    Check {
        id: "PIV-RESET-002",
        title: "RESET RETRY COUNTER with the right PUK sets the PIN and its tries",
        clause: "SP 800-73-4 Part 2 §3.2.3",
        family: Family::PinMgmt,
        severity: Severity::Must,
        destructive: false,
        run: unblock_sets_pin,
    },
    Check {
        id: "PIV-RESET-003",
        title: "RESET RETRY COUNTER to a PIN shorter than 6 digits is 6A80",
        clause: "SP 800-73-4 Part 2 §3.2.3, §2.4.3",
        family: Family::PinMgmt,
        severity: Severity::Must,
        destructive: false,
        run: puk_short_new,
    },
    Check {
        id: "PIV-CHANGE-005",
        title: "CHANGE REFERENCE DATA of the PUK changes it (and back); the old PUK is refused",
        clause:
            "SP 800-73-4 Part 2 §3.2.2 (changing the PUK is optional; when supported a wrong old PUK shall get 63CX)",
        family: Family::PinMgmt,
        severity: Severity::Must,
        destructive: false,
        run: puk_change_and_back,
    },
    Check {
        id: "PIV-RESET-004",
        title: "wrong PUKs block it; a blocked PUK refuses even the right PUK (6983)",
        clause: "SP 800-73-4 Part 2 §3.2.3",
        family: Family::PinMgmt,
        severity: Severity::Must,
        destructive: true,
        run: puk_lockout,
    },
];
