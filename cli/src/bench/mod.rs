//! `ukey bench login`: N virtual keys doing full key logins (challenge from the portal, PIN
//! and signature on the key through the agent, validation by the portal) over loopback, and —
//! in the same run — the rate of bare P-256 sign+verify on this machine, for the ratio.
//! `ukey bench keys` (module `keys`): what many keys in one process cost.

mod keys;

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use clap::{Args, Subcommand};
use p256::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use p256::ecdsa::{Signature, SigningKey};
use serde_json::{json, Value};
use token_sim::scenario::Scenario;

use crate::flows::{self, Browser, PASSWORD, PIN};

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Full key logins per second with N virtual keys, against bare P-256 sign+verify
    Login(LoginArgs),
    /// Memory per idle virtual key with N keys in one process, and per-key make / VERIFY / sign time
    Keys(keys::KeysArgs),
}

#[derive(Args, Debug)]
pub struct LoginArgs {
    /// Virtual keys logging in at the same time
    #[arg(long, default_value_t = 4)]
    pub keys: usize,
    /// Seconds to run the logins (and again the bare sign+verify loop)
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// The portal's database: an empty postgres://... database or sqlite:PATH (default: a temporary SQLite file)
    #[arg(long, value_name = "URL")]
    pub db: Option<String>,
    #[arg(long)]
    pub json: bool,
}

pub fn run(cmd: BenchCommand) -> Result<ExitCode> {
    match cmd {
        BenchCommand::Login(a) => login(a),
        BenchCommand::Keys(a) => keys::keys(a),
    }
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Bare ECDSA P-256 sign + verify (the two operations a login cannot avoid), on `threads`
/// threads for `secs`: operations per second.
fn bare_sign_verify(threads: usize, secs: u64) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let done = done.clone();
            std::thread::spawn(move || {
                let sk = SigningKey::from_slice(&[7u8 + i as u8; 32]).expect("valid scalar");
                let vk = *sk.verifying_key();
                let mut digest = [0x5Au8; 32];
                while Instant::now() < deadline {
                    digest[0] = digest[0].wrapping_add(1);
                    let sig: Signature = sk.sign_prehash(&digest).expect("sign");
                    vk.verify_prehash(&digest, &sig).expect("verify");
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for h in handles {
        let _ = h.join();
    }
    done.load(Ordering::Relaxed) as f64 / secs as f64
}

fn login(a: LoginArgs) -> Result<ExitCode> {
    ensure!(a.keys >= 1 && a.keys <= 64, "--keys must be 1 to 64");
    ensure!(a.duration >= 1, "--duration must be at least 1 second");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let rt = crate::services::runtime()?;
    let (latencies, errors, elapsed) = rt.block_on(async {
        let keys: Vec<(String, Scenario)> = (0..a.keys).map(|i| (format!("k{i}"), Scenario::Provisioned)).collect();
        // Every key logs in from 127.0.0.1 as fast as it can: far past the limits a portal
        // keeps per client address and session, which the load test lifts (and says so).
        let w = flows::setup_with(a.db.as_deref(), &keys, |c| {
            c.rate_per_minute = u32::MAX;
            c.rate_per_address_per_minute = u32::MAX;
            c.sessions_per_address_per_minute = u32::MAX;
        })
        .await?;
        eprintln!(
            "portal limits lifted for the load test: requests per session and per address, new sessions per address"
        );
        let mut user = Browser::new(&w.portal, &w.agent).await?;
        user.post("/api/login/password", json!({"username": "zhangsan", "password": PASSWORD})).await?;
        for (id, _) in &keys {
            let (s, v) = user.bind(id, &w.accounts[..1]).await?;
            ensure!(s == 200, "binding {id}: {v}");
        }
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(indicatif::ProgressStyle::with_template("{spinner} {elapsed} {msg}").expect("valid template"));
        let count = Arc::new(AtomicU64::new(0));
        let start = Instant::now();
        let deadline = start + Duration::from_secs(a.duration);
        let mut tasks = Vec::new();
        for (id, _) in keys.clone() {
            let (portal, agent, count) = (w.portal.clone(), w.agent.clone(), count.clone());
            tasks.push(tokio::spawn(async move {
                let mut b = Browser::new(&portal, &agent).await?;
                let mut lat = Vec::new();
                let mut errors = 0u64;
                while Instant::now() < deadline {
                    let t = Instant::now();
                    match b.key_login(&id, PIN, None).await {
                        Ok((200, _)) => {
                            lat.push(t.elapsed().as_micros() as u64);
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => errors += 1,
                    }
                }
                Ok::<_, anyhow::Error>((lat, errors))
            }));
        }
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let n = count.load(Ordering::Relaxed);
            bar.set_message(format!("{n} logins, {:.0}/s", n as f64 / start.elapsed().as_secs_f64()));
            bar.tick();
        }
        let mut all = Vec::new();
        let mut errors = 0;
        for t in tasks {
            let (lat, e) = t.await.context("login task")??;
            all.extend(lat);
            errors += e;
        }
        let elapsed = start.elapsed();
        bar.finish_and_clear();
        Ok::<_, anyhow::Error>((all, errors, elapsed))
    })?;
    let mut sorted = latencies;
    sorted.sort_unstable();
    let logins_per_s = sorted.len() as f64 / elapsed.as_secs_f64();
    let threads = a.keys.min(cores);
    eprintln!("measuring bare P-256 sign+verify on {threads} thread(s) for {} s ...", a.duration);
    let bare = bare_sign_verify(threads, a.duration);
    let ratio = logins_per_s / bare;
    let report: Value = json!({
        "keys": a.keys,
        "duration_s": elapsed.as_secs_f64(),
        "logins": sorted.len(),
        "errors": errors,
        "logins_per_s": logins_per_s,
        "p50_ms": percentile(&sorted, 0.50) as f64 / 1000.0,
        "p99_ms": percentile(&sorted, 0.99) as f64 / 1000.0,
        "bare_sign_verify_per_s": bare,
        "bare_threads": threads,
        "ratio": ratio,
        "cores": cores,
    });
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "key logins      {} in {:.1} s with {} keys ({errors} errors)",
            sorted.len(),
            elapsed.as_secs_f64(),
            a.keys
        );
        println!("logins/s        {logins_per_s:.1}");
        println!(
            "latency         p50 {:.2} ms, p99 {:.2} ms",
            report["p50_ms"].as_f64().unwrap_or(0.0),
            report["p99_ms"].as_f64().unwrap_or(0.0)
        );
        println!("bare P-256      {bare:.1} sign+verify/s on {threads} thread(s) ({cores} cores)");
        println!("ratio           {ratio:.3} (logins/s / bare sign+verify/s; target >= 0.5)");
    }
    Ok(if errors == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
