//! Who the flows are: the PIN, the enterprises' credit codes, and which key plays which part.

use proto::secret::{Password, Pin};

/// The PIN the flows' virtual keys have (the factory default).
pub const PIN: &str = "123456";
/// The flows' enterprise (the demo's) and another one, by unified social credit code: an
/// application must not name the other, a key issued to it must not bind. They are what
/// `portal::seed` makes (the system family is a client and does not depend on the portal
/// crate; cli's tests check the two agree).
pub const CREDIT_CODE: &str = "91350100M000100Y43";
pub const OTHER_CREDIT_CODE: &str = "91110000600037341L";

/// Who the flows are, and which key plays which part. A part without a key (a deployment
/// with one real key has no PIN-locked or expired one) makes its step "skipped".
#[derive(Debug, Clone)]
pub struct Cast {
    pub user: String,
    pub password: Password,
    pub pin: Pin,
    pub staff: Option<(String, Password)>,
    /// Binds to two accounts, logs in, wrong PIN, replay, unbind.
    pub main: String,
    pub pin_locked: Option<String>,
    pub expiring: Option<String>,
    pub expired: Option<String>,
    /// Revoked by the flows (needs the portal in this process).
    pub revocable: Option<String>,
    pub unbound: Option<String>,
    /// Issued to another enterprise: binding it is refused.
    pub foreign: Option<String>,
    /// One PIN try left: the agent asks before spending it.
    pub last_try: Option<String>,
    /// Gets a certificate through the application flow.
    pub blank: Option<String>,
}
