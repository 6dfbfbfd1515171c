//! Key discovery: what a person wants to know about a key at a glance.

use proto::piv::{object, Slot};
use proto::Transport;
use serde::Serialize;

use crate::certinfo::CertInfo;
use crate::error::{PivError, Result};
use crate::piv::Piv;

/// A certificate found on the key.
#[derive(Clone, Debug, Serialize)]
pub struct SlotCert {
    pub slot: String,
    #[serde(flatten)]
    pub cert: CertInfo,
}

/// A key as `ukey keys` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct KeyInfo {
    pub label: String,
    /// Yubico serial when the card has one, else the CHUID GUID in hex.
    pub serial: Option<String>,
    pub version: Option<String>,
    pub pin_retries: Option<u8>,
    pub pin_retries_total: Option<u8>,
    pub certificates: Vec<SlotCert>,
}

impl KeyInfo {
    /// The login certificate (9A), if any.
    pub fn auth_cert(&self) -> Option<&CertInfo> {
        self.certificates.iter().find(|c| c.slot == "9a").map(|c| &c.cert)
    }
}

fn optional<T>(r: Result<T>) -> Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(PivError::NotSupported { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Read what `ukey keys` shows. Spends no PIN try; works on cards without Yubico extensions.
pub fn inspect<T: Transport>(piv: &mut Piv<T>, label: &str) -> Result<KeyInfo> {
    piv.select()?;
    let serial = match optional(piv.serial())? {
        Some(s) => Some(s.to_string()),
        None => piv
            .read_object(object::CHUID)?
            .and_then(|c| proto::tlv::find(&c, 0x34).ok().flatten().map(hex::encode_upper)),
    };
    let version = optional(piv.version())?.map(|v| format!("{}.{}.{}", v[0], v[1], v[2]));
    let (pin_retries, pin_retries_total) = piv.pin_retries()?;
    let mut certificates = Vec::new();
    for slot in Slot::PRIMARY {
        if let Some(der) = piv.read_certificate(slot)? {
            certificates.push(SlotCert { slot: slot.to_string(), cert: CertInfo::parse(&der)? });
        }
    }
    Ok(KeyInfo { label: label.to_string(), serial, version, pin_retries, pin_retries_total, certificates })
}
