//! The client side of `ukey sim serve`'s control socket (the server is the CLI's): one line
//! in, one line out. A key directory with a server answering there is served: reachable
//! through its reader (or USB/IP), not by opening the directory.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::Error;

/// The control socket `ukey sim serve` opens in each key directory.
pub const CONTROL_SOCKET: &str = "serve.sock";

/// A control command sent to a running `ukey sim serve`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlCommand {
    Remove,
    Insert,
    Status,
    /// Cut the key's power during its next persistent write (a power switch for
    /// `ukey conformance --reader NAME --power DIR`).
    CutPower,
    /// Nothing is cut any more.
    RestorePower,
}

impl ControlCommand {
    /// The command a line names (surrounding blanks and the newline ignored).
    pub fn parse(line: &str) -> Option<ControlCommand> {
        match line.trim() {
            "remove" => Some(ControlCommand::Remove),
            "insert" => Some(ControlCommand::Insert),
            "status" => Some(ControlCommand::Status),
            "cut-power-at-next-write" => Some(ControlCommand::CutPower),
            "restore-power" => Some(ControlCommand::RestorePower),
            _ => None,
        }
    }

    /// The word the socket reads.
    pub fn word(self) -> &'static str {
        match self {
            ControlCommand::Remove => "remove",
            ControlCommand::Insert => "insert",
            ControlCommand::Status => "status",
            ControlCommand::CutPower => "cut-power-at-next-write",
            ControlCommand::RestorePower => "restore-power",
        }
    }
}

/// Send `cmd` to the server holding `dir`; its answer after "ok ", or why not.
pub fn ask(dir: &Path, cmd: ControlCommand) -> Result<String, Error> {
    let socket = dir.join(CONTROL_SOCKET);
    let mut stream = UnixStream::connect(&socket).map_err(|source| Error::NotServed {
        dir: dir.to_path_buf(),
        socket: socket.clone(),
        source,
    })?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    writeln!(stream, "{}", cmd.word())?;
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer).map_err(Error::Answer)?;
    let answer = answer.trim();
    match answer.strip_prefix("ok ") {
        Some(state) => Ok(state.to_string()),
        None => Err(Error::Refused(answer.to_string())),
    }
}

/// Whether `dir` has a control socket (a server, or one that died without removing it).
pub fn has_socket(dir: &Path) -> bool {
    dir.join(CONTROL_SOCKET).exists()
}

/// Where a running `ukey sim serve` has this key, if one is serving it.
pub fn served_state(dir: &Path) -> Option<String> {
    if !has_socket(dir) {
        return None;
    }
    ask(dir, ControlCommand::Status).ok()
}

/// The power switch of a key a running `ukey sim serve` holds, worked through its control
/// socket: the conformance suite's hand on a served key's power.
pub struct ServedPower(PathBuf);

impl ServedPower {
    /// The switch of the key served from `dir`; an error unless a server answers there.
    pub fn new(dir: &Path) -> Result<ServedPower, Error> {
        ask(dir, ControlCommand::Status)?;
        Ok(ServedPower(dir.to_path_buf()))
    }
}

impl proto::transport::PowerSwitch for ServedPower {
    fn cut_at_next_write(&mut self) {
        if let Err(e) = ask(&self.0, ControlCommand::CutPower) {
            tracing::warn!("could not arm the power cut of {}: {}", self.0.display(), crate::error::chain(&e));
        }
    }
    fn cancel(&mut self) {
        if let Err(e) = ask(&self.0, ControlCommand::RestorePower) {
            tracing::warn!("could not restore the power of {}: {}", self.0.display(), crate::error::chain(&e));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_words_round_trip() {
        for c in [
            ControlCommand::Remove,
            ControlCommand::Insert,
            ControlCommand::Status,
            ControlCommand::CutPower,
            ControlCommand::RestorePower,
        ] {
            assert_eq!(ControlCommand::parse(&format!("{}\n", c.word())), Some(c));
        }
        assert_eq!(ControlCommand::parse("eject"), None);
    }

    #[test]
    fn a_directory_nobody_serves() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(served_state(dir.path()), None);
        let e = ask(dir.path(), ControlCommand::Status).unwrap_err().to_string();
        assert!(e.starts_with("no `ukey sim serve` is serving"), "{e}");
    }
}
