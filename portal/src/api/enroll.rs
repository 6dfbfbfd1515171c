//! The certificate application's JSON endpoints: each finds the caller, calls the
//! [`service::enroll`](crate::service::enroll) rule it names, and answers the outcome as JSON in
//! the caller's language. The order: form -> order review -> ID photos -> 确认申请 with the key's
//! CSR -> SMS code -> payment -> staff review (`api::staff`).

use axum::body::Bytes;
use axum::extract::{Extension, Path, State as S};
use axum::http::{header, HeaderMap};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};

use super::reply::{ok, Body, Reply};
use crate::app::{Kind, Portal, Refusal, State};
use crate::client::ClientAddr;
use crate::enrollment::{self, Form, Stage};
use crate::messages::{Lang, Msg};
use crate::service::enroll::{wrong_stage, Notified, SmsSent, Upload};
use crate::store::Application;
use crate::web::lang::Language;
use crate::web::session::Caller;

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
    /// An application as its pages show it.
    pub(crate) async fn application_view(&self, a: &Application, lang: Lang) -> Result<Value, Refusal> {
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
}

fn sms_sent(sent: &SmsSent, lang: Lang) -> Value {
    ok(lang, &Msg::SmsSent { to: sent.to.clone(), minutes: sent.minutes }, json!({"expires_in": sent.expires_in}))
}

/// `POST /api/applications`: fill the form (证书新办); answers the order for review.
pub async fn create(
    S(p): S<State>,
    Extension(client): Extension<ClientAddr>,
    Language(lang): Language,
    caller: Caller,
    Body(form): Body<Form>,
) -> Reply {
    Reply::of(lang, async {
        let s = caller.guarded(&p).await?;
        let a = p.file_application(&s, &client.key(), &form).await?;
        Ok(ok(lang, &Msg::OrderReview, json!({"application": p.application_view(&a, lang).await?})))
    })
    .await
}

/// `GET /api/applications`: the caller's applications, newest first.
pub async fn list(S(p): S<State>, Language(lang): Language, caller: Caller) -> Reply {
    Reply::of(lang, async {
        let (_, apps) = p.my_applications(&caller.logged_in(&p).await?).await?;
        let mut out = Vec::new();
        for a in &apps {
            out.push(p.application_view(a, lang).await?);
        }
        Ok(json!({"ok": true, "code": "applications", "message": "", "applications": out}))
    })
    .await
}

/// `GET /api/applications/{id}`.
pub async fn show(S(p): S<State>, Language(lang): Language, caller: Caller, Path(id): Path<String>) -> Reply {
    Reply::of(lang, async {
        let (_, a) = p.own_application(&caller.logged_in(&p).await?, &id).await?;
        Ok(json!({"ok": true, "code": "application", "message": "", "application": p.application_view(&a, lang).await?}))
    })
    .await
}

/// `POST /api/applications/{id}/form`: "go back and edit" (返回修改), while at review.
pub async fn edit(
    S(p): S<State>,
    Language(lang): Language,
    caller: Caller,
    Path(id): Path<String>,
    Body(form): Body<Form>,
) -> Reply {
    Reply::of(lang, async {
        let s = caller.guarded(&p).await?;
        let a = p.edit_application(&s, &id, &form).await?;
        Ok(ok(lang, &Msg::OrderReview, json!({"application": p.application_view(&a, lang).await?})))
    })
    .await
}

/// `POST /api/applications/{id}/confirm`: confirm the order (确认订单).
pub async fn confirm(S(p): S<State>, Language(lang): Language, caller: Caller, Path(id): Path<String>) -> Reply {
    Reply::of(lang, async {
        let s = caller.guarded(&p).await?;
        p.confirm_order(&s, &id).await?;
        Ok(ok(lang, &Msg::OrderConfirmed, json!({"stage": Stage::Photos})))
    })
    .await
}

/// `PUT /api/applications/{id}/photos/{side}` (side: front | back), the image as the body
/// with its Content-Type. JPEG or PNG, judged by its bytes, within the configured size.
pub async fn upload_photo(
    S(p): S<State>,
    Language(lang): Language,
    caller: Caller,
    headers: HeaderMap,
    Path((id, side)): Path<(String, String)>,
    body: axum::body::Body,
) -> Reply {
    Reply::of(lang, async {
        let s = caller.guarded(&p).await?;
        // Read at most one byte past the limit: a larger body is refused without being held.
        let upload = match axum::body::to_bytes(body, p.config.enroll.photo_max_bytes + 1).await {
            Ok(b) => Upload::Bytes(b.into()),
            Err(_) => Upload::TooLarge,
        };
        let declared = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let photos = p.add_photo(&s, &id, &side, declared, upload).await?;
        Ok(ok(lang, &Msg::PhotoUploaded, json!({"photos": photos})))
    })
    .await
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
pub async fn submit(
    S(p): S<State>,
    Language(lang): Language,
    caller: Caller,
    Path(id): Path<String>,
    Body(req): Body<Submit>,
) -> Reply {
    Reply::of(lang, async {
        let s = caller.guarded(&p).await?;
        let csr = B64
            .decode(req.csr.trim())
            .map_err(|_| Refusal::new(Kind::Malformed, "bad_csr", "csr must be a base64 DER PKCS#10 request"))?;
        let not_base64 = |name| Refusal::new(Kind::Malformed, "bad_attestation", format!("{name} must be base64 DER"));
        let attestation = base64_field("attestation", req.attestation.as_deref()).map_err(not_base64)?;
        let f9 = base64_field("attestation_f9", req.attestation_f9.as_deref()).map_err(not_base64)?;
        let (key, sent) = p.submit_application(&s, &id, &csr, attestation.as_deref(), f9.as_deref()).await?;
        let mut v = sms_sent(&sent, lang);
        v["key"] = json!(key);
        Ok(v)
    })
    .await
}

/// `POST /api/applications/{id}/sms/resend`: a new code (the old one stops working), at most
/// one per configured interval.
pub async fn resend_sms(S(p): S<State>, Language(lang): Language, caller: Caller, Path(id): Path<String>) -> Reply {
    Reply::of(lang, async {
        let s = caller.guarded(&p).await?;
        Ok(sms_sent(&p.resend_sms_code(&s, &id).await?, lang))
    })
    .await
}

#[derive(Deserialize)]
pub struct SmsCode {
    code: String,
}

/// `POST /api/applications/{id}/sms/verify`: the code from the SMS (签名确认).
pub async fn verify_sms(
    S(p): S<State>,
    Language(lang): Language,
    caller: Caller,
    Path(id): Path<String>,
    Body(req): Body<SmsCode>,
) -> Reply {
    Reply::of(lang, async {
        let s = caller.guarded(&p).await?;
        let a = p.verify_sms_code(&s, &id, &req.code).await?;
        Ok(ok(lang, &Msg::SmsConfirmed, json!({"stage": Stage::Payment, "amount": enrollment::yuan(a.amount_fen)})))
    })
    .await
}

#[derive(Deserialize)]
pub struct Pay {
    /// `wechat` or `alipay`
    method: String,
}

/// `POST /api/applications/{id}/pay`: open a payment with the chosen provider.
pub async fn pay(
    S(p): S<State>,
    Language(lang): Language,
    caller: Caller,
    Path(id): Path<String>,
    Body(req): Body<Pay>,
) -> Reply {
    Reply::of(lang, async {
        let s = caller.guarded(&p).await?;
        let (a, method, pay) = p.open_payment(&s, &id, &req.method).await?;
        let amount = enrollment::yuan(a.amount_fen);
        let msg = Msg::PayWith { method_zh: method.name_zh(), method_en: method.name_en(), amount };
        let sandbox = p.config.sandbox.then(|| format!("/api/sandbox/pay/{}", pay.id));
        Ok(ok(lang, &msg, json!({"payment": pay, "sandbox_pay": sandbox})))
    })
    .await
}

/// A payment notification's outcome, as the provider reads it.
pub(crate) fn notified(n: Notified) -> Value {
    let (code, message) = match n {
        Notified::NotPaid => ("not_paid", "status noted; nothing paid"),
        Notified::AlreadyPaid => ("already_paid", "already recorded"),
        Notified::Paid => ("paid", "payment recorded"),
    };
    json!({"ok": true, "code": code, "message": message})
}

/// `POST /api/payments/notify`: the payment provider's callback, signed with the shared
/// secret (header `X-Pay-Signature`). Idempotent: a repeat is acknowledged and changes nothing.
pub async fn notify(S(p): S<State>, Language(lang): Language, headers: HeaderMap, body: Bytes) -> Reply {
    let sig = headers.get(crate::payment::SIGNATURE_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
    Reply::of(lang, async { p.payment_notified(&body, sig).await.map(notified) }).await
}

/// `GET /api/applications/{id}/receipt`: the application form's receipt (《单位数字证书申请表》
/// 回执), once paid.
pub async fn receipt(S(p): S<State>, Language(lang): Language, caller: Caller, Path(id): Path<String>) -> Reply {
    Reply::of(lang, async {
        let (_, a) = p.own_application(&caller.logged_in(&p).await?, &id).await?;
        let lines = p.receipt_lines(&a).ok_or_else(|| wrong_stage(a.stage))?;
        let text = std::iter::once("《单位数字证书申请表》回执".to_string())
            .chain(lines.iter().map(|(k, v)| format!("{k}：{v}")))
            .collect::<Vec<_>>()
            .join("\n");
        let fields: Vec<Value> = lines.iter().map(|(k, v)| json!({"label": k, "value": v})).collect();
        Ok(json!({"ok": true, "code": "receipt", "message": "", "number": a.number, "fields": fields, "text": text}))
    })
    .await
}
