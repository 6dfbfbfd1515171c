//! One imported device: the client's URBs carried to the key's CCID device on the software
//! bus, and their completions back. Control transfers complete at once; a bulk OUT completes
//! when the device has taken its data (as a host controller answers it), so an importer that
//! floods OUT transfers is held back by TCP rather than queued in memory. Every IN transfer
//! is held until the device sends (pending URBs are completed in order, one endpoint worker
//! each, at most [`MAX_PENDING_IN`] per endpoint), at most `transfer_buffer_length` bytes of
//! it. CMD_UNLINK of a URB still pending cancels it (RET_UNLINK -ECONNRESET, and it never gets
//! a RET_SUBMIT); of one already completed, RET_UNLINK 0. A seqnum still pending submitted
//! again ends the session: its completions could no longer be told apart.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proto::usb::{Setup, UsbError, UsbLink};

use super::conn::Conn;
use super::error::{timed_out, ConnectionError};
use super::wire::{encode_ret_submit, encode_ret_unlink, FrameError, UrbCommand};
use crate::frontends::ccid::bus::HostEnd;

const ENOMEM: i32 = -12;
const EPIPE: i32 = -32;
const ECONNRESET: i32 = -104;
const ESHUTDOWN: i32 = -108;
const ETIMEDOUT: i32 = -110;

/// How long a completion may wait for the client to read.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// IN URBs an endpoint holds at once; more are refused with -ENOMEM, as a host controller out
/// of transfer descriptors would. Kernels queue a handful.
pub const MAX_PENDING_IN: usize = 32;

/// A pending IN URB: its endpoint, and the flag that cancels it.
type PendingIn = (u8, Arc<AtomicBool>);

struct Shared {
    out: Mutex<Conn>,
    /// IN URBs not completed yet, by seqnum. Completions and unlinks take this lock while
    /// they answer, so a URB gets exactly one of the two.
    pending: Mutex<HashMap<u32, PendingIn>>,
}

impl Shared {
    fn send(&self, bytes: &[u8]) {
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        if out.write_all(bytes).is_err() {
            // The client is gone or not reading: end the session (the reader sees it closed).
            out.shutdown();
        }
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<u32, PendingIn>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn status_of(e: &UsbError) -> i32 {
    match e {
        UsbError::Stall => EPIPE,
        UsbError::Timeout => ETIMEDOUT,
        UsbError::Disconnected | UsbError::Io(_) => ESHUTDOWN,
    }
}

/// Carry URBs between `conn` and the device behind `host` until the client goes away, or
/// (with `idle`) until no URB came and none was pending for that long.
pub fn run(mut conn: Conn, host: HostEnd, idle: Option<Duration>) -> Result<(), ConnectionError> {
    conn.set_read_timeout(idle)?;
    // A client that stops reading its completions must not hold the key: a write that cannot
    // go out in this time ends the session.
    conn.set_write_timeout(Some(idle.unwrap_or(WRITE_TIMEOUT).min(WRITE_TIMEOUT)))?;
    let shared = Arc::new(Shared { out: Mutex::new(conn.try_clone()?), pending: Mutex::new(HashMap::new()) });
    let mut workers: HashMap<u8, mpsc::SyncSender<(u32, usize, Arc<AtomicBool>)>> = HashMap::new();
    let mut buf = Vec::new();
    let result = loop {
        let command = match UrbCommand::parse(&buf) {
            Ok((c, used)) => {
                buf.drain(..used);
                c
            }
            Err(FrameError::Incomplete { need }) => {
                let mut more = vec![0; need.max(48)];
                match conn.read(&mut more) {
                    Ok(0) => break Ok(()),
                    Ok(n) => buf.extend_from_slice(&more[..n]),
                    // An IN transfer still waits on the device: the importer is not idle.
                    Err(e) if timed_out(&e) && !shared.pending().is_empty() => {}
                    Err(e) if timed_out(&e) => break Err(ConnectionError::Idle(idle.unwrap_or_default())),
                    Err(e) => break Err(e.into()),
                }
                continue;
            }
            Err(e) => break Err(e.into()),
        };
        match command {
            UrbCommand::Submit { header, transfer_buffer_length, setup, data, .. } => {
                let seq = header.seqnum;
                let ep = (header.ep & 0x0F) as u8;
                let dir_in = header.direction == 1;
                let max = transfer_buffer_length as usize;
                if shared.pending().contains_key(&seq) {
                    break Err(ConnectionError::Protocol(format!("seqnum {seq} submitted while still pending")));
                }
                if ep == 0 {
                    let reply = control(&host, seq, &setup, transfer_buffer_length, &data);
                    shared.send(&reply);
                } else if !dir_in {
                    let reply = match host.clone().bulk_out(ep, &data) {
                        Ok(()) => encode_ret_submit(seq, 0, data.len() as u32, &[]),
                        Err(e) => encode_ret_submit(seq, status_of(&e), 0, &[]),
                    };
                    shared.send(&reply);
                } else {
                    let mut pending = shared.pending();
                    if pending.values().filter(|(e, _)| *e == ep).count() >= MAX_PENDING_IN {
                        drop(pending);
                        shared.send(&encode_ret_submit(seq, ENOMEM, 0, &[]));
                        continue;
                    }
                    let flag = Arc::new(AtomicBool::new(false));
                    pending.insert(seq, (ep, flag.clone()));
                    drop(pending);
                    if let std::collections::hash_map::Entry::Vacant(slot) = workers.entry(ep) {
                        match in_worker(ep, host.clone(), shared.clone()) {
                            Ok(w) => drop(slot.insert(w)),
                            // No thread to be had (a process at its limit): this URB is
                            // refused like a full queue, and the next one tries again.
                            Err(e) => tracing::warn!("USB/IP: no worker for endpoint {ep:#04x}: {e}"),
                        }
                    }
                    // Bounded, and never waited on: a queue still full of unlinked URBs
                    // behind one the device has not answered refuses this one.
                    let queued = workers.get(&ep).is_some_and(|w| w.try_send((seq, max, flag)).is_ok());
                    if !queued {
                        shared.pending().remove(&seq);
                        shared.send(&encode_ret_submit(seq, ENOMEM, 0, &[]));
                    }
                }
            }
            UrbCommand::Unlink { header, unlink_seqnum } => {
                let mut pending = shared.pending();
                let status = match pending.remove(&unlink_seqnum) {
                    Some((_, flag)) => {
                        flag.store(true, Ordering::SeqCst);
                        host.poke();
                        ECONNRESET
                    }
                    None => 0,
                };
                shared.send(&encode_ret_unlink(header.seqnum, status));
            }
        }
    };
    // The client is gone: whatever still waits is cancelled.
    for (_, flag) in shared.pending().drain().map(|(_, f)| f) {
        flag.store(true, Ordering::SeqCst);
    }
    host.poke();
    result
}

/// One control transfer on endpoint 0, answered as its RET_SUBMIT (an OUT whose data is not
/// its SETUP's wLength stalls in [`HostEnd`]).
fn control(host: &HostEnd, seq: u32, setup: &[u8; 8], buffer_length: u32, data: &[u8]) -> Vec<u8> {
    let mut s = Setup::parse(setup);
    let mut link = host.clone();
    if s.is_in() {
        s.length = s.length.min(buffer_length.min(u16::MAX as u32) as u16);
        return match link.control_in(s) {
            Ok(d) => encode_ret_submit(seq, 0, d.len() as u32, &d),
            Err(e) => encode_ret_submit(seq, status_of(&e), 0, &[]),
        };
    }
    match link.control_out(s, data) {
        Ok(()) => encode_ret_submit(seq, 0, data.len() as u32, &[]),
        Err(e) => encode_ret_submit(seq, status_of(&e), 0, &[]),
    }
}

/// The worker of one IN endpoint: its pending URBs, completed in the order they came.
fn in_worker(
    ep: u8,
    host: HostEnd,
    shared: Arc<Shared>,
) -> std::io::Result<mpsc::SyncSender<(u32, usize, Arc<AtomicBool>)>> {
    let (tx, rx) = mpsc::sync_channel::<(u32, usize, Arc<AtomicBool>)>(MAX_PENDING_IN);
    std::thread::Builder::new().name(format!("usbip in {ep:#04x}")).spawn(move || {
        for (seq, max, cancelled) in rx {
            if cancelled.load(Ordering::SeqCst) {
                continue;
            }
            let got = host.bulk_in_unless(ep | 0x80, max, &cancelled);
            let mut pending = shared.pending();
            let reply = match got {
                Ok(None) => continue,
                Ok(Some(d)) => encode_ret_submit(seq, 0, d.len() as u32, &d),
                Err(e) => encode_ret_submit(seq, status_of(&e), 0, &[]),
            };
            if pending.remove(&seq).is_some() {
                shared.send(&reply);
            }
            drop(pending);
        }
    })?;
    Ok(tx)
}
