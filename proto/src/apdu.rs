//! ISO 7816-4 command APDUs: parsing (card side, zero-copy) and encoding (host side).

/// Why a byte string is not a command APDU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "std", derive(thiserror::Error))]
pub enum ApduError {
    #[cfg_attr(feature = "std", error("APDU shorter than the 4-byte header"))]
    TooShort,
    #[cfg_attr(feature = "std", error("APDU length fields do not match its size"))]
    BadLength,
}

/// A parsed command APDU borrowing its data field from the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommandApdu<'a> {
    pub cla: u8,
    pub ins: u8,
    pub p1: u8,
    pub p2: u8,
    pub data: &'a [u8],
    /// Expected response length: `None` when absent; a short Le of 00 is 256 and an extended
    /// Le of 0000 is 65536, as ISO 7816-4 says.
    pub le: Option<usize>,
    /// Whether the APDU used the extended length form.
    pub extended: bool,
}

/// CLA bit that marks "more of this command follows" (command chaining).
pub const CLA_CHAINING: u8 = 0x10;

impl<'a> CommandApdu<'a> {
    pub const fn new(cla: u8, ins: u8, p1: u8, p2: u8, data: &'a [u8], le: Option<usize>) -> Self {
        CommandApdu { cla, ins, p1, p2, data, le, extended: false }
    }

    /// Parse any of the seven ISO cases (1, 2S, 3S, 4S, 2E, 3E, 4E).
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ApduError> {
        if bytes.len() < 4 {
            return Err(ApduError::TooShort);
        }
        let (cla, ins, p1, p2) = (bytes[0], bytes[1], bytes[2], bytes[3]);
        let body = &bytes[4..];
        let mk = |data, le, extended| Ok(CommandApdu { cla, ins, p1, p2, data, le, extended });
        match body.len() {
            0 => mk(&[][..], None, false),
            1 => mk(&[][..], Some(short_le(body[0])), false),
            _ if body[0] != 0 => {
                // Short form: Lc in one byte, optional one-byte Le.
                let lc = body[0] as usize;
                match body.len() - 1 {
                    n if n == lc => mk(&body[1..], None, false),
                    n if n == lc + 1 => mk(&body[1..=lc], Some(short_le(body[lc + 1])), false),
                    _ => Err(ApduError::BadLength),
                }
            }
            3 => {
                // Case 2E: 00 Le1 Le2.
                mk(&[][..], Some(ext_le(body[1], body[2])), true)
            }
            n if n > 3 => {
                let lc = u16::from_be_bytes([body[1], body[2]]) as usize;
                if lc == 0 {
                    return Err(ApduError::BadLength);
                }
                match n - 3 {
                    m if m == lc => mk(&body[3..], None, true),
                    m if m == lc + 2 => mk(&body[3..3 + lc], Some(ext_le(body[3 + lc], body[4 + lc])), true),
                    _ => Err(ApduError::BadLength),
                }
            }
            _ => Err(ApduError::BadLength),
        }
    }

    /// Whether CLA says that more chunks of this command follow.
    pub const fn is_chained(&self) -> bool {
        self.cla & CLA_CHAINING != 0
    }

    /// Encode in short form when it fits, extended form otherwise.
    #[cfg(feature = "alloc")]
    pub fn to_vec(&self) -> alloc::vec::Vec<u8> {
        let mut out = alloc::vec![self.cla, self.ins, self.p1, self.p2];
        let short = !self.extended && self.data.len() <= 255 && self.le.is_none_or(|le| le <= 256);
        if short {
            if !self.data.is_empty() {
                out.push(self.data.len() as u8);
                out.extend_from_slice(self.data);
            }
            if let Some(le) = self.le {
                out.push(if le >= 256 { 0 } else { le as u8 });
            }
        } else {
            out.push(0);
            if !self.data.is_empty() {
                out.extend_from_slice(&(self.data.len() as u16).to_be_bytes());
                out.extend_from_slice(self.data);
            }
            if let Some(le) = self.le {
                let v = if le >= 65536 { 0 } else { le as u16 };
                out.extend_from_slice(&v.to_be_bytes());
            }
        }
        out
    }
}

const fn short_le(b: u8) -> usize {
    if b == 0 {
        256
    } else {
        b as usize
    }
}

const fn ext_le(hi: u8, lo: u8) -> usize {
    match u16::from_be_bytes([hi, lo]) {
        0 => 65536,
        n => n as usize,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_case() {
        let c1 = CommandApdu::parse(&[0, 0x20, 0, 0x80]).unwrap();
        assert_eq!((c1.data, c1.le), (&[][..], None));
        let c2 = CommandApdu::parse(&[0, 0xFD, 0, 0, 0]).unwrap();
        assert_eq!(c2.le, Some(256));
        let c3 = CommandApdu::parse(&[0, 0x20, 0, 0x80, 2, 0xAA, 0xBB]).unwrap();
        assert_eq!((c3.data, c3.le), (&[0xAA, 0xBB][..], None));
        let c4 = CommandApdu::parse(&[0, 0xCB, 0x3F, 0xFF, 1, 0x7E, 8]).unwrap();
        assert_eq!((c4.data, c4.le), (&[0x7E][..], Some(8)));
        let e2 = CommandApdu::parse(&[0, 0xCB, 0, 0, 0, 0x10, 0]).unwrap();
        assert_eq!((e2.le, e2.extended), (Some(4096), true));
        let e3 = CommandApdu::parse(&[0, 0xDB, 0, 0, 0, 0, 2, 1, 2]).unwrap();
        assert_eq!((e3.data, e3.le, e3.extended), (&[1, 2][..], None, true));
        let e4 = CommandApdu::parse(&[0, 0xDB, 0, 0, 0, 0, 1, 9, 0, 0]).unwrap();
        assert_eq!((e4.data, e4.le), (&[9][..], Some(65536)));
    }

    #[test]
    fn rejects_inconsistent_lengths() {
        assert_eq!(CommandApdu::parse(&[0, 0x20, 0]), Err(ApduError::TooShort));
        assert_eq!(CommandApdu::parse(&[0, 0x20, 0, 0x80, 3, 1]), Err(ApduError::BadLength));
        assert_eq!(CommandApdu::parse(&[0, 0x20, 0, 0x80, 1, 1, 2, 3]), Err(ApduError::BadLength));
        assert_eq!(CommandApdu::parse(&[0, 0x20, 0, 0x80, 0, 0]), Err(ApduError::BadLength));
        assert_eq!(CommandApdu::parse(&[0, 0x20, 0, 0x80, 0, 0, 0, 0]), Err(ApduError::BadLength));
    }

    #[test]
    fn encode_then_parse_is_identity() {
        let data = [7u8; 300];
        for (d, le) in [(&data[..0], None), (&data[..5], Some(256)), (&data[..], Some(10)), (&data[..255], None)] {
            let cmd = CommandApdu::new(0, 0x87, 0x11, 0x9A, d, le);
            let bytes = cmd.to_vec();
            let back = CommandApdu::parse(&bytes).unwrap();
            assert_eq!((back.data, back.le), (d, le));
        }
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let _ = CommandApdu::parse(&bytes);
        }
    }
}
