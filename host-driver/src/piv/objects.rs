//! Data objects (GET DATA / PUT DATA) and the slots' certificates in them.

use proto::piv::{cert_object, ins, object, Slot};
use proto::{tlv, Sw, Transport};

use super::client::Piv;
use crate::error::{PivError, Result};

impl<T: Transport> Piv<T> {
    fn tag_list(tag: u32) -> Vec<u8> {
        let b = tag.to_be_bytes();
        let start = b.iter().position(|x| *x != 0).unwrap_or(3);
        tlv::to_vec(0x5C, &b[start..])
    }

    /// GET DATA: the object's value inside its `53` (or `7E`) wrapper; `None` if absent.
    pub fn read_object(&mut self, tag: u32) -> Result<Option<Vec<u8>>> {
        let (resp, sw) = self.exchange(ins::GET_DATA, 0x3F, 0xFF, &Self::tag_list(tag))?;
        match sw {
            Sw::OK => {}
            Sw::FILE_NOT_FOUND => return Ok(None),
            sw => return Err(PivError::from_sw("read data object", sw)),
        }
        let outer = if tag == object::DISCOVERY { 0x7E } else { 0x53 };
        let value =
            tlv::parse_exact(&resp, outer).map_err(|e| PivError::malformed("read data object", format!("{e:?}")))?;
        Ok(if value.is_empty() { None } else { Some(value.to_vec()) })
    }

    /// PUT DATA (`value` is what goes inside `53`; empty deletes). Needs management-key auth.
    pub fn write_object(&mut self, tag: u32, value: &[u8]) -> Result<()> {
        let mut data = Self::tag_list(tag);
        data.extend(tlv::to_vec(0x53, value));
        self.call("write data object", ins::PUT_DATA, 0x3F, 0xFF, &data).map(|_| ())
    }

    /// The DER certificate in `slot`, if any.
    pub fn read_certificate(&mut self, slot: Slot) -> Result<Option<Vec<u8>>> {
        let Some(value) = self.read_object(slot.certificate_object())? else { return Ok(None) };
        let object =
            cert_object::decode_body(&value).map_err(|e| PivError::malformed("read certificate", e.to_string()))?;
        Ok(Some(object.certificate.to_vec()))
    }

    /// Store a DER certificate for `slot` (uncompressed).
    pub fn write_certificate(&mut self, slot: Slot, der: &[u8]) -> Result<()> {
        self.write_object(slot.certificate_object(), &cert_object::body(der))
    }

    pub fn delete_certificate(&mut self, slot: Slot) -> Result<()> {
        self.write_object(slot.certificate_object(), &[])
    }
}
