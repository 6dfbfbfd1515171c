//! The USB/IP server's connection handling: one operation request per connection, as
//! `usbip list` and `usbip attach` send them; after an accepted import the connection carries
//! that device's URBs (`session`). A bad or truncated frame ends that connection with a log
//! line; nothing a client sends can panic the server.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;

use proto::Transport;

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
    fn attached(&self, _busid: &str, _stream: TcpStream) {}
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

/// Why a connection ended before its request was answered.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("the client closed the connection mid-request")]
    Closed,
    #[error("bad request: {0}")]
    Frame(#[from] FrameError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

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

/// Read one operation request from `stream` (however the bytes arrive) and answer it from
/// `exports`; an accepted import goes on to carry the device's URBs.
pub fn answer(stream: &mut TcpStream, exports: &dyn Exports) -> Result<Served, ConnectionError> {
    let mut buf = Vec::new();
    let request = loop {
        match OpRequest::parse(&buf) {
            Ok((request, _)) => break request,
            Err(FrameError::Incomplete { need }) => {
                let mut more = vec![0; need];
                let n = stream.read(&mut more)?;
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
            stream.write_all(&encode_devlist(&devices))?;
            Ok(Served::DevList { devices: devices.len() })
        }
        OpRequest::Import { busid } => match exports.plug(&busid) {
            None => {
                stream.write_all(&encode_import(None))?;
                Ok(Served::ImportRefused { busid })
            }
            Some(Import { record, plugged, release }) => {
                let _ = stream.set_nodelay(true);
                stream.write_all(&encode_import(Some(&record)))?;
                exports.attached(&busid, stream.try_clone()?);
                let r = super::session::run(stream.try_clone()?, plugged.host());
                // Unplugged before the key is free for the next importer.
                drop(plugged);
                release();
                r.map(|()| Served::Detached { busid })
            }
        },
    }
}

/// Serve `listener` until it fails: each connection on its own thread, answered from
/// `exports` at the time it comes.
pub fn serve(listener: TcpListener, exports: Arc<dyn Exports>) -> std::io::Result<()> {
    for stream in listener.incoming() {
        let mut stream = stream?;
        let exports = exports.clone();
        std::thread::spawn(move || {
            let peer = stream.peer_addr().map(|a| a.to_string()).unwrap_or_default();
            match answer(&mut stream, &*exports) {
                Ok(Served::DevList { devices }) => tracing::info!("usbip {peer}: listed {devices} key(s)"),
                Ok(Served::ImportRefused { busid }) => {
                    tracing::warn!("usbip {peer}: import of {busid} refused: no such key, or it is attached already")
                }
                Ok(Served::Detached { busid }) => tracing::info!("usbip {peer}: {busid} detached"),
                Err(e) => tracing::warn!("usbip {peer}: connection closed: {e}"),
            }
        });
    }
    Ok(())
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
    stream: Option<TcpStream>,
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
            if let Some(s) = &a.stream {
                let _ = s.shutdown(std::net::Shutdown::Both);
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
        attached[i] = Some(Attachment { host: plugged.host(), stream: None });
        let flags = self.attached.clone();
        let release = Box::new(move || flags.lock().unwrap_or_else(|p| p.into_inner())[i] = None);
        Some(Import { record: super::device_record(i as u32 + 1), plugged, release })
    }

    fn attached(&self, busid: &str, stream: TcpStream) {
        let Some(i) = Self::index(busid) else { return };
        if let Some(Some(a)) = self.attached.lock().unwrap_or_else(|p| p.into_inner()).get_mut(i) {
            a.stream = Some(stream);
        }
    }
}
