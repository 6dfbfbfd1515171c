//! SQLite's WAL checkpoints, off the requests' path.
//!
//! Left to itself SQLite checkpoints inside the commit that grows the WAL past 1000 pages:
//! under load, every few dozen milliseconds one request waits while pages are copied into
//! the database file and it is synced. Measured with `ukey bench login` (4 keys): p99 5-6 ms
//! with those checkpoints, 2.2-2.5 ms without. So the writer has automatic checkpoints off,
//! and this task checkpoints on a connection of its own, PASSIVE (it never waits for the
//! writer or for readers, and neither waits for it), a few times a second.

use std::sync::Weak;
use std::time::Duration;

use sqlx::{AnyConnection, Connection, Executor};

use super::conns::Conns;

/// How often. Under the heaviest load measured the WAL grows by about 100 MB/s; a checkpoint
/// every 200 ms keeps it near 20 MB (and the writer reuses it from the start after each).
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
