//! Certificates the portal knows (issued, or met at a key login), their revocation, and a
//! key's standing: revoked or not, and the accounts it may log in to.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::accounts::{account, Account};
use super::db::{Query, Store};
use super::error::{unique, Result, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertRecord {
    /// SHA-256 of the DER, hex.
    pub fingerprint: String,
    pub serial: String,
    pub subject: String,
    pub not_before: i64,
    pub not_after: i64,
    pub der_b64: String,
    pub revoked_at: Option<i64>,
    pub revoke_reason: Option<String>,
}

impl CertRecord {
    /// The record of a certificate not yet revoked, from its DER.
    pub fn from_der(der: &[u8]) -> Option<CertRecord> {
        use base64::Engine;
        use der::Decode;
        use sha2::Digest;
        let c = x509_cert::Certificate::from_der(der).ok()?;
        let tbs = &c.tbs_certificate;
        let unix = |t: &x509_cert::time::Time| t.to_unix_duration().as_secs() as i64;
        Some(CertRecord {
            fingerprint: hex::encode(sha2::Sha256::digest(der)),
            serial: hex::encode_upper(tbs.serial_number.as_bytes()),
            subject: host_driver::certinfo::display_name(&tbs.subject),
            not_before: unix(&tbs.validity.not_before),
            not_after: unix(&tbs.validity.not_after),
            der_b64: base64::engine::general_purpose::STANDARD.encode(der),
            revoked_at: None,
            revoke_reason: None,
        })
    }
}

/// What the portal holds of a key's certificate at login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyStanding {
    pub revoked_at: Option<i64>,
    pub revoke_reason: Option<String>,
    /// The accounts the key is bound to, by name.
    pub accounts: Vec<Account>,
}

/// A certificate's standing from rows of `known` (its fingerprint, NULL when the portal has
/// no record of it), its revocation, and one bound account (or NULLs) per row.
pub(super) fn standing(rows: &[AnyRow]) -> sqlx::Result<Option<KeyStanding>> {
    let Some(first) = rows.first() else { return Ok(None) };
    if first.try_get::<Option<String>, _>("known")?.is_none() {
        return Ok(None);
    }
    let mut standing = KeyStanding {
        revoked_at: first.try_get("revoked_at")?,
        revoke_reason: first.try_get("revoke_reason")?,
        accounts: Vec::new(),
    };
    for r in rows {
        if r.try_get::<Option<String>, _>("id")?.is_some() {
            standing.accounts.push(account(r)?);
        }
    }
    Ok(Some(standing))
}

pub(super) fn cert(r: &AnyRow) -> sqlx::Result<CertRecord> {
    Ok(CertRecord {
        fingerprint: r.try_get("fingerprint")?,
        serial: r.try_get("serial")?,
        subject: r.try_get("subject")?,
        not_before: r.try_get("not_before")?,
        not_after: r.try_get("not_after")?,
        der_b64: r.try_get("der_b64")?,
        revoked_at: r.try_get("revoked_at")?,
        revoke_reason: r.try_get("revoke_reason")?,
    })
}

pub(super) fn insert_certificate(c: &CertRecord, now: i64) -> Query<'_> {
    sqlx::query(
        "INSERT INTO certificates (fingerprint, serial, subject, not_before, not_after, der_b64, revoked_at, revoke_reason, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, NULL, NULL, $7)",
    )
    .bind(&c.fingerprint)
    .bind(&c.serial)
    .bind(&c.subject)
    .bind(c.not_before)
    .bind(c.not_after)
    .bind(&c.der_b64)
    .bind(now)
}

impl Store {
    pub async fn add_certificate(&self, c: &CertRecord, now: i64) -> Result<()> {
        insert_certificate(c, now)
            .execute(&mut *self.w().await?)
            .await
            .map_err(unique("certificate", &c.fingerprint))?;
        Ok(())
    }

    pub async fn certificate(&self, fingerprint: &str) -> Result<Option<CertRecord>> {
        let row = sqlx::query("SELECT * FROM certificates WHERE fingerprint = $1")
            .bind(fingerprint)
            .fetch_optional(&mut *self.r().await?)
            .await?;
        Ok(row.as_ref().map(cert).transpose()?)
    }

    /// Every revoked certificate: (serial as in the certificate, hex; when; reason), for the CRL.
    pub async fn revoked_certificates(&self) -> Result<Vec<(String, i64, Option<String>)>> {
        let rows = sqlx::query(
            "SELECT serial, revoked_at, revoke_reason FROM certificates WHERE revoked_at IS NOT NULL ORDER BY revoked_at, serial",
        )
        .fetch_all(&mut *self.r().await?)
        .await?;
        rows.iter().map(|r| Ok((r.try_get("serial")?, r.try_get("revoked_at")?, r.try_get("revoke_reason")?))).collect()
    }

    /// Revoke; `false` if it was already revoked (the first reason stays).
    pub async fn revoke(&self, fingerprint: &str, reason: &str, now: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE certificates SET revoked_at = $2, revoke_reason = $3 WHERE fingerprint = $1 AND revoked_at IS NULL",
        )
        .bind(fingerprint)
        .bind(now)
        .bind(reason)
        .execute(&mut *self.w().await?)
        .await?;
        if done.rows_affected() == 0 && self.certificate(fingerprint).await?.is_none() {
            return Err(StoreError::NotFound { what: "certificate", value: fingerprint.into() });
        }
        Ok(done.rows_affected() == 1)
    }

    /// A certificate's revocation and the accounts it may log in to, in one statement (the
    /// key-login path reads both). `None`: the portal has no record of the certificate.
    pub async fn key_standing(&self, fingerprint: &str) -> Result<Option<KeyStanding>> {
        let rows = sqlx::query(
            "SELECT c.fingerprint AS known, c.revoked_at, c.revoke_reason, a.id, a.enterprise_id, a.name \
             FROM certificates c LEFT JOIN bindings b ON b.fingerprint = c.fingerprint \
             LEFT JOIN accounts a ON a.id = b.account_id WHERE c.fingerprint = $1 ORDER BY a.name",
        )
        .bind(fingerprint)
        .fetch_all(&mut *self.r().await?)
        .await?;
        Ok(standing(&rows)?)
    }

    /// The token serial and firmware stored with an issued certificate (from its attestation).
    pub async fn certificate_key_origin(&self, fingerprint: &str) -> Result<(Option<i64>, Option<String>)> {
        let row = sqlx::query("SELECT key_serial, key_firmware FROM certificates WHERE fingerprint = $1")
            .bind(fingerprint)
            .fetch_optional(&mut *self.r().await?)
            .await?
            .ok_or_else(|| StoreError::NotFound { what: "certificate", value: fingerprint.to_string() })?;
        Ok((row.try_get("key_serial")?, row.try_get("key_firmware")?))
    }
}
