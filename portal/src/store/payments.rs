//! Payments of applications and the provider's notifications, acted on once.

use sqlx::any::AnyRow;
use sqlx::{Connection, Row};

use super::db::Store;
use super::error::{Result, StoreError};
use super::id::new_id;
use crate::enrollment::Stage;

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

impl Store {
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
}
