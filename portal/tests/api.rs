//! The portal over real HTTP on loopback: sessions and CSRF, password login with lockout,
//! bind with proof of possession, key login and each outcome a user can see, unbind, rate
//! limits, audit. Keys here are software P-256 keys with certificates from the portal's CA;
//! `ukey flows` runs the same flows with virtual USB-Keys and the agent. Each test runs on
//! SQLite and on PostgreSQL.

mod common;

use common::world::*;
use p256::ecdsa::SigningKey;
use p256::pkcs8::EncodePublicKey;
use proto::Clock;
use serde_json::{json, Value};

#[test]
fn state_changes_need_a_session_and_its_csrf_token() {
    common::on_each_backend(|db| async move {
        let w = World::start(&db).await;
        let http = reqwest::Client::new();
        let r = http
            .post(format!("{}/api/login/password", w.base))
            .json(&json!({"username": "zhangsan", "password": "x"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 401);
        assert_eq!(r.json::<Value>().await.unwrap()["code"], "no_session");
        let mut b = w.browser("zh-CN").await;
        let good = b.csrf.clone();
        b.csrf = "forged".into();
        let (s, v) = b.password_login("zhangsan", "s3cret-pass").await;
        assert_eq!((s, v["code"].as_str()), (403, Some("csrf")));
        assert!(w.audit_has("csrf", "refused", "CSRF").await);
        b.csrf = good;
        let (s, v) = b.password_login("zhangsan", "s3cret-pass").await;
        assert_eq!(s, 200, "{v}");
    });
}

#[test]
fn password_login_rotates_the_session() {
    common::on_each_backend(|db| async move {
        let w = World::start(&db).await;
        let mut b = w.browser("zh-CN").await;
        let (s, v) = b.password_login("zhangsan", "bad-guess-123").await;
        assert_eq!((s, v["code"].as_str()), (401, Some("wrong_password")));
        assert_eq!(v["message"], "用户名或密码错误");
        // (Failures, delays and unknown usernames: tests/security.rs.)

        // Session rotation: the pre-login cookie is dead after login; the new one is HttpOnly/SameSite.
        let raw = reqwest::Client::new();
        let r = raw.get(format!("{}/api/session", w.base)).send().await.unwrap();
        let pre = r.headers()["set-cookie"].to_str().unwrap().to_string();
        let csrf = r.json::<Value>().await.unwrap()["csrf"].as_str().unwrap().to_string();
        let pre_cookie = pre.split(';').next().unwrap().to_string();
        let r = raw
            .post(format!("{}/api/login/password", w.base))
            .header("Cookie", &pre_cookie)
            .header("X-CSRF-Token", &csrf)
            .json(&json!({"username": "zhangsan", "password": "s3cret-pass"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let post = r.headers()["set-cookie"].to_str().unwrap().to_string();
        assert!(post.contains("HttpOnly") && post.contains("SameSite=Strict"), "{post}");
        assert_ne!(post.split(';').next().unwrap(), pre_cookie, "new token at login");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["code"], "no_binding_yet", "no key bound yet: the manual's prompt");
        let old = raw.get(format!("{}/api/accounts", w.base)).header("Cookie", &pre_cookie).send().await.unwrap();
        assert_eq!(old.status().as_u16(), 401, "the pre-login session is gone");
        let audit = w.state.store.audit_tail(100).await.unwrap();
        assert!(
            !audit.iter().any(|r| r.detail.contains("s3cret") || r.detail.contains("bad-guess")),
            "no password in the audit log"
        );
    });
}

#[test]
fn bind_then_key_login_with_every_outcome_then_unbind() {
    common::on_each_backend(|db| async move {
        let w = World::start(&db).await;
        let key = w.key(365);
        let o = w.origin.clone();

        // Not bound: the manual's "bind first" answer, in both languages.
        let mut anon = w.browser("zh-CN").await;
        let (s, v) = anon.key_login(&key, &o, None).await;
        assert_eq!((s, v["code"].as_str()), (403, Some("not_bound")));
        assert!(v["message"].as_str().unwrap().contains("请先使用账号密码登录"));
        let mut en = w.browser("en-US,en;q=0.9").await;
        let (_, v) = en.key_login(&key, &o, None).await;
        assert!(v["message"].as_str().unwrap().contains("bind the key to an account first"));

        // Bind needs a password login; then the accounts show bound.
        let mut user = w.browser("zh-CN").await;
        let (s, v) = user.bind(&key, &o, &w.accounts).await;
        assert_eq!((s, v["code"].as_str()), (401, Some("login_required")));
        user.password_login("zhangsan", "s3cret-pass").await;
        let (s, v) = user.bind(&key, &o, &w.accounts).await;
        assert_eq!((s, v["code"].as_str()), (200, Some("bound")), "{v}");
        assert!(v["accounts"].as_array().unwrap().iter().all(|a| a["bound_to"][0] == key.fingerprint()));
        let (_, v) = user.get("/api/accounts").await;
        assert_eq!(v["accounts"].as_array().unwrap().len(), 2);

        // Two accounts bound: the user chooses, among bound ones only.
        let mut b = w.browser("zh-CN").await;
        let (s, v) = b.key_login(&key, &o, None).await;
        assert_eq!((s, v["code"].as_str()), (409, Some("choose_account")));
        assert_eq!(v["accounts"].as_array().unwrap().len(), 2);
        let (s, v) = b.key_login(&key, &o, Some("not-an-account")).await;
        assert_eq!((s, v["code"].as_str()), (403, Some("not_bound")));
        let (s, v) = b.key_login(&key, &o, Some(&w.accounts[1])).await;
        assert_eq!((s, v["code"].as_str()), (200, Some("logged_in")), "{v}");
        assert_eq!(v["account"]["name"], "申报账号");
        assert!(w.audit_has("key_login", "ok", "申报账号").await);

        // Replay: the same nonce and token again.
        let mut c = w.browser("zh-CN").await;
        let nonce = c.challenge().await;
        let tok = key.token(&o, &nonce);
        let body = json!({"nonce": nonce, "token": tok, "account_id": w.accounts[0]});
        assert_eq!(c.post("/api/login/key", body.clone()).await.0, 200);
        let (s, v) = c.post("/api/login/key", body.clone()).await;
        assert_eq!((s, v["code"].as_str()), (401, Some("bad_nonce")), "replayed nonce");
        assert!(v["message"].as_str().unwrap().contains("登录验证已使用"), "in the page's language: {v}");
        assert!(w.audit_has("key_login", "refused", "no challenge pending").await);
        let mut c2 = w.browser("zh-CN").await;
        c2.challenge().await;
        let (s, v) = c2.post("/api/login/key", body).await;
        assert_eq!((s, v["code"].as_str()), (401, Some("bad_nonce")), "replayed in another session");
        // A newer challenge replaces the last.
        let first = c2.challenge().await;
        let _second = c2.challenge().await;
        let (s, v) = c2
            .post(
                "/api/login/key",
                json!({"nonce": first, "token": key.token(&o, &first), "account_id": w.accounts[0]}),
            )
            .await;
        assert_eq!((s, v["code"].as_str()), (401, Some("bad_nonce")), "replaced challenge");

        // A nonce issued to another session.
        let mut d = w.browser("zh-CN").await;
        let mut e = w.browser("zh-CN").await;
        let nonce = d.challenge().await;
        let (s, v) = e
            .post(
                "/api/login/key",
                json!({"nonce": nonce, "token": key.token(&o, &nonce), "account_id": w.accounts[0]}),
            )
            .await;
        assert_eq!((s, v["code"].as_str()), (401, Some("bad_nonce")));
        assert!(w.audit_has("key_login", "refused", "not this session's current challenge").await);

        // Signed for another origin; tampered signature; a key from a foreign CA.
        let (s, v) = d.key_login(&key, "https://evil.example", Some(&w.accounts[0])).await;
        assert_eq!((s, v["code"].as_str()), (401, Some("bad_token")));
        let nonce = d.challenge().await;
        let mut tok = key.token(&o, &nonce);
        let sig = tok["signature"].as_str().unwrap().to_string();
        tok["signature"] = json!(format!("{}{}", if sig.starts_with('A') { "B" } else { "A" }, &sig[1..]));
        let (s, v) = d.post("/api/login/key", json!({"nonce": nonce, "token": tok})).await;
        assert_eq!((s, v["code"].as_str()), (401, Some("bad_token")), "{v}");
        let foreign_dir = tempfile::tempdir().unwrap();
        let foreign =
            ca::Ca::create(foreign_dir.path(), "CN=Other CA", 3650, &proto::clock::FixedClock(T0 - 100)).unwrap();
        let sk = SigningKey::random(&mut rand::rngs::OsRng);
        let spki = sk.verifying_key().to_public_key_der().unwrap();
        let cert = foreign.issue(&ca::parse_name("CN=Mallory").unwrap(), spki.as_bytes(), T0 - 60, T0 + DAY).unwrap();
        let (s, v) = d.key_login(&Key { sk: sk.into(), cert }, &o, None).await;
        assert_eq!((s, v["code"].as_str()), (403, Some("cert_not_trusted")));

        // Oversized and malformed tokens.
        let nonce = d.challenge().await;
        let (s, v) = d.post("/api/login/key", json!({"nonce": nonce, "token": {"format": "ukey-auth:1", "certificate": "A".repeat(9000), "algorithm": "ES256", "signature": ""}})).await;
        assert_eq!((s, v["code"].as_str()), (413, Some("bad_token")));
        let nonce = d.challenge().await;
        let (s, v) = d.post("/api/login/key", json!({"nonce": nonce, "token": "not a token"})).await;
        assert_eq!((s, v["code"].as_str()), (422, Some("bad_request")), "malformed body, refused in JSON");

        // Expiring soon: logged in with a reminder and the date.
        let soon = w.key(10);
        user.bind(&soon, &o, &w.accounts[..1]).await;
        let (s, v) = b.key_login(&soon, &o, None).await;
        assert_eq!((s, v["code"].as_str()), (200, Some("cert_expiring")), "{v}");
        assert_eq!(v["certificate"]["days_left"], 10);
        assert!(v["message"].as_str().unwrap().contains("到期"));

        // Expired: refused with the date. (Eleven days on, every session has expired too.)
        w.advance(11 * DAY);
        let mut b = w.browser("zh-CN").await;
        let mut user = w.browser("zh-CN").await;
        let (s, v) = b.key_login(&soon, &o, None).await;
        assert_eq!((s, v["code"].as_str()), (403, Some("cert_expired")), "{v}");
        assert!(v["message"].as_str().unwrap().contains("过期"));

        // Revoked: refused with the reason.
        w.state.store.revoke(&key.fingerprint(), "keyCompromise", w.clock.now_unix() as i64).await.unwrap();
        let (s, v) = b.key_login(&key, &o, Some(&w.accounts[0])).await;
        assert_eq!((s, v["code"].as_str()), (403, Some("cert_revoked")));
        assert!(v["message"].as_str().unwrap().contains("keyCompromise"));

        // Unbind: the list shows unbound, and a key login says "not bound".
        let fresh = w.key(365);
        user.password_login("zhangsan", "s3cret-pass").await;
        user.bind(&fresh, &o, &w.accounts[..1]).await;
        let (s, v) = b.key_login(&fresh, &o, None).await;
        assert_eq!((s, v["code"].as_str()), (200, Some("logged_in")));
        let (s, v) = user.post("/api/unbind", json!({"account_ids": w.accounts})).await;
        assert_eq!((s, v["code"].as_str()), (200, Some("unbound")), "{v}");
        assert!(v["accounts"].as_array().unwrap().iter().all(|a| a["bound_to"].as_array().unwrap().is_empty()));
        let (s, v) = b.key_login(&fresh, &o, None).await;
        assert_eq!((s, v["code"].as_str()), (403, Some("not_bound")));
    });
}

#[test]
fn challenges_are_rate_limited() {
    common::on_each_backend(|db| async move {
        let w = World::start(&db).await;
        let mut b = w.browser("en").await;
        for _ in 0..30 {
            b.challenge().await;
        }
        let (s, v) = b.post("/api/challenge", json!({})).await;
        assert_eq!((s, v["code"].as_str()), (429, Some("rate_limited")));
        assert!(w.audit_has("challenge", "refused", "rate limited").await);
        w.advance(60);
        b.challenge().await;
    });
}

#[test]
fn instances_on_one_postgresql_share_the_rate_limits() {
    common::on_each_backend(|db| async move {
        let w = World::start(&db).await;
        let second = w.another_instance(&db).await;
        let mut b = w.browser("en").await;
        // Thirty challenges, every other one through the second instance (the cookie and the
        // session are the same: sessions live in the database).
        for i in 0..30 {
            b.base = if i % 2 == 0 { w.base.clone() } else { second.clone() };
            let (s, v) = b.post("/api/challenge", json!({})).await;
            assert_eq!(s, 200, "{i}: {v}");
        }
        b.base = w.base.clone();
        let (s, v) = b.post("/api/challenge", json!({})).await;
        if db.starts_with("postgres") {
            assert_eq!((s, v["code"].as_str()), (429, Some("rate_limited")), "the 31st, counted over both: {v}");
            b.base = second.clone();
            let (s, _) = b.post("/api/challenge", json!({})).await;
            assert_eq!(s, 429, "the second instance sees the same count");
            w.advance(60);
            let (s, v) = b.post("/api/challenge", json!({})).await;
            assert_eq!(s, 200, "a new minute: {v}");
        } else {
            // SQLite: one portal serves a file, so each process counts on its own (15 here).
            assert_eq!(s, 200, "{v}");
        }
    });
}

#[test]
fn a_challenge_lives_five_minutes_and_a_failed_answer_spends_it() {
    common::on_each_backend(|db| async move {
        let w = World::start(&db).await;
        let key = w.key(365);
        let o = w.origin.clone();
        let mut user = w.browser("en").await;
        assert_eq!(user.password_login("zhangsan", "s3cret-pass").await.0, 200);
        let (s, v) = user.bind(&key, &o, &w.accounts[..1]).await;
        assert_eq!(s, 200, "{v}");
        let mut b = w.browser("en").await;

        // Answered after five minutes: refused, and the late answer cannot be retried.
        let nonce = b.challenge().await;
        w.advance(300);
        let body = json!({"nonce": nonce, "token": key.token(&o, &nonce)});
        let (s, v) = b.post("/api/login/key", body.clone()).await;
        assert_eq!((s, v["code"].as_str()), (401, Some("bad_nonce")), "{v}");
        assert!(v["message"].as_str().unwrap().contains("expired (it lasts 5 minutes)"), "{v}");
        assert!(w.audit_has("key_login", "refused", "nonce expired").await);
        let (_, v) = b.post("/api/login/key", body).await;
        assert!(v["message"].as_str().unwrap().contains("no open challenge"), "spent: {v}");

        // A tampered answer spends the challenge: the right answer to it is then refused.
        let nonce = b.challenge().await;
        let mut bad = key.token(&o, &nonce);
        bad["signature"] = key.token(&o, "another nonce")["signature"].clone();
        let (s, v) = b.post("/api/login/key", json!({"nonce": nonce, "token": bad})).await;
        assert_eq!((s, v["code"].as_str()), (401, Some("bad_token")), "{v}");
        let (s, v) = b.post("/api/login/key", json!({"nonce": nonce, "token": key.token(&o, &nonce)})).await;
        assert_eq!((s, v["code"].as_str()), (401, Some("bad_nonce")), "{v}");

        // Within five minutes the right answer logs in.
        let nonce = b.challenge().await;
        w.advance(299);
        let (s, v) = b.post("/api/login/key", json!({"nonce": nonce, "token": key.token(&o, &nonce)})).await;
        assert_eq!((s, v["code"].as_str()), (200, Some("logged_in")), "{v}");
    });
}
