//! Fixed-window request limits per (action, client): counted in this process or in the
//! database, depending on how many portal instances can serve one client.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::store::Backend;

/// Where the portal counts requests.
#[derive(Debug)]
pub enum RateLimits {
    /// In this process: a SQLite file is served by one portal, and a count in memory costs
    /// no write on the login path (`ukey bench login`'s default).
    InProcess(RateLimiter),
    /// In the database (`Store::count_request`): instances behind a load balancer share one
    /// PostgreSQL, and a client that reaches several of them must not get each one's limit.
    Shared,
}

impl RateLimits {
    pub fn for_backend(backend: Backend) -> RateLimits {
        match backend {
            Backend::Sqlite => RateLimits::InProcess(RateLimiter::default()),
            Backend::Postgres => RateLimits::Shared,
        }
    }
}

/// (action, client) -> (minute, requests in it).
type Windows = HashMap<(&'static str, String), (i64, u32)>;

/// Counts in memory, for [`RateLimits::InProcess`].
#[derive(Debug, Default)]
pub struct RateLimiter {
    windows: Mutex<Windows>,
}

impl RateLimiter {
    /// Count one request; `false` once `per_minute` requests came in this minute.
    pub fn allow(&self, action: &'static str, client: &str, per_minute: u32, now: i64) -> bool {
        let minute = now / 60;
        let mut w = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if w.len() > 100_000 {
            // Old windows only; a flood of distinct clients must not grow memory forever.
            w.retain(|_, (m, _)| *m == minute);
        }
        let e = w.entry((action, client.to_string())).or_insert((minute, 0));
        if e.0 != minute {
            *e = (minute, 0);
        }
        e.1 += 1;
        e.1 <= per_minute
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_action_client_and_minute() {
        let r = RateLimiter::default();
        for _ in 0..3 {
            assert!(r.allow("login", "a", 3, 120));
        }
        assert!(!r.allow("login", "a", 3, 179), "fourth in the same minute");
        assert!(r.allow("login", "b", 3, 179), "another client");
        assert!(r.allow("bind", "a", 3, 179), "another action");
        assert!(r.allow("login", "a", 3, 180), "next minute");
    }
}
