//! The certificate application flow (证书新办), as the manual walks it, with a blank virtual
//! key: form, review and edit, ID photos, key pair generated on the key, SMS code, payment,
//! staff review, the certificate written to the key — which then binds and logs in.

use reqwest::Method;
use serde_json::{json, Value};

use super::browser::Browser;
use super::cast::OTHER_CREDIT_CODE;
use super::fail::{ensure, Context, Result};
use super::steps::{expect, msg, Run};
use super::target::System;
const MOBILE: &str = "13800138000";
const EMAIL: &str = "zhangsan@example.com";

/// The form as the page sends it: the organisation and its credit code are not typed, they
/// come from the user's enterprise record.
fn form() -> Value {
    json!({
        "handler_name": "张三",
        "id_number": "11010519491231002X",
        "mobile": MOBILE,
        "email": EMAIL,
    })
}

/// A CSR whose key pair was made in software (base64 DER): its self-signature verifies, but no
/// USB-Key attests it.
fn software_csr() -> Result<String> {
    use base64::Engine;
    use ca::x509_cert::builder::{Builder, RequestBuilder};
    use der::Encode;
    let sk = p256::ecdsa::SigningKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
    let req = RequestBuilder::new(ca::parse_name("CN=software key")?, &sk)?.build::<p256::ecdsa::DerSignature>()?;
    Ok(base64::engine::general_purpose::STANDARD.encode(req.to_der()?))
}

/// The newest message of the sandbox outbox to `to`.
async fn newest_message(b: &Browser, to: &str) -> Result<String> {
    let (s, v) = b.get(&format!("/api/sandbox/outbox?to={to}")).await?;
    ensure!(s == 200, "outbox: {v}");
    Ok(v["messages"][0]["body"].as_str().context("no message sent")?.to_string())
}

/// The 6-digit code of the newest SMS.
async fn sms_code(b: &Browser) -> Result<String> {
    let body = newest_message(b, MOBILE).await?;
    let at = body.find("验证码").context("no code in the SMS")? + "验证码".len();
    let code: String = body[at..].chars().take(6).collect();
    ensure!(code.len() == 6 && code.bytes().all(|c| c.is_ascii_digit()), "no code in {body}");
    Ok(code)
}

/// The application with `key` (a blank virtual key, or a deployment's key whose 9A key pair
/// gets replaced). Ends with the accounts unbound again, as it found them.
pub(super) async fn run(run: &mut Run, w: &System, user: &mut Browser, key: &str) {
    let c = &w.cast;
    const FLOW: &str = "enrollment";
    let mut id = String::new();
    let mut csr = String::new();
    let (mut attestation, mut f9) = (Value::Null, Value::Null);
    let mut cert = String::new();
    let app = |id: &str, rest: &str| format!("/api/applications/{id}{rest}");

    run.step(FLOW, "form with a wrong check digit is refused", || async {
        let mut bad = form();
        bad["id_number"] = json!("110105194912310021");
        let v = expect(user.post("/api/applications", bad).await?, 422, "form_invalid")?;
        let fields: Vec<&str> =
            v["fields"].as_array().context("no fields")?.iter().filter_map(|f| f["field"].as_str()).collect();
        ensure!(fields == ["id_number"], "{v}");
        let first = v["fields"][0]["message"].as_str().unwrap_or("");
        Ok(format!("{} ({first})", msg(&v)))
    })
    .await;
    run.step(FLOW, "applying in another enterprise's name is refused", || async {
        let mut other = form();
        other["organisation"] = json!("另一家科技有限公司");
        other["credit_code"] = json!(OTHER_CREDIT_CODE);
        let v = expect(user.post("/api/applications", other).await?, 422, "form_invalid")?;
        let fixed: Vec<&str> = v["fields"]
            .as_array()
            .context("no fields")?
            .iter()
            .filter(|f| f["error"] == "fixed")
            .filter_map(|f| f["field"].as_str())
            .collect();
        ensure!(fixed == ["organisation", "credit_code"], "{v}");
        Ok(v["fields"][1]["message"].as_str().unwrap_or("").to_string())
    })
    .await;
    run.step(FLOW, "form filled: the order shown for review", || async {
        let v = expect(user.post("/api/applications", form()).await?, 200, "order_review")?;
        id = v["application"]["id"].as_str().context("no id")?.to_string();
        Ok(format!("{} {}", v["application"]["number"].as_str().unwrap_or(""), msg(&v)))
    })
    .await;
    run.step(FLOW, "back to edit, then confirm the order", || async {
        let mut edited = form();
        edited["handler_name"] = json!("张 三");
        let v = expect(user.post(&app(&id, "/form"), edited).await?, 200, "order_review")?;
        ensure!(v["application"]["form"]["handler_name"] == "张 三", "{v}");
        expect(user.post(&app(&id, "/form"), form()).await?, 200, "order_review")?;
        let v = expect(user.post(&app(&id, "/confirm"), json!({})).await?, 200, "order_confirmed")?;
        Ok(msg(&v))
    })
    .await;
    run.step(FLOW, "ID photo of the wrong type is refused", || async {
        let gif = [&b"GIF89a"[..], &[0u8; 4096]].concat();
        let v = expect(user.put_bytes(&app(&id, "/photos/front"), "image/gif", gif).await?, 415, "photo_type")?;
        Ok(msg(&v))
    })
    .await;
    run.step(FLOW, "ID photos uploaded (both sides)", || async {
        for side in ["front", "back"] {
            expect(
                user.put_bytes(&app(&id, &format!("/photos/{side}")), "image/jpeg", (w.photo)(side.len() as u8))
                    .await?,
                200,
                "photo_uploaded",
            )?;
        }
        Ok("人像面, 国徽面".into())
    })
    .await;
    run.step(FLOW, "a key pair made in software is refused", || async {
        let v = expect(user.post(&app(&id, "/submit"), json!({"csr": software_csr()?})).await?, 422, "not_attested")?;
        Ok(format!("{} ({})", msg(&v), v["reason"].as_str().unwrap_or("")))
    })
    .await;
    run.step(FLOW, "key pair generated on the key, request signed by it, attested by the key", || async {
        let body = json!({"key_id": key, "pin": c.pin.expose(), "replace": w.replace_key});
        let v = expect(user.agent(Method::POST, "/enroll/keypair", Some(body)).await?, 200, "keypair")?;
        csr = v["csr"].as_str().context("no CSR")?.to_string();
        (attestation, f9) = (v["attestation"].clone(), v["attestation_f9"].clone());
        let attested = if attestation.is_string() { "with the key's attestation" } else { "the key cannot attest" };
        Ok(format!("CSR of {} bytes (base64), {attested}", csr.len()))
    })
    .await;
    run.step(FLOW, "application confirmed: SMS code sent", || async {
        let body = json!({"csr": csr, "attestation": attestation, "attestation_f9": f9});
        let v = expect(user.post(&app(&id, "/submit"), body).await?, 200, "sms_sent")?;
        let key = &v["key"];
        Ok(format!("{} (key serial {}, firmware {})", msg(&v), key["serial"], key["firmware"].as_str().unwrap_or("-")))
    })
    .await;
    run.step(FLOW, "wrong SMS code: attempts left", || async {
        let code = sms_code(user).await?;
        let wrong = if code == "000000" { "111111" } else { "000000" };
        let v = expect(user.post(&app(&id, "/sms/verify"), json!({"code": wrong})).await?, 401, "sms_wrong")?;
        Ok(msg(&v))
    })
    .await;
    run.step(FLOW, "SMS code confirmed", || async {
        let code = sms_code(user).await?;
        let v = expect(user.post(&app(&id, "/sms/verify"), json!({"code": code})).await?, 200, "sms_confirmed")?;
        Ok(msg(&v))
    })
    .await;
    let mut notification = (String::new(), String::new());
    run.step(FLOW, "pay with WeChat (sandbox provider)", || async {
        let v = expect(user.post(&app(&id, "/pay"), json!({"method": "wechat"})).await?, 200, "pay")?;
        let url = v["sandbox_pay"].as_str().context("no sandbox payment")?;
        let paid = expect(user.post_raw(url, vec![], &[]).await?, 200, "paid")?;
        notification = (
            paid["notification"].as_str().context("no notification")?.to_string(),
            paid["signature"].as_str().context("no signature")?.to_string(),
        );
        Ok(msg(&v))
    })
    .await;
    run.step(FLOW, "repeated payment notification changes nothing", || async {
        let (body, sig) = &notification;
        let headers = [("X-Pay-Signature", sig.as_str())];
        expect(user.post_raw("/api/payments/notify", body.clone().into_bytes(), &headers).await?, 200, "already_paid")?;
        let forged = [("X-Pay-Signature", "00")];
        expect(user.post_raw("/api/payments/notify", body.clone().into_bytes(), &forged).await?, 401, "bad_signature")?;
        Ok("already_paid; forged signature refused".into())
    })
    .await;
    run.step(FLOW, "application received: receipt and email, waiting for review", || async {
        let (_, v) = user.get(&app(&id, "")).await?;
        ensure!(v["application"]["stage"] == "under_review", "{v}");
        let (s, r) = user.get(&app(&id, "/receipt")).await?;
        ensure!(s == 200 && r["text"].as_str().is_some_and(|t| t.contains("110105********002X")), "receipt: {r}");
        let mail = newest_message(user, EMAIL).await?;
        ensure!(mail.contains("请等待工作人员审核"), "email: {mail}");
        Ok(format!(
            "{}；{}",
            v["application"]["stage_name"].as_str().unwrap_or(""),
            r["text"].as_str().unwrap_or("").lines().next().unwrap_or("")
        ))
    })
    .await;
    run.step(FLOW, "staff approve: certificate issued", || async {
        let (name, password) = c.staff.as_ref().context("no staff credentials (--staff-password)")?;
        let mut staff = w.browser().await?;
        let (s, v) =
            staff.post("/api/login/password", json!({"username": name, "password": password.expose()})).await?;
        ensure!(s == 200, "staff login: {v}");
        let v =
            expect(staff.post(&format!("/api/staff/applications/{id}/approve"), json!({})).await?, 200, "approved")?;
        cert = v["application"]["certificate"].as_str().context("no certificate")?.to_string();
        let mail = newest_message(user, EMAIL).await?;
        ensure!(mail.contains("已审核通过"), "email: {mail}");
        Ok(msg(&v))
    })
    .await;
    run.step(FLOW, "certificate written to the key", || async {
        let body = json!({"key_id": key, "pin": c.pin.expose(), "certificate": cert});
        let v = expect(user.agent(Method::POST, "/enroll/install", Some(body)).await?, 200, "installed")?;
        let (_, keys) = user.agent(Method::GET, "/keys", None).await?;
        let on_key = keys["keys"].as_array().and_then(|l| l.iter().find(|k| k["id"] == key)).context("key gone")?;
        let subject = on_key["subject"].as_str().context("no certificate on the key")?;
        ensure!(subject.contains("CN=张三"), "{subject}");
        Ok(format!("{} ({subject})", msg(&v)))
    })
    .await;
    run.step(FLOW, "the new key binds and logs in", || async {
        expect(user.bind(key, &w.accounts[..1]).await?, 200, "bound")?;
        let mut b = w.browser().await?;
        let v = expect(b.key_login(key, c.pin.expose(), None).await?, 200, "logged_in")?;
        expect(user.post("/api/unbind", json!({"account_ids": w.accounts})).await?, 200, "unbound")?;
        Ok(format!("{} as {} (unbound again)", msg(&v), v["account"]["name"]))
    })
    .await;
}
