//! `ukey key generate`.

//! The `ukey` subcommands over the host driver. Only this crate wires concrete pieces together.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Args;
use host_driver::piv::OldCertificate;
use p256::pkcs8::EncodePublicKey;
use proto::piv::{PinPolicy, Slot, TouchPolicy};

use super::common::*;
use crate::args::{KeyArgs, MgmtArgs};

#[derive(Args, Debug)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub key: KeyArgs,
    #[arg(long, default_value = "9a")]
    pub slot: Slot,
    /// PIN policy: never, once, always (default: the slot's: 9a/9d once, 9c always, 9e never)
    #[arg(long)]
    pub pin_policy: Option<String>,
    /// Touch policy: never, always, cached (recorded; a virtual key is always "touched")
    #[arg(long)]
    pub touch_policy: Option<String>,
    #[command(flatten)]
    pub mgmt: MgmtArgs,
    /// Write the public key (PEM) here instead of standard output. Keep it: on a card without
    /// the Yubico GET METADATA extension it is what `ukey cert request --pubkey` needs
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

pub fn key_generate(a: GenerateArgs) -> Result<ExitCode> {
    let pin = match a.pin_policy.as_deref() {
        None => None,
        Some("never") => Some(PinPolicy::Never),
        Some("once") => Some(PinPolicy::Once),
        Some("always") => Some(PinPolicy::Always),
        Some(o) => bail!("unknown PIN policy {o:?}: use never, once or always"),
    };
    let touch = match a.touch_policy.as_deref() {
        None => None,
        Some("never") => Some(TouchPolicy::Never),
        Some("always") => Some(TouchPolicy::Always),
        Some("cached") => Some(TouchPolicy::Cached),
        Some(o) => bail!("unknown touch policy {o:?}: use never, always or cached"),
    };
    let mut piv = open(&a.key)?;
    piv.authenticate_auto(&mgmt_key(&a.mgmt)?)?;
    let new = piv.regenerate(a.slot, pin, touch, OldCertificate::RemoveIfStale)?;
    // The public key first: on a card without metadata this output is the only place it is
    // known, so nothing that can fail after the generation may come before it.
    let pem = new.public.to_public_key_pem(p256::pkcs8::LineEnding::LF)?;
    write_or_print(a.out.as_deref(), pem.as_bytes())?;
    match new.stale_certificate {
        None => {}
        Some(Ok(())) => {
            eprintln!("removed the certificate that was in slot {}: it named the key pair just replaced", a.slot)
        }
        Some(Err(e)) => eprintln!(
            "warning: slot {} still holds the certificate of the key pair just replaced ({e}); delete or replace \
             it with `ukey cert import`",
            a.slot
        ),
    }
    if let Err(host_driver::PivError::NotSupported { sw, .. }) = piv.metadata(a.slot.key_ref()) {
        let kept = match &a.out {
            Some(p) => format!("keep {0} for `ukey cert request --pubkey {0}`", p.display()),
            None => "keep this public key (or generate with --out FILE) for `ukey cert request --pubkey FILE`".into(),
        };
        eprintln!(
            "note: this card has no Yubico GET METADATA extension (INS F7; it answered {}), so it cannot tell this \
             public key later: {kept}",
            sw_text(sw)
        );
    }
    Ok(ExitCode::SUCCESS)
}
