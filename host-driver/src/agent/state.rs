//! The agent's configuration and the state its handlers share.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use tokio::sync::broadcast;

use super::provider::KeyProvider;
use crate::MgmtKey;

#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Origins whose pages may use the agent (none by default: a portal is named explicitly).
    pub allowed_origins: Vec<String>,
    /// How often key presence is checked for events (at the latest: a provider that watches
    /// readers reports their changes at once).
    pub poll: Duration,
    /// The keys' management key: generating a key pair and writing a certificate need it.
    pub management_key: MgmtKey,
    /// The agent's own origin (`http://LISTEN`): the certificate assistant's page calls from
    /// it. `None`: the assistant's calls are refused.
    pub own_origin: Option<String>,
}

impl AgentConfig {
    /// For pages of `origins`, polling every 250 ms, keys with the factory management key.
    pub fn new(origins: Vec<String>) -> AgentConfig {
        AgentConfig {
            allowed_origins: origins,
            poll: Duration::from_millis(250),
            management_key: MgmtKey::default(),
            own_origin: None,
        }
    }
}

pub(super) struct Agent {
    pub(super) keys: Arc<dyn KeyProvider>,
    pub(super) config: AgentConfig,
    pub(super) events: broadcast::Sender<Value>,
}

/// What `GET /keys` says of a key.
#[derive(Debug, Clone, Serialize)]
pub struct KeySummary {
    pub id: String,
    pub label: String,
    pub serial: Option<String>,
    pub subject: Option<String>,
    pub not_after: Option<u64>,
    pub pin_retries: Option<u8>,
    pub pin_retries_total: Option<u8>,
    pub error: Option<String>,
}
