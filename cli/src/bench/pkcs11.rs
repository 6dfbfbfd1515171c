//! `ukey bench pkcs11`: C_Sign (CKM_ECDSA over a SHA-256 digest, P-256) through ukey's
//! PKCS#11 module on a virtual key directory, and through SoftHSMv2 with a P-256 key, in the
//! same run with the same threads, through the `cryptoki` crate; then C_Login and
//! C_FindObjects latency. Prints signs/s for each and the ratio.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use cryptoki::context::{CInitializeArgs, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use serde_json::json;

#[derive(Args, Debug)]
pub struct Pkcs11Args {
    /// Threads signing at once, each with its own session
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Virtual keys for ukey's module, the threads spread over them in turn. One key is one
    /// card, which signs one command at a time as a real one does; SoftHSMv2 keeps one token
    /// (its threads sign at once on it)
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub keys: usize,
    /// Seconds of signing per module
    #[arg(long, default_value_t = 5)]
    pub duration: u64,
    /// ukey's module (default: libukey_pkcs11.so beside this ukey binary)
    #[arg(long, value_name = "PATH")]
    pub module: Option<PathBuf>,
    /// SoftHSMv2's module
    #[arg(long, value_name = "PATH", default_value = "/usr/lib/softhsm/libsofthsm2.so")]
    pub softhsm: PathBuf,
    #[arg(long)]
    pub json: bool,
}

/// DER of the prime256v1 OID.
const P256: [u8; 10] = [0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
const PIN: &str = "123456";

struct Figures {
    signs_per_sec: f64,
    login_ms: f64,
    find_us: f64,
}

/// Sign for `duration` with `threads` sessions, spread in turn over the tokens of `p11`, each
/// logged in; the latencies are the first token's.
fn measure(p11: &Pkcs11, threads: usize, duration: Duration) -> Result<Figures> {
    // Initialised tokens only: SoftHSM always shows one more, blank, for the next C_InitToken.
    let mut slots = Vec::new();
    for slot in p11.get_slots_with_token()? {
        if p11.get_token_info(slot)?.token_initialized() {
            slots.push(slot);
        }
    }
    anyhow::ensure!(!slots.is_empty(), "the module shows no initialised token");
    let mut logged_in = Vec::new();
    for &slot in &slots {
        let session = p11.open_ro_session(slot)?;
        session.login(UserType::User, Some(&AuthPin::new(PIN.into())))?;
        let key = *session
            .find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)])?
            .first()
            .context("no private key on the token")?;
        logged_in.push((slot, key, session));
    }
    let targets: Vec<_> = logged_in.iter().map(|(slot, key, _)| (*slot, *key)).collect();
    let digest = [0x5Au8; 32];
    let count = AtomicU64::new(0);
    let started = Instant::now();
    std::thread::scope(|s| -> Result<()> {
        let workers: Vec<_> = (0..threads)
            .map(|i| {
                let (slot, key) = targets[i % targets.len()];
                let count = &count;
                s.spawn(move || -> Result<()> {
                    let session = p11.open_ro_session(slot)?;
                    while started.elapsed() < duration {
                        session.sign(&Mechanism::Ecdsa, key, &digest)?;
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(())
                })
            })
            .collect();
        for w in workers {
            w.join().map_err(|_| anyhow::anyhow!("a signing thread panicked"))??;
        }
        Ok(())
    })?;
    let signs_per_sec = count.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    // Latency: logout + login on the first session, and a search for the private key.
    let first = &logged_in[0].2;
    let rounds = 20;
    let t = Instant::now();
    for _ in 0..rounds {
        first.logout()?;
        first.login(UserType::User, Some(&AuthPin::new(PIN.into())))?;
    }
    let login_ms = t.elapsed().as_secs_f64() * 1000.0 / rounds as f64;
    let t = Instant::now();
    for _ in 0..200 {
        first.find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)])?;
    }
    let find_us = t.elapsed().as_secs_f64() * 1e6 / 200.0;
    Ok(Figures { signs_per_sec, login_ms, find_us })
}

/// Signatures per second of RustCrypto's p256 SigningKey (RFC 6979, as the card signs, but
/// without the card's generator table) on one thread.
fn bare_p256(duration: Duration) -> f64 {
    use p256::ecdsa::signature::hazmat::PrehashSigner;
    let key = p256::ecdsa::SigningKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < duration {
        let _: p256::ecdsa::Signature = key.sign_prehash(&[0x5A; 32]).expect("a 32-byte prehash signs");
        n += 1;
    }
    n as f64 / started.elapsed().as_secs_f64()
}

/// A SoftHSM token with a P-256 key pair, in `dir`.
fn softhsm_token(path: &Path, dir: &Path) -> Result<Pkcs11> {
    let tokens = dir.join("tokens");
    std::fs::create_dir_all(&tokens)?;
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!("directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n", tokens.display()),
    )?;
    std::env::set_var("SOFTHSM2_CONF", &conf);
    let p11 = Pkcs11::new(path)
        .with_context(|| format!("loading SoftHSMv2 from {} (apt install softhsm2)", path.display()))?;
    p11.initialize(CInitializeArgs::OsThreads)?;
    let slot = *p11.get_slots_with_token()?.first().context("SoftHSM shows no slot")?;
    let so = AuthPin::new("12345678".into());
    p11.init_token(slot, &so, "bench")?;
    let slot = *p11.get_slots_with_token()?.first().context("SoftHSM lost its token")?;
    let session = p11.open_rw_session(slot)?;
    session.login(UserType::So, Some(&so))?;
    session.init_pin(&AuthPin::new(PIN.into()))?;
    session.logout()?;
    session.login(UserType::User, Some(&AuthPin::new(PIN.into())))?;
    session.generate_key_pair(
        &Mechanism::EccKeyPairGen,
        &[Attribute::Token(true), Attribute::EcParams(P256.to_vec()), Attribute::Verify(true)],
        &[Attribute::Token(true), Attribute::Private(true), Attribute::Sensitive(true), Attribute::Sign(true)],
    )?;
    session.logout()?;
    drop(session);
    Ok(p11)
}

/// `keys` virtual key directories, each with a 9A key and certificate, for ukey's module.
fn ukey_token(module: &Path, dir: &Path, keys: usize) -> Result<Pkcs11> {
    use proto::clock::SystemClock;
    use token_sim::scenario::Scenario;
    let ca = ca::Ca::create(&dir.join("ca"), "CN=bench CA", 3650, &SystemClock)?;
    let mut dirs = Vec::new();
    for i in 0..keys {
        let key_dir = dir.join(format!("key{i}"));
        let mut key = token_sim::VirtualKey::create(&key_dir, &token_sim::KeySpec::default(), &SystemClock)?;
        key.provision(Scenario::Provisioned, Some(&ca), "CN=bench", &SystemClock)
            .with_context(|| format!("provisioning {}", key_dir.display()))?;
        dirs.push(key_dir);
    }
    std::env::set_var("UKEY_PKCS11_KEYS", std::env::join_paths(&dirs)?);
    std::env::set_var("UKEY_PKCS11_READERS", "off");
    let p11 = Pkcs11::new(module)
        .with_context(|| format!("loading {} (build it: cargo build --release -p pkcs11)", module.display()))?;
    p11.initialize(CInitializeArgs::OsThreads)?;
    Ok(p11)
}

pub fn pkcs11(a: Pkcs11Args) -> Result<std::process::ExitCode> {
    if a.threads == 0 || a.duration == 0 || a.keys == 0 {
        bail!("--threads, --keys and --duration must be at least 1");
    }
    if a.keys > 64 {
        bail!("--keys is at most 64");
    }
    let module = match &a.module {
        Some(m) => m.clone(),
        // Beside ukey after `cargo build`; `cargo test` leaves it in deps/ only.
        None => {
            let exe = std::env::current_exe()?;
            let beside = exe.with_file_name("libukey_pkcs11.so");
            let deps = exe.with_file_name("deps").join("libukey_pkcs11.so");
            if !beside.exists() && deps.exists() {
                deps
            } else {
                beside
            }
        }
    };
    let dir = tempfile::tempdir()?;
    let duration = Duration::from_secs(a.duration);
    let progress = |what: &str| {
        if !a.json {
            eprintln!("{what}");
        }
    };
    progress(&format!("ukey: {} thread(s) on {} key(s), {} s of C_Sign ...", a.threads, a.keys, a.duration));
    let ukey = measure(&ukey_token(&module, &dir.path().join("ukey"), a.keys)?, a.threads, duration)?;
    progress(&format!("SoftHSMv2: {} thread(s), {} s of C_Sign ...", a.threads, a.duration));
    let softhsm = measure(&softhsm_token(&a.softhsm, &dir.path().join("softhsm"))?, a.threads, duration)?;
    progress(&format!("bare p256 (RustCrypto's SigningKey): 1 thread, {} s ...", a.duration));
    let bare = bare_p256(duration);
    let ratio = ukey.signs_per_sec / softhsm.signs_per_sec;
    let row = |f: &Figures| json!({"signs_per_sec": f.signs_per_sec.round(), "login_ms": (f.login_ms * 100.0).round() / 100.0, "find_objects_us": f.find_us.round()});
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "threads": a.threads, "keys": a.keys, "seconds": a.duration, "ukey": row(&ukey), "softhsm": row(&softhsm),
                "ratio_ukey_to_softhsm": (ratio * 100.0).round() / 100.0,
                "bare_p256_signs_per_sec_one_thread": bare.round(),
            }))?
        );
    } else {
        println!("{:<12} {:>12} {:>12} {:>16}", "module", "signs/s", "C_Login ms", "C_FindObjects us");
        for (name, f) in [("ukey", &ukey), ("SoftHSMv2", &softhsm)] {
            println!("{name:<12} {:>12.0} {:>12.2} {:>16.0}", f.signs_per_sec, f.login_ms, f.find_us);
        }
        println!(
            "\nukey / SoftHSMv2 signs per second: {ratio:.2} ({} threads, ukey on {} key(s), ECDSA P-256 over a digest)",
            a.threads, a.keys
        );
        println!(
            "bare p256 SigningKey in this process, one thread: {bare:.0}/s (the card signs with a generator table)"
        );
    }
    Ok(std::process::ExitCode::SUCCESS)
}
