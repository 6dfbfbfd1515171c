//! Everything a rule needs, in one value shared by every request.

use std::sync::Arc;

use proto::Clock;
use sha2::{Digest, Sha256};

use super::crl::CrlCache;
use super::refusal::Refusal;
use crate::config::Config;
use crate::ratelimit::RateLimits;
use crate::store::Store;

/// Everything a request handler needs.
pub struct Portal {
    pub store: Store,
    /// The CA's public key: what login certificates must chain to.
    pub ca: p256::ecdsa::VerifyingKey,
    /// The CA itself: issues the certificates of approved applications.
    pub issuer: Arc<ca::Ca>,
    pub clock: Arc<dyn Clock + Send + Sync>,
    pub config: Config,
    pub limits: RateLimits,
    /// Password hashing, off the async workers and capped.
    pub hasher: crate::password::Hasher,
    /// SHA-256 of certificates already found signed by our CA (bounded).
    chain_ok: std::sync::Mutex<std::collections::HashSet<[u8; 32]>>,
    crl_cache: CrlCache,
    /// Photo decodes running at once (each may take ~170 MB): as many as password hashes.
    pub(crate) photo_slots: tokio::sync::Semaphore,
}

const CHAIN_CACHE_MAX: usize = 100_000;

pub type State = Arc<Portal>;

impl Portal {
    pub fn new(store: Store, issuer: Arc<ca::Ca>, clock: Arc<dyn Clock + Send + Sync>, config: Config) -> State {
        let limits = RateLimits::for_backend(store.backend());
        let hasher = crate::password::Hasher::new(config.hash_slots, config.password_cost, config.hash_wait);
        let photo_slots = config.hash_slots.max(1);
        Arc::new(Portal {
            store,
            ca: *issuer.verifying_key(),
            issuer,
            clock,
            config,
            limits,
            hasher,
            chain_ok: Default::default(),
            crl_cache: Default::default(),
            photo_slots: tokio::sync::Semaphore::new(photo_slots),
        })
    }

    /// Whether `der` is signed by our CA, remembering the answer for certificates that are.
    pub fn issued_by_ca(&self, der: &[u8]) -> bool {
        let h: [u8; 32] = Sha256::digest(der).into();
        if self.chain_ok.lock().unwrap_or_else(|p| p.into_inner()).contains(&h) {
            return true;
        }
        let ok = ca::verify_signed_by(der, &self.ca);
        if ok {
            let mut c = self.chain_ok.lock().unwrap_or_else(|p| p.into_inner());
            if c.len() >= CHAIN_CACHE_MAX {
                c.clear();
            }
            c.insert(h);
        }
        ok
    }

    pub fn now(&self) -> i64 {
        self.clock.now_unix() as i64
    }

    /// Write an audit row; a failing audit write fails the request (no unaudited flow).
    pub(crate) async fn audit(&self, actor: &str, action: &str, outcome: &str, detail: &str) -> Result<(), Refusal> {
        self.store.audit(actor, action, outcome, detail, self.now()).await.map_err(Refusal::from)
    }

    /// The current CRL (DER) and its nextUpdate.
    pub async fn crl(&self) -> Result<(Vec<u8>, u64), String> {
        let validity = self.config.crl_validity_secs.max(60);
        self.crl_cache.current(&self.store, &self.issuer, self.clock.as_ref(), validity).await
    }
}
