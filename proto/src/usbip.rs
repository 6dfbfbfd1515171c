//! The USB/IP wire protocol (Linux `Documentation/usb/usbip_protocol.rst`, version 1.1.1):
//! typed messages, parsed from and written to bytes. Parsing is separate from serving: a frame
//! is either whole and well formed, or [`FrameError`] says why, and never panics on any input.
//!
//! Everything is big-endian except the 8 setup bytes of a control transfer, which are USB's
//! own (little-endian) and travel as they are.

/// The protocol version both sides must speak.
pub const VERSION: u16 = 0x0111;

pub const OP_REQ_DEVLIST: u16 = 0x8005;
pub const OP_REP_DEVLIST: u16 = 0x0005;
pub const OP_REQ_IMPORT: u16 = 0x8003;
pub const OP_REP_IMPORT: u16 = 0x0003;

pub const CMD_SUBMIT: u32 = 1;
pub const CMD_UNLINK: u32 = 2;
pub const RET_SUBMIT: u32 = 3;
pub const RET_UNLINK: u32 = 4;

/// Bytes of an operation header (version, code, status).
pub const OP_HEADER: usize = 8;
/// Bytes of a bus id field.
pub const BUSID: usize = 32;
/// Bytes of a device record (path, bus id, numbers, descriptor fields).
pub const DEVICE_RECORD: usize = 312;
/// Bytes of every URB header (CMD_SUBMIT, RET_SUBMIT, CMD_UNLINK, RET_UNLINK).
pub const URB_HEADER: usize = 48;
/// `number_of_packets` of a transfer that is not isochronous, as newer kernels send it.
pub const NOT_ISO: u32 = 0xFFFF_FFFF;
/// The largest transfer a request may carry or ask for: far above any CCID message (a few
/// KiB), low enough that a hostile length cannot make us allocate much.
pub const MAX_TRANSFER: u32 = 1 << 20;

/// Why bytes are not a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// More bytes are needed; nothing is wrong yet.
    #[error("incomplete frame: {need} more bytes needed")]
    Incomplete { need: usize },
    #[error("USB/IP version {0:#06x}, not 0x0111")]
    Version(u16),
    #[error("unknown operation {0:#06x}")]
    UnknownOp(u16),
    #[error("unknown URB command {0}")]
    UnknownCommand(u32),
    #[error("bus id is not NUL-terminated text")]
    BadBusId,
    #[error("transfer of {0} bytes is larger than {MAX_TRANSFER}")]
    TooLarge(u32),
    #[error("isochronous transfers are not supported ({0} packets)")]
    Isochronous(u32),
}

/// The device as a DEVLIST or IMPORT reply describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    pub path: String,
    pub busid: String,
    pub busnum: u32,
    pub devnum: u32,
    /// 1 low, 2 full, 3 high speed.
    pub speed: u32,
    pub vendor: u16,
    pub product: u16,
    pub bcd_device: u16,
    pub class: [u8; 3],
    pub configuration_value: u8,
    pub num_configurations: u8,
    /// (class, subclass, protocol) of each interface; DEVLIST lists them, IMPORT does not.
    pub interfaces: Vec<[u8; 3]>,
}

/// An operation the client (`usbip list`, `usbip attach`) sends before URBs flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpRequest {
    DevList,
    Import { busid: String },
}

/// The basic header every URB message starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UrbHeader {
    pub seqnum: u32,
    pub devid: u32,
    /// 0 out (host to device), 1 in.
    pub direction: u32,
    pub ep: u32,
}

/// A URB the client sends once a device is imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrbCommand {
    Submit {
        header: UrbHeader,
        transfer_flags: u32,
        transfer_buffer_length: u32,
        interval: u32,
        setup: [u8; 8],
        /// The OUT data (empty for IN transfers).
        data: Vec<u8>,
    },
    Unlink {
        header: UrbHeader,
        unlink_seqnum: u32,
    },
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FrameError> {
        let end = self.at.checked_add(n).ok_or(FrameError::Incomplete { need: n })?;
        let bytes = self.buf.get(self.at..end).ok_or_else(|| FrameError::Incomplete { need: end - self.buf.len() })?;
        self.at = end;
        Ok(bytes)
    }
    fn u16(&mut self) -> Result<u16, FrameError> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, FrameError> {
        self.take(4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// The text of a NUL-padded field.
fn text(field: &[u8]) -> Result<String, FrameError> {
    let end = field.iter().position(|&b| b == 0).ok_or(FrameError::BadBusId)?;
    String::from_utf8(field[..end].to_vec()).map_err(|_| FrameError::BadBusId)
}

fn padded(out: &mut Vec<u8>, s: &str, len: usize) {
    // One NUL at least: the field is C text.
    let bytes = &s.as_bytes()[..s.len().min(len - 1)];
    out.extend_from_slice(bytes);
    out.resize(out.len() + len - bytes.len(), 0);
}

impl OpRequest {
    /// One request from the start of `buf`, and how many bytes it took.
    pub fn parse(buf: &[u8]) -> Result<(OpRequest, usize), FrameError> {
        let mut r = Reader { buf, at: 0 };
        let version = r.u16()?;
        let code = r.u16()?;
        let _status = r.u32()?;
        if version != VERSION {
            return Err(FrameError::Version(version));
        }
        let op = match code {
            OP_REQ_DEVLIST => OpRequest::DevList,
            OP_REQ_IMPORT => OpRequest::Import { busid: text(r.take(BUSID)?)? },
            c => return Err(FrameError::UnknownOp(c)),
        };
        Ok((op, r.at))
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            OpRequest::DevList => op_header(&mut out, OP_REQ_DEVLIST, 0),
            OpRequest::Import { busid } => {
                op_header(&mut out, OP_REQ_IMPORT, 0);
                padded(&mut out, busid, BUSID);
            }
        }
        out
    }
}

fn op_header(out: &mut Vec<u8>, code: u16, status: u32) {
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(&status.to_be_bytes());
}

impl DeviceRecord {
    fn encode(&self, out: &mut Vec<u8>) {
        padded(out, &self.path, 256);
        padded(out, &self.busid, BUSID);
        for v in [self.busnum, self.devnum, self.speed] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        for v in [self.vendor, self.product, self.bcd_device] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        out.extend_from_slice(&self.class);
        out.extend_from_slice(&[self.configuration_value, self.num_configurations, self.interfaces.len() as u8]);
    }

    fn parse(r: &mut Reader<'_>) -> Result<DeviceRecord, FrameError> {
        let path = text(r.take(256)?)?;
        let busid = text(r.take(BUSID)?)?;
        let (busnum, devnum, speed) = (r.u32()?, r.u32()?, r.u32()?);
        let (vendor, product, bcd_device) = (r.u16()?, r.u16()?, r.u16()?);
        let b = r.take(6)?;
        Ok(DeviceRecord {
            path,
            busid,
            busnum,
            devnum,
            speed,
            vendor,
            product,
            bcd_device,
            class: [b[0], b[1], b[2]],
            configuration_value: b[3],
            num_configurations: b[4],
            // The count is b[5]; the caller reads the interfaces (DEVLIST only).
            interfaces: vec![[0; 3]; b[5] as usize],
        })
    }
}

/// OP_REP_DEVLIST: every exported device with its interfaces.
pub fn encode_devlist(devices: &[DeviceRecord]) -> Vec<u8> {
    let mut out = Vec::new();
    op_header(&mut out, OP_REP_DEVLIST, 0);
    out.extend_from_slice(&(devices.len() as u32).to_be_bytes());
    for d in devices {
        d.encode(&mut out);
        for i in &d.interfaces {
            out.extend_from_slice(&[i[0], i[1], i[2], 0]);
        }
    }
    out
}

/// OP_REP_DEVLIST back into records (what `usbip list` reads; for tests and clients).
pub fn parse_devlist(buf: &[u8]) -> Result<Vec<DeviceRecord>, FrameError> {
    let mut r = Reader { buf, at: 0 };
    let (version, code, _status) = (r.u16()?, r.u16()?, r.u32()?);
    if version != VERSION {
        return Err(FrameError::Version(version));
    }
    if code != OP_REP_DEVLIST {
        return Err(FrameError::UnknownOp(code));
    }
    let n = r.u32()?;
    let mut devices = Vec::new();
    for _ in 0..n {
        let mut d = DeviceRecord::parse(&mut r)?;
        for i in d.interfaces.iter_mut() {
            let b = r.take(4)?;
            *i = [b[0], b[1], b[2]];
        }
        devices.push(d);
    }
    Ok(devices)
}

/// OP_REP_IMPORT: the device (without its interfaces), or status 1 and nothing else.
pub fn encode_import(device: Option<&DeviceRecord>) -> Vec<u8> {
    let mut out = Vec::new();
    op_header(&mut out, OP_REP_IMPORT, u32::from(device.is_none()));
    if let Some(d) = device {
        let mut record = Vec::new();
        d.encode(&mut record);
        // IMPORT's record ends before the interface count's interfaces; the count stays.
        out.extend_from_slice(&record);
    }
    out
}

/// OP_REP_IMPORT back: the device, or `None` when the server refused (status not 0).
/// `Incomplete` until the whole reply is there.
pub fn parse_import(buf: &[u8]) -> Result<(Option<DeviceRecord>, usize), FrameError> {
    let mut r = Reader { buf, at: 0 };
    let (version, code, status) = (r.u16()?, r.u16()?, r.u32()?);
    if version != VERSION {
        return Err(FrameError::Version(version));
    }
    if code != OP_REP_IMPORT {
        return Err(FrameError::UnknownOp(code));
    }
    if status != 0 {
        return Ok((None, r.at));
    }
    let d = DeviceRecord::parse(&mut r)?;
    Ok((Some(d), r.at))
}

/// What a server sends back for a URB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrbReply {
    Submit { seqnum: u32, status: i32, actual_length: u32, data: Vec<u8> },
    Unlink { seqnum: u32, status: i32 },
}

impl UrbReply {
    /// One reply from the start of `buf`; `is_in(seqnum)` says whether that URB was an IN
    /// transfer (whose RET_SUBMIT carries `actual_length` bytes of data).
    pub fn parse(buf: &[u8], is_in: impl Fn(u32) -> bool) -> Result<(UrbReply, usize), FrameError> {
        let mut r = Reader { buf, at: 0 };
        let command = r.u32()?;
        let (seqnum, _devid, _direction, _ep) = (r.u32()?, r.u32()?, r.u32()?, r.u32()?);
        match command {
            RET_SUBMIT => {
                let status = r.u32()? as i32;
                let actual_length = r.u32()?;
                r.take(URB_HEADER - 28)?;
                if actual_length > MAX_TRANSFER {
                    return Err(FrameError::TooLarge(actual_length));
                }
                let data = if is_in(seqnum) { r.take(actual_length as usize)?.to_vec() } else { Vec::new() };
                Ok((UrbReply::Submit { seqnum, status, actual_length, data }, r.at))
            }
            RET_UNLINK => {
                let status = r.u32()? as i32;
                r.take(URB_HEADER - 24)?;
                Ok((UrbReply::Unlink { seqnum, status }, r.at))
            }
            c => Err(FrameError::UnknownCommand(c)),
        }
    }
}

fn urb_header(out: &mut Vec<u8>, command: u32, h: &UrbHeader) {
    for v in [command, h.seqnum, h.devid, h.direction, h.ep] {
        out.extend_from_slice(&v.to_be_bytes());
    }
}

impl UrbCommand {
    /// One URB command from the start of `buf`, and how many bytes it took.
    pub fn parse(buf: &[u8]) -> Result<(UrbCommand, usize), FrameError> {
        let mut r = Reader { buf, at: 0 };
        let command = r.u32()?;
        let header = UrbHeader { seqnum: r.u32()?, devid: r.u32()?, direction: r.u32()?, ep: r.u32()? };
        match command {
            CMD_SUBMIT => {
                let transfer_flags = r.u32()?;
                let transfer_buffer_length = r.u32()?;
                let _start_frame = r.u32()?;
                let packets = r.u32()?;
                let interval = r.u32()?;
                let setup: [u8; 8] = r.take(8)?.try_into().expect("8 bytes taken");
                if transfer_buffer_length > MAX_TRANSFER {
                    return Err(FrameError::TooLarge(transfer_buffer_length));
                }
                if packets != 0 && packets != NOT_ISO {
                    return Err(FrameError::Isochronous(packets));
                }
                let data =
                    if header.direction == 0 { r.take(transfer_buffer_length as usize)?.to_vec() } else { Vec::new() };
                Ok((UrbCommand::Submit { header, transfer_flags, transfer_buffer_length, interval, setup, data }, r.at))
            }
            CMD_UNLINK => {
                let unlink_seqnum = r.u32()?;
                r.take(24)?;
                Ok((UrbCommand::Unlink { header, unlink_seqnum }, r.at))
            }
            c => Err(FrameError::UnknownCommand(c)),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            UrbCommand::Submit { header, transfer_flags, transfer_buffer_length, interval, setup, data } => {
                urb_header(&mut out, CMD_SUBMIT, header);
                for v in [*transfer_flags, *transfer_buffer_length, 0, NOT_ISO, *interval] {
                    out.extend_from_slice(&v.to_be_bytes());
                }
                out.extend_from_slice(setup);
                out.extend_from_slice(data);
            }
            UrbCommand::Unlink { header, unlink_seqnum } => {
                urb_header(&mut out, CMD_UNLINK, header);
                out.extend_from_slice(&unlink_seqnum.to_be_bytes());
                out.resize(URB_HEADER, 0);
            }
        }
        out
    }
}

/// RET_SUBMIT: `status` 0 or a negative errno (-32 stall); `data` the IN data.
pub fn encode_ret_submit(seqnum: u32, status: i32, actual_length: u32, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    urb_header(&mut out, RET_SUBMIT, &UrbHeader { seqnum, devid: 0, direction: 0, ep: 0 });
    for v in [status as u32, actual_length, 0, NOT_ISO, 0] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out.resize(URB_HEADER, 0);
    out.extend_from_slice(data);
    out
}

/// RET_UNLINK: -ECONNRESET (-104) when the URB was still pending and is now cancelled, 0
/// when it had already completed.
pub fn encode_ret_unlink(seqnum: u32, status: i32) -> Vec<u8> {
    let mut out = Vec::new();
    urb_header(&mut out, RET_UNLINK, &UrbHeader { seqnum, devid: 0, direction: 0, ep: 0 });
    out.extend_from_slice(&(status as u32).to_be_bytes());
    out.resize(URB_HEADER, 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ukey_record() -> DeviceRecord {
        DeviceRecord {
            path: "/ukey/1-1".into(),
            busid: "1-1".into(),
            busnum: 1,
            devnum: 1,
            speed: 2,
            vendor: 0x1209,
            product: 0x0001,
            bcd_device: 0x0100,
            class: [0, 0, 0],
            configuration_value: 1,
            num_configurations: 1,
            interfaces: vec![[0x0B, 0, 0]],
        }
    }

    #[test]
    fn the_layouts_are_the_kernels() {
        assert_eq!(OpRequest::DevList.encode(), [0x01, 0x11, 0x80, 0x05, 0, 0, 0, 0]);
        let import = OpRequest::Import { busid: "1-1".into() }.encode();
        assert_eq!(import.len(), OP_HEADER + BUSID);
        assert_eq!(OpRequest::parse(&import).unwrap(), (OpRequest::Import { busid: "1-1".into() }, 40));
        let list = encode_devlist(&[ukey_record()]);
        assert_eq!(list.len(), OP_HEADER + 4 + DEVICE_RECORD + 4);
        // idVendor sits after path (256), bus id (32) and three u32s.
        assert_eq!(list[12 + 256 + 32 + 12..][..4], [0x12, 0x09, 0x00, 0x01]);
        assert_eq!(parse_devlist(&list).unwrap(), vec![ukey_record()]);
        assert_eq!(encode_import(Some(&ukey_record())).len(), OP_HEADER + DEVICE_RECORD);
        assert_eq!(encode_import(None), [0x01, 0x11, 0x00, 0x03, 0, 0, 0, 1]);
        assert_eq!(encode_ret_submit(7, -32, 0, &[]).len(), URB_HEADER);
        assert_eq!(encode_ret_unlink(7, -104)[20..24], (-104i32).to_be_bytes());
        let unlink = UrbCommand::Unlink {
            header: UrbHeader { seqnum: 9, devid: 0x10002, direction: 0, ep: 0 },
            unlink_seqnum: 8,
        };
        assert_eq!(unlink.encode().len(), URB_HEADER);
    }

    #[test]
    fn hostile_headers_are_refused_before_any_allocation() {
        let mut submit = UrbCommand::Submit {
            header: UrbHeader { seqnum: 1, devid: 0, direction: 0, ep: 2 },
            transfer_flags: 0,
            transfer_buffer_length: 0,
            interval: 0,
            setup: [0; 8],
            data: Vec::new(),
        }
        .encode();
        submit[24..28].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(UrbCommand::parse(&submit), Err(FrameError::TooLarge(u32::MAX)));
        let mut iso = submit.clone();
        iso[24..28].copy_from_slice(&0u32.to_be_bytes());
        iso[32..36].copy_from_slice(&3u32.to_be_bytes());
        assert_eq!(UrbCommand::parse(&iso), Err(FrameError::Isochronous(3)));
        let mut old = OpRequest::DevList.encode();
        old[1] = 0x06;
        assert_eq!(OpRequest::parse(&old), Err(FrameError::Version(0x0106)));
    }

    fn header() -> impl Strategy<Value = UrbHeader> {
        (any::<u32>(), any::<u32>(), 0u32..2, 0u32..16).prop_map(|(seqnum, devid, direction, ep)| UrbHeader {
            seqnum,
            devid,
            direction,
            ep,
        })
    }

    fn command() -> impl Strategy<Value = UrbCommand> {
        prop_oneof![
            (header(), any::<u32>(), any::<u32>(), any::<[u8; 8]>(), proptest::collection::vec(any::<u8>(), 0..300))
                .prop_map(|(header, transfer_flags, interval, setup, data)| {
                    let (data, len) = if header.direction == 0 {
                        (data.clone(), data.len() as u32)
                    } else {
                        (Vec::new(), data.len() as u32)
                    };
                    UrbCommand::Submit { header, transfer_flags, transfer_buffer_length: len, interval, setup, data }
                }),
            (header(), any::<u32>()).prop_map(|(header, unlink_seqnum)| UrbCommand::Unlink { header, unlink_seqnum }),
        ]
    }

    #[test]
    fn replies_parse_back() {
        let submit = encode_ret_submit(7, -32, 3, &[1, 2, 3]);
        assert_eq!(
            UrbReply::parse(&submit, |_| true).unwrap(),
            (UrbReply::Submit { seqnum: 7, status: -32, actual_length: 3, data: vec![1, 2, 3] }, 51)
        );
        let unlink = encode_ret_unlink(9, -104);
        assert_eq!(UrbReply::parse(&unlink, |_| false).unwrap(), (UrbReply::Unlink { seqnum: 9, status: -104 }, 48));
        assert_eq!(parse_import(&encode_import(None)).unwrap(), (None, 8));
        let d = DeviceRecord { interfaces: vec![[0; 3]], ..ukey_record() };
        let (back, n) = parse_import(&encode_import(Some(&d))).unwrap();
        assert_eq!((back.unwrap().busid, n), (d.busid.clone(), 8 + DEVICE_RECORD));
        for cut in 0..submit.len() {
            assert!(matches!(UrbReply::parse(&submit[..cut], |_| true), Err(FrameError::Incomplete { .. })), "{cut}");
        }
    }

    proptest! {
        #[test]
        fn commands_round_trip_and_every_prefix_is_incomplete(c in command()) {
            let bytes = c.encode();
            prop_assert_eq!(UrbCommand::parse(&bytes), Ok((c.clone(), bytes.len())));
            for cut in 0..bytes.len() {
                let is_incomplete = matches!(UrbCommand::parse(&bytes[..cut]), Err(FrameError::Incomplete { .. }));
                prop_assert!(is_incomplete, "cut at {}", cut);
            }
        }

        #[test]
        fn any_bytes_parse_or_fail_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = UrbCommand::parse(&bytes);
            let _ = OpRequest::parse(&bytes);
            let _ = parse_devlist(&bytes);
        }
    }
}
