//! A USB device reached over USB/IP, in user space: OP_REQ_IMPORT, then each transfer a
//! CMD_SUBMIT answered by its RET_SUBMIT — what the kernel's vhci-hcd does, as a
//! [`UsbLink`] the CCID transport drives. An IN transfer that outlives its timeout is
//! unlinked (CMD_UNLINK), and a late completion of it is never taken for another's.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use proto::usb::{Setup, UsbError, UsbLink};
use proto::usbip::{parse_import, FrameError, OpRequest, UrbCommand, UrbHeader, UrbReply};

/// How long a control or OUT transfer may take (the device answers those at once).
const QUICK: Duration = Duration::from_secs(10);

pub struct UsbipLink {
    stream: TcpStream,
    buf: Vec<u8>,
    seq: u32,
    devid: u32,
    /// The IN URBs in flight (their RET_SUBMIT carries data).
    ins: HashSet<u32>,
    name: String,
}

fn io(e: impl std::fmt::Display) -> UsbError {
    UsbError::Io(e.to_string())
}

impl UsbipLink {
    /// Import `busid` from the USB/IP server at `addr` (HOST:PORT).
    pub fn import(addr: &str, busid: &str) -> Result<UsbipLink, UsbError> {
        let mut stream = TcpStream::connect(addr).map_err(|e| io(format!("connecting to {addr}: {e}")))?;
        let _ = stream.set_nodelay(true);
        stream.write_all(&OpRequest::Import { busid: busid.into() }.encode()).map_err(io)?;
        stream.set_read_timeout(Some(QUICK)).map_err(io)?;
        let mut buf = Vec::new();
        let (device, used) = loop {
            match parse_import(&buf) {
                Ok(v) => break v,
                Err(FrameError::Incomplete { need }) => {
                    let mut more = vec![0; need];
                    match stream.read(&mut more) {
                        Ok(0) => return Err(UsbError::Disconnected),
                        Ok(n) => buf.extend_from_slice(&more[..n]),
                        Err(e) => return Err(io(format!("reading the import reply: {e}"))),
                    }
                }
                Err(e) => return Err(io(format!("the import reply: {e}"))),
            }
        };
        let Some(device) = device else {
            return Err(io(format!("{addr} refused to export {busid} (no such device, or attached already)")));
        };
        buf.drain(..used);
        Ok(UsbipLink {
            stream,
            buf,
            seq: 0,
            devid: device.busnum << 16 | device.devnum,
            ins: HashSet::new(),
            name: format!("usbip {addr} {busid}"),
        })
    }

    /// The next reply, waiting until `deadline`; `Ok(None)` when it passed.
    fn reply(&mut self, deadline: Instant) -> Result<Option<UrbReply>, UsbError> {
        loop {
            let ins = &self.ins;
            match UrbReply::parse(&self.buf, |s| ins.contains(&s)) {
                Ok((r, used)) => {
                    self.buf.drain(..used);
                    return Ok(Some(r));
                }
                Err(FrameError::Incomplete { need }) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Ok(None);
                    }
                    self.stream.set_read_timeout(Some(deadline - now)).map_err(io)?;
                    let mut more = vec![0; need.max(48)];
                    match self.stream.read(&mut more) {
                        Ok(0) => return Err(UsbError::Disconnected),
                        Ok(n) => self.buf.extend_from_slice(&more[..n]),
                        Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                            return Ok(None)
                        }
                        Err(e) => return Err(io(e)),
                    }
                }
                Err(e) => return Err(io(format!("a URB reply: {e}"))),
            }
        }
    }

    /// One transfer: its status and IN data.
    fn submit(
        &mut self,
        ep: u8,
        dir_in: bool,
        setup: [u8; 8],
        data: &[u8],
        len: usize,
        timeout: Duration,
    ) -> Result<Vec<u8>, UsbError> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let header =
            UrbHeader { seqnum: seq, devid: self.devid, direction: u32::from(dir_in), ep: u32::from(ep & 0x0F) };
        let cmd = UrbCommand::Submit {
            header,
            transfer_flags: 0,
            transfer_buffer_length: len as u32,
            interval: 0,
            setup,
            data: if dir_in { Vec::new() } else { data.to_vec() },
        };
        if dir_in {
            self.ins.insert(seq);
        }
        self.stream.write_all(&zeroize::Zeroizing::new(cmd.encode())).map_err(io)?;
        let deadline = Instant::now() + timeout;
        loop {
            match self.reply(deadline)? {
                Some(UrbReply::Submit { seqnum, status, data, .. }) if seqnum == seq => {
                    self.ins.remove(&seq);
                    return match status {
                        0 => Ok(data),
                        -32 => Err(UsbError::Stall),
                        -108 | -19 => Err(UsbError::Disconnected),
                        s => Err(io(format!("the transfer ended with status {s}"))),
                    };
                }
                // Completions of unlinked URBs and unlink answers of earlier timeouts.
                Some(_) => continue,
                None => {
                    self.unlink(seq);
                    return Err(UsbError::Timeout);
                }
            }
        }
    }

    /// Cancel URB `victim` and wait (briefly) for the server to say so.
    fn unlink(&mut self, victim: u32) {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let header = UrbHeader { seqnum: seq, devid: self.devid, direction: 0, ep: 0 };
        if self.stream.write_all(&UrbCommand::Unlink { header, unlink_seqnum: victim }.encode()).is_err() {
            return;
        }
        let deadline = Instant::now() + QUICK;
        while let Ok(Some(r)) = self.reply(deadline) {
            if matches!(r, UrbReply::Unlink { seqnum, .. } if seqnum == seq) {
                break;
            }
        }
        self.ins.remove(&victim);
    }
}

impl UsbLink for UsbipLink {
    fn control_in(&mut self, setup: Setup) -> Result<Vec<u8>, UsbError> {
        self.submit(0, true, setup.to_bytes(), &[], setup.length.into(), QUICK)
    }

    fn control_out(&mut self, setup: Setup, data: &[u8]) -> Result<(), UsbError> {
        self.submit(0, false, setup.to_bytes(), data, data.len(), QUICK).map(|_| ())
    }

    fn bulk_out(&mut self, endpoint: u8, data: &[u8]) -> Result<(), UsbError> {
        self.submit(endpoint, false, [0; 8], data, data.len(), QUICK).map(|_| ())
    }

    fn bulk_in(&mut self, endpoint: u8, max: usize, timeout: Duration) -> Result<Vec<u8>, UsbError> {
        self.submit(endpoint, true, [0; 8], &[], max, timeout)
    }

    fn name(&self) -> String {
        self.name.clone()
    }
}
