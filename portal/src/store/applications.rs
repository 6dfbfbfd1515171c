//! Certificate applications and their ID photos and SMS codes, and the staff's decision.
//! Every step of an application is one `UPDATE ... WHERE stage = <the stage before>`: whoever
//! runs it second (another instance, a double click) changes nothing and is told so.

use sqlx::any::AnyRow;
use sqlx::{Connection, Row};

use super::certificates::{insert_certificate, CertRecord};
use super::db::{Backend, Store};
use super::error::{unique, Result, StoreError};
use super::id::new_id;
use crate::attestation::KeyOrigin;
use crate::enrollment::{Form, Side, Stage};

/// An application as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Application {
    pub id: String,
    pub number: String,
    pub user_id: String,
    pub stage: Stage,
    pub form: Form,
    pub amount_fen: i64,
    pub csr_b64: Option<String>,
    pub pay_method: Option<String>,
    pub paid_at: Option<i64>,
    pub reviewed_by: Option<String>,
    pub reviewed_at: Option<i64>,
    pub reject_reason: Option<String>,
    /// The issued certificate's fingerprint.
    pub fingerprint: Option<String>,
    /// Where the key pair was made (from its attestation), once the application is confirmed.
    pub key_origin: Option<KeyOrigin>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct PhotoInfo {
    pub side: String,
    pub content_type: String,
    pub size: i64,
    pub sha256: String,
}

/// An SMS code check: the stored hash and expiry, and the tries made including this one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsCheck {
    pub hash: Option<String>,
    pub expires_at: i64,
    pub attempts: i64,
}

pub(super) fn application(r: &AnyRow) -> Result<Application> {
    let stage: String = r.try_get("stage")?;
    Ok(Application {
        id: r.try_get("id")?,
        number: r.try_get("number")?,
        user_id: r.try_get("user_id")?,
        stage: Stage::parse(&stage)
            .ok_or_else(|| StoreError::NotFound { what: "application stage", value: stage.clone() })?,
        form: Form {
            organisation: r.try_get("organisation")?,
            credit_code: r.try_get("credit_code")?,
            handler_name: r.try_get("handler_name")?,
            id_number: r.try_get("id_number")?,
            mobile: r.try_get("mobile")?,
            email: r.try_get("email")?,
        },
        amount_fen: r.try_get("amount_fen")?,
        csr_b64: r.try_get("csr_b64")?,
        pay_method: r.try_get("pay_method")?,
        paid_at: r.try_get("paid_at")?,
        reviewed_by: r.try_get("reviewed_by")?,
        reviewed_at: r.try_get("reviewed_at")?,
        reject_reason: r.try_get("reject_reason")?,
        fingerprint: r.try_get("fingerprint")?,
        key_origin: r
            .try_get::<Option<String>, _>("key_manufacturer")?
            .map(|manufacturer| -> Result<KeyOrigin> {
                Ok(KeyOrigin { serial: r.try_get("key_serial")?, firmware: r.try_get("key_firmware")?, manufacturer })
            })
            .transpose()?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

const APP_COLUMNS: &str = "id, number, user_id, stage, organisation, credit_code, handler_name, id_number, mobile, \
     email, amount_fen, csr_b64, pay_method, paid_at, reviewed_by, reviewed_at, reject_reason, fingerprint, \
     key_serial, key_firmware, key_manufacturer, created_at, updated_at";

impl Store {
    /// A new application at the review stage.
    pub async fn create_application(
        &self,
        number: &str,
        user_id: &str,
        form: &Form,
        amount_fen: i64,
        now: i64,
    ) -> Result<Application> {
        let id = new_id();
        sqlx::query(
            "INSERT INTO applications (id, number, user_id, stage, organisation, credit_code, handler_name, id_number, \
             mobile, email, amount_fen, sms_attempts, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 0, $12, $12)",
        )
        .bind(&id)
        .bind(number)
        .bind(user_id)
        .bind(Stage::Review.as_str())
        .bind(&form.organisation)
        .bind(&form.credit_code)
        .bind(&form.handler_name)
        .bind(&form.id_number)
        .bind(&form.mobile)
        .bind(&form.email)
        .bind(amount_fen)
        .bind(now)
        .execute(&mut *self.w().await?)
        .await
        .map_err(unique("application number", number))?;
        self.application(&id).await?.ok_or(StoreError::NotFound { what: "application", value: id })
    }

    pub async fn application(&self, id: &str) -> Result<Option<Application>> {
        let row = sqlx::query(&format!("SELECT {APP_COLUMNS} FROM applications WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut *self.r().await?)
            .await?;
        row.as_ref().map(application).transpose()
    }

    /// A user's applications, newest first.
    pub async fn applications_of(&self, user_id: &str) -> Result<Vec<Application>> {
        let rows = sqlx::query(&format!(
            "SELECT {APP_COLUMNS} FROM applications WHERE user_id = $1 ORDER BY created_at DESC, number DESC"
        ))
        .bind(user_id)
        .fetch_all(&mut *self.r().await?)
        .await?;
        rows.iter().map(application).collect()
    }

    /// Applications at one stage, oldest first (the staff's queue).
    pub async fn applications_at(&self, stage: Stage) -> Result<Vec<Application>> {
        let rows = sqlx::query(&format!(
            "SELECT {APP_COLUMNS} FROM applications WHERE stage = $1 ORDER BY updated_at, number"
        ))
        .bind(stage.as_str())
        .fetch_all(&mut *self.r().await?)
        .await?;
        rows.iter().map(application).collect()
    }

    /// Replace the form ("go back and edit"); only while the order is at review.
    pub async fn update_form(&self, id: &str, form: &Form, now: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE applications SET organisation = $2, credit_code = $3, handler_name = $4, id_number = $5, \
             mobile = $6, email = $7, updated_at = $8 WHERE id = $1 AND stage = $9",
        )
        .bind(id)
        .bind(&form.organisation)
        .bind(&form.credit_code)
        .bind(&form.handler_name)
        .bind(&form.id_number)
        .bind(&form.mobile)
        .bind(&form.email)
        .bind(now)
        .bind(Stage::Review.as_str())
        .execute(&mut *self.w().await?)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Move from `from` to `to`; `false` if the application was not at `from`.
    pub async fn advance(&self, id: &str, from: Stage, to: Stage, now: i64) -> Result<bool> {
        let done = sqlx::query("UPDATE applications SET stage = $3, updated_at = $4 WHERE id = $1 AND stage = $2")
            .bind(id)
            .bind(from.as_str())
            .bind(to.as_str())
            .bind(now)
            .execute(&mut *self.w().await?)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Store (or replace) one side's photo; only while photos are being uploaded.
    pub async fn put_photo(&self, id: &str, side: Side, content_type: &str, bytes: &[u8], now: i64) -> Result<bool> {
        use base64::Engine;
        use sha2::Digest;
        let mut conn = self.w().await?;
        let mut tx = conn.begin().await?;
        let at = sqlx::query("SELECT id FROM applications WHERE id = $1 AND stage = $2")
            .bind(id)
            .bind(Stage::Photos.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        if at.is_none() {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO application_photos (application_id, side, content_type, size, sha256, data_b64, uploaded_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (application_id, side) DO UPDATE SET content_type = $3, size = $4, sha256 = $5, \
             data_b64 = $6, uploaded_at = $7",
        )
        .bind(id)
        .bind(side.as_str())
        .bind(content_type)
        .bind(bytes.len() as i64)
        .bind(hex::encode(sha2::Sha256::digest(bytes)))
        .bind(base64::engine::general_purpose::STANDARD.encode(bytes))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn photos(&self, id: &str) -> Result<Vec<PhotoInfo>> {
        Ok(sqlx::query_as(
            "SELECT side, content_type, size, sha256 FROM application_photos WHERE application_id = $1 ORDER BY side",
        )
        .bind(id)
        .fetch_all(&mut *self.r().await?)
        .await?)
    }

    /// One photo's type and bytes (for staff review).
    pub async fn photo(&self, id: &str, side: Side) -> Result<Option<(String, Vec<u8>)>> {
        use base64::Engine;
        let row = sqlx::query(
            "SELECT content_type, data_b64 FROM application_photos WHERE application_id = $1 AND side = $2",
        )
        .bind(id)
        .bind(side.as_str())
        .fetch_optional(&mut *self.r().await?)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let data: String = r.try_get("data_b64")?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|e| StoreError::NotFound { what: "photo data", value: e.to_string() })?;
        Ok(Some((r.try_get("content_type")?, bytes)))
    }

    /// "Confirm application": keep the key's CSR, set a new SMS code, move to the SMS stage.
    pub async fn submit_application(
        &self,
        id: &str,
        csr_b64: &str,
        key: &KeyOrigin,
        sms_hash: &str,
        sms_expires_at: i64,
        now: i64,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE applications SET csr_b64 = $2, sms_hash = $3, sms_expires_at = $4, sms_attempts = 0, \
             sms_sent_at = $5, stage = $6, updated_at = $5, key_serial = $8, key_firmware = $9, \
             key_manufacturer = $10 WHERE id = $1 AND stage = $7",
        )
        .bind(id)
        .bind(csr_b64)
        .bind(sms_hash)
        .bind(sms_expires_at)
        .bind(now)
        .bind(Stage::Sms.as_str())
        .bind(Stage::Photos.as_str())
        .bind(key.serial)
        .bind(&key.firmware)
        .bind(&key.manufacturer)
        .execute(&mut *self.w().await?)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// A new SMS code, if the last one was sent at least `cooldown` seconds ago. `Ok(None)`:
    /// too soon (the answer says how long to wait); `Err(NotFound)`: not at the SMS stage.
    pub async fn resend_sms(
        &self,
        id: &str,
        sms_hash: &str,
        sms_expires_at: i64,
        cooldown: i64,
        now: i64,
    ) -> Result<Option<()>> {
        let done = sqlx::query(
            "UPDATE applications SET sms_hash = $2, sms_expires_at = $3, sms_attempts = 0, sms_sent_at = $4 \
             WHERE id = $1 AND stage = $5 AND sms_sent_at <= $6",
        )
        .bind(id)
        .bind(sms_hash)
        .bind(sms_expires_at)
        .bind(now)
        .bind(Stage::Sms.as_str())
        .bind(now - cooldown)
        .execute(&mut *self.w().await?)
        .await?;
        if done.rows_affected() == 1 {
            return Ok(Some(()));
        }
        match self.application(id).await? {
            Some(a) if a.stage == Stage::Sms => Ok(None),
            _ => Err(StoreError::NotFound { what: "application at the SMS stage", value: id.into() }),
        }
    }

    /// When the current SMS code was sent.
    pub async fn sms_sent_at(&self, id: &str) -> Result<Option<i64>> {
        let row = sqlx::query("SELECT sms_sent_at FROM applications WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *self.r().await?)
            .await?;
        Ok(match row {
            Some(r) => r.try_get("sms_sent_at")?,
            None => None,
        })
    }

    /// Count one try at the SMS code (in the same statement that reads it, so racing tries
    /// cannot exceed the limit) and hand back what to compare it with.
    pub async fn sms_try(&self, id: &str) -> Result<Option<SmsCheck>> {
        let row = sqlx::query(
            "UPDATE applications SET sms_attempts = sms_attempts + 1 WHERE id = $1 AND stage = $2 \
             RETURNING sms_hash, sms_expires_at, sms_attempts",
        )
        .bind(id)
        .bind(Stage::Sms.as_str())
        .fetch_optional(&mut *self.w().await?)
        .await?;
        Ok(match row {
            Some(r) => Some(SmsCheck {
                hash: r.try_get("sms_hash")?,
                expires_at: r.try_get::<Option<i64>, _>("sms_expires_at")?.unwrap_or(0),
                attempts: r.try_get("sms_attempts")?,
            }),
            None => None,
        })
    }

    /// Forget the SMS code (used up, or too many wrong tries: a new one must be asked for),
    /// and delete the SMS that carried it and any earlier one of the application.
    pub async fn clear_sms(&self, id: &str) -> Result<()> {
        let mut conn = self.w().await?;
        sqlx::query("UPDATE applications SET sms_hash = NULL WHERE id = $1").bind(id).execute(&mut *conn).await?;
        sqlx::query("DELETE FROM outbox WHERE channel = 'sms' AND application_id = $1")
            .bind(id)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// Approve: record the issued certificate and move the application to issued, together.
    /// Never by the applicant (four eyes, also here, so no caller can forget it): `false`.
    /// Approve with the issued certificate `cert`, and revoke (reason superseded) the
    /// certificates issued before to the same holder (ID number) for the same enterprise
    /// (credit code): one live certificate per person and enterprise. `None` when the
    /// application had moved on; else the fingerprints superseded.
    pub async fn approve(&self, id: &str, staff_id: &str, cert: &CertRecord, now: i64) -> Result<Option<Vec<String>>> {
        let mut conn = self.w().await?;
        let mut tx = conn.begin().await?;
        if self.backend() == Backend::Postgres {
            // Two approvals for one holder at once (two staff, two instances) would each miss
            // the other's uncommitted certificate and both stay live: one holder at a time.
            // SQLite has a single writer already.
            sqlx::query(
                "SELECT count(*) AS n FROM (SELECT pg_advisory_xact_lock(hashtext(credit_code || '/' || id_number)) \
                 FROM applications WHERE id = $1) AS locked",
            )
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        }
        insert_certificate(cert, now).execute(&mut *tx).await.map_err(unique("certificate", &cert.fingerprint))?;
        let done = sqlx::query(
            "UPDATE applications SET stage = $2, fingerprint = $3, reviewed_by = $4, reviewed_at = $5, updated_at = $5 \
             WHERE id = $1 AND stage = $6 AND user_id <> $4",
        )
        .bind(id)
        .bind(Stage::Issued.as_str())
        .bind(&cert.fingerprint)
        .bind(staff_id)
        .bind(now)
        .bind(Stage::UnderReview.as_str())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(None); // dropped: the certificate row goes too
        }
        // The certificate carries where its key was made.
        sqlx::query(
            "UPDATE certificates SET key_serial = (SELECT key_serial FROM applications WHERE id = $1), \
             key_firmware = (SELECT key_firmware FROM applications WHERE id = $1) WHERE fingerprint = $2",
        )
        .bind(id)
        .bind(&cert.fingerprint)
        .execute(&mut *tx)
        .await?;
        let earlier = "SELECT o.fingerprint FROM applications o JOIN applications a ON a.id = $1 \
             WHERE o.id <> a.id AND o.fingerprint IS NOT NULL AND o.credit_code = a.credit_code \
             AND o.id_number = a.id_number";
        // One statement: what it reports is exactly what it revoked.
        let rows = sqlx::query(&format!(
            "UPDATE certificates SET revoked_at = $2, revoke_reason = $3 WHERE revoked_at IS NULL \
             AND fingerprint IN ({earlier}) RETURNING fingerprint"
        ))
        .bind(id)
        .bind(now)
        .bind(ca::crl::Reason::Superseded.name())
        .fetch_all(&mut *tx)
        .await?;
        let superseded: Vec<String> = rows.iter().map(|r| r.try_get("fingerprint")).collect::<sqlx::Result<_>>()?;
        tx.commit().await?;
        Ok(Some(superseded))
    }

    pub async fn reject(&self, id: &str, staff_id: &str, reason: &str, now: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE applications SET stage = $2, reject_reason = $3, reviewed_by = $4, reviewed_at = $5, \
             updated_at = $5 WHERE id = $1 AND stage = $6 AND user_id <> $4",
        )
        .bind(id)
        .bind(Stage::Rejected.as_str())
        .bind(reason)
        .bind(staff_id)
        .bind(now)
        .bind(Stage::UnderReview.as_str())
        .execute(&mut *self.w().await?)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
