//! `ukey cert request|import|export`: certificate requests the key signs, and the slot's
//! certificate in and out.

//! The `ukey` subcommands over the host driver. Only this crate wires concrete pieces together.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;
use host_driver::certinfo::{self, CertInfo};
use host_driver::csr;
use proto::piv::Slot;

use super::common::*;
use crate::args::{KeyArgs, MgmtArgs};
use crate::secrets::PinArgs;
use keys::session::Session;

#[derive(Args, Debug)]
pub struct RequestArgs {
    #[command(flatten)]
    pub key: KeyArgs,
    #[arg(long, default_value = "9a")]
    pub slot: Slot,
    /// Subject name, e.g. "CN=Zhang San,O=Example Co"
    #[arg(long)]
    pub subject: String,
    #[command(flatten)]
    pub pin: PinArgs,
    /// The slot's public key: the PEM `ukey key generate` printed (or wrote with --out), DER,
    /// or a certificate of that key. Needed on cards without the Yubico GET METADATA extension
    /// when the slot holds no certificate of its key; checked against the card's signature
    #[arg(long, value_name = "FILE")]
    pub pubkey: Option<PathBuf>,
    /// Write the CSR (PEM) here instead of standard output
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// Where the public key of a slot's key was learned.
#[derive(Clone, Copy)]
pub(super) enum KeySource<'a> {
    /// `--pubkey FILE`.
    File(&'a Path),
    /// The card's metadata (Yubico GET METADATA).
    Metadata,
    /// The certificate in the slot.
    Certificate,
}

/// What is known about the public key of a slot's key.
pub(super) enum SlotKey<'a> {
    Known(p256::PublicKey, KeySource<'a>),
    /// Nothing tells it; why, in words (what the card lacks).
    Unknown(String),
}

/// The public key of the key in `slot`, as the driver finds it ([`Piv::slot_public_key`]:
/// `--pubkey FILE`, else the metadata, else the certificate), with the CLI's words for what
/// is missing.
pub(super) fn slot_public_key<'a>(piv: &mut Session, slot: Slot, file: Option<&'a Path>) -> Result<SlotKey<'a>> {
    use host_driver::piv::{KeySource as From, MetadataGap, SlotKey as Found};
    use host_driver::PivError;
    let given = file.map(read_public_key).transpose()?;
    let found = match piv.slot_public_key(slot, given) {
        Err(PivError::Empty { .. }) => {
            bail!("slot {slot} has no key (generate one with `ukey key generate --slot {slot}`)")
        }
        found => found?,
    };
    Ok(match found {
        Found::Known(public, From::Given) => SlotKey::Known(public, KeySource::File(file.expect("given from a file"))),
        Found::Known(public, From::Metadata) => SlotKey::Known(public, KeySource::Metadata),
        Found::Known(public, From::Certificate) => SlotKey::Known(public, KeySource::Certificate),
        Found::Contradicted { .. } => bail!(
            "the public key in {} is not the key in slot {slot} (the card's metadata name another one)",
            file.expect("given from a file").display()
        ),
        Found::Unknown { metadata, certificate } => {
            let why = match metadata {
                MetadataGap::NoPublicKey => format!("the card's metadata for slot {slot} give no public key"),
                MetadataGap::NotSupported(sw) => format!(
                    "reading it from the card needs the Yubico GET METADATA extension (INS F7), which this card \
                     does not have (it answered {})",
                    sw_text(sw)
                ),
                MetadataGap::Refused(sw) => {
                    format!("the card refused Yubico GET METADATA (INS F7): it answered {}", sw_text(sw))
                }
            };
            SlotKey::Unknown(match certificate {
                Some(e) => format!(
                    "the public key of slot {slot} is not known: {why}, and the slot's certificate names no P-256 \
                     key ({e})"
                ),
                None => format!("the public key of slot {slot} is not known: {why}, and the slot holds no certificate"),
            })
        }
    })
}

/// A P-256 public key from a file: PEM or DER SubjectPublicKeyInfo (what `ukey key generate`
/// writes), or a certificate of the key.
pub(super) fn read_public_key(path: &Path) -> Result<p256::PublicKey> {
    use p256::pkcs8::DecodePublicKey;
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let (label, der) = if bytes.starts_with(b"-----BEGIN") {
        let (label, der) =
            der::pem::decode_vec(&bytes).map_err(|e| anyhow::anyhow!("bad PEM in {}: {e}", path.display()))?;
        (Some(label), der)
    } else {
        (None, bytes)
    };
    if label != Some("CERTIFICATE") {
        if let Ok(k) = p256::PublicKey::from_public_key_der(&der) {
            return Ok(k);
        }
    }
    if label != Some("PUBLIC KEY") {
        if let Ok(k) = certinfo::public_key(&der) {
            return Ok(k);
        }
    }
    bail!(
        "{} holds no P-256 public key (expected the PEM `ukey key generate` prints, or a certificate)",
        path.display()
    )
}

/// The error for a public key that the slot's key did not sign for, by where it came from.
pub(super) fn not_the_slot_key(slot: Slot, source: KeySource<'_>) -> anyhow::Error {
    match source {
        KeySource::File(p) => anyhow::anyhow!(
            "the public key in {} is not the key in slot {slot}: the card's signature does not verify with it \
             (pass the public key `ukey key generate --slot {slot}` printed for this key)",
            p.display()
        ),
        KeySource::Certificate => anyhow::anyhow!(
            "the certificate in slot {slot} is for a key the slot no longer holds (its key pair was generated \
             again since) and this card cannot report the new one: pass --pubkey FILE with the public key \
             `ukey key generate` printed"
        ),
        KeySource::Metadata => {
            anyhow::anyhow!("the card signed with a key other than the one its metadata report for slot {slot}")
        }
    }
}

pub fn cert_request(a: RequestArgs) -> Result<ExitCode> {
    let pin = a.pin.get("PIN")?;
    let mut piv = open(&a.key)?;
    let (public, source) = match slot_public_key(&mut piv, a.slot, a.pubkey.as_deref())? {
        SlotKey::Known(public, source) => (public, source),
        SlotKey::Unknown(why) => {
            bail!("{why}; pass --pubkey FILE with the public key `ukey key generate` printed (or wrote with --out)")
        }
    };
    verify_or_fail(&mut piv, &pin)?;
    let der = csr::certificate_request(&mut piv, a.slot, &public, &a.subject).map_err(|e| match e {
        host_driver::PivError::NotTheSlotKey { slot } => not_the_slot_key(slot, source),
        e => e.into(),
    })?;
    let pem = der::pem::encode_string("CERTIFICATE REQUEST", der::pem::LineEnding::LF, &der)
        .map_err(|e| anyhow::anyhow!("PEM encoding failed: {e}"))?;
    write_or_print(a.out.as_deref(), pem.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    #[command(flatten)]
    pub key: KeyArgs,
    #[arg(long, default_value = "9a")]
    pub slot: Slot,
    /// Certificate file, PEM or DER
    #[arg(long = "in", value_name = "FILE")]
    pub input: PathBuf,
    /// The slot's public key (PEM or DER, as `ukey key generate` wrote it), to check the
    /// certificate against on a card that cannot report it (no Yubico GET METADATA) and has
    /// no certificate in the slot yet
    #[arg(long, value_name = "FILE")]
    pub pubkey: Option<PathBuf>,
    #[command(flatten)]
    pub mgmt: MgmtArgs,
}

pub fn cert_import(a: ImportArgs) -> Result<ExitCode> {
    let bytes = std::fs::read(&a.input).with_context(|| format!("cannot read {}", a.input.display()))?;
    let der = certinfo::from_pem_or_der(&bytes)?;
    let info = CertInfo::parse(&der).with_context(|| format!("{} is not an X.509 certificate", a.input.display()))?;
    let mut piv = open(&a.key)?;
    let certified = certinfo::public_key(&der)?;
    match slot_public_key(&mut piv, a.slot, a.pubkey.as_deref())? {
        SlotKey::Known(public, source) if public != certified => {
            let whose = match source {
                KeySource::File(p) => format!("the key in {}", p.display()),
                KeySource::Metadata => format!("the key in slot {}", a.slot),
                KeySource::Certificate => format!(
                    "the key of the certificate now in slot {} (if the slot's key pair was generated again since, \
                     pass --pubkey FILE with its public key)",
                    a.slot
                ),
            };
            bail!("the certificate's public key is not {whose}: refusing to store a mismatched pair");
        }
        SlotKey::Known(..) => {}
        SlotKey::Unknown(why) => eprintln!(
            "warning: not checked that the certificate belongs to the key in slot {}: {why}; pass --pubkey FILE \
             to check it",
            a.slot
        ),
    }
    piv.authenticate_auto(&mgmt_key(&a.mgmt)?)?;
    piv.write_certificate(a.slot, &der)?;
    println!("stored certificate for {} in slot {}", info.subject, a.slot);
    Ok(ExitCode::SUCCESS)
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    #[command(flatten)]
    pub key: KeyArgs,
    #[arg(long, default_value = "9a")]
    pub slot: Slot,
    /// Write the PEM here instead of standard output
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

pub fn cert_export(a: ExportArgs) -> Result<ExitCode> {
    let mut piv = open(&a.key)?;
    let Some(der) = piv.read_certificate(a.slot)? else {
        bail!("slot {} holds no certificate", a.slot);
    };
    write_or_print(a.out.as_deref(), certinfo::to_pem(&der).as_bytes())?;
    Ok(ExitCode::SUCCESS)
}
