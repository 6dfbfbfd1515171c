//! ISO 7816-4 status words, as PIV cards use them.

use core::fmt;

/// A status word (SW1 SW2). Kept as the raw `u16` so that no card answer is ever lost in a
/// translation; the constants and predicates name the ones PIV uses.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sw(pub u16);

impl Sw {
    pub const OK: Sw = Sw(0x9000);
    pub const MEMORY_FAILURE: Sw = Sw(0x6581);
    pub const WRONG_LENGTH: Sw = Sw(0x6700);
    pub const LAST_COMMAND_EXPECTED: Sw = Sw(0x6883);
    pub const SECURE_MESSAGING_NOT_SUPPORTED: Sw = Sw(0x6882);
    pub const SECURITY_STATUS_NOT_SATISFIED: Sw = Sw(0x6982);
    pub const AUTH_METHOD_BLOCKED: Sw = Sw(0x6983);
    pub const CONDITIONS_NOT_SATISFIED: Sw = Sw(0x6985);
    pub const WRONG_DATA: Sw = Sw(0x6A80);
    pub const FUNCTION_NOT_SUPPORTED: Sw = Sw(0x6A81);
    pub const FILE_NOT_FOUND: Sw = Sw(0x6A82);
    pub const NOT_ENOUGH_MEMORY: Sw = Sw(0x6A84);
    pub const INCORRECT_P1P2: Sw = Sw(0x6A86);
    pub const REFERENCE_NOT_FOUND: Sw = Sw(0x6A88);
    pub const INS_NOT_SUPPORTED: Sw = Sw(0x6D00);
    pub const CLA_NOT_SUPPORTED: Sw = Sw(0x6E00);
    pub const UNKNOWN: Sw = Sw(0x6F00);

    /// `61xx`: more response bytes wait for GET RESPONSE (`xx` = 0 means 256 or more).
    pub const fn more_data(remaining: usize) -> Sw {
        let n = if remaining >= 256 { 0 } else { remaining as u16 };
        Sw(0x6100 | n)
    }

    /// `63Cx`: verification failed, `x` tries left (tools read only the low nibble).
    pub const fn verify_failed(tries_left: u8) -> Sw {
        Sw(0x63C0 | (tries_left as u16 & 0x0F))
    }

    pub const fn from_bytes(sw1: u8, sw2: u8) -> Sw {
        Sw(((sw1 as u16) << 8) | sw2 as u16)
    }
    pub const fn sw1(self) -> u8 {
        (self.0 >> 8) as u8
    }
    pub const fn sw2(self) -> u8 {
        self.0 as u8
    }
    pub const fn to_bytes(self) -> [u8; 2] {
        self.0.to_be_bytes()
    }
    pub const fn is_ok(self) -> bool {
        self.0 == 0x9000
    }
    /// Bytes still waiting for GET RESPONSE, when this is `61xx`.
    pub const fn bytes_remaining(self) -> Option<usize> {
        if self.sw1() == 0x61 {
            Some(if self.sw2() == 0 { 256 } else { self.sw2() as usize })
        } else {
            None
        }
    }
    /// Tries left, when this is `63Cx`.
    pub const fn tries_left(self) -> Option<u8> {
        if self.0 & 0xFFF0 == 0x63C0 {
            Some(self.sw2() & 0x0F)
        } else {
            None
        }
    }
    /// The exact length to ask for again, when this is `6Cxx`.
    pub const fn correct_le(self) -> Option<usize> {
        if self.sw1() == 0x6C {
            Some(if self.sw2() == 0 { 256 } else { self.sw2() as usize })
        } else {
            None
        }
    }

    /// What the status word means, in words (for errors shown to people).
    pub fn meaning(self) -> &'static str {
        match self.0 {
            0x9000 => "success",
            0x6581 => "memory failure",
            0x6700 => "wrong length",
            0x6882 => "secure messaging not supported",
            0x6883 => "last command of the chain expected",
            0x6982 => "security status not satisfied",
            0x6983 => "authentication method blocked",
            0x6985 => "conditions of use not satisfied",
            0x6A80 => "incorrect parameters in the data field",
            0x6A81 => "function not supported",
            0x6A82 => "file or application not found",
            0x6A84 => "not enough memory space",
            0x6A86 => "incorrect parameters P1-P2",
            0x6A88 => "referenced data or reference data not found",
            0x6D00 => "instruction not supported",
            0x6E00 => "class not supported",
            0x6F00 => "no precise diagnosis",
            sw if sw & 0xFF00 == 0x6100 => "more data available",
            sw if sw & 0xFFF0 == 0x63C0 => "verification failed",
            sw if sw & 0xFF00 == 0x6C00 => "wrong Le",
            _ => "unknown status",
        }
    }
}

impl fmt::Debug for Sw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sw({:04X})", self.0)
    }
}

impl fmt::Display for Sw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04X} ({})", self.0, self.meaning())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_and_more_data_round_trip() {
        assert_eq!(Sw::verify_failed(2), Sw(0x63C2));
        assert_eq!(Sw(0x63C2).tries_left(), Some(2));
        assert_eq!(Sw(0x63C0).tries_left(), Some(0));
        assert_eq!(Sw::OK.tries_left(), None);
        assert_eq!(Sw::more_data(300), Sw(0x6100));
        assert_eq!(Sw(0x6100).bytes_remaining(), Some(256));
        assert_eq!(Sw::more_data(17).bytes_remaining(), Some(17));
        assert_eq!(Sw(0x6C08).correct_le(), Some(8));
        assert_eq!(Sw::from_bytes(0x69, 0x83), Sw::AUTH_METHOD_BLOCKED);
    }

    #[test]
    fn display_names_the_word() {
        extern crate std;
        use std::string::ToString;
        assert_eq!(Sw(0x6983).to_string(), "6983 (authentication method blocked)");
        assert_eq!(Sw(0x63C1).to_string(), "63C1 (verification failed)");
    }
}
