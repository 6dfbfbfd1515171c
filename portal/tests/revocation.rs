//! Revocation over real HTTP, on SQLite and PostgreSQL: a new certificate for the same holder
//! and enterprise supersedes the earlier one; staff revoke with a reason (audited); the CA's
//! CRL at its stable URL lists both, and openssl, fetching it as a relying party would,
//! verifies it and rejects the revoked certificate with `verify -crl_check`.

mod common;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use common::world::*;
use serde_json::json;

async fn logged_in(w: &World, user: &str, pass: &str) -> Browser {
    let mut b = w.browser("zh-CN").await;
    let (s, v) = b.password_login(user, pass).await;
    assert_eq!(s, 200, "{v}");
    b
}

/// Approve application `id` as staff; the issued certificate's fingerprint.
async fn approve(w: &World, staff: &mut Browser, id: &str) -> String {
    let (s, v) = staff.post(&format!("/api/staff/applications/{id}/approve"), json!({})).await;
    assert_eq!((s, v["code"].as_str()), (200, Some("approved")), "{v}");
    let der = B64.decode(v["application"]["certificate"].as_str().unwrap()).unwrap();
    let _ = w;
    portal::token::fingerprint(&der)
}

async fn get_bytes(w: &World, path: &str) -> (u16, String, Vec<u8>) {
    let r = reqwest::get(format!("{}{path}", w.base)).await.unwrap();
    let ct = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    (r.status().as_u16(), ct, r.bytes().await.unwrap().to_vec())
}

async fn serial_of(w: &World, fingerprint: &str) -> Vec<u8> {
    let c = w.state.store.certificate(fingerprint).await.unwrap().unwrap();
    hex::decode(c.serial).unwrap()
}

#[test]
fn a_new_certificate_supersedes_the_holders_earlier_one() {
    common::on_each_backend(|db| async move {
        let w = World::start(&db).await;
        let mut staff = logged_in(&w, "lisi", STAFF_PASSWORD).await;
        let first = w.application_under_review("zhangsan", PASSWORD).await;
        let first = approve(&w, &mut staff, &first).await;
        // Another person of the same enterprise: their certificate does not touch the first.
        let other = w.application_under_review_of("zhangsan", PASSWORD, OTHER_HOLDER_ID).await;
        let other = approve(&w, &mut staff, &other).await;
        assert!(w.state.store.certificate(&first).await.unwrap().unwrap().revoked_at.is_none());

        // The same holder again: the first certificate is revoked as superseded.
        let second = w.application_under_review("zhangsan", PASSWORD).await;
        let second = approve(&w, &mut staff, &second).await;
        let c = w.state.store.certificate(&first).await.unwrap().unwrap();
        assert_eq!((c.revoked_at, c.revoke_reason.as_deref()), (Some(w.clock_now()), Some("superseded")));
        for fp in [&other, &second] {
            assert!(w.state.store.certificate(fp).await.unwrap().unwrap().revoked_at.is_none(), "{fp}");
        }
        assert!(w.audit_has("revoke", "superseded", &first).await);

        // The CRL says so.
        let (s, ct, der) = get_bytes(&w, "/pki/ca.crl").await;
        assert_eq!((s, ct.as_str()), (200, "application/pkix-crl"));
        let ca::crl::CrlInfo { this_update: this, next_update: next, entries } = ca::crl::parse(&der).unwrap();
        assert_eq!(this, w.clock_now() as u64);
        assert_eq!(next, Some(this + 24 * 3600));
        assert_eq!(entries, vec![(serial_of(&w, &first).await, Some(ca::crl::Reason::Superseded))]);
    });
}

#[test]
fn staff_revoke_with_a_reason_and_the_crl_tells_openssl() {
    common::on_each_backend(|db| async move {
        let w = World::start(&db).await;
        // openssl judges the CRL's times by the wall clock: the portal's clock at real time.
        let real = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        w.advance(real.saturating_sub(w.clock_now() as u64));
        let (kept, gone) = (w.key(365), w.key(365));
        let mut user = logged_in(&w, "zhangsan", PASSWORD).await;
        for k in [&kept, &gone] {
            let (s, v) = user.bind(k, &w.origin, &w.accounts[..1]).await;
            assert_eq!(s, 200, "{v}");
        }
        let revoke = format!("/api/staff/certificates/{}/revoke", gone.fingerprint());

        // Only staff, only the RFC 5280 reasons, only known certificates.
        let (s, v) = user.post(&revoke, json!({"reason": "keyCompromise"})).await;
        assert_eq!((s, v["code"].as_str()), (403, Some("staff_only")), "{v}");
        let mut staff = logged_in(&w, "lisi", STAFF_PASSWORD).await;
        let (s, v) = staff.post(&revoke, json!({"reason": "because"})).await;
        assert_eq!((s, v["code"].as_str()), (400, Some("bad_reason")), "{v}");
        assert!(v["message"].as_str().unwrap().contains("keyCompromise"), "{v}");
        let (s, _) = staff.post("/api/staff/certificates/00ff/revoke", json!({"reason": "keyCompromise"})).await;
        assert_eq!(s, 404);

        let (s, v) = staff.post(&revoke, json!({"reason": "keyCompromise"})).await;
        assert_eq!((s, v["code"].as_str()), (200, Some("revoked")), "{v}");
        assert_eq!(v["message"], "证书已吊销（keyCompromise），该USB-Key不能再登录");
        let (s, v) = staff.post(&revoke, json!({"reason": "superseded"})).await;
        assert_eq!((s, v["code"].as_str()), (409, Some("already_revoked")), "{v}");
        assert!(w.audit_has("revoke", "keyCompromise", &gone.fingerprint()).await);

        // It no longer logs in; the other does.
        let mut b = w.browser("zh-CN").await;
        let (s, v) = b.key_login(&gone, &w.origin, None).await;
        assert_eq!((s, v["code"].as_str()), (403, Some("cert_revoked")), "{v}");
        let (s, v) = b.key_login(&kept, &w.origin, None).await;
        assert_eq!((s, v["code"].as_str()), (200, Some("logged_in")), "{v}");

        // The certificates name the CRL; openssl fetches nothing itself, so hand it the files.
        let (_, _, crl) = get_bytes(&w, "/pki/ca.crl").await;
        let (s, ct, ca_der) = get_bytes(&w, "/pki/ca.crt").await;
        assert_eq!((s, ct.as_str()), (200, "application/pkix-cert"));
        assert_eq!(ca_der, w.ca.certificate_der());
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, label: &str, der: &[u8]| {
            let p = dir.path().join(name);
            std::fs::write(&p, der::pem::encode_string(label, der::pem::LineEnding::LF, der).unwrap()).unwrap();
            p.to_str().unwrap().to_string()
        };
        let (ca_pem, crl_pem) = (file("ca.pem", "CERTIFICATE", &ca_der), file("crl.pem", "X509 CRL", &crl));
        let (kept_pem, gone_pem) =
            (file("kept.pem", "CERTIFICATE", &kept.cert), file("gone.pem", "CERTIFICATE", &gone.cert));
        let run = |args: &[&str]| match std::process::Command::new("openssl").args(args).output() {
            Ok(o) => Some((
                o.status.success(),
                format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)),
            )),
            Err(e) => {
                testsupport::skip(format_args!("openssl as the judge ({e})"));
                None
            }
        };
        let Some((ok, out)) = run(&["x509", "-in", &kept_pem, "-noout", "-ext", "crlDistributionPoints"]) else {
            return;
        };
        assert!(ok && out.contains(&format!("{}/pki/ca.crl", w.origin)), "{out}");
        let (ok, out) = run(&["crl", "-in", &crl_pem, "-CAfile", &ca_pem, "-noout", "-text"]).unwrap();
        assert!(ok && out.contains("verify OK") && out.contains("Key Compromise"), "{out}");
        let verify =
            |cert: &str| run(&["verify", "-crl_check", "-CAfile", &ca_pem, "-CRLfile", &crl_pem, cert]).unwrap();
        let (ok, out) = verify(&gone_pem);
        assert!(!ok && out.contains("certificate revoked"), "{out}");
        let (ok, out) = verify(&kept_pem);
        assert!(ok, "{out}");
    });
}
