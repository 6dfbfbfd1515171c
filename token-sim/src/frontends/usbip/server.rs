//! The USB/IP server's connection handling: one operation request per connection, as
//! `usbip list` and `usbip attach` send them; after an accepted import the connection carries
//! that device's URBs (`session`). Every connection first passes the owner-only rule (only the
//! serving user's processes; remote hosts only when allowed); a bad, truncated or idle
//! connection ends with a log line; nothing a client sends can panic or stop the server.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use localpeer::OwnerOnly;
use proto::Transport;

use super::conn::{Conn, Listener};
use super::error::timed_out;
pub use super::error::ConnectionError;
use super::wire::{encode_devlist, encode_import, DeviceRecord, FrameError, OpRequest};
use crate::frontends::ccid::device::Plugged;

/// A key plugged in for one importer, and what frees it for the next.
pub struct Import {
    pub record: DeviceRecord,
    pub plugged: Plugged,
    pub release: Box<dyn FnOnce() + Send>,
}

/// The keys a server exports.
pub trait Exports: Send + Sync {
    /// What `usbip list` shows now.
    fn list(&self) -> Vec<DeviceRecord>;
    /// Plug the key of `busid` into a software bus for one importer; `None` when there is no
    /// such key or it is attached already.
    fn plug(&self, busid: &str) -> Option<Import>;
    /// The importer's connection, once the import is answered (to close it on a disconnect).
    fn attached(&self, _busid: &str, _conn: Conn) {}
}

/// Listed, but not importable (tests of `usbip list`).
impl<F: Fn() -> Vec<DeviceRecord> + Send + Sync> Exports for F {
    fn list(&self) -> Vec<DeviceRecord> {
        self()
    }
    fn plug(&self, _busid: &str) -> Option<Import> {
        None
    }
}

/// How a server treats its connections.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Who may connect at all.
    pub rule: OwnerOnly,
    /// How long a new connection may take to send its request.
    pub request_timeout: Duration,
    /// An imported device with no URB submitted and none pending for this long is detached
    /// (its connection closed, the key free for the next importer). `None`: never.
    pub idle: Option<Duration>,
    /// Connections served at once; more are closed as they come. The default leaves the
    /// keys their own file descriptors (a key's state is written through a temp file, and a
    /// key whose write fails refuses everything until it is put back).
    pub max_connections: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            // Root too: `sudo usbip attach` imports for the kernel (root reads the keys'
            // files anyway); any other user is refused.
            rule: OwnerOnly::new().admitting_root(true),
            request_timeout: Duration::from_secs(10),
            idle: Some(DEFAULT_IDLE),
            max_connections: connection_budget(),
        }
    }
}

/// File descriptors kept for everything but connections: key files, logs, the control sockets.
const FD_RESERVE: u64 = 64;
/// Descriptors one imported connection holds (the socket, and its clones for the writer, the
/// session and the key's unplug).
const FDS_PER_CONNECTION: u64 = 4;

/// What the open-file limit leaves for connections.
pub fn connection_budget() -> usize {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile).current.unwrap_or(u64::MAX);
    (limit.saturating_sub(FD_RESERVE) / FDS_PER_CONNECTION).clamp(1, 4096) as usize
}

/// Default of [`Policy::idle`]: five minutes.
pub const DEFAULT_IDLE: Duration = Duration::from_secs(300);

/// What a connection asked for, as the log tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Served {
    DevList {
        devices: usize,
    },
    ImportRefused {
        busid: String,
    },
    /// The device was imported, and its URBs carried until the client left.
    Detached {
        busid: String,
    },
}

/// Read one operation request from `conn` (however the bytes arrive) and answer it from
/// `exports`; an accepted import goes on to carry the device's URBs.
pub fn answer(conn: &mut Conn, exports: &dyn Exports, policy: &Policy) -> Result<Served, ConnectionError> {
    conn.set_read_timeout(Some(policy.request_timeout))?;
    let mut buf = Vec::new();
    let request = loop {
        match OpRequest::parse(&buf) {
            Ok((request, _)) => break request,
            Err(FrameError::Incomplete { need }) => {
                let mut more = vec![0; need];
                let n = match conn.read(&mut more) {
                    Ok(n) => n,
                    Err(e) if timed_out(&e) => return Err(ConnectionError::NoRequest(policy.request_timeout)),
                    Err(e) => return Err(e.into()),
                };
                if n == 0 {
                    return Err(ConnectionError::Closed);
                }
                buf.extend_from_slice(&more[..n]);
            }
            Err(e) => return Err(e.into()),
        }
    };
    match request {
        OpRequest::DevList => {
            let devices = exports.list();
            conn.write_all(&encode_devlist(&devices))?;
            Ok(Served::DevList { devices: devices.len() })
        }
        OpRequest::Import { busid } => match exports.plug(&busid) {
            None => {
                conn.write_all(&encode_import(None))?;
                Ok(Served::ImportRefused { busid })
            }
            Some(Import { record, plugged, release }) => {
                conn.set_nodelay();
                let r = (|| {
                    conn.write_all(&encode_import(Some(&record)))?;
                    exports.attached(&busid, conn.try_clone()?);
                    super::session::run(conn.try_clone()?, plugged.host(), policy.idle)
                })();
                // Unplugged before the key is free for the next importer.
                drop(plugged);
                release();
                r.map(|()| Served::Detached { busid })
            }
        },
    }
}

/// The first wait after a failed accept, and the longest.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(10), Duration::from_secs(1));

/// Serve `listener` for ever: each admitted connection on its own thread, answered from
/// `exports` at the time it comes. A failed accept (out of file descriptors, say) or a thread
/// that cannot start is logged and waited out, never the end of the server.
pub fn serve(listener: impl Into<Listener>, exports: Arc<dyn Exports>, policy: Policy) {
    let listener = listener.into();
    let mut backoff = BACKOFF.0;
    let open = Arc::new(AtomicUsize::new(0));
    let mut last_full: Option<Instant> = None;
    loop {
        let conn = match listener.accept() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionAborted => continue,
            Err(e) => {
                tracing::warn!("usbip: accepting a connection failed: {e}; trying again in {backoff:?}");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(BACKOFF.1);
                continue;
            }
        };
        backoff = BACKOFF.0;
        let peer = conn.peer();
        // Before any byte is read: another user's request never reaches a key.
        if let Err(refused) = conn.admit(&policy.rule) {
            tracing::warn!("usbip: refused {refused}");
            conn.shutdown();
            continue;
        }
        if open.load(Ordering::SeqCst) >= policy.max_connections {
            // Said once a second at most: a flood must not fill the log either.
            if last_full.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                tracing::warn!("usbip: {} connections open already; closing new ones", policy.max_connections);
                last_full = Some(Instant::now());
            }
            conn.shutdown();
            continue;
        }
        let exports = exports.clone();
        let counted = Counted::new(&open);
        let started = std::thread::Builder::new().name(format!("usbip {peer}")).spawn(move || {
            let _counted = counted;
            let mut conn = conn;
            match answer(&mut conn, &*exports, &policy) {
                Ok(Served::DevList { devices }) => tracing::info!("usbip {peer}: listed {devices} key(s)"),
                Ok(Served::ImportRefused { busid }) => {
                    tracing::warn!("usbip {peer}: import of {busid} refused: no such key, or it is attached already")
                }
                Ok(Served::Detached { busid }) => tracing::info!("usbip {peer}: {busid} detached"),
                Err(e) => tracing::warn!("usbip {peer}: connection closed: {e}"),
            }
        });
        if let Err(e) = started {
            tracing::warn!("usbip: no thread for a connection: {e}; trying again in {backoff:?}");
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(BACKOFF.1);
        }
    }
}

/// One open connection, counted while it lives.
struct Counted(Arc<AtomicUsize>);

impl Counted {
    fn new(open: &Arc<AtomicUsize>) -> Counted {
        open.fetch_add(1, Ordering::SeqCst);
        Counted(open.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Virtual keys exported as bus ids 1-1, 1-2, ...: each importable by one client at a time.
/// Pulling a key out ([`KeyExports::remove`]) is a USB disconnect: its importer's connection
/// is closed and the key is no longer listed until it is put back.
pub struct KeyExports {
    keys: Vec<crate::SharedKey>,
    attached: Arc<std::sync::Mutex<Vec<Option<Attachment>>>>,
}

/// An importer's hold on a key: the connection to close and the device to unplug.
struct Attachment {
    host: crate::frontends::ccid::bus::HostEnd,
    conn: Option<Conn>,
}

impl KeyExports {
    pub fn new(keys: Vec<crate::SharedKey>) -> KeyExports {
        let n = keys.len();
        KeyExports { keys, attached: Arc::new(std::sync::Mutex::new((0..n).map(|_| None).collect())) }
    }

    fn index(busid: &str) -> Option<usize> {
        let n: usize = busid.strip_prefix("1-")?.parse().ok()?;
        n.checked_sub(1)
    }

    /// Pull key `i` (from 0) out: a USB disconnect for whoever has it attached.
    pub fn remove(&self, i: usize) {
        if let Some(k) = self.keys.get(i) {
            k.lock().remove();
        }
        let held = self.attached.lock().unwrap_or_else(|p| p.into_inner()).get_mut(i).and_then(Option::take);
        if let Some(a) = held {
            if let Some(c) = &a.conn {
                c.shutdown();
            }
            a.host.unplug();
        }
    }

    /// Put key `i` back: listed and importable again.
    pub fn insert(&self, i: usize) {
        if let Some(k) = self.keys.get(i) {
            k.lock().insert();
        }
    }

    /// Where key `i` stands: "removed", "exported as 1-N" or "attached as 1-N".
    pub fn state(&self, i: usize) -> String {
        let present = self.keys.get(i).is_some_and(|k| k.lock().is_present());
        let attached = self.attached.lock().unwrap_or_else(|p| p.into_inner()).get(i).is_some_and(Option::is_some);
        match (present, attached) {
            (false, _) => "removed".into(),
            (true, false) => format!("inserted, exported as 1-{}", i + 1),
            (true, true) => format!("inserted, attached as 1-{}", i + 1),
        }
    }
}

impl Exports for KeyExports {
    fn list(&self) -> Vec<DeviceRecord> {
        // A key pulled out is a device unplugged: not listed.
        (1..).zip(&self.keys).filter(|(_, k)| k.lock().is_present()).map(|(n, _)| super::device_record(n)).collect()
    }

    fn plug(&self, busid: &str) -> Option<Import> {
        let i = Self::index(busid)?;
        let key = self.keys.get(i)?.clone();
        if !key.lock().is_present() {
            return None;
        }
        let mut attached = self.attached.lock().unwrap_or_else(|p| p.into_inner());
        if attached[i].is_some() {
            return None;
        }
        let plugged = Plugged::new(key);
        attached[i] = Some(Attachment { host: plugged.host(), conn: None });
        let flags = self.attached.clone();
        let release = Box::new(move || flags.lock().unwrap_or_else(|p| p.into_inner())[i] = None);
        Some(Import { record: super::device_record(i as u32 + 1), plugged, release })
    }

    fn attached(&self, busid: &str, conn: Conn) {
        let Some(i) = Self::index(busid) else { return };
        if let Some(Some(a)) = self.attached.lock().unwrap_or_else(|p| p.into_inner()).get_mut(i) {
            a.conn = Some(conn);
        }
    }
}
