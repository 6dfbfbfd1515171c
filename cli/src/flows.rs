//! `ukey flows`: the whole login / bind / unbind story, headless, over real HTTP on loopback —
//! a portal on a temporary SQLite file, the agent, virtual keys in every state a user meets —
//! checked step by step by the conformance suite's system family. This wires the pieces
//! (or finds a deployment's), prints a table, writes `--json` / `--junit FILE`, exits 1 on a
//! failure.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{ensure, Context, Result};
use clap::Args;
use conformance::system::{self, Browser, Cast, System, PIN};
use host_driver::agent::{AgentConfig, FixedKeys};
use host_driver::Piv;
use portal::config::Config;
use portal::password::Cost;
use portal::store::Store;
use portal::{Portal, State};
use proto::clock::SystemClock;
use proto::secret::{Password, Pin};
use proto::Clock;
use serde_json::json;
use token_sim::scenario::Scenario;
use token_sim::{KeySpec, SharedKey, VirtualKey};

use crate::output::table;

#[derive(Args, Debug)]
pub struct FlowsArgs {
    /// Print the results as JSON
    #[arg(long)]
    pub json: bool,
    /// Also write the results as a JUnit XML report
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// The portal's database: an empty postgres://... database, or sqlite:PATH
    /// (default: a temporary SQLite file)
    #[arg(long, value_name = "URL", conflicts_with = "portal")]
    pub db: Option<String>,
    /// Validate a running portal instead of starting one (needs --password; the flows bind and
    /// unbind that user's enterprise accounts)
    #[arg(long, value_name = "URL")]
    pub portal: Option<String>,
    /// Use a running agent (its --allow-origin must name the portal) instead of starting one
    #[arg(long, value_name = "URL")]
    pub agent: Option<String>,
    /// Use the key in this PC/SC reader (a unique part of its name) instead of virtual keys.
    /// Outcomes that need a key in another state (PIN locked, expiring, ...) are skipped
    #[arg(long, value_name = "NAME")]
    pub reader: Option<String>,
    /// The portal user the flows log in as (with --portal)
    #[arg(long, default_value = "zhangsan")]
    pub user: String,
    /// That user's password (with --portal)
    #[arg(long, env = "UKEY_FLOWS_PASSWORD", hide_env_values = true)]
    pub password: Option<Password>,
    /// The key's PIN (with --reader or --agent)
    #[arg(long, env = "UKEY_PIN", hide_env_values = true, default_value = "123456")]
    pub pin: Pin,
    /// Also run the certificate application on the deployment's key: REPLACES the key pair and
    /// certificate in its slot 9A. Needs a portal with --sandbox (SMS code, payment) and staff
    /// credentials
    #[arg(long)]
    pub enroll: bool,
    /// Staff user who approves the application (with --enroll and --portal)
    #[arg(long, default_value = "lisi")]
    pub staff: String,
    /// That staff user's password
    #[arg(long, env = "UKEY_FLOWS_STAFF_PASSWORD", hide_env_values = true)]
    pub staff_password: Option<Password>,
}

pub(crate) const PASSWORD: &str = "flows-Passw0rd";
pub(crate) const STAFF_PASSWORD: &str = "flows-Review1";

/// The flows' keys, offered to the agent (which uses them) and read back by the flows.
type InProcessKeys = FixedKeys<SharedKey>;

/// The system the flows judge, and what this process runs of it.
pub(crate) struct World {
    _dir: Option<tempfile::TempDir>,
    /// The portal, when it runs in this process.
    pub(crate) state: Option<State>,
    pub(crate) system: System,
}

impl std::ops::Deref for World {
    type Target = System;
    fn deref(&self) -> &System {
        &self.system
    }
}

/// A stand-in ID photo: a drawn card, a real JPEG (the portal decodes every upload).
fn photo(seed: u8) -> Vec<u8> {
    portal::photo::sample(portal::photo::PhotoType::Jpeg, 640, 400, seed)
}

/// The PIN counter of the in-process key `id`, read on the card.
fn reader_of(keys: Arc<InProcessKeys>) -> system::KeyTries {
    Arc::new(move |id: &str| {
        let k = keys
            .keys()
            .iter()
            .find(|(i, _)| i == id)
            .map(|(_, k)| k.clone())
            .ok_or_else(|| system::fail::Failure(format!("no key {id}")))?;
        let mut piv = Piv::new(k);
        piv.select()?;
        Ok(piv.pin_retries()?.0.unwrap_or(0))
    })
}

/// The flows' key whose certificate was issued to the other enterprise.
const FOREIGN_KEY: &str = "mallory";

/// The keys `ukey flows` needs: one for each state a user meets.
pub(crate) fn flow_keys() -> Vec<(String, Scenario)> {
    [
        ("alice", Scenario::Provisioned),
        ("bob", Scenario::Provisioned),
        ("carol", Scenario::Expiring { days: 5 }),
        ("dave", Scenario::Expired),
        ("erin", Scenario::PinLocked),
        ("frank", Scenario::Provisioned),
        ("grace", Scenario::Provisioned),
        ("henry", Scenario::Fresh),
        ("ivan", Scenario::Pin1Left),
        (FOREIGN_KEY, Scenario::Provisioned),
    ]
    .into_iter()
    .map(|(id, s)| (id.to_string(), s))
    .collect()
}

/// A portal (on `db`, else a temporary SQLite file) with the demo enterprise, user and
/// accounts, an agent, and the given in-process virtual keys, all on loopback.
pub(crate) async fn setup(db: Option<&str>, key_list: &[(String, Scenario)]) -> Result<World> {
    setup_with(db, key_list, |_| {}, None, None).await
}

/// [`setup`] with the portal's configuration adjusted by `tune` (a load test's limits),
/// `progress` ticked for each key made, and the keys' certificate subjects given in
/// `subjects` (same order as `key_list`) instead of naming the demo enterprise.
pub(crate) async fn setup_with(
    db: Option<&str>,
    key_list: &[(String, Scenario)],
    tune: impl FnOnce(&mut Config),
    progress: Option<&indicatif::ProgressBar>,
    subjects: Option<&[String]>,
) -> Result<World> {
    let dir = tempfile::tempdir()?;
    let clock = SystemClock;
    let now = clock.now_unix();
    let ca = ca::Ca::create(&dir.path().join("ca"), "CN=ukey flows CA,O=ukey", 3650, &clock)?;
    // The maker of this run's keys, which the portal trusts for certificate applications.
    let factory = Arc::new(ca::Ca::create(
        &dir.path().join("factory"),
        keys::factory::FACTORY_SUBJECT,
        keys::factory::FACTORY_DAYS,
        &clock,
    )?);
    let url = db.map(str::to_string).unwrap_or_else(|| format!("sqlite:{}", dir.path().join("portal.db").display()));
    let store = Store::open(&url).await.with_context(|| format!("opening {url}"))?;
    let seeded = match portal::seed::seed(&store, PASSWORD, Some(STAFF_PASSWORD), Cost::FAST, now as i64).await {
        Err(portal::store::StoreError::Exists { .. }) => anyhow::bail!(
            "{url} already holds the flows' demo enterprise (from an earlier run): give an empty database"
        ),
        r => r?,
    };
    let accounts: Vec<String> = seeded.accounts.into_iter().map(|a| a.id).collect();
    let keys = Arc::new(InProcessKeys::default());
    for (i, (id, s)) in key_list.iter().enumerate() {
        let spec = KeySpec { seed: Some(100 + i as u64), factory: Some(factory.clone()), ..KeySpec::default() };
        let mut vk = VirtualKey::in_memory(&spec, &clock)?;
        // Certificates name their enterprise by credit code (binding checks it).
        let subject = if let Some(given) = subjects.and_then(|s| s.get(i)) {
            given.clone()
        } else {
            portal::seed::subject(id, id == FOREIGN_KEY)
        };
        vk.provision(*s, Some(&ca), &subject, &clock).with_context(|| format!("provisioning {id}"))?;
        keys.keys().push((id.clone(), SharedKey::new(vk)));
        if let Some(p) = progress {
            p.inc(1);
        }
    }
    let pl = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let portal = format!("http://{}", pl.local_addr()?);
    let mut config = Config::new(&portal);
    config.password_cost = Cost::FAST;
    // The flows' own portal: simulated payment provider and readable SMS / email outbox.
    config.sandbox = true;
    config.attestation_roots.add_der(&factory.certificate_der())?;
    tune(&mut config);
    let ca = Arc::new(ca.with_crl_url(config.crl_url()));
    let state = Portal::new(store, ca, Arc::new(SystemClock), config);
    tokio::spawn(portal::serve(pl, state.clone()));
    let al = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let agent = format!("http://{}", al.local_addr()?);
    let config = AgentConfig::new(vec![portal.clone()]);
    tokio::spawn(host_driver::agent::serve(al, keys.clone(), config));
    let cast = Cast {
        user: "zhangsan".into(),
        password: PASSWORD.into(),
        pin: PIN.into(),
        staff: Some(("lisi".into(), STAFF_PASSWORD.into())),
        main: "alice".into(),
        pin_locked: Some("erin".into()),
        expiring: Some("carol".into()),
        expired: Some("dave".into()),
        revocable: Some("frank".into()),
        unbound: Some("grace".into()),
        foreign: Some(FOREIGN_KEY.into()),
        last_try: Some("ivan".into()),
        blank: Some("henry".into()),
    };
    let system = System {
        portal,
        agent,
        accounts,
        cast,
        replace_key: false,
        deployment: false,
        key_tries: Some(reader_of(keys)),
        photo,
    };
    Ok(World { _dir: Some(dir), state: Some(state), system })
}

/// Deployment mode: a running portal and/or agent and/or a key in a reader.
async fn connect(a: &FlowsArgs) -> Result<World> {
    // The portal: the deployment's, or our own (then a reader key needs a certificate from
    // our CA, which only the application flow gives it).
    let (mut w, own_portal) = match &a.portal {
        Some(url) => {
            let password =
                a.password.clone().context("--portal needs the user's --password (or UKEY_FLOWS_PASSWORD)")?;
            ensure!(!a.enroll || a.staff_password.is_some(), "--enroll with --portal needs --staff-password");
            let staff = a.staff_password.clone().map(|p| (a.staff.clone(), p));
            let cast = Cast {
                user: a.user.clone(),
                password,
                pin: a.pin.clone(),
                staff,
                main: String::new(),
                pin_locked: None,
                expiring: None,
                expired: None,
                revocable: None,
                unbound: None,
                foreign: None,
                last_try: None,
                blank: None,
            };
            let portal = url.trim_end_matches('/').to_string();
            let system = System {
                portal,
                agent: String::new(),
                accounts: vec![],
                cast,
                replace_key: true,
                deployment: true,
                key_tries: None,
                photo,
            };
            let w = World { _dir: None, state: None, system };
            (w, false)
        }
        None => {
            ensure!(a.reader.is_none() || a.enroll, "a key in a reader has no certificate from this run's own portal: add --enroll to give it one (replaces its 9A key pair), or point --portal at the portal that issued its certificate");
            // The key in the reader was made elsewhere: trust this machine's factory too (where
            // `ukey sim new` keys come from).
            let home_factory = keys::factory::factory(None)?.certificate_der();
            let mut w = setup_with(
                a.db.as_deref(),
                &[],
                |c| {
                    let _ = c.attestation_roots.add_der(&home_factory);
                },
                None,
                None,
            )
            .await?;
            w.system.cast.pin = a.pin.clone();
            w.system.replace_key = true;
            (w, true)
        }
    };
    // The agent: the deployment's, or one in this process for the machine's readers.
    w.system.agent = match &a.agent {
        Some(url) => url.trim_end_matches('/').to_string(),
        None => {
            let al = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let agent = format!("http://{}", al.local_addr()?);
            // The machine's readers only: no virtual key directories.
            let readers = Arc::new(keys::provider::MachineKeys::new(vec![]));
            tokio::spawn(host_driver::agent::serve(al, readers, AgentConfig::new(vec![w.portal.clone()])));
            agent
        }
    };
    // The key: the reader named, else the agent's only key.
    let probe = Browser::new(&w.portal, &w.agent).await.with_context(|| format!("portal {}", w.portal))?;
    let (s, v) =
        probe.agent(reqwest::Method::GET, "/keys", None).await.with_context(|| format!("agent {}", w.agent))?;
    ensure!(s == 200, "the agent refused to list keys (is {} on its --allow-origin?): {v}", w.portal);
    let ids: Vec<String> =
        v["keys"].as_array().into_iter().flatten().filter_map(|k| k["id"].as_str().map(String::from)).collect();
    let chosen: Vec<&String> = match &a.reader {
        Some(name) => ids.iter().filter(|id| id.starts_with("reader:") && id.contains(name.as_str())).collect(),
        None => ids.iter().collect(),
    };
    ensure!(
        chosen.len() == 1,
        "pick one key with --reader NAME; the agent has: {}",
        if ids.is_empty() { "no keys".to_string() } else { ids.join(", ") }
    );
    let s = &mut w.system;
    s.cast.main = chosen[0].clone();
    if a.enroll {
        s.cast.blank = Some(s.cast.main.clone());
    }
    if own_portal {
        // The keys of this run live elsewhere: only the main key plays.
        s.key_tries = None;
        s.deployment = true;
        s.cast.pin_locked = None;
        s.cast.expiring = None;
        s.cast.expired = None;
        s.cast.revocable = None;
        s.cast.unbound = None;
        s.cast.foreign = None;
        s.cast.last_try = None;
    }
    // The accounts the flows bind: the user's enterprise's.
    let mut b = w.browser().await?;
    let (s, v) =
        b.post("/api/login/password", json!({"username": w.cast.user, "password": w.cast.password.expose()})).await?;
    ensure!(s == 200, "password login as {} failed: {v}", w.cast.user);
    let (_, v) = b.get("/api/accounts").await?;
    w.system.accounts =
        v["accounts"].as_array().into_iter().flatten().filter_map(|x| x["id"].as_str().map(String::from)).collect();
    ensure!(!w.accounts.is_empty(), "{} has no accounts to bind", w.cast.user);
    Ok(w)
}

pub fn run(a: FlowsArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let deployment = a.portal.is_some() || a.agent.is_some() || a.reader.is_some();
    let steps = crate::services::runtime()?.block_on(async {
        let w = if deployment { connect(&a).await? } else { setup(a.db.as_deref(), &flow_keys()).await? };
        Ok::<_, anyhow::Error>(system::run_flows(&w).await)
    })?;
    let failed = steps.iter().filter(|s| !s.ok).count();
    let skipped = steps.iter().filter(|s| s.skipped).count();
    if let Some(path) = &a.junit {
        std::fs::write(path, system::junit(&steps)).with_context(|| format!("writing {}", path.display()))?;
    }
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &json!({"passed": steps.len() - failed - skipped, "failed": failed, "skipped": skipped, "steps": steps})
            )?
        );
    } else {
        let rows: Vec<Vec<String>> = steps
            .iter()
            .map(|s| {
                vec![
                    s.flow.to_string(),
                    s.step.clone(),
                    if s.skipped {
                        "skip".into()
                    } else if s.ok {
                        "ok".into()
                    } else {
                        "FAIL".into()
                    },
                    format!("{} ms", s.ms),
                    s.detail.clone(),
                ]
            })
            .collect();
        table(&["FLOW", "STEP", "RESULT", "TIME", "DETAIL"], &rows);
        println!("\n{} steps, {failed} failed, {skipped} skipped, {} ms", steps.len(), started.elapsed().as_millis());
    }
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
