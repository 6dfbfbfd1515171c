//! Another user of the machine gets nothing from ukey's local services. A served key over
//! USB/IP and the agent run in this process; the same test binary, started again as `nobody`
//! (setpriv), plays the other user: it imports the key and tries to wipe it (three wrong PINs,
//! three wrong PUKs, Yubico RESET), and calls the agent with forged Origin and Host headers.
//! Both are refused before anything reaches the key, whose PIN, PUK and certificate stay as
//! they were; this user's own programs are still served. Needs root (to become nobody): under
//! CI=true it must have it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use host_driver::agent::{self, AgentConfig, FixedKeys};
use host_driver::ccid::CcidTransport;
use host_driver::usbip::UsbipLink;
use host_driver::Piv;
use proto::clock::FixedClock;
use proto::piv::Slot;
use proto::secret::{Pin, Puk};
use token_sim::frontends::usbip::server::{self, KeyExports};
use token_sim::scenario::Scenario;
use token_sim::{KeySpec, SharedKey, VirtualKey};

const NOW: u64 = 1_790_000_000;
const PORTAL: &str = "http://127.0.0.1:8080";
/// Set for the child: what it should attack.
const TARGET: &str = "UKEY_OTHER_USER_TARGET";
const NOBODY: u32 = 65534;

fn provisioned(dir: &std::path::Path) -> SharedKey {
    let ca = ca::Ca::create(dir, "CN=Test CA", 3650, &FixedClock(NOW - 100)).unwrap();
    let mut vk = VirtualKey::in_memory(&KeySpec { seed: Some(7), ..KeySpec::default() }, &FixedClock(NOW)).unwrap();
    vk.provision(Scenario::Provisioned, Some(&ca), "CN=Li Si,O=Example", &FixedClock(NOW)).unwrap();
    SharedKey::new(vk)
}

/// PIN tries, PUK tries, and whether 9A holds a certificate.
fn state(key: &SharedKey) -> (Option<u8>, Option<u8>, bool) {
    let mut piv = Piv::new(key.clone());
    piv.select().unwrap();
    let pin = piv.pin_retries().unwrap().0;
    let puk = piv.puk_retries().unwrap();
    let cert = piv.read_certificate(Slot::Authentication).unwrap().is_some();
    (pin, puk, cert)
}

/// This test binary's `test`, to run as nobody with `target` to attack (a copy where nobody
/// can run it: the build directory may be closed to others). `None` (skipped) when this
/// process cannot change user.
fn as_nobody_command(test: &str, target: &str) -> Option<(Command, tempfile::TempDir)> {
    if !is_root() {
        testsupport::skip("root, to become another user");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let exe: PathBuf = dir.path().join("other-user");
    std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cmd = Command::new("setpriv");
    cmd.args([&format!("--reuid={NOBODY}"), &format!("--regid={NOBODY}"), "--clear-groups", "--"])
        .arg(&exe)
        .args(["--exact", test, "--ignored", "--nocapture", "--test-threads=1"])
        .env(TARGET, target)
        .env("HOME", "/");
    Some((cmd, dir))
}

/// Run `test` as nobody to its end: its stdout and stderr.
fn as_nobody(test: &str, target: &str) -> Option<String> {
    let (mut cmd, _dir) = as_nobody_command(test, target)?;
    let out = cmd.output().expect("setpriv (util-linux) runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the child as nobody failed:\n{text}");
    Some(text)
}

fn is_root() -> bool {
    localpeer::own_uid() == 0
}

#[test]
fn another_user_cannot_import_a_served_key_or_wipe_it() {
    let dir = tempfile::tempdir().unwrap();
    let key = provisioned(dir.path());
    let before = state(&key);
    assert_eq!(before, (Some(3), Some(3), true));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let exports = Arc::new(KeyExports::new(vec![key.clone()]));
    std::thread::spawn(move || server::serve(listener, exports, server::Policy::default()));

    let Some(out) = as_nobody("child_wipes_the_usbip_key", &addr) else { return };
    assert!(out.contains("child: import refused"), "the other user's import must fail:\n{out}");
    assert_eq!(state(&key), before, "PIN, PUK and certificate untouched:\n{out}");

    // This user is still served.
    let link = UsbipLink::import(&addr, "1-1").unwrap();
    let mut piv = Piv::new(CcidTransport::open(link).unwrap());
    piv.select().unwrap();
    assert!(matches!(piv.verify_pin(&Pin::new("123456")).unwrap(), host_driver::PinOutcome::Ok));
}

/// The other user's side: import, then the wipe sequence, each step reported.
#[test]
#[ignore = "run as nobody by another_user_cannot_import_a_served_key_or_wipe_it"]
fn child_wipes_the_usbip_key() {
    let Ok(addr) = std::env::var(TARGET) else { return };
    let link = match UsbipLink::import(&addr, "1-1") {
        Ok(l) => l,
        Err(e) => {
            println!("child: import refused: {e}");
            return;
        }
    };
    println!("child: imported");
    let mut piv = Piv::new(CcidTransport::open(link).unwrap());
    piv.select().unwrap();
    for _ in 0..3 {
        println!("child: verify {:?}", piv.verify_pin(&Pin::new("000000")));
    }
    for _ in 0..3 {
        println!("child: unblock {:?}", piv.unblock_pin(&Puk::new("00000000"), &Pin::new("654321")));
    }
    println!("child: reset {:?}", piv.reset());
}

#[test]
fn another_user_gets_403_from_the_agent_whatever_headers_it_forges() {
    let dir = tempfile::tempdir().unwrap();
    let key = provisioned(dir.path());
    let before = state(&key);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let base = rt.block_on(async {
        let keys = Arc::new(FixedKeys::<SharedKey>::default());
        keys.keys().push(("alice".into(), key.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = listener.local_addr().unwrap().to_string();
        let config =
            AgentConfig { own_origin: Some(format!("http://{base}")), ..AgentConfig::new(vec![PORTAL.into()]) };
        tokio::spawn(agent::serve(listener, keys, config));
        base
    });
    // This user, with the same requests, is answered.
    let (status, body) = http(&base, "GET", "/keys", Some(PORTAL), "");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Li Si"), "{body}");

    let Some(out) = as_nobody("child_calls_the_agent", &base) else { return };
    let said: Vec<&str> = out.lines().filter_map(|l| l.find("child: ").map(|i| &l[i..])).collect();
    for line in &said {
        assert!(line.ends_with(" 403 other_user"), "every call refused as another user's: {line}\n{out}");
    }
    assert_eq!(said.len(), 6, "{out}");
    assert_eq!(state(&key), before, "nothing reached the key:\n{out}");
}

/// One HTTP/1.1 request with the given Origin (and a loopback Host): status and body.
fn http(base: &str, method: &str, path: &str, origin: Option<&str>, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(base).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let origin = origin.map(|o| format!("Origin: {o}\r\n")).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {base}\r\n{origin}Content-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    let status = resp.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = resp.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

/// The other user's side: the agent's API with an allowed Origin and the agent's own.
#[test]
#[ignore = "run as nobody by another_user_gets_403_from_the_agent_whatever_headers_it_forges"]
fn child_calls_the_agent() {
    let Ok(base) = std::env::var(TARGET) else { return };
    let own = format!("http://{base}");
    let wrong = r#"{"key_id":"alice","pin":"000000","nonce":"n","last_try":true}"#;
    let puk = r#"{"key_id":"alice","puk":"00000000","new_pin":"654321","last_try":true}"#;
    let calls: [(&str, &str, &str, &str); 6] = [
        ("GET", "/keys", PORTAL, ""),
        ("POST", "/sign", PORTAL, wrong),
        ("POST", "/sign", PORTAL, wrong),
        ("POST", "/assistant/keys", &own, ""),
        ("POST", "/assistant/pin/unblock", &own, puk),
        ("POST", "/enroll/keypair", PORTAL, r#"{"key_id":"alice","pin":"000000","replace":true}"#),
    ];
    for (method, path, origin, body) in calls {
        let (status, answer) = http(&base, method, path, Some(origin), body);
        let code = serde_json::from_str::<serde_json::Value>(&answer)
            .ok()
            .and_then(|v| v["code"].as_str().map(str::to_string))
            .unwrap_or_default();
        println!("child: {method} {path} {status} {code}");
    }
}

/// `sudo usbip attach` imports for the kernel as root: a server run by another user (nobody
/// here) admits root too, and the key answers it.
#[test]
fn a_server_admits_root_for_the_kernels_import() {
    let Some((mut cmd, _dir)) = as_nobody_command("child_serves_a_key", "serve") else { return };
    let mut child = cmd.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).spawn().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    let addr = loop {
        let line = lines.next().expect("the child says where it serves").unwrap();
        if let Some(a) = line.split("child: serving on ").nth(1) {
            break a.trim().to_string();
        }
    };
    let link = UsbipLink::import(&addr, "1-1");
    let verified = link.map(|l| {
        let mut piv = Piv::new(CcidTransport::open(l).unwrap());
        piv.select().unwrap();
        piv.verify_pin(&Pin::new("123456")).unwrap()
    });
    drop(child.stdin.take());
    let _ = child.wait();
    assert!(matches!(verified, Ok(host_driver::PinOutcome::Ok)), "root's import: {verified:?}");
}

/// The other user's side: serve a key until stdin closes.
#[test]
#[ignore = "run as nobody by a_server_admits_root_for_the_kernels_import"]
fn child_serves_a_key() {
    if std::env::var(TARGET).as_deref() != Ok("serve") {
        return;
    }
    let key = SharedKey::new(VirtualKey::in_memory(&KeySpec::default(), &FixedClock(NOW)).unwrap());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    println!("child: serving on {}", listener.local_addr().unwrap());
    let exports = Arc::new(KeyExports::new(vec![key]));
    std::thread::spawn(move || server::serve(listener, exports, server::Policy::default()));
    let mut sink = String::new();
    let _ = std::io::stdin().read_to_string(&mut sink);
}
