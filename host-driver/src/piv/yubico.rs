//! The Yubico extensions (a plain PIV card answers NotSupported): version, serial, metadata,
//! attestation, MOVE KEY, PIN retries, RESET.

use proto::piv::metadata::Metadata;
use proto::piv::{ins, Slot};
use proto::{Sw, Transport};

use super::client::Piv;
use crate::error::{PivError, Result};

impl<T: Transport> Piv<T> {
    pub fn version(&mut self) -> Result<[u8; 3]> {
        let v = self.call("get version", ins::GET_VERSION, 0, 0, &[])?;
        v.try_into().map_err(|_| PivError::malformed("get version", "not 3 bytes"))
    }

    pub fn serial(&mut self) -> Result<u32> {
        let s = self.call("get serial", ins::GET_SERIAL, 0, 0, &[])?;
        Ok(u32::from_be_bytes(s.try_into().map_err(|_| PivError::malformed("get serial", "not 4 bytes"))?))
    }

    /// GET METADATA for a slot, the PIN (80), the PUK (81) or the management key (9B).
    pub fn metadata(&mut self, reference: u8) -> Result<Metadata> {
        let resp = self.call("get metadata", ins::GET_METADATA, 0, reference, &[])?;
        Metadata::decode(&resp).map_err(|e| PivError::malformed("get metadata", format!("{e:?}")))
    }

    /// ATTEST: a certificate for the key generated in `slot`, signed by the attestation key.
    pub fn attest(&mut self, slot: Slot) -> Result<Vec<u8>> {
        self.call("attest", ins::ATTEST, slot.key_ref(), 0, &[])
    }

    /// Delete the key of `slot` (MOVE KEY with destination FF, YubiKey 5.7): needs the
    /// management key. A card without it answers 6D00 (the error says "not supported").
    pub fn delete_key(&mut self, slot: Slot) -> Result<()> {
        self.call("delete key", ins::MOVE_KEY, 0xFF, slot.key_ref(), &[]).map(|_| ())
    }

    /// Move the key of `from` to the empty slot `to` (MOVE KEY, YubiKey 5.7): needs the
    /// management key.
    pub fn move_key(&mut self, from: Slot, to: Slot) -> Result<()> {
        self.call("move key", ins::MOVE_KEY, to.key_ref(), from.key_ref(), &[]).map(|_| ())
    }

    /// SET PIN RETRIES: needs management key and PIN; resets PIN and PUK to defaults.
    pub fn set_pin_retries(&mut self, pin: u8, puk: u8) -> Result<()> {
        self.call("set PIN retries", ins::SET_PIN_RETRIES, pin, puk, &[]).map(|_| ())
    }

    /// RESET the PIV application; the card allows it only with PIN and PUK blocked.
    pub fn reset(&mut self) -> Result<()> {
        match self.exchange(ins::RESET, 0, 0, &[])? {
            (_, Sw::OK) => {
                // Factory state: the management key (and perhaps its algorithm) is the default.
                (self.mgmt_alg, self.mgmt_authenticated, self.no_card_challenge) = (None, false, false);
                Ok(())
            }
            (_, Sw::CONDITIONS_NOT_SATISFIED) => {
                Err(PivError::Card { op: "reset (block PIN and PUK first)", sw: Sw::CONDITIONS_NOT_SATISFIED })
            }
            (_, sw) => Err(PivError::from_sw("reset", sw)),
        }
    }
}
