//! Ready-made key states, so a test can start from "PIN with one try left" or
//! "certificate expires in a week" without driving the key there by hand.

use std::str::FromStr;

use ca::Ca;
use p256::pkcs8::EncodePublicKey;
use proto::piv::{PinPolicy, Slot, TouchPolicy};
use proto::Clock;

use crate::piv::state::{KeySlot, Origin, PersistentState};
use crate::rng::SimRng;
use proto::piv::cert_object;

pub const DAY: u64 = 86_400;

/// A named key state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// Factory state: no keys, no certificates.
    Fresh,
    /// 9A key generated on the card, certificate from the CA valid one year.
    Provisioned,
    /// Provisioned, and every other slot too: 9C (PIN always), 9D, 9E (no PIN), each with
    /// its certificate from the CA (for suites that judge every slot).
    Full,
    /// Provisioned, but the certificate expires in this many days.
    Expiring { days: u64 },
    /// Provisioned with a certificate that expired yesterday.
    Expired,
    /// Provisioned, one PIN try left.
    Pin1Left,
    /// Provisioned, PIN blocked (the PUK still unblocks it).
    PinLocked,
    /// Provisioned, PUK blocked (the PIN still works; block it too and only RESET helps).
    PukLocked,
}

impl Scenario {
    pub const NAMES: [&'static str; 8] =
        ["fresh", "provisioned", "full", "expiring", "expired", "pin-1-left", "pin-locked", "puk-locked"];

    pub fn name(&self) -> &'static str {
        match self {
            Scenario::Fresh => "fresh",
            Scenario::Provisioned => "provisioned",
            Scenario::Full => "full",
            Scenario::Expiring { .. } => "expiring",
            Scenario::Expired => "expired",
            Scenario::Pin1Left => "pin-1-left",
            Scenario::PinLocked => "pin-locked",
            Scenario::PukLocked => "puk-locked",
        }
    }

    /// With `expiring`, the number of days (default 7).
    pub fn parse(name: &str, expiring_days: Option<u64>) -> Result<Scenario, String> {
        Ok(match name {
            "fresh" => Scenario::Fresh,
            "provisioned" => Scenario::Provisioned,
            "full" => Scenario::Full,
            "expiring" => Scenario::Expiring { days: expiring_days.unwrap_or(7) },
            "expired" => Scenario::Expired,
            "pin-1-left" => Scenario::Pin1Left,
            "pin-locked" => Scenario::PinLocked,
            "puk-locked" => Scenario::PukLocked,
            other => return Err(format!("unknown scenario {other:?}; choose one of {}", Scenario::NAMES.join(", "))),
        })
    }

    pub fn needs_ca(&self) -> bool {
        *self != Scenario::Fresh
    }
}

impl FromStr for Scenario {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scenario::parse(s, None)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("scenario {0} needs a CA to issue the certificate")]
    NoCa(&'static str),
    #[error(transparent)]
    Ca(#[from] ca::CaError),
    #[error("the certificate does not fit on the key")]
    TooLarge,
}

/// Bring `state` into `scenario`. `subject` names the certificate's holder.
pub fn apply(
    state: &mut PersistentState,
    scenario: Scenario,
    ca: Option<&Ca>,
    subject: &str,
    clock: &dyn Clock,
    rng: &mut SimRng,
) -> Result<(), ScenarioError> {
    if scenario == Scenario::Fresh {
        return Ok(());
    }
    let ca = ca.ok_or(ScenarioError::NoCa(scenario.name()))?;
    let now = clock.now_unix();
    let (not_before, not_after) = match scenario {
        Scenario::Expiring { days } => (now - 365 * DAY + days * DAY, now + days * DAY),
        Scenario::Expired => (now - 366 * DAY, now - DAY),
        _ => (now - 60, now + 365 * DAY),
    };
    let mut slots = vec![(Slot::Authentication, PinPolicy::Once)];
    if scenario == Scenario::Full {
        slots.extend([
            (Slot::Signature, PinPolicy::Always),
            (Slot::KeyManagement, PinPolicy::Once),
            (Slot::CardAuthentication, PinPolicy::Never),
        ]);
    }
    let name = ca::parse_name(subject)?;
    for (slot, pin_policy) in slots {
        // Generated on the card, as the issuing process would do it.
        let secret = p256::SecretKey::random(&mut *rng);
        let spki = secret.public_key().to_public_key_der().map_err(|_| ScenarioError::TooLarge)?;
        let cert = ca.issue(&name, spki.as_bytes(), not_before, not_after)?;
        state.keys[slot.index()] = Some(KeySlot::new(&secret, pin_policy, TouchPolicy::Never, Origin::Generated));
        state
            .set_object(slot.certificate_object(), &cert_object::encode(&cert))
            .map_err(|_| ScenarioError::TooLarge)?;
    }
    match scenario {
        Scenario::Pin1Left => state.pin.counter.remaining = 1,
        Scenario::PinLocked => state.pin.counter.remaining = 0,
        Scenario::PukLocked => state.puk.counter.remaining = 0,
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_round_trip() {
        for name in Scenario::NAMES {
            assert_eq!(Scenario::parse(name, None).unwrap().name(), name);
        }
        assert_eq!(Scenario::parse("expiring", None).unwrap(), Scenario::Expiring { days: 7 });
        assert_eq!(Scenario::parse("expiring", Some(30)).unwrap(), Scenario::Expiring { days: 30 });
        assert!(Scenario::parse("nope", None).unwrap_err().contains("pin-locked"));
        assert!(!Scenario::Fresh.needs_ca() && Scenario::Expired.needs_ca());
    }

    #[test]
    fn counters_and_validity_per_scenario() {
        use crate::rng::make_rng;
        use crate::virtual_key::{manufacture, KeySpec};
        use proto::clock::FixedClock;
        const NOW: u64 = 1_790_000_000;
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::create(dir.path(), "CN=t", 3650, &FixedClock(NOW)).unwrap();
        let state_for = |s: Scenario| {
            let mut rng = make_rng(Some(1), 0);
            let mut st = manufacture(&KeySpec::default(), &mut rng, &FixedClock(NOW)).unwrap();
            apply(&mut st, s, Some(&ca), "CN=u", &FixedClock(NOW), &mut rng).unwrap();
            st
        };
        let not_after = |st: &PersistentState| {
            use der::Decode;
            let obj = st.object(Slot::Authentication.certificate_object()).unwrap();
            let der = cert_object::decode(obj).unwrap().certificate;
            x509_cert::Certificate::from_der(der)
                .unwrap()
                .tbs_certificate
                .validity
                .not_after
                .to_unix_duration()
                .as_secs()
        };
        assert_eq!(not_after(&state_for(Scenario::Expiring { days: 3 })), NOW + 3 * DAY);
        assert!(not_after(&state_for(Scenario::Expired)) < NOW);
        assert_eq!(state_for(Scenario::Pin1Left).pin.counter.remaining, 1);
        assert_eq!(state_for(Scenario::PinLocked).pin.counter.remaining, 0);
        let puk = state_for(Scenario::PukLocked);
        assert_eq!((puk.puk.counter.remaining, puk.pin.counter.remaining), (0, 3));
        let mut rng = make_rng(Some(1), 0);
        let mut st = manufacture(&KeySpec::default(), &mut rng, &FixedClock(NOW)).unwrap();
        assert!(matches!(
            apply(&mut st, Scenario::Provisioned, None, "CN=u", &FixedClock(NOW), &mut rng),
            Err(ScenarioError::NoCa("provisioned"))
        ));
    }
}
