//! `ukey sign`.

//! The `ukey` subcommands over the host driver. Only this crate wires concrete pieces together.

use std::process::ExitCode;

use anyhow::{Context, Result};
use serde::Serialize;

use super::common::*;
use crate::args::SignArgs;
use crate::output::emit;

#[derive(Serialize)]
pub(super) struct Signed {
    slot: String,
    input: String,
    signature: String,
    sha256: String,
}

pub fn sign(a: SignArgs) -> Result<ExitCode> {
    let data = std::fs::read(&a.input).with_context(|| format!("cannot read {}", a.input.display()))?;
    let pin = a.pin.get("PIN")?;
    let mut piv = open(&a.key)?;
    verify_or_fail(&mut piv, &pin)?;
    let sig = piv.sign_message(a.slot, &data)?;
    std::fs::write(&a.out, &sig.der).with_context(|| format!("cannot write {}", a.out.display()))?;
    let out = Signed {
        slot: a.slot.to_string(),
        input: a.input.display().to_string(),
        signature: a.out.display().to_string(),
        sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&data)),
    };
    emit(a.json, &out, |o| println!("signed {} with slot {}: {}", o.input, o.slot, o.signature));
    Ok(ExitCode::SUCCESS)
}
