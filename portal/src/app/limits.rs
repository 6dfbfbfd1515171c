//! Requests counted per action and client, in this process or in the database
//! ([`RateLimits`]); over the limit is a refusal, audited.

use serde_json::json;

use super::portal::Portal;
use super::refusal::{Kind, Refusal};
use crate::ratelimit::RateLimits;

impl Portal {
    /// Count the request against `action`'s limit for `who` (a session, a user) and for the
    /// client's address `addr`; refused (audited) when either is over.
    pub(crate) async fn limit_both(&self, action: &'static str, who: &str, addr: &str) -> Result<(), Refusal> {
        let (a, b) = tokio::join!(
            self.limit_to(action, who, self.config.rate_per_minute),
            self.limit_to(action, addr, self.config.rate_per_address_per_minute)
        );
        a.and(b)
    }

    /// Count one request of `action` by `client`; refused once `per_minute` came this minute.
    pub(crate) async fn limit_to(&self, action: &'static str, client: &str, per_minute: u32) -> Result<(), Refusal> {
        let allowed = match &self.limits {
            RateLimits::InProcess(r) => r.allow(action, client, per_minute, self.now()),
            RateLimits::Shared => self.store.count_request(action, client, self.now() / 60).await? <= per_minute as i64,
        };
        if allowed {
            return Ok(());
        }
        self.audit(client, action, "refused", "rate limited").await?;
        let wait = 60 - self.now().rem_euclid(60);
        Err(Refusal::new(Kind::TooMany, "rate_limited", "too many requests; wait a minute")
            .with(json!({"retry_after": wait})))
    }
}
