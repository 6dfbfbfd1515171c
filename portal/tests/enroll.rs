//! The certificate application over real HTTP, on SQLite and PostgreSQL: form with check
//! digits, review and edit, ID photos, CSR, SMS code, payment with the simulated provider
//! (idempotent, signed callbacks), staff review, the issued certificate — which then binds and
//! logs in. Key pairs are generated on virtual USB-Keys from the test factory and attested by
//! them; a software key pair, or one no trusted maker attests, gets no certificate.

mod common;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use common::world::*;
use der::{Decode, Encode};
use p256::ecdsa::{DerSignature, SigningKey};
use serde_json::{json, Value};
use x509_cert::builder::{Builder, RequestBuilder};

fn form() -> Value {
    json!({
        "organisation": "示例科技有限公司",
        "credit_code": "91350100M000100Y43",
        "handler_name": "张三",
        "id_number": "11010519491231002X",
        "mobile": "13800138000",
        "email": "zhangsan@example.com",
    })
}

/// JPEG magic and filler: refused by size before anything is decoded.
fn jpeg(len: usize) -> Vec<u8> {
    let mut v = vec![0xFF, 0xD8, 0xFF, 0xE0];
    v.resize(len, 0x42);
    v
}

/// A real photo of an ID card (a drawn stand-in).
fn real_photo(seed: u8) -> Vec<u8> {
    portal::photo::sample(portal::photo::PhotoType::Jpeg, 640, 400, seed)
}

fn csr(sk: &SigningKey) -> Vec<u8> {
    let name = ca::parse_name("CN=whatever the key says").unwrap();
    RequestBuilder::new(name, sk).unwrap().build::<DerSignature>().unwrap().to_der().unwrap()
}

async fn logged_in(w: &World, user: &str, pass: &str) -> Browser {
    let mut b = w.browser("zh-CN").await;
    let (s, v) = b.password_login(user, pass).await;
    assert_eq!(s, 200, "{v}");
    b
}

/// The newest SMS code sent to the form's mobile.
async fn sms_code(w: &World, b: &Browser) -> String {
    let (_, v) = b.get("/api/sandbox/outbox?to=13800138000").await;
    let body = v["messages"][0]["body"].as_str().unwrap().to_string();
    let at = body.find("验证码").unwrap() + "验证码".len();
    let code: String = body[at..].chars().take(6).collect();
    assert!(code.bytes().all(|c| c.is_ascii_digit()), "{body}");
    let _ = w;
    code
}

/// A new application taken to the SMS stage with a key pair from `key`; returns its id.
async fn to_sms_stage(w: &World, b: &mut Browser, key: &mut UsbKey) -> String {
    let id = to_photos_done(b).await;
    let pair = key.key_pair(proto::piv::PinPolicy::Once);
    let (s, v) = b.post(&format!("/api/applications/{id}/submit"), pair.submission()).await;
    assert_eq!((s, v["code"].as_str()), (200, Some("sms_sent")), "{v}");
    let _ = w;
    id
}

/// From the SMS stage to staff review, paying with the sandbox provider.
async fn pay(w: &World, b: &mut Browser, id: &str) -> Value {
    let code = sms_code(w, b).await;
    let (s, v) = b.post(&format!("/api/applications/{id}/sms/verify"), json!({"code": code})).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = b.post(&format!("/api/applications/{id}/pay"), json!({"method": "alipay"})).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = b.post_raw(v["sandbox_pay"].as_str().unwrap(), vec![], &[]).await;
    assert_eq!((s, v["code"].as_str()), (200, Some("paid")), "{v}");
    v
}

#[test]
fn an_application_walks_the_manuals_steps_to_a_certificate_that_logs_in() {
    common::on_each_backend(|db| async move {
        let w = World::start(&db).await;
        let mut anon = w.browser("zh-CN").await;
        let (s, v) = anon.post("/api/applications", form()).await;
        assert_eq!((s, v["code"].as_str()), (401, Some("login_required")), "{v}");

        let mut b = logged_in(&w, "zhangsan", PASSWORD).await;
        // The form: each wrong field named, with the rule it broke.
        let mut bad = form();
        bad["credit_code"] = json!("91350100M000100Y44");
        bad["id_number"] = json!("110105194912310021");
        bad["email"] = json!("");
        let (s, v) = b.post("/api/applications", bad).await;
        assert_eq!((s, v["code"].as_str()), (422, Some("form_invalid")), "{v}");
        let fields = v["fields"].as_array().unwrap();
        let err = |f: &str| fields.iter().find(|x| x["field"] == f).map(|x| x["error"].as_str().unwrap().to_string());
        assert_eq!(err("credit_code").as_deref(), Some("fixed"), "the enterprise record's, not the form's");
        assert_eq!(err("id_number").as_deref(), Some("check_digit"));
        assert_eq!(err("email").as_deref(), Some("empty"));
        assert_eq!(fields.len(), 3, "{v}");
        assert!(v["message"].as_str().unwrap().contains("必填项"));
        assert!(w.audit_has("apply", "refused", "credit_code, id_number, email").await);

        // The order for review; "go back and edit"; confirm.
        let mut f = form();
        f["id_number"] = json!("11010519491231002x");
        let (s, v) = b.post("/api/applications", f).await;
        assert_eq!((s, v["code"].as_str()), (200, Some("order_review")), "{v}");
        let app = &v["application"];
        let id = app["id"].as_str().unwrap().to_string();
        assert_eq!(app["stage"], "review");
        assert_eq!(app["form"]["id_number"], "11010519491231002X");
        assert_eq!(app["amount"], "200.00");
        assert!(app["number"].as_str().unwrap().starts_with("UK"));
        let mut edited = form();
        edited["mobile"] = json!("13900139000");
        let (s, v) = b.post(&format!("/api/applications/{id}/form"), edited).await;
        assert_eq!((s, v["application"]["form"]["mobile"].as_str()), (200, Some("13900139000")), "{v}");
        let (s, v) = b.post(&format!("/api/applications/{id}/form"), form()).await;
        assert_eq!(s, 200, "{v}");
        let (s, v) = b.post(&format!("/api/applications/{id}/confirm"), json!({})).await;
        assert_eq!((s, v["code"].as_str()), (200, Some("order_confirmed")), "{v}");
        let (s, v) = b.post(&format!("/api/applications/{id}/confirm"), json!({})).await;
        assert_eq!((s, v["code"].as_str()), (409, Some("wrong_stage")), "{v}");
        let (s, _) = b.post(&format!("/api/applications/{id}/form"), form()).await;
        assert_eq!(s, 409, "no edits after the order is confirmed");

        // Someone else cannot see or act on it.
        let mut other = logged_in(&w, "lisi", STAFF_PASSWORD).await;
        assert_eq!(other.get(&format!("/api/applications/{id}")).await.0, 404);
        assert_eq!(other.post(&format!("/api/applications/{id}/submit"), json!({"csr": ""})).await.0, 404);

        // ID photos: type by bytes, size bounds.
        let photo = |side: &str| format!("/api/applications/{id}/photos/{side}");
        let gif = [&b"GIF89a"[..], &[0u8; 4000]].concat();
        let (s, v) = b.put_bytes(&photo("front"), "image/gif", gif).await;
        assert_eq!((s, v["code"].as_str()), (415, Some("photo_type")), "{v}");
        assert!(v["message"].as_str().unwrap().contains("JPG或PNG"));
        let (s, v) = b.put_bytes(&photo("front"), "image/png", real_photo(1)).await;
        assert_eq!((s, v["code"].as_str()), (415, Some("photo_type")), "declared PNG, bytes JPEG: {v}");
        let (s, v) = b.put_bytes(&photo("front"), "image/jpeg", jpeg(4096)).await;
        assert_eq!((s, v["code"].as_str()), (422, Some("photo_unreadable")), "JPEG magic, no JPEG: {v}");
        let (s, v) = b.put_bytes(&photo("front"), "image/jpeg", jpeg(100)).await;
        assert_eq!((s, v["code"].as_str()), (413, Some("photo_size")), "{v}");
        let (s, v) = b.put_bytes(&photo("front"), "image/jpeg", jpeg((2 << 20) + 10)).await;
        assert_eq!((s, v["code"].as_str()), (413, Some("photo_size")), "{v}");
        let (s, _) = b.put_bytes(&photo("side"), "image/jpeg", real_photo(1)).await;
        assert_eq!(s, 404);
        let (s, v) = b.put_bytes(&photo("front"), "image/jpeg", real_photo(2)).await;
        assert_eq!((s, v["code"].as_str()), (200, Some("photo_uploaded")), "{v}");

        // Confirm the application with the key's CSR and attestation: both photos first, a CSR
        // that verifies.
        let mut usb = w.usb_key();
        let pair = usb.key_pair(proto::piv::PinPolicy::Once);
        let submit = format!("/api/applications/{id}/submit");
        let (s, v) = b.post(&submit, pair.submission()).await;
        assert_eq!((s, v["code"].as_str()), (409, Some("photos_missing")), "{v}");
        let png = portal::photo::sample(portal::photo::PhotoType::Png, 640, 400, 3);
        assert_eq!(b.put_bytes(&photo("back"), "image/png", png.clone()).await.0, 200);
        let mut tampered = pair.submission();
        let mut bad_csr = pair.csr.clone();
        let n = bad_csr.len() / 2;
        bad_csr[n] ^= 1;
        tampered["csr"] = json!(B64.encode(bad_csr));
        let (s, v) = b.post(&submit, tampered).await;
        assert_eq!((s, v["code"].as_str()), (400, Some("bad_csr")), "{v}");
        let (s, v) = b.post(&submit, pair.submission()).await;
        assert_eq!((s, v["code"].as_str()), (200, Some("sms_sent")), "{v}");
        // Where the key pair was made, from the attestation: shown to the applicant and staff.
        let key_serial = usb.piv.serial().unwrap() as i64;
        assert!(v["message"].as_str().unwrap().contains("138****8000"), "{v}");
        let (_, v) = b.get(&format!("/api/applications/{id}")).await;
        assert_eq!(v["application"]["key"]["serial"], key_serial, "{v}");
        assert_eq!(v["application"]["key"]["firmware"], "5.4.3", "{v}");
        assert_eq!(v["application"]["key"]["manufacturer"], "CN=Test Factory,O=ukey", "{v}");

        // The SMS code: a wrong one counts down, the right one goes on to payment.
        let code = sms_code(&w, &b).await;
        let wrong = if code == "000000" { "111111" } else { "000000" };
        let verify = format!("/api/applications/{id}/sms/verify");
        let (s, v) = b.post(&verify, json!({"code": wrong})).await;
        assert_eq!(
            (s, v["code"].as_str(), v["message"].as_str()),
            (401, Some("sms_wrong"), Some("验证码错误，还有4次机会"))
        );
        let (s, v) = b.post(&verify, json!({"code": code})).await;
        assert_eq!((s, v["code"].as_str()), (200, Some("sms_confirmed")), "{v}");
        let (s, _) = b.post(&verify, json!({"code": code})).await;
        assert_eq!(s, 409, "a used code does not work twice");

        // Payment: receipt only once paid; callbacks signed and idempotent.
        assert_eq!(b.get(&format!("/api/applications/{id}/receipt")).await.0, 409);
        let (s, v) = b.post(&format!("/api/applications/{id}/pay"), json!({"method": "paypal"})).await;
        assert_eq!((s, v["code"].as_str()), (400, Some("bad_method")));
        let (s, v) = b.post(&format!("/api/applications/{id}/pay"), json!({"method": "wechat"})).await;
        assert_eq!((s, v["code"].as_str(), v["message"].as_str()), (200, Some("pay"), Some("请使用微信支付200.00元")));
        let pay_url = v["sandbox_pay"].as_str().unwrap().to_string();
        let (s, v) = b.post_raw(&pay_url, vec![], &[]).await;
        assert_eq!((s, v["code"].as_str()), (200, Some("paid")), "{v}");
        let body = v["notification"].as_str().unwrap().as_bytes().to_vec();
        let sig = v["signature"].as_str().unwrap().to_string();
        let (s, again) = b.post_raw("/api/payments/notify", body.clone(), &[("X-Pay-Signature", &sig)]).await;
        assert_eq!((s, again["code"].as_str()), (200, Some("already_paid")), "{again}");
        assert!(w.audit_has("payment_notify", "duplicate", "").await);
        let (s, forged) =
            b.post_raw("/api/payments/notify", body.clone(), &[("X-Pay-Signature", &"0".repeat(64))]).await;
        assert_eq!((s, forged["code"].as_str()), (401, Some("bad_signature")));
        assert!(w.audit_has("payment_notify", "refused", "bad signature").await);
        let mut cheap: Value = serde_json::from_slice(&body).unwrap();
        cheap["amount_fen"] = json!(1);
        let cheap = serde_json::to_vec(&cheap).unwrap();
        let sig = portal::payment::sign(&w.state.config.payment_secret, &cheap);
        let (s, v) = b.post_raw("/api/payments/notify", cheap, &[("X-Pay-Signature", &sig)]).await;
        assert_eq!((s, v["code"].as_str()), (400, Some("amount_mismatch")), "{v}");
        let (_, v) = b.get(&format!("/api/applications/{id}")).await;
        assert_eq!(v["application"]["stage"], "under_review");
        assert_eq!(v["application"]["pay_method"], "wechat");
        assert_eq!(w.state.store.payments_of(&id).await.unwrap().iter().filter(|p| p.status == "paid").count(), 1);

        // Receipt and the feedback email.
        let (s, v) = b.get(&format!("/api/applications/{id}/receipt")).await;
        assert_eq!(s, 200, "{v}");
        let text = v["text"].as_str().unwrap();
        for part in ["《单位数字证书申请表》回执", "110105********002X", "138****8000", "200.00元", "微信", "等待审核"]
        {
            assert!(text.contains(part), "{part} missing from {text}");
        }
        assert!(!text.contains("11010519491231002X"), "full ID number on a receipt");
        let (_, v) = b.get("/api/sandbox/outbox?to=zhangsan@example.com").await;
        assert!(v["messages"][0]["body"].as_str().unwrap().contains("请等待工作人员审核"), "{v}");

        // Staff review: users are refused; staff see the queue and the photos, then approve.
        let approve = format!("/api/staff/applications/{id}/approve");
        let (s, v) = b.post(&approve, json!({})).await;
        assert_eq!((s, v["code"].as_str()), (403, Some("staff_only")), "{v}");
        let (_, v) = other.get("/api/staff/applications").await;
        let queued = v["applications"].as_array().unwrap().iter().find(|a| a["id"] == id.as_str()).cloned();
        assert_eq!(queued.expect("in the queue")["key"]["serial"], key_serial, "{v}");
        let r = other.http.get(format!("{}/api/staff/applications/{id}/photos/back", w.base)).send().await.unwrap();
        assert_eq!(r.headers()["content-type"], "image/png");
        let kept = image::load_from_memory(&r.bytes().await.unwrap()).unwrap();
        assert_eq!(kept.to_rgb8(), image::load_from_memory(&png).unwrap().to_rgb8(), "the same picture");
        let (s, v) = other.post(&approve, json!({})).await;
        assert_eq!((s, v["code"].as_str()), (200, Some("approved")), "{v}");
        assert_eq!(other.post(&approve, json!({})).await.0, 409);

        // The certificate: from our CA, for the CSR's key, named after the application.
        let (_, v) = b.get(&format!("/api/applications/{id}")).await;
        assert_eq!(v["application"]["stage"], "issued");
        let der = B64.decode(v["application"]["certificate"].as_str().unwrap()).unwrap();
        assert!(w.ca.verify_issued(&der));
        let cert = x509_cert::Certificate::from_der(&der).unwrap();
        let spki = cert.tbs_certificate.subject_public_key_info.to_der().unwrap();
        let csr_key = x509_cert::request::CertReq::from_der(&pair.csr).unwrap().info.public_key.to_der().unwrap();
        assert_eq!(spki, csr_key, "the certificate is for the key pair on the USB-Key");
        let (key_serial_stored, firmware_stored) =
            w.state.store.certificate_key_origin(&portal::token::fingerprint(&der)).await.unwrap();
        assert_eq!((key_serial_stored, firmware_stored.as_deref()), (Some(key_serial), Some("5.4.3")));
        let subject = cert.tbs_certificate.subject.to_string();
        assert!(subject.contains("CN=张三") && subject.contains("O=示例科技有限公司"), "{subject}");
        assert!(!subject.contains("whatever the key says"), "{subject}");
        let (_, v) = b.get("/api/sandbox/outbox?to=zhangsan@example.com").await;
        assert!(v["messages"][0]["body"].as_str().unwrap().contains("已审核通过"), "{v}");

        // It binds and logs in like any key of this CA.
        let key = usb.with_certificate(der);
        let (s, v) = b.bind(&key, &w.origin, &w.accounts[..1]).await;
        assert_eq!(s, 200, "{v}");
        let mut fresh = w.browser("zh-CN").await;
        let (s, v) = fresh.key_login(&key, &w.origin, None).await;
        assert_eq!((s, v["code"].as_str()), (200, Some("logged_in")), "{v}");
    });
}

/// Up to the submit: a new application with both photos; its id.
async fn to_photos_done(b: &mut Browser) -> String {
    let (s, v) = b.post("/api/applications", form()).await;
    assert_eq!(s, 200, "{v}");
    let id = v["application"]["id"].as_str().unwrap().to_string();
    assert_eq!(b.post(&format!("/api/applications/{id}/confirm"), json!({})).await.0, 200);
    for side in ["front", "back"] {
        let (s, v) = b.put_bytes(&format!("/api/applications/{id}/photos/{side}"), "image/jpeg", real_photo(1)).await;
        assert_eq!(s, 200, "{v}");
    }
    id
}

#[test]
fn only_key_pairs_a_trusted_maker_attests_get_a_certificate() {
    common::on_each_backend(|db| async move {
        let w = World::start(&db).await;
        let mut b = logged_in(&w, "zhangsan", PASSWORD).await;
        let id = to_photos_done(&mut b).await;
        let submit = format!("/api/applications/{id}/submit");
        let refused = |v: &Value, code: &str| {
            assert_eq!(v["code"], code, "{v}");
            v["reason"].as_str().unwrap_or_default().to_string()
        };

        // A key pair made in software: its CSR's self-signature verifies, and that is all.
        let sk = SigningKey::random(&mut rand::rngs::OsRng);
        let (s, v) = b.post(&submit, json!({"csr": B64.encode(csr(&sk))})).await;
        assert_eq!(s, 422, "{v}");
        assert!(refused(&v, "not_attested").contains("no attestation"), "{v}");
        assert_eq!(v["message"], "该密钥不是在USB-Key内生成的，无法申请证书");
        assert!(w.audit_has("apply_submit", "refused", "no attestation").await);
        let mut en = logged_in(&w, "zhangsan", PASSWORD).await;
        en.lang = "en".into();
        let (_, v) = en.post(&submit, json!({"csr": B64.encode(csr(&sk))})).await;
        assert!(v["message"].as_str().unwrap().starts_with("The key was not generated on a USB-Key"), "{v}");

        // A genuine attestation, of another key pair than the CSR's.
        let mut usb = w.usb_key();
        let pair = usb.key_pair(proto::piv::PinPolicy::Once);
        let mut other = pair.submission();
        other["csr"] = json!(B64.encode(csr(&sk)));
        let (s, v) = b.post(&submit, other).await;
        assert_eq!(s, 422, "{v}");
        assert!(refused(&v, "not_attested").contains("another key"), "{v}");

        // Half an attestation.
        let mut half = pair.submission();
        half["attestation_f9"] = Value::Null;
        let (_, v) = b.post(&submit, half).await;
        assert!(refused(&v, "not_attested").contains("only one"), "{v}");

        // A key of no trusted make (its F9 certificate signs itself), and one of another factory.
        let dir = tempfile::tempdir().unwrap();
        let elsewhere =
            ca::Ca::create(dir.path(), "CN=Elsewhere,O=x", 10, &proto::clock::FixedClock(T0 - 100)).unwrap();
        for maker in [None, Some(std::sync::Arc::new(elsewhere))] {
            let pair = UsbKey::made_by(maker).key_pair(proto::piv::PinPolicy::Once);
            let (s, v) = b.post(&submit, pair.submission()).await;
            assert_eq!(s, 422, "{v}");
            assert!(refused(&v, "not_attested").contains("trusted manufacturer"), "{v}");
        }

        // A key pair that works without its PIN.
        let pair = w.usb_key().key_pair(proto::piv::PinPolicy::Never);
        let (s, v) = b.post(&submit, pair.submission()).await;
        assert_eq!(s, 422, "{v}");
        assert!(refused(&v, "key_without_pin").contains("never"), "{v}");
        assert_eq!(v["message"], "该密钥使用时无需输入USB-Key密码，无法申请证书，请重新生成密钥");

        // Not base64.
        let mut junk = pair.submission();
        junk["attestation"] = json!("***");
        assert_eq!(b.post(&submit, junk).await.1["code"], "bad_attestation");

        // Nothing above moved the application on; the genuine pair does.
        let (_, v) = b.get(&format!("/api/applications/{id}")).await;
        assert_eq!(v["application"]["stage"], "photos", "{v}");
        let (s, v) = b.post(&submit, usb.key_pair(proto::piv::PinPolicy::Always).submission()).await;
        assert_eq!((s, v["code"].as_str()), (200, Some("sms_sent")), "{v}");
    });
}

#[test]
fn sms_codes_expire_lock_after_too_many_tries_and_resend_after_a_pause() {
    common::on_each_backend(|db| async move {
        let w = World::start(&db).await;
        let mut b = logged_in(&w, "zhangsan", PASSWORD).await;
        let id = to_sms_stage(&w, &mut b, &mut w.usb_key()).await;
        let verify = format!("/api/applications/{id}/sms/verify");
        let resend = format!("/api/applications/{id}/sms/resend");

        // Expired after 5 minutes.
        let code = sms_code(&w, &b).await;
        w.advance(301);
        let (s, v) = b.post(&verify, json!({"code": code})).await;
        assert_eq!(
            (s, v["code"].as_str(), v["message"].as_str()),
            (401, Some("sms_expired"), Some("验证码已过期，请重新获取"))
        );

        // A new code; asking again at once is refused with the wait.
        let (s, v) = b.post(&resend, json!({})).await;
        assert_eq!((s, v["code"].as_str()), (200, Some("sms_sent")), "{v}");
        let (s, v) = b.post(&resend, json!({})).await;
        assert_eq!((s, v["code"].as_str()), (429, Some("sms_too_soon")), "{v}");
        assert!(v["message"].as_str().unwrap().contains("60秒"), "{v}");

        // Five wrong tries: the code dies, even the right one is refused after.
        let code = sms_code(&w, &b).await;
        let wrong = if code == "000000" { "111111" } else { "000000" };
        for left in (1..=4).rev() {
            let (_, v) = b.post(&verify, json!({"code": wrong})).await;
            assert_eq!(v["message"], format!("验证码错误，还有{left}次机会"));
        }
        let (_, v) = b.post(&verify, json!({"code": wrong})).await;
        assert_eq!(v["code"], "sms_too_many", "{v}");
        let (_, v) = b.post(&verify, json!({"code": code})).await;
        assert_eq!(v["code"], "sms_too_many", "{v}");
        assert!(w.audit_has("apply_sms", "refused", "no tries left").await);

        // A new code after the pause works.
        w.advance(61);
        assert_eq!(b.post(&resend, json!({})).await.0, 200);
        let code = sms_code(&w, &b).await;
        let (s, v) = b.post(&verify, json!({"code": code})).await;
        assert_eq!((s, v["code"].as_str()), (200, Some("sms_confirmed")), "{v}");
    });
}

#[test]
fn staff_rejection_needs_a_reason_and_reaches_the_applicant() {
    common::on_each_backend(|db| async move {
        let w = World::start(&db).await;
        let mut b = logged_in(&w, "zhangsan", PASSWORD).await;
        let id = to_sms_stage(&w, &mut b, &mut w.usb_key()).await;
        let mut staff = logged_in(&w, "lisi", STAFF_PASSWORD).await;
        let reject = format!("/api/staff/applications/{id}/reject");
        let (s, _) = staff.post(&reject, json!({"reason": "照片不清晰"})).await;
        assert_eq!(s, 409, "not reviewable before payment");
        let v = pay(&w, &mut b, &id).await;
        assert_eq!(v["code"], "paid");
        let (s, v) = staff.post(&reject, json!({"reason": "  "})).await;
        assert_eq!((s, v["code"].as_str()), (400, Some("bad_reason")));
        let (s, v) = staff.post(&reject, json!({"reason": "证件照片不清晰"})).await;
        assert_eq!((s, v["message"].as_str()), (200, Some("审核未通过：证件照片不清晰")), "{v}");
        let (_, v) = b.get(&format!("/api/applications/{id}")).await;
        assert_eq!(
            (v["application"]["stage"].as_str(), v["application"]["reject_reason"].as_str()),
            (Some("rejected"), Some("证件照片不清晰"))
        );
        assert!(v["application"]["certificate"].is_null());
        let (_, v) = b.get("/api/sandbox/outbox?to=zhangsan@example.com").await;
        assert!(v["messages"][0]["body"].as_str().unwrap().contains("原因：证件照片不清晰"), "{v}");
        assert_eq!(staff.post(&format!("/api/staff/applications/{id}/approve"), json!({})).await.0, 409);
        assert!(w.audit_has("review", "rejected", "证件照片不清晰").await);
    });
}

#[test]
fn without_the_sandbox_there_is_no_simulated_provider_or_outbox() {
    common::on_each_backend(|db| async move {
        let w = World::start_with(&db, |c| c.sandbox = false).await;
        let b = w.browser("en").await;
        assert_eq!(b.post_raw("/api/sandbox/pay/x", vec![], &[]).await.0, 404);
        let r = b.http.get(format!("{}/api/sandbox/outbox?to=13800138000", w.base)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 404);
    });
}

/// CRC-32 (IEEE), for patching a PNG chunk.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// Defect: uploads were kept byte for byte (EXIF with the GPS position, bytes appended after
/// the image), told apart by their first bytes only, and a small file declaring a huge image
/// would have been decoded.
#[test]
fn photos_are_decoded_within_limits_and_re_encoded() {
    common::on_each_backend(|db| async move {
        let w = World::start(&db).await;
        let mut b = logged_in(&w, "zhangsan", PASSWORD).await;
        let (s, v) = b.post("/api/applications", form()).await;
        assert_eq!(s, 200, "{v}");
        let id = v["application"]["id"].as_str().unwrap().to_string();
        assert_eq!(b.post(&format!("/api/applications/{id}/confirm"), json!({})).await.0, 200);
        let front = format!("/api/applications/{id}/photos/front");

        // EXIF in an APP1 segment after SOI, and a script after EOI.
        let clean = real_photo(5);
        let secret = b"Exif\0\0GPS 39.9042N 116.4074E camera-serial-4711";
        let mut tagged = clean[..2].to_vec();
        tagged.extend([0xFF, 0xE1]);
        tagged.extend(((secret.len() + 2) as u16).to_be_bytes());
        tagged.extend(secret);
        tagged.extend(&clean[2..]);
        tagged.extend(b"<script>alert(document.cookie)</script>");
        let (s, v) = b.put_bytes(&front, "image/jpeg", tagged.clone()).await;
        assert_eq!((s, v["code"].as_str()), (200, Some("photo_uploaded")), "{v}");
        let (_, kept) = w.state.store.photo(&id, portal::enrollment::Side::Front).await.unwrap().unwrap();
        let find = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|x| x == needle);
        assert!(!find(&kept, b"GPS") && !find(&kept, b"4711"), "EXIF kept");
        assert!(!find(&kept, b"<script>"), "appended bytes kept");
        let img = image::load_from_memory(&kept).unwrap();
        assert_eq!((img.width(), img.height()), (640, 400), "the picture itself is kept");
        assert!(w.audit_has("apply_photo", "ok", "front 640x400").await);

        // A small PNG that says it is 60000 x 60000 (14 GB of pixels): refused from its header.
        let mut bomb = portal::photo::sample(portal::photo::PhotoType::Png, 640, 400, 6);
        bomb[16..20].copy_from_slice(&60_000u32.to_be_bytes());
        bomb[20..24].copy_from_slice(&60_000u32.to_be_bytes());
        let crc = crc32(&bomb[12..29]);
        bomb[29..33].copy_from_slice(&crc.to_be_bytes());
        let (s, v) = b.put_bytes(&front, "image/png", bomb).await;
        assert_eq!((s, v["code"].as_str()), (422, Some("photo_dimensions")), "{v}");
        assert!(v["message"].as_str().unwrap().contains("8000"), "{v}");
        assert!(w.audit_has("apply_photo", "refused", "60000x60000").await);
        // The same with a JPEG's frame header.
        let mut big = real_photo(7);
        let sof = big.windows(2).position(|m| m == [0xFF, 0xC0]).unwrap();
        big[sof + 5..sof + 9].copy_from_slice(&[0xFD, 0xE8, 0xFD, 0xE8]); // 65000 x 65000
        let (s, v) = b.put_bytes(&front, "image/jpeg", big).await;
        assert_eq!((s, v["code"].as_str()), (422, Some("photo_dimensions")), "{v}");
        // Too small to read an ID card from.
        let thumb = portal::photo::sample(portal::photo::PhotoType::Png, 150, 100, 8);
        let thumb = if thumb.len() < 1024 { [thumb.clone(), vec![0; 1024]].concat() } else { thumb };
        let (s, v) = b.put_bytes(&front, "image/png", thumb).await;
        assert_eq!((s, v["code"].as_str()), (422, Some("photo_dimensions")), "{v}");
        // Cut short.
        let (s, v) = b.put_bytes(&front, "image/jpeg", real_photo(9)[..2000].to_vec()).await;
        assert_eq!((s, v["code"].as_str()), (422, Some("photo_unreadable")), "{v}");
        // None of the refusals replaced the good photo.
        let (_, still) = w.state.store.photo(&id, portal::enrollment::Side::Front).await.unwrap().unwrap();
        assert_eq!(still, kept);
    });
}
