//! USB/IP judged by a real kernel and a user's smart-card stack: a QEMU guest (TCG, no network
//! card) running Debian's own kernel attaches a key that `ukey sim serve --usbip` exports. The
//! USB/IP stream goes over a virtio-serial port: QEMU's chardev is a Unix socket here, relayed
//! to the server's own Unix socket (`--usbip unix:PATH`, 0600); in the guest socat offers the
//! port on 127.0.0.1:3240 to `usbip attach`. The guest's vhci-hcd and usbcore enumerate the device, pcscd's libccid makes
//! it a reader, OpenSC's pkcs11-tool logs in and signs with 9A and reads the certificate, and
//! the guest prints it all on its serial console; here openssl verifies the signature with that
//! certificate. The guest is built by scripts/qemu-guest.sh (scripts/test.sh exports
//! UKEY_QEMU_GUEST); under CI=true it must be there.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn guest() -> Option<PathBuf> {
    let dir = std::env::var_os("UKEY_QEMU_GUEST").map(PathBuf::from);
    match dir {
        Some(d) if d.join("vmlinuz").exists() && d.join("initrd.gz").exists() => Some(d),
        _ => {
            testsupport::skip("the QEMU guest (scripts/qemu-guest.sh DIR, then UKEY_QEMU_GUEST=DIR)");
            None
        }
    }
}

/// Copy bytes both ways between the QEMU chardev socket and the USB/IP server's socket.
fn relay(unix: UnixStream, server: UnixStream) {
    let (mut u2, mut t2) = (unix.try_clone().unwrap(), server.try_clone().unwrap());
    let (mut u, mut t) = (unix, server);
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut u, &mut t2);
        let _ = t2.shutdown(std::net::Shutdown::Both);
    });
    std::thread::spawn(move || {
        let mut buf = [0u8; 16384];
        while let Ok(n) = t.read(&mut buf) {
            if n == 0 || u2.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    });
}

#[test]
fn a_linux_guest_attaches_a_served_key_and_pcscd_libccid_and_opensc_sign_with_it() {
    let Some(guest) = guest() else { return };
    let home = tempfile::tempdir().unwrap();
    let key = home.path().join("k");
    let made = Command::new(env!("CARGO_BIN_EXE_ukey"))
        .env("UKEY_HOME", home.path())
        .args(["sim", "new", key.to_str().unwrap(), "--scenario", "provisioned", "--seed", "12", "--json"])
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let serial = serde_json::from_slice::<serde_json::Value>(&made.stdout).unwrap()["serial"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_default();
    let mut serve = Command::new(env!("CARGO_BIN_EXE_ukey"))
        .env("UKEY_HOME", home.path())
        .args(["sim", "serve", "--usbip", &format!("unix:{}", home.path().join("ukey-usbip.sock").display())])
        .arg(&key)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(serve.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    // Keep reading what the server says: a closed pipe must not be what ends it.
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    let _serve = Kill(serve);
    let addr = first.split("on usbip unix:").nth(1).and_then(|r| r.split(' ').next()).unwrap().to_string();

    let sock = home.path().join("usbip.sock");
    let started = Instant::now();
    let mut qemu = Command::new("qemu-system-x86_64")
        .args(["-m", "512", "-nographic", "-no-reboot", "-nic", "none", "-kernel"])
        .arg(guest.join("vmlinuz"))
        .arg("-initrd")
        .arg(guest.join("initrd.gz"))
        .args(["-append", "console=ttyS0 panic=-1 quiet", "-device", "virtio-serial-pci", "-chardev"])
        .arg(format!("socket,id=u,path={},server=on,wait=off", sock.display()))
        .args(["-device", "virtserialport,chardev=u,name=usbip"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("qemu-system-x86_64 (scripts/qemu-guest.sh installs it)");
    let console = qemu.stdout.take().unwrap();
    let _qemu = Kill(qemu);
    let deadline = Instant::now() + Duration::from_secs(30);
    let unix = loop {
        if let Ok(s) = UnixStream::connect(&sock) {
            break s;
        }
        assert!(Instant::now() < deadline, "QEMU never opened {}", sock.display());
        std::thread::sleep(Duration::from_millis(50));
    };
    relay(unix, UnixStream::connect(&addr).unwrap());

    // The console, line by line, until the guest is done (or three minutes pass: TCG is slow
    // on a busy machine).
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(console).split(b'\n') {
            let Ok(line) = line else { break };
            if tx.send(String::from_utf8_lossy(&line).trim().to_string()).is_err() {
                break;
            }
        }
    });
    let mut said = Vec::new();
    let end = Instant::now() + Duration::from_secs(180);
    while !said.iter().any(|l: &String| l.ends_with("ukey-guest: done")) {
        let left = end.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => said.push(line),
            Err(_) => panic!("the guest did not finish in time; its console:\n{}", said.join("\n")),
        }
    }
    let took = started.elapsed();
    let guest_lines: Vec<&String> = said.iter().filter(|l| l.contains("ukey-guest:")).collect();
    let text = said.join("\n");
    assert!(text.contains("ukey-guest: attach rc=0"), "{text}");
    assert!(
        text.contains(&format!("ukey-guest: device 1209:0001 manufacturer=ukey product=ukey serial={serial}")),
        "{text}"
    );
    assert!(text.contains("ukey-guest: interface class=0b endpoints=03"), "{text}");
    assert!(text.contains("configuration=1"), "{text}");
    // pcscd's libccid in the guest made it a reader, OpenSC logged in and signed with 9A.
    assert!(text.contains("ukey-guest: reader: ") && text.contains("ukey [ukey CCID]"), "{text}");
    assert!(text.contains("ukey-guest: sign rc=0") && text.contains("ukey-guest: read rc=0"), "{text}");
    let hex_after = |tag: &str| -> Vec<u8> {
        let line = said.iter().find_map(|l| l.split(&format!("ukey-guest: {tag} ")).nth(1)).unwrap_or("");
        (0..line.len() / 2).map(|i| u8::from_str_radix(&line[2 * i..2 * i + 2], 16).unwrap()).collect()
    };
    let (sig, cert) = (hex_after("signature"), hex_after("certificate"));
    assert!(!sig.is_empty() && !cert.is_empty(), "{text}");
    // The host verifies the guest's signature with the certificate the guest read through CCID.
    let dir = home.path();
    std::fs::write(dir.join("sig"), &sig).unwrap();
    std::fs::write(dir.join("cert.der"), &cert).unwrap();
    std::fs::write(dir.join("data"), b"signed in the guest by the served key").unwrap();
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl").current_dir(dir).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    openssl(&["x509", "-inform", "DER", "-in", "cert.der", "-pubkey", "-noout", "-out", "pub.pem"]);
    let verified = openssl(&["dgst", "-sha256", "-verify", "pub.pem", "-signature", "sig", "data"]);
    assert!(verified.contains("Verified OK"), "{verified}");
    // And it is the key's own 9A certificate.
    let subject = openssl(&["x509", "-inform", "DER", "-in", "cert.der", "-noout", "-subject"]);
    assert!(subject.contains("ukey test user"), "{subject}");
    eprintln!("guest run {took:.1?}: {guest_lines:#?}");
}
