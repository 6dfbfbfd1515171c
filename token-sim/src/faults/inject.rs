//! Fault injection: what goes wrong around a card that is itself right — its power fails
//! during a write, its storage fails, it is slow, it is pulled out mid-command.
//!
//! A [`Faults`] handle sits between the card and its storage (every persistent write passes
//! through it) and around each command of a [`VirtualKey`](crate::VirtualKey). Tests and the
//! conformance suite arm one [`Fault`] at a time on a running key; nothing is stored in the
//! key's file. A lost write never happens at all (the store replaces its file atomically), so
//! after a power loss the card holds one of two states: the one before the command's write,
//! or the one after it.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::piv::{PersistentState, Storage, StorageError};

/// One thing that goes wrong. Counts start at 1, from when the fault is armed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The power fails during the Nth persistent write: that write does not happen, the
    /// command gets no answer, the card comes back from the state before the write.
    PowerLossAtWrite(u32),
    /// The power fails right after the Nth write is durable, before the card answers.
    PowerLossAfterWrite(u32),
    /// Every write fails (worn-out or full storage): the card answers 6581 and refuses
    /// everything until it is reopened.
    StorageError,
    /// Every command takes this long more.
    Slow(Duration),
    /// The key is pulled out while the Nth command runs: none of that command's writes
    /// happen, it gets no answer, and the key is out until put back.
    RemovedMidCommand(u32),
}

impl Fault {
    /// The forms [`Fault::parse`] takes, for `--help` and error messages.
    pub const FORMS: &'static str =
        "power-loss-at-write:N, power-loss-after-write:N, storage-error, slow:MILLISECONDS, removed-mid-command:N";

    pub fn parse(spec: &str) -> Result<Fault, String> {
        let (name, arg) = match spec.split_once(':') {
            Some((n, a)) => (n, Some(a)),
            None => (spec, None),
        };
        let count = |what: &str| -> Result<u32, String> {
            match arg.map(str::parse::<u32>) {
                Some(Ok(n)) if n >= 1 => Ok(n),
                _ => Err(format!("{name} needs a count from 1, as in {name}:1 ({what})")),
            }
        };
        match name {
            "power-loss-at-write" => count("the write the power fails during").map(Fault::PowerLossAtWrite),
            "power-loss-after-write" => count("the write after which the power fails").map(Fault::PowerLossAfterWrite),
            "removed-mid-command" => count("the command the key is pulled out during").map(Fault::RemovedMidCommand),
            "storage-error" if arg.is_none() => Ok(Fault::StorageError),
            "slow" => match arg.map(str::parse::<u64>) {
                Some(Ok(ms)) => Ok(Fault::Slow(Duration::from_millis(ms))),
                _ => Err("slow needs the delay per command in milliseconds, as in slow:200".into()),
            },
            _ => Err(format!("no fault {spec:?}; the faults are {}", Fault::FORMS)),
        }
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::PowerLossAtWrite(n) => write!(f, "power-loss-at-write:{n}"),
            Fault::PowerLossAfterWrite(n) => write!(f, "power-loss-after-write:{n}"),
            Fault::StorageError => f.write_str("storage-error"),
            Fault::Slow(d) => write!(f, "slow:{}", d.as_millis()),
            Fault::RemovedMidCommand(n) => write!(f, "removed-mid-command:{n}"),
        }
    }
}

/// How a command ended, as far as the faults are concerned.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Ending {
    /// Normally: the card's answer stands.
    Answered,
    /// The power failed: the card must come back from `durable`.
    PowerLost(Box<PersistentState>),
    /// The key was pulled out: as a power loss, and the key is out.
    Removed(Box<PersistentState>),
}

#[derive(Default)]
struct Plan {
    fault: Option<Fault>,
    writes: u32,
    commands: u32,
    /// The power is gone for the rest of this command: no write happens.
    dark: bool,
    /// The key is being pulled out during this command.
    pulling: bool,
    /// What the storage holds: the card's state after the last write that happened.
    durable: Option<PersistentState>,
    /// Writes are held back during this command (the decrement-after-compare defect).
    defer: bool,
    deferred: Option<PersistentState>,
    power_losses: u32,
}

impl Plan {
    /// One write reaching the storage.
    fn commit(&mut self, state: &PersistentState, storage: &mut dyn Storage) -> Result<(), StorageError> {
        if self.dark {
            return Err(StorageError);
        }
        if self.fault == Some(Fault::StorageError) {
            return Err(StorageError);
        }
        self.writes += 1;
        if self.pulling || self.fault == Some(Fault::PowerLossAtWrite(self.writes)) {
            self.lose_power();
            return Err(StorageError);
        }
        storage.persist(state)?;
        self.durable = Some(state.clone());
        if self.fault == Some(Fault::PowerLossAfterWrite(self.writes)) {
            self.lose_power();
        }
        Ok(())
    }

    fn lose_power(&mut self) {
        self.dark = true;
        self.power_losses += 1;
        if !self.pulling {
            // A power loss happens once; the key then runs on.
            self.fault = None;
        }
    }
}

/// The faults of one running key: cloned handles share it (the key holds one, a test or the
/// suite another, to arm faults while the key runs).
#[derive(Clone, Default)]
pub struct Faults(Arc<Mutex<Plan>>);

impl std::fmt::Debug for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Faults").field("fault", &self.plan().fault).finish()
    }
}

impl Faults {
    fn plan(&self) -> MutexGuard<'_, Plan> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Arm `fault`, replacing any other; its counts start now.
    pub fn arm(&self, fault: Fault) {
        let mut p = self.plan();
        p.fault = Some(fault);
        p.writes = 0;
        p.commands = 0;
    }

    /// Nothing goes wrong any more.
    pub fn disarm(&self) {
        self.plan().fault = None;
    }

    /// The fault armed, until it has happened (a power loss happens once; the others last).
    pub fn armed(&self) -> Option<Fault> {
        self.plan().fault
    }

    /// How many times the power was lost (or the key pulled out) so far.
    pub fn power_losses(&self) -> u32 {
        self.plan().power_losses
    }

    /// Start watching a card whose storage holds `state`.
    pub(crate) fn attach(&self, state: &PersistentState) {
        self.plan().durable = Some(state.clone());
    }

    /// A write from the card to `storage`.
    pub(crate) fn write(&self, state: &PersistentState, storage: &mut dyn Storage) -> Result<(), StorageError> {
        let mut p = self.plan();
        if p.defer && !p.dark {
            p.deferred = Some(state.clone());
            return Ok(());
        }
        p.commit(state, storage)
    }

    /// A command is about to reach the card; `defer`: hold its writes back. Returns how long
    /// the card takes over it beyond its own work.
    pub(crate) fn begin(&self, defer: bool) -> Option<Duration> {
        let mut p = self.plan();
        p.commands += 1;
        p.defer = defer;
        if p.fault == Some(Fault::RemovedMidCommand(p.commands)) {
            p.pulling = true;
        }
        match p.fault {
            Some(Fault::Slow(d)) => Some(d),
            _ => None,
        }
    }

    /// The card has answered; writes held back go to `storage` now (one, only if the PIN's
    /// or PUK's count changed: a wrong PIN is written down, a right one leaves no trace).
    pub(crate) fn end(&self, storage: &mut dyn Storage) -> Ending {
        let mut p = self.plan();
        p.defer = false;
        if let Some(held) = p.deferred.take() {
            let changed = p
                .durable
                .as_ref()
                .is_none_or(|d| d.pin.counter != held.pin.counter || d.puk.counter != held.puk.counter);
            if changed {
                let _ = p.commit(&held, storage);
            }
        }
        let pulled = std::mem::take(&mut p.pulling);
        if pulled {
            p.fault = None;
            if !p.dark {
                p.power_losses += 1;
            }
        }
        let dark = std::mem::take(&mut p.dark);
        if !(dark || pulled) {
            return Ending::Answered;
        }
        let durable = Box::new(p.durable.clone().expect("attached before the first command"));
        if pulled {
            Ending::Removed(durable)
        } else {
            Ending::PowerLost(durable)
        }
    }
}

impl proto::transport::PowerSwitch for Faults {
    fn cut_at_next_write(&mut self) {
        self.arm(Fault::PowerLossAtWrite(1));
    }
    fn cancel(&mut self) {
        self.disarm();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_parse_and_print_back() {
        for spec in
            ["power-loss-at-write:3", "power-loss-after-write:1", "storage-error", "slow:250", "removed-mid-command:2"]
        {
            assert_eq!(Fault::parse(spec).unwrap().to_string(), spec);
        }
        for bad in ["power-loss-at-write", "power-loss-at-write:0", "slow", "storage-error:1", "melt"] {
            let e = Fault::parse(bad).unwrap_err();
            assert!(e.contains(':') || e.contains("faults are"), "{bad}: {e}");
        }
    }
}
