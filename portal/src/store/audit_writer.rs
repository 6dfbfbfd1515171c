//! The audit log's writer: rows from requests running at the same time share one multi-row
//! INSERT and one commit. One task takes every row waiting, writes them, and only then tells
//! each request its row is stored, so no answer leaves before its audit row. Beside the
//! store (which holds one), not in it: the store's modules use this, never the reverse.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::conns::Conns;
use super::error::{Result, StoreError};
use super::id::new_id;

/// An audit row, as written and as read back.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct AuditRow {
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub outcome: String,
    pub detail: String,
}

/// Rows written by one INSERT at most (6 parameters each: far below both backends' limits).
const MAX_GROUP: usize = 64;

struct Pending {
    row: AuditRow,
    written: oneshot::Sender<std::result::Result<(), String>>,
}

#[derive(Clone, Debug)]
pub(super) struct AuditLog {
    queue: mpsc::UnboundedSender<Pending>,
}

impl AuditLog {
    /// Start the writing task (on the current tokio runtime); it ends with the last handle.
    pub(super) fn start(writer: Arc<Conns>) -> AuditLog {
        let (queue, rx) = mpsc::unbounded_channel();
        tokio::spawn(write_groups(writer, rx));
        AuditLog { queue }
    }

    pub(super) async fn write(&self, row: AuditRow) -> Result<()> {
        let (written, done) = oneshot::channel();
        let stopped = || StoreError::Audit("the audit writer stopped".into());
        self.queue.send(Pending { row, written }).map_err(|_| stopped())?;
        done.await.map_err(|_| stopped())?.map_err(StoreError::Audit)
    }
}

async fn write_groups(writer: Arc<Conns>, mut rx: mpsc::UnboundedReceiver<Pending>) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    // No waiting for a group to fill: a row arriving alone is written at once; rows that
    // arrive while a write is under way form the next group.
    while rx.recv_many(&mut group, MAX_GROUP).await > 0 {
        let result = insert(&writer, &group).await.map_err(|e| {
            tracing::error!("audit write of {} rows: {e}", group.len());
            e.to_string()
        });
        for p in group.drain(..) {
            let _ = p.written.send(result.clone());
        }
    }
}

async fn insert(writer: &Conns, group: &[Pending]) -> sqlx::Result<()> {
    let values: Vec<String> = (0..group.len())
        .map(|i| {
            let b = i * 6;
            format!("(${}, ${}, ${}, ${}, ${}, ${})", b + 1, b + 2, b + 3, b + 4, b + 5, b + 6)
        })
        .collect();
    let sql = format!("INSERT INTO audit (id, at, actor, action, outcome, detail) VALUES {}", values.join(", "));
    let mut q = sqlx::query(&sql);
    for p in group {
        let r = &p.row;
        q = q.bind(new_id()).bind(r.at).bind(&r.actor).bind(&r.action).bind(&r.outcome).bind(&r.detail);
    }
    q.execute(&mut *writer.get().await?).await?;
    Ok(())
}
