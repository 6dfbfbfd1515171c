//! `ukey sim serve`: virtual keys as readers of the OS smart-card stack (pcscd + vpcd) or as
//! USB CCID tokens over USB/IP (`--usbip`), and
//! `ukey sim remove|insert|status`, which steer a running server through the key's control socket.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use keys::served::{self, ControlCommand};
use token_sim::frontends::vpcd::{self, Control, LinkState};
use token_sim::VirtualKey;
use tokio::sync::watch;

use crate::control::{control_socket, state_word, UsbipExport, VpcdLink};

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
        if let Err(e) = control_socket(dir, Arc::new(UsbipExport { exports: exports.clone(), index: i })) {
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
        let link = VpcdLink {
            inserted: inserted_tx.clone(),
            state: state_rx.clone(),
            power,
            runtime: tokio::runtime::Handle::current(),
        };
        let socket = match control_socket(&dir, Arc::new(link)) {
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
