//! Counts that slow clients down: wrong passwords per (username, client address), and
//! requests per (action, client) per minute when instances share them.

use sqlx::Row;

use super::db::Store;
use super::error::Result;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginFailure {
    /// Wrong passwords from this client for this username since its last right one.
    pub failures: i64,
    /// Unix time until which this client waits before its next try; 0 if it need not.
    pub blocked_until: i64,
}

impl Store {
    /// Until when `client` must wait before its next password for `username` (0: it need not).
    pub async fn password_delay(&self, username: &str, client: &str) -> Result<i64> {
        let row = sqlx::query("SELECT blocked_until FROM login_failures WHERE username = $1 AND client = $2")
            .bind(username)
            .bind(client)
            .fetch_optional(&mut *self.r().await?)
            .await?;
        Ok(row.map(|r| r.try_get("blocked_until")).transpose()?.unwrap_or(0))
    }

    /// Count a wrong password from `client` for `username` (which may not exist); `delay`
    /// says, from the count, how many seconds the client then waits. The count is one
    /// statement, so concurrent portal instances cannot lose one.
    pub async fn record_password_failure(
        &self,
        username: &str,
        client: &str,
        delay: impl Fn(i64) -> i64,
        now: i64,
    ) -> Result<LoginFailure> {
        let mut conn = self.w().await?;
        let row = sqlx::query(
            "INSERT INTO login_failures (username, client, failures, blocked_until, last_at) VALUES ($1, $2, 1, 0, $3) \
             ON CONFLICT (username, client) DO UPDATE SET failures = login_failures.failures + 1, last_at = $3 \
             RETURNING failures",
        )
        .bind(username)
        .bind(client)
        .bind(now)
        .fetch_one(&mut *conn)
        .await?;
        let failures: i64 = row.try_get("failures")?;
        let wait = delay(failures);
        let blocked_until = if wait > 0 { now + wait } else { 0 };
        if wait > 0 {
            sqlx::query("UPDATE login_failures SET blocked_until = $3 WHERE username = $1 AND client = $2")
                .bind(username)
                .bind(client)
                .bind(blocked_until)
                .execute(&mut *conn)
                .await?;
        }
        Ok(LoginFailure { failures, blocked_until })
    }

    /// A right password from `client`: its count for `username` starts again.
    pub async fn clear_password_failures(&self, username: &str, client: &str) -> Result<()> {
        sqlx::query("DELETE FROM login_failures WHERE username = $1 AND client = $2")
            .bind(username)
            .bind(client)
            .execute(&mut *self.w().await?)
            .await?;
        Ok(())
    }

    /// Forget failure counts last touched before `before` (housekeeping).
    pub async fn purge_password_failures(&self, before: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM login_failures WHERE last_at < $1")
            .bind(before)
            .execute(&mut *self.w().await?)
            .await?;
        Ok(done.rows_affected())
    }

    /// Count one request of `client` for `action` in `minute`; answers how many it made in
    /// that minute, this one included. One statement, so instances on one database share
    /// the count and none is lost. A minute older than the row's (an instance whose clock
    /// lags) counts into the row's minute instead of starting it over.
    pub async fn count_request(&self, action: &str, client: &str, minute: i64) -> Result<i64> {
        let row = sqlx::query(
            "INSERT INTO rate_limits (action, client, minute, hits) VALUES ($1, $2, $3, 1) \
             ON CONFLICT (action, client) DO UPDATE SET \
               hits = CASE WHEN rate_limits.minute >= excluded.minute THEN rate_limits.hits + 1 ELSE 1 END, \
               minute = CASE WHEN rate_limits.minute >= excluded.minute THEN rate_limits.minute ELSE excluded.minute END \
             RETURNING hits",
        )
        .bind(action)
        .bind(client)
        .bind(minute)
        .fetch_one(&mut *self.w().await?)
        .await?;
        Ok(row.try_get("hits")?)
    }

    /// Delete request counts of minutes before `minute`; returns how many.
    pub async fn purge_rate_limits(&self, minute: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM rate_limits WHERE minute < $1")
            .bind(minute)
            .execute(&mut *self.w().await?)
            .await?;
        Ok(done.rows_affected())
    }
}
