//! What the check families share: judging a status word, building the APDUs they send, the
//! PIN's state, and the `step!`/`tried!` macros (a `?` whose failure is the verdict).

use proto::status::Sw;

use crate::card::Card;
use crate::catalog::Verdict;

/// Pass when `sw` is one of `want`, else a failure naming what came.
pub(super) fn expect(sw: Sw, want: &[u16], what: &str) -> Verdict {
    if want.contains(&sw.0) {
        return Verdict::Pass;
    }
    let wanted: Vec<String> = want.iter().map(|w| format!("{w:04X}")).collect();
    Verdict::Fail(format!("{what}: answered {:04X}, expected {}", sw.0, wanted.join(" or ")))
}

/// Pass when the key refused (any status word but success): where SP 800-73-4 requires a
/// command be refused but mandates no one status word for it (6982 is usual; a card that
/// checks the object or key reference first answers 6A8x), the status word is in the report.
pub(super) fn refused(sw: Sw, what: &str) -> Verdict {
    if sw.0 == 0x9000 || sw.0 >> 8 == 0x61 {
        return Verdict::Fail(format!("{what}: answered {:04X}, not a refusal", sw.0));
    }
    Verdict::Pass
}

/// `?` for steps whose failure is the verdict.
macro_rules! step {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return crate::catalog::Verdict::Fail(e.to_string()),
        }
    };
}
pub(super) use step;

/// `?` for steps that give their own verdict (`Result<T, Verdict>`).
macro_rules! tried {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(v) => return v,
        }
    };
}
pub(super) use tried;

/// A short command APDU (CLA 00), through proto's encoder.
pub(super) fn apdu(ins: u8, p1: u8, p2: u8, data: &[u8], le: Option<usize>) -> Vec<u8> {
    proto::apdu::CommandApdu::new(0x00, ins, p1, p2, data, le).to_vec()
}

/// A GET DATA command for object `tag` (3 bytes).
pub(super) fn get_data_apdu(tag: u32) -> Vec<u8> {
    let t = tag.to_be_bytes();
    apdu(0xCB, 0x3F, 0xFF, &[0x5C, 0x03, t[1], t[2], t[3]], Some(256))
}

/// The status word of VERIFY without data: 63Cx (tries left), 9000 (verified) or 6983.
pub(super) fn pin_status(card: &mut Card) -> Result<u16, Verdict> {
    card.raw(&[0x00, 0x20, 0x00, 0x80]).map(|(_, sw)| sw.0).map_err(Verdict::fail)
}

/// Whether a try may be risked: the PIN is known to be right and two or more tries are left.
pub(super) fn spendable_pin(card: &mut Card) -> Result<(), Verdict> {
    card.pin_usable()?;
    match pin_status(card)? {
        w if w & 0xFFF0 == 0x63C0 && w & 0x0F >= 2 => Ok(()),
        0x9000 => Ok(()),
        w => Err(Verdict::Skipped(format!("the PIN has fewer than two tries left ({w:04X}): none is risked"))),
    }
}

/// A PIN that is not the given one (for counting checks).
pub(super) fn wrong_pin(right: &str) -> &'static str {
    if right == "999999" {
        "888888"
    } else {
        "999999"
    }
}
