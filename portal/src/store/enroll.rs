//! Certificate applications, their photos and payments, and the SMS / email outbox. Every step
//! of an application is one `UPDATE ... WHERE stage = <the stage before>`: whoever runs it
//! second (another instance, a double click) changes nothing and is told so.

use sqlx::any::AnyRow;
use sqlx::{Connection, Row};

use super::{insert_certificate, new_id, unique, CertRecord, Result, Store, StoreError};
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

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Payment {
    pub id: String,
    pub application_id: String,
    pub method: String,
    pub amount_fen: i64,
    pub status: String,
    pub provider_txn: Option<String>,
    pub created_at: i64,
    pub paid_at: Option<i64>,
}

/// What a payment notification did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Paid {
    /// This notification paid the application (it moved to review).
    Now { application_id: String },
    /// The payment was already paid: a repeated notification, nothing changed.
    Already { application_id: String },
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct OutboxMessage {
    pub channel: String,
    pub recipient: String,
    pub subject: String,
    pub body: String,
    pub created_at: i64,
}

fn application(r: &AnyRow) -> Result<Application> {
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

fn payment(r: &AnyRow) -> sqlx::Result<Payment> {
    Ok(Payment {
        id: r.try_get("id")?,
        application_id: r.try_get("application_id")?,
        method: r.try_get("method")?,
        amount_fen: r.try_get("amount_fen")?,
        status: r.try_get("status")?,
        provider_txn: r.try_get("provider_txn")?,
        created_at: r.try_get("created_at")?,
        paid_at: r.try_get("paid_at")?,
    })
}

const APP_COLUMNS: &str = "id, number, user_id, stage, organisation, credit_code, handler_name, id_number, mobile, \
     email, amount_fen, csr_b64, pay_method, paid_at, reviewed_by, reviewed_at, reject_reason, fingerprint, \
     key_serial, key_firmware, key_manufacturer, created_at, updated_at";

/// An id that sorts by time of creation (nanoseconds, then random), so messages sent within
/// one second still list in the order they were sent.
fn time_ordered_id() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{nanos:032x}{}", &new_id()[..8])
}

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

    // ---- payments ----

    pub async fn create_payment(
        &self,
        application_id: &str,
        method: &str,
        amount_fen: i64,
        now: i64,
    ) -> Result<Payment> {
        let p = Payment {
            id: new_id(),
            application_id: application_id.into(),
            method: method.into(),
            amount_fen,
            status: "pending".into(),
            provider_txn: None,
            created_at: now,
            paid_at: None,
        };
        sqlx::query(
            "INSERT INTO payments (id, application_id, method, amount_fen, status, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&p.id)
        .bind(&p.application_id)
        .bind(&p.method)
        .bind(p.amount_fen)
        .bind(&p.status)
        .bind(now)
        .execute(&mut *self.w().await?)
        .await?;
        Ok(p)
    }

    pub async fn payment(&self, id: &str) -> Result<Option<Payment>> {
        let row =
            sqlx::query("SELECT * FROM payments WHERE id = $1").bind(id).fetch_optional(&mut *self.r().await?).await?;
        Ok(row.as_ref().map(payment).transpose()?)
    }

    pub async fn payments_of(&self, application_id: &str) -> Result<Vec<Payment>> {
        let rows = sqlx::query("SELECT * FROM payments WHERE application_id = $1 ORDER BY created_at, id")
            .bind(application_id)
            .fetch_all(&mut *self.r().await?)
            .await?;
        rows.iter().map(|r| payment(r).map_err(StoreError::from)).collect()
    }

    /// A payment succeeded: mark it paid and move its application from payment to review, in
    /// one transaction. A repeated notification finds it paid and changes nothing.
    pub async fn mark_paid(&self, payment_id: &str, provider_txn: &str, now: i64) -> Result<Paid> {
        let mut conn = self.w().await?;
        let mut tx = conn.begin().await?;
        let row = sqlx::query(
            "UPDATE payments SET status = 'paid', provider_txn = $2, paid_at = $3 \
             WHERE id = $1 AND status = 'pending' RETURNING application_id, method",
        )
        .bind(payment_id)
        .bind(provider_txn)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(r) = row else {
            drop(tx);
            return match self.payment(payment_id).await? {
                Some(p) => Ok(Paid::Already { application_id: p.application_id }),
                None => Err(StoreError::NotFound { what: "payment", value: payment_id.into() }),
            };
        };
        let application_id: String = r.try_get("application_id")?;
        let method: String = r.try_get("method")?;
        let moved = sqlx::query(
            "UPDATE applications SET stage = $2, pay_method = $3, paid_at = $4, updated_at = $4 \
             WHERE id = $1 AND stage = $5",
        )
        .bind(&application_id)
        .bind(Stage::UnderReview.as_str())
        .bind(&method)
        .bind(now)
        .bind(Stage::Payment.as_str())
        .execute(&mut *tx)
        .await?;
        if moved.rows_affected() != 1 {
            // Paid twice through two payments: the first one moved the application; keep this
            // payment on record as paid (a refund is a matter for people).
            tracing::warn!("payment {payment_id} paid for application {application_id} not awaiting payment");
        }
        tx.commit().await?;
        Ok(Paid::Now { application_id })
    }

    // ---- staff review ----

    /// Approve: record the issued certificate and move the application to issued, together.
    /// Never by the applicant (four eyes, also here, so no caller can forget it): `false`.
    /// Approve with the issued certificate `cert`, and revoke (reason superseded) the
    /// certificates issued before to the same holder (ID number) for the same enterprise
    /// (credit code): one live certificate per person and enterprise. `None` when the
    /// application had moved on; else the fingerprints superseded.
    pub async fn approve(&self, id: &str, staff_id: &str, cert: &CertRecord, now: i64) -> Result<Option<Vec<String>>> {
        let mut conn = self.w().await?;
        let mut tx = conn.begin().await?;
        if self.backend() == super::Backend::Postgres {
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

    /// The token serial and firmware stored with an issued certificate (from its attestation).
    pub async fn certificate_key_origin(&self, fingerprint: &str) -> Result<(Option<i64>, Option<String>)> {
        let row = sqlx::query("SELECT key_serial, key_firmware FROM certificates WHERE fingerprint = $1")
            .bind(fingerprint)
            .fetch_optional(&mut *self.r().await?)
            .await?
            .ok_or_else(|| StoreError::NotFound { what: "certificate", value: fingerprint.to_string() })?;
        Ok((row.try_get("key_serial")?, row.try_get("key_firmware")?))
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

    // ---- outbox ----

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
            .bind(super::new_id())
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
