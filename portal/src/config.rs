//! What an operator sets: the portal's origin (what key logins are bound to), limits, costs.

use crate::password::Cost;

#[derive(Debug, Clone)]
pub struct Config {
    /// The portal's own origin, e.g. `https://portal.example` (what keys sign for; never
    /// taken from a request).
    pub origin: String,
    /// Logged in, but reminded, when the certificate expires within this many days.
    pub expiry_warning_days: i64,
    pub session_secs: i64,
    pub nonce_secs: i64,
    /// Wrong passwords before an account locks, and for how long.
    pub max_password_failures: i64,
    pub lock_secs: i64,
    pub password_cost: Cost,
    /// Requests per minute per client for password login, challenge, key login, bind.
    pub rate_per_minute: u32,
}

impl Config {
    pub fn new(origin: &str) -> Config {
        Config {
            origin: origin.trim_end_matches('/').to_string(),
            expiry_warning_days: 30,
            session_secs: 8 * 3600,
            nonce_secs: 300,
            max_password_failures: 5,
            lock_secs: 15 * 60,
            password_cost: Cost::DEFAULT,
            rate_per_minute: 30,
        }
    }
}
