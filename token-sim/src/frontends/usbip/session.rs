//! One imported device: the client's URBs carried to the key's CCID device on the software
//! bus, and their completions back. Control and bulk-OUT transfers complete at once; every
//! IN transfer is held until the device sends (pending URBs are completed in order, one
//! endpoint worker each), at most `transfer_buffer_length` bytes of it. CMD_UNLINK of a URB
//! still pending cancels it (RET_UNLINK -ECONNRESET, and it never gets a RET_SUBMIT); of one
//! already completed, RET_UNLINK 0.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use proto::usb::{Setup, UsbError, UsbLink};

use super::server::ConnectionError;
use super::wire::{encode_ret_submit, encode_ret_unlink, FrameError, UrbCommand};
use crate::frontends::ccid::bus::HostEnd;

const EPIPE: i32 = -32;
const ECONNRESET: i32 = -104;
const ESHUTDOWN: i32 = -108;
const ETIMEDOUT: i32 = -110;

struct Shared {
    out: Mutex<TcpStream>,
    /// IN URBs not completed yet, by seqnum, with their cancel flags. Completions and
    /// unlinks take this lock while they answer, so a URB gets exactly one of the two.
    pending: Mutex<HashMap<u32, Arc<AtomicBool>>>,
}

impl Shared {
    fn send(&self, bytes: &[u8]) {
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        let _ = out.write_all(bytes);
    }
}

fn status_of(e: &UsbError) -> i32 {
    match e {
        UsbError::Stall => EPIPE,
        UsbError::Timeout => ETIMEDOUT,
        UsbError::Disconnected | UsbError::Io(_) => ESHUTDOWN,
    }
}

/// Carry URBs between `stream` and the device behind `host` until the client goes away.
pub fn run(mut stream: TcpStream, host: HostEnd) -> Result<(), ConnectionError> {
    let shared = Arc::new(Shared { out: Mutex::new(stream.try_clone()?), pending: Mutex::new(HashMap::new()) });
    let mut workers: HashMap<u8, mpsc::Sender<(u32, usize, Arc<AtomicBool>)>> = HashMap::new();
    let mut buf = Vec::new();
    let result = loop {
        let command = match UrbCommand::parse(&buf) {
            Ok((c, used)) => {
                buf.drain(..used);
                c
            }
            Err(FrameError::Incomplete { need }) => {
                let mut more = vec![0; need.max(48)];
                match stream.read(&mut more) {
                    Ok(0) => break Ok(()),
                    Ok(n) => buf.extend_from_slice(&more[..n]),
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
                if ep == 0 {
                    let mut s = Setup::parse(&setup);
                    let mut link = host.clone();
                    let answer = if s.is_in() {
                        s.length = s.length.min(transfer_buffer_length.min(u16::MAX as u32) as u16);
                        link.control_in(s)
                    } else {
                        link.control_out(s, &data).map(|()| Vec::new())
                    };
                    let reply = match answer {
                        Ok(d) if s.is_in() => encode_ret_submit(seq, 0, d.len() as u32, &d),
                        Ok(_) => encode_ret_submit(seq, 0, data.len() as u32, &[]),
                        Err(e) => encode_ret_submit(seq, status_of(&e), 0, &[]),
                    };
                    shared.send(&reply);
                } else if !dir_in {
                    let reply = match host.clone().bulk_out(ep, &data) {
                        Ok(()) => encode_ret_submit(seq, 0, data.len() as u32, &[]),
                        Err(e) => encode_ret_submit(seq, status_of(&e), 0, &[]),
                    };
                    shared.send(&reply);
                } else {
                    let flag = Arc::new(AtomicBool::new(false));
                    shared.pending.lock().unwrap_or_else(|p| p.into_inner()).insert(seq, flag.clone());
                    let worker = workers.entry(ep).or_insert_with(|| in_worker(ep, host.clone(), shared.clone()));
                    let _ = worker.send((seq, max, flag));
                }
            }
            UrbCommand::Unlink { header, unlink_seqnum } => {
                let mut pending = shared.pending.lock().unwrap_or_else(|p| p.into_inner());
                let status = match pending.remove(&unlink_seqnum) {
                    Some(flag) => {
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
    for flag in shared.pending.lock().unwrap_or_else(|p| p.into_inner()).drain().map(|(_, f)| f) {
        flag.store(true, Ordering::SeqCst);
    }
    host.poke();
    result
}

/// The worker of one IN endpoint: its pending URBs, completed in the order they came.
fn in_worker(ep: u8, host: HostEnd, shared: Arc<Shared>) -> mpsc::Sender<(u32, usize, Arc<AtomicBool>)> {
    let (tx, rx) = mpsc::channel::<(u32, usize, Arc<AtomicBool>)>();
    std::thread::spawn(move || {
        for (seq, max, cancelled) in rx {
            if cancelled.load(Ordering::SeqCst) {
                continue;
            }
            let got = host.bulk_in_unless(ep | 0x80, max, &cancelled);
            let mut pending = shared.pending.lock().unwrap_or_else(|p| p.into_inner());
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
    });
    tx
}
