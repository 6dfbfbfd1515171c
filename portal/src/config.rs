//! What an operator sets: the portal's origin (what key logins are bound to), limits, costs.

use crate::password::Cost;

/// Where relying parties fetch the CA's CRL and certificate without logging in: stable paths
/// under the origin, named in every certificate the CA issues.
pub const CRL_PATH: &str = "/pki/ca.crl";
pub const CA_PATH: &str = "/pki/ca.crt";

#[derive(Debug, Clone)]
pub struct Config {
    /// The portal's own origin, e.g. `https://portal.example` (what keys sign for; never
    /// taken from a request).
    pub origin: String,
    /// Logged in, but reminded, when the certificate expires within this many days.
    pub expiry_warning_days: i64,
    pub session_secs: i64,
    pub nonce_secs: i64,
    /// Wrong passwords one client may send for one username before it is slowed down; each
    /// further one doubles its wait (1 s, 2 s, 4 s, ...) up to `password_delay_max_secs`.
    /// Counted per (username, client address), so nobody can lock a user out.
    pub password_free_failures: i64,
    pub password_delay_max_secs: i64,
    pub password_cost: Cost,
    /// Password hashes running at once (each on a blocking thread), and how long a login
    /// waits for a free one before it is told the portal is busy.
    pub hash_slots: usize,
    pub hash_wait: std::time::Duration,
    /// Requests per minute per session or user for password login, challenge, key login,
    /// bind and new applications (see [`crate::ratelimit::RateLimits`] for where they are
    /// counted).
    pub rate_per_minute: u32,
    /// The same actions per minute per client address (all sessions of one address
    /// together), and new sessions per minute per address.
    pub rate_per_address_per_minute: u32,
    pub sessions_per_address_per_minute: u32,
    /// Proxies whose `X-Forwarded-For` names the client (see [`crate::client`]); requests
    /// from anyone else count under their peer address.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub enroll: EnrollConfig,
    /// The token manufacturers whose attestations prove a key pair was generated on a
    /// USB-Key (see [`ca::attestation`]). Empty: no application can be confirmed.
    pub attestation_roots: ca::attestation::Roots,
    /// How long a CRL is valid (its nextUpdate); a new one is made when a certificate is
    /// revoked, or after half of this.
    pub crl_validity_secs: u64,
    /// Test mode: the simulated payment provider and a read-only view of the SMS / email
    /// outbox are served under `/api/sandbox`. Never on a portal real users reach.
    pub sandbox: bool,
    /// Shared with the payment provider: signs its notifications.
    pub payment_secret: Vec<u8>,
    /// Where the pages find the local agent (the certificate application environment) on the
    /// user's computer: a loopback URL, as the agent listens only there.
    pub agent_url: String,
}

/// The agent's default address (`ukey agent --listen`).
pub const DEFAULT_AGENT_URL: &str = "http://127.0.0.1:7781";

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
    /// Most SMS codes one mobile number receives, and one user asks for, per hour and per day.
    pub sms_per_recipient_hour: i64,
    pub sms_per_recipient_day: i64,
    pub sms_per_user_hour: i64,
    pub sms_per_user_day: i64,
    /// Bounds of an ID photo upload, in bytes.
    pub photo_min_bytes: usize,
    pub photo_max_bytes: usize,
    /// Each side of an ID photo in pixels, and its pixel count (see [`crate::photo`]).
    pub photo_min_side: u32,
    pub photo_max_side: u32,
    pub photo_max_pixels: u64,
}

impl EnrollConfig {
    pub fn photo_limits(&self) -> crate::photo::PhotoLimits {
        crate::photo::PhotoLimits {
            min_bytes: self.photo_min_bytes,
            max_bytes: self.photo_max_bytes,
            min_side: self.photo_min_side,
            max_side: self.photo_max_side,
            max_pixels: self.photo_max_pixels,
        }
    }
}

impl Default for EnrollConfig {
    fn default() -> Self {
        EnrollConfig {
            fee_fen: 20_000,
            cert_days: 365,
            sms_secs: 300,
            sms_max_attempts: 5,
            sms_resend_secs: 60,
            sms_per_recipient_hour: 5,
            sms_per_recipient_day: 10,
            sms_per_user_hour: 10,
            sms_per_user_day: 20,
            photo_min_bytes: 1024,
            photo_max_bytes: 2 << 20,
            photo_min_side: 200,
            photo_max_side: 8000,
            // A 12-megapixel phone photo (4000 x 3000); decoding a JPEG that size takes up to
            // ~170 MB (image's allocation limit does not reach into its JPEG decoder), and
            // as many decode at once as the machine has cores.
            photo_max_pixels: 12_000_000,
        }
    }
}

impl Config {
    /// Where the portal publishes its CA's CRL: what the CA names in every certificate
    /// (`Ca::with_crl_url(config.crl_url())`).
    pub fn crl_url(&self) -> String {
        format!("{}{}", self.origin, CRL_PATH)
    }

    /// How long a client waits after its `failures`-th wrong password in a row for one
    /// username: nothing for the first `password_free_failures`, then 1 s doubling to the cap.
    pub fn password_delay(&self, failures: i64) -> i64 {
        let over = failures - self.password_free_failures;
        if over <= 0 {
            return 0;
        }
        1i64.checked_shl((over - 1).min(62) as u32).unwrap_or(i64::MAX).min(self.password_delay_max_secs)
    }

    pub fn new(origin: &str) -> Config {
        Config {
            origin: origin.trim_end_matches('/').to_string(),
            expiry_warning_days: 30,
            session_secs: 8 * 3600,
            nonce_secs: 300,
            password_free_failures: 3,
            password_delay_max_secs: 15 * 60,
            password_cost: Cost::DEFAULT,
            hash_slots: std::thread::available_parallelism().map_or(2, |n| n.get()),
            hash_wait: std::time::Duration::from_secs(10),
            rate_per_minute: 30,
            // One address may be a whole office behind NAT.
            rate_per_address_per_minute: 300,
            sessions_per_address_per_minute: 60,
            trusted_proxies: Vec::new(),
            enroll: EnrollConfig::default(),
            attestation_roots: ca::attestation::Roots::default(),
            crl_validity_secs: 24 * 3600,
            sandbox: false,
            payment_secret: rand::random::<[u8; 32]>().to_vec(),
            agent_url: DEFAULT_AGENT_URL.to_string(),
        }
    }
}
