//! JUnit XML, the report format CI systems read: one `testsuite` of `testcase`s, each passed,
//! failed (with the message) or skipped (with why). Written by hand: a few escaped strings
//! need no XML library.

/// How one test case ended.
pub enum CaseResult {
    Pass,
    Failure(String),
    Skipped(String),
}

/// One test case: its class (a family, a flow), its name, how long it took.
pub struct Case<'a> {
    pub class: &'a str,
    pub name: String,
    pub millis: u128,
    pub result: CaseResult,
}

/// `s` as XML/HTML attribute or text: the five characters that could end or open markup.
pub(crate) fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

/// The suite `name` of `cases`, as a JUnit XML document.
pub fn write(name: &str, cases: &[Case]) -> String {
    let failures = cases.iter().filter(|c| matches!(c.result, CaseResult::Failure(_))).count();
    let skipped = cases.iter().filter(|c| matches!(c.result, CaseResult::Skipped(_))).count();
    let total: u128 = cases.iter().map(|c| c.millis).sum();
    let mut x = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" skipped=\"{skipped}\" time=\"{:.3}\">\n",
        esc(name),
        cases.len(),
        total as f64 / 1000.0
    );
    for c in cases {
        x += &format!(
            "  <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
            esc(c.class),
            esc(&c.name),
            c.millis as f64 / 1000.0
        );
        match &c.result {
            CaseResult::Pass => x += "/>\n",
            CaseResult::Skipped(why) => x += &format!("><skipped message=\"{}\"/></testcase>\n", esc(why)),
            CaseResult::Failure(why) => x += &format!("><failure message=\"{}\"/></testcase>\n", esc(why)),
        }
    }
    x + "</testsuite>\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_counts() {
        let cases = [
            Case { class: "a", name: "x<y".into(), millis: 5, result: CaseResult::Pass },
            Case { class: "a", name: "z".into(), millis: 7, result: CaseResult::Failure("got \"403\" & more".into()) },
            Case { class: "a", name: "s".into(), millis: 0, result: CaseResult::Skipped("n/a".into()) },
        ];
        let x = write("t", &cases);
        assert!(x.contains("tests=\"3\" failures=\"1\" skipped=\"1\""), "{x}");
        assert!(x.contains("name=\"s\" time=\"0.000\"><skipped message=\"n/a\"/></testcase>"), "{x}");
        assert!(x.contains("name=\"x&lt;y\""));
        assert!(x.contains("message=\"got &quot;403&quot; &amp; more\""));
    }
}
