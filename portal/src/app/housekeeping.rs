//! What a serving portal does now and then, beside the requests.

use super::portal::State;
use crate::ratelimit::RateLimits;

/// How long a client's wrong-password count is kept after its last wrong password.
const FAILURES_KEPT_SECS: i64 = 24 * 3600;

/// How often expired sessions and old request counts are deleted.
const PURGE_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

/// Delete expired sessions now and then, so abandoned ones (every visit opens one) do not
/// pile up, and request counts of past minutes. Several instances on one PostgreSQL may all
/// do it: the DELETEs are idempotent.
pub async fn housekeeping(p: State) {
    let mut tick = tokio::time::interval(PURGE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match p.store.purge_sessions(p.now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!("deleted {n} expired sessions"),
            Err(e) => tracing::warn!("deleting expired sessions: {e}"),
        }
        match p.store.purge_sms(p.now(), p.now() - 86_400).await {
            Ok(0) => {}
            Ok(n) => tracing::info!("purged {n} dead SMS codes, their messages and old SMS counts"),
            Err(e) => tracing::warn!("purging dead SMS codes: {e}"),
        }
        match p.store.purge_password_failures(p.now() - FAILURES_KEPT_SECS).await {
            Ok(0) => {}
            Ok(n) => tracing::info!("forgot {n} old password-failure counts"),
            Err(e) => tracing::warn!("deleting old password-failure counts: {e}"),
        }
        if let RateLimits::Shared = p.limits {
            if let Err(e) = p.store.purge_rate_limits(p.now() / 60).await {
                tracing::warn!("deleting old request counts: {e}");
            }
        }
    }
}
