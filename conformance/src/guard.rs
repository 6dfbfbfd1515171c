//! The suite never costs a key a PIN or PUK try it does not give back, and never changes a
//! secret it does not put back, or the report says so. Three parts:
//!
//! - The gate: the transport under the suite refuses every APDU that carries a PIN or PUK
//!   (VERIFY, CHANGE REFERENCE DATA, RESET RETRY COUNTER with data) or resets them (Yubico's
//!   SET PIN RETRIES and RESET) unless [`crate::Card`] opened it for that one APDU. A check
//!   cannot send a secret by a path the rules below do not see.
//! - The rules ([`crate::Card::send_secret`]): the given secret is sent only once known right
//!   (found out once, on first need, and only where two or more tries are left); a value that
//!   may spend a try only with two or more left and the right one at hand to give it back; a
//!   right secret that is refused stops all further use of it in the run.
//! - The ledger: after each check the runner compares the tries with those before it, gives
//!   back what was spent ([`crate::tries`]), and writes down whatever it could not
//!   ([`Change`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;

/// The PIN or the PUK.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Secret {
    #[serde(rename = "PIN")]
    Pin,
    #[serde(rename = "PUK")]
    Puk,
}

impl Secret {
    pub fn name(self) -> &'static str {
        match self {
            Secret::Pin => "PIN",
            Secret::Puk => "PUK",
        }
    }
    /// The PIV key reference.
    pub fn reference(self) -> u8 {
        match self {
            Secret::Pin => 0x80,
            Secret::Puk => 0x81,
        }
    }
}

/// How an APDU uses a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// It carries the given secret, known right.
    Right(Secret),
    /// It may spend a try of the secret (a wrong or malformed value, on purpose): only with
    /// two or more tries left and the right one at hand, which the runner sends after the
    /// check to give the try back. (A PUK whose count the card cannot tell: only on a key
    /// made for the run, or with `--puk` typed for it.)
    Risk(Secret),
    /// It spends the secret's last tries on purpose (a lockout check): the PIN only with
    /// destructive checks allowed and the PUK known right to unblock it; the PUK, which
    /// nothing unblocks, only on a key made for the run.
    Exhaust(Secret),
}

/// What the run knows of a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Known {
    /// Not given (and the key is not one made for the run): never sent.
    NotGiven,
    /// Given, not needed yet.
    Untried,
    /// Found right.
    Right,
    /// Refused the one time it was tried (that try is spent for good).
    Wrong,
    /// Could not be tried: why.
    Untriable(String),
    /// Right before, refused since (or changed and not put back): not sent again.
    Stopped(String),
}

/// One thing the run did to a secret and did not undo, for the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub secret: Secret,
    /// The check during which it happened ("before the checks" for the first probe).
    pub during: String,
    pub what: String,
}

/// The gate under the suite (see the module's documentation).
#[derive(Debug, Default)]
pub struct Gate {
    open: AtomicBool,
    refused: Mutex<Vec<String>>,
}

impl Gate {
    /// Let the next APDUs through while `f` runs.
    pub fn through<R>(&self, f: impl FnOnce() -> R) -> R {
        self.open.store(true, Ordering::SeqCst);
        let r = f();
        self.open.store(false, Ordering::SeqCst);
        r
    }

    /// Whether `apdu` may go to the key; a refusal is remembered.
    pub fn admits(&self, apdu: &[u8]) -> bool {
        if !touches_secrets(apdu) || self.open.load(Ordering::SeqCst) {
            return true;
        }
        self.refused.lock().unwrap_or_else(|p| p.into_inner()).push(hex_head(apdu));
        false
    }

    /// APDUs the gate stopped (headers, hex): a check that tried to go around the rules.
    pub fn refused(&self) -> Vec<String> {
        self.refused.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

fn hex_head(apdu: &[u8]) -> String {
    apdu.iter().take(4).map(|b| format!("{b:02X}")).collect()
}

/// Whether an APDU carries a PIN or PUK (VERIFY, CHANGE REFERENCE DATA, RESET RETRY COUNTER
/// with any data, of any class, chained pieces included, and their odd-INS forms 21/25/2D,
/// which a lenient card may take as the even ones), may wrap one (ENVELOPE C2/C3) or resets
/// them (Yubico SET PIN RETRIES, RESET).
pub fn touches_secrets(apdu: &[u8]) -> bool {
    match apdu.get(1) {
        Some(0x20 | 0x21 | 0x24 | 0x25 | 0x2C | 0x2D | 0xC2 | 0xC3) => apdu.len() > 5,
        Some(0xFA | 0xFB) => true,
        _ => false,
    }
}

/// Shared by the card and its transport.
pub type SharedGate = Arc<Gate>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_told_from_status_queries() {
        assert!(!touches_secrets(&[0x00, 0x20, 0x00, 0x80]), "VERIFY without data: a status query");
        assert!(!touches_secrets(&[0x00, 0x20, 0x00, 0x80, 0x00]));
        assert!(!touches_secrets(&[0x00, 0x20, 0xFF, 0x80]), "log out");
        assert!(touches_secrets(&[0x00, 0x20, 0x00, 0x80, 0x08, 0x31, 0x32, 0x33]), "a partial PIN");
        assert!(touches_secrets(&[0x10, 0x20, 0x00, 0x80, 0x08, 1, 2, 3, 4, 5, 6, 7, 8]), "a chained piece");
        assert!(touches_secrets(&[0x00, 0x2C, 0x00, 0x80, 0x01, 0x00]));
        assert!(touches_secrets(&[0x00, 0xFB, 0x00, 0x00]), "RESET");
        for ins in [0x21, 0x25, 0x2D] {
            assert!(touches_secrets(&[0x00, ins, 0x00, 0x80, 0x03, 0x81, 0x01, 0x31]), "odd INS {ins:02X}");
        }
        assert!(touches_secrets(&[0x00, 0xC2, 0x00, 0x00, 0x05, 0x00, 0x20, 0x00, 0x80, 0x00]), "ENVELOPE");
        assert!(!touches_secrets(&[0x00, 0xCB, 0x3F, 0xFF, 0x05, 0x5C, 0x03, 0x5F, 0xC1, 0x02]));
        let gate = Gate::default();
        assert!(!gate.admits(&[0x00, 0x24, 0x00, 0x80, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
        assert_eq!(gate.refused(), ["00240080"]);
        assert!(gate.through(|| gate.admits(&[0x00, 0xFB, 0x00, 0x00])));
        assert!(!gate.admits(&[0x00, 0xFB, 0x00, 0x00]), "closed again");
    }
}
