//! The report as one self-contained HTML page a vendor can attach to a report: the key's
//! identity, the totals, and each check with its result, the status words the key answered
//! and the time it took. Inline styles only; readable when printed.

use crate::catalog::Verdict;
use crate::junit::esc;
use crate::report::Report;

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2rem;color:#1f2933}\
h1{font-size:1.4rem}table{border-collapse:collapse;width:100%;font-size:.9rem}\
th,td{border:1px solid #cbd2d9;padding:.35rem .5rem;text-align:left;vertical-align:top}\
th{background:#f5f7fa}.pass{color:#116b3a}.fail{color:#a61b1b;font-weight:700}\
.ns,.skip{color:#52606d}.mono{font-family:ui-monospace,monospace;font-size:.8rem}\
.verdict{font-size:1.1rem;font-weight:700}.id{white-space:nowrap}@media print{body{margin:0}tr{break-inside:avoid}}";

impl Report {
    /// `generated`: when the run was (printed in the page, e.g. "2026-12-03 12:00:00 UTC").
    pub fn html(&self, generated: &str) -> String {
        let k = &self.key;
        let mut h = format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>PIV conformance: {}</title><style>{STYLE}</style></head><body>\n",
            esc(&k.name)
        );
        h += &format!("<h1>PIV conformance report: {}</h1>\n", esc(&k.name));
        let verdict = if self.conforms() {
            "<span class=\"pass\">every must-check that applies passed</span>".to_string()
        } else if self.must_failures().is_empty() {
            "<span class=\"skip\">incomplete: must-checks were skipped</span>".to_string()
        } else {
            format!("<span class=\"fail\">{} must-checks failed</span>", self.must_failures().len())
        };
        h += &format!("<p class=\"verdict\">{verdict}</p>\n<table>\n");
        let rows = [
            ("Generated", generated.to_string()),
            ("ATR", k.atr.clone()),
            ("AID", k.aid.clone().unwrap_or_else(|| "-".into())),
            ("Version", k.version.clone().unwrap_or_else(|| "- (no Yubico GET VERSION)".into())),
            ("Serial", k.serial.map_or("- (no Yubico GET SERIAL)".into(), |s| s.to_string())),
            ("CHUID GUID", k.guid.clone().unwrap_or_else(|| "-".into())),
            (
                "Totals",
                format!(
                    "{} checks: {} passed, {} failed, {} not supported, {} skipped",
                    self.outcomes.len(),
                    self.count("pass"),
                    self.count("FAIL"),
                    self.count("not supported"),
                    self.count("skipped")
                ),
            ),
        ];
        for (name, value) in rows {
            h += &format!("<tr><th>{name}</th><td class=\"mono\">{}</td></tr>\n", esc(&value));
        }
        h += "</table>\n<h2>Checks</h2>\n<table>\n<tr><th>ID</th><th>Level</th><th>Check</th><th>Clause</th><th>Result</th><th>Status words</th><th>ms</th></tr>\n";
        for o in &self.outcomes {
            let class = match o.verdict {
                Verdict::Pass => "pass",
                Verdict::Fail(_) => "fail",
                Verdict::NotSupported(_) => "ns",
                Verdict::Skipped(_) => "skip",
            };
            let detail = o.verdict.detail();
            let mut result = if detail.is_empty() {
                o.verdict.name().to_string()
            } else {
                format!("{}: {}", o.verdict.name(), esc(detail))
            };
            if let Some(r) = &o.restoration {
                result += &format!("<br><small>restored: {}</small>", esc(&r.summary()));
            }
            h += &format!(
                "<tr><td class=\"mono id\">{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{class}\">{result}</td><td class=\"mono\">{}</td><td>{}</td></tr>\n",
                esc(o.id),
                o.severity.name(),
                esc(o.title),
                esc(o.clause),
                o.status_words.join(" "),
                o.millis
            );
        }
        h + "</table>\n</body></html>\n"
    }

    /// The report as JUnit XML: a check is a test case of its family.
    pub fn junit(&self) -> String {
        use crate::junit::{Case, CaseResult};
        let cases: Vec<Case> = self
            .outcomes
            .iter()
            .map(|o| Case {
                class: o.family.name(),
                name: format!("{} {}", o.id, o.title),
                millis: o.millis,
                result: match &o.verdict {
                    // A check that passed but left the key changed fails as a test case.
                    Verdict::Pass if o.restoration.as_ref().is_some_and(|r| !r.verified) => CaseResult::Failure(
                        format!("restoration: {}", o.restoration.as_ref().map(|r| r.summary()).unwrap_or_default()),
                    ),
                    Verdict::Pass => CaseResult::Pass,
                    Verdict::Fail(why) => CaseResult::Failure(format!("[{}] {why}", o.severity.name())),
                    Verdict::NotSupported(why) => CaseResult::Skipped(format!("not supported: {why}")),
                    Verdict::Skipped(why) => CaseResult::Skipped(why.clone()),
                },
            })
            .collect();
        crate::junit::write(&format!("PIV conformance: {}", self.key.name), &cases)
    }
}
