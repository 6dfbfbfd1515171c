//! The certificate application (证书新办), in the manual's order: form -> order review
//! (confirm, or go back and edit) -> ID photos -> "confirm application" with the CSR of a key
//! pair generated on the key -> SMS code -> payment -> staff review ([`super::staff`]). Every
//! call takes the caller's checked session; the application must be the caller's own.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

use crate::app::{Kind, Portal, Refusal};
use crate::attestation::{self, KeyOrigin, KeyRefusal};
use crate::enrollment::{self, Form, Side, Stage};
use crate::messages::{day, stage_zh, Msg};
use crate::payment::{self, Method};
use crate::photo::{self, PhotoProblem};
use crate::secret::subtle_eq;
use crate::store::{Application, Paid, Payment, PhotoInfo, Session, User};

fn not_found() -> Refusal {
    Refusal::new(Kind::NotFound, "no_application", "no such application")
}

pub(crate) fn wrong_stage(stage: Stage) -> Refusal {
    Refusal::user(Kind::Conflict, Msg::WrongStage { stage: stage.as_str() })
}

/// An SMS code on its way: to whom (masked) and for how long.
pub struct SmsSent {
    pub to: String,
    pub minutes: i64,
    pub expires_in: i64,
}

/// What a payment notification did.
pub enum Notified {
    /// A status other than success: noted, nothing paid.
    NotPaid,
    /// A repeat of a notification already acted on.
    AlreadyPaid,
    Paid,
}

/// A photo upload's body: read up to the size limit, or over it.
pub enum Upload {
    Bytes(Vec<u8>),
    TooLarge,
}

impl Portal {
    /// The logged-in user and their application `id` (someone else's is "not found").
    pub(crate) async fn own_application(&self, s: &Session, id: &str) -> Result<(User, Application), Refusal> {
        let user = self.user_of(s).await?;
        match self.store.application(id).await? {
            Some(a) if a.user_id == user.id => Ok((user, a)),
            _ => Err(not_found()),
        }
    }

    /// The user of session `s` and their enterprise (the form shows its name and credit code).
    pub async fn me_and_enterprise(&self, s: &Session) -> Result<(User, crate::store::Enterprise), Refusal> {
        let user = self.user_of(s).await?;
        let e = self.enterprise_of(&user).await?;
        Ok((user, e))
    }

    /// The user of session `s` and their applications, newest first.
    pub async fn my_applications(&self, s: &Session) -> Result<(User, Vec<Application>), Refusal> {
        let user = self.user_of(s).await?;
        let apps = self.store.applications_of(&user.id).await?;
        Ok((user, apps))
    }

    /// A refused form: 422 with every wrong field and what to fix, audited.
    async fn check_form(&self, user: &User, form: &Form) -> Result<Form, Refusal> {
        let e = self.enterprise_of(user).await?;
        let (form, problems) = form.for_enterprise(&e.name, &e.credit_code);
        if problems.is_empty() {
            return Ok(form);
        }
        let names: Vec<&str> = problems.iter().map(|p| p.field).collect();
        self.audit(&user.username, "apply", "refused", &format!("invalid fields: {}", names.join(", "))).await?;
        Err(Refusal::user(Kind::Invalid, Msg::FormInvalid).with_fields(problems))
    }

    /// Fill the form (证书新办) for `s`'s user, counted against the limits of the user and of
    /// the client's address `client`: the new application, at order review.
    pub async fn file_application(&self, s: &Session, client: &str, form: &Form) -> Result<Application, Refusal> {
        let user = self.user_of(s).await?;
        self.limit_both("apply", &user.id, client).await?;
        let form = self.check_form(&user, form).await?;
        let number = enrollment::application_number(&day(self.now()));
        let a = self.store.create_application(&number, &user.id, &form, self.config.enroll.fee_fen, self.now()).await?;
        self.audit(&user.username, "apply", "ok", &format!("application {} for {}", a.number, a.form.credit_code))
            .await?;
        Ok(a)
    }

    /// "Go back and edit" (返回修改), while at review: the application with the new form.
    pub async fn edit_application(&self, s: &Session, id: &str, form: &Form) -> Result<Application, Refusal> {
        let (user, a) = self.own_application(s, id).await?;
        if a.stage != Stage::Review {
            return Err(wrong_stage(a.stage));
        }
        let form = self.check_form(&user, form).await?;
        if !self.store.update_form(id, &form, self.now()).await? {
            return Err(self.moved_on(id).await);
        }
        self.audit(&user.username, "apply_edit", "ok", &a.number).await?;
        self.store.application(id).await?.ok_or_else(not_found)
    }

    /// Take one step of `id` from `from` to `to`, or say which stage it is at.
    async fn step(&self, a: &Application, from: Stage, to: Stage) -> Result<(), Refusal> {
        if a.stage != from || !self.store.advance(&a.id, from, to, self.now()).await? {
            return Err(self.moved_on(&a.id).await);
        }
        Ok(())
    }

    /// A step found the application elsewhere (another request took it first): the refusal
    /// naming the stage it is at now.
    pub(crate) async fn moved_on(&self, id: &str) -> Refusal {
        match self.store.application(id).await {
            Ok(Some(a)) => wrong_stage(a.stage),
            Ok(None) => not_found(),
            Err(e) => e.into(),
        }
    }

    /// Confirm the order (确认订单): on to the photos.
    pub async fn confirm_order(&self, s: &Session, id: &str) -> Result<(), Refusal> {
        let (user, a) = self.own_application(s, id).await?;
        self.step(&a, Stage::Review, Stage::Photos).await?;
        self.audit(&user.username, "apply_confirm", "ok", &a.number).await
    }

    /// One side of the ID card (`side`: front | back), declared as `declared` (Content-Type):
    /// JPEG or PNG judged by its bytes, within the configured size and dimensions. The photos
    /// the application has now.
    pub async fn add_photo(
        &self,
        s: &Session,
        id: &str,
        side: &str,
        declared: &str,
        upload: Upload,
    ) -> Result<Vec<PhotoInfo>, Refusal> {
        let (user, a) = self.own_application(s, id).await?;
        let side =
            Side::parse(side).ok_or_else(|| Refusal::new(Kind::NotFound, "no_side", "photo side is front or back"))?;
        let cfg = &self.config.enroll;
        let size_msg = Msg::PhotoSize { min_kb: cfg.photo_min_bytes / 1024, max_kb: cfg.photo_max_bytes / 1024 };
        let bytes = match upload {
            Upload::Bytes(b) => b,
            Upload::TooLarge => {
                self.audit(&user.username, "apply_photo", "refused", "too large").await?;
                return Err(Refusal::user(Kind::TooLarge, size_msg));
            }
        };
        let (limits, typed) = (cfg.photo_limits(), declared.to_string());
        // Decoding is CPU and memory: off the async workers, a few at a time.
        let _slot = self
            .photo_slots
            .acquire()
            .await
            .map_err(|_| Refusal::new(Kind::Busy, "busy", "the portal is shutting down"))?;
        let judged = tokio::task::spawn_blocking(move || photo::accept(&typed, &bytes, &limits))
            .await
            .map_err(|_| Refusal::new(Kind::Internal, "internal", "the photo check failed"))?;
        let photo = match judged {
            Ok(ph) => ph,
            Err(problem) => {
                let (status, msg, why) = match problem {
                    PhotoProblem::Type => (Kind::UnsupportedType, Msg::PhotoType, "type".to_string()),
                    PhotoProblem::Size => (Kind::TooLarge, size_msg, "size".to_string()),
                    PhotoProblem::Unreadable => (Kind::Invalid, Msg::PhotoUnreadable, "unreadable".to_string()),
                    PhotoProblem::Dimensions { width, height } => (
                        Kind::Invalid,
                        Msg::PhotoDimensions {
                            min_side: cfg.photo_min_side,
                            max_side: cfg.photo_max_side,
                            max_megapixels: cfg.photo_max_pixels / 1_000_000,
                        },
                        format!("{width}x{height}"),
                    ),
                };
                self.audit(&user.username, "apply_photo", "refused", &format!("{} {why} ({declared})", a.number))
                    .await?;
                return Err(Refusal::user(status, msg));
            }
        };
        if !self.store.put_photo(id, side, photo.kind.mime(), &photo.bytes, self.now()).await? {
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
        self.audit(&user.username, "apply_photo", "ok", &detail).await?;
        Ok(self.store.photos(id).await?)
    }

    /// Confirm the application (确认申请) with the key's certificate request `csr` (DER) and
    /// its attestation (the ATTEST certificate and the key's F9 certificate, DER): checked,
    /// kept, and an SMS code sent to the handler's mobile. Where the key pair was made.
    pub async fn submit_application(
        &self,
        s: &Session,
        id: &str,
        csr: &[u8],
        attestation: Option<&[u8]>,
        f9: Option<&[u8]>,
    ) -> Result<(KeyOrigin, SmsSent), Refusal> {
        let (user, a) = self.own_application(s, id).await?;
        if a.stage != Stage::Photos {
            return Err(wrong_stage(a.stage));
        }
        let have = self.store.photos(id).await?;
        if !Side::ALL.iter().all(|side| have.iter().any(|ph| ph.side == side.as_str())) {
            return Err(Refusal::user(Kind::Conflict, Msg::PhotosMissing));
        }
        let req_info = match ca::verify_csr(csr) {
            Ok(r) => r,
            Err(e) => {
                self.audit(&user.username, "apply_submit", "refused", &format!("{}: {e}", a.number)).await?;
                return Err(Refusal::new(Kind::Malformed, "bad_csr", e.to_string()));
            }
        };
        let roots = &self.config.attestation_roots;
        let now = self.now().max(0) as u64;
        let key = match attestation::check(&req_info.info.public_key, attestation, f9, roots, now) {
            Ok(k) => k,
            Err(refusal) => {
                self.audit(&user.username, "apply_submit", "refused", &format!("{}: {refusal}", a.number)).await?;
                let msg = match refusal {
                    KeyRefusal::PinPolicy(_) => Msg::KeyWithoutPin,
                    _ => Msg::NotAttested,
                };
                return Err(Refusal::user(Kind::Invalid, msg).with(serde_json::json!({"reason": refusal.to_string()})));
            }
        };
        self.sms_allowed(&user, &a).await?;
        let code = enrollment::sms_code();
        let expires = self.now() + self.config.enroll.sms_secs;
        let hash = enrollment::sms_hash(&a.id, &code);
        if !self.store.submit_application(id, &B64.encode(csr), &key, &hash, expires, self.now()).await? {
            return Err(self.moved_on(id).await);
        }
        self.send_sms_code(&user, &a, &code, expires).await?;
        let serial = key.serial.map_or("-".to_string(), |s| s.to_string());
        self.audit(&user.username, "apply_submit", "ok", &format!("{} key serial {serial}", a.number)).await?;
        Ok((key, self.sms_sent(&a)))
    }

    /// Whether another SMS code may go to the handler's mobile for `user`: per recipient and
    /// per user, per hour and per day (an SMS costs money and bothers a phone's owner).
    async fn sms_allowed(&self, user: &User, a: &Application) -> Result<(), Refusal> {
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
        Err(Refusal::user(Kind::TooMany, Msg::SmsCap { day: window == "day" })
            .with(serde_json::json!({"retry_after": secs})))
    }

    /// Send a fresh SMS code to the handler's mobile (through the outbox), counted for the caps.
    async fn send_sms_code(&self, user: &User, a: &Application, code: &str, expires_at: i64) -> Result<(), Refusal> {
        let minutes = self.config.enroll.sms_secs / 60;
        let body = format!("【ukey】您正在申请单位数字证书（申请号{}），验证码{code}，{minutes}分钟内有效。如非本人操作，请忽略本短信。", a.number);
        self.store.send_sms_code(&a.id, &user.id, &a.form.mobile, &body, expires_at, self.now()).await?;
        Ok(())
    }

    fn sms_sent(&self, a: &Application) -> SmsSent {
        let secs = self.config.enroll.sms_secs;
        SmsSent { to: enrollment::mask_mobile(&a.form.mobile), minutes: secs / 60, expires_in: secs }
    }

    /// A new code (the old one stops working), at most one per configured interval.
    pub async fn resend_sms_code(&self, s: &Session, id: &str) -> Result<SmsSent, Refusal> {
        let (user, a) = self.own_application(s, id).await?;
        if a.stage != Stage::Sms {
            return Err(wrong_stage(a.stage));
        }
        self.sms_allowed(&user, &a).await?;
        let code = enrollment::sms_code();
        let cfg = &self.config.enroll;
        let hash = enrollment::sms_hash(&a.id, &code);
        let expires = self.now() + cfg.sms_secs;
        match self.store.resend_sms(id, &hash, expires, cfg.sms_resend_secs, self.now()).await {
            Ok(Some(())) => {}
            Ok(None) => {
                let sent = self.store.sms_sent_at(id).await?.unwrap_or(0);
                let secs = (sent + cfg.sms_resend_secs - self.now()).max(1);
                return Err(Refusal::user(Kind::TooMany, Msg::SmsTooSoon { secs }));
            }
            Err(crate::store::StoreError::NotFound { .. }) => return Err(wrong_stage(a.stage)),
            Err(e) => return Err(e.into()),
        }
        self.send_sms_code(&user, &a, &code, expires).await?;
        self.audit(&user.username, "apply_sms_resend", "ok", &a.number).await?;
        Ok(self.sms_sent(&a))
    }

    async fn sms_refused(&self, who: &str, number: &str, why: &str, msg: Msg) -> Result<Application, Refusal> {
        self.audit(who, "apply_sms", "refused", &format!("{number} {why}")).await?;
        Err(Refusal::user(Kind::Unauthenticated, msg))
    }

    /// The code from the SMS (签名确认): on to payment. A wrong code says the tries left; the
    /// last wrong one, or an expired code, ends it (a new code must be asked for).
    pub async fn verify_sms_code(&self, s: &Session, id: &str, code: &str) -> Result<Application, Refusal> {
        let (user, a) = self.own_application(s, id).await?;
        let Some(check) = self.store.sms_try(id).await? else { return Err(wrong_stage(a.stage)) };
        let max = self.config.enroll.sms_max_attempts;
        let refuse = |why: &'static str, msg: Msg| self.sms_refused(&user.username, &a.number, why, msg);
        let Some(hash) = check.hash else { return refuse("no live code", Msg::SmsTooMany).await };
        if check.expires_at <= self.now() {
            return refuse("code expired", Msg::SmsExpired).await;
        }
        if check.attempts > max {
            self.store.clear_sms(id).await?;
            return refuse("too many tries", Msg::SmsTooMany).await;
        }
        let given = enrollment::sms_hash(&a.id, code);
        if !bool::from(subtle_eq(given.as_bytes(), hash.as_bytes())) {
            let left = max - check.attempts;
            if left == 0 {
                self.store.clear_sms(id).await?;
                return refuse("wrong code, no tries left", Msg::SmsTooMany).await;
            }
            return refuse("wrong code", Msg::SmsWrong { attempts_left: left }).await;
        }
        self.step(&a, Stage::Sms, Stage::Payment).await?;
        self.store.clear_sms(id).await?;
        self.audit(&user.username, "apply_sms", "ok", &a.number).await?;
        Ok(a)
    }

    /// Open a payment with the chosen provider (`method`: wechat | alipay).
    pub async fn open_payment(
        &self,
        s: &Session,
        id: &str,
        method: &str,
    ) -> Result<(Application, Method, Payment), Refusal> {
        let (user, a) = self.own_application(s, id).await?;
        let method = Method::parse(method)
            .ok_or_else(|| Refusal::new(Kind::Malformed, "bad_method", "payment method is wechat or alipay"))?;
        if a.stage != Stage::Payment {
            return Err(wrong_stage(a.stage));
        }
        let pay = self.store.create_payment(&a.id, method.as_str(), a.amount_fen, self.now()).await?;
        let detail = format!("{} payment {} by {}", a.number, pay.id, method.as_str());
        self.audit(&user.username, "apply_pay", "ok", &detail).await?;
        Ok((a, method, pay))
    }

    /// Act on a payment notification (from the provider, or the sandbox's simulated one),
    /// signed with the shared secret. Idempotent: a repeat is acknowledged and changes nothing.
    pub async fn payment_notified(&self, body: &[u8], signature: &str) -> Result<Notified, Refusal> {
        if !payment::verify(&self.config.payment_secret, body, signature) {
            self.audit("payment-provider", "payment_notify", "refused", "bad signature").await?;
            return Err(Refusal::new(Kind::Unauthenticated, "bad_signature", "notification signature does not verify"));
        }
        let n: payment::Notification = serde_json::from_slice(body)
            .map_err(|e| Refusal::new(Kind::Malformed, "bad_request", format!("notification: {e}")))?;
        let Some(p) = self.store.payment(&n.payment_id).await? else {
            self.audit("payment-provider", "payment_notify", "refused", &format!("unknown payment {}", n.payment_id))
                .await?;
            return Err(Refusal::new(Kind::NotFound, "no_payment", "no such payment"));
        };
        if n.status != "SUCCESS" {
            self.audit("payment-provider", "payment_notify", "ignored", &format!("{} status {}", p.id, n.status))
                .await?;
            return Ok(Notified::NotPaid);
        }
        if n.amount_fen != p.amount_fen {
            let detail = format!("{}: paid {} fen, owed {}", p.id, n.amount_fen, p.amount_fen);
            self.audit("payment-provider", "payment_notify", "refused", &detail).await?;
            return Err(Refusal::new(Kind::Malformed, "amount_mismatch", "amount differs from the order"));
        }
        match self.store.mark_paid(&p.id, &n.provider_txn, self.now()).await? {
            Paid::Already { application_id } => {
                let detail = format!("{} for {application_id}", p.id);
                self.audit("payment-provider", "payment_notify", "duplicate", &detail).await?;
                Ok(Notified::AlreadyPaid)
            }
            Paid::Now { application_id } => {
                let detail = format!("{} for {application_id}", p.id);
                self.audit("payment-provider", "payment_notify", "ok", &detail).await?;
                if let Some(a) = self.store.application(&application_id).await? {
                    let method = Method::parse(&p.method).map_or("", |m| m.name_zh());
                    let body = format!(
                        "{}：您好！贵单位（{}）的数字证书申请（申请号{}）已提交，已通过{method}支付{}元，请等待工作人员审核证书材料。",
                        a.form.handler_name, a.form.organisation, a.number, enrollment::yuan(p.amount_fen)
                    );
                    self.store.send("email", &a.form.email, "数字证书申请已提交", &body, self.now()).await?;
                }
                Ok(Notified::Paid)
            }
        }
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
}
