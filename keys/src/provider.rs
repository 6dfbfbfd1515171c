//! The keys of this machine for the agent: keys in PC/SC readers and virtual key directories,
//! each by its [`Locator`] string.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use host_driver::agent::{KeyProvider, KeyRef};
use host_driver::pcsc::Monitor;
use proto::transport::Transport;

use crate::locator::{dir_label, Locator};

/// The keys of this machine: keys in PC/SC readers and virtual key directories.
pub struct MachineKeys {
    pub dirs: Vec<PathBuf>,
    /// Watches the readers between listings; `None` while PC/SC does not answer.
    monitor: Mutex<Option<Monitor>>,
}

impl MachineKeys {
    /// The readers, and the virtual keys in `dirs` (keys, or directories of keys).
    pub fn new(dirs: Vec<PathBuf>) -> MachineKeys {
        MachineKeys { dirs, monitor: Mutex::new(None) }
    }
}

impl KeyProvider for MachineKeys {
    /// Reader changes come at once from pcscd; directories are looked at every `timeout`.
    fn wait_change(&self, timeout: Duration) -> bool {
        let mut m = self.monitor.lock().unwrap_or_else(|p| p.into_inner());
        if m.is_none() {
            *m = Monitor::new().ok();
        }
        let Some(monitor) = m.as_mut() else { return false };
        if let Err(e) = monitor.wait(timeout) {
            tracing::debug!("watching readers: {e}; trying again");
            *m = None;
            return false;
        }
        true
    }

    fn list(&self) -> Vec<KeyRef> {
        let mut out = Vec::new();
        if let Ok(states) = crate::discover::readers() {
            for r in states.into_iter().filter(|r| r.card_present) {
                out.push(KeyRef { id: Locator::Reader(r.name.clone()).to_string(), label: r.name });
            }
        }
        for root in &self.dirs {
            // A served directory shows up as its reader.
            for d in crate::discover::unserved_key_dirs_in(root) {
                let label = dir_label(&d);
                out.push(KeyRef { id: Locator::Dir(d).to_string(), label });
            }
        }
        out
    }

    fn open(&self, id: &str) -> Result<Box<dyn Transport>, String> {
        match id.parse::<Locator>() {
            Ok(l @ (Locator::Reader(_) | Locator::Dir(_))) => l.open().map_err(|e| crate::error::chain(&e)),
            _ => Err(format!("unknown key id {id:?}")),
        }
    }
}
