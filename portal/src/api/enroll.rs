//! The certificate application (证书新办), in the manual's order: form -> order review
//! (confirm, or go back and edit) -> ID photos -> "confirm application" with the CSR of a key
//! pair generated on the key -> SMS code -> payment -> staff review (`api::staff`). Every
//! endpoint needs a password-logged-in session; the application must be the caller's own.

use axum::body::Bytes;
use axum::extract::{Extension, Path, State as S};
use axum::http::{header, HeaderMap, StatusCode};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{day, lang, ok, ApiError, Body, Portal, Reply, State};
use crate::attestation::{self, KeyRefusal};
use crate::client::ClientAddr;
use crate::enrollment::{self, Form, Side, Stage};
use crate::messages::{field_problem, stage_zh, Lang, Msg};
use crate::payment::{self, Method};
use crate::photo::{self, PhotoProblem};
use crate::store::{Application, Paid, Session, User};

fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no_application", "no such application")
}

pub(crate) fn wrong_stage(stage: Stage) -> ApiError {
    ApiError::user(StatusCode::CONFLICT, Msg::WrongStage { stage: stage.as_str() })
}

/// What the user can do next at each stage (pages show these buttons).
fn next_steps(stage: Stage) -> &'static [&'static str] {
    match stage {
        Stage::Review => &["edit", "confirm"],
        Stage::Photos => &["upload_photo", "submit"],
        Stage::Sms => &["verify_sms", "resend_sms"],
        Stage::Payment => &["pay"],
        Stage::UnderReview => &["receipt"],
        Stage::Issued => &["receipt", "install_certificate"],
        Stage::Rejected => &["receipt"],
    }
}

impl Portal {
    /// The logged-in user and their application `id` (someone else's is "not found").
    pub(crate) async fn own_application(&self, s: &Session, id: &str) -> Result<(User, Application), ApiError> {
        let user = self.user_of(s).await?;
        match self.store.application(id).await? {
            Some(a) if a.user_id == user.id => Ok((user, a)),
            _ => Err(not_found()),
        }
    }

    /// The request's user and their application `id`: the application pages and
    /// `GET /api/applications/{id}` show this.
    pub(crate) async fn my_application(&self, headers: &HeaderMap, id: &str) -> Result<(User, Application), ApiError> {
        let s = self.current(headers).await?.ok_or_else(super::binding::login_required)?;
        self.own_application(&s, id).await
    }

    /// The request's user and their enterprise (the form shows its name and credit code).
    pub(crate) async fn me_and_enterprise(
        &self,
        headers: &HeaderMap,
    ) -> Result<(User, crate::store::Enterprise), ApiError> {
        let s = self.current(headers).await?.ok_or_else(super::binding::login_required)?;
        let user = self.user_of(&s).await?;
        let e = self.enterprise_of(&user).await?;
        Ok((user, e))
    }

    /// The request's user and their applications, newest first.
    pub(crate) async fn my_applications(&self, headers: &HeaderMap) -> Result<(User, Vec<Application>), ApiError> {
        let s = self.current(headers).await?.ok_or_else(super::binding::login_required)?;
        let user = self.user_of(&s).await?;
        let apps = self.store.applications_of(&user.id).await?;
        Ok((user, apps))
    }

    /// The lines of the application's receipt (《单位数字证书申请表》回执), once paid: the
    /// printed form is Chinese whatever the page's language. `None` before payment.
    pub(crate) fn receipt_lines(&self, a: &Application) -> Option<Vec<(&'static str, String)>> {
        let paid_at = a.paid_at?;
        let method = a.pay_method.as_deref().and_then(Method::parse);
        let f = &a.form;
        Some(vec![
            ("申请号", a.number.clone()),
            ("单位名称", f.organisation.clone()),
            ("统一社会信用代码", f.credit_code.clone()),
            ("经办人", f.handler_name.clone()),
            ("经办人身份证号", enrollment::mask_id(&f.id_number)),
            ("经办人手机号", enrollment::mask_mobile(&f.mobile)),
            ("电子邮箱", f.email.clone()),
            ("业务类型", "证书新办".into()),
            ("金额", format!("{}元", enrollment::yuan(a.amount_fen))),
            ("支付方式", method.map_or("-", |m| m.name_zh()).into()),
            ("支付日期", day(paid_at)),
            ("办理状态", stage_zh(a.stage.as_str()).into()),
        ])
    }

    /// An application as its pages show it.
    pub(crate) async fn application_view(&self, a: &Application, lang: Lang) -> Result<Value, ApiError> {
        let photos = self.store.photos(&a.id).await?;
        let certificate = match &a.fingerprint {
            Some(fp) => self.store.certificate(fp).await?.map(|c| c.der_b64),
            None => None,
        };
        Ok(json!({
            "id": a.id,
            "number": a.number,
            "stage": a.stage,
            "stage_name": crate::messages::stage_name(a.stage.as_str(), lang),
            "form": a.form,
            "amount_fen": a.amount_fen,
            "amount": enrollment::yuan(a.amount_fen),
            "photos": photos,
            "has_csr": a.csr_b64.is_some(),
            "key": a.key_origin,
            "pay_method": a.pay_method,
            "paid_at": a.paid_at,
            "reject_reason": a.reject_reason,
            "fingerprint": a.fingerprint,
            "certificate": certificate,
            "next": next_steps(a.stage),
        }))
    }

    /// A refused form: 422 with every wrong field and what to fix, audited.
    async fn check_form(&self, user: &User, form: &Form, lang: Lang) -> Result<Form, ApiError> {
        let e = self.enterprise_of(user).await?;
        let (form, problems) = form.for_enterprise(&e.name, &e.credit_code);
        if problems.is_empty() {
            return Ok(form);
        }
        let fields: Vec<Value> = problems
            .iter()
            .map(|p| json!({"field": p.field, "error": p.error, "message": field_problem(p.field, p.error, lang)}))
            .collect();
        let names: Vec<&str> = problems.iter().map(|p| p.field).collect();
        self.audit(&user.username, "apply", "refused", &format!("invalid fields: {}", names.join(", "))).await?;
        Err(ApiError::user(StatusCode::UNPROCESSABLE_ENTITY, Msg::FormInvalid).with(json!({"fields": fields})))
    }

    /// Whether another SMS code may go to the handler's mobile for `user`: per recipient and
    /// per user, per hour and per day (an SMS costs money and bothers a phone's owner).
    async fn sms_allowed(&self, user: &User, a: &Application) -> Result<(), ApiError> {
        let cfg = &self.config.enroll;
        let now = self.now();
        let (to_hour, by_hour) = self.store.sms_sent_since(&a.form.mobile, &user.id, now - 3600).await?;
        let (to_day, by_day) = self.store.sms_sent_since(&a.form.mobile, &user.id, now - 86_400).await?;
        let over = if to_day >= cfg.sms_per_recipient_day || by_day >= cfg.sms_per_user_day {
            Some(("day", 86_400))
        } else if to_hour >= cfg.sms_per_recipient_hour || by_hour >= cfg.sms_per_user_hour {
            Some(("hour", 3600))
        } else {
            None
        };
        let Some((window, secs)) = over else { return Ok(()) };
        let detail =
            format!("{} SMS cap per {window} reached ({to_day} today to the number, {by_day} by the user)", a.number);
        self.audit(&user.username, "apply_sms", "refused", &detail).await?;
        Err(ApiError::user(StatusCode::TOO_MANY_REQUESTS, Msg::SmsCap { day: window == "day" })
            .with(json!({"retry_after": secs})))
    }

    /// Send a fresh SMS code to the handler's mobile (through the outbox), counted for the caps.
    async fn send_sms_code(&self, user: &User, a: &Application, code: &str, expires_at: i64) -> Result<(), ApiError> {
        let minutes = self.config.enroll.sms_secs / 60;
        let body = format!("【ukey】您正在申请单位数字证书（申请号{}），验证码{code}，{minutes}分钟内有效。如非本人操作，请忽略本短信。", a.number);
        self.store.send_sms_code(&a.id, &user.id, &a.form.mobile, &body, expires_at, self.now()).await?;
        Ok(())
    }

    fn sms_sent(&self, a: &Application, lang: Lang) -> Value {
        let m = Msg::SmsSent { to: enrollment::mask_mobile(&a.form.mobile), minutes: self.config.enroll.sms_secs / 60 };
        ok(lang, &m, json!({"expires_in": self.config.enroll.sms_secs}))
    }

    async fn sms_refused(&self, who: &str, number: &str, why: &str, msg: Msg) -> Result<Value, ApiError> {
        self.audit(who, "apply_sms", "refused", &format!("{number} {why}")).await?;
        Err(ApiError::user(StatusCode::UNAUTHORIZED, msg))
    }

    /// Act on a payment notification (from the provider, or the sandbox's simulated one).
    pub(crate) async fn payment_notified(&self, body: &[u8], signature: &str) -> Result<Value, ApiError> {
        if !payment::verify(&self.config.payment_secret, body, signature) {
            self.audit("payment-provider", "payment_notify", "refused", "bad signature").await?;
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "bad_signature",
                "notification signature does not verify",
            ));
        }
        let n: payment::Notification = serde_json::from_slice(body)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", format!("notification: {e}")))?;
        let Some(p) = self.store.payment(&n.payment_id).await? else {
            self.audit("payment-provider", "payment_notify", "refused", &format!("unknown payment {}", n.payment_id))
                .await?;
            return Err(ApiError::new(StatusCode::NOT_FOUND, "no_payment", "no such payment"));
        };
        if n.status != "SUCCESS" {
            self.audit("payment-provider", "payment_notify", "ignored", &format!("{} status {}", p.id, n.status))
                .await?;
            return Ok(json!({"ok": true, "code": "not_paid", "message": "status noted; nothing paid"}));
        }
        if n.amount_fen != p.amount_fen {
            let detail = format!("{}: paid {} fen, owed {}", p.id, n.amount_fen, p.amount_fen);
            self.audit("payment-provider", "payment_notify", "refused", &detail).await?;
            return Err(ApiError::new(StatusCode::BAD_REQUEST, "amount_mismatch", "amount differs from the order"));
        }
        match self.store.mark_paid(&p.id, &n.provider_txn, self.now()).await? {
            Paid::Already { application_id } => {
                self.audit(
                    "payment-provider",
                    "payment_notify",
                    "duplicate",
                    &format!("{} for {application_id}", p.id),
                )
                .await?;
                Ok(json!({"ok": true, "code": "already_paid", "message": "already recorded"}))
            }
            Paid::Now { application_id } => {
                self.audit("payment-provider", "payment_notify", "ok", &format!("{} for {application_id}", p.id))
                    .await?;
                if let Some(a) = self.store.application(&application_id).await? {
                    let method = Method::parse(&p.method).map_or("", |m| m.name_zh());
                    let body = format!(
                        "{}：您好！贵单位（{}）的数字证书申请（申请号{}）已提交，已通过{method}支付{}元，请等待工作人员审核证书材料。",
                        a.form.handler_name, a.form.organisation, a.number, enrollment::yuan(p.amount_fen)
                    );
                    self.store.send("email", &a.form.email, "数字证书申请已提交", &body, self.now()).await?;
                }
                Ok(json!({"ok": true, "code": "paid", "message": "payment recorded"}))
            }
        }
    }
}

/// `POST /api/applications`: fill the form (证书新办); answers the order for review.
pub async fn create(
    S(p): S<State>,
    Extension(client): Extension<ClientAddr>,
    headers: HeaderMap,
    Body(form): Body<Form>,
) -> Reply {
    let lang = lang(&headers);
    let result = async {
        let s = p.guarded(&headers).await?;
        let user = p.user_of(&s).await?;
        p.limit_both("apply", &user.id, &client.key()).await?;
        let form = p.check_form(&user, &form, lang).await?;
        let number = enrollment::application_number(&day(p.now()));
        let a = p.store.create_application(&number, &user.id, &form, p.config.enroll.fee_fen, p.now()).await?;
        p.audit(&user.username, "apply", "ok", &format!("application {} for {}", a.number, a.form.credit_code)).await?;
        Ok(ok(lang, &Msg::OrderReview, json!({"application": p.application_view(&a, lang).await?})))
    }
    .await;
    Reply { lang, result, cookie: None }
}

/// `GET /api/applications`: the caller's applications, newest first.
pub async fn list(S(p): S<State>, headers: HeaderMap) -> Reply {
    let lang = lang(&headers);
    let result = async {
        let (_, apps) = p.my_applications(&headers).await?;
        let mut out = Vec::new();
        for a in &apps {
            out.push(p.application_view(a, lang).await?);
        }
        Ok(json!({"ok": true, "code": "applications", "message": "", "applications": out}))
    }
    .await;
    Reply { lang, result, cookie: None }
}

/// `GET /api/applications/{id}`.
pub async fn show(S(p): S<State>, headers: HeaderMap, Path(id): Path<String>) -> Reply {
    let lang = lang(&headers);
    let result = async {
        let (_, a) = p.my_application(&headers, &id).await?;
        Ok(json!({"ok": true, "code": "application", "message": "", "application": p.application_view(&a, lang).await?}))
    }
    .await;
    Reply { lang, result, cookie: None }
}

/// `POST /api/applications/{id}/form`: "go back and edit" (返回修改), while at review.
pub async fn edit(S(p): S<State>, headers: HeaderMap, Path(id): Path<String>, Body(form): Body<Form>) -> Reply {
    let lang = lang(&headers);
    let result = async {
        let s = p.guarded(&headers).await?;
        let (user, a) = p.own_application(&s, &id).await?;
        if a.stage != Stage::Review {
            return Err(wrong_stage(a.stage));
        }
        let form = p.check_form(&user, &form, lang).await?;
        if !p.store.update_form(&id, &form, p.now()).await? {
            return Err(p.moved_on(&id).await);
        }
        p.audit(&user.username, "apply_edit", "ok", &a.number).await?;
        let a = p.store.application(&id).await?.ok_or_else(not_found)?;
        Ok(ok(lang, &Msg::OrderReview, json!({"application": p.application_view(&a, lang).await?})))
    }
    .await;
    Reply { lang, result, cookie: None }
}

impl Portal {
    /// Take one step of `id` from `from` to `to`, or say which stage it is at.
    async fn step(&self, a: &Application, from: Stage, to: Stage) -> Result<(), ApiError> {
        if a.stage != from || !self.store.advance(&a.id, from, to, self.now()).await? {
            return Err(self.moved_on(&a.id).await);
        }
        Ok(())
    }

    /// A step found the application elsewhere (another request took it first): the refusal
    /// naming the stage it is at now.
    pub(crate) async fn moved_on(&self, id: &str) -> ApiError {
        match self.store.application(id).await {
            Ok(Some(a)) => wrong_stage(a.stage),
            Ok(None) => not_found(),
            Err(e) => e.into(),
        }
    }
}

/// `POST /api/applications/{id}/confirm`: confirm the order (确认订单).
pub async fn confirm(S(p): S<State>, headers: HeaderMap, Path(id): Path<String>) -> Reply {
    let lang = lang(&headers);
    let result = async {
        let s = p.guarded(&headers).await?;
        let (user, a) = p.own_application(&s, &id).await?;
        p.step(&a, Stage::Review, Stage::Photos).await?;
        p.audit(&user.username, "apply_confirm", "ok", &a.number).await?;
        Ok(ok(lang, &Msg::OrderConfirmed, json!({"stage": Stage::Photos})))
    }
    .await;
    Reply { lang, result, cookie: None }
}

/// `PUT /api/applications/{id}/photos/{side}` (side: front | back), the image as the body
/// with its Content-Type. JPEG or PNG, judged by its bytes, within the configured size.
pub async fn upload_photo(
    S(p): S<State>,
    headers: HeaderMap,
    Path((id, side)): Path<(String, String)>,
    body: axum::body::Body,
) -> Reply {
    let lang = lang(&headers);
    let result = async {
        let s = p.guarded(&headers).await?;
        let (user, a) = p.own_application(&s, &id).await?;
        let side = Side::parse(&side)
            .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "no_side", "photo side is front or back"))?;
        let cfg = &p.config.enroll;
        let size_msg = Msg::PhotoSize { min_kb: cfg.photo_min_bytes / 1024, max_kb: cfg.photo_max_bytes / 1024 };
        // Read at most one byte past the limit: a larger body is refused without being held.
        let bytes = match axum::body::to_bytes(body, cfg.photo_max_bytes + 1).await {
            Ok(b) => b,
            Err(_) => {
                p.audit(&user.username, "apply_photo", "refused", "too large").await?;
                return Err(ApiError::user(StatusCode::PAYLOAD_TOO_LARGE, size_msg));
            }
        };
        let declared = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let (limits, typed) = (cfg.photo_limits(), declared.to_string());
        // Decoding is CPU and memory: off the async workers, a few at a time.
        let _slot = p
            .photo_slots
            .acquire()
            .await
            .map_err(|_| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", "the portal is shutting down"))?;
        let judged = tokio::task::spawn_blocking(move || photo::accept(&typed, &bytes, &limits))
            .await
            .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "the photo check failed"))?;
        let photo = match judged {
            Ok(ph) => ph,
            Err(problem) => {
                let (status, msg, why) = match problem {
                    PhotoProblem::Type => (StatusCode::UNSUPPORTED_MEDIA_TYPE, Msg::PhotoType, "type".to_string()),
                    PhotoProblem::Size => (StatusCode::PAYLOAD_TOO_LARGE, size_msg, "size".to_string()),
                    PhotoProblem::Unreadable => {
                        (StatusCode::UNPROCESSABLE_ENTITY, Msg::PhotoUnreadable, "unreadable".to_string())
                    }
                    PhotoProblem::Dimensions { width, height } => (
                        StatusCode::UNPROCESSABLE_ENTITY,
                        Msg::PhotoDimensions {
                            min_side: cfg.photo_min_side,
                            max_side: cfg.photo_max_side,
                            max_megapixels: cfg.photo_max_pixels / 1_000_000,
                        },
                        format!("{width}x{height}"),
                    ),
                };
                p.audit(&user.username, "apply_photo", "refused", &format!("{} {why} ({declared})", a.number)).await?;
                return Err(ApiError::user(status, msg));
            }
        };
        if !p.store.put_photo(&id, side, photo.kind.mime(), &photo.bytes, p.now()).await? {
            return Err(wrong_stage(a.stage));
        }
        let detail = format!(
            "{} {} {}x{}, {} bytes kept",
            a.number,
            side.as_str(),
            photo.width,
            photo.height,
            photo.bytes.len()
        );
        p.audit(&user.username, "apply_photo", "ok", &detail).await?;
        Ok(ok(lang, &Msg::PhotoUploaded, json!({"photos": p.store.photos(&id).await?})))
    }
    .await;
    Reply { lang, result, cookie: None }
}

#[derive(Deserialize)]
pub struct Submit {
    /// PKCS#10 request (DER, base64) signed by a key pair generated on the USB-Key.
    csr: String,
    /// The key's attestation of that key pair (its ATTEST certificate, DER, base64) and the
    /// key's attestation certificate (F9) that signed it: what the agent's key-pair step
    /// returns. Without them the key pair could have been made in software.
    #[serde(default)]
    attestation: Option<String>,
    #[serde(default)]
    attestation_f9: Option<String>,
}

/// A base64 DER field, if sent; `Err` names the field that is not base64.
fn base64_field(name: &'static str, value: Option<&str>) -> Result<Option<Vec<u8>>, &'static str> {
    value.map(|v| B64.decode(v.trim()).map_err(|_| name)).transpose()
}

/// `POST /api/applications/{id}/submit`: confirm the application (确认申请) with the key's
/// certificate request; an SMS code goes to the handler's mobile.
pub async fn submit(S(p): S<State>, headers: HeaderMap, Path(id): Path<String>, Body(req): Body<Submit>) -> Reply {
    let lang = lang(&headers);
    let result = async {
        let s = p.guarded(&headers).await?;
        let (user, a) = p.own_application(&s, &id).await?;
        if a.stage != Stage::Photos {
            return Err(wrong_stage(a.stage));
        }
        let have = p.store.photos(&id).await?;
        if !Side::ALL.iter().all(|side| have.iter().any(|ph| ph.side == side.as_str())) {
            return Err(ApiError::user(StatusCode::CONFLICT, Msg::PhotosMissing));
        }
        let csr = B64.decode(req.csr.trim()).map_err(|_| {
            ApiError::new(StatusCode::BAD_REQUEST, "bad_csr", "csr must be a base64 DER PKCS#10 request")
        })?;
        let req_info = match ca::verify_csr(&csr) {
            Ok(r) => r,
            Err(e) => {
                p.audit(&user.username, "apply_submit", "refused", &format!("{}: {e}", a.number)).await?;
                return Err(ApiError::new(StatusCode::BAD_REQUEST, "bad_csr", e.to_string()));
            }
        };
        let not_base64 =
            |name| ApiError::new(StatusCode::BAD_REQUEST, "bad_attestation", format!("{name} must be base64 DER"));
        let attestation = base64_field("attestation", req.attestation.as_deref()).map_err(not_base64)?;
        let f9 = base64_field("attestation_f9", req.attestation_f9.as_deref()).map_err(not_base64)?;
        let roots = &p.config.attestation_roots;
        let now = p.now().max(0) as u64;
        let key =
            match attestation::check(&req_info.info.public_key, attestation.as_deref(), f9.as_deref(), roots, now) {
                Ok(k) => k,
                Err(refusal) => {
                    p.audit(&user.username, "apply_submit", "refused", &format!("{}: {refusal}", a.number)).await?;
                    let msg = match refusal {
                        KeyRefusal::PinPolicy(_) => Msg::KeyWithoutPin,
                        _ => Msg::NotAttested,
                    };
                    return Err(ApiError::user(StatusCode::UNPROCESSABLE_ENTITY, msg)
                        .with(json!({"reason": refusal.to_string()})));
                }
            };
        p.sms_allowed(&user, &a).await?;
        let code = enrollment::sms_code();
        let expires = p.now() + p.config.enroll.sms_secs;
        let hash = enrollment::sms_hash(&a.id, &code);
        if !p.store.submit_application(&id, &B64.encode(&csr), &key, &hash, expires, p.now()).await? {
            return Err(p.moved_on(&id).await);
        }
        p.send_sms_code(&user, &a, &code, expires).await?;
        let serial = key.serial.map_or("-".to_string(), |s| s.to_string());
        p.audit(&user.username, "apply_submit", "ok", &format!("{} key serial {serial}", a.number)).await?;
        let mut v = p.sms_sent(&a, lang);
        v["key"] = json!(key);
        Ok(v)
    }
    .await;
    Reply { lang, result, cookie: None }
}

/// `POST /api/applications/{id}/sms/resend`: a new code (the old one stops working), at most
/// one per configured interval.
pub async fn resend_sms(S(p): S<State>, headers: HeaderMap, Path(id): Path<String>) -> Reply {
    let lang = lang(&headers);
    let result = async {
        let s = p.guarded(&headers).await?;
        let (user, a) = p.own_application(&s, &id).await?;
        if a.stage != Stage::Sms {
            return Err(wrong_stage(a.stage));
        }
        p.sms_allowed(&user, &a).await?;
        let code = enrollment::sms_code();
        let cfg = &p.config.enroll;
        let hash = enrollment::sms_hash(&a.id, &code);
        let expires = p.now() + cfg.sms_secs;
        match p.store.resend_sms(&id, &hash, expires, cfg.sms_resend_secs, p.now()).await {
            Ok(Some(())) => {}
            Ok(None) => {
                let sent = p.store.sms_sent_at(&id).await?.unwrap_or(0);
                let secs = (sent + cfg.sms_resend_secs - p.now()).max(1);
                return Err(ApiError::user(StatusCode::TOO_MANY_REQUESTS, Msg::SmsTooSoon { secs }));
            }
            Err(crate::StoreError::NotFound { .. }) => return Err(wrong_stage(a.stage)),
            Err(e) => return Err(e.into()),
        }
        p.send_sms_code(&user, &a, &code, expires).await?;
        p.audit(&user.username, "apply_sms_resend", "ok", &a.number).await?;
        Ok(p.sms_sent(&a, lang))
    }
    .await;
    Reply { lang, result, cookie: None }
}

#[derive(Deserialize)]
pub struct SmsCode {
    code: String,
}

/// `POST /api/applications/{id}/sms/verify`: the code from the SMS (签名确认).
pub async fn verify_sms(S(p): S<State>, headers: HeaderMap, Path(id): Path<String>, Body(req): Body<SmsCode>) -> Reply {
    let lang = lang(&headers);
    let result = async {
        let s = p.guarded(&headers).await?;
        let (user, a) = p.own_application(&s, &id).await?;
        let Some(check) = p.store.sms_try(&id).await? else { return Err(wrong_stage(a.stage)) };
        let max = p.config.enroll.sms_max_attempts;
        let refuse = |why: &'static str, msg: Msg| p.sms_refused(&user.username, &a.number, why, msg);
        let Some(hash) = check.hash else { return refuse("no live code", Msg::SmsTooMany).await };
        if check.expires_at <= p.now() {
            return refuse("code expired", Msg::SmsExpired).await;
        }
        if check.attempts > max {
            p.store.clear_sms(&id).await?;
            return refuse("too many tries", Msg::SmsTooMany).await;
        }
        let given = enrollment::sms_hash(&a.id, &req.code);
        if !bool::from(super::subtle_eq(given.as_bytes(), hash.as_bytes())) {
            let left = max - check.attempts;
            if left == 0 {
                p.store.clear_sms(&id).await?;
                return refuse("wrong code, no tries left", Msg::SmsTooMany).await;
            }
            return refuse("wrong code", Msg::SmsWrong { attempts_left: left }).await;
        }
        p.step(&a, Stage::Sms, Stage::Payment).await?;
        p.store.clear_sms(&id).await?;
        p.audit(&user.username, "apply_sms", "ok", &a.number).await?;
        Ok(ok(lang, &Msg::SmsConfirmed, json!({"stage": Stage::Payment, "amount": enrollment::yuan(a.amount_fen)})))
    }
    .await;
    Reply { lang, result, cookie: None }
}

#[derive(Deserialize)]
pub struct Pay {
    /// `wechat` or `alipay`
    method: String,
}

/// `POST /api/applications/{id}/pay`: open a payment with the chosen provider.
pub async fn pay(S(p): S<State>, headers: HeaderMap, Path(id): Path<String>, Body(req): Body<Pay>) -> Reply {
    let lang = lang(&headers);
    let result = async {
        let s = p.guarded(&headers).await?;
        let (user, a) = p.own_application(&s, &id).await?;
        let method = Method::parse(&req.method).ok_or_else(|| {
            ApiError::new(StatusCode::BAD_REQUEST, "bad_method", "payment method is wechat or alipay")
        })?;
        if a.stage != Stage::Payment {
            return Err(wrong_stage(a.stage));
        }
        let pay = p.store.create_payment(&a.id, method.as_str(), a.amount_fen, p.now()).await?;
        p.audit(&user.username, "apply_pay", "ok", &format!("{} payment {} by {}", a.number, pay.id, method.as_str()))
            .await?;
        let amount = enrollment::yuan(a.amount_fen);
        let msg = Msg::PayWith { method_zh: method.name_zh(), method_en: method.name_en(), amount };
        let sandbox = p.config.sandbox.then(|| format!("/api/sandbox/pay/{}", pay.id));
        Ok(ok(lang, &msg, json!({"payment": pay, "sandbox_pay": sandbox})))
    }
    .await;
    Reply { lang, result, cookie: None }
}

/// `POST /api/payments/notify`: the payment provider's callback, signed with the shared
/// secret (header `X-Pay-Signature`). Idempotent: a repeat is acknowledged and changes nothing.
pub async fn notify(S(p): S<State>, headers: HeaderMap, body: Bytes) -> Reply {
    let lang = lang(&headers);
    let sig = headers.get(payment::SIGNATURE_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    Reply { lang, result: p.payment_notified(&body, &sig).await, cookie: None }
}

/// `GET /api/applications/{id}/receipt`: the application form's receipt (《单位数字证书申请表》
/// 回执), once paid.
pub async fn receipt(S(p): S<State>, headers: HeaderMap, Path(id): Path<String>) -> Reply {
    let lang = lang(&headers);
    let result = async {
        let (_, a) = p.my_application(&headers, &id).await?;
        let lines = p.receipt_lines(&a).ok_or_else(|| wrong_stage(a.stage))?;
        let text = std::iter::once("《单位数字证书申请表》回执".to_string())
            .chain(lines.iter().map(|(k, v)| format!("{k}：{v}")))
            .collect::<Vec<_>>()
            .join("\n");
        let fields: Vec<Value> = lines.iter().map(|(k, v)| json!({"label": k, "value": v})).collect();
        Ok(json!({"ok": true, "code": "receipt", "message": "", "number": a.number, "fields": fields, "text": text}))
    }
    .await;
    Reply { lang, result, cookie: None }
}
