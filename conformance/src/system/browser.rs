//! The typed portal client: the cookie jar, language and CSRF token a browser keeps, and the
//! page's calls to the local agent.

use proto::secret::Pin;
use serde_json::{json, Value};

use super::api_client::ApiClient;
use super::cast::PIN;
use super::fail::{ensure, Context, Result};

/// A browser: the portal's API client (cookie jar, language, the session's CSRF token), and
/// the page's calls to the agent.
pub struct Browser {
    api: ApiClient,
    agent: String,
    /// The PIN typed when binding.
    pin: Pin,
}

impl Browser {
    pub async fn new(portal: &str, agent: &str) -> Result<Browser> {
        let http = reqwest::Client::builder().cookie_store(true).build()?;
        let api = ApiClient::open(http, portal, "zh-CN").await?;
        ensure!(!api.csrf.is_empty(), "no CSRF token");
        Ok(Browser { api, agent: agent.into(), pin: PIN.into() })
    }
    pub fn with_pin(mut self, pin: &Pin) -> Browser {
        self.pin = pin.clone();
        self
    }
    pub async fn get(&self, path: &str) -> Result<(u16, Value)> {
        Ok(self.api.get(path).await?)
    }
    pub async fn post(&mut self, path: &str, body: Value) -> Result<(u16, Value)> {
        Ok(self.api.post(path, body).await?)
    }
    /// PUT raw bytes (an upload) with its Content-Type.
    pub async fn put_bytes(&self, path: &str, content_type: &str, bytes: Vec<u8>) -> Result<(u16, Value)> {
        Ok(self.api.put_bytes(path, content_type, bytes).await?)
    }
    /// POST raw bytes with extra headers and no cookie (a payment provider's callback).
    pub async fn post_raw(&self, path: &str, body: Vec<u8>, headers: &[(&str, &str)]) -> Result<(u16, Value)> {
        Ok(self.api.post_raw(path, body, headers).await?)
    }
    /// What a portal page does with the agent: call it as the page's origin.
    pub async fn agent(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<(u16, Value)> {
        let mut r = self
            .api
            .plain
            .request(method, format!("{}{path}", self.agent))
            .header("Origin", &self.api.base)
            .header("Accept-Language", "zh-CN");
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await?;
        Ok((r.status().as_u16(), r.json().await?))
    }
    /// What the portal page does: ask the agent (as the page's origin) to sign a challenge.
    pub(super) async fn agent_sign(&self, key: &str, pin: &str, nonce: &str) -> Result<(u16, Value)> {
        self.agent_sign_with(key, pin, nonce, false).await
    }
    /// [`Browser::agent_sign`], saying whether the user confirmed spending the last PIN try.
    pub(super) async fn agent_sign_with(
        &self,
        key: &str,
        pin: &str,
        nonce: &str,
        last_try: bool,
    ) -> Result<(u16, Value)> {
        let r = self
            .api
            .plain
            .post(format!("{}/sign", self.agent))
            .header("Origin", &self.api.base)
            .header("Accept-Language", "zh-CN")
            .json(&json!({"key_id": key, "pin": pin, "nonce": nonce, "last_try": last_try}))
            .send()
            .await?;
        Ok((r.status().as_u16(), r.json().await?))
    }
    pub(super) async fn challenge(&mut self) -> Result<String> {
        let (s, v) = self.api.challenge().await?;
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
