//! `ukey bench login`: N virtual keys doing full key logins (challenge from the portal, PIN
//! and signature on the key through the agent, validation by the portal) over loopback, and —
//! in the same run — the rate of bare P-256 sign+verify on this machine, for the ratio.
//! `ukey bench keys` (module `keys`): what many keys in one process cost. `ukey bench pkcs11`
//! (module `pkcs11`): ukey's PKCS#11 module against SoftHSMv2.

mod keys;
mod pkcs11;
mod stats;
mod transports;

use stats::percentile;

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

use crate::flows::{self, PASSWORD};
use conformance::system::{Browser, PIN};

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Full key logins per second with N virtual keys, against bare P-256 sign+verify
    Login(LoginArgs),
    /// Memory per idle virtual key with N keys in one process, and per-key make / VERIFY / sign time
    Keys(keys::KeysArgs),
    /// C_Sign per second through ukey's PKCS#11 module and through SoftHSMv2, same run, and
    /// C_Login / C_FindObjects latency
    Pkcs11(pkcs11::Pkcs11Args),
    /// One APDU and one signature round trip through each way of reaching a key, same run:
    /// in-process, USB CCID on the software bus, CCID over USB/IP on loopback, pcscd + vpcd
    Transports(transports::TransportsArgs),
}

#[derive(Args, Debug)]
pub struct LoginArgs {
    /// Virtual keys (1 to 10,000), each with its own enterprise, user and bound account, set
    /// up first (password login and bind through the portal's and the agent's APIs)
    #[arg(long, default_value_t = 4)]
    pub keys: usize,
    /// Logins in flight at once (default: one per key, at most 64). With more keys than this,
    /// each worker logs in with its keys in turn, so 10,000 keys measure the data, not 10,000
    /// connections
    #[arg(long, value_name = "N")]
    pub concurrency: Option<usize>,
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
        BenchCommand::Pkcs11(a) => pkcs11::pkcs11(a),
        BenchCommand::Transports(a) => transports::transports(a),
    }
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

/// Most keys a login bench sets up.
const MAX_KEYS: usize = 10_000;
/// Default ceiling of logins in flight.
const MAX_DEFAULT_CONCURRENCY: usize = 64;

fn bar(len: u64, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    let style = indicatif::ProgressStyle::with_template("{spinner} {msg:<28} {bar:30} {pos}/{len} {elapsed}")
        .expect("valid template");
    bar.set_style(style);
    bar.set_message(what.to_string());
    bar
}

/// Run `op(i)` for every i in 0..n on `workers` tasks at once, ticking `progress`.
async fn for_each<F, Fut>(n: usize, workers: usize, progress: &indicatif::ProgressBar, op: F) -> Result<()>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send,
{
    let next = Arc::new(AtomicU64::new(0));
    let op = Arc::new(op);
    let mut tasks = Vec::new();
    for _ in 0..workers.max(1) {
        let (next, op, progress) = (next.clone(), op.clone(), progress.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= n {
                    return Ok::<_, anyhow::Error>(());
                }
                op(i).await?;
                progress.inc(1);
            }
        }));
    }
    for t in tasks {
        t.await.context("setup task")??;
    }
    Ok(())
}

fn login(a: LoginArgs) -> Result<ExitCode> {
    ensure!((1..=MAX_KEYS).contains(&a.keys), "--keys must be 1 to {MAX_KEYS}");
    ensure!(a.duration >= 1, "--duration must be at least 1 second");
    let concurrency = a.concurrency.unwrap_or(a.keys.min(MAX_DEFAULT_CONCURRENCY));
    ensure!((1..=a.keys).contains(&concurrency), "--concurrency must be 1 to --keys ({})", a.keys);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let rt = crate::services::runtime()?;
    let setup_start = Instant::now();
    let (latencies, errors, elapsed, setup) = rt.block_on(async {
        let ids: Vec<String> = (0..a.keys).map(|i| format!("k{i}")).collect();
        let keys: Vec<(String, Scenario)> = ids.iter().map(|id| (id.clone(), Scenario::Provisioned)).collect();
        // A portal serving many enterprises: each key's certificate names its own.
        let codes: Vec<String> = (0..a.keys).map(|i| format!("91350100MA{i:08}")).collect();
        let subjects: Vec<String> =
            (0..a.keys).map(|i| format!("CN=压测用户{i},organizationIdentifier={},O=压测单位{i}", codes[i])).collect();
        // Every key logs in from 127.0.0.1 as fast as it can: far past the limits a portal
        // keeps per client address and session, which the load test lifts (and says so).
        let making = bar(a.keys as u64, "virtual keys (provisioned)");
        let w = flows::setup_with(
            a.db.as_deref(),
            &keys,
            |c| {
                c.rate_per_minute = u32::MAX;
                c.rate_per_address_per_minute = u32::MAX;
                c.sessions_per_address_per_minute = u32::MAX;
            },
            Some(&making),
            Some(&subjects),
        )
        .await?;
        making.finish();
        eprintln!(
            "portal limits lifted for the load test: requests per session and per address, new sessions per address"
        );
        eprintln!("bench users' passwords hashed at argon2's fast test cost (1 MiB, 1 pass), not the portal's default");
        // One enterprise per key, with one user and one account; each user logs in with its
        // password and binds its key.
        let state = w.state.clone().context("the bench's portal runs in this process")?;
        let hash = portal::password::hash(PASSWORD, portal::password::Cost::FAST);
        let now = proto::Clock::now_unix(&proto::clock::SystemClock) as i64;
        let accounts = bar(a.keys as u64, "enterprises, users, accounts");
        let account_ids: Vec<String> = {
            let mut out = Vec::with_capacity(a.keys);
            for (i, code) in codes.iter().enumerate() {
                let e = state.store.create_enterprise(&format!("压测单位{i}"), code, now).await?;
                state.store.create_user(&e.id, &format!("bench{i}"), &format!("压测用户{i}"), &hash, now).await?;
                out.push(state.store.create_account(&e.id, &format!("压测账号{i}"), now).await?.id);
                accounts.inc(1);
            }
            out
        };
        accounts.finish();
        let binding = bar(a.keys as u64, "password login + bind");
        let (portal, agent) = (w.portal.clone(), w.agent.clone());
        let (ids_b, accounts_b) = (Arc::new(ids.clone()), Arc::new(account_ids));
        for_each(a.keys, concurrency.min(2 * cores), &binding, move |i| {
            let (portal, agent, ids, accounts) = (portal.clone(), agent.clone(), ids_b.clone(), accounts_b.clone());
            async move {
                let mut user = Browser::new(&portal, &agent).await?;
                let login = json!({"username": format!("bench{i}"), "password": PASSWORD});
                let (s, v) = user.post("/api/login/password", login).await?;
                ensure!(s == 200, "password login of bench{i}: {v}");
                let (s, v) = user.bind(&ids[i], &accounts[i..=i]).await?;
                ensure!(s == 200, "binding {}: {v}", ids[i]);
                Ok(())
            }
        })
        .await?;
        binding.finish();
        let setup = setup_start.elapsed();
        eprintln!("set up {} keys, users and bindings in {:.1} s", a.keys, setup.as_secs_f64());

        let spinner = indicatif::ProgressBar::new_spinner();
        spinner
            .set_style(indicatif::ProgressStyle::with_template("{spinner} {elapsed} {msg}").expect("valid template"));
        let count = Arc::new(AtomicU64::new(0));
        let start = Instant::now();
        let deadline = start + Duration::from_secs(a.duration);
        let ids = Arc::new(ids);
        let mut tasks = Vec::new();
        for worker in 0..concurrency {
            let (portal, agent, count, ids) = (w.portal.clone(), w.agent.clone(), count.clone(), ids.clone());
            tasks.push(tokio::spawn(async move {
                let mut b = Browser::new(&portal, &agent).await?;
                let mut lat = Vec::new();
                let mut errors = 0u64;
                // This worker's keys in turn: worker, worker + concurrency, ...
                let mine: Vec<&String> = ids.iter().skip(worker).step_by(concurrency).collect();
                let mut turn = 0;
                while Instant::now() < deadline {
                    let id = mine[turn % mine.len()];
                    turn += 1;
                    let t = Instant::now();
                    match b.key_login(id, PIN, None).await {
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
            spinner.set_message(format!("{n} logins, {:.0}/s", n as f64 / start.elapsed().as_secs_f64()));
            spinner.tick();
        }
        let mut all = Vec::new();
        let mut errors = 0;
        for t in tasks {
            let (lat, e) = t.await.context("login task")??;
            all.extend(lat);
            errors += e;
        }
        let elapsed = start.elapsed();
        spinner.finish_and_clear();
        Ok::<_, anyhow::Error>((all, errors, elapsed, setup))
    })?;
    let rss = keys::rss_bytes();
    let mut sorted = latencies;
    sorted.sort_unstable();
    let logins_per_s = sorted.len() as f64 / elapsed.as_secs_f64();
    let threads = concurrency.min(cores);
    eprintln!("measuring bare P-256 sign+verify on {threads} thread(s) for {} s ...", a.duration);
    let bare = bare_sign_verify(threads, a.duration);
    let ratio = logins_per_s / bare;
    let report: Value = json!({
        "keys": a.keys,
        "concurrency": concurrency,
        "setup_s": setup.as_secs_f64(),
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
        "rss_bytes": rss,
    });
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("setup           {} keys, users, accounts and bindings in {:.1} s", a.keys, setup.as_secs_f64());
        println!(
            "key logins      {} in {:.1} s, {concurrency} at a time over {} keys ({errors} errors)",
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
        println!(
            "process RSS     {:.1} MiB (portal, agent, keys and client in one process)",
            rss as f64 / (1 << 20) as f64
        );
    }
    Ok(if errors == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
