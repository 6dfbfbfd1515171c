//! The owner-only rule of every local ukey service (a served key over USB/IP, the agent and
//! the faces to come): a connection is answered only when the process at its other end runs
//! as the same user as the server. Another user of the machine is refused before a byte of
//! the connection is read, so nothing they send reaches a card.
//!
//! - On a Unix socket the kernel says who the peer is (`SO_PEERCRED`).
//! - On TCP the peer's socket, when it is on this machine, is a row of `/proc/net/tcp` (or
//!   `tcp6`) whose local address is the connection's remote one and the other way round; the
//!   row names its owner's uid. A peer found nowhere is on another machine: refused unless the
//!   service was told to take remote clients, who can then not be told apart.
//!
//! Linux only, as `/proc` and `SO_PEERCRED` are.

use std::net::SocketAddr;
use std::os::fd::AsFd;

mod tcp;

pub use tcp::{closed_here, find_owner};

/// A user id.
pub type Uid = u32;

/// Who is on the other end of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// A process of this machine running as `uid`.
    Local { uid: Uid },
    /// No socket of this machine is the other end: another host.
    Remote,
}

/// Why a connection is not answered. The message names the peer, for the service's log.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("{peer} belongs to uid {uid}, not to uid {owner} who runs this service")]
    OtherUser { peer: String, uid: Uid, owner: Uid },
    #[error("{peer} is not on this machine, and remote clients are not allowed")]
    Remote { peer: String },
    #[error("cannot tell who {peer} is: {why}")]
    Unknown { peer: String, why: String },
}

/// The rule: the service's own user only; remote peers only when the service was started to
/// take them (they cannot be told apart, so it warns when it starts).
#[derive(Debug, Clone, Copy)]
pub struct OwnerOnly {
    owner: Uid,
    allow_remote: bool,
    admit_root: bool,
}

impl Default for OwnerOnly {
    fn default() -> Self {
        OwnerOnly::new()
    }
}

impl OwnerOnly {
    /// This process's user only.
    pub fn new() -> OwnerOnly {
        OwnerOnly { owner: own_uid(), allow_remote: false, admit_root: false }
    }

    /// Also admit root, which can read the owner's files and processes anyway: a kernel's
    /// USB/IP import is made by `sudo usbip attach`, whose socket is root's.
    pub fn admitting_root(self, admit: bool) -> OwnerOnly {
        OwnerOnly { admit_root: admit, ..self }
    }

    /// Also admit connections from other machines (`--usbip-allow-remote`).
    pub fn allowing_remote(self, allow: bool) -> OwnerOnly {
        OwnerOnly { allow_remote: allow, ..self }
    }

    pub fn owner(&self) -> Uid {
        self.owner
    }

    /// Admit `peer`, or say why not.
    pub fn admit(&self, peer: Peer, name: impl std::fmt::Display) -> Result<(), Refused> {
        match peer {
            Peer::Local { uid } if uid == self.owner || (self.admit_root && uid == 0) => Ok(()),
            Peer::Local { uid } => Err(Refused::OtherUser { peer: name.to_string(), uid, owner: self.owner }),
            Peer::Remote if self.allow_remote => Ok(()),
            Peer::Remote => Err(Refused::Remote { peer: name.to_string() }),
        }
    }

    /// Admit the TCP connection from `peer` to `local`.
    pub fn admit_tcp(&self, local: SocketAddr, peer: SocketAddr) -> Result<(), Refused> {
        let who = tcp_peer(local, peer).map_err(|e| Refused::Unknown { peer: peer.to_string(), why: e.to_string() })?;
        self.admit(who, peer)
    }

    /// Admit the peer of a connected Unix socket.
    pub fn admit_unix(&self, socket: impl AsFd) -> Result<(), Refused> {
        let uid = unix_peer_uid(socket)
            .map_err(|e| Refused::Unknown { peer: "a unix socket peer".into(), why: e.to_string() })?;
        self.admit(Peer::Local { uid }, format_args!("unix socket peer (uid {uid})"))
    }
}

/// The effective uid of this process.
pub fn own_uid() -> Uid {
    rustix::process::geteuid().as_raw()
}

/// The uid of the process at the other end of a connected Unix socket.
pub fn unix_peer_uid(socket: impl AsFd) -> std::io::Result<Uid> {
    let cred = rustix::net::sockopt::socket_peercred(socket)?;
    Ok(cred.uid.as_raw())
}

/// Who is at `peer` of the TCP connection whose local end is `local`.
pub fn tcp_peer(local: SocketAddr, peer: SocketAddr) -> std::io::Result<Peer> {
    let mut rows = procfs::net::tcp().map_err(std::io::Error::other)?;
    // A v6 table read fails where IPv6 is off; the v4 table then holds every socket.
    rows.extend(procfs::net::tcp6().unwrap_or_default());
    let table = || rows.iter().map(|r| (r.local_address, r.remote_address, r.uid, r.inode));
    Ok(match find_owner(table(), local, peer) {
        Some(uid) => Peer::Local { uid },
        // Closed, from any address of this machine: never taken for a remote peer.
        None if closed_here(table(), local, peer) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no process holds its socket (closed already)",
            ));
        }
        None if peer.ip().to_canonical().is_loopback() || peer.ip().to_canonical() == local.ip().to_canonical() => {
            // A loopback peer is on this machine by definition; if no process holds its socket
            // it has already hung up, and what it sent is not answered.
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no process holds its socket (closed already, or in another network namespace)",
            ));
        }
        None => Peer::Remote,
    })
}
