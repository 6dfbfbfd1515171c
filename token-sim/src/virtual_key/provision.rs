//! Provisioning: a virtual key brought into a ready-made [`Scenario`] in one call.

use ca::Ca;
use proto::Clock;

use super::error::KeyError;
use super::key::VirtualKey;
use crate::scenario::{self, Scenario};

impl VirtualKey {
    /// Bring the key into `scenario`, written through to its storage: its keys generated on
    /// the card, their certificates issued by `ca` for `subject`, valid as the scenario says
    /// from `clock`'s now, its counters set. `Fresh` changes nothing; every other scenario
    /// needs `ca`.
    pub fn provision(
        &mut self,
        scenario: Scenario,
        ca: Option<&Ca>,
        subject: &str,
        clock: &dyn Clock,
    ) -> Result<(), KeyError> {
        self.card_mut()
            .update_state(|state, rng| scenario::apply(state, scenario, ca, subject, clock, rng))
            .map_err(KeyError::Write)??;
        Ok(())
    }
}
