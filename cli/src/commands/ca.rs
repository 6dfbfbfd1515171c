//! `ukey ca init|issue`: the test CA.

//! The `ukey` subcommands over the host driver. Only this crate wires concrete pieces together.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use host_driver::certinfo::{self};
use proto::clock::SystemClock;

use super::common::*;

#[derive(Args, Debug)]
pub struct CaInitArgs {
    /// Directory for the CA (default $UKEY_HOME/ca)
    pub dir: Option<PathBuf>,
    #[arg(long, default_value = "CN=ukey test CA,O=ukey")]
    pub subject: String,
    /// Validity of the CA certificate in days
    #[arg(long, default_value_t = 3650)]
    pub days: u64,
}

pub fn ca_init(a: CaInitArgs) -> Result<ExitCode> {
    let dir = a.dir.map_or_else(keys::home::ca_dir, Ok)?;
    let ca = ca::Ca::create(&dir, &a.subject, a.days, &SystemClock)?;
    println!("created CA {} in {}", ca.subject(), dir.display());
    Ok(ExitCode::SUCCESS)
}

#[derive(Args, Debug)]
pub struct CaIssueArgs {
    /// CA directory (default $UKEY_HOME/ca)
    #[arg(long, value_name = "DIR")]
    pub ca: Option<PathBuf>,
    /// The certificate request (PEM or DER)
    #[arg(long, value_name = "FILE")]
    pub csr: PathBuf,
    /// Validity in days
    #[arg(long, default_value_t = 365)]
    pub days: u64,
    /// Write the certificate (PEM) here instead of standard output
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

pub fn ca_issue(a: CaIssueArgs) -> Result<ExitCode> {
    let dir = a.ca.map_or_else(keys::home::ca_dir, Ok)?;
    let ca = ca::Ca::open(&dir)?;
    let bytes = std::fs::read(&a.csr).with_context(|| format!("cannot read {}", a.csr.display()))?;
    let der = if bytes.starts_with(b"-----BEGIN") {
        der::pem::decode_vec(&bytes).map_err(|e| anyhow::anyhow!("bad PEM in {}: {e}", a.csr.display()))?.1
    } else {
        bytes
    };
    let cert = ca.issue_from_csr(&der, a.days, &SystemClock)?;
    write_or_print(a.out.as_deref(), certinfo::to_pem(&cert).as_bytes())?;
    Ok(ExitCode::SUCCESS)
}
