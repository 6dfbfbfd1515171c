//! The catalog's types: what a check is (its ID, clause, family, severity) and what it can
//! say (its verdict). The checks themselves, and `catalog()` listing them, live with the
//! checks.

use serde::Serialize;

use crate::card::Card;

/// Which part of the standard a check is about (the families of SP 800-85A's assertions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    /// SELECT and the application property template.
    Select,
    /// GET DATA: CHUID, CCC, Discovery, certificates; BER-TLV well-formedness.
    Objects,
    /// VERIFY: status query, counting, reset, logout, PIN format.
    Verify,
    /// CHANGE REFERENCE DATA and RESET RETRY COUNTER, PIN and PUK.
    PinMgmt,
    /// Management-key authentication (GENERAL AUTHENTICATE with 9B).
    MgmtAuth,
    /// GENERAL AUTHENTICATE with the slots' keys: signatures.
    Sign,
    /// PUT DATA, command chaining, GET RESPONSE, extended length.
    PutData,
    /// GENERATE ASYMMETRIC KEY PAIR, and what the new key does.
    Generate,
    /// Status words for malformed commands; state unchanged after a refusal.
    Robustness,
    /// The Yubico extensions: version, serial, metadata, attestation.
    Yubico,
}

impl Family {
    pub const ALL: [Family; 10] = [
        Family::Select,
        Family::Objects,
        Family::Verify,
        Family::PinMgmt,
        Family::MgmtAuth,
        Family::Sign,
        Family::PutData,
        Family::Generate,
        Family::Robustness,
        Family::Yubico,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Family::Select => "select",
            Family::Objects => "objects",
            Family::Verify => "verify",
            Family::PinMgmt => "pin-mgmt",
            Family::MgmtAuth => "mgmt-auth",
            Family::Sign => "sign",
            Family::PutData => "put-data",
            Family::Generate => "generate",
            Family::Robustness => "robustness",
            Family::Yubico => "yubico",
        }
    }
}

/// How much a failure matters: a key that fails a `Must` does not conform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Must,
    Should,
    Info,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Must => "must",
            Severity::Should => "should",
            Severity::Info => "info",
        }
    }
}

/// A check's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", content = "detail", rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    /// The key departs from the clause; the text names the symptom.
    Fail(String),
    /// The key does not have the feature (a Yubico extension, a slot without a key): not a
    /// failure.
    NotSupported(String),
    /// Not run: it needs something not given (a secret, `--destructive`) or a state the key
    /// is not in.
    Skipped(String),
}

impl Verdict {
    pub fn name(&self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail(_) => "FAIL",
            Verdict::NotSupported(_) => "not supported",
            Verdict::Skipped(_) => "skipped",
        }
    }
    /// A failure whose text is `e`'s.
    pub fn fail(e: impl std::fmt::Display) -> Verdict {
        Verdict::Fail(e.to_string())
    }
    pub fn detail(&self) -> &str {
        match self {
            Verdict::Pass => "",
            Verdict::Fail(d) | Verdict::NotSupported(d) | Verdict::Skipped(d) => d,
        }
    }
}

/// One check: what it asserts, where the standard says so, and the code that judges it.
#[derive(Clone, Copy)]
pub struct Check {
    /// Stable across releases: `PIV-VERIFY-004`.
    pub id: &'static str,
    pub title: &'static str,
    /// The clause it tests, e.g. "SP 800-73-4 Part 2 §3.2.1".
    pub clause: &'static str,
    pub family: Family,
    pub severity: Severity,
    /// Changes the key beyond what the check itself puts back (lockout, reset, new keys):
    /// run only when asked for.
    pub destructive: bool,
    pub run: fn(&mut Card) -> Verdict,
}

impl std::fmt::Debug for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Check").field("id", &self.id).field("title", &self.title).finish()
    }
}
