//! The business system's defences over real HTTP, on SQLite and PostgreSQL: a key binds only
//! inside its own enterprise, applications are filed in the applicant's enterprise's name,
//! four eyes on review; no username enumeration and no lock-out of others by wrong passwords;
//! limits per client address (X-Forwarded-For only from trusted proxies), on new sessions, on
//! sizes; password hashing off the async workers; security headers on every answer.
//!
//! Each test names the defect it catches; each failed on the code before its fix.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::world::*;
use portal::password::Cost;
use serde_json::{json, Value};

async fn logged_in(w: &World, user: &str, pass: &str) -> Browser {
    let mut b = w.browser("zh-CN").await;
    let (s, v) = b.password_login(user, pass).await;
    assert_eq!(s, 200, "{v}");
    b
}

/// Defect: a user of enterprise A (perhaps with a phished password) bound a key issued to
/// enterprise B, or to nobody in particular, to A's accounts.
#[test]
fn a_key_binds_only_inside_its_own_enterprise() {
    common::on_each_backend(|db| async move {
        let w = World::start(&db).await;
        let o = w.origin.clone();
        let mut b = logged_in(&w, "zhangsan", PASSWORD).await;
        let foreign = w.key_named(&format!("CN=Mallory,organizationIdentifier={OTHER_CREDIT_CODE},O=另一家公司"), 365);
        let (s, v) = b.bind(&foreign, &o, &w.accounts).await;
        assert_eq!((s, v["code"].as_str()), (403, Some("other_enterprise")), "{v}");
        assert_eq!(v["message"], "该USB-Key属于其他单位，无法绑定");
        assert!(w.audit_has("bind", "refused", OTHER_CREDIT_CODE).await);
        let nameless = w.key_named("CN=Zhang San,O=示例科技有限公司", 365);
        let (s, v) = b.bind(&nameless, &o, &w.accounts).await;
        assert_eq!((s, v["code"].as_str()), (403, Some("other_enterprise")), "no credit code: no enterprise: {v}");
        let (_, v) = b.get("/api/accounts").await;
        assert!(v["accounts"].as_array().unwrap().iter().all(|a| a["bound_to"].as_array().unwrap().is_empty()), "{v}");
        // The enterprise's own key binds.
        let (s, v) = b.bind(&w.key(365), &o, &w.accounts).await;
        assert_eq!((s, v["code"].as_str()), (200, Some("bound")), "{v}");
        let mut en = w.browser("en").await;
        en.password_login("zhangsan", PASSWORD).await;
        let (_, v) = en.bind(&foreign, &o, &w.accounts[..1]).await;
        assert!(v["message"].as_str().unwrap().contains("belongs to another enterprise"), "{v}");
    });
}

fn form(organisation: &str, credit_code: &str) -> Value {
    json!({
        "organisation": organisation,
        "credit_code": credit_code,
        "handler_name": "张三",
        "id_number": "11010519491231002X",
        "mobile": "13800138000",
        "email": "zhangsan@example.com",
    })
}

/// Defect: the organisation and credit code of an application (and so of the certificate)
/// came from the form, so a user could apply in another enterprise's name.
#[test]
fn an_application_is_filed_in_the_applicants_enterprises_name() {
    common::on_each_backend(|db| async move {
        let w = World::start(&db).await;
        let mut b = logged_in(&w, "zhangsan", PASSWORD).await;
        let (s, v) = b.post("/api/applications", form("另一家公司", OTHER_CREDIT_CODE)).await;
        assert_eq!((s, v["code"].as_str()), (422, Some("form_invalid")), "{v}");
        let fields: Vec<(&str, &str)> = v["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| (f["field"].as_str().unwrap(), f["error"].as_str().unwrap()))
            .collect();
        assert_eq!(fields, [("organisation", "fixed"), ("credit_code", "fixed")], "{v}");
        assert!(v["fields"][1]["message"].as_str().unwrap().contains("以单位档案为准"), "{v}");
        // Left out, they are the record's; sent equal to it, accepted.
        let mut f = form("", "");
        f.as_object_mut().unwrap().remove("organisation");
        f.as_object_mut().unwrap().remove("credit_code");
        let (s, v) = b.post("/api/applications", f).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["application"]["form"]["organisation"], "示例科技有限公司");
        assert_eq!(v["application"]["form"]["credit_code"], CREDIT_CODE);
        let id = v["application"]["id"].as_str().unwrap().to_string();
        let (s, v) = b.post(&format!("/api/applications/{id}/form"), form("示例科技有限公司", CREDIT_CODE)).await;
        assert_eq!(s, 200, "{v}");
        let (s, v) = b.post(&format!("/api/applications/{id}/form"), form("示例科技有限公司", OTHER_CREDIT_CODE)).await;
        assert_eq!((s, v["code"].as_str()), (422, Some("form_invalid")), "editing cannot change it either: {v}");
    });
}

/// Defect: a member of staff could approve (or reject) their own application.
#[test]
fn staff_do_not_review_their_own_applications() {
    common::on_each_backend(|db| async move {
        let w = World::start(&db).await;
        let id = w.application_under_review("lisi", STAFF_PASSWORD).await;
        let mut lisi = logged_in(&w, "lisi", STAFF_PASSWORD).await;
        for action in ["approve", "reject"] {
            let (s, v) = lisi.post(&format!("/api/staff/applications/{id}/{action}"), json!({"reason": "x"})).await;
            assert_eq!((s, v["code"].as_str()), (403, Some("own_application")), "{action}: {v}");
            assert!(v["message"].as_str().unwrap().contains("不能审核本人"), "{v}");
        }
        assert!(w.audit_has("review", "refused", "own application").await);
        // Another member of staff can.
        w.add_staff("wangwu", "another-review-pass").await;
        let mut wangwu = logged_in(&w, "wangwu", "another-review-pass").await;
        let (s, v) = wangwu.post(&format!("/api/staff/applications/{id}/approve"), json!({})).await;
        assert_eq!((s, v["code"].as_str()), (200, Some("approved")), "{v}");
    });
}

/// Compare two wrong-password answers as a stranger sees them: status, code, message, every
/// field, the Retry-After header.
async fn answer(b: &Browser, user: &str, pass: &str) -> (u16, Option<String>, Value) {
    let r = b.post_response("/api/login/password", json!({"username": user, "password": pass})).await;
    let status = r.status().as_u16();
    let retry = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
    (status, retry, r.json().await.unwrap())
}

/// Defects: the wrong-password answer told known usernames from unknown ones
/// (`attempts_left` only for the known), and five wrong passwords from anyone locked the
/// account for everyone, its owner too.
#[test]
fn strangers_can_neither_tell_users_apart_nor_lock_anyone_out() {
    common::on_each_backend(|db| async move {
        let w = World::start(&db).await;
        let mallory = w.browser_from("zh-CN", "127.0.0.2").await;
        let mut waits = Vec::new();
        for round in 1..=5 {
            let known = answer(&mallory, "zhangsan", "guess").await;
            let unknown = answer(&mallory, "no-such-user", "guess").await;
            assert_eq!(
                known, unknown,
                "round {round}: the same answer for a username that exists and one that does not"
            );
            assert_eq!((known.0, known.2["code"].as_str()), (401, Some("wrong_password")), "{:?}", known.2);
            waits.push(known.2["retry_after"].as_i64().unwrap_or(0));
            if let Some(wait) = known.2["retry_after"].as_i64() {
                // Waiting is the client's: another try now is refused, right password or not.
                let early = answer(&mallory, "zhangsan", PASSWORD).await;
                assert_eq!((early.0, early.2["code"].as_str()), (429, Some("slow_down")), "{:?}", early.2);
                assert_eq!(early.1.as_deref(), Some(wait.to_string().as_str()), "Retry-After");
                assert!(early.2["message"].as_str().unwrap().contains(&format!("{wait}秒后再试")), "{:?}", early.2);
                assert_eq!(early.0, answer(&mallory, "no-such-user", PASSWORD).await.0);
                w.advance(wait as u64);
            }
        }
        assert_eq!(waits, [0, 0, 0, 1, 2], "three free tries, then a doubling wait");
        // The owner, from another address, is not slowed, and logs in at once.
        let mut owner = w.browser_from("zh-CN", "127.0.0.1").await;
        let (s, v) = owner.password_login("zhangsan", PASSWORD).await;
        assert_eq!(s, 200, "{v}");
        // The guesser's right password, once its wait is over, works and starts its count again.
        let mut m = w.browser_from("zh-CN", "127.0.0.2").await;
        let (s, _) = m.password_login("zhangsan", PASSWORD).await;
        assert_eq!(s, 200);
        let again = answer(&m, "zhangsan", "guess").await;
        assert_eq!(again.2["retry_after"], Value::Null, "count restarted: {:?}", again.2);
        assert!(w.audit_has("password_login", "refused", "unknown user from ip:127.0.0.2").await);
    });
}

/// Defect: limits counted per session or user only, and any `X-Forwarded-For` would have been
/// believed: a client with fresh sessions and made-up addresses was never slowed.
#[test]
fn failures_count_per_client_address_and_forwarded_for_only_from_a_trusted_proxy() {
    common::on_each_backend(|db| async move {
        let w = World::start_with(&db, |c| c.trusted_proxies = vec!["127.0.0.3/32".parse().unwrap()]).await;
        // Not a proxy: its header is ignored, every try counts for 127.0.0.2.
        let mut liar = w.browser_from("zh-CN", "127.0.0.2").await;
        for i in 0..3 {
            liar.headers = vec![("X-Forwarded-For".into(), format!("198.51.100.{i}"))];
            assert_eq!(answer(&liar, "zhangsan", "guess").await.2["retry_after"], Value::Null);
        }
        liar.headers = vec![("X-Forwarded-For".into(), "198.51.100.99".into())];
        assert_eq!(answer(&liar, "zhangsan", "guess").await.2["retry_after"], 1, "fourth try from one address");
        // The trusted proxy: each forwarded client counts on its own.
        let mut proxy = w.browser_from("zh-CN", "127.0.0.3").await;
        proxy.headers = vec![("X-Forwarded-For".into(), "203.0.113.7".into())];
        for _ in 0..3 {
            answer(&proxy, "zhangsan", "guess").await;
        }
        assert_eq!(answer(&proxy, "zhangsan", "guess").await.2["retry_after"], 1);
        proxy.headers = vec![("X-Forwarded-For".into(), "203.0.113.8".into())];
        assert_eq!(answer(&proxy, "zhangsan", "guess").await.2["retry_after"], Value::Null, "another client");
        assert!(w.audit_has("password_login", "refused", "ip:203.0.113.7").await);
    });
}

/// Defect: "fresh session, challenge, repeat" was never limited: challenges were counted per
/// session only, and new sessions not at all.
#[test]
fn new_sessions_and_challenges_are_limited_per_address() {
    common::on_each_backend(|db| async move {
        let w = World::start_with(&db, |c| {
            c.rate_per_address_per_minute = 10;
            c.sessions_per_address_per_minute = 15;
        })
        .await;
        let fresh = |addr: &'static str| {
            let w = &w;
            async move {
                let http = reqwest::Client::builder().local_address(Some(addr.parse().unwrap())).build().unwrap();
                http.get(format!("{}/api/session", w.base)).send().await.unwrap()
            }
        };
        // Ten sessions of one address, one challenge each: the eleventh challenge is refused.
        for i in 0..=10 {
            let b = w.browser_from("zh-CN", "127.0.0.4").await;
            let r = b.post_response("/api/challenge", json!({})).await;
            let status = r.status().as_u16();
            if i < 10 {
                assert_eq!(status, 200, "challenge {i}");
            } else {
                assert_eq!(status, 429, "eleventh challenge from one address");
                assert!(r.headers().get("retry-after").is_some());
                let v: Value = r.json().await.unwrap();
                assert_eq!(v["code"], "rate_limited");
            }
        }
        // Sessions: 11 made above; four more, then refused, while another address goes on.
        for _ in 0..4 {
            assert_eq!(fresh("127.0.0.4").await.status().as_u16(), 200);
        }
        let r = fresh("127.0.0.4").await;
        assert_eq!(r.status().as_u16(), 429);
        assert!(r.headers().get("set-cookie").is_none(), "no session made");
        assert_eq!(fresh("127.0.0.5").await.status().as_u16(), 200);
        w.advance(60);
        assert_eq!(fresh("127.0.0.4").await.status().as_u16(), 200, "next minute");
    });
}

/// Defects: usernames and passwords of any length reached the database and argon2, and a
/// JSON body of megabytes was read whole.
#[test]
fn sizes_are_limited_with_clear_answers() {
    common::on_each_backend(|db| async move {
        let w = World::start(&db).await;
        let mut b = w.browser("zh-CN").await;
        let (s, v) = b.password_login(&"z".repeat(65), "x").await;
        assert_eq!((s, v["code"].as_str()), (422, Some("bad_credentials_format")), "{v}");
        let (s, _) = b.password_login("zhangsan", &"p".repeat(1025)).await;
        assert_eq!(s, 422);
        let r = b
            .post_response("/api/login/password", json!({"username": "zhangsan", "password": "x".repeat(70_000)}))
            .await;
        assert_eq!(r.status().as_u16(), 413, "body over 64 KiB");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["ok"], false, "a JSON answer: {v}");
        let mut u = logged_in(&w, "zhangsan", PASSWORD).await;
        let many: Vec<String> = (0..101).map(|i| format!("a{i}")).collect();
        let (s, v) = u.post("/api/unbind", json!({"account_ids": many})).await;
        assert_eq!((s, v["code"].as_str()), (422, Some("too_many_accounts")), "{v}");
    });
}

/// Defect: argon2 (19 MiB, tens of ms) ran on the async workers, so a burst of password
/// logins stalled key logins behind it.
#[test]
fn a_flood_of_password_logins_does_not_stall_key_logins() {
    common::on_each_backend(|db| async move {
        let w = World::start_with(&db, |c| {
            c.password_cost = Cost::DEFAULT;
            // As many hashes at once as the test runtime has workers: hashing on the workers
            // themselves would then stall every one of them.
            c.hash_slots = 2;
        })
        .await;
        // The user's password at the real cost.
        let id = w.state.store.user_by_name("zhangsan").await.unwrap().unwrap().id;
        w.set_password(&id, PASSWORD, Cost::DEFAULT).await;
        let key = w.key(365);
        let o = w.origin.clone();
        let mut binder = logged_in(&w, "zhangsan", PASSWORD).await;
        assert_eq!(binder.bind(&key, &o, &w.accounts[..1]).await.0, 200);

        let done = Arc::new(AtomicUsize::new(0));
        let mut flood = Vec::new();
        // Stalled workers make the key login wait for nearly all N hashes; healthy ones, for
        // the few that finish while it runs (6 were seen once with N = 12 on 2 busy cores, and
        // 14 with N = 24 while two other builds ran, so N is large enough that "half" keeps a
        // wide margin either way).
        const N: usize = 48;
        for _ in 0..N {
            let mut b = w.browser("zh-CN").await;
            let done = done.clone();
            flood.push(tokio::spawn(async move {
                let (s, _) = b.password_login("zhangsan", PASSWORD).await;
                done.fetch_add(1, Ordering::SeqCst);
                s
            }));
        }
        tokio::task::yield_now().await;
        let mut k = w.browser("zh-CN").await;
        let (s, v) = k.key_login(&key, &o, None).await;
        let finished = done.load(Ordering::SeqCst);
        assert_eq!(s, 200, "{v}");
        assert!(finished < N / 2, "the key login waited for {finished} of {N} password hashes");
        for f in flood {
            assert_eq!(f.await.unwrap(), 200);
        }
    });
}

/// Defect: answers carried no CSP, frame-ancestors, nosniff or Referrer-Policy, and photos
/// were served inline as whatever type they were stored with.
#[test]
fn every_answer_carries_the_security_headers() {
    common::on_each_backend(|db| async move {
        let w = World::start(&db).await;
        let http = reqwest::Client::new();
        for r in [
            http.get(format!("{}/api/session", w.base)).send().await.unwrap(),
            http.post(format!("{}/api/login/password", w.base)).json(&json!({})).send().await.unwrap(),
            http.get(format!("{}/api/no-such-endpoint", w.base)).send().await.unwrap(),
        ] {
            let h = r.headers();
            let csp = h.get("content-security-policy").map(|v| v.to_str().unwrap()).unwrap_or("");
            assert!(csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'none'"), "{csp}");
            assert_eq!(h["x-content-type-options"], "nosniff");
            assert_eq!(h["referrer-policy"], "no-referrer");
            assert!(h.get("strict-transport-security").is_none(), "no HSTS over http");
        }
        let dir = tempfile::tempdir().unwrap();
        let other = format!("sqlite:{}", dir.path().join("tls.db").display());
        let tls = World::start_with(&other, |c| c.origin = "https://portal.example".into()).await;
        let r = http.get(format!("{}/api/session", tls.base)).send().await.unwrap();
        assert!(r.headers()["strict-transport-security"].to_str().unwrap().contains("max-age="));
    });
}

/// The newest SMS to the test form's mobile, if any.
async fn newest_sms(b: &Browser) -> Option<String> {
    let (_, v) = b.get("/api/sandbox/outbox?to=13800138000").await;
    v["messages"].as_array().unwrap().iter().find(|m| m["channel"] == "sms").map(|m| m["body"].to_string())
}

/// Defects: SMS codes could be asked for without end (only a 60 s pause per application), and
/// an SMS holding a code stayed in the outbox after the code was used or dead.
#[test]
fn sms_codes_are_capped_per_number_and_user_and_purged_when_dead() {
    common::on_each_backend(|db| async move {
        let w = World::start_with(&db, |c| {
            c.enroll.sms_resend_secs = 0;
            c.enroll.sms_per_recipient_hour = 3;
            c.enroll.sms_per_recipient_day = 4;
        })
        .await;
        let id = w.application_at_sms_stage("zhangsan", PASSWORD).await;
        let mut b = logged_in(&w, "zhangsan", PASSWORD).await;
        let resend = format!("/api/applications/{id}/sms/resend");
        for _ in 0..2 {
            assert_eq!(b.post(&resend, json!({})).await.0, 200, "codes 2 and 3 this hour");
        }
        let r = b.post_response(&resend, json!({})).await;
        assert_eq!(r.status().as_u16(), 429);
        assert_eq!(r.headers()["retry-after"], "3600");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["code"], "sms_cap", "{v}");
        assert!(v["message"].as_str().unwrap().contains("一小时后"), "{v}");
        w.advance(3601);
        assert_eq!(b.post(&resend, json!({})).await.0, 200, "next hour: the fourth of the day");
        let (s, v) = b.post(&resend, json!({})).await;
        assert_eq!((s, v["code"].as_str()), (429, Some("sms_cap")), "{v}");
        assert!(v["message"].as_str().unwrap().contains("明天"), "{v}");
        assert!(w.audit_has("apply_sms", "refused", "SMS cap per day").await);

        // The code's SMS lives while the code does: gone once it is used.
        let body = newest_sms(&b).await.expect("the last code's SMS");
        let at = body.find("验证码").unwrap() + "验证码".len();
        let code: String = body[at..].chars().take(6).collect();
        let (s, v) = b.post(&format!("/api/applications/{id}/sms/verify"), json!({"code": code})).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(newest_sms(&b).await, None, "used: its SMS deleted");
    });
}

/// Defect: a user could have codes sent to any number of mobiles, each under its own cap.
#[test]
fn sms_codes_are_capped_per_user_across_numbers() {
    common::on_each_backend(|db| async move {
        let w = World::start_with(&db, |c| {
            c.enroll.sms_resend_secs = 0;
            c.enroll.sms_per_user_hour = 2;
        })
        .await;
        let first = w.application_at_sms_stage("zhangsan", PASSWORD).await;
        let mut b = logged_in(&w, "zhangsan", PASSWORD).await;
        assert_eq!(b.post(&format!("/api/applications/{first}/sms/resend"), json!({})).await.0, 200);
        let (s, v) = b.post(&format!("/api/applications/{first}/sms/resend"), json!({})).await;
        assert_eq!((s, v["code"].as_str()), (429, Some("sms_cap")), "third code by the user this hour: {v}");
        // Dead codes are purged: hashes and SMS past their expiry.
        w.advance(301);
        let now = w.clock_now();
        assert!(w.state.store.purge_sms(now, now - 86_400).await.unwrap() >= 2);
        assert_eq!(newest_sms(&b).await, None, "expired: its SMS deleted");
    });
}
