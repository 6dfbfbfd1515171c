//! Staff review of certificate applications (等待工作人员审核): the queue, and approve (the CA
//! issues the certificate for the key's CSR, under a subject taken from the approved
//! application, and revokes the holder's earlier one as superseded) or reject with a reason.
//! Both outcomes are mailed to the applicant. Staff also revoke certificates.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

use super::enroll::wrong_stage;
use crate::app::{Kind, Portal, Refusal};
use crate::enrollment::Stage;
use crate::messages::{day, Msg};
use crate::store::{Application, CertRecord, Session, User};

const REASON_MAX_CHARS: usize = 200;

fn no_application() -> Refusal {
    Refusal::new(Kind::NotFound, "no_application", "no such application")
}

impl Portal {
    /// The logged-in staff member; anyone else is refused (and audited).
    pub(crate) async fn staff_of(&self, s: &Session) -> Result<User, Refusal> {
        let user = self.user_of(s).await?;
        if user.role != "staff" {
            self.audit(&user.username, "staff", "refused", "not staff").await?;
            return Err(Refusal::user(Kind::Forbidden, Msg::StaffOnly));
        }
        Ok(user)
    }

    /// Application `id` as staff see it (any enterprise's), with its certificate once issued.
    pub async fn staff_view(&self, s: &Session, id: &str) -> Result<(Application, Option<CertRecord>), Refusal> {
        self.staff_of(s).await?;
        let a = self.store.application(id).await?.ok_or_else(no_application)?;
        let cert = match &a.fingerprint {
            Some(fp) => self.store.certificate(fp).await?,
            None => None,
        };
        Ok((a, cert))
    }

    /// Applications at `stage` (default: waiting for review), oldest first, and the staff
    /// member asking.
    pub async fn queue_at(&self, s: &Session, stage: Option<&str>) -> Result<(User, Stage, Vec<Application>), Refusal> {
        let staff = self.staff_of(s).await?;
        let stage = match stage {
            None | Some("") => Stage::UnderReview,
            Some(v) => {
                Stage::parse(v).ok_or_else(|| Refusal::new(Kind::Malformed, "bad_stage", format!("no stage {v:?}")))?
            }
        };
        Ok((staff, stage, self.store.applications_at(stage).await?))
    }

    /// One ID photo of application `id`: (Content-Type, bytes).
    pub async fn staff_photo(&self, s: &Session, id: &str, side: &str) -> Result<(String, Vec<u8>), Refusal> {
        self.staff_of(s).await?;
        let side = crate::enrollment::Side::parse(side)
            .ok_or_else(|| Refusal::new(Kind::NotFound, "no_side", "photo side is front or back"))?;
        self.store.photo(id, side).await?.ok_or_else(|| Refusal::new(Kind::NotFound, "no_photo", "no such photo"))
    }

    /// Application `id`, if it waits for review by `staff`: four eyes, so never by the staff
    /// member who filed it (refused and audited).
    async fn reviewable(&self, id: &str, staff: &User) -> Result<Application, Refusal> {
        let a = self.store.application(id).await?.ok_or_else(no_application)?;
        if a.user_id == staff.id {
            self.audit(&staff.username, "review", "refused", &format!("{}: own application", a.number)).await?;
            return Err(Refusal::user(Kind::Forbidden, Msg::OwnApplication));
        }
        if a.stage != Stage::UnderReview {
            return Err(wrong_stage(a.stage));
        }
        Ok(a)
    }

    /// The certificate for an approved application: the key's own public key (from its CSR),
    /// named after the application — country, organisation, its credit code, the handler.
    fn issue_for(&self, a: &Application) -> Result<Vec<u8>, String> {
        let csr = B64.decode(a.csr_b64.as_deref().unwrap_or("")).map_err(|e| e.to_string())?;
        let f = &a.form;
        let subject = ca::name_from(&[
            (ca::attr::COUNTRY, "CN"),
            (ca::attr::ORGANIZATION, &f.organisation),
            (ca::attr::ORGANIZATION_ID, &f.credit_code),
            (ca::attr::COMMON_NAME, &f.handler_name),
        ])
        .map_err(|e| e.to_string())?;
        let now = self.now().max(60) as u64;
        let days = self.config.enroll.cert_days;
        self.issuer.issue_for_request(&csr, &subject, now - 60, now + days * ca::DAY).map_err(|e| e.to_string())
    }

    /// Approve application `id`: the certificate is issued (the holder's earlier ones revoked
    /// as superseded) and the applicant mailed. The application as it is now.
    pub async fn approve_application(&self, s: &Session, id: &str) -> Result<Application, Refusal> {
        let staff = self.staff_of(s).await?;
        let a = self.reviewable(id, &staff).await?;
        let der = self.issue_for(&a).map_err(|e| {
            tracing::error!("issuing for {}: {e}", a.number);
            Refusal::new(Kind::Internal, "issue_failed", format!("the CA could not issue: {e}"))
        })?;
        let rec = CertRecord::from_der(&der)
            .ok_or_else(|| Refusal::new(Kind::Internal, "issue_failed", "the CA issued an unreadable certificate"))?;
        let Some(superseded) = self.store.approve(&a.id, &staff.id, &rec, self.now()).await? else {
            return Err(self.moved_on(id).await);
        };
        self.audit(&staff.username, "review", "approved", &format!("{} certificate {}", a.number, rec.fingerprint))
            .await?;
        for fp in &superseded {
            let detail = format!("{fp} by {} of {}", rec.fingerprint, a.number);
            self.audit(&staff.username, "revoke", "superseded", &detail).await?;
        }
        let body = format!(
            "{}：您好！贵单位（{}）的数字证书申请（申请号{}）已审核通过，证书已签发，有效期至{}。请在插入USB-Key的电脑上打开证书申请页面，将证书写入USB-Key。",
            a.form.handler_name, a.form.organisation, a.number, day(rec.not_after)
        );
        self.store.send("email", &a.form.email, "数字证书申请审核通过", &body, self.now()).await?;
        Ok(self.store.application(id).await?.unwrap_or(a))
    }

    /// Reject application `id` for `reason` (1 to 200 characters), mailed to the applicant.
    /// The reason as kept.
    pub async fn reject_application(&self, s: &Session, id: &str, reason: &str) -> Result<String, Refusal> {
        let staff = self.staff_of(s).await?;
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > REASON_MAX_CHARS {
            return Err(Refusal::new(
                Kind::Malformed,
                "bad_reason",
                format!("give a reason of 1 to {REASON_MAX_CHARS} characters"),
            ));
        }
        let a = self.reviewable(id, &staff).await?;
        if !self.store.reject(&a.id, &staff.id, reason, self.now()).await? {
            return Err(self.moved_on(id).await);
        }
        self.audit(&staff.username, "review", "rejected", &format!("{}: {reason}", a.number)).await?;
        let body = format!(
            "{}：您好！贵单位（{}）的数字证书申请（申请号{}）未通过审核，原因：{reason}。请修改后重新申请。",
            a.form.handler_name, a.form.organisation, a.number
        );
        self.store.send("email", &a.form.email, "数字证书申请审核未通过", &body, self.now()).await?;
        Ok(reason.to_string())
    }

    /// Revoke the certificate `fingerprint` for an RFC 5280 `reason`: it no longer logs in,
    /// and the next CRL lists it. The reason's name.
    pub async fn revoke_certificate(
        &self,
        s: &Session,
        fingerprint: &str,
        reason: &str,
    ) -> Result<&'static str, Refusal> {
        let staff = self.staff_of(s).await?;
        let reason = ca::crl::Reason::parse(reason.trim()).ok_or_else(|| {
            let names: Vec<&str> = ca::crl::Reason::ALL.iter().map(|r| r.name()).collect();
            Refusal::new(Kind::Malformed, "bad_reason", format!("the reason is one of {}", names.join(", ")))
        })?;
        let not_found = || Refusal::new(Kind::NotFound, "no_certificate", "no certificate with that fingerprint");
        let cert = self.store.certificate(fingerprint).await?.ok_or_else(not_found)?;
        if !self.store.revoke(fingerprint, reason.name(), self.now()).await? {
            let had = cert.revoke_reason.unwrap_or_default();
            return Err(Refusal::new(Kind::Conflict, "already_revoked", format!("already revoked ({had})")));
        }
        self.audit(&staff.username, "revoke", reason.name(), &format!("{fingerprint} {}", cert.subject)).await?;
        Ok(reason.name())
    }
}
