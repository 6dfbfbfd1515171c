//! The flows' steps: each checked with its outcome and timing, the judges of a portal's
//! answer, and the steps as JUnit XML.

use std::time::Instant;

use serde::Serialize;
use serde_json::Value;

use super::fail::{self, bail, Result};

/// One checked step.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub flow: &'static str,
    pub step: String,
    pub ok: bool,
    /// Not run (the target lacks what the step needs); counts as neither pass nor failure.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub skipped: bool,
    pub detail: String,
    pub ms: u128,
}

/// Expect `code` (and HTTP status) from a step's answer.
pub fn expect(got: (u16, Value), status: u16, code: &str) -> Result<Value> {
    let (s, v) = got;
    if s != status || v["code"] != code {
        bail!("expected {status} {code}, got {s} {}", v);
    }
    Ok(v)
}

pub struct Run {
    pub(super) steps: Vec<Step>,
    pub(super) start: Instant,
}

impl Run {
    pub async fn step<F, Fut>(&mut self, flow: &'static str, step: &str, f: F)
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<String>>,
    {
        let t = Instant::now();
        let r = f().await;
        let (ok, detail) = match r {
            Ok(d) => (true, d),
            Err(e) => (false, e.to_string()),
        };
        self.steps.push(Step { flow, step: step.into(), ok, skipped: false, detail, ms: t.elapsed().as_millis() });
    }

    pub fn skip(&mut self, flow: &'static str, step: &str, why: &str) {
        self.steps.push(Step { flow, step: step.into(), ok: true, skipped: true, detail: why.into(), ms: 0 });
    }

    pub fn fail(&mut self, flow: &'static str, step: &str, e: &fail::Failure) {
        self.steps.push(Step { flow, step: step.into(), ok: false, skipped: false, detail: e.to_string(), ms: 0 });
    }
}

pub fn msg(v: &Value) -> String {
    v["message"].as_str().unwrap_or("").to_string()
}

/// The steps as JUnit XML, a flow a test class.
pub fn junit(steps: &[Step]) -> String {
    use crate::junit::{Case, CaseResult};
    let cases: Vec<Case> = steps
        .iter()
        .map(|s| Case {
            class: s.flow,
            name: s.step.clone(),
            millis: s.ms,
            result: if s.skipped {
                CaseResult::Skipped(s.detail.clone())
            } else if s.ok {
                CaseResult::Pass
            } else {
                CaseResult::Failure(s.detail.clone())
            },
        })
        .collect();
    crate::junit::write("ukey flows", &cases)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn junit_escapes_and_counts() {
        let steps = vec![
            Step { flow: "a", step: "x<y".into(), ok: true, skipped: false, detail: String::new(), ms: 5 },
            Step { flow: "a", step: "z".into(), ok: false, skipped: false, detail: "got \"403\" & more".into(), ms: 7 },
            Step { flow: "a", step: "s".into(), ok: true, skipped: true, detail: "n/a".into(), ms: 0 },
        ];
        let x = junit(&steps);
        assert!(x.contains("tests=\"3\" failures=\"1\" skipped=\"1\""), "{x}");
        assert!(x.contains("name=\"s\" time=\"0.000\"><skipped message=\"n/a\"/></testcase>"), "{x}");
        assert!(x.contains("name=\"x&lt;y\""));
        assert!(x.contains("message=\"got &quot;403&quot; &amp; more\""));
    }
}
