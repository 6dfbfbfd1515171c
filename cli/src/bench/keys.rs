//! `ukey bench keys`: what N virtual keys cost in one process (a portal's load test needs
//! thousands): resident memory per idle key, and per key the time to make it, to put a
//! key pair on it, to VERIFY its PIN and to sign, each through the host driver's APDUs.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{ensure, Context, Result};
use clap::Args;
use host_driver::mgmt::MgmtKey;
use host_driver::piv::{PinOutcome, Piv};
use proto::clock::SystemClock;
use proto::piv::Slot;
use serde_json::{json, Value};
use token_sim::{KeySpec, VirtualKey};

use super::stats::percentile;

#[derive(Args, Debug)]
pub struct KeysArgs {
    /// In-memory virtual keys to make and hold at once, each fresh from the factory
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub count: u64,
    #[arg(long)]
    pub json: bool,
}

/// This process's resident set, in bytes (Linux /proc; 0 where it cannot be read).
pub(super) fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("VmRSS:").map(str::to_owned)))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Per-operation times in nanoseconds, summarised in microseconds.
struct Times(Vec<u64>);

impl Times {
    fn json(&mut self) -> Value {
        self.0.sort_unstable();
        let us = |ns: u64| ns as f64 / 1000.0;
        let mean = self.0.iter().sum::<u64>() as f64 / self.0.len().max(1) as f64 / 1000.0;
        json!({"mean_us": mean, "p50_us": us(percentile(&self.0, 0.5)), "p99_us": us(percentile(&self.0, 0.99))})
    }
}

fn timed<T>(times: &mut Times, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let out = f();
    times.0.push(t.elapsed().as_nanos() as u64);
    out
}

fn bar(len: u64, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg:>12} {bar:40} {pos}/{len} {elapsed}").expect("valid template"),
    );
    bar.set_message(what.to_string());
    bar
}

pub fn keys(a: KeysArgs) -> Result<ExitCode> {
    let n = a.count as usize;
    let spec = KeySpec::default();
    let before = rss_bytes();
    let (mut create, mut generate, mut verify, mut sign) = (
        Times(Vec::with_capacity(n)),
        Times(Vec::with_capacity(n)),
        Times(Vec::with_capacity(n)),
        Times(Vec::with_capacity(n)),
    );
    let mut keys = Vec::with_capacity(n);
    let progress = bar(a.count, "making keys");
    for _ in 0..n {
        let key = timed(&mut create, || VirtualKey::in_memory(&spec, &SystemClock)).context("making a key")?;
        keys.push(Piv::new(key));
        progress.inc(1);
    }
    progress.finish_and_clear();
    let idle = rss_bytes();
    let mgmt = MgmtKey::default();
    let digest = [0x5Au8; 32];
    let progress = bar(a.count, "using keys");
    for piv in &mut keys {
        timed(&mut generate, || {
            piv.authenticate(&mgmt)?;
            piv.generate(Slot::Authentication, None, None)
        })?;
        let outcome = timed(&mut verify, || piv.verify_pin(&spec.pin))?;
        ensure!(outcome == PinOutcome::Ok, "VERIFY with the default PIN said {outcome:?}");
        timed(&mut sign, || piv.sign_digest(Slot::Authentication, &digest))?;
        progress.inc(1);
    }
    progress.finish_and_clear();
    let used = rss_bytes();
    let per_key = |rss: u64| rss.saturating_sub(before) as f64 / n as f64;
    let report = json!({
        "keys": n,
        "rss_before_bytes": before,
        "rss_idle_bytes": idle,
        "rss_idle_per_key_bytes": per_key(idle),
        "rss_used_bytes": used,
        "rss_used_per_key_bytes": per_key(used),
        "create": create.json(),
        "mgmt_auth_and_generate": generate.json(),
        "verify": verify.json(),
        "sign": sign.json(),
    });
    drop(keys);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let line = |what: &str, t: &Value| {
        println!(
            "{what:<22} mean {:>8.1} µs   p50 {:>8.1} µs   p99 {:>8.1} µs",
            t["mean_us"].as_f64().unwrap_or(0.0),
            t["p50_us"].as_f64().unwrap_or(0.0),
            t["p99_us"].as_f64().unwrap_or(0.0)
        )
    };
    println!("keys                   {n} in-memory virtual keys, fresh from the factory, held at once");
    println!(
        "RSS                    {:.1} MiB before, {:.1} MiB with the keys idle: {:.0} bytes per key",
        mib(before),
        mib(idle),
        per_key(idle)
    );
    println!(
        "                       {:.1} MiB after a key pair, a VERIFY and a signature on each: {:.0} bytes per key",
        mib(used),
        per_key(used)
    );
    line("make a key", &report["create"]);
    line("mgmt auth + generate", &report["mgmt_auth_and_generate"]);
    line("VERIFY", &report["verify"]);
    line("sign (9A, P-256)", &report["sign"]);
    Ok(ExitCode::SUCCESS)
}
