//! A factory-fresh card state: the PIV application's defaults, the serial, and the
//! attestation key (F9) with its certificate from the manufacturer CA (or self-signed).

use proto::piv::{object, PinPolicy, Slot, TouchPolicy};
use proto::Clock;
use rand_core::RngCore;

use super::error::KeyError;
use super::spec::KeySpec;
use crate::piv::state::{KeySlot, Origin, PersistentState};
use crate::piv::{self, Defaults};
use crate::rng::SimRng;

/// The attestation certificate is valid for 20 years from manufacture.
const ATTESTATION_YEARS: u64 = 20;

/// A factory-fresh card state for `spec`, attestation key and certificate included.
pub fn manufacture(spec: &KeySpec, rng: &mut SimRng, clock: &dyn Clock) -> Result<PersistentState, KeyError> {
    let serial = spec.serial.unwrap_or_else(|| 10_000_000 + rng.next_u32() % 90_000_000);
    let defaults = Defaults {
        pin: spec.pin.expose().as_bytes(),
        puk: spec.puk.expose().as_bytes(),
        mgmt_alg: spec.mgmt_alg,
        mgmt_key: &spec.mgmt_key,
        pin_retries: spec.pin_retries,
        puk_retries: spec.puk_retries,
    };
    let mut state = piv::factory_state(serial, spec.flavor, &defaults, rng).ok_or_else(|| {
        KeyError::Spec(format!(
            "PIN and PUK need 6 to 8 characters, retries 1 to 15, and a {} management key of {} bytes",
            spec.mgmt_alg.name(),
            spec.mgmt_alg.key_len().unwrap_or(0)
        ))
    })?;
    let f9_secret = p256::SecretKey::random(&mut *rng);
    let f9 = KeySlot::new(&f9_secret, PinPolicy::Never, TouchPolicy::Never, Origin::Generated);
    let now = clock.now_unix();
    let not_after = now + ATTESTATION_YEARS * 365 * 86_400;
    let cert = match &spec.factory {
        Some(factory) => factory_attestation_cert(factory, &f9_secret.public_key(), serial, now, not_after)?,
        None => {
            let mut serial_seed = [0u8; 16];
            rng.fill_bytes(&mut serial_seed);
            let mut cert = Vec::new();
            piv::self_signed_attestation_cert(&f9, &serial_seed, now - 60, not_after, &mut cert)
                .map_err(|e| KeyError::Spec(format!("attestation certificate: {e}")))?;
            cert
        }
    };
    state.keys[Slot::Attestation.index()] = Some(f9);
    state
        .set_object(object::ATTESTATION_CERT, &proto::piv::cert_object::encode(&cert))
        .map_err(|_| KeyError::Spec("attestation certificate too large".into()))?;
    Ok(state)
}

/// The F9 certificate from the manufacturer CA: "CN=ukey PIV Attestation,serialNumber=<serial>",
/// valid from manufacture for 20 years or until the factory's own certificate ends.
fn factory_attestation_cert(
    factory: &ca::Ca,
    key: &p256::PublicKey,
    serial: u32,
    now: u64,
    not_after: u64,
) -> Result<Vec<u8>, KeyError> {
    use p256::pkcs8::EncodePublicKey;
    let spki = key.to_public_key_der().map_err(|e| KeyError::Spec(format!("attestation key: {e}")))?;
    let serial = serial.to_string();
    let subject = ca::name_from(&[(ca::attr::COMMON_NAME, "ukey PIV Attestation"), (ca::attr::SERIAL_NUMBER, &serial)])
        .map_err(|e| KeyError::Spec(e.to_string()))?;
    factory
        .issue_intermediate(&subject, spki.as_bytes(), now.saturating_sub(60), not_after.min(factory.not_after()))
        .map_err(|e| {
            KeyError::Spec(format!(
                "the factory {} cannot issue the attestation certificate: {e}",
                factory.dir().display()
            ))
        })
}
