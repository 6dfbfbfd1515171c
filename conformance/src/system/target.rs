//! The system under test: where its portal and agent are, and who plays which part.

use super::browser::Browser;
use super::cast::Cast;
use super::fail::{Context, Result};

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
    pub(super) async fn pin_tries(&self, b: &Browser, id: &str) -> Result<u8> {
        if let Some(read) = &self.key_tries {
            return read(id);
        }
        let (_, v) = b.agent(reqwest::Method::GET, "/keys", None).await?;
        let key = v["keys"].as_array().and_then(|l| l.iter().find(|k| k["id"] == id)).context("key not listed")?;
        Ok(key["pin_retries"].as_u64().context("the agent cannot read the PIN counter")? as u8)
    }
}
