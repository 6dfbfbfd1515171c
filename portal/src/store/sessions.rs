//! Sessions (by the SHA-256 of their cookie token) and the key-login challenge each holds;
//! rotation at login and the challenge's spending are single statements.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::certificates::{standing, KeyStanding};
use super::db::Store;
use super::error::{unique, Result};

/// A login challenge, held by the session it was issued to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub nonce: String,
    /// The portal's origin when it was issued: what the key must have signed.
    pub origin: String,
    pub expires_at: i64,
}

/// A browser session as stored: the cookie's token is never stored, only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub token_hash: String,
    pub user_id: Option<String>,
    /// The business account a key login entered.
    pub account_id: Option<String>,
    pub csrf: String,
    pub expires_at: i64,
    /// The login challenge waiting for a key's answer, if any.
    pub challenge: Option<Challenge>,
}

fn session_row(r: &AnyRow) -> sqlx::Result<Session> {
    Ok(Session {
        token_hash: r.try_get("token_hash")?,
        user_id: r.try_get("user_id")?,
        account_id: r.try_get("account_id")?,
        csrf: r.try_get("csrf")?,
        expires_at: r.try_get("expires_at")?,
        challenge: match r.try_get::<Option<String>, _>("nonce")? {
            Some(nonce) => Some(Challenge {
                nonce,
                origin: r.try_get::<Option<String>, _>("nonce_origin")?.unwrap_or_default(),
                expires_at: r.try_get::<Option<i64>, _>("nonce_expires_at")?.unwrap_or(0),
            }),
            None => None,
        },
    })
}

impl Store {
    /// Give the session a new challenge (replacing any earlier one); `false` if no session.
    pub async fn put_challenge(&self, token_hash: &str, c: &Challenge) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE sessions SET nonce = $2, nonce_origin = $3, nonce_expires_at = $4 WHERE token_hash = $1",
        )
        .bind(token_hash)
        .bind(&c.nonce)
        .bind(&c.origin)
        .bind(c.expires_at)
        .execute(&mut *self.w().await?)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Spend the session's challenge `nonce`: `true` for exactly one caller, however many
    /// race for it (the condition and the clearing are one statement).
    pub async fn spend_challenge(&self, token_hash: &str, nonce: &str) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE sessions SET nonce = NULL, nonce_origin = NULL, nonce_expires_at = NULL \
             WHERE token_hash = $1 AND nonce = $2",
        )
        .bind(token_hash)
        .bind(nonce)
        .execute(&mut *self.w().await?)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn put_session(&self, s: &Session, now: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO sessions (token_hash, user_id, account_id, csrf, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&s.token_hash)
        .bind(&s.user_id)
        .bind(&s.account_id)
        .bind(&s.csrf)
        .bind(now)
        .bind(s.expires_at)
        .execute(&mut *self.w().await?)
        .await
        .map_err(unique("session", "(token)"))?;
        Ok(())
    }

    /// A live session by its token hash (expired ones are not returned).
    pub async fn session(&self, token_hash: &str, now: i64) -> Result<Option<Session>> {
        let row = sqlx::query(
            "SELECT token_hash, user_id, account_id, csrf, expires_at, nonce, nonce_origin, nonce_expires_at \
             FROM sessions WHERE token_hash = $1 AND expires_at > $2",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&mut *self.r().await?)
        .await?;
        Ok(row.as_ref().map(session_row).transpose()?)
    }

    /// A live session and, read in the same statement, the standing of the certificate
    /// `fingerprint` (the key login needs both before it can act). `None`: no live session.
    pub async fn session_and_key(
        &self,
        token_hash: &str,
        now: i64,
        fingerprint: &str,
    ) -> Result<Option<(Session, Option<KeyStanding>)>> {
        let rows = sqlx::query(
            "SELECT s.token_hash, s.user_id, s.account_id, s.csrf, s.expires_at, s.nonce, s.nonce_origin, \
             s.nonce_expires_at, c.fingerprint AS known, c.revoked_at, c.revoke_reason, \
             a.id, a.enterprise_id, a.name FROM sessions s \
             LEFT JOIN certificates c ON c.fingerprint = $3 \
             LEFT JOIN bindings b ON b.fingerprint = c.fingerprint LEFT JOIN accounts a ON a.id = b.account_id \
             WHERE s.token_hash = $1 AND s.expires_at > $2 ORDER BY a.name",
        )
        .bind(token_hash)
        .bind(now)
        .bind(fingerprint)
        .fetch_all(&mut *self.r().await?)
        .await?;
        let Some(first) = rows.first() else { return Ok(None) };
        Ok(Some((session_row(first)?, standing(&rows)?)))
    }

    /// Give a session a new token, user, account and CSRF token in one statement (login);
    /// any challenge it held is dropped. `false` if `old_hash` names no session.
    pub async fn rotate_session(&self, old_hash: &str, new: &Session) -> Result<bool> {
        self.rotate(old_hash, new, None).await
    }

    /// [`Store::rotate_session`] that also spends the session's challenge `nonce`, in the same
    /// statement: `false` (and nothing changed) unless the session still held that challenge.
    pub async fn rotate_session_spending(&self, old_hash: &str, nonce: &str, new: &Session) -> Result<bool> {
        self.rotate(old_hash, new, Some(nonce)).await
    }

    async fn rotate(&self, old_hash: &str, new: &Session, spending: Option<&str>) -> Result<bool> {
        const SET: &str = "UPDATE sessions SET token_hash = $2, user_id = $3, account_id = $4, csrf = $5, \
             expires_at = $6, nonce = NULL, nonce_origin = NULL, nonce_expires_at = NULL WHERE token_hash = $1";
        let sql = match spending {
            Some(_) => format!("{SET} AND nonce = $7"),
            None => SET.to_string(),
        };
        let mut q = sqlx::query(&sql)
            .bind(old_hash)
            .bind(&new.token_hash)
            .bind(&new.user_id)
            .bind(&new.account_id)
            .bind(&new.csrf)
            .bind(new.expires_at);
        if let Some(n) = spending {
            q = q.bind(n);
        }
        let done = q.execute(&mut *self.w().await?).await.map_err(unique("session", "(token)"))?;
        Ok(done.rows_affected() == 1)
    }

    /// Delete sessions (and the challenges they hold) that expired; returns how many.
    pub async fn purge_sessions(&self, now: i64) -> Result<u64> {
        let done =
            sqlx::query("DELETE FROM sessions WHERE expires_at <= $1").bind(now).execute(&mut *self.w().await?).await?;
        Ok(done.rows_affected())
    }

    pub async fn delete_session(&self, token_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&mut *self.w().await?)
            .await?;
        Ok(())
    }
}
