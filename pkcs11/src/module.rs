//! The module between C_Initialize and C_Finalize: its slots, in the configured order, and
//! which slot each session is on. Everything else is the slots' own ([`crate::slot`]), each
//! behind its own lock; the module's lock (in `ffi`) is held only to look a slot up or route a
//! session, never while a card is used, so a call waiting for a reader another program holds
//! keeps no other call waiting, and a process forked meanwhile finds the module free.

use std::collections::HashMap;
use std::sync::Arc;

use cryptoki_sys::*;

use keys::Locator;

use crate::config;
use crate::slot::{Shared, Slot};
use crate::token::{Rv, Token};

/// Mechanisms every token has, with (min, max) key bits and flags.
pub const MECHANISMS: [(CK_MECHANISM_TYPE, CK_FLAGS); 6] = [
    (CKM_EC_KEY_PAIR_GEN, CKF_HW | CKF_GENERATE_KEY_PAIR | CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS),
    (CKM_ECDH1_DERIVE, CKF_HW | CKF_DERIVE | CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS),
    (CKM_ECDSA, CKF_HW | CKF_SIGN | CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS),
    // SHA-1 for the programs that still ask (OpenSC's PIV module offers it too).
    (CKM_ECDSA_SHA1, CKF_HW | CKF_SIGN | CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS),
    (CKM_ECDSA_SHA256, CKF_HW | CKF_SIGN | CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS),
    (CKM_ECDSA_SHA384, CKF_HW | CKF_SIGN | CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS),
];

pub struct Module {
    /// The process that initialised it: a forked child must initialise its own.
    pub pid: u32,
    /// Where each slot's token comes from (same order as `slots`).
    pub sources: Vec<Locator>,
    slots: Vec<Arc<Slot>>,
    /// The slot of each open session.
    routes: HashMap<CK_SESSION_HANDLE, CK_SLOT_ID>,
    /// Whether each slot had a token when the caller last heard (C_Initialize, or an event).
    reported: Vec<bool>,
}

impl Module {
    /// Open every configured key; one that cannot be opened leaves its slot empty, and says
    /// why. Opening a key in a reader waits while another program holds it: call this without
    /// the module's lock. `parent`: in a forked child, the module the parent process had: the
    /// virtual keys it holds stay the parent's (a key directory serves one process at a time),
    /// so their slots are empty here at once rather than after waiting for the parent to let go.
    pub fn new(parent: Option<&Module>) -> Module {
        let config::Settings { sources, mgmt_key } = config::load();
        let shared = Arc::new(Shared::new(mgmt_key));
        let slots: Vec<Arc<Slot>> = sources
            .iter()
            .enumerate()
            .map(|(i, source)| {
                let held = parent.filter(|p| p.sources.contains(source) && matches!(source, Locator::Dir(_)));
                let token = match held {
                    Some(p) => {
                        tracing::warn!(
                            "{}: held by process {} (the parent); its slot stays empty here",
                            config::slot_description(source),
                            p.pid
                        );
                        None
                    }
                    None => match Token::from_source(source) {
                        Ok(t) => t,
                        Err(e) => {
                            tracing::warn!("{}: {e}; its slot stays empty", config::slot_description(source));
                            None
                        }
                    },
                };
                Arc::new(Slot::new(i as CK_SLOT_ID, config::slot_description(source), token, shared.clone()))
            })
            .collect();
        let reported = slots.iter().map(|s| s.is_present()).collect();
        Module { pid: std::process::id(), sources, slots, routes: HashMap::new(), reported }
    }

    /// C_Finalize, without the module's lock: every logged-in token is logged out (waiting for
    /// an operation still running on it), so the keys are left locked for whoever uses them
    /// next; then they are let go.
    pub fn finalize(self) {
        for slot in &self.slots {
            slot.finalize();
        }
    }

    pub fn slot(&self, id: CK_SLOT_ID) -> Rv<Arc<Slot>> {
        self.slots.get(id as usize).cloned().ok_or(CKR_SLOT_ID_INVALID)
    }

    /// The slot session `h` is on.
    pub fn slot_of_session(&self, h: CK_SESSION_HANDLE) -> Rv<Arc<Slot>> {
        let id = self.routes.get(&h).ok_or(CKR_SESSION_HANDLE_INVALID)?;
        self.slot(*id)
    }

    /// Session `h` is on slot `id`.
    pub fn route(&mut self, h: CK_SESSION_HANDLE, id: CK_SLOT_ID) {
        self.routes.insert(h, id);
    }

    /// Sessions that ended.
    pub fn unroute(&mut self, ended: &[CK_SESSION_HANDLE]) {
        for h in ended {
            self.routes.remove(h);
        }
    }

    /// The readers' slots, for [`Slot::refresh`] (key directories do not come and go).
    pub fn readers(&self) -> Vec<(Arc<Slot>, Locator)> {
        self.slots
            .iter()
            .zip(&self.sources)
            .filter(|(_, source)| matches!(source, Locator::Reader(_)))
            .map(|(slot, source)| (slot.clone(), source.clone()))
            .collect()
    }

    /// The first slot whose token came or went since the caller last heard; it hears now.
    pub fn next_event(&mut self) -> Option<CK_SLOT_ID> {
        let i = (0..self.slots.len()).find(|&i| self.slots[i].is_present() != self.reported[i])?;
        self.reported[i] = self.slots[i].is_present();
        Some(i as CK_SLOT_ID)
    }

    pub fn slot_list(&self, token_present: bool) -> Vec<CK_SLOT_ID> {
        self.slots.iter().filter(|s| !token_present || s.is_present()).map(|s| s.id).collect()
    }
}
