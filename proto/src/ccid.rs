//! USB CCID (Chip/Smart Card Interface Devices, rev 1.1): the bulk messages between a host and
//! a reader (§6.1 PC_to_RDR, §6.2 RDR_to_PC), the class descriptor (§5.1) and the class
//! requests (§5.3). Shared by the card's USB front-end and the host driver, so both sides read
//! one definition of the 10-byte header. No allocation: messages are parsed in place.

/// Every bulk message starts with this header: type, dwLength (LE), bSlot, bSeq, 3 bytes.
pub const HEADER: usize = 10;
/// USB interface class of a smart-card reader.
pub const CLASS: u8 = 0x0B;
/// The class-specific ("functional") descriptor's type and its length with its 2-byte head.
pub const DESCRIPTOR_TYPE: u8 = 0x21;
pub const DESCRIPTOR_LEN: usize = 54;

/// Message types, host to reader (§6.1).
pub mod cmd {
    pub const SET_PARAMETERS: u8 = 0x61;
    pub const ICC_POWER_ON: u8 = 0x62;
    pub const ICC_POWER_OFF: u8 = 0x63;
    pub const GET_SLOT_STATUS: u8 = 0x65;
    pub const SECURE: u8 = 0x69;
    pub const T0_APDU: u8 = 0x6A;
    pub const ESCAPE: u8 = 0x6B;
    pub const GET_PARAMETERS: u8 = 0x6C;
    pub const RESET_PARAMETERS: u8 = 0x6D;
    pub const ICC_CLOCK: u8 = 0x6E;
    pub const XFR_BLOCK: u8 = 0x6F;
    pub const MECHANICAL: u8 = 0x71;
    pub const ABORT: u8 = 0x72;
    pub const SET_DATA_RATE: u8 = 0x73;
}

/// Message types, reader to host (§6.2), and the interrupt-IN slot change (§6.3.1).
pub mod reply {
    pub const DATA_BLOCK: u8 = 0x80;
    pub const SLOT_STATUS: u8 = 0x81;
    pub const PARAMETERS: u8 = 0x82;
    pub const ESCAPE: u8 = 0x83;
    pub const DATA_RATE_AND_CLOCK: u8 = 0x84;
    pub const NOTIFY_SLOT_CHANGE: u8 = 0x50;
}

/// Class requests on the control pipe (§5.3).
pub mod request {
    pub const ABORT: u8 = 0x01;
    pub const GET_CLOCK_FREQUENCIES: u8 = 0x02;
    pub const GET_DATA_RATES: u8 = 0x03;
}

/// bError values of a failed command (§6.2.6). Values 1..=0x7F name the offset of the header
/// field the reader refused.
pub mod error {
    pub const CMD_NOT_SUPPORTED: u8 = 0x00;
    pub const BAD_LENGTH: u8 = 0x01;
    pub const BAD_SLOT: u8 = 0x05;
    pub const BAD_POWER_SELECT: u8 = 0x07;
    pub const BAD_LEVEL_PARAMETER: u8 = 0x08;
    pub const CMD_SLOT_BUSY: u8 = 0xE0;
    pub const HW_ERROR: u8 = 0xFB;
    pub const XFR_OVERRUN: u8 = 0xFC;
    pub const ICC_MUTE: u8 = 0xFE;
    pub const CMD_ABORTED: u8 = 0xFF;
}

/// dwFeatures: the exchange level, and the automatic behaviours that let a host skip PPS and
/// SetParameters (§5.1).
pub mod features {
    pub const AUTO_CONFIG_FROM_ATR: u32 = 0x0000_0002;
    pub const AUTO_ACTIVATION: u32 = 0x0000_0004;
    pub const AUTO_VOLTAGE: u32 = 0x0000_0008;
    pub const AUTO_CLOCK: u32 = 0x0000_0010;
    pub const AUTO_BAUD: u32 = 0x0000_0020;
    pub const AUTO_PARAMETERS: u32 = 0x0000_0040;
    pub const AUTO_PPS: u32 = 0x0000_0080;
    pub const LEVEL_MASK: u32 = 0x0007_0000;
    pub const LEVEL_TPDU: u32 = 0x0001_0000;
    pub const LEVEL_SHORT_APDU: u32 = 0x0002_0000;
    pub const LEVEL_EXTENDED_APDU: u32 = 0x0004_0000;
}

/// The slot's card, from bStatus bits 0-1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Icc {
    Active = 0,
    Inactive = 1,
    Absent = 2,
}

/// The command's fate, from bStatus bits 6-7.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok = 0,
    Failed = 1,
    /// The card needs more time; bError is the multiplier of the waiting time. The real
    /// answer follows with the same bSeq.
    TimeExtension = 2,
}

/// bStatus of a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    pub icc: Icc,
    pub outcome: Outcome,
}

impl Status {
    pub const fn byte(self) -> u8 {
        (self.outcome as u8) << 6 | self.icc as u8
    }
    pub fn parse(b: u8) -> Result<Status, Malformed> {
        let icc = match b & 0x03 {
            0 => Icc::Active,
            1 => Icc::Inactive,
            2 => Icc::Absent,
            _ => return Err(Malformed::Status(b)),
        };
        let outcome = match b >> 6 {
            0 => Outcome::Ok,
            1 => Outcome::Failed,
            2 => Outcome::TimeExtension,
            _ => return Err(Malformed::Status(b)),
        };
        if b & 0x3C != 0 {
            return Err(Malformed::Status(b));
        }
        Ok(Status { icc, outcome })
    }
}

/// How an APDU or response is split over several XfrBlock / DataBlock messages at the
/// extended APDU level: wLevelParameter of XfrBlock, bChainParameter of DataBlock (§6.1.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chain {
    /// The whole APDU or response in this message.
    Whole = 0x00,
    Begins = 0x01,
    Ends = 0x02,
    Continues = 0x03,
    /// An empty XfrBlock asking for the next piece of a response (or a DataBlock telling the
    /// host to send the next piece of its command).
    More = 0x10,
}

impl Chain {
    pub fn parse(v: u16) -> Option<Chain> {
        Some(match v {
            0x00 => Chain::Whole,
            0x01 => Chain::Begins,
            0x02 => Chain::Ends,
            0x03 => Chain::Continues,
            0x10 => Chain::More,
            _ => return None,
        })
    }
    /// Whether more pieces follow this one.
    pub fn more_follows(self) -> bool {
        matches!(self, Chain::Begins | Chain::Continues)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// Fewer than 10 bytes: not even a header.
    Short(usize),
    /// The header says more (or less) data than the message carries.
    Length {
        declared: u32,
        carried: usize,
    },
    Status(u8),
}

impl core::fmt::Display for Malformed {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Malformed::Short(n) => write!(f, "a CCID message of {n} bytes, shorter than its 10-byte header"),
            Malformed::Length { declared, carried } => {
                write!(f, "a CCID message declaring {declared} data bytes carries {carried}")
            }
            Malformed::Status(b) => write!(f, "CCID bStatus {b:#04x} has reserved bits or values"),
        }
    }
}

/// The header of a bulk message, either direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub kind: u8,
    pub len: u32,
    pub slot: u8,
    pub seq: u8,
    /// Bytes 7-9: type-specific (bPowerSelect, wLevelParameter, bStatus/bError/bChain...).
    pub params: [u8; 3],
}

impl Header {
    /// The header of `msg` (only the header is looked at: the message may still be arriving).
    pub fn parse(msg: &[u8]) -> Result<Header, Malformed> {
        if msg.len() < HEADER {
            return Err(Malformed::Short(msg.len()));
        }
        Ok(Header {
            kind: msg[0],
            len: u32::from_le_bytes([msg[1], msg[2], msg[3], msg[4]]),
            slot: msg[5],
            seq: msg[6],
            params: [msg[7], msg[8], msg[9]],
        })
    }
    pub fn to_bytes(&self) -> [u8; HEADER] {
        let l = self.len.to_le_bytes();
        [self.kind, l[0], l[1], l[2], l[3], self.slot, self.seq, self.params[0], self.params[1], self.params[2]]
    }
    /// wLevelParameter (bytes 8-9) of an XfrBlock.
    pub fn level(&self) -> u16 {
        u16::from_le_bytes([self.params[1], self.params[2]])
    }
    /// The whole length of the message this header starts: header plus data.
    pub fn message_len(&self) -> usize {
        HEADER.saturating_add(self.len as usize)
    }
}

/// A whole message: its header and its data, which must be exactly as long as declared.
pub fn split(msg: &[u8]) -> Result<(Header, &[u8]), Malformed> {
    let h = Header::parse(msg)?;
    let data = &msg[HEADER..];
    if data.len() as u64 != u64::from(h.len) {
        return Err(Malformed::Length { declared: h.len, carried: data.len() });
    }
    Ok((h, data))
}

/// The header of an RDR_to_PC reply: bStatus, bError and the type's own byte 9.
pub fn reply_header(kind: u8, seq: u8, len: usize, status: Status, error: u8, specific: u8) -> [u8; HEADER] {
    Header { kind, len: len as u32, slot: 0, seq, params: [status.byte(), error, specific] }.to_bytes()
}

/// The CCID class descriptor (§5.1, Table 5.1-1), the 54 bytes hosts such as libccid read to
/// learn how to talk to the reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassDescriptor {
    pub bcd_ccid: u16,
    pub max_slot_index: u8,
    pub voltage_support: u8,
    pub protocols: u32,
    pub default_clock: u32,
    pub maximum_clock: u32,
    pub num_clocks: u8,
    pub data_rate: u32,
    pub max_data_rate: u32,
    pub num_data_rates: u8,
    pub max_ifsd: u32,
    pub synch_protocols: u32,
    pub mechanical: u32,
    pub features: u32,
    pub max_message_len: u32,
    pub class_get_response: u8,
    pub class_envelope: u8,
    pub lcd_layout: u16,
    pub pin_support: u8,
    pub max_busy_slots: u8,
}

impl ClassDescriptor {
    pub fn to_bytes(&self) -> [u8; DESCRIPTOR_LEN] {
        let mut b = [0u8; DESCRIPTOR_LEN];
        b[0] = DESCRIPTOR_LEN as u8;
        b[1] = DESCRIPTOR_TYPE;
        b[2..4].copy_from_slice(&self.bcd_ccid.to_le_bytes());
        b[4] = self.max_slot_index;
        b[5] = self.voltage_support;
        b[6..10].copy_from_slice(&self.protocols.to_le_bytes());
        b[10..14].copy_from_slice(&self.default_clock.to_le_bytes());
        b[14..18].copy_from_slice(&self.maximum_clock.to_le_bytes());
        b[18] = self.num_clocks;
        b[19..23].copy_from_slice(&self.data_rate.to_le_bytes());
        b[23..27].copy_from_slice(&self.max_data_rate.to_le_bytes());
        b[27] = self.num_data_rates;
        b[28..32].copy_from_slice(&self.max_ifsd.to_le_bytes());
        b[32..36].copy_from_slice(&self.synch_protocols.to_le_bytes());
        b[36..40].copy_from_slice(&self.mechanical.to_le_bytes());
        b[40..44].copy_from_slice(&self.features.to_le_bytes());
        b[44..48].copy_from_slice(&self.max_message_len.to_le_bytes());
        b[48] = self.class_get_response;
        b[49] = self.class_envelope;
        b[50..52].copy_from_slice(&self.lcd_layout.to_le_bytes());
        b[52] = self.pin_support;
        b[53] = self.max_busy_slots;
        b
    }

    /// Parse the descriptor; `None` unless it is a 54-byte descriptor of type 0x21.
    pub fn parse(b: &[u8]) -> Option<ClassDescriptor> {
        if b.len() != DESCRIPTOR_LEN || b[0] as usize != DESCRIPTOR_LEN || b[1] != DESCRIPTOR_TYPE {
            return None;
        }
        let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Some(ClassDescriptor {
            bcd_ccid: u16_at(2),
            max_slot_index: b[4],
            voltage_support: b[5],
            protocols: u32_at(6),
            default_clock: u32_at(10),
            maximum_clock: u32_at(14),
            num_clocks: b[18],
            data_rate: u32_at(19),
            max_data_rate: u32_at(23),
            num_data_rates: b[27],
            max_ifsd: u32_at(28),
            synch_protocols: u32_at(32),
            mechanical: u32_at(36),
            features: u32_at(40),
            max_message_len: u32_at(44),
            class_get_response: b[48],
            class_envelope: b[49],
            lcd_layout: u16_at(50),
            pin_support: b[52],
            max_busy_slots: b[53],
        })
    }

    /// The exchange level: TPDU, short or extended APDU (or character level, 0).
    pub fn level(&self) -> u32 {
        self.features & features::LEVEL_MASK
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_and_lengths_are_checked() {
        let h = Header { kind: cmd::XFR_BLOCK, len: 5, slot: 0, seq: 7, params: [0, 0x01, 0x00] };
        let mut msg = h.to_bytes().to_vec();
        msg.extend([1, 2, 3, 4, 5]);
        assert_eq!(split(&msg).unwrap(), (h, &[1u8, 2, 3, 4, 5][..]));
        assert_eq!(Chain::parse(h.level()), Some(Chain::Begins));
        assert_eq!(split(&msg[..14]), Err(Malformed::Length { declared: 5, carried: 4 }));
        assert_eq!(Header::parse(&msg[..9]), Err(Malformed::Short(9)));
    }

    #[test]
    fn status_bytes() {
        let s = Status { icc: Icc::Inactive, outcome: Outcome::Failed };
        assert_eq!(s.byte(), 0x41);
        assert_eq!(Status::parse(0x41), Ok(s));
        assert_eq!(Status::parse(0x80).unwrap().outcome, Outcome::TimeExtension);
        assert!(Status::parse(0x03).is_err() && Status::parse(0xC0).is_err() && Status::parse(0x04).is_err());
    }
}
