//! `ukey flows`: the whole login / bind / unbind story, headless, over real HTTP on loopback —
//! a portal on a temporary SQLite file, the agent, virtual keys in every state a user meets —
//! checked step by step. Prints a table, writes `--json` / `--junit FILE`, exits 1 on a failure.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use clap::Args;
use host_driver::agent::{AgentConfig, FixedKeys};
use host_driver::Piv;
use portal::api::{Portal, State};
use portal::config::Config;
use portal::password::{self, Cost};
use portal::store::Store;
use proto::clock::SystemClock;
use proto::secret::{Password, Pin};
use proto::Clock;
use serde::Serialize;
use serde_json::{json, Value};
use token_sim::scenario::{self, Scenario};
use token_sim::{KeySpec, SharedKey, VirtualKey};

use crate::output::table;

mod enroll;

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
pub(crate) const PIN: &str = "123456";
pub(crate) const STAFF_PASSWORD: &str = "flows-Review1";

/// One checked step.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub flow: &'static str,
    pub step: String,
    pub ok: bool,
    /// Not run (the target lacks what the step needs); counts as neither pass nor failure.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub skipped: bool,
    pub detail: String,
    pub ms: u128,
}

/// The flows' keys, offered to the agent (which uses them) and read back by the flows.
type InProcessKeys = FixedKeys<SharedKey>;

/// A browser: cookie jar, language, the session's CSRF token.
pub(crate) struct Browser {
    http: reqwest::Client,
    portal: String,
    agent: String,
    csrf: String,
    /// The PIN typed when binding.
    pin: Pin,
    /// Calls to the agent and cookie-less calls (a provider's callback), on kept-alive
    /// connections like a browser's.
    plain: reqwest::Client,
}

impl Browser {
    pub(crate) async fn new(portal: &str, agent: &str) -> Result<Browser> {
        let http = reqwest::Client::builder().cookie_store(true).build()?;
        let mut b = Browser {
            http,
            portal: portal.into(),
            agent: agent.into(),
            csrf: String::new(),
            pin: PIN.into(),
            plain: reqwest::Client::new(),
        };
        let (_, v) = b.get("/api/session").await?;
        b.csrf = v["csrf"].as_str().context("no CSRF token")?.into();
        Ok(b)
    }
    pub(crate) fn with_pin(mut self, pin: &Pin) -> Browser {
        self.pin = pin.clone();
        self
    }
    pub(crate) async fn get(&self, path: &str) -> Result<(u16, Value)> {
        let r = self.http.get(format!("{}{path}", self.portal)).header("Accept-Language", "zh-CN").send().await?;
        Ok((r.status().as_u16(), r.json().await?))
    }
    pub(crate) async fn post(&mut self, path: &str, body: Value) -> Result<(u16, Value)> {
        let r = self
            .http
            .post(format!("{}{path}", self.portal))
            .header("Accept-Language", "zh-CN")
            .header("X-CSRF-Token", &self.csrf)
            .json(&body)
            .send()
            .await?;
        let status = r.status().as_u16();
        let v: Value = r.json().await?;
        if let Some(c) = v["csrf"].as_str() {
            self.csrf = c.into();
        }
        Ok((status, v))
    }
    /// PUT raw bytes (an upload) with its Content-Type.
    pub(crate) async fn put_bytes(&self, path: &str, content_type: &str, bytes: Vec<u8>) -> Result<(u16, Value)> {
        let r = self
            .http
            .put(format!("{}{path}", self.portal))
            .header("Accept-Language", "zh-CN")
            .header("X-CSRF-Token", &self.csrf)
            .header("Content-Type", content_type)
            .body(bytes)
            .send()
            .await?;
        Ok((r.status().as_u16(), r.json().await?))
    }
    /// POST raw bytes with extra headers and no cookie (a payment provider's callback).
    pub(crate) async fn post_raw(&self, path: &str, body: Vec<u8>, headers: &[(&str, &str)]) -> Result<(u16, Value)> {
        let mut req = self.plain.post(format!("{}{path}", self.portal)).body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let r = req.send().await?;
        Ok((r.status().as_u16(), r.json().await?))
    }
    /// What a portal page does with the agent: call it as the page's origin.
    pub(crate) async fn agent(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<(u16, Value)> {
        let mut r = self
            .plain
            .request(method, format!("{}{path}", self.agent))
            .header("Origin", &self.portal)
            .header("Accept-Language", "zh-CN");
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await?;
        Ok((r.status().as_u16(), r.json().await?))
    }
    /// What the portal page does: ask the agent (as the page's origin) to sign a challenge.
    async fn agent_sign(&self, key: &str, pin: &str, nonce: &str) -> Result<(u16, Value)> {
        self.agent_sign_with(key, pin, nonce, false).await
    }
    /// [`Browser::agent_sign`], saying whether the user confirmed spending the last PIN try.
    async fn agent_sign_with(&self, key: &str, pin: &str, nonce: &str, last_try: bool) -> Result<(u16, Value)> {
        let r = self
            .plain
            .post(format!("{}/sign", self.agent))
            .header("Origin", &self.portal)
            .header("Accept-Language", "zh-CN")
            .json(&json!({"key_id": key, "pin": pin, "nonce": nonce, "last_try": last_try}))
            .send()
            .await?;
        Ok((r.status().as_u16(), r.json().await?))
    }
    async fn challenge(&mut self) -> Result<String> {
        let (s, v) = self.post("/api/challenge", json!({})).await?;
        ensure!(s == 200, "challenge refused: {v}");
        Ok(v["nonce"].as_str().context("no nonce")?.to_string())
    }
    /// Challenge, PIN + signature on the key through the agent, key login.
    pub(crate) async fn key_login(&mut self, key: &str, pin: &str, account: Option<&str>) -> Result<(u16, Value)> {
        let nonce = self.challenge().await?;
        let (s, v) = self.agent_sign(key, pin, &nonce).await?;
        if s != 200 {
            return Ok((s, v));
        }
        self.post("/api/login/key", json!({"nonce": nonce, "token": v["token"], "account_id": account})).await
    }
    pub(crate) async fn bind(&mut self, key: &str, accounts: &[String]) -> Result<(u16, Value)> {
        let nonce = self.challenge().await?;
        let pin = self.pin.clone();
        let (s, v) = self.agent_sign(key, pin.expose(), &nonce).await?;
        ensure!(s == 200, "agent refused to sign for binding: {v}");
        self.post("/api/bind", json!({"account_ids": accounts, "nonce": nonce, "token": v["token"]})).await
    }
}

/// Who the flows are, and which key plays which part. A part without a key (a deployment
/// with one real key has no PIN-locked or expired one) makes its step "skipped".
#[derive(Debug, Clone)]
pub(crate) struct Cast {
    pub(crate) user: String,
    pub(crate) password: Password,
    pub(crate) pin: Pin,
    pub(crate) staff: Option<(String, Password)>,
    /// Binds to two accounts, logs in, wrong PIN, replay, unbind.
    pub(crate) main: String,
    pub(crate) pin_locked: Option<String>,
    pub(crate) expiring: Option<String>,
    pub(crate) expired: Option<String>,
    /// Revoked by the flows (needs the portal in this process).
    pub(crate) revocable: Option<String>,
    pub(crate) unbound: Option<String>,
    /// Issued to another enterprise: binding it is refused.
    pub(crate) foreign: Option<String>,
    /// One PIN try left: the agent asks before spending it.
    pub(crate) last_try: Option<String>,
    /// Gets a certificate through the application flow.
    pub(crate) blank: Option<String>,
}

pub(crate) struct World {
    _dir: Option<tempfile::TempDir>,
    pub(crate) portal: String,
    pub(crate) agent: String,
    /// The portal, when it runs in this process.
    pub(crate) state: Option<State>,
    /// The virtual keys, when they are in this process.
    keys: Option<Arc<InProcessKeys>>,
    pub(crate) accounts: Vec<String>,
    pub(crate) cast: Cast,
    /// A key holding a certificate gets a new key pair only when asked (a deployment's key).
    pub(crate) replace_key: bool,
}

impl World {
    /// A browser with the cast's PIN.
    pub(crate) async fn browser(&self) -> Result<Browser> {
        Ok(Browser::new(&self.portal, &self.agent).await?.with_pin(&self.cast.pin))
    }

    /// The key's own PIN counter: read on the card when it is in this process, else as the
    /// agent reads it (no try spent either way).
    async fn pin_tries(&self, b: &Browser, id: &str) -> Result<u8> {
        if let Some(keys) = &self.keys {
            let k = keys.keys().iter().find(|(i, _)| i == id).map(|(_, k)| k.clone()).context("no such key")?;
            let mut piv = Piv::new(k);
            piv.select()?;
            return Ok(piv.pin_retries()?.0.unwrap_or(0));
        }
        let (_, v) = b.agent(reqwest::Method::GET, "/keys", None).await?;
        let key = v["keys"].as_array().and_then(|l| l.iter().find(|k| k["id"] == id)).context("key not listed")?;
        Ok(key["pin_retries"].as_u64().context("the agent cannot read the PIN counter")? as u8)
    }
}

/// The flows' enterprise (the demo's) and another one, by unified social credit code.
pub(crate) const CREDIT_CODE: &str = "91350100M000100Y43";
pub(crate) const OTHER_CREDIT_CODE: &str = "91110000600037341L";
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
        crate::home::FACTORY_SUBJECT,
        crate::home::FACTORY_DAYS,
        &clock,
    )?);
    let url = db.map(str::to_string).unwrap_or_else(|| format!("sqlite:{}", dir.path().join("portal.db").display()));
    let store = Store::open(&url).await.with_context(|| format!("opening {url}"))?;
    let e = match store.create_enterprise("示例科技有限公司", CREDIT_CODE, now as i64).await {
        Err(portal::store::StoreError::Exists { .. }) => anyhow::bail!(
            "{url} already holds the flows' demo enterprise (from an earlier run): give an empty database"
        ),
        r => r?,
    };
    store.create_user(&e.id, "zhangsan", "张三", &password::hash(PASSWORD, Cost::FAST), now as i64).await?;
    let staff = store
        .create_user(&e.id, "lisi", "李四（审核员）", &password::hash(STAFF_PASSWORD, Cost::FAST), now as i64)
        .await?;
    store.set_role(&staff.id, "staff").await?;
    let mut accounts = Vec::new();
    for name in ["财务账号", "申报账号"] {
        accounts.push(store.create_account(&e.id, name, now as i64).await?.id);
    }
    let keys = Arc::new(InProcessKeys::default());
    for (i, (id, s)) in key_list.iter().enumerate() {
        let spec = KeySpec { seed: Some(100 + i as u64), factory: Some(factory.clone()), ..KeySpec::default() };
        let mut vk = VirtualKey::in_memory(&spec, &clock)?;
        // Certificates name their enterprise by credit code (binding checks it).
        let subject = if let Some(given) = subjects.and_then(|s| s.get(i)) {
            given.clone()
        } else if id == FOREIGN_KEY {
            format!("CN={id},organizationIdentifier={OTHER_CREDIT_CODE},O=另一家科技有限公司")
        } else {
            format!("CN={id},organizationIdentifier={CREDIT_CODE},O=示例科技有限公司")
        };
        vk.card_mut()
            .update_state(|st, rng| scenario::apply(st, *s, Some(&ca), &subject, &clock, rng))
            .map_err(|_| anyhow::anyhow!("provisioning {id}"))??;
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
    tokio::spawn(portal::api::serve(pl, state.clone()));
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
    let (state, keys) = (Some(state), Some(keys));
    Ok(World { _dir: Some(dir), portal, agent, state, keys, accounts, cast, replace_key: false })
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
            let w = World {
                _dir: None,
                portal,
                agent: String::new(),
                state: None,
                keys: None,
                accounts: vec![],
                cast,
                replace_key: true,
            };
            (w, false)
        }
        None => {
            ensure!(a.reader.is_none() || a.enroll, "a key in a reader has no certificate from this run's own portal: add --enroll to give it one (replaces its 9A key pair), or point --portal at the portal that issued its certificate");
            // The key in the reader was made elsewhere: trust this machine's factory too (where
            // `ukey sim new` keys come from).
            let home_factory = crate::home::factory(None)?.certificate_der();
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
            w.cast.pin = a.pin.clone();
            w.replace_key = true;
            (w, true)
        }
    };
    // The agent: the deployment's, or one in this process for the machine's readers.
    w.agent = match &a.agent {
        Some(url) => url.trim_end_matches('/').to_string(),
        None => {
            let al = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let agent = format!("http://{}", al.local_addr()?);
            // The machine's readers only: no virtual key directories.
            let readers = Arc::new(crate::services::MachineKeys::new(vec![]));
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
    w.cast.main = chosen[0].clone();
    if a.enroll {
        w.cast.blank = Some(w.cast.main.clone());
    }
    if own_portal {
        // The keys of this run live elsewhere: only the main key plays.
        w.keys = None;
        w.cast.pin_locked = None;
        w.cast.expiring = None;
        w.cast.expired = None;
        w.cast.revocable = None;
        w.cast.unbound = None;
        w.cast.foreign = None;
        w.cast.last_try = None;
    }
    // The accounts the flows bind: the user's enterprise's.
    let mut b = w.browser().await?;
    let (s, v) =
        b.post("/api/login/password", json!({"username": w.cast.user, "password": w.cast.password.expose()})).await?;
    ensure!(s == 200, "password login as {} failed: {v}", w.cast.user);
    let (_, v) = b.get("/api/accounts").await?;
    w.accounts =
        v["accounts"].as_array().into_iter().flatten().filter_map(|x| x["id"].as_str().map(String::from)).collect();
    ensure!(!w.accounts.is_empty(), "{} has no accounts to bind", w.cast.user);
    Ok(w)
}

/// Expect `code` (and HTTP status) from a step's answer.
pub(crate) fn expect(got: (u16, Value), status: u16, code: &str) -> Result<Value> {
    let (s, v) = got;
    if s != status || v["code"] != code {
        bail!("expected {status} {code}, got {s} {}", v);
    }
    Ok(v)
}

pub(crate) struct Run {
    steps: Vec<Step>,
    start: Instant,
}

impl Run {
    pub(crate) async fn step<F, Fut>(&mut self, flow: &'static str, step: &str, f: F)
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<String>>,
    {
        let t = Instant::now();
        let r = f().await;
        let (ok, detail) = match r {
            Ok(d) => (true, d),
            Err(e) => (false, format!("{e:#}")),
        };
        self.steps.push(Step { flow, step: step.into(), ok, skipped: false, detail, ms: t.elapsed().as_millis() });
    }

    pub(crate) fn skip(&mut self, flow: &'static str, step: &str, why: &str) {
        self.steps.push(Step { flow, step: step.into(), ok: true, skipped: true, detail: why.into(), ms: 0 });
    }

    fn fail(&mut self, flow: &'static str, step: &str, e: &anyhow::Error) {
        self.steps.push(Step { flow, step: step.into(), ok: false, skipped: false, detail: format!("{e:#}"), ms: 0 });
    }
}

pub(crate) fn msg(v: &Value) -> String {
    v["message"].as_str().unwrap_or("").to_string()
}

pub(crate) async fn run_flows(w: &World) -> Vec<Step> {
    let mut run = Run { steps: Vec::new(), start: Instant::now() };
    let (mut user, mut b) = match (w.browser().await, w.browser().await) {
        (Ok(u), Ok(b)) => (u, b),
        (Err(e), _) | (_, Err(e)) => {
            run.fail("setup", "open a session", &e);
            return run.steps;
        }
    };
    let c = &w.cast;
    let accounts = w.accounts.clone();
    let deployment = w.state.is_none() || w.keys.is_none();

    // 2. Password login.
    run.step("password login", "wrong password is refused", || async {
        let body = json!({"username": c.user, "password": "wrong-guess"});
        let v = expect(user.post("/api/login/password", body).await?, 401, "wrong_password")?;
        // The same answer for a username that does not exist: nothing to enumerate.
        let body = json!({"username": format!("{}-no-such-user", c.user), "password": "wrong-guess"});
        let other = expect(user.post("/api/login/password", body).await?, 401, "wrong_password")?;
        ensure!(other == v, "an unknown username is answered differently: {other} vs {v}");
        Ok(format!("{} (same answer for an unknown username)", msg(&v)))
    })
    .await;
    run.step("password login", "right password, no key bound yet", || async {
        let body = json!({"username": c.user, "password": c.password.expose()});
        let (s, v) = user.post("/api/login/password", body).await?;
        if deployment && s == 200 && v["code"] == "logged_in" {
            // A deployment may have bindings already; the flows start from none (next step).
            return Ok(format!("{} (keys already bound there)", msg(&v)));
        }
        Ok(msg(&expect((s, v), 200, "no_binding_yet")?))
    })
    .await;
    if deployment {
        run.step("setup", "start from unbound accounts", || async {
            let v = expect(user.post("/api/unbind", json!({"account_ids": accounts})).await?, 200, "unbound")?;
            Ok(format!("{} ({} bindings removed)", msg(&v), v["removed"]))
        })
        .await;
    }

    // 1. Certificate application: ends with a certificate on the blank key that binds, logs
    // in, and is unbound again.
    match &c.blank {
        Some(blank) => enroll::run(&mut run, w, &mut user, blank).await,
        None => run.skip("enrollment", "certificate application", "add --enroll (replaces the key's 9A key pair)"),
    }

    // 3. Bind.
    run.step("bind", "accounts listed as unbound", || async {
        let (_, v) = user.get("/api/accounts").await?;
        let list = v["accounts"].as_array().context("no accounts")?;
        ensure!(list.iter().all(|a| a["bound_to"].as_array().is_some_and(|b| b.is_empty())), "{v}");
        Ok(format!("{} accounts, none bound", list.len()))
    })
    .await;
    let two = &accounts[..accounts.len().min(2)];
    run.step("bind", "tick the accounts, PIN + signature on the key", || async {
        let v = expect(user.bind(&c.main, two).await?, 200, "bound")?;
        Ok(msg(&v))
    })
    .await;
    match &c.foreign {
        Some(k) => {
            run.step("bind", "a key of another enterprise: refused", || async {
                let v = expect(user.bind(k, two).await?, 403, "other_enterprise")?;
                Ok(msg(&v))
            })
            .await
        }
        None => run.skip(
            "bind",
            "a key of another enterprise: refused",
            "needs a key issued to another enterprise (virtual keys only)",
        ),
    }
    run.step("bind", "accounts listed as bound", || async {
        let (_, v) = user.get("/api/accounts").await?;
        let list = v["accounts"].as_array().context("no accounts")?;
        let bound = list.iter().filter(|a| a["bound_to"].as_array().is_some_and(|b| b.len() == 1)).count();
        ensure!(bound == two.len(), "{v}");
        Ok(format!("已绑定 x{bound}"))
    })
    .await;

    // 4. Key login and every outcome.
    if two.len() == 2 {
        run.step("key login", "key bound to two accounts: choose", || async {
            let v = expect(b.key_login(&c.main, c.pin.expose(), None).await?, 409, "choose_account")?;
            Ok(format!("{} ({} accounts)", msg(&v), v["accounts"].as_array().map_or(0, |a| a.len())))
        })
        .await;
    } else {
        run.skip("key login", "key bound to two accounts: choose", "the user's enterprise has one account");
    }
    run.step("key login", "PIN + signature, chosen account: logged in", || async {
        let v = expect(b.key_login(&c.main, c.pin.expose(), Some(&accounts[0])).await?, 200, "logged_in")?;
        Ok(format!("{} as {}", msg(&v), v["account"]["name"]))
    })
    .await;
    run.step("key login", "wrong PIN: the key's true tries left", || async {
        let wrong = if c.pin.expose() == "000000" { "999999" } else { "000000" };
        let v = expect(b.key_login(&c.main, wrong, None).await?, 401, "wrong_pin")?;
        let on_key = w.pin_tries(&b, &c.main).await?;
        ensure!(v["attempts_left"] == on_key, "agent said {} but the key has {on_key}", v["attempts_left"]);
        ensure!(msg(&v).contains(&format!("还有{on_key}次机会")), "message {v}");
        // The right PIN resets the counter (a real key keeps its tries).
        expect(b.key_login(&c.main, c.pin.expose(), Some(&accounts[0])).await?, 200, "logged_in")?;
        Ok(msg(&v))
    })
    .await;
    let needs = "needs a key in that state (virtual keys only)";
    match &c.last_try {
        Some(k) => {
            run.step("key login", "one PIN try left: the agent asks before spending it", || async {
                let wrong = if c.pin.expose() == "000000" { "999999" } else { "000000" };
                let v = expect(b.agent_sign(k, wrong, "n").await?, 409, "last_try")?;
                ensure!(msg(&v).contains("最后一次机会"), "message {v}");
                let left = w.pin_tries(&b, k).await?;
                ensure!(left == 1, "the refused request spent a try: {left} left");
                expect(b.agent_sign_with(k, c.pin.expose(), "n", true).await?, 200, "signed")?;
                Ok(msg(&v))
            })
            .await
        }
        None => run.skip("key login", "one PIN try left: the agent asks before spending it", needs),
    }
    match &c.pin_locked {
        Some(k) => {
            run.step("key login", "PIN locked: says so", || async {
                Ok(msg(&expect(b.key_login(k, c.pin.expose(), None).await?, 403, "pin_locked")?))
            })
            .await
        }
        None => run.skip("key login", "PIN locked: says so", needs),
    }
    match &c.expiring {
        Some(k) => {
            run.step("key login", "certificate expiring: logged in with a reminder", || async {
                expect(user.bind(k, &accounts[..1]).await?, 200, "bound")?;
                Ok(msg(&expect(b.key_login(k, c.pin.expose(), None).await?, 200, "cert_expiring")?))
            })
            .await
        }
        None => run.skip("key login", "certificate expiring: logged in with a reminder", needs),
    }
    match &c.expired {
        Some(k) => {
            run.step("key login", "certificate expired: refused", || async {
                // The key's PIN is fine; the portal refuses the certificate.
                Ok(msg(&expect(b.key_login(k, c.pin.expose(), None).await?, 403, "cert_expired")?))
            })
            .await
        }
        None => run.skip("key login", "certificate expired: refused", needs),
    }
    match (&c.revocable, &c.staff) {
        (Some(k), Some((staff_name, staff_password))) => {
            run.step("key login", "certificate revoked by staff: refused", || async {
                expect(user.bind(k, &accounts[..1]).await?, 200, "bound")?;
                let nonce = b.challenge().await?;
                let (_, v) = b.agent_sign(k, c.pin.expose(), &nonce).await?;
                let cert = base64_decode(v["token"]["certificate"].as_str().context("no certificate")?)?;
                let fp = portal::token::fingerprint(&cert);
                let mut staff = w.browser().await?;
                let login = json!({"username": staff_name, "password": staff_password.expose()});
                let (s, answer) = staff.post("/api/login/password", login).await?;
                ensure!(s == 200, "staff login: {answer}");
                let revoke = format!("/api/staff/certificates/{fp}/revoke");
                let revoked = expect(staff.post(&revoke, json!({"reason": "keyCompromise"})).await?, 200, "revoked")?;
                let body = json!({"nonce": nonce, "token": v["token"]});
                let refused = msg(&expect(b.post("/api/login/key", body).await?, 403, "cert_revoked")?);
                Ok(format!("{}; {refused}", msg(&revoked)))
            })
            .await
        }
        _ => {
            run.skip("key login", "certificate revoked by staff: refused", "needs a revocable key and --staff-password")
        }
    }
    match &c.unbound {
        Some(k) => {
            run.step("key login", "key not bound: bind first", || async {
                Ok(msg(&expect(b.key_login(k, c.pin.expose(), None).await?, 403, "not_bound")?))
            })
            .await
        }
        None => run.skip("key login", "key not bound: bind first", "shown by the last unbind step"),
    }
    run.step("key login", "replayed challenge is refused", || async {
        let nonce = b.challenge().await?;
        let (_, v) = b.agent_sign(&c.main, c.pin.expose(), &nonce).await?;
        let body = json!({"nonce": nonce, "token": v["token"], "account_id": accounts[0]});
        expect(b.post("/api/login/key", body.clone()).await?, 200, "logged_in")?;
        let mut other = w.browser().await?;
        Ok(msg(&expect(other.post("/api/login/key", body).await?, 401, "bad_nonce")?))
    })
    .await;

    // 5. Unbind.
    run.step("unbind", "tick the accounts and unbind", || async {
        let v = expect(user.post("/api/unbind", json!({"account_ids": accounts})).await?, 200, "unbound")?;
        let all_unbound = v["accounts"]
            .as_array()
            .is_some_and(|l| l.iter().all(|a| a["bound_to"].as_array().is_some_and(|b| b.is_empty())));
        ensure!(all_unbound, "{v}");
        Ok(msg(&v))
    })
    .await;
    run.step("unbind", "key login afterwards: not bound", || async {
        Ok(msg(&expect(b.key_login(&c.main, c.pin.expose(), None).await?, 403, "not_bound")?))
    })
    .await;
    let _ = run.start;
    run.steps
}

fn base64_decode(s: &str) -> Result<Vec<u8>> {
    use base64::Engine;
    Ok(base64::engine::general_purpose::STANDARD.decode(s)?)
}

fn junit(steps: &[Step]) -> String {
    use conformance::junit::{Case, CaseResult};
    let cases: Vec<Case> = steps
        .iter()
        .map(|s| Case {
            class: s.flow,
            name: s.step.clone(),
            millis: s.ms,
            result: if s.skipped {
                CaseResult::Skipped(s.detail.clone())
            } else if s.ok {
                CaseResult::Pass
            } else {
                CaseResult::Failure(s.detail.clone())
            },
        })
        .collect();
    conformance::junit::write("ukey flows", &cases)
}

pub fn run(a: FlowsArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let deployment = a.portal.is_some() || a.agent.is_some() || a.reader.is_some();
    let steps = crate::services::runtime()?.block_on(async {
        let w = if deployment { connect(&a).await? } else { setup(a.db.as_deref(), &flow_keys()).await? };
        Ok::<_, anyhow::Error>(run_flows(&w).await)
    })?;
    let failed = steps.iter().filter(|s| !s.ok).count();
    let skipped = steps.iter().filter(|s| s.skipped).count();
    if let Some(path) = &a.junit {
        std::fs::write(path, junit(&steps)).with_context(|| format!("writing {}", path.display()))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn junit_escapes_and_counts() {
        let steps = vec![
            Step { flow: "a", step: "x<y".into(), ok: true, skipped: false, detail: String::new(), ms: 5 },
            Step { flow: "a", step: "z".into(), ok: false, skipped: false, detail: "got \"403\" & more".into(), ms: 7 },
            Step { flow: "a", step: "s".into(), ok: true, skipped: true, detail: "n/a".into(), ms: 0 },
        ];
        let x = junit(&steps);
        assert!(x.contains("tests=\"3\" failures=\"1\" skipped=\"1\""), "{x}");
        assert!(x.contains("name=\"s\" time=\"0.000\"><skipped message=\"n/a\"/></testcase>"), "{x}");
        assert!(x.contains("name=\"x&lt;y\""));
        assert!(x.contains("message=\"got &quot;403&quot; &amp; more\""));
    }
}
