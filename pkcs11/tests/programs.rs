//! The module judged by the programs people load it into, unchanged: GnuTLS's p11tool, NSS
//! (modutil, certutil), ssh (ssh-keygen -D; a login to an sshd started here, through the
//! module and through ssh-agent), OpenSSL's pkcs11 engine, and p11-kit's module registry.
//! Each runs twice: on a directory key the module opens itself, and on the same kind of key
//! served in a vpcd reader, which the module reaches through pcscd. Under CI=true a missing
//! program (or pcscd) fails the test; elsewhere it says SKIPPED.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::MutexGuard;

mod common;
#[path = "../../testsupport/served.rs"]
mod served;
#[path = "../../testsupport/vpcd.rs"]
mod vpcd_support;

use common::{have, module};
use served::Served;
use token_sim::scenario::Scenario;
use token_sim::VirtualKey;

/// A key with keys and certificates in 9A, 9C, 9D, 9E, its token labelled "Li Lei", and the
/// module's environment that finds it.
struct Token {
    what: &'static str,
    env: Vec<(&'static str, String)>,
    /// For a reader key: the served key, and the vpcd readers held for this test alone.
    _reader: Option<(Served, MutexGuard<'static, ()>)>,
}

/// The directory key, then (when pcscd is here) the reader key.
fn tokens(root: &Path) -> Vec<Token> {
    let dir = common::key(root, "key", Scenario::Full, "Li Lei");
    let mut tokens = vec![Token {
        what: "directory key",
        env: vec![("UKEY_PKCS11_KEYS", dir.display().to_string()), ("UKEY_PKCS11_READERS", "off".into())],
        _reader: None,
    }];
    if let Some(one) = vpcd_support::begin() {
        let key = VirtualKey::open(&common::key(root, "reader-key", Scenario::Full, "Li Lei")).unwrap();
        tokens.push(Token {
            what: "key in a vpcd reader",
            env: vec![("UKEY_PKCS11_READERS", "on".into())],
            _reader: Some((Served::start(key, 0), one)),
        });
    }
    tokens
}

impl Token {
    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env_remove("UKEY_PKCS11_KEYS").envs(self.env.iter().map(|(k, v)| (k, v))).stdin(Stdio::null());
        c
    }

    /// Run `program` with the module's environment: (success, stdout + stderr).
    fn run(&self, program: &str, args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
        let o = self.command(program).args(args).envs(env.iter().copied()).output().unwrap();
        (o.status.success(), format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
    }

    fn ok(&self, program: &str, args: &[&str], env: &[(&str, &str)]) -> String {
        let (ok, out) = self.run(program, args, env);
        assert!(ok, "{}: {program} {args:?}:\n{out}", self.what);
        out
    }
}

#[test]
fn p11tool_lists_the_token_and_certificates_and_test_signs() {
    if !have(&["p11tool"]) {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    for k in tokens(root.path()) {
        let m = module();
        let m = m.to_str().unwrap();
        let tokens = k.ok("p11tool", &["--provider", m, "--list-tokens"], &[]);
        assert!(tokens.contains("Label: Li Lei") && tokens.contains("Manufacturer: ukey"), "{tokens}");
        let certs = k.ok("p11tool", &["--provider", m, "--list-all-certs"], &[]);
        assert_eq!(certs.matches("Type: X.509 Certificate (EC/ECDSA-SECP256R1)").count(), 4, "{certs}");
        assert!(certs.contains("Certificate for PIV Authentication"), "{certs}");
        let signed = k.ok(
            "p11tool",
            &["--provider", m, "--login", "--test-sign", "pkcs11:token=Li%20Lei;id=%01;type=private"],
            &[("GNUTLS_PIN", "123456")],
        );
        assert!(signed.contains("Verifying against public key in the token... ok"), "{signed}");
    }
}

#[test]
fn nss_adds_the_module_and_lists_its_certificates() {
    if !have(&["modutil", "certutil"]) {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    for k in tokens(root.path()) {
        let root = tempfile::tempdir_in(root.path()).unwrap();
        let db = root.path().join("nssdb");
        std::fs::create_dir(&db).unwrap();
        let db = format!("sql:{}", db.display());
        k.ok("certutil", &["-N", "-d", &db, "--empty-password"], &[]);
        let added =
            k.ok("modutil", &["-dbdir", &db, "-add", "ukey", "-libfile", module().to_str().unwrap(), "-force"], &[]);
        assert!(added.contains("added to database"), "{added}");
        let listed = k.ok("certutil", &["-d", &db, "-L", "-h", "all"], &[]);
        for name in ["PIV Authentication", "Digital Signature", "Key Management", "Card Authentication"] {
            assert!(listed.contains(&format!("Li Lei:Certificate for {name}")), "{name}:\n{listed}");
        }
    }
}

#[test]
fn openssl_signs_through_the_pkcs11_engine_and_verifies() {
    if !have(&["openssl", "pkcs11-tool"]) {
        return;
    }
    let engine = Path::new("/usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so");
    if !engine.exists() && !have(&["missing-libengine-pkcs11-openssl"]) {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    for k in tokens(root.path()) {
        let root = tempfile::tempdir_in(root.path()).unwrap();
        let p = |n: &str| root.path().join(n).to_str().unwrap().to_string();
        let m = module();
        std::fs::write(p("msg"), b"signed through the engine").unwrap();
        k.ok("openssl", &["dgst", "-sha256", "-binary", "-out", &p("digest"), &p("msg")], &[]);
        k.ok(
            "pkcs11-tool",
            &["--module", m.to_str().unwrap(), "--read-object", "--type", "cert", "--id", "01", "-o", &p("cert.der")],
            &[],
        );
        let pem = k.ok("openssl", &["x509", "-inform", "DER", "-in", &p("cert.der"), "-pubkey", "-noout"], &[]);
        std::fs::write(p("pub.pem"), pem).unwrap();
        k.ok(
            "openssl",
            &[
                "pkeyutl",
                "-engine",
                "pkcs11",
                "-keyform",
                "engine",
                "-inkey",
                "pkcs11:id=%01;type=private;pin-value=123456",
                "-sign",
                "-in",
                &p("digest"),
                "-out",
                &p("sig"),
            ],
            &[("PKCS11_MODULE_PATH", m.to_str().unwrap())],
        );
        let v = k.ok(
            "openssl",
            &["pkeyutl", "-verify", "-pubin", "-inkey", &p("pub.pem"), "-in", &p("digest"), "-sigfile", &p("sig")],
            &[],
        );
        assert!(v.contains("Signature Verified Successfully"), "{v}");
    }
}

#[test]
fn p11_kit_registers_the_module_and_programs_find_its_token() {
    if !have(&["p11-kit", "p11tool"]) {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    for k in tokens(root.path()) {
        let root = tempfile::tempdir_in(root.path()).unwrap();
        // p11-kit reads a user's modules only for users other than root: root's go system-wide.
        let name = format!("ukey-test-{}", std::process::id());
        let home = root.path().join("home");
        let dir = if is_root() { PathBuf::from("/etc/pkcs11/modules") } else { home.join(".config/pkcs11/modules") };
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(format!("{name}.module"));
        std::fs::write(&file, format!("module: {}\n", module().display())).unwrap();
        struct Remove(PathBuf);
        impl Drop for Remove {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
        let _remove = Remove(file);
        let home = home.to_str().unwrap();
        let modules = k.ok("p11-kit", &["list-modules"], &[("HOME", home)]);
        let ours = modules.split(&format!("{name}:")).nth(1).unwrap_or_else(|| panic!("{name} not listed:\n{modules}"));
        assert!(ours.contains("library-manufacturer: ukey") && ours.contains("token: Li Lei"), "{modules}");
        // A program that knows only p11-kit finds the token.
        let tokens = k.ok("p11tool", &["--list-tokens"], &[("HOME", home)]);
        assert!(tokens.contains("Label: Li Lei"), "{tokens}");
    }
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// An sshd on a loopback port that accepts the key's 9A public key, stopped when dropped.
struct Sshd {
    child: Child,
    port: u16,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sshd(dir: &Path, authorized: &str) -> Sshd {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let p = |n: &str| dir.join(n).to_str().unwrap().to_string();
    let k = Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f", &p("host")]).status().unwrap();
    assert!(k.success());
    std::fs::write(dir.join("authorized_keys"), authorized).unwrap();
    let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout).unwrap();
    std::fs::write(
        dir.join("sshd_config"),
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nPubkeyAuthentication yes\nPermitRootLogin prohibit-password\nUsePAM no\n\
             StrictModes no\nPidFile {}\nAllowUsers {}\n",
            p("host"),
            p("authorized_keys"),
            p("sshd.pid"),
            user.trim()
        ),
    )
    .unwrap();
    std::fs::create_dir_all("/run/sshd").ok();
    let log = std::fs::File::create(dir.join("sshd.log")).unwrap();
    let child = Command::new("/usr/sbin/sshd")
        .args(["-D", "-e", "-f", &p("sshd_config")])
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    // Up when it accepts connections.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "sshd did not start: {}",
            std::fs::read_to_string(dir.join("sshd.log")).unwrap()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Sshd { child, port }
}

#[test]
fn ssh_logs_in_with_the_key_directly_and_through_ssh_agent() {
    if !have(&["ssh", "ssh-keygen", "ssh-agent", "ssh-add", "/usr/sbin/sshd"]) {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    for k in tokens(root.path()) {
        let root = tempfile::tempdir_in(root.path()).unwrap();
        let m = module();
        let m = m.to_str().unwrap();
        let listed = k.ok("ssh-keygen", &["-D", m], &[]);
        let auth: Vec<&str> = listed.lines().filter(|l| l.starts_with("ecdsa-sha2-nistp256 ")).collect();
        assert_eq!(auth.len(), 4, "the four slots' keys:\n{listed}");
        assert!(auth[0].ends_with("PIV AUTH pubkey"), "{listed}");
        let d = root.path().join("ssh");
        std::fs::create_dir(&d).unwrap();
        let server = sshd(&d, &format!("{}\n", auth[0]));
        let askpass = d.join("askpass");
        std::fs::write(&askpass, "#!/bin/sh\necho 123456\n").unwrap();
        std::fs::set_permissions(&askpass, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout).unwrap();
        let target = format!("{}@127.0.0.1", user.trim());
        let port = server.port.to_string();
        let pin = [("SSH_ASKPASS", askpass.to_str().unwrap()), ("SSH_ASKPASS_REQUIRE", "force"), ("DISPLAY", ":0")];
        let common =
            ["-F", "/dev/null", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-p", &port];
        let provider = format!("PKCS11Provider={m}");
        let direct =
            k.ok("ssh", &[&common[..], &["-o", &provider, &target, "echo", "signed-by-the-key"]].concat(), &pin);
        assert!(direct.contains("signed-by-the-key"), "{direct}");

        // ssh-agent allowed to load the module, the key added with ssh-add -s, then a login that
        // only knows the agent.
        let sock = d.join("agent.sock");
        let sock = sock.to_str().unwrap();
        let allowed = format!("{}/*", Path::new(m).parent().unwrap().display());
        // The agent's helper loads the module: it needs the module's environment.
        let agent = k
            .command("ssh-agent")
            .args(["-D", "-a", sock, "-P", &allowed])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        struct Stop(Child);
        impl Drop for Stop {
            fn drop(&mut self) {
                let _ = self.0.kill();
                let _ = self.0.wait();
            }
        }
        let _agent = Stop(agent);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !Path::new(sock).exists() {
            assert!(std::time::Instant::now() < deadline, "ssh-agent did not start");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let with_agent = [("SSH_AUTH_SOCK", sock)];
        let added = k.ok("ssh-add", &["-s", m], &[&pin[..], &with_agent[..]].concat());
        assert!(added.contains("Card added"), "{added}");
        let keys = k.ok("ssh-add", &["-l"], &with_agent);
        assert!(keys.contains("PIV AUTH pubkey (ECDSA)"), "{keys}");
        let via = k.ok(
            "ssh",
            &[&common[..], &["-o", "BatchMode=yes", &target, "echo", "via-the-agent"]].concat(),
            &with_agent,
        );
        assert!(via.contains("via-the-agent"), "{via}");
    }
}
