//! The certificate application (证书新办) as the user manual walks it: fill the form, review
//! the order (confirm, or go back and edit), upload the ID photos, confirm by SMS code, pay,
//! wait for staff review; on approval the CA issues a certificate for the key pair generated
//! on the key. This module holds the rules; `service::enroll` applies them and `store`
//! keeps them.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::validate::{self, FieldError};

/// Where an application stands. Each step is one conditional update from the stage before it,
/// so two portal instances (or two tabs) cannot both take the same step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Form filled; the order is shown for review (confirm, or go back and edit).
    Review,
    /// Order confirmed; ID photos to upload, then "confirm application" with the key's CSR.
    Photos,
    /// An SMS code was sent to the handler's mobile.
    Sms,
    /// Code confirmed; waiting for payment.
    Payment,
    /// Paid; staff review the materials.
    UnderReview,
    /// Approved: the certificate is issued, to be written to the key.
    Issued,
    Rejected,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Review => "review",
            Stage::Photos => "photos",
            Stage::Sms => "sms",
            Stage::Payment => "payment",
            Stage::UnderReview => "under_review",
            Stage::Issued => "issued",
            Stage::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Option<Stage> {
        [Stage::Review, Stage::Photos, Stage::Sms, Stage::Payment, Stage::UnderReview, Stage::Issued, Stage::Rejected]
            .into_iter()
            .find(|st| st.as_str() == s)
    }
}

/// The application form; every field is required (打*的项目).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Form {
    /// 单位名称: the applicant's enterprise record's, shown on the form, not typed (see
    /// [`Form::for_enterprise`]); a request may leave it out.
    #[serde(default)]
    pub organisation: String,
    /// 统一社会信用代码: as `organisation`.
    #[serde(default)]
    pub credit_code: String,
    /// 经办人姓名
    pub handler_name: String,
    /// 经办人身份证号
    pub id_number: String,
    /// 经办人手机号
    pub mobile: String,
    /// 电子邮箱
    pub email: String,
}

/// A field the form refused, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FieldProblem {
    pub field: &'static str,
    pub error: FieldError,
}

const NAME_MAX_CHARS: usize = 100;

/// A name typed by a person: not empty, not too long, no control characters.
fn name(s: &str) -> Result<(), FieldError> {
    let s = s.trim();
    if s.is_empty() {
        return Err(FieldError::Empty);
    }
    if s.chars().count() > NAME_MAX_CHARS {
        return Err(FieldError::Length);
    }
    if s.chars().any(char::is_control) {
        return Err(FieldError::Characters);
    }
    Ok(())
}

impl Form {
    /// Trimmed, with letters of the codes upper-cased (what is stored and printed).
    pub fn normalized(&self) -> Form {
        Form {
            organisation: self.organisation.trim().into(),
            credit_code: self.credit_code.trim().to_ascii_uppercase(),
            handler_name: self.handler_name.trim().into(),
            id_number: self.id_number.trim().to_ascii_uppercase(),
            mobile: self.mobile.trim().into(),
            email: self.email.trim().into(),
        }
    }

    /// The form as filed for the enterprise `name` with `credit_code`: those two fields are the
    /// enterprise record's, whatever was sent (a user of one enterprise must not apply in the
    /// name of another), and every wrong field with why — a sent value that differs from the
    /// record is `Fixed`, so a page that shows something else learns it.
    pub fn for_enterprise(&self, name: &str, credit_code: &str) -> (Form, Vec<FieldProblem>) {
        let mut form = self.normalized();
        let mut problems = Vec::new();
        if !form.organisation.is_empty() && form.organisation != name {
            problems.push(FieldProblem { field: "organisation", error: FieldError::Fixed });
        }
        if !form.credit_code.is_empty() && form.credit_code != credit_code {
            problems.push(FieldProblem { field: "credit_code", error: FieldError::Fixed });
        }
        form.organisation = name.to_string();
        form.credit_code = credit_code.to_string();
        let mut rest = form.problems();
        rest.retain(|p| !problems.iter().any(|f| f.field == p.field));
        problems.extend(rest);
        (form, problems)
    }

    /// Every field that is wrong; empty when the form can go on to review.
    pub fn problems(&self) -> Vec<FieldProblem> {
        let checks: [(&'static str, Result<(), FieldError>); 6] = [
            ("organisation", name(&self.organisation)),
            ("credit_code", validate::credit_code(&self.credit_code)),
            ("handler_name", name(&self.handler_name)),
            ("id_number", validate::id_number(&self.id_number)),
            ("mobile", validate::mobile(&self.mobile)),
            ("email", validate::email(&self.email)),
        ];
        checks.into_iter().filter_map(|(field, r)| r.err().map(|error| FieldProblem { field, error })).collect()
    }
}

/// Which side of the ID card a photo shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// 人像面
    Front,
    /// 国徽面
    Back,
}

impl Side {
    pub const ALL: [Side; 2] = [Side::Front, Side::Back];
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Front => "front",
            Side::Back => "back",
        }
    }
    pub fn parse(s: &str) -> Option<Side> {
        Side::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// A fresh 6-digit SMS code.
pub fn sms_code() -> String {
    use rand::Rng;
    format!("{:06}", rand::rngs::OsRng.gen_range(0..1_000_000u32))
}

/// What is stored of an SMS code: its SHA-256 with the application id, so a code read from
/// the database of one application says nothing of another's.
pub fn sms_hash(application_id: &str, code: &str) -> String {
    hex::encode(Sha256::digest(format!("{application_id}:{}", code.trim()).as_bytes()))
}

/// The application number printed on the receipt: date and 8 random digits.
pub fn application_number(date: &str) -> String {
    use rand::Rng;
    format!("UK{}{:08}", date.replace('-', ""), rand::rngs::OsRng.gen_range(0..100_000_000u32))
}

/// `138****5678`: what a receipt or an SMS notice shows of a mobile number.
pub fn mask_mobile(m: &str) -> String {
    mask(m, 3, 4)
}

/// `110105********002X`: what a receipt shows of an ID number.
pub fn mask_id(id: &str) -> String {
    mask(id, 6, 4)
}

fn mask(s: &str, head: usize, tail: usize) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() <= head + tail {
        return "*".repeat(chars.len());
    }
    let mut out: String = chars[..head].iter().collect();
    out.extend(std::iter::repeat_n('*', chars.len() - head - tail));
    out.extend(&chars[chars.len() - tail..]);
    out
}

/// ¥ with two decimals, from fen.
pub fn yuan(fen: i64) -> String {
    format!("{}.{:02}", fen / 100, fen % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> Form {
        Form {
            organisation: "示例科技有限公司".into(),
            credit_code: "91350100M000100Y43".into(),
            handler_name: "张三".into(),
            id_number: "11010519491231002X".into(),
            mobile: "13800138000".into(),
            email: "zhangsan@example.com".into(),
        }
    }

    #[test]
    fn a_good_form_has_no_problems_and_each_bad_field_is_named() {
        assert!(good().problems().is_empty());
        let bad = Form {
            organisation: " ".into(),
            credit_code: "91350100M000100Y44".into(),
            id_number: "110105194912310021".into(),
            mobile: "12800138000".into(),
            email: "no-at-sign".into(),
            handler_name: "x".repeat(101),
        };
        let p = bad.problems();
        let by = |f: &str| p.iter().find(|x| x.field == f).map(|x| x.error);
        assert_eq!(by("organisation"), Some(FieldError::Empty));
        assert_eq!(by("credit_code"), Some(FieldError::CheckDigit));
        assert_eq!(by("id_number"), Some(FieldError::CheckDigit));
        assert_eq!(by("mobile"), Some(FieldError::Format));
        assert_eq!(by("email"), Some(FieldError::Format));
        assert_eq!(by("handler_name"), Some(FieldError::Length));
    }

    #[test]
    fn normalizing_upper_cases_codes_and_trims() {
        let f = Form { credit_code: " 91350100m000100y43 ".into(), id_number: "11010519491231002x".into(), ..good() };
        let n = f.normalized();
        assert_eq!(n.credit_code, "91350100M000100Y43");
        assert_eq!(n.id_number, "11010519491231002X");
        assert!(n.problems().is_empty());
    }

    #[test]
    fn codes_masks_and_money() {
        let c = sms_code();
        assert!(c.len() == 6 && c.bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(sms_hash("a", "123456"), sms_hash("a", " 123456 "));
        assert_ne!(sms_hash("a", "123456"), sms_hash("b", "123456"));
        assert_eq!(mask_mobile("13800138000"), "138****8000");
        assert_eq!(mask_id("11010519491231002X"), "110105********002X");
        assert_eq!(yuan(20000), "200.00");
        assert_eq!(yuan(5), "0.05");
        let n = application_number("2026-11-25");
        assert!(n.starts_with("UK20261125") && n.len() == 18, "{n}");
        for s in ["review", "photos", "sms", "payment", "under_review", "issued", "rejected"] {
            assert_eq!(Stage::parse(s).unwrap().as_str(), s);
        }
    }
}
