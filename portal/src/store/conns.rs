//! Where the store's statements run: a few SQLite connections held open for the portal's
//! life, or PostgreSQL's pool.
//!
//! Why not sqlx's pool for SQLite too: it pings a connection every time one is given back
//! (and may on checkout), each ping a round trip to the connection's worker thread. Measured
//! on the 2-core VM, one INSERT through the pool took 126 µs against 52 µs on a connection
//! held by the caller. An embedded file cannot drop the connection, so the pings buy nothing
//! there; PostgreSQL's server can go away, and there the pool's checks and reconnects are kept.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool};
use tokio::sync::{Mutex, OwnedMutexGuard};

pub(super) enum Conns {
    /// SQLite: connections opened once; a caller takes a free one, or waits its turn on one.
    Held {
        conns: Vec<Arc<Mutex<AnyConnection>>>,
        next: AtomicUsize,
    },
    Pool(AnyPool),
}

/// One connection, the caller's until dropped.
pub(super) enum Lease {
    Held(OwnedMutexGuard<AnyConnection>),
    Pooled(PoolConnection<Any>),
}

impl Conns {
    pub(super) fn held(conns: Vec<AnyConnection>) -> Conns {
        assert!(!conns.is_empty(), "at least one connection");
        Conns::Held { conns: conns.into_iter().map(|c| Arc::new(Mutex::new(c))).collect(), next: AtomicUsize::new(0) }
    }

    pub(super) async fn get(&self) -> sqlx::Result<Lease> {
        match self {
            Conns::Pool(p) => Ok(Lease::Pooled(p.acquire().await?)),
            Conns::Held { conns, next } => {
                let start = next.fetch_add(1, Ordering::Relaxed);
                for i in 0..conns.len() {
                    if let Ok(g) = conns[(start + i) % conns.len()].clone().try_lock_owned() {
                        return Ok(Lease::Held(g));
                    }
                }
                // All busy: queue (fairly) on one of them.
                Ok(Lease::Held(conns[start % conns.len()].clone().lock_owned().await))
            }
        }
    }
}

impl Deref for Lease {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        match self {
            Lease::Held(g) => g,
            Lease::Pooled(c) => c,
        }
    }
}

impl DerefMut for Lease {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        match self {
            Lease::Held(g) => g,
            Lease::Pooled(c) => c,
        }
    }
}

impl std::fmt::Debug for Conns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Conns::Held { conns, .. } => write!(f, "Conns::Held({})", conns.len()),
            Conns::Pool(p) => write!(f, "Conns::Pool({p:?})"),
        }
    }
}
