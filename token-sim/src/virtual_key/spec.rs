//! How to make a new key.

use proto::piv::Algorithm;
use proto::secret::{KeyBytes, Pin, Puk};

use crate::piv::state::Flavor;
use crate::piv::Defaults;
use crate::scenario::Scenario;

/// How to make a new key. `Default` is a factory-fresh YubiKey-like key, firmware 5.4.3.
/// PIN, PUK and management key are secret types: `{:?}` of a spec shows none of them.
#[derive(Clone, Debug)]
pub struct KeySpec {
    pub pin: Pin,
    pub puk: Puk,
    pub mgmt_alg: Algorithm,
    pub mgmt_key: KeyBytes,
    pub pin_retries: u8,
    pub puk_retries: u8,
    /// `None`: random (or derived from `seed` in deterministic mode).
    pub serial: Option<u32>,
    pub flavor: Flavor,
    /// Deterministic mode: seeds the RNG (the serial, unless given, is drawn from it).
    pub seed: Option<u64>,
    /// The scenario the key is made for, recorded (by name) in a key directory's metadata.
    /// Making a key does not apply it: [`VirtualKey::provision`](super::VirtualKey::provision)
    /// does, with the CA that issues its certificates.
    pub scenario: Scenario,
    /// The manufacturer CA that issues the key's attestation certificate (F9), as Yubico's
    /// does for a YubiKey; portals trust attestations that chain to it. `None`: the F9
    /// certificate signs itself, and no verifier can tell the key from software.
    pub factory: Option<std::sync::Arc<ca::Ca>>,
}

impl Default for KeySpec {
    fn default() -> Self {
        let d = Defaults::factory();
        KeySpec {
            pin: Pin::new(String::from_utf8_lossy(d.pin)),
            puk: Puk::new(String::from_utf8_lossy(d.puk)),
            mgmt_alg: d.mgmt_alg,
            mgmt_key: d.mgmt_key.into(),
            pin_retries: d.pin_retries,
            puk_retries: d.puk_retries,
            serial: None,
            flavor: Flavor::Yubico { version: [5, 4, 3] },
            seed: None,
            scenario: Scenario::Fresh,
            factory: None,
        }
    }
}
