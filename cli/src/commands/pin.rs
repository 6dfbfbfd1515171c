//! `ukey pin verify|change|unblock|retries`.

//! The `ukey` subcommands over the host driver. Only this crate wires concrete pieces together.

use std::process::ExitCode;

use anyhow::Result;
use host_driver::PinOutcome;
use serde::Serialize;

use super::common::*;
use crate::args::KeyArgs;
use crate::output::emit;
use crate::secrets::{resolve, PinArgs};
use proto::secret::{Pin, Puk};

#[derive(Serialize)]
pub(super) struct PinResult {
    ok: bool,
    retries_left: Option<u8>,
    blocked: bool,
    message: String,
}

pub(super) fn pin_result(outcome: PinOutcome, what: &str, total: Option<u8>) -> PinResult {
    match outcome {
        PinOutcome::Ok => {
            PinResult { ok: true, retries_left: total, blocked: false, message: format!("{what} correct") }
        }
        PinOutcome::WrongPin { retries_left } => PinResult {
            ok: false,
            retries_left: Some(retries_left),
            blocked: false,
            message: format!("verification failed, {retries_left} attempt(s) left"),
        },
        PinOutcome::Blocked => PinResult {
            ok: false,
            retries_left: Some(0),
            blocked: true,
            message: if what == "PIN" {
                "the PIN is locked: unblock it with the PUK (`ukey pin unblock`)".into()
            } else {
                "the PUK is locked: the key must be reset".into()
            },
        },
    }
}

pub(super) fn report(r: PinResult, json: bool) -> ExitCode {
    let ok = r.ok;
    emit(json, &r, |r| println!("{}", r.message));
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

pub fn pin_verify(key: &KeyArgs, pin: &PinArgs, json: bool) -> Result<ExitCode> {
    let pin = pin.get("PIN")?;
    let mut piv = open(key)?;
    let outcome = piv.verify_pin(&pin)?;
    let total = if outcome == PinOutcome::Ok { piv.pin_retries()?.0 } else { None };
    Ok(report(pin_result(outcome, "PIN", total), json))
}

pub fn pin_change(key: &KeyArgs, pin: &PinArgs, new: Option<Pin>, puk_mode: bool, json: bool) -> Result<ExitCode> {
    let what = if puk_mode { "PUK" } else { "PIN" };
    let old = pin.get(&format!("current {what}"))?;
    let new = resolve(new.as_ref(), None, &format!("new {what}"))?;
    let mut piv = open(key)?;
    let outcome = if puk_mode {
        // With --puk-mode the PIN options carry PUKs.
        piv.change_puk(&Puk::new(old.expose()), &Puk::new(new.expose()))?
    } else {
        piv.change_pin(&old, &new)?
    };
    let mut r = pin_result(outcome, what, None);
    if r.ok {
        r.message = format!("{what} changed");
    }
    Ok(report(r, json))
}

pub fn pin_unblock(key: &KeyArgs, puk: Option<Puk>, new: Option<Pin>, json: bool) -> Result<ExitCode> {
    let puk = resolve(puk.as_ref(), None, "PUK")?;
    let new = resolve(new.as_ref(), None, "new PIN")?;
    let mut piv = open(key)?;
    let mut r = pin_result(piv.unblock_pin(&puk, &new)?, "PUK", None);
    if r.ok {
        r.message = "PIN unblocked and set to the new value".into();
    } else if !r.blocked {
        r.message = format!("wrong PUK, {} attempt(s) left", r.retries_left.unwrap_or(0));
    }
    Ok(report(r, json))
}

#[derive(Serialize)]
pub(super) struct Retries {
    retries_left: Option<u8>,
    retries_total: Option<u8>,
    blocked: bool,
}

pub fn pin_retries(key: &KeyArgs, json: bool) -> Result<ExitCode> {
    let mut piv = open(key)?;
    let (left, total) = piv.pin_retries()?;
    let r = Retries { retries_left: left, retries_total: total, blocked: left == Some(0) };
    emit(json, &r, |r| match (r.retries_left, r.retries_total) {
        (Some(0), _) => println!("PIN blocked: unblock it with the PUK (`ukey pin unblock`)"),
        (Some(l), Some(t)) => println!("{l} of {t} PIN tries left"),
        (Some(l), None) => println!("{l} PIN tries left"),
        (None, _) => println!("PIN verified in this session"),
    });
    Ok(ExitCode::SUCCESS)
}
