//! What the key commands share: opening the key, the management key, output, PIN checks.

//! The `ukey` subcommands over the host driver. Only this crate wires concrete pieces together.

use std::path::Path;

use anyhow::{bail, Context, Result};
use host_driver::{MgmtKey, PinOutcome};

use crate::args::{KeyArgs, MgmtArgs};
use keys::session::Session;
use proto::secret::Pin;

/// Open the key the command names and select PIV on it.
pub(super) fn open(key: &KeyArgs) -> Result<Session> {
    Ok(Session::open(&key.locator()?)?)
}

pub fn mgmt_key(m: &MgmtArgs) -> Result<MgmtKey> {
    Ok(match &m.mgmt_key {
        Some(hex) => MgmtKey::from_hex(hex.expose(), None)?,
        None => MgmtKey::default(),
    })
}

pub(super) fn write_or_print(out: Option<&Path>, bytes: &[u8]) -> Result<()> {
    match out {
        Some(p) => std::fs::write(p, bytes).with_context(|| format!("cannot write {}", p.display())),
        None => {
            use std::io::Write;
            std::io::stdout().write_all(bytes)?;
            Ok(())
        }
    }
}

/// `6D00: instruction not supported`, to sit inside parentheses.
pub(super) fn sw_text(sw: proto::Sw) -> String {
    format!("{:04X}: {}", sw.0, sw.meaning())
}

pub(super) fn verify_or_fail(piv: &mut Session, pin: &Pin) -> Result<()> {
    match piv.verify_pin(pin)? {
        PinOutcome::Ok => Ok(()),
        PinOutcome::WrongPin { retries_left } => bail!("verification failed, {retries_left} attempt(s) left"),
        PinOutcome::Blocked => bail!("the PIN is locked: unblock it with the PUK (`ukey pin unblock`)"),
    }
}

pub(super) fn days_text(days: i64) -> String {
    if days < 0 {
        format!("expired {} days ago", -days)
    } else {
        format!("{days} days left")
    }
}
