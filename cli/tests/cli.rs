//! The `ukey` binary as scripts use it, judged by its exit codes, its JSON, and openssl.

mod common;

use common::{json, ok, openssl_available, openssl_dgst_verify, ukey};
use std::process::Command;

#[test]
fn pin_verify_json_and_exit_codes_through_lockout_and_unblock() {
    let home = tempfile::tempdir().unwrap();
    let key = home.path().join("k");
    let k = key.to_str().unwrap();
    ok(home.path(), &["sim", "new", k, "--scenario", "provisioned", "--seed", "7"]);

    let out = ukey(home.path(), &["pin", "verify", "--key", k, "--pin", "123456", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(json(&out)["ok"], true);

    for left in [2, 1, 0] {
        let out = ukey(home.path(), &["pin", "verify", "--key", k, "--pin", "999999", "--json"]);
        assert_eq!(out.status.code(), Some(1), "wrong PIN is exit 1");
        let v = json(&out);
        assert_eq!((v["ok"].as_bool(), v["retries_left"].as_u64()), (Some(false), Some(left)));
    }
    let out = ukey(home.path(), &["pin", "verify", "--key", k, "--pin", "123456", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json(&out)["blocked"], true);
    let human = ukey(home.path(), &["pin", "verify", "--key", k, "--pin", "123456"]);
    assert!(String::from_utf8_lossy(&human.stdout).contains("ukey pin unblock"));

    ok(home.path(), &["pin", "unblock", "--key", k, "--puk", "12345678", "--new-pin", "654321"]);
    let out = ukey(home.path(), &["pin", "verify", "--key", k, "--pin", "654321", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let retries = json(&ukey(home.path(), &["pin", "retries", "--key", k, "--json"]));
    assert_eq!(retries["retries_left"], 3);
}

#[test]
fn pin_from_file_and_environment() {
    let home = tempfile::tempdir().unwrap();
    let key = home.path().join("k");
    let k = key.to_str().unwrap();
    ok(home.path(), &["sim", "new", k]);
    let pin_file = home.path().join("pin.txt");
    std::fs::write(&pin_file, "123456\n").unwrap();
    ok(home.path(), &["pin", "verify", "--key", k, "--pin-file", pin_file.to_str().unwrap()]);
    let out = Command::new(env!("CARGO_BIN_EXE_ukey"))
        .args(["pin", "verify", "--key", k])
        .env("UKEY_PIN", "123456")
        .output()
        .unwrap();
    assert!(out.status.success());
    // No PIN anywhere and no terminal: a clear error, not a hang.
    let out = ukey(home.path(), &["pin", "verify", "--key", k]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no PIN given"));
}

#[test]
fn sign_is_verified_by_openssl_with_the_exported_certificate() {
    if !openssl_available() {
        eprintln!("openssl not installed: skipped outside CI");
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let key = home.path().join("k");
    let k = key.to_str().unwrap();
    ok(home.path(), &["sim", "new", k, "--scenario", "provisioned"]);
    let cert = home.path().join("cert.pem");
    std::fs::write(&cert, ok(home.path(), &["cert", "export", "--key", k, "--slot", "9a"])).unwrap();
    let doc = home.path().join("doc.txt");
    std::fs::write(&doc, "合同 contract #42\n").unwrap();
    let sig = home.path().join("doc.sig");
    ok(
        home.path(),
        &[
            "sign",
            "--key",
            k,
            "--slot",
            "9a",
            "--pin",
            "123456",
            "--in",
            doc.to_str().unwrap(),
            "--out",
            sig.to_str().unwrap(),
        ],
    );

    let pubkey = home.path().join("pub.pem");
    let x = Command::new("openssl")
        .args(["x509", "-in"])
        .arg(&cert)
        .args(["-pubkey", "-noout", "-out"])
        .arg(&pubkey)
        .output()
        .unwrap();
    assert!(x.status.success(), "openssl x509 reads the exported certificate: {}", String::from_utf8_lossy(&x.stderr));
    let v = openssl_dgst_verify(&pubkey, &sig, &doc);
    assert!(
        v.status.success() && String::from_utf8_lossy(&v.stdout).contains("Verified OK"),
        "{}",
        String::from_utf8_lossy(&v.stdout)
    );

    // Tamper with the document: openssl must say no.
    std::fs::write(&doc, "合同 contract #43\n").unwrap();
    let v = openssl_dgst_verify(&pubkey, &sig, &doc);
    assert!(!v.status.success());

    // The certificate chains to the test CA, says openssl too.
    let v = Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(home.path().join("ca/ca.crt.pem"))
        .arg(&cert)
        .output()
        .unwrap();
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stdout));
}

#[test]
fn generate_request_issue_import_round_trip() {
    let home = tempfile::tempdir().unwrap();
    let key = home.path().join("k");
    let k = key.to_str().unwrap();
    let p = |name: &str| home.path().join(name).to_str().unwrap().to_string();
    ok(home.path(), &["sim", "new", k]);
    ok(home.path(), &["ca", "init"]);
    let pem = ok(home.path(), &["key", "generate", "--key", k, "--slot", "9c"]);
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"));
    ok(
        home.path(),
        &[
            "cert",
            "request",
            "--key",
            k,
            "--slot",
            "9c",
            "--subject",
            "CN=Li Si,O=Example",
            "--pin",
            "123456",
            "--out",
            &p("req.pem"),
        ],
    );
    ok(home.path(), &["ca", "issue", "--csr", &p("req.pem"), "--days", "30", "--out", &p("cert.pem")]);
    ok(home.path(), &["cert", "import", "--key", k, "--slot", "9c", "--in", &p("cert.pem")]);
    let back = ok(home.path(), &["cert", "export", "--key", k, "--slot", "9c"]);
    assert_eq!(back, std::fs::read_to_string(p("cert.pem")).unwrap());
    // A certificate for another key is refused.
    let other = home.path().join("other");
    ok(home.path(), &["sim", "new", other.to_str().unwrap(), "--scenario", "provisioned"]);
    std::fs::write(p("other.pem"), ok(home.path(), &["cert", "export", "--key", other.to_str().unwrap()])).unwrap();
    let out = ukey(home.path(), &["cert", "import", "--key", k, "--slot", "9c", "--in", &p("other.pem")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("mismatched"));
    if openssl_available() {
        let v = Command::new("openssl").args(["req", "-verify", "-noout", "-in"]).arg(p("req.pem")).output().unwrap();
        assert!(v.status.success(), "openssl accepts the card-signed CSR: {}", String::from_utf8_lossy(&v.stderr));
    }
}

#[test]
fn keys_lists_every_scenario_with_the_right_state() {
    let home = tempfile::tempdir().unwrap();
    let keys = home.path().join("keys");
    for s in ["fresh", "provisioned", "expiring", "expired", "pin-1-left", "pin-locked", "puk-locked"] {
        ok(home.path(), &["sim", "new", keys.join(s).to_str().unwrap(), "--scenario", s, "--days", "5"]);
    }
    let out = ukey(home.path(), &["keys", "--json"]);
    assert!(out.status.success());
    let report = json(&out);
    let list: Vec<_> = report["keys"].as_array().unwrap().iter().filter(|k| k["source"] == "dir").cloned().collect();
    let by = |label: &str| list.iter().find(|k| k["label"] == label).unwrap().clone();
    assert_eq!(list.len(), 7);
    assert!(report["pcsc"]["available"].is_boolean(), "says whether PC/SC was there");
    assert_eq!(by("fresh")["certificates"].as_array().unwrap().len(), 0);
    assert_eq!(by("pin-1-left")["pin_retries"], 1);
    assert_eq!(by("pin-locked")["pin_retries"], 0);
    assert_eq!(by("provisioned")["pin_retries"], 3);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let not_after = |l: &str| by(l)["certificates"][0]["not_after"].as_u64().unwrap();
    assert!((not_after("expiring") as i64 - (now + 5 * 86_400) as i64).abs() < 120, "expires in 5 days");
    assert!(not_after("expired") < now);
    assert!(not_after("provisioned") > now + 360 * 86_400);
    // The human table names the same things.
    let table = ok(home.path(), &["keys"]);
    assert!(table.contains("pin-locked") && table.contains("PIN TRIES") && table.contains("expired"));
    // PUK locked: unblock fails with "locked", PIN still works.
    let puk = keys.join("puk-locked");
    let out = ukey(
        home.path(),
        &["pin", "unblock", "--key", puk.to_str().unwrap(), "--puk", "12345678", "--new-pin", "111111"],
    );
    assert_eq!(out.status.code(), Some(1));
    ok(home.path(), &["pin", "verify", "--key", puk.to_str().unwrap(), "--pin", "123456"]);
}

#[test]
fn helpful_errors() {
    let home = tempfile::tempdir().unwrap();
    let out =
        ukey(home.path(), &["pin", "verify", "--key", home.path().join("nope").to_str().unwrap(), "--pin", "123456"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ukey sim new"));
    let out = ukey(home.path(), &["sim", "new", home.path().join("x").to_str().unwrap(), "--scenario", "bogus"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("pin-1-left"), "lists the scenarios");
    let out = ukey(home.path(), &["sim", "new", home.path().join("y").to_str().unwrap(), "--pin", "12"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("6 to 8"));
    let out = ukey(home.path(), &["cert", "export", "--key", "/", "--slot", "9b"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a PIV key slot"));
    let help = ok(home.path(), &["--help"]);
    assert!(help.contains("ukey sim new") && help.contains("demo"));
}

#[test]
fn demo_runs_the_story() {
    let home = tempfile::tempdir().unwrap();
    let out = ok(home.path(), &["demo"]);
    assert!(
        out.contains("2 attempt(s) left") && out.contains("PIN locked") && out.contains("all steps passed"),
        "{out}"
    );
    for said in ["请先绑定CA账号", "绑定成功", "还有2次机会", "剩余5天", "已被吊销", "解除绑定成功"]
    {
        assert!(out.contains(said), "the demo tells the portal story too: {said}\n{out}");
    }
}

#[test]
fn flows_run_every_login_bind_unbind_outcome_and_report_them() {
    let home = tempfile::tempdir().unwrap();
    let junit = home.path().join("flows.xml");
    let out = ukey(home.path(), &["flows", "--json", "--junit", junit.to_str().unwrap()]);
    let v = json(&out);
    assert_eq!(out.status.code(), Some(0), "{v:#}");
    assert_eq!(v["failed"], 0);
    let steps = v["steps"].as_array().unwrap();
    assert!(steps.len() >= 31);
    for needle in [
        "wrong PIN",
        "one PIN try left",
        "PIN locked",
        "expiring",
        "expired",
        "revoked",
        "not bound",
        "another enterprise",
        "unbind",
        "replayed",
    ] {
        assert!(steps.iter().any(|s| s["step"].as_str().unwrap().contains(needle) && s["ok"] == true), "{needle}");
    }
    // The certificate application ends with a certificate on the blank key that logs in.
    let enrollment: Vec<&serde_json::Value> = steps.iter().filter(|s| s["flow"] == "enrollment").collect();
    assert!(enrollment.len() >= 15, "{v:#}");
    for needle in [
        "check digit",
        "another enterprise's name",
        "photo",
        "key pair generated on the key",
        "SMS code",
        "pay",
        "staff approve",
    ] {
        assert!(enrollment.iter().any(|s| s["step"].as_str().unwrap().contains(needle)), "{needle}");
    }
    let last = enrollment.last().unwrap();
    assert!(
        last["step"].as_str().unwrap().contains("logs in") && last["detail"].as_str().unwrap().contains("登录成功")
    );
    let wrong_pin = steps.iter().find(|s| s["step"].as_str().unwrap().contains("wrong PIN")).unwrap();
    assert!(wrong_pin["detail"].as_str().unwrap().contains("还有2次机会"), "{wrong_pin}");
    let x = std::fs::read_to_string(&junit).unwrap();
    assert!(x.contains(&format!("tests=\"{}\" failures=\"0\"", steps.len())), "{x}");
}

/// Every flow at the most verbose log level: PINs, passwords, session cookies and login
/// tokens appear nowhere in the log (the portal, the agent, the keys and the HTTP client all
/// log into it).
#[test]
fn flows_log_no_pin_password_cookie_or_token_even_at_trace() {
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ukey"))
        .args(["flows", "--json"])
        .env("UKEY_HOME", home.path())
        .env("RUST_LOG", "trace")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("sqlx::query") && log.contains("hyper"),
        "trace logging is on: {}",
        &log[..log.len().min(2000)]
    );
    // The flows' PIN is 123456 (quoted, as a body or a Debug print would show it; bare, it
    // could be a timestamp's microseconds), their passwords are flows-Passw0rd / flows-Review1.
    for secret in ["\"123456\"", "flows-Passw0rd", "flows-Review1", "ukey_session=", "ukey-auth", "\"signature\""] {
        if let Some(at) = log.find(secret) {
            let line = log[..at].rsplit('\n').next().unwrap_or("");
            panic!("{secret} in the log: {line}{}", &log[at..(at + 200).min(log.len())]);
        }
    }
}

/// The same flows with the portal on PostgreSQL (a fresh database on UKEY_TEST_POSTGRES).
#[test]
fn flows_pass_on_postgresql_too() {
    let Ok(admin) = std::env::var("UKEY_TEST_POSTGRES") else {
        testsupport::skip("a PostgreSQL server named by UKEY_TEST_POSTGRES");
        return;
    };
    let name = format!("ukey_flows_{}", std::process::id());
    let psql = |sql: &str| {
        let out = Command::new("psql").arg(&admin).args(["-qc", sql]).output().expect("psql runs");
        assert!(out.status.success(), "{sql}: {}", String::from_utf8_lossy(&out.stderr));
    };
    psql(&format!("DROP DATABASE IF EXISTS {name}"));
    psql(&format!("CREATE DATABASE {name}"));
    let url = format!("{}/{name}", admin.rsplit_once('/').unwrap().0);
    let home = tempfile::tempdir().unwrap();
    let out = ukey(home.path(), &["flows", "--json", "--db", &url]);
    let v = json(&out);
    psql(&format!("DROP DATABASE {name} WITH (FORCE)"));
    assert_eq!(out.status.code(), Some(0), "{v:#}");
    assert_eq!(v["failed"], 0);
}

/// `ukey bench keys`: every key is made, used and reported; and an idle key costs what it
/// holds (a few KiB), not its buffers' limits (a key with inline 48 KiB object memory cost
/// ~60 KB; 300 of those would be 18 MB).
#[test]
fn bench_keys_reports_small_idle_keys() {
    let home = tempfile::tempdir().unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&ok(home.path(), &["bench", "keys", "--count", "300", "--json"])).unwrap();
    assert_eq!(v["keys"], 300);
    for op in ["create", "mgmt_auth_and_generate", "verify", "sign"] {
        assert!(v[op]["mean_us"].as_f64().unwrap() > 0.0, "{op}: {v}");
    }
    let per_key = v["rss_idle_per_key_bytes"].as_f64().unwrap();
    assert!(per_key < 16.0 * 1024.0, "an idle key takes {per_key} bytes: {v}");
    let out = ukey(home.path(), &["bench", "keys", "--count", "0"]);
    assert_eq!(out.status.code(), Some(2), "zero keys is refused");
}

/// Output into a pipe whose reader has gone (`ukey ... | head`) ends ukey quietly, by SIGPIPE,
/// not with a panic message.
#[test]
fn a_closed_pipe_ends_ukey_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let home = tempfile::tempdir().unwrap();
    // The reader is gone before ukey writes a byte.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ukey"))
        .args(["conformance", "--list", "--json"])
        .env("UKEY_HOME", home.path())
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked") && !stderr.contains("Broken pipe"), "{stderr}");
    assert_eq!(out.status.signal(), Some(13), "ended by SIGPIPE: {:?}", out.status);
}

/// `ukey bench pkcs11`: both modules sign, and the ratio is theirs. Needs SoftHSMv2 and the
/// module. `cargo test --workspace` builds the module into target/debug/deps only (cargo
/// copies a cdylib up beside `ukey` only when it is built for its own sake), so that copy is
/// the fresh one; target/debug/ may hold a stale one from an earlier `cargo build`.
#[test]
fn bench_pkcs11_signs_through_ukeys_module_and_softhsm() {
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_ukey")).parent().unwrap();
    let module = [bin_dir.join("deps"), bin_dir.to_path_buf()]
        .iter()
        .map(|d| d.join("libukey_pkcs11.so"))
        .find(|p| p.exists())
        .unwrap_or_else(|| bin_dir.join("libukey_pkcs11.so"));
    let softhsm = std::path::Path::new("/usr/lib/softhsm/libsofthsm2.so");
    if !softhsm.exists() || !module.exists() {
        testsupport::skip(format_args!("SoftHSMv2 and {}", module.display()));
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let v: serde_json::Value = serde_json::from_str(&ok(
        home.path(),
        &["bench", "pkcs11", "--duration", "1", "--threads", "1", "--json", "--module", module.to_str().unwrap()],
    ))
    .unwrap();
    let (u, s) = (v["ukey"]["signs_per_sec"].as_f64().unwrap(), v["softhsm"]["signs_per_sec"].as_f64().unwrap());
    assert!(u > 0.0 && s > 0.0, "{v}");
    let ratio = v["ratio_ukey_to_softhsm"].as_f64().unwrap();
    assert!((ratio - u / s).abs() < 0.02, "{v}");
    assert!(v["ukey"]["login_ms"].as_f64().unwrap() > 0.0, "{v}");
}

/// `ukey bench login` with more keys than workers: every key gets its own enterprise, user and
/// binding, every login succeeds, and the report says what ran.
#[test]
fn bench_login_with_more_keys_than_workers() {
    let home = tempfile::tempdir().unwrap();
    let out = ok(home.path(), &["bench", "login", "--keys", "40", "--concurrency", "8", "--duration", "1", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (v["keys"].as_u64(), v["concurrency"].as_u64(), v["errors"].as_u64()),
        (Some(40), Some(8), Some(0)),
        "{v}"
    );
    assert!(v["logins"].as_u64().unwrap() > 0 && v["setup_s"].as_f64().unwrap() > 0.0, "{v}");
    assert!(v["rss_bytes"].as_u64().unwrap() > 0, "{v}");
    for bad in [["--keys", "10001"], ["--concurrency", "0"]] {
        let out = ukey(home.path(), &["bench", "login", bad[0], bad[1], "--duration", "1"]);
        assert_eq!(out.status.code(), Some(2), "{bad:?} is refused");
    }
}

/// `ukey portal serve --tls-cert --tls-key`: the login page over https, judged by `openssl
/// s_client` verifying the chain against the certificate; session cookies are Secure and HSTS
/// is sent; a missing key file is a clear error.
#[test]
fn portal_serves_https_that_openssl_verifies() {
    if !openssl_available() {
        testsupport::skip("openssl");
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let (cert, key) = (h.join("tls.crt"), h.join("tls.key"));
    let made = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let listen = format!("127.0.0.1:{port}");
    let log = std::fs::File::create(h.join("portal.log")).unwrap();
    let mut portal = std::process::Command::new(env!("CARGO_BIN_EXE_ukey"))
        .args(["portal", "serve", "--listen", &listen, "--tls-cert", cert.to_str().unwrap()])
        .args(["--tls-key", key.to_str().unwrap()])
        .env("UKEY_HOME", h)
        .stdout(std::process::Stdio::from(log.try_clone().unwrap()))
        .stderr(std::process::Stdio::from(log))
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while std::net::TcpStream::connect(&listen).is_err() {
        assert!(start.elapsed().as_secs() < 20, "{}", std::fs::read_to_string(h.join("portal.log")).unwrap());
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    let get = |path: &str| {
        let mut c = std::process::Command::new("openssl")
            .args(["s_client", "-connect", &listen, "-CAfile", cert.to_str().unwrap(), "-verify_return_error"])
            // -quiet reads on after our request ends, until the portal closes (Connection: close).
            .arg("-quiet")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        let req = format!("GET {path} HTTP/1.1\r\nHost: {listen}\r\nConnection: close\r\n\r\n");
        c.stdin.take().unwrap().write_all(req.as_bytes()).unwrap();
        let out = c.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (verified, page, err) = get("/");
    let _ = portal.kill();
    let _ = portal.wait();
    assert!(verified, "openssl s_client failed: {err}");
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("CA数字证书登录"), "the login page");
    assert!(page.to_ascii_lowercase().contains("strict-transport-security: max-age="), "HSTS over https: {page}");

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ukey"))
        .args(["portal", "serve", "--listen", &listen, "--tls-cert", cert.to_str().unwrap()])
        .args(["--tls-key", h.join("missing.key").to_str().unwrap()])
        .env("UKEY_HOME", h)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && said.contains("TLS private key") && said.contains("missing.key"), "{said}");
}

#[test]
fn conformance_judges_a_key_and_its_exit_status_says_whether_it_conforms() {
    let home = tempfile::tempdir().unwrap();
    let key = home.path().join("k");
    let k = key.to_str().unwrap();
    ok(home.path(), &["sim", "new", k, "--scenario", "provisioned", "--seed", "8", "--pin", "24681357"]);
    let listed: serde_json::Value =
        serde_json::from_str(&ok(home.path(), &["conformance", "--list", "--json"])).unwrap();
    let ids: Vec<&str> = listed.as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert!(ids.len() >= 80 && ids.contains(&"PIV-MGMT-003"), "{ids:?}");
    // Without the key's PIN the PIN checks cannot run: incomplete, exit 1, and they say why.
    let out = ukey(home.path(), &["conformance", "--key", k, "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    let verify2 = v["outcomes"].as_array().unwrap().iter().find(|o| o["id"] == "PIV-VERIFY-003").unwrap();
    assert_eq!(verify2["verdict"]["result"], "skipped", "{verify2}");
    assert!(verify2["verdict"]["detail"].as_str().unwrap().contains("--pin"));
    // A PIN not given is never sent (the factory one is not guessed): no try spent.
    let retries = json(&ukey(home.path(), &["pin", "retries", "--key", k, "--json"]));
    assert_eq!(retries["retries_left"], 3);
    // A wrong one given costs one try, found out once, not one per check; the report says so.
    let out = ukey(home.path(), &["conformance", "--key", k, "--pin", "11112222", "--only", "verify", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert!(v["secrets"].to_string().contains("not this key's"), "{}", v["secrets"]);
    let retries = json(&ukey(home.path(), &["pin", "retries", "--key", k, "--json"]));
    assert_eq!(retries["retries_left"], 2);
    // With them: every must-check that applies passes, and the key's answers are in the report.
    let out = ukey(home.path(), &["conformance", "--key", k, "--pin", "24681357", "--puk", "12345678", "--json"]);
    let v = json(&out);
    assert_eq!(out.status.code(), Some(0), "{v:#}");
    assert_eq!(v["summary"]["conforms"], true);
    assert_eq!(v["summary"]["checks"].as_u64(), Some(ids.len() as u64));
    assert!(v["outcomes"][0]["status_words"].as_array().is_some_and(|s| !s.is_empty()));
    // The PIN's counter is where it was: the suite put back what it spent.
    let retries = json(&ukey(home.path(), &["pin", "retries", "--key", k, "--json"]));
    assert_eq!(retries["retries_left"], 3);
    // A check name that matches nothing is an error, not an empty run.
    let out = ukey(home.path(), &["conformance", "--key", k, "--only", "PIV-NOPE-*"]);
    assert_ne!(out.status.code(), Some(0), "refused");
    assert!(String::from_utf8_lossy(&out.stderr).contains("PIV-NOPE-*"));
}

#[test]
fn destructive_conformance_needs_the_serial_typed_back_and_puts_the_pin_back() {
    let home = tempfile::tempdir().unwrap();
    let key = home.path().join("k");
    let k = key.to_str().unwrap();
    ok(home.path(), &["sim", "new", k, "--scenario", "provisioned", "--seed", "9", "--serial", "12345678"]);
    let out = ukey(home.path(), &["conformance", "--key", k, "--destructive"]);
    assert_ne!(out.status.code(), Some(0));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("--confirm") && said.contains("12345678"), "{said}");
    let out = ukey(home.path(), &["conformance", "--key", k, "--destructive", "--confirm", "87654321"]);
    assert_ne!(out.status.code(), Some(0), "the wrong serial is refused");
    let out = ukey(
        home.path(),
        &[
            "conformance",
            "--key",
            k,
            "--destructive",
            "--confirm",
            "12345678",
            "--pin",
            "123456",
            "--puk",
            "12345678",
            "--json",
        ],
    );
    let v = json(&out);
    assert_eq!(out.status.code(), Some(0), "{v:#}");
    let lockout = v["outcomes"].as_array().unwrap().iter().find(|o| o["id"] == "PIV-VERIFY-009").unwrap();
    assert_eq!(lockout["verdict"]["result"], "pass", "{lockout}");
    // Blocked and unblocked: the PIN is the one it was, with all its tries.
    let out = ukey(home.path(), &["pin", "verify", "--key", k, "--pin", "123456", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let retries = json(&ukey(home.path(), &["pin", "retries", "--key", k, "--json"]));
    assert_eq!(retries["retries_left"], 3);
}

#[test]
fn a_defective_sim_key_does_not_conform() {
    let home = tempfile::tempdir().unwrap();
    let listed: serde_json::Value = serde_json::from_str(&ok(home.path(), &["sim", "defects", "--json"])).unwrap();
    assert!(listed.as_array().unwrap().len() >= 12);
    let out = ukey(home.path(), &["conformance", "--sim", "--json"]);
    assert_eq!(out.status.code(), Some(0), "the clean --sim key conforms");
    let out = ukey(home.path(), &["conformance", "--sim", "--defect", "chaining-broken", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    let failed: Vec<&str> = v["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["verdict"]["result"] == "fail")
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["PIV-PUT-002"], "{v:#}");
    let out = ukey(home.path(), &["conformance", "--sim", "--defect", "no-such-defect"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ukey sim defects"));
}

#[test]
fn key_commands_reach_a_virtual_key_as_a_usb_ccid_token() {
    let home = tempfile::tempdir().unwrap();
    let key = home.path().join("k");
    let k = key.to_str().unwrap();
    ok(home.path(), &["sim", "new", k, "--scenario", "provisioned", "--seed", "9"]);
    // A wrong PIN through CCID is counted on the key itself.
    let out = ukey(home.path(), &["pin", "verify", "--ccid", k, "--pin", "000000"]);
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("2 attempt(s) left"), "{said}");
    let retries = json(&ukey(home.path(), &["pin", "retries", "--key", k, "--json"]));
    assert_eq!(retries["retries_left"], 2);
    ok(home.path(), &["pin", "verify", "--ccid", k, "--pin", "123456"]);
    // The whole suite through the software USB bus.
    let out = ukey(home.path(), &["conformance", "--ccid", k, "--pin", "123456", "--puk", "12345678", "--json"]);
    let v = json(&out);
    assert_eq!(out.status.code(), Some(0), "{v:#}");
    assert!(v["key"]["name"].as_str().unwrap().contains("CCID"), "{}", v["key"]["name"]);
    let out = ukey(home.path(), &["pin", "verify", "--ccid", k, "--key", k, "--pin", "123456"]);
    assert!(!out.status.success(), "one key at a time");
}

#[test]
fn sim_serve_usbip_exports_the_keys_as_usb_tokens() {
    use std::io::BufRead;
    let home = tempfile::tempdir().unwrap();
    let (a, b) = (home.path().join("a"), home.path().join("b"));
    ok(home.path(), &["sim", "new", a.to_str().unwrap(), "--scenario", "provisioned", "--seed", "10"]);
    ok(home.path(), &["sim", "new", b.to_str().unwrap(), "--seed", "11"]);
    let mut serve = Command::new(env!("CARGO_BIN_EXE_ukey"))
        .env("UKEY_HOME", home.path())
        .args(["sim", "serve", "--usbip", "127.0.0.1:0", a.to_str().unwrap(), b.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut lines = std::io::BufReader::new(serve.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let _serve = Kill(serve);
    let addr = first.split("on usbip ").nth(1).and_then(|r| r.split(' ').next()).unwrap().to_string();
    // Debian's usbip lists both; under CI it must be there.
    if std::path::Path::new("/usr/sbin/usbip").exists() {
        let port = addr.rsplit(':').next().unwrap();
        let out =
            Command::new("/usr/sbin/usbip").args(["--tcp-port", port, "list", "-r", "127.0.0.1"]).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("1-1: ") && text.contains("1-2: ") && text.contains("(1209:0001)"), "{text}");
    } else {
        assert!(std::env::var_os("CI").is_none(), "under CI the usbip package is needed");
    }
    // The first key, imported over USB/IP and driven through CCID, verifies its PIN.
    let link = host_driver::usbip::UsbipLink::import(&addr, "1-1").unwrap();
    let mut piv = host_driver::Piv::new(host_driver::ccid::CcidTransport::open(link).unwrap());
    piv.select().unwrap();
    assert_eq!(piv.verify_pin(&"000000".into()).unwrap(), host_driver::PinOutcome::WrongPin { retries_left: 2 });
    assert_eq!(piv.verify_pin(&"123456".into()).unwrap(), host_driver::PinOutcome::Ok);
    assert!(ok(home.path(), &["sim", "status", a.to_str().unwrap()]).contains("attached as 1-1"));
    // The second key, attached at the same time as the first, is a device of its own.
    let other = host_driver::usbip::UsbipLink::import(&addr, "1-2").unwrap();
    let mut second = host_driver::Piv::new(host_driver::ccid::CcidTransport::open(other).unwrap());
    second.select().unwrap();
    assert_eq!(second.pin_status().unwrap(), host_driver::PinStatus::NotVerified { retries_left: 3 });
    assert_eq!(piv.pin_status().unwrap(), host_driver::PinStatus::Verified);
    // Pulled out: a USB disconnect for the importer, and gone from the list.
    assert!(ok(home.path(), &["sim", "remove", a.to_str().unwrap()]).contains("removed"));
    assert!(piv.pin_status().is_err(), "the attached key is gone");
    assert!(host_driver::usbip::UsbipLink::import(&addr, "1-1").is_err(), "not importable while out");
    if std::path::Path::new("/usr/sbin/usbip").exists() {
        let port = addr.rsplit(':').next().unwrap();
        let out =
            Command::new("/usr/sbin/usbip").args(["--tcp-port", port, "list", "-r", "127.0.0.1"]).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!text.contains("1-1: ") && text.contains("1-2: "), "{text}");
    }
    // Plugged back in: exported again, and the PIN's count is the key's own.
    assert!(ok(home.path(), &["sim", "insert", a.to_str().unwrap()]).contains("exported as 1-1"));
    let link = host_driver::usbip::UsbipLink::import(&addr, "1-1").unwrap();
    let mut piv = host_driver::Piv::new(host_driver::ccid::CcidTransport::open(link).unwrap());
    piv.select().unwrap();
    assert_eq!(piv.pin_status().unwrap(), host_driver::PinStatus::NotVerified { retries_left: 3 });
}

#[test]
fn bench_transports_measures_every_way_to_the_key() {
    let home = tempfile::tempdir().unwrap();
    let out = ukey(home.path(), &["bench", "transports", "--rounds", "10", "--json"]);
    let v = json(&out);
    assert!(out.status.success(), "{v:#}");
    let names: Vec<&str> =
        v["transports"].as_array().unwrap().iter().map(|t| t["transport"].as_str().unwrap()).collect();
    assert!(names.len() >= 3, "{names:?}");
    assert_eq!(&names[..3], ["in-process", "CCID, software USB bus", "CCID over USB/IP (loopback)"]);
    for t in v["transports"].as_array().unwrap() {
        assert!(t["sign"]["p50_us"].as_f64().unwrap() > 0.0 && t["apdu"]["p50_us"].as_f64().unwrap() > 0.0, "{t}");
    }
    // Every transport is either measured or said to be skipped.
    assert_eq!(names.len() + v["skipped"].as_array().unwrap().len(), 4, "{v:#}");
}

/// The system family is a client of any portal seeded with the demo enterprise: what it
/// expects is what `portal::seed` makes (conformance does not depend on the portal crate).
#[test]
fn the_system_flows_expect_the_demo_seeds_enterprise() {
    assert_eq!(conformance::system::CREDIT_CODE, portal::seed::CREDIT_CODE);
    assert_eq!(conformance::system::OTHER_CREDIT_CODE, portal::seed::OTHER_CREDIT_CODE);
}
