//! What can go wrong reaching a key. The messages are the ones users have always read; a
//! cause is a `source`, so `{:#}` (anyhow) or [`chain`] prints "what: why".

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Neither `$UKEY_HOME` nor `$HOME` says where ukey's files are.
    #[error("no home for ukey's files: set UKEY_HOME (or HOME)")]
    NoHome,
    /// A virtual key's directory that `ukey sim serve` holds: reachable through its reader only.
    #[error("{} is being served by `ukey sim serve` ({state}); reach it through its reader with --reader", dir.display())]
    Served { dir: PathBuf, state: String },
    #[error("opening the virtual key in {}", dir.display())]
    OpenDir {
        dir: PathBuf,
        #[source]
        source: token_sim::virtual_key::KeyError,
    },
    #[error("driving the key through CCID")]
    Ccid(#[source] host_driver::ccid::CcidError),
    #[error(transparent)]
    Pcsc(#[from] host_driver::pcsc::PcscError),
    #[error(transparent)]
    Piv(#[from] host_driver::PivError),
    #[error("{name}: the key did not answer SELECT PIV")]
    Select {
        name: String,
        #[source]
        source: host_driver::PivError,
    },
    #[error("cannot list {}", dir.display())]
    List {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// No server answers on a key directory's control socket.
    #[error("no `ukey sim serve` is serving {} (cannot connect to {})", dir.display(), socket.display())]
    NotServed {
        dir: PathBuf,
        socket: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("reading the server's answer")]
    Answer(#[source] std::io::Error),
    /// The server understood something else, or refused.
    #[error("server answered: {0}")]
    Refused(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("manufacturer CA in {}", dir.display())]
    Factory {
        dir: PathBuf,
        #[source]
        source: ca::CaError,
    },
}

/// An error and its causes, "what: why: ...", as anyhow's `{:#}` prints them.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}
