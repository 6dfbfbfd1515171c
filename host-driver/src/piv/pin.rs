//! The PIN and the PUK: verify, status without a try, change, unblock, counts.

use proto::piv::{ins, key_ref};
use proto::secret::{Pin, PinBlock, Puk};
use proto::{Sw, Transport};
use serde::Serialize;
use zeroize::Zeroizing;

use super::client::Piv;
use crate::error::{PivError, Result};

fn pad(op: &'static str, secret: &str) -> Result<PinBlock> {
    PinBlock::pad(secret.as_bytes()).ok_or_else(|| {
        PivError::Input(format!("{op}: PIN/PUK must be 6 to 8 characters other than FF (got {})", secret.len()))
    })
}

/// Command data holding PIN or PUK blocks, wiped when dropped.
fn blocks(blocks: &[&PinBlock]) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(blocks.iter().flat_map(|b| b.as_bytes().iter().copied()).collect())
}

/// What VERIFY (or CHANGE / RESET RETRY) said about the secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum PinOutcome {
    Ok,
    WrongPin { retries_left: u8 },
    Blocked,
}

/// The PIN state learned without spending a try.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum PinStatus {
    Verified,
    NotVerified { retries_left: u8 },
    Blocked,
}

impl<T: Transport> Piv<T> {
    fn pin_outcome(op: &'static str, sw: Sw) -> Result<PinOutcome> {
        match sw {
            Sw::OK => Ok(PinOutcome::Ok),
            Sw::AUTH_METHOD_BLOCKED => Ok(PinOutcome::Blocked),
            sw => match sw.tries_left() {
                Some(0) => Ok(PinOutcome::Blocked),
                Some(n) => Ok(PinOutcome::WrongPin { retries_left: n }),
                None => Err(PivError::from_sw(op, sw)),
            },
        }
    }

    pub fn verify_pin(&mut self, pin: &Pin) -> Result<PinOutcome> {
        let block = blocks(&[&pad("verify PIN", pin.expose())?]);
        let (_, sw) = self.exchange(ins::VERIFY, 0x00, key_ref::PIN, &block)?;
        Self::pin_outcome("verify PIN", sw)
    }

    /// Empty VERIFY: the PIN state without spending a try.
    pub fn pin_status(&mut self) -> Result<PinStatus> {
        let (_, sw) = self.transmit(&[0x00, ins::VERIFY, 0x00, key_ref::PIN])?;
        match sw {
            Sw::OK => Ok(PinStatus::Verified),
            Sw::AUTH_METHOD_BLOCKED => Ok(PinStatus::Blocked),
            sw => match sw.tries_left() {
                Some(0) => Ok(PinStatus::Blocked),
                Some(n) => Ok(PinStatus::NotVerified { retries_left: n }),
                None => Err(PivError::from_sw("read PIN status", sw)),
            },
        }
    }

    pub fn logout(&mut self) -> Result<()> {
        let (_, sw) = self.transmit(&[0x00, ins::VERIFY, 0xFF, key_ref::PIN])?;
        if sw.is_ok() {
            Ok(())
        } else {
            Err(PivError::from_sw("log out", sw))
        }
    }

    fn change_reference(&mut self, op: &'static str, reference: u8, old: &str, new: &str) -> Result<PinOutcome> {
        let data = blocks(&[&pad(op, old)?, &pad(op, new)?]);
        let (_, sw) = self.exchange(ins::CHANGE_REFERENCE, 0x00, reference, &data)?;
        Self::pin_outcome(op, sw)
    }

    pub fn change_pin(&mut self, old: &Pin, new: &Pin) -> Result<PinOutcome> {
        self.change_reference("change PIN", key_ref::PIN, old.expose(), new.expose())
    }

    /// Change the PUK. The outcome's retries count PUK tries.
    pub fn change_puk(&mut self, old: &Puk, new: &Puk) -> Result<PinOutcome> {
        self.change_reference("change PUK", key_ref::PUK, old.expose(), new.expose())
    }

    /// RESET RETRY COUNTER: a new PIN, authorised by the PUK. The outcome counts PUK tries.
    pub fn unblock_pin(&mut self, puk: &Puk, new_pin: &Pin) -> Result<PinOutcome> {
        let data = blocks(&[&pad("unblock PIN", puk.expose())?, &pad("unblock PIN", new_pin.expose())?]);
        let (_, sw) = self.exchange(ins::RESET_RETRY, 0x00, key_ref::PIN, &data)?;
        Self::pin_outcome("unblock PIN", sw)
    }

    /// (remaining, total) PIN tries, spending none: from metadata when the card has it, else
    /// from an empty VERIFY, which gives no total (and no count while the PIN is verified).
    pub fn pin_retries(&mut self) -> Result<(Option<u8>, Option<u8>)> {
        match self.metadata(key_ref::PIN) {
            Ok(m) if m.retries_remaining.is_some() => Ok((m.retries_remaining, m.retries_total)),
            Ok(_) | Err(PivError::NotSupported { .. }) | Err(PivError::Card { .. }) => match self.pin_status()? {
                PinStatus::Verified => Ok((None, None)),
                PinStatus::NotVerified { retries_left } => Ok((Some(retries_left), None)),
                PinStatus::Blocked => Ok((Some(0), None)),
            },
            Err(e) => Err(e),
        }
    }

    /// The PUK's remaining tries, spending none: from metadata; `None` when the card has no
    /// metadata (nothing else counts PUK tries without risking one).
    pub fn puk_retries(&mut self) -> Result<Option<u8>> {
        match self.metadata(key_ref::PUK) {
            Ok(m) => Ok(m.retries_remaining),
            Err(PivError::NotSupported { .. }) | Err(PivError::Card { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}
