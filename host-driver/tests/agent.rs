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
use token_sim::scenario::{self, Scenario};
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
    vk.card_mut()
        .update_state(|st, rng| scenario::apply(st, s, Some(ca), "CN=Li Si,O=Example", &FixedClock(NOW), rng))
        .unwrap()
        .unwrap();
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
    let config = AgentConfig { allowed_origins: vec![PORTAL.into()], poll: Duration::from_millis(50) };
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

        // Lock the PIN: the agent says so instead of counting down.
        for _ in 0..3 {
            call("POST", &url, Some(PORTAL), None, Some(req("000000"))).await;
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
