//! What a run found: each check's verdict with the status words the key answered and the time
//! it took, and who the key is.

use serde::Serialize;

use crate::catalog::{Check, Family, Severity, Verdict};

/// One check's result.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub id: &'static str,
    pub title: &'static str,
    pub clause: &'static str,
    pub family: Family,
    pub severity: Severity,
    pub verdict: Verdict,
    /// Changes the key beyond what the check puts back: not run without leave, and then not
    /// counted against conformance.
    pub destructive: bool,
    /// Every status word the key answered during the check, in order (hex).
    pub status_words: Vec<String>,
    pub millis: u128,
    /// For a destructive check that ran: how the key was put back as found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restoration: Option<crate::restore::Restoration>,
}

impl Outcome {
    pub fn new(check: &Check, verdict: Verdict, seen: &[u16], millis: u128) -> Outcome {
        Outcome {
            id: check.id,
            title: check.title,
            clause: check.clause,
            family: check.family,
            severity: check.severity,
            destructive: check.destructive,
            verdict,
            status_words: seen.iter().map(|sw| format!("{sw:04X}")).collect(),
            millis,
            restoration: None,
        }
    }
}

/// Who the key is, as it answered.
#[derive(Debug, Clone, Default, Serialize)]
pub struct KeyIdentity {
    pub name: String,
    pub atr: String,
    pub aid: Option<String>,
    pub version: Option<String>,
    pub serial: Option<u32>,
    /// The CHUID's GUID (34), hex: a card's identity where it has no Yubico serial.
    pub guid: Option<String>,
}

/// A whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub key: KeyIdentity,
    pub outcomes: Vec<Outcome>,
    /// What the run did to the key's PIN and PUK and did not undo (empty: tries and values
    /// are as found).
    pub secrets: Vec<crate::guard::Change>,
    /// APDUs carrying a PIN or PUK that the guard stopped (a check going around its rules: a
    /// bug of the suite, never sent to the key).
    pub guard_refused: Vec<String>,
}

/// The JSON form adds the totals and the verdict.
impl Report {
    pub fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "checks": self.outcomes.len(),
            "passed": self.count("pass"),
            "failed": self.count("FAIL"),
            "must_failed": self.must_failures().len(),
            "not_supported": self.count("not supported"),
            "skipped": self.count("skipped"),
            "unrestored": self.unrestored().len(),
            "conforms": self.conforms(),
        })
    }
}

impl Report {
    /// How many checks ended with `name` (pass, FAIL, ...).
    pub fn count(&self, name: &str) -> usize {
        self.outcomes.iter().filter(|o| o.verdict.name() == name).count()
    }

    /// The must-checks that failed: a key with none conforms.
    pub fn must_failures(&self) -> Vec<&Outcome> {
        self.outcomes.iter().filter(|o| o.severity == Severity::Must && matches!(o.verdict, Verdict::Fail(_))).collect()
    }

    /// The must-checks that did not run for want of a secret or a state (destructive checks
    /// left out without leave are not among them: they were not asked for).
    pub fn must_skipped(&self) -> Vec<&Outcome> {
        self.outcomes
            .iter()
            .filter(|o| o.severity == Severity::Must && !o.destructive && matches!(o.verdict, Verdict::Skipped(_)))
            .collect()
    }

    /// Whether every must-check that applies to this key passed (a feature the key lacks is
    /// not supported, not failed; a must-check skipped leaves the question open).
    pub fn conforms(&self) -> bool {
        self.must_failures().is_empty() && self.must_skipped().is_empty() && self.unrestored().is_empty()
    }

    /// The destructive checks after which the key could not be shown to be as it was found.
    pub fn unrestored(&self) -> Vec<&Outcome> {
        self.outcomes.iter().filter(|o| o.restoration.as_ref().is_some_and(|r| !r.verified)).collect()
    }

    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        v["summary"] = self.summary();
        v
    }

    /// The terminal summary: one line per check, then the totals.
    pub fn table(&self) -> String {
        let mut out = format!("key: {}  ATR {}\n", self.key.name, self.key.atr);
        if let Some(v) = &self.key.version {
            out.push_str(&format!("version {v}"));
        }
        if let Some(s) = self.key.serial {
            out.push_str(&format!("  serial {s}"));
        }
        out.push('\n');
        out.push_str(&format!("{:<18} {:<7} {:<14} {}\n", "check", "level", "result", "title"));
        for o in &self.outcomes {
            out.push_str(&format!("{:<18} {:<7} {:<14} {}", o.id, o.severity.name(), o.verdict.name(), o.title));
            if !o.verdict.detail().is_empty() {
                out.push_str(&format!(" — {}", o.verdict.detail()));
            }
            out.push('\n');
            if let Some(r) = &o.restoration {
                out.push_str(&format!("{:<41}restored: {}\n", "", r.summary()));
            }
        }
        for c in &self.secrets {
            out.push_str(&format!("{}: {} (during {})\n", c.secret.name(), c.what, c.during));
        }
        if !self.guard_refused.is_empty() {
            out.push_str(&format!("the guard stopped PIN/PUK APDUs: {}\n", self.guard_refused.join(", ")));
        }
        out.push_str(&format!(
            "{} checks: {} passed, {} failed ({} must), {} not supported, {} skipped\n",
            self.outcomes.len(),
            self.count("pass"),
            self.count("FAIL"),
            self.must_failures().len(),
            self.count("not supported"),
            self.count("skipped"),
        ));
        out.push_str(if self.conforms() {
            "every must-check that applies passed\n"
        } else if !self.unrestored().is_empty() && self.must_failures().is_empty() {
            "the key was not shown to be put back as it was found (see \"restored:\" above)\n"
        } else if self.must_failures().is_empty() {
            "incomplete: must-checks were skipped (see why above)\n"
        } else {
            "the key does not conform: must-checks failed\n"
        });
        out
    }
}
