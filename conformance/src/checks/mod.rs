//! The checks, one module per family. Each is a plain function from the card (fresh: reset
//! and PIV selected) to a verdict; the catalog entries beside them say what they assert.

mod generate;
mod mgmt;
mod objects;
mod pinmgmt;
mod putdata;
mod robust;
mod select;
mod sign;
mod verify;
mod yubico;

use proto::status::Sw;

use crate::catalog::Check;
use crate::report::Verdict;

/// The catalog, family by family.
pub const ALL: &[&[Check]] = &[
    select::CHECKS,
    objects::CHECKS,
    verify::CHECKS,
    pinmgmt::CHECKS,
    mgmt::CHECKS,
    sign::CHECKS,
    putdata::CHECKS,
    generate::CHECKS,
    robust::CHECKS,
    yubico::CHECKS,
];

/// Pass when `sw` is one of `want`, else a failure naming what came.
fn expect(sw: Sw, want: &[u16], what: &str) -> Verdict {
    if want.contains(&sw.0) {
        return Verdict::Pass;
    }
    let wanted: Vec<String> = want.iter().map(|w| format!("{w:04X}")).collect();
    Verdict::Fail(format!("{what}: answered {:04X}, expected {}", sw.0, wanted.join(" or ")))
}

/// `?` for steps whose failure is the verdict.
macro_rules! step {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return crate::report::Verdict::Fail(e.to_string()),
        }
    };
}
pub(crate) use step;

/// `?` for steps that give their own verdict (`Result<T, Verdict>`).
macro_rules! tried {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(v) => return v,
        }
    };
}
pub(crate) use tried;

/// A GET DATA command for object `tag` (3 bytes).
fn get_data_apdu(tag: u32) -> Vec<u8> {
    let t = tag.to_be_bytes();
    vec![0x00, 0xCB, 0x3F, 0xFF, 0x05, 0x5C, 0x03, t[1], t[2], t[3], 0x00]
}

/// A PIN as VERIFY sends it: the digits, padded with FF to 8 bytes.
fn pin_block(pin: &[u8]) -> Vec<u8> {
    let mut b = pin.to_vec();
    b.resize(8, 0xFF);
    b
}

/// A PIN that is not the given one (for counting checks).
fn wrong_pin(right: &str) -> &'static str {
    if right == "999999" {
        "888888"
    } else {
        "999999"
    }
}
