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
    /// Requests per minute per client for password login, challenge, key login, bind and new
    /// applications (see [`crate::ratelimit::RateLimits`] for where they are counted).
    pub rate_per_minute: u32,
    pub enroll: EnrollConfig,
    /// Test mode: the simulated payment provider and a read-only view of the SMS / email
    /// outbox are served under `/api/sandbox`. Never on a portal real users reach.
    pub sandbox: bool,
    /// Shared with the payment provider: signs its notifications.
    pub payment_secret: Vec<u8>,
}

/// The certificate application's rules.
#[derive(Debug, Clone)]
pub struct EnrollConfig {
    /// Price of a certificate, in fen (分).
    pub fee_fen: i64,
    /// Validity of an issued certificate.
    pub cert_days: u64,
    /// An SMS code lives this long, allows this many wrong tries, and a new one can be asked
    /// for after `sms_resend_secs`.
    pub sms_secs: i64,
    pub sms_max_attempts: i64,
    pub sms_resend_secs: i64,
    /// Bounds of an ID photo upload, in bytes.
    pub photo_min_bytes: usize,
    pub photo_max_bytes: usize,
}

impl Default for EnrollConfig {
    fn default() -> Self {
        EnrollConfig {
            fee_fen: 20_000,
            cert_days: 365,
            sms_secs: 300,
            sms_max_attempts: 5,
            sms_resend_secs: 60,
            photo_min_bytes: 1024,
            photo_max_bytes: 2 << 20,
        }
    }
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
            enroll: EnrollConfig::default(),
            sandbox: false,
            payment_secret: rand::random::<[u8; 32]>().to_vec(),
        }
    }
}
