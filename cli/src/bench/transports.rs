//! `ukey bench transports`: what each way of reaching a key costs. One APDU (VERIFY without
//! data: the card answers at once) and one signature (9A, P-256, the PIN verified) round
//! trip, through each transport in one run, each on a fresh key in the same state:
//! in-process, USB CCID on the software bus, CCID over USB/IP on loopback, and pcscd + vpcd
//! (when pcscd shows vpcd's first reader empty).

use std::net::TcpListener;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use host_driver::ccid::CcidTransport;
use host_driver::mgmt::MgmtKey;
use host_driver::pcsc::Pcsc;
use host_driver::piv::Piv;
use host_driver::usbip::UsbipLink;
use proto::clock::SystemClock;
use proto::piv::Slot;
use proto::Transport;
use serde_json::{json, Value};
use token_sim::frontends::usbip::server::{self, KeyExports};
use token_sim::{KeySpec, SharedKey, VirtualKey};

use super::stats::percentile;

#[derive(Args, Debug)]
pub struct TransportsArgs {
    /// Round trips of each kind per transport
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(10..=100_000))]
    pub rounds: u64,
    #[arg(long)]
    pub json: bool,
}

/// Something to keep alive while a transport is measured (a served device, a runtime).
type Keep = Box<dyn std::any::Any>;
/// A transport to measure and what keeps it alive.
type Reached = (Box<dyn Transport>, Keep);

fn fresh_key() -> Result<VirtualKey> {
    VirtualKey::in_memory(&KeySpec::default(), &SystemClock).context("making a key")
}

fn usbip(key: VirtualKey) -> Result<Reached> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?.to_string();
    let exports = Arc::new(KeyExports::new(vec![SharedKey::new(key)]));
    std::thread::spawn(move || server::serve(listener, exports, server::Policy::default()));
    let link = UsbipLink::import(&addr, "1-1").context("importing the key over USB/IP")?;
    Ok((Box::new(CcidTransport::open(link).context("CCID over USB/IP")?), Box::new(())))
}

/// The key served to vpcd's first reader, when pcscd shows it empty.
fn vpcd(key: VirtualKey) -> Result<Option<(Reached, String)>> {
    let Ok(pcsc) = Pcsc::establish() else { return Ok(None) };
    let reader = "Virtual PCD 00 00";
    let Some(state) = pcsc.reader_states()?.into_iter().find(|s| s.name == reader) else { return Ok(None) };
    if state.card_present {
        return Ok(None);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    let (_inserted_tx, inserted) = tokio::sync::watch::channel(true);
    let (shutdown_tx, shutdown) = tokio::sync::watch::channel(false);
    let (state_tx, _state) = tokio::sync::watch::channel(token_sim::frontends::vpcd::LinkState::Connecting);
    let control = token_sim::frontends::vpcd::Control { inserted, shutdown };
    let addr = format!("127.0.0.1:{}", token_sim::frontends::vpcd::DEFAULT_PORT);
    runtime.spawn(token_sim::frontends::vpcd::serve(SharedKey::new(key), addr, control, state_tx));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !pcsc.reader_states()?.iter().any(|s| s.name == reader && s.card_present) {
        anyhow::ensure!(Instant::now() < deadline, "pcscd never saw the served key in {reader}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let transport = pcsc.connect(reader)?;
    Ok(Some(((Box::new(transport), Box::new((runtime, shutdown_tx, _inserted_tx))), reader.into())))
}

/// Time `rounds` APDUs and signatures on `t`: (APDU ns, signature ns), each sorted.
fn measure(t: Box<dyn Transport>, rounds: u64) -> Result<(Vec<u64>, Vec<u64>)> {
    let mut piv = Piv::new(t);
    piv.select()?;
    piv.authenticate(&MgmtKey::default())?;
    piv.generate(Slot::Authentication, None, None)?;
    piv.verify_pin(&KeySpec::default().pin)?;
    let digest = [0x5Au8; 32];
    let (mut apdu, mut sign) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let t0 = Instant::now();
        let r = piv.transport().transmit(&[0x00, 0x20, 0x00, 0x80])?;
        apdu.push(t0.elapsed().as_nanos() as u64);
        anyhow::ensure!(r == [0x90, 0x00], "VERIFY status answered {r:02X?}");
        let t0 = Instant::now();
        piv.sign_digest(Slot::Authentication, &digest)?;
        sign.push(t0.elapsed().as_nanos() as u64);
    }
    apdu.sort_unstable();
    sign.sort_unstable();
    Ok((apdu, sign))
}

fn summary(ns: &[u64]) -> Value {
    let us = |v: u64| v as f64 / 1000.0;
    json!({
        "p50_us": us(percentile(ns, 0.5)),
        "p99_us": us(percentile(ns, 0.99)),
        "mean_us": ns.iter().sum::<u64>() as f64 / ns.len().max(1) as f64 / 1000.0,
    })
}

pub fn transports(a: TransportsArgs) -> Result<ExitCode> {
    let mut rows: Vec<(String, Value, Value)> = Vec::new();
    let mut skipped = Vec::new();
    let mut run = |name: &str, made: Result<Reached>| -> Result<()> {
        let (t, keep) = made?;
        let (apdu, sign) = measure(t, a.rounds).with_context(|| format!("measuring {name}"))?;
        drop(keep);
        rows.push((name.to_string(), summary(&apdu), summary(&sign)));
        Ok(())
    };
    run("in-process", fresh_key().map(|k| (Box::new(k) as Box<dyn Transport>, Box::new(()) as Keep)))?;
    run(
        "CCID, software USB bus",
        fresh_key()
            .and_then(|k| Ok((Box::new(keys::ccid::CcidKey::plug(k)?) as Box<dyn Transport>, Box::new(()) as Keep))),
    )?;
    run("CCID over USB/IP (loopback)", fresh_key().and_then(usbip))?;
    match vpcd(fresh_key()?)? {
        Some((reached, reader)) => run(&format!("pcscd + vpcd ({reader})"), Ok(reached))?,
        None => skipped.push("pcscd + vpcd: pcscd is not running with an empty \"Virtual PCD 00 00\""),
    }
    let base = (
        rows[0].1["p50_us"].as_f64().unwrap_or(1.0).max(0.001),
        rows[0].2["p50_us"].as_f64().unwrap_or(1.0).max(0.001),
    );
    let report = json!({
        "rounds": a.rounds,
        "transports": rows.iter().map(|(n, ap, s)| json!({
            "transport": n,
            "apdu": ap,
            "sign": s,
            "apdu_vs_in_process": ap["p50_us"].as_f64().unwrap_or(0.0) / base.0,
            "sign_vs_in_process": s["p50_us"].as_f64().unwrap_or(0.0) / base.1,
        })).collect::<Vec<_>>(),
        "skipped": skipped,
    });
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{} round trips each; p50 (p99) in µs, and p50 against in-process", a.rounds);
    println!("{:<36} {:>22} {:>24}", "transport", "APDU (VERIFY status)", "signature (9A, P-256)");
    for t in report["transports"].as_array().into_iter().flatten() {
        let f = |v: &Value, k: &str| v[k].as_f64().unwrap_or(0.0);
        println!(
            "{:<36} {:>9.1} ({:>7.1}) {:>5.1}x {:>9.1} ({:>7.1}) {:>5.2}x",
            t["transport"].as_str().unwrap_or(""),
            f(&t["apdu"], "p50_us"),
            f(&t["apdu"], "p99_us"),
            f(t, "apdu_vs_in_process"),
            f(&t["sign"], "p50_us"),
            f(&t["sign"], "p99_us"),
            f(t, "sign_vs_in_process"),
        );
    }
    for s in &skipped {
        println!("skipped: {s}");
    }
    Ok(ExitCode::SUCCESS)
}
