//! The control socket of a served key (DIR/serve.sock), one dispatcher for both ways a key is
//! served: this user's processes only, one short line each (`remove`, `insert`, `status`, and
//! for vpcd the power switch's `cut-power-at-next-write` and `restore-power`), answered with
//! one line once the command took effect. What a command acts on is a [`Controlled`]: the vpcd
//! link ([`VpcdLink`]) or a USB/IP export ([`UsbipExport`]).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use keys::served::{ControlCommand, CONTROL_SOCKET};
use token_sim::frontends::usbip::server::KeyExports;
use token_sim::frontends::vpcd::LinkState;
use tokio::sync::watch;

/// What a served key's control commands act on.
pub trait Controlled: Send + Sync + 'static {
    /// The answer to `cmd` (`ok STATE` or `error ...`), once it took effect.
    fn answer(&self, cmd: ControlCommand) -> String;
    /// The commands it takes, for the answer to an unknown one.
    fn commands(&self) -> &'static str;
}

/// Listen on DIR/serve.sock until the process ends. A socket file there is one a server that
/// died left: the key's lock (held now) proves nobody serves it.
pub fn control_socket(dir: &Path, target: Arc<dyn Controlled>) -> Result<PathBuf> {
    let path = dir.join(CONTROL_SOCKET);
    if path.exists() {
        std::fs::remove_file(&path).with_context(|| format!("removing stale {}", path.display()))?;
    }
    let listener =
        std::os::unix::net::UnixListener::bind(&path).with_context(|| format!("binding {}", path.display()))?;
    std::thread::Builder::new().name("control socket".into()).spawn(move || {
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
                Some(cmd) => target.answer(cmd),
                None => format!("error unknown command {:?}: use {}", line.trim(), target.commands()),
            };
            let _ = writeln!(conn, "{answer}");
        }
    })?;
    Ok(path)
}

pub fn state_word(s: LinkState) -> &'static str {
    match s {
        LinkState::Removed => "removed",
        LinkState::Connecting => "inserted, waiting for pcscd",
        LinkState::Connected => "inserted, connected to pcscd",
        LinkState::Stopped => "stopped",
    }
}

/// A key served to vpcd: `remove`/`insert` pull it out of its reader and plug it back in,
/// answered once the link settled (at most 5 s); the power switch cuts power at the next
/// state write (for tearing tests) or restores it.
pub struct VpcdLink {
    pub inserted: watch::Sender<bool>,
    pub state: watch::Receiver<LinkState>,
    pub power: token_sim::faults::Faults,
    /// The server's runtime, whose link the answers wait for.
    pub runtime: tokio::runtime::Handle,
}

impl VpcdLink {
    fn settle(&self, done: impl Fn(LinkState) -> bool) -> String {
        let mut state = self.state.clone();
        self.runtime.block_on(async {
            let _ = tokio::time::timeout(Duration::from_secs(5), state.wait_for(|s| done(*s))).await;
        });
        format!("ok {}", state_word(*state.borrow()))
    }
}

impl Controlled for VpcdLink {
    fn answer(&self, cmd: ControlCommand) -> String {
        use proto::transport::PowerSwitch;
        match cmd {
            ControlCommand::Remove => {
                self.inserted.send_replace(false);
                self.settle(|s| s == LinkState::Removed)
            }
            ControlCommand::Insert => {
                self.inserted.send_replace(true);
                self.settle(|s| s == LinkState::Connected)
            }
            ControlCommand::Status => format!("ok {}", state_word(*self.state.borrow())),
            ControlCommand::CutPower => {
                PowerSwitch::cut_at_next_write(&mut self.power.clone());
                "ok power cut at the next write".to_string()
            }
            ControlCommand::RestorePower => {
                PowerSwitch::cancel(&mut self.power.clone());
                "ok power restored".to_string()
            }
        }
    }
    fn commands(&self) -> &'static str {
        "remove, insert, status, cut-power-at-next-write or restore-power"
    }
}

/// A key exported over USB/IP: `remove` is a USB disconnect (the importer's connection closes,
/// the key leaves DEVLIST), `insert` exports it again, `status` says which.
pub struct UsbipExport {
    pub exports: Arc<KeyExports>,
    /// The key's place among the exports.
    pub index: usize,
}

impl Controlled for UsbipExport {
    fn answer(&self, cmd: ControlCommand) -> String {
        match cmd {
            ControlCommand::Remove => self.exports.remove(self.index),
            ControlCommand::Insert => self.exports.insert(self.index),
            ControlCommand::Status => {}
            other => return format!("error {} is for keys served to vpcd", other.word()),
        }
        format!("ok {}", self.exports.state(self.index))
    }
    fn commands(&self) -> &'static str {
        "remove, insert or status"
    }
}
