//! The `ukey` subcommands over the host driver. Only this crate wires concrete pieces together.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;
use host_driver::certinfo::{self, format_time, CertInfo};
use host_driver::piv::OldCertificate;
use host_driver::{csr, inspect, KeyInfo, MgmtKey, PinOutcome, Piv};
use p256::pkcs8::EncodePublicKey;
use proto::clock::SystemClock;
use proto::piv::{Algorithm, PinPolicy, Slot, TouchPolicy};
use proto::Clock;
use serde::Serialize;
use token_sim::piv::state::Flavor;
use token_sim::scenario::Scenario;
use token_sim::virtual_key::KeyError;
use token_sim::{KeySpec, VirtualKey};

use crate::args::{KeyArgs, KeysArgs, MgmtArgs, SignArgs};
use crate::output::{emit, fields, table};
use crate::secrets::{resolve, PinArgs};
use keys::locator::dir_label;
use keys::session::Session;
use proto::secret::{KeyHex, Pin, Puk};

/// Open the key the command names and select PIV on it.
fn open(key: &KeyArgs) -> Result<Session> {
    Ok(Session::open(&key.locator()?)?)
}

pub(crate) fn mgmt_key(m: &MgmtArgs) -> Result<MgmtKey> {
    Ok(match &m.mgmt_key {
        Some(hex) => MgmtKey::from_hex(hex.expose(), None)?,
        None => MgmtKey::default(),
    })
}

// ---- sim ----

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

fn parse_alg(s: &str) -> Result<Algorithm> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "3des" | "tdes" => Algorithm::Tdes,
        "aes128" => Algorithm::Aes128,
        "aes192" => Algorithm::Aes192,
        "aes256" => Algorithm::Aes256,
        other => bail!("unknown management key algorithm {other:?}: use 3des, aes128, aes192 or aes256"),
    })
}

fn parse_version(s: &str) -> Result<[u8; 3]> {
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
fn create_key(a: &SimNewArgs) -> Result<(u32, Scenario)> {
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
    key.provision(spec.scenario, ca.as_ref(), subject, &clock).map_err(|e| match e {
        KeyError::Write(_) => anyhow::anyhow!("could not write {}", dir.display()),
        other => other.into(),
    })?;
    Ok(key.serial())
}

fn print_info(info: &KeyInfo, json: bool, now: u64) {
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

fn days_text(days: i64) -> String {
    if days < 0 {
        format!("expired {} days ago", -days)
    } else {
        format!("{days} days left")
    }
}

pub fn sim_info(key: &KeyArgs, json: bool) -> Result<ExitCode> {
    let info = inspect(&mut *open(key)?, &key.locator()?.label())?;
    print_info(&info, json, SystemClock.now_unix());
    Ok(ExitCode::SUCCESS)
}

// ---- keys ----

/// One key found by `ukey keys`: where it is, and what it holds (or why that is unknown).
#[derive(Serialize)]
struct KeyRow {
    /// "dir" (a virtual key's directory) or "reader" (PC/SC).
    source: &'static str,
    /// The directory or the reader name.
    location: String,
    #[serde(flatten)]
    info: Option<KeyInfo>,
    error: Option<String>,
}

#[derive(Serialize)]
struct PcscReport {
    available: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    readers: Vec<host_driver::pcsc::ReaderState>,
}

#[derive(Serialize)]
struct KeysReport {
    keys: Vec<KeyRow>,
    /// Absent with --no-pcsc.
    #[serde(skip_serializing_if = "Option::is_none")]
    pcsc: Option<PcscReport>,
}

fn key_dirs(a: &KeysArgs) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
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

fn dir_row(dir: &Path) -> KeyRow {
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
fn pcsc_rows(rows: &mut Vec<KeyRow>) -> PcscReport {
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

// ---- PIN ----

#[derive(Serialize)]
struct PinResult {
    ok: bool,
    retries_left: Option<u8>,
    blocked: bool,
    message: String,
}

fn pin_result(outcome: PinOutcome, what: &str, total: Option<u8>) -> PinResult {
    match outcome {
        PinOutcome::Ok => {
            PinResult { ok: true, retries_left: total, blocked: false, message: format!("{what} correct") }
        }
        PinOutcome::WrongPin { retries_left } => PinResult {
            ok: false,
            retries_left: Some(retries_left),
            blocked: false,
            message: format!("verification failed, {retries_left} attempt(s) left"),
        },
        PinOutcome::Blocked => PinResult {
            ok: false,
            retries_left: Some(0),
            blocked: true,
            message: if what == "PIN" {
                "the PIN is locked: unblock it with the PUK (`ukey pin unblock`)".into()
            } else {
                "the PUK is locked: the key must be reset".into()
            },
        },
    }
}

fn report(r: PinResult, json: bool) -> ExitCode {
    let ok = r.ok;
    emit(json, &r, |r| println!("{}", r.message));
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

pub fn pin_verify(key: &KeyArgs, pin: &PinArgs, json: bool) -> Result<ExitCode> {
    let pin = pin.get("PIN")?;
    let mut piv = open(key)?;
    let outcome = piv.verify_pin(&pin)?;
    let total = if outcome == PinOutcome::Ok { piv.pin_retries()?.0 } else { None };
    Ok(report(pin_result(outcome, "PIN", total), json))
}

pub fn pin_change(key: &KeyArgs, pin: &PinArgs, new: Option<Pin>, puk_mode: bool, json: bool) -> Result<ExitCode> {
    let what = if puk_mode { "PUK" } else { "PIN" };
    let old = pin.get(&format!("current {what}"))?;
    let new = resolve(new.as_ref(), None, &format!("new {what}"))?;
    let mut piv = open(key)?;
    let outcome = if puk_mode {
        // With --puk-mode the PIN options carry PUKs.
        piv.change_puk(&Puk::new(old.expose()), &Puk::new(new.expose()))?
    } else {
        piv.change_pin(&old, &new)?
    };
    let mut r = pin_result(outcome, what, None);
    if r.ok {
        r.message = format!("{what} changed");
    }
    Ok(report(r, json))
}

pub fn pin_unblock(key: &KeyArgs, puk: Option<Puk>, new: Option<Pin>, json: bool) -> Result<ExitCode> {
    let puk = resolve(puk.as_ref(), None, "PUK")?;
    let new = resolve(new.as_ref(), None, "new PIN")?;
    let mut piv = open(key)?;
    let mut r = pin_result(piv.unblock_pin(&puk, &new)?, "PUK", None);
    if r.ok {
        r.message = "PIN unblocked and set to the new value".into();
    } else if !r.blocked {
        r.message = format!("wrong PUK, {} attempt(s) left", r.retries_left.unwrap_or(0));
    }
    Ok(report(r, json))
}

#[derive(Serialize)]
struct Retries {
    retries_left: Option<u8>,
    retries_total: Option<u8>,
    blocked: bool,
}

pub fn pin_retries(key: &KeyArgs, json: bool) -> Result<ExitCode> {
    let mut piv = open(key)?;
    let (left, total) = piv.pin_retries()?;
    let r = Retries { retries_left: left, retries_total: total, blocked: left == Some(0) };
    emit(json, &r, |r| match (r.retries_left, r.retries_total) {
        (Some(0), _) => println!("PIN blocked: unblock it with the PUK (`ukey pin unblock`)"),
        (Some(l), Some(t)) => println!("{l} of {t} PIN tries left"),
        (Some(l), None) => println!("{l} PIN tries left"),
        (None, _) => println!("PIN verified in this session"),
    });
    Ok(ExitCode::SUCCESS)
}

// ---- keys, certificates, signatures ----

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

fn write_or_print(out: Option<&Path>, bytes: &[u8]) -> Result<()> {
    match out {
        Some(p) => std::fs::write(p, bytes).with_context(|| format!("cannot write {}", p.display())),
        None => {
            use std::io::Write;
            std::io::stdout().write_all(bytes)?;
            Ok(())
        }
    }
}

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
enum KeySource<'a> {
    /// `--pubkey FILE`.
    File(&'a Path),
    /// The card's metadata (Yubico GET METADATA).
    Metadata,
    /// The certificate in the slot.
    Certificate,
}

/// What is known about the public key of a slot's key.
enum SlotKey<'a> {
    Known(p256::PublicKey, KeySource<'a>),
    /// Nothing tells it; why, in words (what the card lacks).
    Unknown(String),
}

/// The public key of the key in `slot`, as the driver finds it ([`Piv::slot_public_key`]:
/// `--pubkey FILE`, else the metadata, else the certificate), with the CLI's words for what
/// is missing.
fn slot_public_key<'a>(piv: &mut Session, slot: Slot, file: Option<&'a Path>) -> Result<SlotKey<'a>> {
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

/// `6D00: instruction not supported`, to sit inside parentheses.
fn sw_text(sw: proto::Sw) -> String {
    format!("{:04X}: {}", sw.0, sw.meaning())
}

/// A P-256 public key from a file: PEM or DER SubjectPublicKeyInfo (what `ukey key generate`
/// writes), or a certificate of the key.
fn read_public_key(path: &Path) -> Result<p256::PublicKey> {
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
fn not_the_slot_key(slot: Slot, source: KeySource<'_>) -> anyhow::Error {
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

fn verify_or_fail(piv: &mut Session, pin: &Pin) -> Result<()> {
    match piv.verify_pin(pin)? {
        PinOutcome::Ok => Ok(()),
        PinOutcome::WrongPin { retries_left } => bail!("verification failed, {retries_left} attempt(s) left"),
        PinOutcome::Blocked => bail!("the PIN is locked: unblock it with the PUK (`ukey pin unblock`)"),
    }
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

#[derive(Serialize)]
struct Signed {
    slot: String,
    input: String,
    signature: String,
    sha256: String,
}

pub fn sign(a: SignArgs) -> Result<ExitCode> {
    let data = std::fs::read(&a.input).with_context(|| format!("cannot read {}", a.input.display()))?;
    let pin = a.pin.get("PIN")?;
    let mut piv = open(&a.key)?;
    verify_or_fail(&mut piv, &pin)?;
    let sig = piv.sign_message(a.slot, &data)?;
    std::fs::write(&a.out, &sig.der).with_context(|| format!("cannot write {}", a.out.display()))?;
    let out = Signed {
        slot: a.slot.to_string(),
        input: a.input.display().to_string(),
        signature: a.out.display().to_string(),
        sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&data)),
    };
    emit(a.json, &out, |o| println!("signed {} with slot {}: {}", o.input, o.slot, o.signature));
    Ok(ExitCode::SUCCESS)
}

// ---- CA ----

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
