//! A [`Transport`] that speaks USB CCID (rev 1.1) to a reader over any [`UsbLink`]: the
//! card's software USB bus in this process, or a USB/IP connection. It does what a host's
//! CCID driver does: reads the device and class descriptors and honours them (exchange level,
//! dwMaxCCIDMessageLength), powers the card (PC_to_RDR_IccPowerOn/Off), asks its state
//! (GetSlotStatus), sends APDUs in XfrBlocks (chained at the extended APDU level when longer
//! than one message, both ways), checks every reply's bSeq, waits through time extensions
//! (for [`DEFAULT_MAX_WAIT`] at most), bounds a chained response ([`MAX_RESPONSE`]), and
//! aborts (control request and bulk Abort) a command the reader does not answer.

use std::time::Duration;

use proto::ccid::{self, cmd, error, features, reply, request, Chain, ClassDescriptor, Icc, Outcome, Status};
use proto::transport::{Transport, TransportError};
use proto::usb::{Setup, UsbError, UsbLink};

/// How long one reply may take, time extensions aside (each one restarts it).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a command may take with all its time extensions: a reader that asks for more
/// time for ever is aborted then (an RSA 4096 key generation takes a minute or two).
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(300);
/// The longest response a chained reply may build: an extended APDU's 65,536 bytes and SW.
pub const MAX_RESPONSE: usize = 65_538;
/// The most pieces a chained reply may come in (empty pieces count too).
pub const MAX_PIECES: usize = 4096;

/// What opening a CCID reader can run into.
#[derive(Debug, thiserror::Error)]
pub enum CcidError {
    #[error("USB: {0}")]
    Usb(#[from] UsbError),
    #[error("not a usable CCID reader: {0}")]
    Unsupported(String),
    #[error("malformed USB descriptors: {0}")]
    Descriptor(String),
}

/// The CCID interface a configuration descriptor offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CcidInterface {
    pub configuration: u8,
    pub interface: u8,
    pub descriptor: ClassDescriptor,
    pub bulk_out: u8,
    pub bulk_in: u8,
    pub interrupt: Option<u8>,
}

/// Find the CCID interface in a whole configuration descriptor (USB 2.0 §9.6.3).
pub fn find_interface(config: &[u8]) -> Result<CcidInterface, CcidError> {
    let bad = |m: &str| CcidError::Descriptor(m.to_string());
    if config.len() < 9 || config[1] != 2 {
        return Err(bad("no configuration descriptor"));
    }
    let configuration = config[5];
    // The interface number, class descriptor and endpoints of the first class-0x0B interface.
    let mut interface: Option<u8> = None;
    let mut descriptor: Option<ClassDescriptor> = None;
    let (mut bulk_out, mut bulk_in, mut interrupt) = (0, 0, None);
    let mut i = 0;
    while i < config.len() {
        let len = config[i] as usize;
        if len < 2 || i + len > config.len() {
            return Err(bad("a descriptor runs past the configuration"));
        }
        let d = &config[i..i + len];
        let in_ccid = interface.is_some();
        match d[1] {
            // INTERFACE: class 0x0B is ours; anything after another interface is not.
            4 if len >= 9 => {
                if in_ccid {
                    break;
                }
                if d[5] == ccid::CLASS {
                    interface = Some(d[2]);
                }
            }
            ccid::DESCRIPTOR_TYPE if in_ccid => {
                descriptor =
                    Some(ClassDescriptor::parse(d).ok_or_else(|| bad("the CCID class descriptor is not 54 bytes"))?);
            }
            // ENDPOINT: address, attributes (transfer type in bits 0-1).
            5 if in_ccid && len >= 7 => match (d[3] & 0x03, d[2] & 0x80 != 0) {
                (2, false) => bulk_out = d[2],
                (2, true) => bulk_in = d[2],
                (3, true) => interrupt = Some(d[2]),
                _ => {}
            },
            _ => {}
        }
        i += len;
    }
    let interface =
        interface.ok_or_else(|| CcidError::Unsupported("no interface of class 0x0B (smart card)".into()))?;
    let descriptor = descriptor.ok_or_else(|| bad("the CCID interface has no class descriptor"))?;
    if bulk_in == 0 || bulk_out == 0 {
        return Err(bad("the CCID interface lacks a bulk IN or OUT endpoint"));
    }
    Ok(CcidInterface { configuration, interface, descriptor, bulk_out, bulk_in, interrupt })
}

/// One reader's slot 0, as a [`Transport`].
pub struct CcidTransport<L: UsbLink> {
    link: L,
    iface: CcidInterface,
    name: String,
    seq: u8,
    powered: bool,
    timeout: Duration,
    max_wait: Duration,
    /// Time extensions the reader asked for so far (for tests and diagnostics).
    pub time_extensions: u32,
}

impl<L: UsbLink> CcidTransport<L> {
    /// Enumerate the device (descriptors, SET_CONFIGURATION), check it is a reader this
    /// transport can drive, and power its card.
    pub fn open(mut link: L) -> Result<CcidTransport<L>, CcidError> {
        let device = link.control_in(Setup::get_descriptor(1, 0, 0, 18))?;
        if device.len() < 18 || device[1] != 1 {
            return Err(CcidError::Descriptor(format!("a device descriptor of {} bytes", device.len())));
        }
        let head = link.control_in(Setup::get_descriptor(2, 0, 0, 9))?;
        if head.len() < 4 {
            return Err(CcidError::Descriptor("a configuration descriptor shorter than 4 bytes".into()));
        }
        let total = u16::from_le_bytes([head[2], head[3]]);
        let config = link.control_in(Setup::get_descriptor(2, 0, 0, total))?;
        let iface = find_interface(&config)?;
        let level = iface.descriptor.level();
        if level != features::LEVEL_SHORT_APDU && level != features::LEVEL_EXTENDED_APDU {
            return Err(CcidError::Unsupported(format!(
                "exchange level {level:#010x}: only short and extended APDU level readers are driven (no TPDU or character level)"
            )));
        }
        if (iface.descriptor.max_message_len as usize) < ccid::HEADER + 5 {
            return Err(CcidError::Unsupported(format!(
                "dwMaxCCIDMessageLength {} cannot carry an APDU",
                iface.descriptor.max_message_len
            )));
        }
        let serial = match device[16] {
            0 => None,
            i => read_string(&mut link, i).ok(),
        };
        link.control_out(Setup::set_configuration(iface.configuration), &[])?;
        let name = match serial {
            Some(s) => format!("CCID reader {s} ({})", link.name()),
            None => format!("CCID reader ({})", link.name()),
        };
        let mut t = CcidTransport {
            link,
            iface,
            name,
            seq: 0,
            powered: false,
            timeout: DEFAULT_TIMEOUT,
            max_wait: DEFAULT_MAX_WAIT,
            time_extensions: 0,
        };
        t.power_on().map_err(|e| CcidError::Unsupported(format!("powering the card: {e}")))?;
        Ok(t)
    }

    /// How long one reply may take before the command is aborted (time extensions restart it).
    pub fn set_timeout(&mut self, t: Duration) {
        self.timeout = t;
    }

    /// How long a command may take with every time extension the reader asks for.
    pub fn set_max_wait(&mut self, t: Duration) {
        self.max_wait = t;
    }

    pub fn interface(&self) -> &CcidInterface {
        &self.iface
    }

    fn max_data(&self) -> usize {
        self.iface.descriptor.max_message_len as usize - ccid::HEADER
    }

    fn io(&self, e: UsbError) -> TransportError {
        match e {
            UsbError::Disconnected => TransportError::Removed(self.name.clone()),
            other => TransportError::Io(format!("{}: {other}", self.name)),
        }
    }

    /// One command and its reply (time extensions waited through; stale replies skipped).
    fn exchange(&mut self, kind: u8, params: [u8; 3], data: &[u8]) -> Result<(ccid::Header, Vec<u8>), TransportError> {
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        let h = ccid::Header { kind, len: data.len() as u32, slot: 0, seq, params };
        let mut msg = zeroize::Zeroizing::new(h.to_bytes().to_vec());
        msg.extend_from_slice(data);
        self.link.bulk_out(self.iface.bulk_out, &msg).map_err(|e| self.io(e))?;
        let max = self.iface.descriptor.max_message_len as usize + 64;
        let mut stale = 0;
        let started = std::time::Instant::now();
        loop {
            let r = match self.link.bulk_in(self.iface.bulk_in, max, self.timeout) {
                Ok(r) => r,
                Err(UsbError::Timeout) => {
                    self.abort(seq);
                    return Err(TransportError::Io(format!(
                        "{} did not answer in {:?}: the command was aborted",
                        self.name, self.timeout
                    )));
                }
                Err(e) => return Err(self.io(e)),
            };
            let (rh, rd) = ccid::split(&r).map_err(|e| TransportError::Io(format!("{}: {e}", self.name)))?;
            if rh.seq != seq {
                // A reply to an earlier, abandoned command: never this one's answer.
                stale += 1;
                if stale > 4 {
                    return Err(TransportError::Io(format!(
                        "{}: replies carry bSeq {} while {seq} was sent",
                        self.name, rh.seq
                    )));
                }
                continue;
            }
            let status = Status::parse(rh.params[0]).map_err(|e| TransportError::Io(format!("{}: {e}", self.name)))?;
            if status.outcome == Outcome::TimeExtension {
                self.time_extensions += 1;
                if started.elapsed() >= self.max_wait {
                    self.abort(seq);
                    return Err(TransportError::Io(format!(
                        "{} asked for more time for {:?}: the command was aborted",
                        self.name, self.max_wait
                    )));
                }
                continue;
            }
            return Ok((rh, rd.to_vec()));
        }
    }

    /// A failed reply as the transport error it means.
    fn failure(&mut self, what: &str, h: &ccid::Header) -> TransportError {
        let status = Status::parse(h.params[0]).unwrap_or(Status { icc: Icc::Inactive, outcome: Outcome::Failed });
        match (status.icc, h.params[1]) {
            (Icc::Absent, _) => {
                self.powered = false;
                TransportError::NoCard(self.name.clone())
            }
            (_, error::ICC_MUTE) => {
                // The card went quiet: it lost power, and its security status with it.
                self.powered = false;
                TransportError::Reset(self.name.clone())
            }
            (_, e) => TransportError::Io(format!("{}: {what} failed, bError {e:#04x}", self.name)),
        }
    }

    fn power_on(&mut self) -> Result<Vec<u8>, TransportError> {
        let (h, atr) = self.exchange(cmd::ICC_POWER_ON, [0, 0, 0], &[])?;
        if h.kind != reply::DATA_BLOCK {
            return Err(TransportError::Io(format!("{}: IccPowerOn answered message {:#04x}", self.name, h.kind)));
        }
        if Status::parse(h.params[0]).map(|s| s.outcome) != Ok(Outcome::Ok) {
            return Err(self.failure("IccPowerOn", &h));
        }
        self.powered = true;
        Ok(atr)
    }

    /// Cut the card's power (its security status is gone).
    pub fn power_off(&mut self) -> Result<(), TransportError> {
        let (h, _) = self.exchange(cmd::ICC_POWER_OFF, [0; 3], &[])?;
        self.powered = false;
        if h.kind != reply::SLOT_STATUS {
            return Err(TransportError::Io(format!("{}: IccPowerOff answered message {:#04x}", self.name, h.kind)));
        }
        Ok(())
    }

    /// The slot's card: active, inactive (unpowered) or absent.
    pub fn slot_status(&mut self) -> Result<Icc, TransportError> {
        let (h, _) = self.exchange(cmd::GET_SLOT_STATUS, [0; 3], &[])?;
        let s = Status::parse(h.params[0]).map_err(|e| TransportError::Io(format!("{}: {e}", self.name)))?;
        Ok(s.icc)
    }

    /// GetParameters: the protocol number and its data.
    pub fn parameters(&mut self) -> Result<(u8, Vec<u8>), TransportError> {
        let (h, data) = self.exchange(cmd::GET_PARAMETERS, [0; 3], &[])?;
        if h.kind != reply::PARAMETERS {
            return Err(TransportError::Io(format!("{}: GetParameters answered {:#04x}", self.name, h.kind)));
        }
        Ok((h.params[2], data))
    }

    /// Abort the command `seq`: the class request on the control pipe, then its bulk twin,
    /// whose SlotStatus ends it (§5.3.1). Best effort: the caller already has its error.
    fn abort(&mut self, seq: u8) {
        let setup = Setup {
            request_type: 0x21,
            request: request::ABORT,
            value: u16::from(seq) << 8,
            index: self.iface.interface.into(),
            length: 0,
        };
        if self.link.control_out(setup, &[]).is_err() {
            return;
        }
        let h = ccid::Header { kind: cmd::ABORT, len: 0, slot: 0, seq, params: [0; 3] };
        if self.link.bulk_out(self.iface.bulk_out, &h.to_bytes()).is_err() {
            return;
        }
        let max = self.iface.descriptor.max_message_len as usize + 64;
        for _ in 0..8 {
            match self.link.bulk_in(self.iface.bulk_in, max, Duration::from_secs(2)) {
                Ok(r) if ccid::Header::parse(&r).is_ok_and(|h| h.seq == seq && h.kind == reply::SLOT_STATUS) => return,
                Ok(_) => continue,
                Err(_) => return,
            }
        }
    }

    fn xfr(&mut self, apdu: &[u8]) -> Result<Vec<u8>, TransportError> {
        let max = self.max_data();
        if apdu.len() > max && self.iface.descriptor.level() != features::LEVEL_EXTENDED_APDU {
            return Err(TransportError::Io(format!(
                "{}: an APDU of {} bytes does not fit this short-APDU reader's {max}",
                self.name,
                apdu.len()
            )));
        }
        // The command, in pieces when longer than one message.
        let pieces: Vec<&[u8]> = if apdu.is_empty() { vec![apdu] } else { apdu.chunks(max).collect() };
        let n = pieces.len();
        let mut last = None;
        for (i, piece) in pieces.into_iter().enumerate() {
            let level = match (n, i) {
                (1, _) => Chain::Whole,
                (_, 0) => Chain::Begins,
                (_, i) if i + 1 == n => Chain::Ends,
                _ => Chain::Continues,
            };
            let [lo, hi] = (level as u16).to_le_bytes();
            let (h, data) = self.exchange(cmd::XFR_BLOCK, [0, lo, hi], piece)?;
            self.check_block("XfrBlock", &h)?;
            if level.more_follows() && (h.params[2] != Chain::More as u8 || !data.is_empty()) {
                return Err(TransportError::Io(format!(
                    "{}: a chained command piece was answered with chain {:#04x} and {} bytes",
                    self.name,
                    h.params[2],
                    data.len()
                )));
            }
            last = Some((h, data));
        }
        let (mut h, mut response) = last.expect("at least one piece");
        // The response, in pieces when the reader chains it: never longer than an extended
        // APDU's, nor in more pieces than that could need.
        let mut pieces = 1;
        loop {
            if response.len() > MAX_RESPONSE || pieces > MAX_PIECES {
                return Err(TransportError::Io(format!(
                    "{}: a chained response past {MAX_RESPONSE} bytes or {MAX_PIECES} pieces ({} bytes in {pieces})",
                    self.name,
                    response.len()
                )));
            }
            pieces += 1;
            match Chain::parse(h.params[2].into()) {
                Some(Chain::Whole | Chain::Ends) => break,
                Some(Chain::Begins | Chain::Continues) => {
                    let [lo, hi] = (Chain::More as u16).to_le_bytes();
                    let (nh, more) = self.exchange(cmd::XFR_BLOCK, [0, lo, hi], &[])?;
                    self.check_block("XfrBlock (more)", &nh)?;
                    response.extend_from_slice(&more);
                    h = nh;
                }
                _ => {
                    return Err(TransportError::Io(format!(
                        "{}: a DataBlock with chain parameter {:#04x}",
                        self.name, h.params[2]
                    )))
                }
            }
        }
        Ok(response)
    }

    fn check_block(&mut self, what: &str, h: &ccid::Header) -> Result<(), TransportError> {
        if h.kind != reply::DATA_BLOCK {
            return Err(TransportError::Io(format!("{}: {what} answered message {:#04x}", self.name, h.kind)));
        }
        match Status::parse(h.params[0]) {
            Ok(s) if s.outcome == Outcome::Ok => Ok(()),
            _ => Err(self.failure(what, h)),
        }
    }
}

fn read_string<L: UsbLink>(link: &mut L, index: u8) -> Result<String, UsbError> {
    let langs = link.control_in(Setup::get_descriptor(3, 0, 0, 255))?;
    let lang = if langs.len() >= 4 { u16::from_le_bytes([langs[2], langs[3]]) } else { 0x0409 };
    let s = link.control_in(Setup::get_descriptor(3, index, lang, 255))?;
    let units: Vec<u16> = s.get(2..).unwrap_or(&[]).chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
    Ok(String::from_utf16_lossy(&units))
}

impl<L: UsbLink> Transport for CcidTransport<L> {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, TransportError> {
        if !self.powered {
            // As PC/SC says after a reset, until the host resets (powers) the card again.
            return Err(TransportError::Reset(self.name.clone()));
        }
        let r = self.xfr(apdu)?;
        if r.len() < 2 {
            return Err(TransportError::ShortResponse);
        }
        Ok(r)
    }

    /// A cold reset: power off, then on (the card's security status is gone).
    fn reset(&mut self) -> Result<Vec<u8>, TransportError> {
        if self.powered {
            self.power_off()?;
        }
        self.power_on()
    }

    fn is_present(&mut self) -> bool {
        matches!(self.slot_status(), Ok(Icc::Active | Icc::Inactive))
    }

    fn name(&self) -> String {
        self.name.clone()
    }

    fn may_block(&self) -> bool {
        true
    }
}
