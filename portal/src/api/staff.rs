//! Staff review of certificate applications (等待工作人员审核): the queue, the ID photos, and
//! approve (the CA issues the certificate for the key's CSR, under a subject taken from the
//! approved application, and revokes the holder's earlier one as superseded) or reject with a
//! reason. Both outcomes are mailed to the applicant. Staff also revoke certificates.

use axum::extract::{Path, Query, State as S};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::Deserialize;
use serde_json::json;

use super::enroll::wrong_stage;
use super::{day, lang, ok, ApiError, Body, Portal, Reply, State};
use crate::enrollment::{Side, Stage};
use crate::messages::Msg;
use crate::store::{Application, CertRecord, Session, User};

const REASON_MAX_CHARS: usize = 200;

impl Portal {
    /// The logged-in staff member; anyone else is refused (and audited).
    async fn staff_of(&self, s: &Session) -> Result<User, ApiError> {
        let user = self.user_of(s).await?;
        if user.role != "staff" {
            self.audit(&user.username, "staff", "refused", "not staff").await?;
            return Err(ApiError::user(StatusCode::FORBIDDEN, Msg::StaffOnly));
        }
        Ok(user)
    }

    /// The request's staff member (password login with the staff role).
    pub(crate) async fn my_staff(&self, headers: &HeaderMap) -> Result<User, ApiError> {
        let s = self.current(headers).await?.ok_or_else(super::binding::login_required)?;
        self.staff_of(&s).await
    }

    /// Application `id` as staff see it (any enterprise's), with its certificate once issued.
    pub(crate) async fn staff_application(
        &self,
        headers: &HeaderMap,
        id: &str,
    ) -> Result<(User, Application, Option<CertRecord>), ApiError> {
        let staff = self.my_staff(headers).await?;
        let a = self
            .store
            .application(id)
            .await?
            .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "no_application", "no such application"))?;
        let cert = match &a.fingerprint {
            Some(fp) => self.store.certificate(fp).await?,
            None => None,
        };
        Ok((staff, a, cert))
    }

    /// Applications at `stage` (default: waiting for review), oldest first.
    pub(crate) async fn staff_queue(
        &self,
        headers: &HeaderMap,
        stage: Option<&str>,
    ) -> Result<(Stage, Vec<Application>), ApiError> {
        self.my_staff(headers).await?;
        let stage = match stage {
            None | Some("") => Stage::UnderReview,
            Some(v) => Stage::parse(v)
                .ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "bad_stage", format!("no stage {v:?}")))?,
        };
        Ok((stage, self.store.applications_at(stage).await?))
    }

    /// Application `id`, if it waits for review by `staff`: four eyes, so never by the staff
    /// member who filed it (refused and audited).
    async fn reviewable(&self, id: &str, staff: &User) -> Result<Application, ApiError> {
        let a = self
            .store
            .application(id)
            .await?
            .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "no_application", "no such application"))?;
        if a.user_id == staff.id {
            self.audit(&staff.username, "review", "refused", &format!("{}: own application", a.number)).await?;
            return Err(ApiError::user(StatusCode::FORBIDDEN, Msg::OwnApplication));
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
}

#[derive(Deserialize)]
pub struct QueueQuery {
    pub(crate) stage: Option<String>,
}

/// `GET /api/staff/applications?stage=under_review`: the queue, oldest first.
pub async fn queue(S(p): S<State>, headers: HeaderMap, Query(q): Query<QueueQuery>) -> Reply {
    let lang = lang(&headers);
    let result = async {
        let (_, apps) = p.staff_queue(&headers, q.stage.as_deref()).await?;
        let mut out = Vec::new();
        for a in &apps {
            out.push(p.application_view(a, lang).await?);
        }
        Ok(json!({"ok": true, "code": "applications", "message": "", "applications": out}))
    }
    .await;
    Reply { lang, result, cookie: None }
}

/// `GET /api/staff/applications/{id}/photos/{side}`: the uploaded image.
pub async fn photo(S(p): S<State>, headers: HeaderMap, Path((id, side)): Path<(String, String)>) -> Response {
    let lang = lang(&headers);
    let result = async {
        p.my_staff(&headers).await?;
        let side = Side::parse(&side)
            .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "no_side", "photo side is front or back"))?;
        let photo = p
            .store
            .photo(&id, side)
            .await?
            .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "no_photo", "no such photo"))?;
        Ok((side, photo))
    }
    .await;
    match result {
        Ok((side, (content_type, bytes))) => {
            let mut r = bytes.into_response();
            if let Ok(v) = HeaderValue::from_str(&content_type) {
                r.headers_mut().insert(header::CONTENT_TYPE, v);
            }
            let h = r.headers_mut();
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            // An uploaded file is never a page: a download if opened, nothing it can run if
            // rendered (an <img> still shows it).
            let ext = if content_type == "image/png" { "png" } else { "jpg" };
            if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{id}-{}.{ext}\"", side.as_str())) {
                h.insert(header::CONTENT_DISPOSITION, v);
            }
            h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'; sandbox"));
            h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
            r
        }
        Err(e) => Reply { lang, result: Err(e), cookie: None }.into_response(),
    }
}

/// `POST /api/staff/applications/{id}/approve`: issue the certificate.
pub async fn approve(S(p): S<State>, headers: HeaderMap, Path(id): Path<String>) -> Reply {
    let lang = lang(&headers);
    let result = async {
        let s = p.guarded(&headers).await?;
        let staff = p.staff_of(&s).await?;
        let a = p.reviewable(&id, &staff).await?;
        let der = p.issue_for(&a).map_err(|e| {
            tracing::error!("issuing for {}: {e}", a.number);
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "issue_failed", format!("the CA could not issue: {e}"))
        })?;
        let rec = CertRecord::from_der(&der).ok_or_else(|| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "issue_failed", "the CA issued an unreadable certificate")
        })?;
        let Some(superseded) = p.store.approve(&a.id, &staff.id, &rec, p.now()).await? else {
            return Err(p.moved_on(&id).await);
        };
        p.audit(&staff.username, "review", "approved", &format!("{} certificate {}", a.number, rec.fingerprint)).await?;
        for fp in &superseded {
            p.audit(&staff.username, "revoke", "superseded", &format!("{fp} by {} of {}", rec.fingerprint, a.number))
                .await?;
        }
        let body = format!(
            "{}：您好！贵单位（{}）的数字证书申请（申请号{}）已审核通过，证书已签发，有效期至{}。请在插入USB-Key的电脑上打开证书申请页面，将证书写入USB-Key。",
            a.form.handler_name, a.form.organisation, a.number, day(rec.not_after)
        );
        p.store.send("email", &a.form.email, "数字证书申请审核通过", &body, p.now()).await?;
        let a = p.store.application(&id).await?.unwrap_or(a);
        Ok(ok(lang, &Msg::Approved, json!({"application": p.application_view(&a, lang).await?})))
    }
    .await;
    Reply { lang, result, cookie: None }
}

#[derive(Deserialize)]
pub struct Reject {
    reason: String,
}

/// `POST /api/staff/applications/{id}/reject {reason}`.
pub async fn reject(S(p): S<State>, headers: HeaderMap, Path(id): Path<String>, Body(req): Body<Reject>) -> Reply {
    let lang = lang(&headers);
    let result = async {
        let s = p.guarded(&headers).await?;
        let staff = p.staff_of(&s).await?;
        let reason = req.reason.trim();
        if reason.is_empty() || reason.chars().count() > REASON_MAX_CHARS {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_reason",
                format!("give a reason of 1 to {REASON_MAX_CHARS} characters"),
            ));
        }
        let a = p.reviewable(&id, &staff).await?;
        if !p.store.reject(&a.id, &staff.id, reason, p.now()).await? {
            return Err(p.moved_on(&id).await);
        }
        p.audit(&staff.username, "review", "rejected", &format!("{}: {reason}", a.number)).await?;
        let body = format!(
            "{}：您好！贵单位（{}）的数字证书申请（申请号{}）未通过审核，原因：{reason}。请修改后重新申请。",
            a.form.handler_name, a.form.organisation, a.number
        );
        p.store.send("email", &a.form.email, "数字证书申请审核未通过", &body, p.now()).await?;
        Ok(ok(lang, &Msg::Rejected { reason: reason.into() }, json!({"stage": Stage::Rejected})))
    }
    .await;
    Reply { lang, result, cookie: None }
}

#[derive(Deserialize)]
pub struct Revoke {
    /// RFC 5280 reason: keyCompromise, affiliationChanged, superseded, cessationOfOperation,
    /// privilegeWithdrawn or unspecified.
    reason: String,
}

/// `POST /api/staff/certificates/{fingerprint}/revoke {reason}`: the certificate no longer logs
/// in, and the next CRL lists it.
pub async fn revoke(
    S(p): S<State>,
    headers: HeaderMap,
    Path(fingerprint): Path<String>,
    Body(req): Body<Revoke>,
) -> Reply {
    let lang = lang(&headers);
    let result = async {
        let s = p.guarded(&headers).await?;
        let staff = p.staff_of(&s).await?;
        let reason = ca::crl::Reason::parse(req.reason.trim()).ok_or_else(|| {
            let names: Vec<&str> = ca::crl::Reason::ALL.iter().map(|r| r.name()).collect();
            ApiError::new(StatusCode::BAD_REQUEST, "bad_reason", format!("the reason is one of {}", names.join(", ")))
        })?;
        let not_found =
            || ApiError::new(StatusCode::NOT_FOUND, "no_certificate", "no certificate with that fingerprint");
        let cert = p.store.certificate(&fingerprint).await?.ok_or_else(not_found)?;
        if !p.store.revoke(&fingerprint, reason.name(), p.now()).await? {
            let had = cert.revoke_reason.unwrap_or_default();
            return Err(ApiError::new(StatusCode::CONFLICT, "already_revoked", format!("already revoked ({had})")));
        }
        p.audit(&staff.username, "revoke", reason.name(), &format!("{fingerprint} {}", cert.subject)).await?;
        Ok(ok(lang, &Msg::Revoked { reason: reason.name().into() }, json!({"fingerprint": fingerprint})))
    }
    .await;
    Reply { lang, result, cookie: None }
}
