//! The checks, one module per family. Each is a plain function from the card (fresh: reset
//! and PIV selected) to a verdict; the catalog entries beside them say what they assert.
//! What the families share (status-word judges, APDU builders, the `step!`/`tried!` macros)
//! is in [`support`].

mod generate;
mod mgmt;
mod objects;
mod pinmgmt;
mod putdata;
mod robust;
mod select;
mod sign;
mod support;
mod verify;
mod yubico;

use crate::catalog::Check;

/// The catalog, family by family.
const ALL: &[&[Check]] = &[
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

/// Every check, family by family, in a stable order.
pub fn catalog() -> Vec<Check> {
    let mut all = Vec::new();
    for family in ALL {
        all.extend_from_slice(family);
    }
    all
}
