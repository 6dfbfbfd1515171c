//! Every card answer becomes a typed error here, once.

use proto::{Sw, TransportError};

#[derive(Debug, thiserror::Error)]
pub enum PivError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("{op}: the card refused: security status not satisfied (6982) — {hint}")]
    NotAuthorized { op: &'static str, hint: &'static str },
    #[error("{op}: the PIN is blocked (6983); unblock it with the PUK (`ukey pin unblock`)")]
    PinBlocked { op: &'static str },
    #[error("{op}: the PUK is blocked (6983); only a reset of the key helps now")]
    PukBlocked { op: &'static str },
    #[error("{op}: wrong {what}, {retries_left} attempt(s) left")]
    WrongSecret { op: &'static str, what: &'static str, retries_left: u8 },
    #[error("{op}: slot or reference is empty (6A88)")]
    Empty { op: &'static str },
    #[error("{op}: the key's memory failed (6581); it refuses everything until it is removed and put back (or its program restarted), and what it last did may not have been kept")]
    MemoryFailure { op: &'static str },
    #[error("{op}: not supported by this card ({sw})")]
    NotSupported { op: &'static str, sw: Sw },
    #[error("{op}: the card answered {sw}")]
    Card { op: &'static str, sw: Sw },
    #[error("{op}: the card's answer is malformed: {detail}")]
    Malformed { op: &'static str, detail: String },
    #[error("no PIV application on this card (SELECT answered {sw})")]
    NoPiv { sw: Sw },
    #[error("the key in slot {slot} is not the public key given for it (its signature does not verify with that key)")]
    NotTheSlotKey { slot: proto::piv::Slot },
    #[error("slot {slot} holds a certificate: its key pair is not replaced without asking")]
    SlotInUse { slot: proto::piv::Slot },
    #[error("invalid input: {0}")]
    Input(String),
}

impl PivError {
    /// Map a non-9000 status word of operation `op` to an error.
    pub fn from_sw(op: &'static str, sw: Sw) -> PivError {
        match sw {
            Sw::SECURITY_STATUS_NOT_SATISFIED => {
                PivError::NotAuthorized { op, hint: "verify the PIN or authenticate with the management key first" }
            }
            Sw::AUTH_METHOD_BLOCKED => PivError::PinBlocked { op },
            Sw::REFERENCE_NOT_FOUND => PivError::Empty { op },
            Sw::MEMORY_FAILURE => PivError::MemoryFailure { op },
            Sw::INS_NOT_SUPPORTED | Sw::CLA_NOT_SUPPORTED | Sw::FUNCTION_NOT_SUPPORTED => {
                PivError::NotSupported { op, sw }
            }
            sw if sw.tries_left().is_some() => {
                PivError::WrongSecret { op, what: "PIN", retries_left: sw.tries_left().unwrap_or(0) }
            }
            sw => PivError::Card { op, sw },
        }
    }

    pub fn malformed(op: &'static str, detail: impl Into<String>) -> PivError {
        PivError::Malformed { op, detail: detail.into() }
    }

    /// Whether the card simply does not have this (Yubico) instruction.
    pub fn is_not_supported(&self) -> bool {
        matches!(self, PivError::NotSupported { .. })
    }
}

pub type Result<T> = std::result::Result<T, PivError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_words_become_typed_errors() {
        assert!(matches!(PivError::from_sw("x", Sw(0x6982)), PivError::NotAuthorized { .. }));
        assert!(matches!(PivError::from_sw("x", Sw(0x6983)), PivError::PinBlocked { .. }));
        assert!(matches!(PivError::from_sw("x", Sw(0x6A88)), PivError::Empty { .. }));
        assert!(PivError::from_sw("x", Sw(0x6D00)).is_not_supported());
        assert!(matches!(PivError::from_sw("x", Sw(0x63C1)), PivError::WrongSecret { retries_left: 1, .. }));
        let e = PivError::from_sw("write data object", Sw(0x6A84));
        assert_eq!(e.to_string(), "write data object: the card answered 6A84 (not enough memory space)");
    }
}
