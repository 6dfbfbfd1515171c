//! The audit trail: a row per decision, written through the group writer, read newest first.

use super::audit_writer::AuditRow;
use super::db::Store;
use super::error::Result;

impl Store {
    /// Write an audit row; returns once it is stored.
    pub async fn audit(&self, actor: &str, action: &str, outcome: &str, detail: &str, now: i64) -> Result<()> {
        let row = AuditRow {
            at: now,
            actor: actor.into(),
            action: action.into(),
            outcome: outcome.into(),
            detail: detail.into(),
        };
        self.audit_log.write(row).await
    }

    /// The newest `n` audit rows, newest first.
    pub async fn audit_tail(&self, n: i64) -> Result<Vec<AuditRow>> {
        Ok(sqlx::query_as("SELECT at, actor, action, outcome, detail FROM audit ORDER BY at DESC, id DESC LIMIT $1")
            .bind(n)
            .fetch_all(&mut *self.r().await?)
            .await?)
    }
}
