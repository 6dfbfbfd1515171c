//! Every flow, step by step, in the user manual's order.

use std::time::Instant;

use serde_json::json;

use super::enroll;
use super::fail::{ensure, Context, Result};
use super::steps::{expect, msg, Run, Step};
use super::target::System;

/// Every flow against `w`, step by step, in the manual's order.
pub async fn run_flows(w: &System) -> Vec<Step> {
    let mut run = Run { steps: Vec::new(), start: Instant::now() };
    let (mut user, mut b) = match (w.browser().await, w.browser().await) {
        (Ok(u), Ok(b)) => (u, b),
        (Err(e), _) | (_, Err(e)) => {
            run.fail("setup", "open a session", &e);
            return run.steps;
        }
    };
    let c = &w.cast;
    let accounts = w.accounts.clone();
    let deployment = w.deployment;

    // 2. Password login.
    run.step("password login", "wrong password is refused", || async {
        let body = json!({"username": c.user, "password": "wrong-guess"});
        let v = expect(user.post("/api/login/password", body).await?, 401, "wrong_password")?;
        // The same answer for a username that does not exist: nothing to enumerate.
        let body = json!({"username": format!("{}-no-such-user", c.user), "password": "wrong-guess"});
        let other = expect(user.post("/api/login/password", body).await?, 401, "wrong_password")?;
        ensure!(other == v, "an unknown username is answered differently: {other} vs {v}");
        Ok(format!("{} (same answer for an unknown username)", msg(&v)))
    })
    .await;
    run.step("password login", "right password, no key bound yet", || async {
        let body = json!({"username": c.user, "password": c.password.expose()});
        let (s, v) = user.post("/api/login/password", body).await?;
        if deployment && s == 200 && v["code"] == "logged_in" {
            // A deployment may have bindings already; the flows start from none (next step).
            return Ok(format!("{} (keys already bound there)", msg(&v)));
        }
        Ok(msg(&expect((s, v), 200, "no_binding_yet")?))
    })
    .await;
    if deployment {
        run.step("setup", "start from unbound accounts", || async {
            let v = expect(user.post("/api/unbind", json!({"account_ids": accounts})).await?, 200, "unbound")?;
            Ok(format!("{} ({} bindings removed)", msg(&v), v["removed"]))
        })
        .await;
    }

    // 1. Certificate application: ends with a certificate on the blank key that binds, logs
    // in, and is unbound again.
    match &c.blank {
        Some(blank) => enroll::run(&mut run, w, &mut user, blank).await,
        None => run.skip("enrollment", "certificate application", "add --enroll (replaces the key's 9A key pair)"),
    }

    // 3. Bind.
    run.step("bind", "accounts listed as unbound", || async {
        let (_, v) = user.get("/api/accounts").await?;
        let list = v["accounts"].as_array().context("no accounts")?;
        ensure!(list.iter().all(|a| a["bound_to"].as_array().is_some_and(|b| b.is_empty())), "{v}");
        Ok(format!("{} accounts, none bound", list.len()))
    })
    .await;
    let two = &accounts[..accounts.len().min(2)];
    run.step("bind", "tick the accounts, PIN + signature on the key", || async {
        let v = expect(user.bind(&c.main, two).await?, 200, "bound")?;
        Ok(msg(&v))
    })
    .await;
    match &c.foreign {
        Some(k) => {
            run.step("bind", "a key of another enterprise: refused", || async {
                let v = expect(user.bind(k, two).await?, 403, "other_enterprise")?;
                Ok(msg(&v))
            })
            .await
        }
        None => run.skip(
            "bind",
            "a key of another enterprise: refused",
            "needs a key issued to another enterprise (virtual keys only)",
        ),
    }
    run.step("bind", "accounts listed as bound", || async {
        let (_, v) = user.get("/api/accounts").await?;
        let list = v["accounts"].as_array().context("no accounts")?;
        let bound = list.iter().filter(|a| a["bound_to"].as_array().is_some_and(|b| b.len() == 1)).count();
        ensure!(bound == two.len(), "{v}");
        Ok(format!("已绑定 x{bound}"))
    })
    .await;

    // 4. Key login and every outcome.
    if two.len() == 2 {
        run.step("key login", "key bound to two accounts: choose", || async {
            let v = expect(b.key_login(&c.main, c.pin.expose(), None).await?, 409, "choose_account")?;
            Ok(format!("{} ({} accounts)", msg(&v), v["accounts"].as_array().map_or(0, |a| a.len())))
        })
        .await;
    } else {
        run.skip("key login", "key bound to two accounts: choose", "the user's enterprise has one account");
    }
    run.step("key login", "PIN + signature, chosen account: logged in", || async {
        let v = expect(b.key_login(&c.main, c.pin.expose(), Some(&accounts[0])).await?, 200, "logged_in")?;
        Ok(format!("{} as {}", msg(&v), v["account"]["name"]))
    })
    .await;
    run.step("key login", "wrong PIN: the key's true tries left", || async {
        let wrong = if c.pin.expose() == "000000" { "999999" } else { "000000" };
        let v = expect(b.key_login(&c.main, wrong, None).await?, 401, "wrong_pin")?;
        let on_key = w.pin_tries(&b, &c.main).await?;
        ensure!(v["attempts_left"] == on_key, "agent said {} but the key has {on_key}", v["attempts_left"]);
        ensure!(msg(&v).contains(&format!("还有{on_key}次机会")), "message {v}");
        // The right PIN resets the counter (a real key keeps its tries).
        expect(b.key_login(&c.main, c.pin.expose(), Some(&accounts[0])).await?, 200, "logged_in")?;
        Ok(msg(&v))
    })
    .await;
    let needs = "needs a key in that state (virtual keys only)";
    match &c.last_try {
        Some(k) => {
            run.step("key login", "one PIN try left: the agent asks before spending it", || async {
                let wrong = if c.pin.expose() == "000000" { "999999" } else { "000000" };
                let v = expect(b.agent_sign(k, wrong, "n").await?, 409, "last_try")?;
                ensure!(msg(&v).contains("最后一次机会"), "message {v}");
                let left = w.pin_tries(&b, k).await?;
                ensure!(left == 1, "the refused request spent a try: {left} left");
                expect(b.agent_sign_with(k, c.pin.expose(), "n", true).await?, 200, "signed")?;
                Ok(msg(&v))
            })
            .await
        }
        None => run.skip("key login", "one PIN try left: the agent asks before spending it", needs),
    }
    match &c.pin_locked {
        Some(k) => {
            run.step("key login", "PIN locked: says so", || async {
                Ok(msg(&expect(b.key_login(k, c.pin.expose(), None).await?, 403, "pin_locked")?))
            })
            .await
        }
        None => run.skip("key login", "PIN locked: says so", needs),
    }
    match &c.expiring {
        Some(k) => {
            run.step("key login", "certificate expiring: logged in with a reminder", || async {
                expect(user.bind(k, &accounts[..1]).await?, 200, "bound")?;
                Ok(msg(&expect(b.key_login(k, c.pin.expose(), None).await?, 200, "cert_expiring")?))
            })
            .await
        }
        None => run.skip("key login", "certificate expiring: logged in with a reminder", needs),
    }
    match &c.expired {
        Some(k) => {
            run.step("key login", "certificate expired: refused", || async {
                // The key's PIN is fine; the portal refuses the certificate.
                Ok(msg(&expect(b.key_login(k, c.pin.expose(), None).await?, 403, "cert_expired")?))
            })
            .await
        }
        None => run.skip("key login", "certificate expired: refused", needs),
    }
    match (&c.revocable, &c.staff) {
        (Some(k), Some((staff_name, staff_password))) => {
            run.step("key login", "certificate revoked by staff: refused", || async {
                expect(user.bind(k, &accounts[..1]).await?, 200, "bound")?;
                let nonce = b.challenge().await?;
                let (_, v) = b.agent_sign(k, c.pin.expose(), &nonce).await?;
                let cert = base64_decode(v["token"]["certificate"].as_str().context("no certificate")?)?;
                let fp = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&cert));
                let mut staff = w.browser().await?;
                let login = json!({"username": staff_name, "password": staff_password.expose()});
                let (s, answer) = staff.post("/api/login/password", login).await?;
                ensure!(s == 200, "staff login: {answer}");
                let revoke = format!("/api/staff/certificates/{fp}/revoke");
                let revoked = expect(staff.post(&revoke, json!({"reason": "keyCompromise"})).await?, 200, "revoked")?;
                let body = json!({"nonce": nonce, "token": v["token"]});
                let refused = msg(&expect(b.post("/api/login/key", body).await?, 403, "cert_revoked")?);
                Ok(format!("{}; {refused}", msg(&revoked)))
            })
            .await
        }
        _ => {
            run.skip("key login", "certificate revoked by staff: refused", "needs a revocable key and --staff-password")
        }
    }
    match &c.unbound {
        Some(k) => {
            run.step("key login", "key not bound: bind first", || async {
                Ok(msg(&expect(b.key_login(k, c.pin.expose(), None).await?, 403, "not_bound")?))
            })
            .await
        }
        None => run.skip("key login", "key not bound: bind first", "shown by the last unbind step"),
    }
    run.step("key login", "replayed challenge is refused", || async {
        let nonce = b.challenge().await?;
        let (_, v) = b.agent_sign(&c.main, c.pin.expose(), &nonce).await?;
        let body = json!({"nonce": nonce, "token": v["token"], "account_id": accounts[0]});
        expect(b.post("/api/login/key", body.clone()).await?, 200, "logged_in")?;
        let mut other = w.browser().await?;
        Ok(msg(&expect(other.post("/api/login/key", body).await?, 401, "bad_nonce")?))
    })
    .await;

    // 5. Unbind.
    run.step("unbind", "tick the accounts and unbind", || async {
        let v = expect(user.post("/api/unbind", json!({"account_ids": accounts})).await?, 200, "unbound")?;
        let all_unbound = v["accounts"]
            .as_array()
            .is_some_and(|l| l.iter().all(|a| a["bound_to"].as_array().is_some_and(|b| b.is_empty())));
        ensure!(all_unbound, "{v}");
        Ok(msg(&v))
    })
    .await;
    run.step("unbind", "key login afterwards: not bound", || async {
        Ok(msg(&expect(b.key_login(&c.main, c.pin.expose(), None).await?, 403, "not_bound")?))
    })
    .await;
    let _ = run.start;
    run.steps
}

fn base64_decode(s: &str) -> Result<Vec<u8>> {
    use base64::Engine;
    Ok(base64::engine::general_purpose::STANDARD.decode(s)?)
}
