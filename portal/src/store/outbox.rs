//! The SMS / email outbox (what a gateway would send), with the counts that cap SMS codes.

use sqlx::{Connection, Row};

use super::db::Store;
use super::error::Result;
use super::id::time_ordered_id;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct OutboxMessage {
    pub channel: String,
    pub recipient: String,
    pub subject: String,
    pub body: String,
    pub created_at: i64,
}

impl Store {
    /// Queue an SMS or email (a gateway would drain the outbox; the sandbox shows it).
    pub async fn send(&self, channel: &str, recipient: &str, subject: &str, body: &str, now: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO outbox (id, channel, recipient, subject, body, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(time_ordered_id())
        .bind(channel)
        .bind(recipient)
        .bind(subject)
        .bind(body)
        .bind(now)
        .execute(&mut *self.w().await?)
        .await?;
        Ok(())
    }

    /// SMS codes sent to `recipient`, and asked for by `user_id`, since `since`.
    pub async fn sms_sent_since(&self, recipient: &str, user_id: &str, since: i64) -> Result<(i64, i64)> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM sms_sent WHERE recipient = $1 AND at >= $3) AS to_recipient, \
                    (SELECT COUNT(*) FROM sms_sent WHERE user_id = $2 AND at >= $3) AS by_user",
        )
        .bind(recipient)
        .bind(user_id)
        .bind(since)
        .fetch_one(&mut *self.r().await?)
        .await?;
        Ok((row.try_get("to_recipient")?, row.try_get("by_user")?))
    }

    /// Queue the SMS carrying application `application_id`'s code (alive until `expires_at`)
    /// and count it against the caps of its recipient and of `user_id`, together.
    pub async fn send_sms_code(
        &self,
        application_id: &str,
        user_id: &str,
        recipient: &str,
        body: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<()> {
        let mut conn = self.w().await?;
        let mut tx = conn.begin().await?;
        sqlx::query(
            "INSERT INTO outbox (id, channel, recipient, subject, body, created_at, application_id, expires_at) \
             VALUES ($1, 'sms', $2, '验证码', $3, $4, $5, $6)",
        )
        .bind(time_ordered_id())
        .bind(recipient)
        .bind(body)
        .bind(now)
        .bind(application_id)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO sms_sent (id, recipient, user_id, at) VALUES ($1, $2, $3, $4)")
            .bind(super::id::new_id())
            .bind(recipient)
            .bind(user_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Delete what is left of dead SMS codes: hashes past their expiry, the outbox's SMS whose
    /// code expired, counts older than `counts_before`. Answers the rows deleted or cleared.
    pub async fn purge_sms(&self, now: i64, counts_before: i64) -> Result<u64> {
        let mut conn = self.w().await?;
        let a =
            sqlx::query("UPDATE applications SET sms_hash = NULL WHERE sms_hash IS NOT NULL AND sms_expires_at < $1")
                .bind(now)
                .execute(&mut *conn)
                .await?;
        let b = sqlx::query("DELETE FROM outbox WHERE channel = 'sms' AND expires_at < $1")
            .bind(now)
            .execute(&mut *conn)
            .await?;
        let c = sqlx::query("DELETE FROM sms_sent WHERE at < $1").bind(counts_before).execute(&mut *conn).await?;
        Ok(a.rows_affected() + b.rows_affected() + c.rows_affected())
    }

    /// Messages to `recipient`, newest first.
    pub async fn outbox_for(&self, recipient: &str) -> Result<Vec<OutboxMessage>> {
        Ok(sqlx::query_as(
            "SELECT channel, recipient, subject, body, created_at FROM outbox WHERE recipient = $1 \
             ORDER BY created_at DESC, id DESC",
        )
        .bind(recipient)
        .fetch_all(&mut *self.r().await?)
        .await?)
    }
}
