//! The system family: the whole login / bind / unbind story of the user manual, over real
//! HTTP against a portal and its local agent — certificate application, password login,
//! binding, key login and each of its outcomes, unbinding — checked step by step. Any
//! portal that speaks the reference portal's API can be judged; `ukey flows` starts one with
//! virtual keys in every state a user meets, or points at a deployment.
//!
//! - [`Browser`]: the typed portal client, with the cookie jar, language and CSRF token a
//!   browser keeps, and the page's calls to the local agent.
//! - [`run_flows`]: the steps, each a [`Step`] with its outcome and timing; [`junit`] reports
//!   them as the card checks' reports do.

mod enroll;
pub mod fail;

use std::time::Instant;

use proto::secret::{Password, Pin};
use serde::Serialize;
use serde_json::{json, Value};

use fail::{bail, ensure, Context, Result};

/// The PIN the flows' virtual keys have (the factory default).
pub const PIN: &str = "123456";
/// The flows' enterprise (the demo's) and another one, by unified social credit code: an
/// application must not name the other, a key issued to it must not bind. They are what
/// `portal::seed` makes (the system family is a client and does not depend on the portal
/// crate; cli's tests check the two agree).
pub const CREDIT_CODE: &str = "91350100M000100Y43";
pub const OTHER_CREDIT_CODE: &str = "91110000600037341L";

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

/// A browser: cookie jar, language, the session's CSRF token.
pub struct Browser {
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
    pub async fn new(portal: &str, agent: &str) -> Result<Browser> {
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
    pub fn with_pin(mut self, pin: &Pin) -> Browser {
        self.pin = pin.clone();
        self
    }
    pub async fn get(&self, path: &str) -> Result<(u16, Value)> {
        let r = self.http.get(format!("{}{path}", self.portal)).header("Accept-Language", "zh-CN").send().await?;
        Ok((r.status().as_u16(), r.json().await?))
    }
    pub async fn post(&mut self, path: &str, body: Value) -> Result<(u16, Value)> {
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
    pub async fn put_bytes(&self, path: &str, content_type: &str, bytes: Vec<u8>) -> Result<(u16, Value)> {
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
    pub async fn post_raw(&self, path: &str, body: Vec<u8>, headers: &[(&str, &str)]) -> Result<(u16, Value)> {
        let mut req = self.plain.post(format!("{}{path}", self.portal)).body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let r = req.send().await?;
        Ok((r.status().as_u16(), r.json().await?))
    }
    /// What a portal page does with the agent: call it as the page's origin.
    pub async fn agent(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<(u16, Value)> {
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
    pub async fn key_login(&mut self, key: &str, pin: &str, account: Option<&str>) -> Result<(u16, Value)> {
        let nonce = self.challenge().await?;
        let (s, v) = self.agent_sign(key, pin, &nonce).await?;
        if s != 200 {
            return Ok((s, v));
        }
        self.post("/api/login/key", json!({"nonce": nonce, "token": v["token"], "account_id": account})).await
    }
    pub async fn bind(&mut self, key: &str, accounts: &[String]) -> Result<(u16, Value)> {
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
pub struct Cast {
    pub user: String,
    pub password: Password,
    pub pin: Pin,
    pub staff: Option<(String, Password)>,
    /// Binds to two accounts, logs in, wrong PIN, replay, unbind.
    pub main: String,
    pub pin_locked: Option<String>,
    pub expiring: Option<String>,
    pub expired: Option<String>,
    /// Revoked by the flows (needs the portal in this process).
    pub revocable: Option<String>,
    pub unbound: Option<String>,
    /// Issued to another enterprise: binding it is refused.
    pub foreign: Option<String>,
    /// One PIN try left: the agent asks before spending it.
    pub last_try: Option<String>,
    /// Gets a certificate through the application flow.
    pub blank: Option<String>,
}

/// The system under test: where its portal and agent are, the accounts the flows bind, who
/// plays which part. Built by whoever starts (or finds) the portal, agent and keys.
pub struct System {
    pub portal: String,
    pub agent: String,
    pub accounts: Vec<String>,
    pub cast: Cast,
    /// A key holding a certificate gets a new key pair only when asked (a deployment's key).
    pub replace_key: bool,
    /// A deployment (its portal or keys are not this process's): the flows start by
    /// unbinding the user's accounts, and accept bindings already there.
    pub deployment: bool,
    /// Reads a key's PIN counter on the key itself (no try spent), when its keys are in this
    /// process; else the agent's word is taken.
    pub key_tries: Option<KeyTries>,
    /// An ID photo the portal accepts (`seed` varies it): the application uploads two.
    pub photo: fn(u8) -> Vec<u8>,
}

/// How the flows read a key's PIN counter on the key.
pub type KeyTries = std::sync::Arc<dyn Fn(&str) -> Result<u8> + Send + Sync>;

impl System {
    /// A browser with the cast's PIN.
    pub async fn browser(&self) -> Result<Browser> {
        Ok(Browser::new(&self.portal, &self.agent).await?.with_pin(&self.cast.pin))
    }

    /// The key's own PIN counter: read on the card when it is in this process, else as the
    /// agent reads it (no try spent either way).
    async fn pin_tries(&self, b: &Browser, id: &str) -> Result<u8> {
        if let Some(read) = &self.key_tries {
            return read(id);
        }
        let (_, v) = b.agent(reqwest::Method::GET, "/keys", None).await?;
        let key = v["keys"].as_array().and_then(|l| l.iter().find(|k| k["id"] == id)).context("key not listed")?;
        Ok(key["pin_retries"].as_u64().context("the agent cannot read the PIN counter")? as u8)
    }
}

/// Expect `code` (and HTTP status) from a step's answer.
pub fn expect(got: (u16, Value), status: u16, code: &str) -> Result<Value> {
    let (s, v) = got;
    if s != status || v["code"] != code {
        bail!("expected {status} {code}, got {s} {}", v);
    }
    Ok(v)
}

pub struct Run {
    steps: Vec<Step>,
    start: Instant,
}

impl Run {
    pub async fn step<F, Fut>(&mut self, flow: &'static str, step: &str, f: F)
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<String>>,
    {
        let t = Instant::now();
        let r = f().await;
        let (ok, detail) = match r {
            Ok(d) => (true, d),
            Err(e) => (false, e.to_string()),
        };
        self.steps.push(Step { flow, step: step.into(), ok, skipped: false, detail, ms: t.elapsed().as_millis() });
    }

    pub fn skip(&mut self, flow: &'static str, step: &str, why: &str) {
        self.steps.push(Step { flow, step: step.into(), ok: true, skipped: true, detail: why.into(), ms: 0 });
    }

    pub fn fail(&mut self, flow: &'static str, step: &str, e: &fail::Failure) {
        self.steps.push(Step { flow, step: step.into(), ok: false, skipped: false, detail: e.to_string(), ms: 0 });
    }
}

pub fn msg(v: &Value) -> String {
    v["message"].as_str().unwrap_or("").to_string()
}

/// Every flow against `w`, step by step, in the manual's order.
pub async fn run_flows(w: &System) -> Vec<Step> {
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
    let deployment = w.deployment;

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
                let fp = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&cert));
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

/// The steps as JUnit XML, a flow a test class.
pub fn junit(steps: &[Step]) -> String {
    use crate::junit::{Case, CaseResult};
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
    crate::junit::write("ukey flows", &cases)
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
