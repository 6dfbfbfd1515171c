//! `ukey demo --web`: the portal (SQLite, sandbox), the agent and two virtual keys, for a
//! person with a browser. Each is a `ukey` child process, started here and stopped on Ctrl-C.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Passwords of the demo's users (loopback only, printed for the person trying it).
const USER_PASSWORD: &str = "Demo-Pass1";
const STAFF_PASSWORD: &str = "Review-Pass1";
/// The two keys: each directory's name, and its holder in the demo enterprise.
const HOLDERS: [(&str, &str); 2] = [("zhangsan", "张三"), ("lisi", "李四")];

pub struct WebDemo {
    pub dir: Option<PathBuf>,
    pub listen: std::net::SocketAddr,
    pub agent_listen: std::net::SocketAddr,
}

/// A child `ukey`, killed (and waited for) when dropped.
struct Service(Child, &'static str);
impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ukey(home: &Path, args: &[&str]) -> Command {
    let exe = std::env::current_exe().expect("the running ukey");
    let mut c = Command::new(exe);
    c.args(args).env("UKEY_HOME", home);
    c
}

fn run_ok(home: &Path, args: &[&str]) -> Result<()> {
    let out = ukey(home, args).output().with_context(|| format!("ukey {}", args.join(" ")))?;
    if !out.status.success() {
        bail!("ukey {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

fn spawn(home: &Path, what: &'static str, args: &[&str]) -> Result<Service> {
    let log = std::fs::File::create(home.join(format!("{what}.log")))?;
    let child = ukey(home, args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .spawn()
        .with_context(|| format!("starting the {what}"))?;
    Ok(Service(child, what))
}

/// Until `addr` accepts connections; fails if `child` exits first or after 30 s.
fn wait_up(child: &mut Service, addr: std::net::SocketAddr, home: &Path) -> Result<()> {
    let start = Instant::now();
    loop {
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if let Some(status) = child.0.try_wait()? {
            let log = std::fs::read_to_string(home.join(format!("{}.log", child.1))).unwrap_or_default();
            bail!("the {} stopped ({status}):\n{}", child.1, log.trim());
        }
        if start.elapsed() > Duration::from_secs(30) {
            bail!("the {} did not listen on {addr} within 30 s", child.1);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Until `n` vpcd readers hold a card (the served keys connected), at most 20 s.
fn wait_cards(n: usize) -> Result<()> {
    let start = Instant::now();
    loop {
        let present = host_driver::pcsc::Pcsc::establish()
            .and_then(|p| p.reader_states())
            .map(|s| s.iter().filter(|r| r.name.contains("Virtual PCD") && r.card_present).count())
            .unwrap_or(0);
        if present >= n {
            return Ok(());
        }
        if start.elapsed() > Duration::from_secs(20) {
            bail!("the keys did not appear in the vpcd readers within 20 s (see keys.log)");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Empty vpcd readers of a running pcscd, if there are two.
fn vpcd_readers() -> bool {
    let Ok(pcsc) = host_driver::pcsc::Pcsc::establish() else { return false };
    let Ok(states) = pcsc.reader_states() else { return false };
    let free = states.iter().filter(|r| r.name.contains("Virtual PCD") && !r.card_present).count();
    free >= 2
}

pub fn run(d: WebDemo) -> Result<ExitCode> {
    let tmp;
    let home = match d.dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            dir
        }
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let portal_url = format!("http://{}", d.listen);
    let agent_url = format!("http://{}", d.agent_listen);
    println!("ukey demo --web: portal, agent and two virtual keys in {}", home.display());

    let keys = home.join("keys");
    let mut dirs = Vec::new();
    for (name, holder) in HOLDERS {
        let dir = keys.join(name);
        if !dir.join(token_sim::store::STATE_FILE).exists() {
            let d = dir.to_str().context("a key directory path that is UTF-8")?;
            let subject = portal::seed::subject(holder, false);
            run_ok(&home, &["sim", "new", d, "--scenario", "provisioned", "--subject", &subject])?;
        }
        dirs.push(dir);
    }
    if !home.join("portal.db").exists() {
        run_ok(&home, &["portal", "seed", "--password", USER_PASSWORD, "--staff-password", STAFF_PASSWORD])?;
    }

    // Keys in vpcd readers when pcscd offers two, as real keys in real readers; else the
    // agent reads the key directories.
    let on_readers = vpcd_readers();
    let mut children = Vec::new();
    let agent_keys = if on_readers {
        let mut args = vec!["sim", "serve"];
        args.extend(dirs.iter().filter_map(|d| d.to_str()));
        children.push(spawn(&home, "keys", &args)?);
        home.join("no-directory-keys")
    } else {
        keys.clone()
    };
    let db = format!("sqlite:{}", home.join("portal.db").display());
    let listen = d.listen.to_string();
    let agent_listen = d.agent_listen.to_string();
    let mut portal = spawn(
        &home,
        "portal",
        &["portal", "serve", "--db", &db, "--sandbox", "--listen", &listen, "--agent-url", &agent_url],
    )?;
    let agent_keys = agent_keys.to_str().context("a UTF-8 path")?.to_string();
    let mut agent = spawn(
        &home,
        "agent",
        &["agent", "--listen", &agent_listen, "--allow-origin", &portal_url, "--keys", &agent_keys],
    )?;
    wait_up(&mut portal, d.listen, &home)?;
    wait_up(&mut agent, d.agent_listen, &home)?;
    if on_readers {
        wait_cards(dirs.len())?;
    }
    children.push(portal);
    children.push(agent);

    println!();
    println!("  open {portal_url}/ in a browser");
    println!("  password login: zhangsan / {USER_PASSWORD} (staff: lisi / {STAFF_PASSWORD})");
    println!("  CA login: the keys of 张三 and 李四, PIN 123456 (bind them first, after a password login)");
    println!("  apply for a certificate: CA数字证书注册申请 (top right, after a password login); SMS and");
    println!("    email land in {portal_url}/sandbox/outbox; staff lisi reviews at {portal_url}/staff");
    if on_readers {
        println!("  keys in vpcd readers; pull one out and plug it back in:");
        println!("    UKEY_HOME={} ukey sim remove {}", home.display(), dirs[0].display());
        println!("    UKEY_HOME={} ukey sim insert {}", home.display(), dirs[0].display());
    } else {
        println!("  keys as directories (no pcscd with vpcd readers); pull one out and put it back:");
        println!("    mv {} {}", dirs[0].display(), home.join("zhangsan.removed").display());
        println!("    mv {} {}", home.join("zhangsan.removed").display(), dirs[0].display());
    }
    println!("  logs: {}/{{portal,agent}}.log; Ctrl-C stops everything", home.display());

    let rt = crate::services::runtime()?;
    let stopped = rt.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut watch = tokio::time::interval(Duration::from_millis(500));
        // Ctrl-C, and a plain `kill` or a closed terminal: the children must not outlive us.
        let (mut term, mut hup) = (signal(SignalKind::terminate())?, signal(SignalKind::hangup())?);
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => return Ok::<_, anyhow::Error>(None),
                _ = term.recv() => return Ok(None),
                _ = hup.recv() => return Ok(None),
                _ = watch.tick() => {
                    for c in children.iter_mut() {
                        if let Some(status) = c.0.try_wait()? {
                            return Ok(Some((c.1, status)));
                        }
                    }
                }
            }
        }
    })?;
    drop(children);
    match stopped {
        None => {
            println!("stopped");
            Ok(ExitCode::SUCCESS)
        }
        Some((what, status)) => bail!("the {what} stopped ({status}); see {}/{what}.log", home.display()),
    }
}
