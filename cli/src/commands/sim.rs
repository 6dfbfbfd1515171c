//! `ukey sim new` and `ukey sim info`: making virtual keys and telling what a key holds.

//! The `ukey` subcommands over the host driver. Only this crate wires concrete pieces together.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;
use host_driver::certinfo::format_time;
use host_driver::{inspect, KeyInfo, MgmtKey};
use proto::clock::SystemClock;
use proto::piv::Algorithm;
use proto::Clock;
use token_sim::piv::state::Flavor;
use token_sim::scenario::Scenario;
use token_sim::{KeySpec, VirtualKey};

use super::common::*;
use crate::args::KeyArgs;
use crate::output::{emit, fields};
use keys::locator::dir_label;
use proto::secret::{KeyHex, Pin, Puk};

#[derive(Args, Debug)]
pub struct SimNewArgs {
    /// Directory for the new key (created; must not hold a key yet)
    pub dir: PathBuf,
    /// Ready-made state: fresh, provisioned, expiring, expired, pin-1-left, pin-locked, puk-locked
    #[arg(long, default_value = "fresh")]
    pub scenario: String,
    /// With --scenario expiring: days until the certificate expires
    #[arg(long, value_name = "N")]
    pub days: Option<u64>,
    /// CA that issues the scenario's certificate (created if missing; default $UKEY_HOME/ca)
    #[arg(long, value_name = "DIR")]
    pub ca: Option<PathBuf>,
    /// Manufacturer CA that issues the key's attestation certificate (F9), as Yubico's does for
    /// a YubiKey (created if missing; default $UKEY_HOME/factory). Portals accept certificate
    /// applications only from keys whose attestation chains to a manufacturer they trust
    #[arg(long, value_name = "DIR")]
    pub factory: Option<PathBuf>,
    /// Subject of the scenario's certificate. The default names the demo enterprise of `ukey
    /// portal seed` by its credit code (organizationIdentifier), which binding checks
    #[arg(long, default_value = portal::seed::DEFAULT_SUBJECT)]
    pub subject: String,
    /// Initial PIN (6 to 8 characters)
    #[arg(long, default_value = "123456", hide_default_value = true)]
    pub pin: Pin,
    /// Initial PUK (6 to 8 characters)
    #[arg(long, default_value = "12345678", hide_default_value = true)]
    pub puk: Puk,
    /// Initial management key, hex (default 010203..08 x3, for 3DES and AES-192; AES-128 and
    /// AES-256 have no default)
    #[arg(long, value_name = "HEX")]
    pub mgmt_key: Option<KeyHex>,
    /// Management key algorithm: 3des, aes128, aes192, aes256
    #[arg(long, default_value = "3des")]
    pub mgmt_alg: String,
    /// PIN tries before it blocks (1 to 15)
    #[arg(long, default_value_t = 3)]
    pub pin_retries: u8,
    /// PUK tries before it blocks (1 to 15)
    #[arg(long, default_value_t = 3)]
    pub puk_retries: u8,
    /// Fixed serial number (default: random, or derived from --seed)
    #[arg(long)]
    pub serial: Option<u32>,
    /// Deterministic mode for tests: seed the key's RNG (the same commands give the same bytes).
    /// Whoever knows or guesses the seed predicts the key's challenges: never for real use
    #[arg(long)]
    pub seed: Option<u64>,
    /// Firmware version the key reports (Yubico GET VERSION)
    #[arg(long, default_value = "5.4.3")]
    pub firmware: String,
    /// A plain PIV card: no Yubico extensions (GET VERSION/SERIAL/METADATA answer 6D00)
    #[arg(long)]
    pub plain: bool,
    #[arg(long)]
    pub json: bool,
}

pub(super) fn parse_alg(s: &str) -> Result<Algorithm> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "3des" | "tdes" => Algorithm::Tdes,
        "aes128" => Algorithm::Aes128,
        "aes192" => Algorithm::Aes192,
        "aes256" => Algorithm::Aes256,
        other => bail!("unknown management key algorithm {other:?}: use 3des, aes128, aes192 or aes256"),
    })
}

pub(super) fn parse_version(s: &str) -> Result<[u8; 3]> {
    let parts: Vec<u8> =
        s.split('.').map(str::parse).collect::<Result<_, _>>().with_context(|| format!("bad version {s:?}"))?;
    parts.try_into().map_err(|_| anyhow::anyhow!("version must look like 5.4.3, got {s:?}"))
}

pub fn sim_new(a: SimNewArgs) -> Result<ExitCode> {
    let clock = SystemClock;
    let (serial, scenario) = create_key(&a)?;
    let info = inspect(&mut *open(&KeyArgs::dir(&a.dir))?, &dir_label(&a.dir))?;
    if !a.json {
        // The serial the card shows: a plain card has no Yubico serial, only its CHUID's GUID.
        let shown = info.serial.clone().unwrap_or_else(|| serial.to_string());
        println!("created virtual key {} (serial {shown}, scenario {})", a.dir.display(), scenario.name());
    }
    print_info(&info, a.json, clock.now_unix());
    Ok(ExitCode::SUCCESS)
}

/// Make the virtual key `a` describes: its serial and scenario.
pub(super) fn create_key(a: &SimNewArgs) -> Result<(u32, Scenario)> {
    let scenario = Scenario::parse(&a.scenario, a.days).map_err(anyhow::Error::msg)?;
    let mgmt_alg = parse_alg(&a.mgmt_alg)?;
    let mgmt_key = match &a.mgmt_key {
        Some(h) => MgmtKey::from_hex(h.expose(), Some(mgmt_alg))?.bytes().into(),
        // The well-known default fits 3DES and AES-192 (YubiKey 5.7 ships it as AES-192).
        None if mgmt_alg.key_len() == Some(24) => proto::piv::defaults::MANAGEMENT_KEY[..].into(),
        None => bail!("an AES-128 or AES-256 management key has no default: give it with --mgmt-key"),
    };
    let spec = KeySpec {
        pin: a.pin.clone(),
        puk: a.puk.clone(),
        mgmt_alg,
        mgmt_key,
        pin_retries: a.pin_retries,
        puk_retries: a.puk_retries,
        serial: a.serial,
        flavor: if a.plain { Flavor::Plain } else { Flavor::Yubico { version: parse_version(&a.firmware)? } },
        seed: a.seed,
        scenario,
        factory: Some(keys::factory::factory(a.factory.as_deref())?),
    };
    let serial = make_key(&a.dir, &spec, a.ca.as_deref(), &a.subject)?;
    Ok((serial, scenario))
}

/// Make the virtual key `spec` describes in `dir` and provision its scenario, whose
/// certificates the CA in `ca_dir` (default `$UKEY_HOME/ca`, created if missing) issues for
/// `subject`. Returns the key's serial.
pub fn make_key(dir: &Path, spec: &KeySpec, ca_dir: Option<&Path>, subject: &str) -> Result<u32> {
    let clock = SystemClock;
    let ca = if spec.scenario.needs_ca() {
        let dir = ca_dir.map(Path::to_path_buf).map_or_else(keys::home::ca_dir, Ok)?;
        Some(
            ca::Ca::open_or_create(&dir, "CN=ukey test CA,O=ukey", 3650, &clock)
                .with_context(|| format!("CA in {}", dir.display()))?,
        )
    } else {
        None
    };
    let mut key = VirtualKey::create(dir, spec, &clock)?;
    key.provision(spec.scenario, ca.as_ref(), subject, &clock)
        .with_context(|| format!("provisioning {}", dir.display()))?;
    Ok(key.serial())
}

pub(super) fn print_info(info: &KeyInfo, json: bool, now: u64) {
    emit(json, info, |i| {
        let retries = match (i.pin_retries, i.pin_retries_total) {
            (Some(r), Some(t)) => format!("{r} of {t}"),
            (Some(r), None) => r.to_string(),
            _ => "verified".into(),
        };
        let mut rows = vec![
            ("label", i.label.clone()),
            ("serial", i.serial.clone().unwrap_or_else(|| "-".into())),
            ("firmware", i.version.clone().unwrap_or_else(|| "- (plain PIV)".into())),
            ("PIN tries left", retries),
        ];
        if i.certificates.is_empty() {
            rows.push(("certificates", "none".into()));
        }
        fields(&rows);
        for c in &i.certificates {
            println!("  slot {}:", c.slot);
            fields(&[
                ("  subject", c.cert.subject.clone()),
                ("  issuer", c.cert.issuer.clone()),
                ("  not after", format!("{} ({})", format_time(c.cert.not_after), days_text(c.cert.days_left(now)))),
            ]);
        }
    });
}

pub fn sim_info(key: &KeyArgs, json: bool) -> Result<ExitCode> {
    let info = inspect(&mut *open(key)?, &key.locator()?.label())?;
    print_info(&info, json, SystemClock.now_unix());
    Ok(ExitCode::SUCCESS)
}
