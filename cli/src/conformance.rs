//! `ukey conformance`: judge a PIV key against the standard, check by check. The catalog,
//! runner and report are the `conformance` crate's; this only parses arguments and prints.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;
use conformance::{catalog, Card, Secrets, Selection};
use proto::{Clock, Transport};
use token_sim::piv::state::Flavor;
use token_sim::scenario::Scenario;
use token_sim::KeySpec;

use crate::args::KeyArgs;

/// Judge a PIV key — virtual or real — against NIST SP 800-73-4, ISO 7816-4 and the Yubico
/// extensions, check by check.
///
///   ukey conformance --list                         # the catalog
///   ukey conformance --sim                          # a fresh virtual key of its own
///   ukey conformance --sim --defect chaining-broken # ... with a defect the suite must catch
///   ukey conformance --sim --fault power-loss-at-write:3   # ... losing power once
///   ukey conformance --reader 'Virtual PCD 00 00'   # a key in a PC/SC reader
///   ukey conformance --key ./alice --only verify --json
///   ukey conformance --reader NAME --destructive --confirm 12345678   # also GENERATE, lockout
///
/// Exit status 0 only when every must-check that applies passed (a feature the key lacks is
/// "not supported", not a failure). Checks need the key's PIN and PUK (--pin, --puk: never
/// guessed) and management key (factory default unless given); one lacking what it needs says
/// "skipped", and the run is then incomplete (exit 1). A PIN or PUK try a check spends is
/// given back; the report lists anything the run did to them and could not undo.
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct ConformanceArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// Judge a fresh virtual key made for the run (scenario full: keys and certificates in
    /// 9A, 9C, 9D and 9E)
    #[arg(long, conflicts_with_all = ["key", "reader", "ccid"])]
    sim: bool,
    /// With --sim: a plain PIV card, without the Yubico extensions
    #[arg(long, requires = "sim")]
    plain: bool,
    /// With --sim: the key has this defect (`ukey sim defects` lists them); the suite should
    /// catch it
    #[arg(long, value_name = "NAME", requires = "sim")]
    defect: Option<String>,
    /// With --sim: something goes wrong around the key while the suite runs:
    /// power-loss-at-write:N, power-loss-after-write:N, storage-error, slow:MS,
    /// removed-mid-command:N (counted from the first check)
    #[arg(long, value_name = "FAULT", requires = "sim")]
    fault: Option<String>,
    /// With --reader: the key in that reader is served by `ukey sim serve` from DIR; the
    /// suite may cut its power through the server's control socket (the check that a PIN's
    /// try is written before the PIN is compared needs a hand on the power)
    #[arg(long, value_name = "DIR", requires = "reader")]
    power: Option<std::path::PathBuf>,
    /// Also run the destructive checks: GENERATE makes a key pair in retired slot 95 (in 9D on
    /// a card without retired slots); the PIN is blocked with wrong tries and unblocked with
    /// the PUK to the same PIN; RESET is tried with the PIN unblocked. Each is followed by
    /// putting the key back (objects rewritten, PIN verified), reported per check. Needs
    /// --confirm
    #[arg(long)]
    destructive: bool,
    /// With --destructive: the key's serial, or its CHUID GUID in hex, typed back (the key you
    /// mean to change)
    #[arg(long, value_name = "SERIAL|GUID", requires = "destructive")]
    confirm: Option<String>,
    /// Print the catalog instead of running it
    #[arg(long)]
    list: bool,
    /// Only these checks: IDs (PIV-VERIFY-002), prefixes (PIV-VERIFY-*) or families (verify);
    /// comma-separated or repeated
    #[arg(long, value_delimiter = ',', value_name = "CHECKS")]
    only: Vec<String>,
    /// Leave these checks out (same forms as --only)
    #[arg(long, value_delimiter = ',', value_name = "CHECKS")]
    skip: Vec<String>,
    /// The key's PIN. Not given, no check sends it (with --sim the factory 123456 is the
    /// key's own). Given, it is tried once on first need, only with two or more tries left;
    /// every try a check spends is given back with it, and what could not be is reported
    #[arg(long, env = "UKEY_PIN", hide_env_values = true)]
    pin: Option<proto::secret::Pin>,
    /// The key's PUK (not given: not sent; --sim: 12345678). Given, it is tried once even on a
    /// card that cannot say how many PUK tries it has left (a plain PIV card), so the PUK
    /// checks run there (each wrong PUK they send is given back at once by the right one; a
    /// card allowing fewer than two PUK tries would be blocked); a wrong --puk costs one of its
    /// tries, which the report says
    #[arg(long, env = "UKEY_PUK", hide_env_values = true)]
    puk: Option<proto::secret::Puk>,
    #[command(flatten)]
    mgmt: crate::args::MgmtArgs,
    /// JSON on stdout instead of the table
    #[arg(long)]
    json: bool,
    /// Also write the results as JUnit XML (for CI)
    #[arg(long, value_name = "FILE")]
    junit: Option<std::path::PathBuf>,
    /// Also write one self-contained HTML page (the key, each check, status words, timing)
    #[arg(long, value_name = "FILE")]
    html: Option<std::path::PathBuf>,
}

pub fn run(a: ConformanceArgs) -> Result<ExitCode> {
    let selection = Selection {
        only: a.only.clone(),
        skip: a.skip.clone(),
        destructive: a.destructive,
        throwaway: a.sim,
        try_puk: a.puk.is_some(),
    };
    let unknown = selection.unknown();
    if !unknown.is_empty() {
        bail!("no check matches {}: see `ukey conformance --list`", unknown.join(", "));
    }
    if a.list {
        return list(&selection, a.json);
    }
    let defect = a.defect.as_deref().map(token_sim::faults::Defect::parse).transpose().map_err(anyhow::Error::msg)?;
    let fault = a.fault.as_deref().map(token_sim::faults::Fault::parse).transpose().map_err(anyhow::Error::msg)?;
    let mut temp = None;
    let mut faults = None;
    let transport: Box<dyn Transport> = if a.sim {
        let dir = tempfile::tempdir().context("a directory for the --sim key")?;
        let key_dir = dir.path().join("sim");
        // As `ukey sim new DIR --scenario full [--plain]` makes it.
        let spec = KeySpec {
            flavor: if a.plain { Flavor::Plain } else { KeySpec::default().flavor },
            scenario: Scenario::Full,
            factory: Some(keys::factory::factory(None)?),
            ..KeySpec::default()
        };
        crate::commands::make_key(&key_dir, &spec, None, portal::seed::DEFAULT_SUBJECT)?;
        temp = Some(dir);
        let mut key = keys::locator::open_dir(&key_dir)?;
        key.set_defect(defect);
        faults = Some(key.faults());
        Box::new(key)
    } else {
        if !a.key.is_given() {
            bail!("which key? --sim, --key DIR, --reader NAME (see `ukey keys`) or --ccid DIR");
        }
        a.key.locator()?.open()?
    };
    // A PIN or PUK not given is never sent to a key someone owns (on --sim the factory
    // values are the key's own).
    let mut secrets = Secrets::default();
    if let Some(p) = a.pin {
        secrets.pin = p;
        secrets.pin_given = true;
    }
    if let Some(p) = a.puk {
        secrets.puk = p;
        secrets.puk_given = true;
    }
    secrets.mgmt = crate::commands::mgmt_key(&a.mgmt)?;
    let mut card = Card::new(transport, secrets);
    if let Some(f) = faults {
        if let Some(fault) = fault {
            f.arm(fault);
        }
        card = card.with_power(Box::new(f));
    }
    if let Some(dir) = &a.power {
        card = card.with_power(Box::new(keys::served::ServedPower::new(dir)?));
    }
    if a.destructive && !a.sim {
        confirmed(&mut card, a.confirm.as_deref())?;
    }
    // Progress on a terminal only: a log or a pipe gets the report alone.
    let live = !a.json && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut progress = |n: usize, total: usize, o: &conformance::Outcome| {
        if live {
            eprint!("\r[{n}/{total}] {:<18} {:<14}", o.id, o.verdict.name());
            let _ = std::io::stderr().flush();
        }
    };
    let report = conformance::run(&mut card, &selection, &mut progress);
    drop(temp);
    if let Some(path) = &a.junit {
        std::fs::write(path, report.junit()).with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &a.html {
        let now = host_driver::certinfo::format_time(proto::clock::SystemClock.now_unix());
        std::fs::write(path, report.html(&now)).with_context(|| format!("writing {}", path.display()))?;
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report.to_json())?);
    } else {
        if live {
            eprintln!();
        }
        print!("{}", report.table());
    }
    Ok(if report.conforms() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// `ukey sim defects`: the defect profiles.
pub fn list_defects(json: bool) -> Result<ExitCode> {
    use token_sim::faults::Defect;
    if json {
        let rows: Vec<_> = Defect::ALL
            .iter()
            .map(|d| serde_json::json!({"name": d.name(), "what": d.describe(), "caught_by": d.caught_by()}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        for d in Defect::ALL {
            println!("{:<26} {:<15} {}", d.name(), d.caught_by(), d.describe());
        }
        println!(
            "\nukey sim serve --defect NAME serves one to PC/SC; ukey conformance --sim --defect NAME judges one."
        );
        println!("Faults (--fault, with --sim): {}", token_sim::faults::Fault::FORMS);
    }
    Ok(ExitCode::SUCCESS)
}

/// `--destructive` on a key someone owns: only with its serial or CHUID GUID typed back.
fn confirmed(card: &mut Card, typed: Option<&str>) -> Result<()> {
    let id = conformance::identify(card);
    let serial = id.serial.map(|s| s.to_string());
    let matches = |t: &str| {
        serial.as_deref() == Some(t.trim()) || id.guid.as_deref().is_some_and(|g| g.eq_ignore_ascii_case(t.trim()))
    };
    match typed {
        Some(t) if matches(t) => Ok(()),
        _ => bail!(
            "--destructive changes {}: type back its serial ({}) or CHUID GUID ({}) with --confirm",
            id.name,
            serial.as_deref().unwrap_or("none"),
            id.guid.as_deref().unwrap_or("none")
        ),
    }
}

fn list(selection: &Selection, json: bool) -> Result<ExitCode> {
    let checks: Vec<_> = catalog().into_iter().filter(|c| selection.picks(c)).collect();
    if json {
        let rows: Vec<_> = checks
            .iter()
            .map(|c| {
                serde_json::json!({
                    "id": c.id, "title": c.title, "clause": c.clause, "family": c.family,
                    "severity": c.severity, "destructive": c.destructive,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    for c in &checks {
        let d = if c.destructive { " (destructive)" } else { "" };
        println!("{:<18} {:<7} {:<11} {}{d}  [{}]", c.id, c.severity.name(), c.family.name(), c.title, c.clause);
    }
    println!("{} checks", checks.len());
    Ok(ExitCode::SUCCESS)
}
