//! PC/SC return codes, named once.

use super::ffi::LONG;

pub const SCARD_E_CANCELLED: u32 = 0x8010_0002;
pub const SCARD_E_INVALID_HANDLE: u32 = 0x8010_0003;
pub const SCARD_E_INSUFFICIENT_BUFFER: u32 = 0x8010_0008;
pub const SCARD_E_UNKNOWN_READER: u32 = 0x8010_0009;
pub const SCARD_E_TIMEOUT: u32 = 0x8010_000A;
pub const SCARD_E_SHARING_VIOLATION: u32 = 0x8010_000B;
pub const SCARD_E_NO_SMARTCARD: u32 = 0x8010_000C;
pub const SCARD_E_PROTO_MISMATCH: u32 = 0x8010_000F;
pub const SCARD_F_COMM_ERROR: u32 = 0x8010_0013;
pub const SCARD_E_NOT_TRANSACTED: u32 = 0x8010_0016;
pub const SCARD_E_READER_UNAVAILABLE: u32 = 0x8010_0017;
pub const SCARD_E_NO_SERVICE: u32 = 0x8010_001D;
pub const SCARD_E_SERVICE_STOPPED: u32 = 0x8010_001E;
pub const SCARD_E_NO_READERS_AVAILABLE: u32 = 0x8010_002E;
pub const SCARD_W_UNSUPPORTED_CARD: u32 = 0x8010_0065;
pub const SCARD_W_UNRESPONSIVE_CARD: u32 = 0x8010_0066;
pub const SCARD_W_UNPOWERED_CARD: u32 = 0x8010_0067;
pub const SCARD_W_RESET_CARD: u32 = 0x8010_0068;
pub const SCARD_W_REMOVED_CARD: u32 = 0x8010_0069;

/// The 32-bit code inside pcsc-lite's `long` return value.
pub fn code(rv: LONG) -> u32 {
    rv as u32
}

fn describe(code: u32) -> &'static str {
    match code {
        SCARD_E_CANCELLED => "cancelled",
        SCARD_E_INVALID_HANDLE => "invalid handle",
        SCARD_E_INSUFFICIENT_BUFFER => "buffer too small",
        SCARD_E_UNKNOWN_READER => "unknown reader",
        SCARD_E_TIMEOUT => "timed out",
        SCARD_E_SHARING_VIOLATION => "another program holds the card exclusively",
        SCARD_E_NO_SMARTCARD => "no card in the reader",
        SCARD_E_PROTO_MISMATCH => "protocol mismatch",
        SCARD_F_COMM_ERROR => "communication error with the PC/SC service",
        SCARD_E_NOT_TRANSACTED => "transaction failed",
        SCARD_E_READER_UNAVAILABLE => "reader unavailable",
        SCARD_E_NO_SERVICE => "the PC/SC service (pcscd) is not running",
        SCARD_E_SERVICE_STOPPED => "the PC/SC service (pcscd) stopped",
        SCARD_E_NO_READERS_AVAILABLE => "no readers",
        SCARD_W_UNSUPPORTED_CARD => "unsupported card",
        SCARD_W_UNRESPONSIVE_CARD => "the card does not answer",
        SCARD_W_UNPOWERED_CARD => "the card is not powered",
        SCARD_W_RESET_CARD => "the card was reset",
        SCARD_W_REMOVED_CARD => "the card was removed",
        _ => "PC/SC error",
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum PcscError {
    /// No PC/SC here: library missing, or pcscd not running.
    #[error("PC/SC is unavailable: {0}")]
    Unavailable(String),
    #[error("no reader named {name:?}; readers: {known}")]
    UnknownReader { name: String, known: String },
    #[error("{name:?} matches several readers: {matches}; give more of the name")]
    AmbiguousReader { name: String, matches: String },
    #[error("no card in reader {reader:?}")]
    NoCard { reader: String },
    #[error("{op}: {what} ({code:#010X})")]
    Call { op: String, code: u32, what: &'static str },
}

impl PcscError {
    pub fn call(op: &str, rv: LONG) -> PcscError {
        PcscError::Call { op: op.to_string(), code: code(rv), what: describe(code(rv)) }
    }
}

/// `Ok` for SCARD_S_SUCCESS; otherwise the error, with a missing service reported as such.
pub fn check(op: &str, rv: LONG) -> Result<(), PcscError> {
    match code(rv) {
        0 => Ok(()),
        c @ (SCARD_E_NO_SERVICE | SCARD_E_SERVICE_STOPPED) => Err(PcscError::Unavailable(describe(c).into())),
        _ => Err(PcscError::call(op, rv)),
    }
}
