//! `ukey keys`: the virtual keys and the keys in readers.

//! The `ukey` subcommands over the host driver. Only this crate wires concrete pieces together.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Result};
use host_driver::certinfo::format_time;
use host_driver::{inspect, KeyInfo, Piv};
use proto::clock::SystemClock;
use proto::Clock;
use serde::Serialize;

use super::common::*;
use crate::args::KeysArgs;
use crate::output::{emit, table};
use keys::locator::dir_label;

/// One key found by `ukey keys`: where it is, and what it holds (or why that is unknown).
#[derive(Serialize)]
pub(super) struct KeyRow {
    /// "dir" (a virtual key's directory) or "reader" (PC/SC).
    source: &'static str,
    /// The directory or the reader name.
    location: String,
    #[serde(flatten)]
    info: Option<KeyInfo>,
    error: Option<String>,
}

#[derive(Serialize)]
pub(super) struct PcscReport {
    available: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    readers: Vec<host_driver::pcsc::ReaderState>,
}

#[derive(Serialize)]
pub(super) struct KeysReport {
    keys: Vec<KeyRow>,
    /// Absent with --no-pcsc.
    #[serde(skip_serializing_if = "Option::is_none")]
    pcsc: Option<PcscReport>,
}

pub(super) fn key_dirs(a: &KeysArgs) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let roots = if a.dirs.is_empty() { vec![keys::home::keys_dir()?] } else { a.dirs.clone() };
    let mut found = Vec::new();
    for root in &roots {
        if !a.dirs.is_empty() && !root.is_dir() {
            bail!("{} is neither a virtual key nor a directory of keys", root.display());
        }
        found.extend(keys::discover::key_dirs_in(root)?);
    }
    Ok((roots, found))
}

pub(super) fn dir_row(dir: &Path) -> KeyRow {
    let location = dir.display().to_string();
    if let Some(state) = keys::served::served_state(dir) {
        let error = Some(format!("served by `ukey sim serve` ({state}): listed under its reader"));
        return KeyRow { source: "dir", location, info: None, error };
    }
    let inspected = keys::locator::open_dir(dir).map_err(anyhow::Error::from).and_then(|k| {
        let mut piv = Piv::new(k);
        Ok(inspect(&mut piv, &dir_label(dir))?)
    });
    match inspected {
        Ok(info) => KeyRow { source: "dir", location, info: Some(info), error: None },
        Err(e) => KeyRow { source: "dir", location, info: None, error: Some(format!("{e:#}")) },
    }
}

/// Readers and the keys in them. PC/SC missing is a finding, not a failure.
pub(super) fn pcsc_rows(rows: &mut Vec<KeyRow>) -> PcscReport {
    let pcsc = match host_driver::pcsc::Pcsc::establish() {
        Ok(p) => p,
        Err(e) => return PcscReport { available: false, error: Some(e.to_string()), readers: Vec::new() },
    };
    let readers = match pcsc.reader_states() {
        Ok(r) => r,
        Err(e) => return PcscReport { available: false, error: Some(e.to_string()), readers: Vec::new() },
    };
    for r in readers.iter().filter(|r| r.card_present) {
        let inspected = keys::discover::read_reader(&pcsc, &r.name, |piv| inspect(piv, &r.name));
        rows.push(match inspected {
            Ok(info) => KeyRow { source: "reader", location: r.name.clone(), info: Some(info), error: None },
            Err(e) => {
                KeyRow { source: "reader", location: r.name.clone(), info: None, error: Some(keys::error::chain(&e)) }
            }
        });
    }
    PcscReport { available: true, error: None, readers }
}

pub fn keys(a: KeysArgs) -> Result<ExitCode> {
    let (roots, found) = key_dirs(&a)?;
    let mut rows: Vec<KeyRow> = found.iter().map(|d| dir_row(d)).collect();
    let pcsc = (!a.no_pcsc).then(|| pcsc_rows(&mut rows));
    let now = SystemClock.now_unix();
    let report = KeysReport { keys: rows, pcsc };
    emit(a.json, &report, |r| {
        if r.keys.is_empty() {
            println!(
                "no keys found in {} (make one with `ukey sim new DIR`)",
                roots.iter().map(|r| r.display().to_string()).collect::<Vec<_>>().join(", ")
            );
        } else {
            let body: Vec<Vec<String>> = r
                .keys
                .iter()
                .map(|row| {
                    let place = match row.source {
                        "reader" => format!("reader {}", row.location),
                        _ => row.location.clone(),
                    };
                    match &row.info {
                        Some(i) => {
                            let cert = i.auth_cert();
                            vec![
                                place,
                                i.serial.clone().unwrap_or_default(),
                                cert.map(|c| c.subject.clone()).unwrap_or_else(|| "-".into()),
                                cert.map(|c| {
                                    format!("{} ({})", &format_time(c.not_after)[..10], days_text(c.days_left(now)))
                                })
                                .unwrap_or_else(|| "-".into()),
                                i.pin_retries.map(|r| r.to_string()).unwrap_or_else(|| "-".into()),
                            ]
                        }
                        None => vec![place, "-".into(), row.error.clone().unwrap_or_default(), "-".into(), "-".into()],
                    }
                })
                .collect();
            table(&["KEY", "SERIAL", "CERTIFICATE (9A)", "NOT AFTER", "PIN TRIES"], &body);
        }
        match &r.pcsc {
            None => {}
            Some(PcscReport { available: false, error, .. }) => {
                println!("{}; virtual key directories still work", error.as_deref().unwrap_or("PC/SC is unavailable"))
            }
            Some(p) => {
                let empty: Vec<&str> = p.readers.iter().filter(|x| !x.card_present).map(|x| x.name.as_str()).collect();
                let with = p.readers.len() - empty.len();
                print!("PC/SC: {} reader(s), {with} with a card", p.readers.len());
                if !empty.is_empty() {
                    print!("; empty: {}", empty.join(", "));
                }
                println!();
            }
        }
    });
    Ok(ExitCode::SUCCESS)
}
