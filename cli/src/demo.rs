//! `ukey demo`: the USB-Key story end to end on a virtual key, narrated, checking every step.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use clap::Args;
use host_driver::certinfo::{self, format_time, CertInfo};
use host_driver::{inspect, PinOutcome, Piv};
use p256::ecdsa::signature::Verifier;
use proto::clock::SystemClock;
use proto::piv::Slot;
use proto::Clock;
use token_sim::scenario::Scenario;
use token_sim::{KeySpec, VirtualKey};

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Keep the key and CA here instead of a temporary directory (with --web: the keys, the
    /// portal's database and the logs; run again, it goes on where it stopped)
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Serve the story for a browser instead: the portal (SQLite, sandbox), the agent and two
    /// virtual keys (in vpcd readers when pcscd has them free, else key directories), until
    /// Ctrl-C. Prints the URL, the users and what to try
    #[arg(long)]
    pub web: bool,
    /// With --web: the portal's address
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:8080", requires = "web")]
    pub listen: std::net::SocketAddr,
    /// With --web: the agent's address (loopback)
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:7781", requires = "web")]
    pub agent_listen: std::net::SocketAddr,
}

struct Narrator {
    start: Instant,
    step: usize,
}

impl Narrator {
    fn say(&mut self, what: &str, result: &str) {
        self.step += 1;
        println!("{:>2}. {what:<58} {result}  [{} ms]", self.step, self.start.elapsed().as_millis());
    }
    /// A step that was run elsewhere and took `ms`.
    fn said(&mut self, what: &str, result: &str, ms: u128) {
        self.step += 1;
        println!("{:>2}. {what:<58} {result}  [step {ms} ms]", self.step);
    }
}

pub fn run(a: DemoArgs) -> Result<ExitCode> {
    if a.web {
        return crate::demo_web::run(crate::demo_web::WebDemo {
            dir: a.dir,
            listen: a.listen,
            agent_listen: a.agent_listen,
        });
    }
    let tmp;
    let root = match a.dir {
        Some(d) => d,
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let clock = SystemClock;
    let mut n = Narrator { start: Instant::now(), step: 0 };
    println!("ukey demo: a virtual USB-Key from certificate to signature\n");

    let ca = ca::Ca::open_or_create(&root.join("ca"), "CN=ukey demo CA,O=ukey", 3650, &clock)?;
    n.say("CA ready", &ca.subject());

    let key_dir = root.join("alice-key");
    let scenario = Scenario::Provisioned;
    let mut key = VirtualKey::create(&key_dir, &KeySpec { scenario, ..KeySpec::default() }, &clock)?;
    key.provision(scenario, Some(&ca), "CN=Alice,O=Example Co", &clock)
        .with_context(|| format!("provisioning {}", key_dir.display()))?;
    drop(key);
    n.say("virtual key made, key pair generated on it", &key_dir.display().to_string());

    let mut piv = Piv::new(VirtualKey::open(&key_dir)?);
    let info = inspect(&mut piv, "alice-key")?;
    let cert = info.auth_cert().context("the provisioned key has no 9A certificate")?.clone();
    n.say("key inserted", &format!("serial {}, {}", info.serial.clone().unwrap_or_default(), cert.subject));
    n.say("certificate valid until", &format_time(cert.not_after));

    for expected_left in [2u8, 1] {
        match piv.verify_pin(&"000000".into())? {
            PinOutcome::WrongPin { retries_left } if retries_left == expected_left => {
                n.say("wrong PIN typed", &format!("verification failed, {retries_left} attempt(s) left"))
            }
            other => bail!("expected {expected_left} tries left, the key said {other:?}"),
        }
    }
    ensure!(piv.verify_pin(&"000000".into())? == PinOutcome::Blocked, "third wrong PIN must block the key");
    n.say("wrong PIN a third time", "PIN locked");
    ensure!(piv.verify_pin(&"123456".into())? == PinOutcome::Blocked, "a blocked PIN must stay blocked");
    n.say("right PIN, too late", "still locked: only the PUK helps");
    ensure!(piv.unblock_pin(&"12345678".into(), &"246810".into())? == PinOutcome::Ok, "unblock with the PUK");
    n.say("unblocked with the PUK", "new PIN set");
    ensure!(piv.verify_pin(&"246810".into())? == PinOutcome::Ok, "the new PIN works");
    n.say("new PIN verified", "OK");

    let message = b"ukey demo: I approve this login";
    let sig = piv.sign_message(Slot::Authentication, message)?;
    n.say("message signed on the key (slot 9a)", &format!("{} byte DER signature", sig.der.len()));

    let der = piv.read_certificate(Slot::Authentication)?.context("certificate vanished")?;
    let vk = p256::ecdsa::VerifyingKey::from(certinfo::public_key(&der)?);
    vk.verify(message, &p256::ecdsa::Signature::from_der(&sig.der)?).context("signature does not verify")?;
    ensure!(ca.verify_issued(&der), "the certificate must chain to the CA");
    n.say("signature verified with the certificate's key", "OK (p256)");
    drop(piv);

    match openssl_verify(&root, &der, message, &sig.der) {
        Ok(out) => n.say("signature verified by openssl", out.trim()),
        Err(e) => n.say("openssl check skipped", &format!("{e:#}")),
    }
    let left = CertInfo::parse(&der)?.days_left(clock.now_unix());
    println!("\nthe key works; its certificate has {left} days left.");

    // Part two: the business system, as the user manual tells it.
    println!("\nthe business system: portal, local agent, keys in every state (over loopback HTTP)\n");
    let steps = crate::services::runtime()?.block_on(async {
        let w = crate::flows::setup(None, &crate::flows::flow_keys()).await?;
        Ok::<_, anyhow::Error>(conformance::system::run_flows(&w).await)
    })?;
    for s in &steps {
        let what = format!("{}: {}", s.flow, s.step);
        n.said(&what, if s.ok { &s.detail } else { "FAILED" }, s.ms);
        if !s.ok {
            bail!("{what}: {}", s.detail);
        }
    }
    println!("\nall steps passed in {} ms.", n.start.elapsed().as_millis());
    Ok(ExitCode::SUCCESS)
}

/// Let a program nobody here wrote judge the signature.
fn openssl_verify(root: &std::path::Path, cert_der: &[u8], message: &[u8], sig: &[u8]) -> Result<String> {
    use p256::pkcs8::EncodePublicKey;
    let public = certinfo::public_key(cert_der)?.to_public_key_pem(p256::pkcs8::LineEnding::LF)?;
    let (pk, msg, sg) = (root.join("demo-pub.pem"), root.join("demo-msg.txt"), root.join("demo-msg.sig"));
    std::fs::write(&pk, public)?;
    std::fs::write(&msg, message)?;
    std::fs::write(&sg, sig)?;
    let out = std::process::Command::new("openssl")
        .args(["dgst", "-sha256", "-verify"])
        .arg(&pk)
        .arg("-signature")
        .arg(&sg)
        .arg(&msg)
        .output()
        .context("openssl is not installed")?;
    ensure!(out.status.success(), "openssl rejected the signature: {}", String::from_utf8_lossy(&out.stdout));
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
