//! A portal on loopback HTTP with a settable clock, a browser with cookies and CSRF, software
//! keys with certificates from the portal's CA, and virtual USB-Keys from a test factory whose
//! key pairs the portal accepts for certificate applications.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use conformance::system::api_client::ApiClient;
use p256::ecdsa::signature::hazmat::PrehashSigner;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::EncodePublicKey;
use portal::config::Config;
use portal::password::{self, Cost};
use portal::store::Store;
use portal::token;
use portal::{Portal, State};
use proto::piv::{PinPolicy, Slot};
use proto::Clock;
use serde_json::{json, Value};

pub const T0: u64 = 1_790_000_000;
pub const DAY: u64 = 86_400;
pub const PASSWORD: &str = "s3cret-pass";
pub const STAFF_PASSWORD: &str = "review-pass";
/// The test enterprise's unified social credit code (what its keys' certificates name).
pub const CREDIT_CODE: &str = portal::seed::CREDIT_CODE;
/// Another enterprise's (valid check character too).
pub const OTHER_CREDIT_CODE: &str = portal::seed::OTHER_CREDIT_CODE;

/// The handler's ID number in applications (valid check digit), and another person's.
pub const HOLDER_ID: &str = "11010519491231002X";
pub const OTHER_HOLDER_ID: &str = "110105198001010016";

pub struct TestClock(AtomicU64);
impl Clock for TestClock {
    fn now_unix(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

pub struct World {
    pub _dir: tempfile::TempDir,
    pub base: String,
    pub origin: String,
    pub clock: Arc<TestClock>,
    pub ca: Arc<ca::Ca>,
    /// The manufacturer CA the portal trusts for attestations.
    pub factory: Arc<ca::Ca>,
    pub state: State,
    pub accounts: Vec<String>,
}

impl World {
    pub async fn start(db: &str) -> World {
        World::start_with(db, |_| {}).await
    }

    /// A portal whose configuration `tune` adjusts (after the tests' defaults).
    pub async fn start_with(db: &str, tune: impl FnOnce(&mut Config)) -> World {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(db).await.unwrap();
        let clock = Arc::new(TestClock(AtomicU64::new(T0)));
        let ca =
            ca::Ca::create(&dir.path().join("ca"), "CN=Portal CA", 3650, &proto::clock::FixedClock(T0 - 100)).unwrap();
        let factory = Arc::new(
            ca::Ca::create(
                &dir.path().join("factory"),
                "CN=Test Factory,O=ukey",
                36_500,
                &proto::clock::FixedClock(T0 - 100),
            )
            .unwrap(),
        );
        let seeded =
            portal::seed::seed(&store, "s3cret-pass", Some(STAFF_PASSWORD), Cost::FAST, T0 as i64).await.unwrap();
        let (a1, a2) = (seeded.accounts[0].clone(), seeded.accounts[1].clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let mut config = Config::new(&base);
        config.password_cost = Cost::FAST;
        config.sandbox = true;
        config.attestation_roots.add_der(&factory.certificate_der()).unwrap();
        tune(&mut config);
        let ca = Arc::new(ca.with_crl_url(config.crl_url()));
        let state = Portal::new(store, ca.clone(), clock.clone(), config);
        tokio::spawn(portal::serve(listener, state.clone()));
        World { _dir: dir, origin: base.clone(), base, clock, ca, factory, state, accounts: vec![a1.id, a2.id] }
    }

    /// A second portal instance on the same database, CA, clock and origin (as behind a load
    /// balancer); answers its base URL.
    pub async fn another_instance(&self, db: &str) -> String {
        let store = Store::open(db).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = Portal::new(store, self.ca.clone(), self.clock.clone(), self.state.config.clone());
        tokio::spawn(portal::serve(listener, state));
        base
    }

    pub fn advance(&self, secs: u64) {
        self.clock.0.fetch_add(secs, Ordering::SeqCst);
    }

    /// A software key with a certificate from the portal's CA for the test enterprise, valid
    /// `days` from now.
    pub fn key(&self, days: u64) -> Key {
        self.key_named(&format!("CN=Zhang San,organizationIdentifier={CREDIT_CODE},O=示例科技有限公司"), days)
    }

    /// A software key whose certificate (from the portal's CA) has `subject`.
    pub fn key_named(&self, subject: &str, days: u64) -> Key {
        let sk = SigningKey::random(&mut rand::rngs::OsRng);
        let spki = sk.verifying_key().to_public_key_der().unwrap();
        let now = self.clock.now_unix();
        let cert =
            self.ca.issue(&ca::parse_name(subject).unwrap(), spki.as_bytes(), now - 60, now + days * DAY).unwrap();
        Key { sk: sk.into(), cert }
    }

    /// A virtual USB-Key made by the portal's trusted factory.
    pub fn usb_key(&self) -> UsbKey {
        UsbKey::made_by(Some(self.factory.clone()))
    }

    pub async fn browser(&self, lang: &str) -> Browser {
        self.browser_from(lang, "127.0.0.1").await
    }

    /// A browser whose connections come from `addr` (any 127.x.y.z works on loopback): another
    /// client address, as the portal counts them.
    pub async fn browser_from(&self, lang: &str, addr: &str) -> Browser {
        let http =
            reqwest::Client::builder().cookie_store(true).local_address(Some(addr.parse().unwrap())).build().unwrap();
        let b = Browser(ApiClient::open(http, &self.base, lang).await.unwrap());
        assert!(!b.csrf.is_empty(), "a new session has a CSRF token");
        b
    }

    pub async fn set_password(&self, user_id: &str, password: &str, cost: Cost) {
        self.state.store.set_password_hash(user_id, &password::hash(password, cost)).await.unwrap();
    }

    /// Another member of staff of the test enterprise.
    pub async fn add_staff(&self, username: &str, pass: &str) {
        let st = &self.state.store;
        let e = st.user_by_name("zhangsan").await.unwrap().unwrap().enterprise_id;
        let u = st.create_user(&e, username, username, &password::hash(pass, Cost::FAST), T0 as i64).await.unwrap();
        st.set_role(&u.id, "staff").await.unwrap();
    }

    pub fn clock_now(&self) -> i64 {
        self.clock.now_unix() as i64
    }

    /// An application by `user` taken through every step to staff review (software key,
    /// sandbox SMS and payment); answers its id.
    pub async fn application_under_review(&self, user: &str, pass: &str) -> String {
        self.application_under_review_of(user, pass, HOLDER_ID).await
    }

    /// As [`World::application_under_review`], for the holder with ID number `id_number`.
    pub async fn application_under_review_of(&self, user: &str, pass: &str, id_number: &str) -> String {
        let id = self.application_at_sms_stage_of(user, pass, id_number).await;
        let mut b = self.browser("zh-CN").await;
        let (s, v) = b.password_login(user, pass).await;
        assert_eq!(s, 200, "{v}");
        let (_, v) = b.get("/api/sandbox/outbox?to=13800138000").await;
        let body = v["messages"][0]["body"].as_str().unwrap().to_string();
        let at = body.find("验证码").unwrap() + "验证码".len();
        let code: String = body[at..].chars().take(6).collect();
        let (s, v) = b.post(&format!("/api/applications/{id}/sms/verify"), json!({"code": code})).await;
        assert_eq!(s, 200, "{v}");
        let (s, v) = b.post(&format!("/api/applications/{id}/pay"), json!({"method": "alipay"})).await;
        assert_eq!(s, 200, "{v}");
        let (s, v) = b.post_raw(v["sandbox_pay"].as_str().unwrap(), vec![], &[]).await;
        assert_eq!(s, 200, "{v}");
        id
    }

    /// An application by `user` taken to the SMS stage (one code sent); answers its id.
    pub async fn application_at_sms_stage(&self, user: &str, pass: &str) -> String {
        self.application_at_sms_stage_of(user, pass, HOLDER_ID).await
    }

    async fn application_at_sms_stage_of(&self, user: &str, pass: &str, id_number: &str) -> String {
        let mut b = self.browser("zh-CN").await;
        let (s, v) = b.password_login(user, pass).await;
        assert_eq!(s, 200, "{v}");
        let form = json!({
            "handler_name": "张三", "id_number": id_number,
            "mobile": "13800138000", "email": "zhangsan@example.com",
        });
        let (s, v) = b.post("/api/applications", form).await;
        assert_eq!(s, 200, "{v}");
        let id = v["application"]["id"].as_str().unwrap().to_string();
        assert_eq!(b.post(&format!("/api/applications/{id}/confirm"), json!({})).await.0, 200);
        let jpeg = portal::photo::sample(portal::photo::PhotoType::Jpeg, 640, 400, 7);
        for side in ["front", "back"] {
            let (s, v) =
                b.put_bytes(&format!("/api/applications/{id}/photos/{side}"), "image/jpeg", jpeg.clone()).await;
            assert_eq!(s, 200, "{v}");
        }
        let pair = self.usb_key().key_pair(PinPolicy::Once);
        let (s, v) = b.post(&format!("/api/applications/{id}/submit"), pair.submission()).await;
        assert_eq!(s, 200, "{v}");
        id
    }

    pub async fn audit_has(&self, action: &str, outcome: &str, detail: &str) -> bool {
        self.state
            .store
            .audit_tail(200)
            .await
            .unwrap()
            .iter()
            .any(|r| r.action == action && r.outcome == outcome && r.detail.contains(detail))
    }
}

/// What signs a key's login tokens: a software key, or the 9A key of a virtual USB-Key.
pub enum Signer {
    Software(SigningKey),
    Card(std::sync::Mutex<UsbKey>),
}

impl From<SigningKey> for Signer {
    fn from(sk: SigningKey) -> Signer {
        Signer::Software(sk)
    }
}

pub struct Key {
    pub sk: Signer,
    pub cert: Vec<u8>,
}

impl Key {
    pub fn token(&self, origin: &str, nonce: &str) -> Value {
        let digest = token::signed_digest(origin, nonce.as_bytes());
        let raw = match &self.sk {
            Signer::Software(sk) => {
                let sig: Signature = sk.sign_prehash(&digest).unwrap();
                sig.to_bytes().to_vec()
            }
            Signer::Card(k) => k.lock().unwrap().sign(&digest),
        };
        serde_json::to_value(token::make(&self.cert, &raw)).unwrap()
    }
    pub fn fingerprint(&self) -> String {
        token::fingerprint(&self.cert)
    }
}

/// A virtual USB-Key in memory, driven through the host driver as the agent drives one.
pub struct UsbKey {
    pub piv: host_driver::Piv<token_sim::VirtualKey>,
}

/// What the agent's key-pair step returns: the CSR and the key's attestation of its key pair.
pub struct KeyPair {
    pub csr: Vec<u8>,
    pub attestation: Vec<u8>,
    pub f9: Vec<u8>,
}

impl KeyPair {
    /// The application submit's body.
    pub fn submission(&self) -> Value {
        use base64::Engine;
        let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
        json!({"csr": b64(&self.csr), "attestation": b64(&self.attestation), "attestation_f9": b64(&self.f9)})
    }
}

impl UsbKey {
    /// A key whose F9 certificate `factory` issued (`None`: self-signed, as a key of no make).
    pub fn made_by(factory: Option<Arc<ca::Ca>>) -> UsbKey {
        let spec = token_sim::KeySpec { factory, ..Default::default() };
        let key = token_sim::VirtualKey::in_memory(&spec, &proto::clock::FixedClock(T0)).unwrap();
        let mut piv = host_driver::Piv::new(key);
        piv.select().unwrap();
        UsbKey { piv }
    }

    /// A key pair generated in 9A with `pin_policy`, its CSR, and the card's attestation.
    pub fn key_pair(&mut self, pin_policy: PinPolicy) -> KeyPair {
        self.piv.authenticate_auto(&host_driver::MgmtKey::default()).unwrap();
        let public = self.piv.generate(Slot::Authentication, Some(pin_policy), None).unwrap();
        self.piv.verify_pin(&proto::secret::Pin::new("123456")).unwrap();
        let csr = host_driver::csr::certificate_request(&mut self.piv, Slot::Authentication, &public, "CN=x").unwrap();
        let attestation = self.piv.attest(Slot::Authentication).unwrap();
        let f9 = self.piv.read_certificate(Slot::Attestation).unwrap().unwrap();
        KeyPair { csr, attestation, f9 }
    }

    /// Sign a digest with 9A (PIN first); raw r||s.
    pub fn sign(&mut self, digest: &[u8]) -> Vec<u8> {
        self.piv.verify_pin(&proto::secret::Pin::new("123456")).unwrap();
        self.piv.sign_digest(Slot::Authentication, digest).unwrap().raw.to_vec()
    }

    /// This key as a login key with `cert`.
    pub fn with_certificate(self, cert: Vec<u8>) -> Key {
        Key { sk: Signer::Card(std::sync::Mutex::new(self)), cert }
    }
}

/// A browser: the portal's API client, its answers unwrapped for tests, and key calls with
/// the test keys.
pub struct Browser(pub ApiClient);

impl std::ops::Deref for Browser {
    type Target = ApiClient;
    fn deref(&self) -> &ApiClient {
        &self.0
    }
}

impl std::ops::DerefMut for Browser {
    fn deref_mut(&mut self) -> &mut ApiClient {
        &mut self.0
    }
}

impl Browser {
    /// PUT raw bytes (an upload) with its Content-Type.
    pub async fn put_bytes(&mut self, path: &str, content_type: &str, bytes: Vec<u8>) -> (u16, Value) {
        self.0.put_bytes(path, content_type, bytes).await.unwrap()
    }
    /// POST raw bytes with extra headers and no session (a payment provider's callback).
    pub async fn post_raw(&self, path: &str, body: Vec<u8>, headers: &[(&str, &str)]) -> (u16, Value) {
        self.0.post_raw(path, body, headers).await.unwrap()
    }
    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.0.get(path).await.unwrap()
    }
    pub async fn post(&mut self, path: &str, body: Value) -> (u16, Value) {
        self.0.post(path, body).await.unwrap()
    }
    /// The whole response to a POST (headers too).
    pub async fn post_response(&self, path: &str, body: Value) -> reqwest::Response {
        self.0.post_response(path, body).await.unwrap()
    }
    pub async fn password_login(&mut self, user: &str, pass: &str) -> (u16, Value) {
        self.post("/api/login/password", json!({"username": user, "password": pass})).await
    }
    pub async fn challenge(&mut self) -> String {
        let (s, v) = self.0.challenge().await.unwrap();
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["origin"].as_str().unwrap(), self.base);
        v["nonce"].as_str().unwrap().into()
    }
    pub async fn key_login(&mut self, key: &Key, origin: &str, account: Option<&str>) -> (u16, Value) {
        let nonce = self.challenge().await;
        self.post("/api/login/key", json!({"nonce": nonce, "token": key.token(origin, &nonce), "account_id": account}))
            .await
    }
    pub async fn bind(&mut self, key: &Key, origin: &str, accounts: &[String]) -> (u16, Value) {
        let nonce = self.challenge().await;
        self.post("/api/bind", json!({"account_ids": accounts, "nonce": nonce, "token": key.token(origin, &nonce)}))
            .await
    }
}
