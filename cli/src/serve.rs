//! `ukey sim serve`: virtual keys as readers of the OS smart-card stack (pcscd + vpcd) or as
//! USB CCID tokens over USB/IP (`--usbip`), and
//! `ukey sim remove|insert|status`, which steer a running server through the key's control socket.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use keys::served::{self, ControlCommand, CONTROL_SOCKET};
use token_sim::frontends::vpcd::{self, Control, LinkState};
use token_sim::VirtualKey;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::UnixListener;
use tokio::sync::watch;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Key directories to serve (made with `ukey sim new`); the Nth key goes to the Nth --vpcd
    /// address, or to port 35963+N on 127.0.0.1
    #[arg(required = true, value_name = "DIR")]
    pub dirs: Vec<PathBuf>,
    /// Where pcscd's vpcd driver listens, HOST:PORT (repeat once per key)
    #[arg(long, value_name = "HOST:PORT")]
    pub vpcd: Vec<String>,
    /// Start with the keys pulled out (plug them in with `ukey sim insert DIR`)
    #[arg(long)]
    pub removed: bool,
    /// Serve the keys with this defect (`ukey sim defects` lists them), to see whether a host
    /// or `ukey conformance --reader` notices; the key files are not changed by it
    #[arg(long, value_name = "NAME")]
    pub defect: Option<String>,
    /// Serve the keys as USB CCID tokens over USB/IP instead, on ADDR: HOST:PORT (default
    /// 127.0.0.1:3240) or unix:PATH (a 0600 socket, for a relay such as a VM's serial port).
    /// Bus ids 1-1, 1-2, ... in key order, for `usbip list -r HOST` and `usbip attach -r HOST
    /// -b 1-N` (the host then needs vhci-hcd, and pcscd's libccid with 1209:0001 in its
    /// Info.plist). Only processes of the user running this server are answered, and root's
    /// (`sudo usbip attach` imports for the kernel); the uid is checked on every connection,
    /// and another user's connection is closed unread and logged
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = token_sim::frontends::usbip::DEFAULT_ADDR, conflicts_with = "vpcd")]
    pub usbip: Option<String>,
    /// Also answer other machines (needed for an ADDR off loopback). USB/IP has no
    /// authentication: anyone who reaches ADDR can then block a key's PIN and PUK and reset
    /// it, no PIN needed. Use it only on a network that is yours
    #[arg(long, requires = "usbip")]
    pub usbip_allow_remote: bool,
    /// Detach an importer that submitted nothing and has nothing pending for SECS seconds
    /// (0: never), freeing the key for the next
    #[arg(long, value_name = "SECS", default_value_t = token_sim::frontends::usbip::server::DEFAULT_IDLE.as_secs(), requires = "usbip")]
    pub usbip_idle: u64,
}

fn state_word(s: LinkState) -> &'static str {
    match s {
        LinkState::Removed => "removed",
        LinkState::Connecting => "inserted, waiting for pcscd",
        LinkState::Connected => "inserted, connected to pcscd",
        LinkState::Stopped => "stopped",
    }
}

/// The reader name pcscd gives a vpcd port with Debian's stock reader.conf (one entry, port 35963).
fn reader_name(addr: &str) -> Option<String> {
    let port: u16 = addr.rsplit(':').next()?.parse().ok()?;
    let n = port.checked_sub(vpcd::DEFAULT_PORT)?;
    (n < 2).then(|| format!("Virtual PCD 00 {n:02}"))
}

struct Served {
    dir: PathBuf,
    addr: String,
    inserted: watch::Sender<bool>,
    state: watch::Receiver<LinkState>,
    task: tokio::task::JoinHandle<()>,
    socket: Option<PathBuf>,
}

pub fn run(a: ServeArgs) -> Result<ExitCode> {
    if !a.vpcd.is_empty() && a.vpcd.len() != a.dirs.len() {
        bail!(
            "{} key directories but {} --vpcd addresses: give one address per key, or none",
            a.dirs.len(),
            a.vpcd.len()
        );
    }
    let addrs: Vec<String> = if a.vpcd.is_empty() {
        (0..a.dirs.len()).map(|i| format!("127.0.0.1:{}", vpcd::DEFAULT_PORT as usize + i)).collect()
    } else {
        a.vpcd.clone()
    };
    for (i, addr) in addrs.iter().enumerate() {
        if addrs[..i].contains(addr) {
            bail!("two keys on {addr}: one vpcd port holds one key");
        }
    }
    let defect = a.defect.as_deref().map(token_sim::faults::Defect::parse).transpose().map_err(anyhow::Error::msg)?;
    // Open (and lock) every key before serving any: a typo fails fast, nothing half-started.
    let mut keys = Vec::new();
    for dir in &a.dirs {
        let mut key = VirtualKey::open(dir).with_context(|| format!("opening the virtual key in {}", dir.display()))?;
        if let Some(d) = defect {
            tracing::warn!("{} is served with the defect {}: {}", dir.display(), d.name(), d.describe());
            key.set_defect(Some(d));
        }
        if key.meta().is_some_and(|m| m.seed.is_some()) {
            tracing::warn!(
                "{} is a deterministic test key (made with --seed): whoever knows or guesses the seed predicts \
                 its challenges; serve it only to programs under test",
                dir.display()
            );
        }
        keys.push(key);
    }
    if let Some(addr) = &a.usbip {
        let idle = (a.usbip_idle > 0).then(|| Duration::from_secs(a.usbip_idle));
        return serve_usbip(keys, &a.dirs, addr, a.usbip_allow_remote, idle);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Card commands run on blocking threads; give them room like the test threads get.
        .thread_stack_size(8 << 20)
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve_all(keys, a.dirs, addrs, !a.removed))
}

/// The keys as USB devices over USB/IP until the process is stopped.
fn serve_usbip(
    keys: Vec<VirtualKey>,
    dirs: &[PathBuf],
    addr: &str,
    allow_remote: bool,
    idle: Option<Duration>,
) -> Result<ExitCode> {
    use token_sim::frontends::usbip::conn::{Endpoint, Listener};
    use token_sim::frontends::usbip::server::{self, KeyExports, Policy};
    let listener = Listener::bind(&Endpoint::parse(addr)).with_context(|| format!("listening on {addr} for USB/IP"))?;
    let shown = listener.describe();
    if let Some(local) = listener.tcp_addr().filter(|a| !a.ip().is_loopback()) {
        if !allow_remote {
            bail!(
                "USB/IP on {local} is reachable from other machines, and USB/IP has no authentication: \
                 serve on 127.0.0.1 or unix:PATH, or pass --usbip-allow-remote if the network is yours"
            );
        }
    }
    if allow_remote {
        eprintln!(
            "warning: USB/IP on {shown} answers other machines, with no authentication: anyone who reaches it can \
             block these keys' PIN and PUK and reset them (no PIN needed); local users other than uid {} are still refused",
            localpeer::own_uid()
        );
    }
    // A reader that stops listening (`| head -1`) must not stop the server: output is best effort.
    let mut out = std::io::stdout();
    for (n, (key, dir)) in keys.iter().zip(dirs).enumerate() {
        let _ =
            writeln!(out, "serving {} (serial {}) on usbip {shown} as bus id 1-{}", dir.display(), key.serial(), n + 1);
    }
    let _ = writeln!(out, "only uid {}'s (and root's) processes are answered; Ctrl-C stops", localpeer::own_uid());
    let _ = out.flush();
    let shared = keys.into_iter().map(token_sim::SharedKey::new).collect();
    let exports = std::sync::Arc::new(KeyExports::new(shared));
    for (i, dir) in dirs.iter().enumerate() {
        if let Err(e) = usbip_control_socket(dir, i, exports.clone()) {
            eprintln!(
                "warning: no control socket for {}: {e:#}; `ukey sim remove/insert` will not reach it",
                dir.display()
            );
        }
    }
    let mut policy = Policy { idle, ..Policy::default() };
    policy.rule = policy.rule.allowing_remote(allow_remote);
    // A connection that has not even sent its request is idle too.
    policy.request_timeout = idle.map_or(policy.request_timeout, |i| i.min(policy.request_timeout));
    server::serve(listener, exports, policy);
    Ok(ExitCode::SUCCESS)
}

/// DIR/serve.sock for a key served over USB/IP: `remove` is a USB disconnect (the importer's
/// connection closes, the key leaves DEVLIST), `insert` exports it again, `status` says which.
fn usbip_control_socket(
    dir: &Path,
    i: usize,
    exports: std::sync::Arc<token_sim::frontends::usbip::server::KeyExports>,
) -> Result<()> {
    let path = dir.join(CONTROL_SOCKET);
    if path.exists() {
        std::fs::remove_file(&path).with_context(|| format!("removing stale {}", path.display()))?;
    }
    let listener =
        std::os::unix::net::UnixListener::bind(&path).with_context(|| format!("binding {}", path.display()))?;
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            if let Err(refused) = localpeer::OwnerOnly::new().admit_unix(&conn) {
                tracing::warn!("control socket: refused {refused}");
                continue;
            }
            // One short line, soon: a stuck client must not hold the only accept thread.
            let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
            let mut line = String::new();
            if BufReader::new(std::io::Read::take(&conn, 256)).read_line(&mut line).is_err() {
                continue;
            }
            let answer = match ControlCommand::parse(&line) {
                Some(ControlCommand::Remove) => {
                    exports.remove(i);
                    format!("ok {}", exports.state(i))
                }
                Some(ControlCommand::Insert) => {
                    exports.insert(i);
                    format!("ok {}", exports.state(i))
                }
                Some(ControlCommand::Status) => format!("ok {}", exports.state(i)),
                Some(c) => format!("error {} is for keys served to vpcd", c.word()),
                None => format!("error unknown command {:?}: use remove, insert or status", line.trim()),
            };
            let _ = writeln!(conn, "{answer}");
        }
    });
    Ok(())
}

async fn serve_all(keys: Vec<VirtualKey>, dirs: Vec<PathBuf>, addrs: Vec<String>, inserted: bool) -> Result<ExitCode> {
    let (shutdown, shutdown_rx) = watch::channel(false);
    let mut served = Vec::new();
    for ((key, dir), addr) in keys.into_iter().zip(dirs).zip(addrs) {
        let serial = key.serial();
        let mut key = key;
        let power = key.faults();
        let key = token_sim::SharedKey::new(key);
        let (inserted_tx, inserted_rx) = watch::channel(inserted);
        let (state_tx, state_rx) = watch::channel(LinkState::Connecting);
        let control = Control { inserted: inserted_rx, shutdown: shutdown_rx.clone() };
        let task = tokio::spawn(vpcd::serve(key, addr.clone(), control, state_tx));
        let reader = reader_name(&addr).map(|r| format!(" (reader \"{r}\")")).unwrap_or_default();
        println!("serving {} (serial {serial}) on vpcd {addr}{reader}", dir.display());
        let socket = match control_socket(&dir, inserted_tx.clone(), state_rx.clone(), shutdown_rx.clone(), power) {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!(
                    "warning: no control socket for {}: {e:#}; `ukey sim remove/insert` will not reach it",
                    dir.display()
                );
                None
            }
        };
        served.push(Served { dir, addr, inserted: inserted_tx, state: state_rx, task, socket });
    }
    println!("Ctrl-C stops; `ukey sim remove DIR` / `ukey sim insert DIR` pull a key out and plug it back in");
    let _ = std::io::stdout().flush();

    wait_for_stop(&served).await?;
    println!("stopping: disconnecting keys");
    shutdown.send_replace(true);
    for s in served {
        // The task finishes the command in hand (its state write included) before it returns.
        let _ = s.task.await;
        if let Some(p) = &s.socket {
            let _ = std::fs::remove_file(p);
        }
        println!("{} on {}: {}", s.dir.display(), s.addr, state_word(*s.state.borrow()));
        drop(s.inserted);
    }
    Ok(ExitCode::SUCCESS)
}

/// Ctrl-C or SIGTERM stop the server; SIGUSR1 pulls every key out, SIGUSR2 plugs them back in.
async fn wait_for_stop(served: &[Served]) -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut usr1 = signal(SignalKind::user_defined1())?;
    let mut usr2 = signal(SignalKind::user_defined2())?;
    loop {
        tokio::select! {
            r = tokio::signal::ctrl_c() => { r?; return Ok(()) }
            _ = term.recv() => return Ok(()),
            _ = usr1.recv() => served.iter().for_each(|s| { s.inserted.send_replace(false); }),
            _ = usr2.recv() => served.iter().for_each(|s| { s.inserted.send_replace(true); }),
        }
    }
}

/// Listen on DIR/serve.sock for one-line commands: remove, insert, status, and the power
/// switch's cut-power-at-next-write and restore-power.
fn control_socket(
    dir: &Path,
    inserted: watch::Sender<bool>,
    state: watch::Receiver<LinkState>,
    mut shutdown: watch::Receiver<bool>,
    power: token_sim::faults::Faults,
) -> Result<PathBuf> {
    let path = dir.join(CONTROL_SOCKET);
    // A socket file left by a server that died: the key's lock (held now) proves nobody serves it.
    if path.exists() {
        std::fs::remove_file(&path).with_context(|| format!("removing stale {}", path.display()))?;
    }
    let listener = UnixListener::bind(&path).with_context(|| format!("binding {}", path.display()))?;
    tokio::spawn(async move {
        loop {
            let conn = tokio::select! {
                c = listener.accept() => c,
                _ = shutdown.changed() => return,
            };
            let Ok((stream, _)) = conn else { continue };
            if let Err(refused) = localpeer::OwnerOnly::new().admit_unix(&stream) {
                tracing::warn!("control socket: refused {refused}");
                continue;
            }
            let (inserted, mut state, mut power) = (inserted.clone(), state.clone(), power.clone());
            tokio::spawn(async move {
                let (rd, mut wr) = stream.into_split();
                let mut line = String::new();
                let mut reader = tokio::io::BufReader::new(tokio::io::AsyncReadExt::take(rd, 256));
                let read = reader.read_line(&mut line);
                if !matches!(tokio::time::timeout(Duration::from_secs(2), read).await, Ok(Ok(_))) {
                    return;
                }
                let answer = match ControlCommand::parse(&line) {
                    Some(ControlCommand::Remove) => {
                        inserted.send_replace(false);
                        settle(&mut state, |s| s == LinkState::Removed).await
                    }
                    Some(ControlCommand::Insert) => {
                        inserted.send_replace(true);
                        settle(&mut state, |s| s == LinkState::Connected).await
                    }
                    Some(ControlCommand::Status) => format!("ok {}", state_word(*state.borrow())),
                    Some(ControlCommand::CutPower) => {
                        proto::transport::PowerSwitch::cut_at_next_write(&mut power);
                        "ok power cut at the next write".to_string()
                    }
                    Some(ControlCommand::RestorePower) => {
                        proto::transport::PowerSwitch::cancel(&mut power);
                        "ok power restored".to_string()
                    }
                    None => format!(
                        "error unknown command {:?}: use remove, insert, status, cut-power-at-next-write or restore-power",
                        line.trim()
                    ),
                };
                let _ = wr.write_all(format!("{answer}\n").as_bytes()).await;
            });
        }
    });
    Ok(path)
}

/// Wait (briefly) until the front-end has acted on a command, then report where it stands.
async fn settle(state: &mut watch::Receiver<LinkState>, done: impl Fn(LinkState) -> bool) -> String {
    let _ = tokio::time::timeout(Duration::from_secs(5), state.wait_for(|s| done(*s))).await;
    format!("ok {}", state_word(*state.borrow()))
}

/// `ukey sim remove|insert|status DIR`: talk to the server holding DIR.
pub fn send(dir: &Path, cmd: ControlCommand) -> Result<ExitCode> {
    let state = served::ask(dir, cmd)?;
    println!("{}: {state}", dir.display());
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stock_reader_names() {
        assert_eq!(reader_name("127.0.0.1:35963").as_deref(), Some("Virtual PCD 00 00"));
        assert_eq!(reader_name("localhost:35964").as_deref(), Some("Virtual PCD 00 01"));
        assert_eq!(reader_name("127.0.0.1:35965"), None);
        assert_eq!(reader_name("127.0.0.1:80"), None);
    }
}
