//! The agent over real HTTP on loopback, with virtual keys in this process: Host and Origin
//! checks, key list, PIN outcomes from the key itself, a login signature that verifies, key
//! events over WebSocket.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use host_driver::agent::{self, AgentConfig, FixedKeys};
use host_driver::login_token::signed_digest;
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use p256::ecdsa::{Signature, VerifyingKey};
use proto::clock::FixedClock;
use serde_json::{json, Value};
use token_sim::scenario::Scenario;
use token_sim::{KeySpec, SharedKey, VirtualKey};

const NOW: u64 = 1_790_000_000;
const PORTAL: &str = "http://127.0.0.1:8080";

type Keys = FixedKeys<SharedKey>;

fn key(ca: &ca::Ca, s: Scenario, seed: u64) -> SharedKey {
    let mut vk = VirtualKey::in_memory(
        &KeySpec { seed: Some(seed), serial: Some(20_000_000 + seed as u32), ..KeySpec::default() },
        &FixedClock(NOW),
    )
    .unwrap();
    vk.provision(s, Some(ca), "CN=Li Si,O=Example", &FixedClock(NOW)).unwrap();
    SharedKey::new(vk)
}

struct Setup {
    _dir: tempfile::TempDir,
    keys: Arc<Keys>,
    base: String,
    ca: ca::Ca,
}

async fn start() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca::Ca::create(dir.path(), "CN=Test CA", 3650, &FixedClock(NOW - 100)).unwrap();
    let keys = Arc::new(Keys::default());
    keys.keys().push(("alice".into(), key(&ca, Scenario::Provisioned, 1)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let config = AgentConfig {
        poll: Duration::from_millis(50),
        own_origin: Some(base.clone()),
        ..AgentConfig::new(vec![PORTAL.into()])
    };
    tokio::spawn(agent::serve(listener, keys.clone(), config));
    Setup { _dir: dir, keys, base, ca }
}

async fn call(method: &str, url: &str, origin: Option<&str>, host: Option<&str>, body: Option<Value>) -> (u16, Value) {
    let c = reqwest::Client::new();
    let mut r = if method == "GET" { c.get(url) } else { c.post(url) };
    if let Some(o) = origin {
        r = r.header("Origin", o);
    }
    if let Some(h) = host {
        r = r.header("Host", h);
    }
    if let Some(b) = body {
        r = r.json(&b);
    }
    let resp = r.send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_stack_size(8 << 20)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn only_loopback_hosts_and_allowed_origins_get_an_answer() {
    rt().block_on(async {
        let s = start().await;
        let url = format!("{}/keys", s.base);
        let (st, v) = call("GET", &url, None, None, None).await;
        assert_eq!((st, v["code"].as_str()), (403, Some("bad_origin")), "no Origin");
        let (st, v) = call("GET", &url, Some("https://evil.example"), None, None).await;
        assert_eq!((st, v["code"].as_str()), (403, Some("bad_origin")));
        let (st, v) = call("GET", &url, Some(PORTAL), Some("evil.example"), None).await;
        assert_eq!((st, v["code"].as_str()), (403, Some("bad_host")), "DNS rebinding: a foreign Host");
        let (st, v) = call("GET", &url, Some(PORTAL), None, None).await;
        assert_eq!(st, 200);
        let k = &v["keys"][0];
        assert_eq!(k["serial"], "20000001");
        assert_eq!(k["subject"], "CN=Li Si,O=Example");
        assert_eq!(k["pin_retries"], 3);
    });
}

#[test]
fn sign_verifies_the_pin_on_the_key_and_signs_for_the_page_origin() {
    rt().block_on(async {
        let s = start().await;
        let url = format!("{}/sign", s.base);
        let req = |pin: &str| json!({"key_id": "alice", "pin": pin, "nonce": "bm9uY2U"});
        let (st, v) = call("POST", &url, Some(PORTAL), None, Some(req("000000"))).await;
        assert_eq!((st, v["code"].as_str(), v["attempts_left"].as_u64()), (401, Some("wrong_pin"), Some(2)));
        assert_eq!(v["message"], "USB-Key密码校验失败，还有2次机会", "Chinese without Accept-Language");
        let (st, v) = call("POST", &url, Some(PORTAL), None, Some(req("123456"))).await;
        assert_eq!(st, 200, "{v}");
        let tok = &v["token"];
        assert_eq!(tok["format"], "ukey-auth:1");
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        let cert = b64.decode(tok["certificate"].as_str().unwrap()).unwrap();
        let sig = Signature::from_slice(&b64.decode(tok["signature"].as_str().unwrap()).unwrap()).unwrap();
        let pk = VerifyingKey::from(host_driver::certinfo::public_key(&cert).unwrap());
        assert!(pk.verify_prehash(&signed_digest(PORTAL, b"bm9uY2U"), &sig).is_ok(), "signed for the Origin header");
        assert!(pk.verify_prehash(&signed_digest("https://evil.example", b"bm9uY2U"), &sig).is_err());
        // The PIN session ended with the request: the key is not left verified.
        let k = s.keys.keys()[0].1.clone();
        let mut piv = host_driver::Piv::new(k);
        piv.select().unwrap();
        assert_eq!(piv.pin_status().unwrap(), host_driver::PinStatus::NotVerified { retries_left: 3 });

        // Lock the PIN (the last try spent as the user confirmed): the agent says so instead
        // of counting down.
        for _ in 0..3 {
            let mut r = req("000000");
            r["last_try"] = json!(true);
            call("POST", &url, Some(PORTAL), None, Some(r)).await;
        }
        let (st, v) = call("POST", &url, Some(PORTAL), None, Some(req("123456"))).await;
        assert_eq!((st, v["code"].as_str()), (403, Some("pin_locked")));
        let (st, v) =
            call("POST", &url, Some(PORTAL), None, Some(json!({"key_id": "nope", "pin": "123456", "nonce": "x"})))
                .await;
        assert_eq!((st, v["code"].as_str()), (404, Some("no_key")));
        let (st, v) = call("POST", &url, Some(PORTAL), None, Some(json!({"pin": 1}))).await;
        assert_eq!((st, v["code"].as_str()), (400, Some("bad_request")));
    });
}

async fn next_event<S>(ws: &mut S) -> Value
where
    S: futures_util::Stream<
            Item = Result<tokio_tungstenite::tungstenite::Message, tokio_tungstenite::tungstenite::Error>,
        > + Unpin,
{
    let m = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("an event").unwrap().unwrap();
    serde_json::from_str::<Value>(m.to_text().unwrap()).unwrap()
}

#[test]
fn key_events_over_websocket() {
    rt().block_on(async {
        let s = start().await;
        let ws_url = format!("{}/events", s.base.replace("http://", "ws://"));
        let mut req =
            tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(ws_url.as_str()).unwrap();
        req.headers_mut().insert("Origin", PORTAL.parse().unwrap());
        let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        let hello = next_event(&mut ws).await;
        assert_eq!(hello["event"], "keys");
        assert_eq!(hello["keys"][0]["id"], "alice");
        s.keys.keys().push(("bob".into(), key(&s.ca, Scenario::Fresh, 2)));
        let ev = next_event(&mut ws).await;
        assert_eq!((ev["event"].as_str(), ev["key"]["id"].as_str()), (Some("inserted"), Some("bob")));
        s.keys.keys().retain(|(id, _)| id != "alice");
        let ev = next_event(&mut ws).await;
        assert_eq!((ev["event"].as_str(), ev["key"]["id"].as_str()), (Some("removed"), Some("alice")));
    });
}

/// `openssl req -verify` on a DER CSR: true when openssl says the self-signature verifies.
fn openssl_verifies_csr(der: &[u8]) -> Option<bool> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("req.der");
    std::fs::write(&path, der).unwrap();
    let out = std::process::Command::new("openssl")
        .args(["req", "-inform", "DER", "-in"])
        .arg(&path)
        .args(["-verify", "-noout"])
        .output();
    match out {
        Ok(o) => Some(o.status.success() && String::from_utf8_lossy(&o.stderr).contains("verify OK")),
        Err(_) => {
            testsupport::skip("openssl as the judge (not installed)");
            None
        }
    }
}

#[test]
fn enrollment_generates_the_key_pair_on_the_key_and_installs_only_a_matching_certificate() {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    rt().block_on(async {
        let s = start().await;
        s.keys.keys().push(("blank".into(), key(&s.ca, Scenario::Fresh, 2)));
        let keypair = format!("{}/enroll/keypair", s.base);
        let install = format!("{}/enroll/install", s.base);

        // Wrong PIN: nothing generated, the key's own count.
        let (st, v) =
            call("POST", &keypair, Some(PORTAL), None, Some(json!({"key_id": "blank", "pin": "999999"}))).await;
        assert_eq!((st, v["code"].as_str(), v["attempts_left"].as_u64()), (401, Some("wrong_pin"), Some(2)));

        // A key pair on the key; the CSR is signed by it (our CA and openssl agree).
        let (st, v) =
            call("POST", &keypair, Some(PORTAL), None, Some(json!({"key_id": "blank", "pin": "123456"}))).await;
        assert_eq!(st, 200, "{v}");
        let csr = b64.decode(v["csr"].as_str().unwrap()).unwrap();
        let req = ca::verify_csr(&csr).unwrap();
        if let Some(ok) = openssl_verifies_csr(&csr) {
            assert!(ok, "openssl req -verify refused the key's CSR");
        }
        // With it, the key's attestation of that key pair: ATTEST of 9A, signed by the F9 key
        // (this key was made without a factory, so its F9 certificate is its own root here).
        let att = b64.decode(v["attestation"].as_str().expect("attestation")).unwrap();
        let f9 = b64.decode(v["attestation_f9"].as_str().expect("F9 certificate")).unwrap();
        let mut roots = ca::attestation::Roots::default();
        roots.add_der(&f9).unwrap();
        let attested = ca::attestation::verify(&att, &f9, &roots, NOW).unwrap();
        assert!(attested.certifies(&req.info.public_key), "the attestation is of the CSR's key");
        assert_eq!(attested.serial, Some(20_000_002));

        // A certificate for another key pair is refused and not written.
        let other = key(&s.ca, Scenario::Provisioned, 3);
        let mut piv = host_driver::Piv::new(other);
        piv.select().unwrap();
        let foreign = piv.read_certificate(proto::piv::Slot::Authentication).unwrap().unwrap();
        let body = |c: &[u8], pin: &str| Some(json!({"key_id": "blank", "pin": pin, "certificate": b64.encode(c)}));
        let (st, v) = call("POST", &install, Some(PORTAL), None, body(&foreign, "123456")).await;
        assert_eq!((st, v["code"].as_str()), (409, Some("key_mismatch")), "{v}");
        let (_, v) = call("GET", &format!("{}/keys", s.base), Some(PORTAL), None, None).await;
        let blank = v["keys"].as_array().unwrap().iter().find(|k| k["id"] == "blank").unwrap().clone();
        assert!(blank["subject"].is_null(), "{blank}");

        // The CA's certificate for the CSR goes on; the key then signs logins under it.
        let cert = s.ca.issue_from_csr(&csr, 365, &FixedClock(NOW)).unwrap();
        let (st, v) = call("POST", &install, Some(PORTAL), None, body(&cert, "000000")).await;
        assert_eq!((st, v["code"].as_str()), (401, Some("wrong_pin")), "{v}");
        let (st, v) = call("POST", &install, Some(PORTAL), None, body(&cert, "123456")).await;
        assert_eq!((st, v["code"].as_str()), (200, Some("installed")), "{v}");
        let (_, v) = call("GET", &format!("{}/keys", s.base), Some(PORTAL), None, None).await;
        let blank = v["keys"].as_array().unwrap().iter().find(|k| k["id"] == "blank").unwrap().clone();
        assert_eq!(blank["subject"], req.info.subject.to_string());
        let sign = json!({"key_id": "blank", "pin": "123456", "nonce": "bm9uY2U"});
        let (st, v) = call("POST", &format!("{}/sign", s.base), Some(PORTAL), None, Some(sign)).await;
        assert_eq!(st, 200, "{v}");
        assert_eq!(b64.decode(v["token"]["certificate"].as_str().unwrap()).unwrap(), cert);

        // A key with a certificate is not overwritten unless the page says so.
        let (st, v) =
            call("POST", &keypair, Some(PORTAL), None, Some(json!({"key_id": "blank", "pin": "123456"}))).await;
        assert_eq!((st, v["code"].as_str()), (409, Some("slot_in_use")), "{v}");
        let again = json!({"key_id": "blank", "pin": "123456", "replace": true});
        let (st, _) = call("POST", &keypair, Some(PORTAL), None, Some(again)).await;
        assert_eq!(st, 200);
        let (_, v) = call("GET", &format!("{}/keys", s.base), Some(PORTAL), None, None).await;
        let blank = v["keys"].as_array().unwrap().iter().find(|k| k["id"] == "blank").unwrap().clone();
        assert!(blank["subject"].is_null(), "the old certificate went with its key: {blank}");

        // A plain PIV card cannot attest: the CSR comes alone (the portal will refuse it).
        let plain = KeySpec { seed: Some(9), flavor: token_sim::piv::state::Flavor::Plain, ..KeySpec::default() };
        s.keys.keys().push(("plain".into(), SharedKey::new(VirtualKey::in_memory(&plain, &FixedClock(NOW)).unwrap())));
        let (st, v) =
            call("POST", &keypair, Some(PORTAL), None, Some(json!({"key_id": "plain", "pin": "123456"}))).await;
        assert_eq!(st, 200, "{v}");
        assert!(v["csr"].is_string() && v["attestation"].is_null() && v["attestation_f9"].is_null(), "{v}");
    });
}

#[test]
fn a_key_with_another_management_key_is_refused_clearly() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let ca = ca::Ca::create(dir.path(), "CN=Test CA", 3650, &FixedClock(NOW - 100)).unwrap();
        let keys = Arc::new(Keys::default());
        keys.keys().push(("blank".into(), key(&ca, Scenario::Fresh, 4)));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let config = AgentConfig {
            management_key: host_driver::MgmtKey::from_hex(&"11".repeat(24), None).unwrap(),
            ..AgentConfig::new(vec![PORTAL.into()])
        };
        tokio::spawn(agent::serve(listener, keys.clone(), config));
        let body = json!({"key_id": "blank", "pin": "123456"});
        let (st, v) = call("POST", &format!("{base}/enroll/keypair"), Some(PORTAL), None, Some(body)).await;
        assert_eq!((st, v["code"].as_str()), (403, Some("management_key")), "{v}");
        assert!(v["message"].as_str().unwrap().contains("--management-key"));
    });
}

/// A WebSocket upgrade or a CORS preflight from a foreign Origin, or to a foreign Host, gets
/// no answer a page could use: no upgrade, no CORS grant.
#[test]
fn websocket_and_preflight_from_a_foreign_origin_or_host_are_refused() {
    rt().block_on(async {
        let s = start().await;
        let ws_url = format!("{}/events", s.base.replace("http://", "ws://"));
        for (origin, host) in [("https://evil.example", None), (PORTAL, Some("evil.example:7781"))] {
            let mut req =
                tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(ws_url.as_str())
                    .unwrap();
            req.headers_mut().insert("Origin", origin.parse().unwrap());
            if let Some(h) = host {
                req.headers_mut().insert("Host", h.parse().unwrap());
            }
            match tokio_tungstenite::connect_async(req).await {
                Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status().as_u16(), 403),
                other => panic!("upgrade from {origin} / {host:?} not refused: {:?}", other.map(|(_, r)| r.status())),
            }
        }
        let c = reqwest::Client::new();
        let preflight = |origin: &'static str, host: Option<&'static str>| {
            let mut r = c
                .request(reqwest::Method::OPTIONS, format!("{}/sign", s.base))
                .header("Origin", origin)
                .header("Access-Control-Request-Method", "POST")
                .header("Access-Control-Request-Headers", "content-type");
            if let Some(h) = host {
                r = r.header("Host", h);
            }
            r.send()
        };
        for (origin, host) in [("https://evil.example", None), (PORTAL, Some("evil.example"))] {
            let r = preflight(origin, host).await.unwrap();
            assert_eq!(r.status().as_u16(), 403, "{origin} {host:?}");
            assert!(r.headers().get("access-control-allow-origin").is_none());
        }
        let r = preflight(PORTAL, None).await.unwrap();
        assert_eq!(r.status().as_u16(), 204);
        assert_eq!(r.headers()["access-control-allow-origin"], PORTAL);
    });
}

/// A script in an allowed page must not guess the PIN until the key locks: with one try left
/// the agent spends it only when the request says the user confirmed.
#[test]
fn the_last_pin_try_is_spent_only_when_the_request_says_so() {
    rt().block_on(async {
        let s = start().await;
        s.keys.keys().push(("ivan".into(), key(&s.ca, Scenario::Pin1Left, 3)));
        let sign = format!("{}/sign", s.base);
        let tries = || async {
            let (_, v) = call("GET", &format!("{}/keys", s.base), Some(PORTAL), None, None).await;
            v["keys"].as_array().unwrap().iter().find(|k| k["id"] == "ivan").unwrap()["pin_retries"].as_u64().unwrap()
        };
        for pin in ["000000", "123456"] {
            let body = json!({"key_id": "ivan", "pin": pin, "nonce": "n"});
            let (st, v) = call("POST", &sign, Some(PORTAL), None, Some(body)).await;
            assert_eq!((st, v["code"].as_str(), v["attempts_left"].as_u64()), (409, Some("last_try"), Some(1)), "{v}");
            assert!(v["message"].as_str().unwrap().contains("最后一次机会"), "{v}");
            assert_eq!(tries().await, 1, "nothing spent");
        }
        use base64::Engine;
        let cert = base64::engine::general_purpose::STANDARD.encode(s.ca.certificate_der());
        for path in ["/enroll/keypair", "/enroll/install"] {
            let body = json!({"key_id": "ivan", "pin": "000000", "certificate": cert, "replace": true});
            let (st, v) = call("POST", &format!("{}{path}", s.base), Some(PORTAL), None, Some(body)).await;
            assert_eq!((st, v["code"].as_str()), (409, Some("last_try")), "{path}: {v}");
        }
        let body = json!({"key_id": "ivan", "pin": "123456", "nonce": "n", "last_try": true});
        let (st, v) = call("POST", &sign, Some(PORTAL), None, Some(body)).await;
        assert_eq!((st, v["code"].as_str()), (200, Some("signed")), "{v}");
        assert_eq!(tries().await, 3, "the right PIN restores the tries");
        // With more than one try left nothing needs saying.
        let body = json!({"key_id": "ivan", "pin": "000000", "nonce": "n"});
        let (st, v) = call("POST", &sign, Some(PORTAL), None, Some(body)).await;
        assert_eq!((st, v["attempts_left"].as_u64()), (401, Some(2)), "{v}");
    });
}

/// Replacing the key pair under an existing certificate needs the PIN first: a wrong PIN
/// leaves the slot as it was.
#[test]
fn replacing_a_key_pair_needs_the_pin_first() {
    rt().block_on(async {
        let s = start().await;
        let before = call("GET", &format!("{}/keys", s.base), Some(PORTAL), None, None).await.1["keys"][0].clone();
        let body = json!({"key_id": "alice", "pin": "000000", "replace": true});
        let (st, v) = call("POST", &format!("{}/enroll/keypair", s.base), Some(PORTAL), None, Some(body)).await;
        assert_eq!((st, v["code"].as_str()), (401, Some("wrong_pin")), "{v}");
        let after = call("GET", &format!("{}/keys", s.base), Some(PORTAL), None, None).await.1["keys"][0].clone();
        assert_eq!(after["subject"], before["subject"], "certificate still there");
        assert_eq!(after["pin_retries"], 2);
        let body = json!({"key_id": "alice", "pin": "123456", "replace": true});
        let (st, v) = call("POST", &format!("{}/enroll/keypair", s.base), Some(PORTAL), None, Some(body)).await;
        assert_eq!(st, 200, "{v}");
    });
}

/// The certificate assistant changes PINs for its own page only: a portal's page (an allowed
/// origin for logins), a foreign page or a request without an Origin is refused; its own page
/// changes the PIN, and the wrong old PIN or PUK gets the key's own count.
#[test]
fn the_assistant_changes_pins_for_its_own_page_only() {
    rt().block_on(async {
        let s = start().await;
        let change = format!("{}/assistant/pin/change", s.base);
        let body = json!({"key_id": "alice", "old_pin": "123456", "new_pin": "24681357"});
        for origin in [Some(PORTAL), Some("https://evil.example"), None] {
            let (st, v) = call("POST", &change, origin, None, Some(body.clone())).await;
            assert_eq!((st, v["code"].as_str()), (403, Some("bad_origin")), "{origin:?}");
        }
        // Nothing changed: the old PIN still verifies through a login.
        let own = Some(s.base.as_str());
        let wrong = json!({"key_id": "alice", "old_pin": "000000", "new_pin": "24681357"});
        let (st, v) = call("POST", &change, own, None, Some(wrong)).await;
        assert_eq!((st, v["code"].as_str(), v["attempts_left"].as_u64()), (401, Some("wrong_pin"), Some(2)), "{v}");
        let (st, v) = call("POST", &change, own, None, Some(body)).await;
        assert_eq!((st, v["code"].as_str()), (200, Some("pin_changed")), "{v}");
        let sign = json!({"key_id": "alice", "pin": "24681357", "nonce": "bm9uY2U"});
        let (st, v) = call("POST", &format!("{}/sign", s.base), Some(PORTAL), None, Some(sign)).await;
        assert_eq!(st, 200, "the new PIN works: {v}");
        let short = json!({"key_id": "alice", "old_pin": "24681357", "new_pin": "123"});
        let (st, v) = call("POST", &change, own, None, Some(short)).await;
        assert_eq!((st, v["code"].as_str()), (400, Some("bad_pin")), "{v}");
        // Unblock: a wrong PUK counts down the PUK's tries; the right one sets a new PIN.
        let unblock = format!("{}/assistant/pin/unblock", s.base);
        let bad = json!({"key_id": "alice", "puk": "87654321", "new_pin": "123456"});
        let (st, v) = call("POST", &unblock, own, None, Some(bad)).await;
        assert_eq!((st, v["code"].as_str(), v["attempts_left"].as_u64()), (401, Some("wrong_puk"), Some(2)), "{v}");
        let good = json!({"key_id": "alice", "puk": "12345678", "new_pin": "123456"});
        let (st, v) = call("POST", &unblock, own, None, Some(good)).await;
        assert_eq!((st, v["code"].as_str()), (200, Some("pin_unblocked")), "{v}");
        let (st, v) = call("POST", &format!("{}/assistant/keys", s.base), own, None, None).await;
        assert_eq!(st, 200);
        let k = &v["keys"][0];
        assert_eq!(
            (k["pin_retries"].as_u64(), k["certificates"][0]["subject"].as_str()),
            (Some(3), Some("CN=Li Si,O=Example")),
            "{v}"
        );
        // The page itself loads without an Origin (a browser navigating sends none).
        let page = reqwest::get(format!("{}/", s.base)).await.unwrap();
        assert_eq!(page.status(), 200);
        let csp = page.headers()["content-security-policy"].to_str().unwrap().to_string();
        assert!(csp.contains("connect-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    });
}

/// A request names a key the agent offers, or nothing happens: a `dir:` path or a reader the
/// agent does not list is not opened, not even to fail a PIN.
#[test]
fn only_keys_the_agent_lists_can_be_named() {
    rt().block_on(async {
        let s = start().await;
        let own = Some(s.base.as_str());
        for id in ["dir:/tmp/ukey-not-listed", "reader:Virtual PCD 00 00", "bob"] {
            let body = json!({"key_id": id, "pin": "000000", "nonce": "n"});
            let (st, v) = call("POST", &format!("{}/sign", s.base), Some(PORTAL), None, Some(body)).await;
            assert_eq!((st, v["code"].as_str()), (404, Some("no_key")), "{id}: {v}");
            let body = json!({"key_id": id, "puk": "00000000", "new_pin": "123456"});
            let (st, v) = call("POST", &format!("{}/assistant/pin/unblock", s.base), own, None, Some(body)).await;
            assert_eq!((st, v["code"].as_str()), (404, Some("no_key")), "{id}: {v}");
        }
    });
}

/// The assistant's change PIN and unblock spend a last try only when the user confirmed it,
/// as a login does: the PIN's last try for change PIN, the PUK's for unblock (a wrong last PUK
/// leaves a key nobody can unblock).
#[test]
fn the_assistant_spends_a_last_pin_or_puk_try_only_when_confirmed() {
    rt().block_on(async {
        let s = start().await;
        let ivan = key(&s.ca, Scenario::Pin1Left, 3);
        s.keys.keys().push(("ivan".into(), ivan.clone()));
        let own = Some(s.base.as_str());
        let change = format!("{}/assistant/pin/change", s.base);
        let body = json!({"key_id": "ivan", "old_pin": "000000", "new_pin": "24681357"});
        let (st, v) = call("POST", &change, own, None, Some(body)).await;
        assert_eq!((st, v["code"].as_str(), v["secret"].as_str()), (409, Some("last_try"), Some("pin")), "{v}");
        let mut piv = host_driver::Piv::new(ivan.clone());
        piv.select().unwrap();
        assert_eq!(piv.pin_retries().unwrap().0, Some(1), "no PIN try spent");

        let unblock = format!("{}/assistant/pin/unblock", s.base);
        let bad = json!({"key_id": "ivan", "puk": "87654321", "new_pin": "123456"});
        for left in [2, 1] {
            let (st, v) = call("POST", &unblock, own, None, Some(bad.clone())).await;
            assert_eq!((st, v["attempts_left"].as_u64()), (401, Some(left)), "{v}");
        }
        let (st, v) = call("POST", &unblock, own, None, Some(bad.clone())).await;
        assert_eq!((st, v["code"].as_str(), v["secret"].as_str()), (409, Some("last_try"), Some("puk")), "{v}");
        assert!(v["message"].as_str().unwrap().contains("最后一次机会"), "{v}");
        piv.select().unwrap();
        assert_eq!(piv.puk_retries().unwrap(), Some(1), "no PUK try spent");
        let good = json!({"key_id": "ivan", "puk": "12345678", "new_pin": "123456", "last_try": true});
        let (st, v) = call("POST", &unblock, own, None, Some(good)).await;
        assert_eq!((st, v["code"].as_str()), (200, Some("pin_unblocked")), "confirmed, the right PUK works: {v}");
        piv.select().unwrap();
        assert_eq!(piv.puk_retries().unwrap(), Some(3));
    });
}

/// A key that is slow to say its PIN count (as a key in a busy reader can be), reached on a
/// blocking thread: two requests read the count before either spends a try, unless the agent
/// gives the key to one request at a time.
#[derive(Clone)]
struct SlowCount(SharedKey);

impl proto::Transport for SlowCount {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, proto::TransportError> {
        if apdu.len() == 4 && apdu[1] == 0x20 {
            std::thread::sleep(Duration::from_millis(300));
        }
        self.0.transmit(apdu)
    }
    fn reset(&mut self) -> Result<Vec<u8>, proto::TransportError> {
        self.0.reset()
    }
    fn is_present(&mut self) -> bool {
        self.0.is_present()
    }
    fn name(&self) -> String {
        self.0.name()
    }
    fn may_block(&self) -> bool {
        true
    }
}

/// Two wrong PINs at once with two tries left: one request at a time uses a key, so the second
/// sees the last try and asks for confirmation instead of spending it (a script firing
/// requests in parallel cannot lock the key past the last-try guard).
#[test]
fn two_requests_at_once_cannot_both_spend_the_second_last_try() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let ca = ca::Ca::create(dir.path(), "CN=Test CA", 3650, &FixedClock(NOW - 100)).unwrap();
        let key = key(&ca, Scenario::Provisioned, 4);
        let mut piv = host_driver::Piv::new(key.clone());
        piv.select().unwrap();
        let wrong = piv.verify_pin(&proto::secret::Pin::new("000000")).unwrap();
        assert_eq!(wrong, host_driver::PinOutcome::WrongPin { retries_left: 2 });
        let keys = Arc::new(FixedKeys::<SlowCount>::default());
        keys.keys().push(("olga".into(), SlowCount(key.clone())));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(agent::serve(listener, keys, AgentConfig::new(vec![PORTAL.into()])));
        let sign = format!("{base}/sign");
        let body = json!({"key_id": "olga", "pin": "000000", "nonce": "n"});
        let (a, b) = tokio::join!(
            call("POST", &sign, Some(PORTAL), None, Some(body.clone())),
            call("POST", &sign, Some(PORTAL), None, Some(body.clone()))
        );
        let mut codes = [a.1["code"].as_str().unwrap().to_string(), b.1["code"].as_str().unwrap().to_string()];
        codes.sort();
        assert_eq!(codes, ["last_try", "wrong_pin"], "{a:?} {b:?}");
        piv.select().unwrap();
        assert_eq!(piv.pin_retries().unwrap().0, Some(1), "one try left, not none");
    });
}
