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
    #[arg(long, value_name = "URL")]
    pub db: Option<String>,
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
}

impl Browser {
    pub(crate) async fn new(portal: &str, agent: &str) -> Result<Browser> {
        let http = reqwest::Client::builder().cookie_store(true).build()?;
        let mut b = Browser { http, portal: portal.into(), agent: agent.into(), csrf: String::new() };
        let (_, v) = b.get("/api/session").await?;
        b.csrf = v["csrf"].as_str().context("no CSRF token")?.into();
        Ok(b)
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
        let mut req = reqwest::Client::new().post(format!("{}{path}", self.portal)).body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let r = req.send().await?;
        Ok((r.status().as_u16(), r.json().await?))
    }
    /// What a portal page does with the agent: call it as the page's origin.
    pub(crate) async fn agent(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<(u16, Value)> {
        let mut r = reqwest::Client::new()
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
        let r = reqwest::Client::new()
            .post(format!("{}/sign", self.agent))
            .header("Origin", &self.portal)
            .header("Accept-Language", "zh-CN")
            .json(&json!({"key_id": key, "pin": pin, "nonce": nonce}))
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
        let (s, v) = self.agent_sign(key, PIN, &nonce).await?;
        ensure!(s == 200, "agent refused to sign for binding: {v}");
        self.post("/api/bind", json!({"account_ids": accounts, "nonce": nonce, "token": v["token"]})).await
    }
}

pub(crate) struct World {
    _dir: tempfile::TempDir,
    pub(crate) portal: String,
    pub(crate) agent: String,
    state: State,
    keys: Arc<InProcessKeys>,
    pub(crate) accounts: Vec<String>,
}

impl World {
    fn key(&self, id: &str) -> SharedKey {
        let keys = self.keys.keys();
        keys.iter().find(|(i, _)| i == id).map(|(_, k)| k.clone()).expect("flows made this key")
    }
    /// The key's own PIN counter, read on the card (no try spent).
    fn pin_tries(&self, id: &str) -> Result<u8> {
        let mut piv = Piv::new(self.key(id));
        piv.select()?;
        Ok(piv.pin_retries()?.0.unwrap_or(0))
    }
}

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
    ]
    .into_iter()
    .map(|(id, s)| (id.to_string(), s))
    .collect()
}

/// A portal (on `db`, else a temporary SQLite file) with the demo enterprise, user and
/// accounts, an agent, and the given in-process virtual keys, all on loopback.
pub(crate) async fn setup(db: Option<&str>, key_list: &[(String, Scenario)]) -> Result<World> {
    let dir = tempfile::tempdir()?;
    let clock = SystemClock;
    let now = clock.now_unix();
    let ca = ca::Ca::create(&dir.path().join("ca"), "CN=ukey flows CA,O=ukey", 3650, &clock)?;
    let url = db.map(str::to_string).unwrap_or_else(|| format!("sqlite:{}", dir.path().join("portal.db").display()));
    let store = Store::open(&url).await.with_context(|| format!("opening {url}"))?;
    let e = store.create_enterprise("示例科技有限公司", "91350100M000100Y43", now as i64).await?;
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
        let spec = KeySpec { seed: Some(100 + i as u64), ..KeySpec::default() };
        let mut vk = VirtualKey::in_memory(&spec, &clock)?;
        let subject = format!("CN={id},O=示例科技有限公司");
        vk.card_mut()
            .update_state(|st, rng| scenario::apply(st, *s, Some(&ca), &subject, &clock, rng))
            .map_err(|_| anyhow::anyhow!("provisioning {id}"))??;
        keys.keys().push((id.clone(), SharedKey::new(vk)));
    }
    let pl = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let portal = format!("http://{}", pl.local_addr()?);
    let mut config = Config::new(&portal);
    config.password_cost = Cost::FAST;
    // The flows' own portal: simulated payment provider and readable SMS / email outbox.
    config.sandbox = true;
    let state = Portal::new(store, Arc::new(ca), Arc::new(SystemClock), config);
    tokio::spawn(portal::api::serve(pl, state.clone()));
    let al = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let agent = format!("http://{}", al.local_addr()?);
    let config = AgentConfig::new(vec![portal.clone()]);
    tokio::spawn(host_driver::agent::serve(al, keys.clone(), config));
    Ok(World { _dir: dir, portal, agent, state, keys, accounts })
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
        self.steps.push(Step { flow, step: step.into(), ok, detail, ms: t.elapsed().as_millis() });
    }
}

pub(crate) fn msg(v: &Value) -> String {
    v["message"].as_str().unwrap_or("").to_string()
}

pub(crate) async fn run_flows(w: &World) -> Vec<Step> {
    let mut run = Run { steps: Vec::new(), start: Instant::now() };
    let mut user = match Browser::new(&w.portal, &w.agent).await {
        Ok(b) => b,
        Err(e) => {
            run.steps.push(Step {
                flow: "setup",
                step: "open a session".into(),
                ok: false,
                detail: format!("{e:#}"),
                ms: 0,
            });
            return run.steps;
        }
    };
    let accounts = w.accounts.clone();

    // 2. Password login.
    run.step("password login", "wrong password is refused", || async {
        let v = expect(
            user.post("/api/login/password", json!({"username": "zhangsan", "password": "wrong-guess"})).await?,
            401,
            "wrong_password",
        )?;
        Ok(format!("{} (attempts left {})", msg(&v), v["attempts_left"]))
    })
    .await;
    run.step("password login", "right password, no key bound yet", || async {
        let v = expect(
            user.post("/api/login/password", json!({"username": "zhangsan", "password": PASSWORD})).await?,
            200,
            "no_binding_yet",
        )?;
        Ok(msg(&v))
    })
    .await;

    // 3. Bind.
    run.step("bind", "accounts listed as unbound", || async {
        let (_, v) = user.get("/api/accounts").await?;
        let list = v["accounts"].as_array().context("no accounts")?;
        ensure!(list.len() == 2 && list.iter().all(|a| a["bound_to"].as_array().is_some_and(|b| b.is_empty())), "{v}");
        Ok(format!("{} accounts, none bound", list.len()))
    })
    .await;
    run.step("bind", "tick both accounts, PIN + signature on the key", || async {
        let v = expect(user.bind("alice", &accounts).await?, 200, "bound")?;
        Ok(msg(&v))
    })
    .await;
    run.step("bind", "accounts listed as bound", || async {
        let (_, v) = user.get("/api/accounts").await?;
        let list = v["accounts"].as_array().context("no accounts")?;
        ensure!(list.iter().all(|a| a["bound_to"].as_array().is_some_and(|b| b.len() == 1)), "{v}");
        Ok("已绑定 x2".into())
    })
    .await;

    // 4. Key login and every outcome.
    let mut b = match Browser::new(&w.portal, &w.agent).await {
        Ok(b) => b,
        Err(e) => {
            run.steps.push(Step {
                flow: "key login",
                step: "open a session".into(),
                ok: false,
                detail: format!("{e:#}"),
                ms: 0,
            });
            return run.steps;
        }
    };
    run.step("key login", "key bound to two accounts: choose", || async {
        let v = expect(b.key_login("alice", PIN, None).await?, 409, "choose_account")?;
        Ok(format!("{} ({} accounts)", msg(&v), v["accounts"].as_array().map_or(0, |a| a.len())))
    })
    .await;
    run.step("key login", "PIN + signature, chosen account: logged in", || async {
        let v = expect(b.key_login("alice", PIN, Some(&accounts[0])).await?, 200, "logged_in")?;
        Ok(format!("{} as {}", msg(&v), v["account"]["name"]))
    })
    .await;
    run.step("key login", "wrong PIN: the key's true tries left", || async {
        let v = expect(b.key_login("alice", "000000", None).await?, 401, "wrong_pin")?;
        let on_key = w.pin_tries("alice")?;
        ensure!(v["attempts_left"] == on_key, "agent said {} but the key has {on_key}", v["attempts_left"]);
        ensure!(msg(&v).contains(&format!("还有{on_key}次机会")), "message {v}");
        Ok(msg(&v))
    })
    .await;
    run.step("key login", "PIN locked: says so", || async {
        let v = expect(b.key_login("erin", PIN, None).await?, 403, "pin_locked")?;
        Ok(msg(&v))
    })
    .await;
    run.step("key login", "certificate expiring: logged in with a reminder", || async {
        expect(user.bind("carol", &accounts[..1]).await?, 200, "bound")?;
        let v = expect(b.key_login("carol", PIN, None).await?, 200, "cert_expiring")?;
        Ok(msg(&v))
    })
    .await;
    run.step("key login", "certificate expired: refused", || async {
        // The key's PIN is fine; the portal refuses the certificate.
        let v = expect(b.key_login("dave", PIN, None).await?, 403, "cert_expired")?;
        Ok(msg(&v))
    })
    .await;
    run.step("key login", "certificate revoked: refused", || async {
        expect(user.bind("frank", &accounts[..1]).await?, 200, "bound")?;
        let nonce = b.challenge().await?;
        let (_, v) = b.agent_sign("frank", PIN, &nonce).await?;
        let cert = base64_decode(v["token"]["certificate"].as_str().context("no certificate")?)?;
        let fp = portal::token::fingerprint(&cert);
        w.state.store.revoke(&fp, "keyCompromise", SystemClock.now_unix() as i64).await?;
        let v =
            expect(b.post("/api/login/key", json!({"nonce": nonce, "token": v["token"]})).await?, 403, "cert_revoked")?;
        Ok(msg(&v))
    })
    .await;
    run.step("key login", "key not bound: bind first", || async {
        let v = expect(b.key_login("grace", PIN, None).await?, 403, "not_bound")?;
        Ok(msg(&v))
    })
    .await;
    run.step("key login", "replayed challenge is refused", || async {
        let nonce = b.challenge().await?;
        let (_, v) = b.agent_sign("alice", PIN, &nonce).await?;
        let body = json!({"nonce": nonce, "token": v["token"], "account_id": accounts[0]});
        expect(b.post("/api/login/key", body.clone()).await?, 200, "logged_in")?;
        let mut other = Browser::new(&w.portal, &w.agent).await?;
        let v = expect(other.post("/api/login/key", body).await?, 401, "bad_nonce")?;
        Ok(msg(&v))
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
        let v = expect(b.key_login("alice", PIN, None).await?, 403, "not_bound")?;
        Ok(msg(&v))
    })
    .await;

    // 1. Certificate application, with a blank key: it ends with a certificate on the key that
    // binds and logs in.
    enroll::run(&mut run, w, &mut user).await;
    let _ = run.start;
    run.steps
}

fn base64_decode(s: &str) -> Result<Vec<u8>> {
    use base64::Engine;
    Ok(base64::engine::general_purpose::STANDARD.decode(s)?)
}

fn junit(steps: &[Step]) -> String {
    let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
    let failures = steps.iter().filter(|s| !s.ok).count();
    let total: u128 = steps.iter().map(|s| s.ms).sum();
    let mut x = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuite name=\"ukey flows\" tests=\"{}\" failures=\"{failures}\" time=\"{:.3}\">\n",
        steps.len(),
        total as f64 / 1000.0
    );
    for s in steps {
        x += &format!(
            "  <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
            esc(s.flow),
            esc(&s.step),
            s.ms as f64 / 1000.0
        );
        if s.ok {
            x += "/>\n";
        } else {
            x += &format!("><failure message=\"{}\"/></testcase>\n", esc(&s.detail));
        }
    }
    x + "</testsuite>\n"
}

pub fn run(a: FlowsArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let steps = crate::services::runtime()?.block_on(async {
        let w = setup(a.db.as_deref(), &flow_keys()).await?;
        Ok::<_, anyhow::Error>(run_flows(&w).await)
    })?;
    let failed = steps.iter().filter(|s| !s.ok).count();
    if let Some(path) = &a.junit {
        std::fs::write(path, junit(&steps)).with_context(|| format!("writing {}", path.display()))?;
    }
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"passed": steps.len() - failed, "failed": failed, "steps": steps}))?
        );
    } else {
        let rows: Vec<Vec<String>> = steps
            .iter()
            .map(|s| {
                vec![
                    s.flow.to_string(),
                    s.step.clone(),
                    if s.ok { "ok".into() } else { "FAIL".into() },
                    format!("{} ms", s.ms),
                    s.detail.clone(),
                ]
            })
            .collect();
        table(&["FLOW", "STEP", "RESULT", "TIME", "DETAIL"], &rows);
        println!("\n{} steps, {} failed, {} ms", steps.len(), failed, started.elapsed().as_millis());
    }
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn junit_escapes_and_counts() {
        let steps = vec![
            Step { flow: "a", step: "x<y".into(), ok: true, detail: String::new(), ms: 5 },
            Step { flow: "a", step: "z".into(), ok: false, detail: "got \"403\" & more".into(), ms: 7 },
        ];
        let x = junit(&steps);
        assert!(x.contains("tests=\"2\" failures=\"1\""));
        assert!(x.contains("name=\"x&lt;y\""));
        assert!(x.contains("message=\"got &quot;403&quot; &amp; more\""));
    }
}
