//! SQLite's WAL checkpoints, off the requests' path.
//!
//! Left to itself SQLite checkpoints inside the commit that grows the WAL past 1000 pages:
//! under load, every few dozen milliseconds one request waits while pages are copied into
//! the database file and it is synced. Measured with `ukey bench login` (4 keys): p99 5-6 ms
//! with those checkpoints, 2.2-2.5 ms without. So the writer has automatic checkpoints off,
//! and this task checkpoints on a connection of its own, PASSIVE (it never waits for the
//! writer or for readers, and neither waits for it), once a second.

use std::sync::Weak;
use std::time::Duration;

use sqlx::{AnyConnection, Connection, Executor};

use super::conns::Conns;

/// How often. Every 200 ms was measured too: more checkpoint work (a page changed by many
/// commits is copied once per checkpoint) for no better latency. Under the heaviest load
/// measured the WAL grows by tens of MB between checkpoints; after each the writer starts it
/// over, and `journal_size_limit` cuts the file back.
const EVERY: Duration = Duration::from_millis(1000);

/// Checkpoint until the store's writer is gone.
pub(super) fn start(mut conn: AnyConnection, writer: Weak<Conns>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if writer.strong_count() == 0 {
                break;
            }
            if let Err(e) = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").await {
                tracing::warn!("WAL checkpoint: {e}");
            }
        }
        let _ = conn.close().await;
    });
}
