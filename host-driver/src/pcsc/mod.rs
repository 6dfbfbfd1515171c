//! Keys in PC/SC readers: real USB-Keys, and virtual keys served through vpcd.
//!
//! - [`Pcsc`]: a connection to the PC/SC service: readers, their state, connecting.
//! - [`PcscTransport`]: one card, as a [`proto::Transport`]. From [`PcscTransport::connect`] it
//!   holds a PC/SC transaction for its whole life, so no other program can slip commands
//!   between ours (a VERIFY and the SIGN that needs it): right for a command-line run. From
//!   [`PcscTransport::connect_shared`] it holds one only from [`Transport::hold`] to
//!   [`Transport::release`], one operation, as long-lived middleware must (a PKCS#11 module in
//!   a browser beside OpenSC's). It leaves the card unreset when dropped, so other programs'
//!   sessions survive; log out (VERIFY P1=FF) before dropping it when a verified PIN must not
//!   linger.
//! - [`Monitor`]: waits for cards to be inserted or removed and readers to come and go.
//!
//! The library is loaded at run time (see `ffi`): where pcsc-lite or pcscd is missing,
//! everything here answers [`PcscError::Unavailable`] with the reason, and nothing else breaks.

mod error;
mod ffi;

use std::ffi::{CStr, CString};
use std::ptr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use proto::{Transport, TransportError};

pub use error::PcscError;
use ffi::{Api, DWORD, SCARDCONTEXT, SCARDHANDLE};

type Result<T> = std::result::Result<T, PcscError>;

fn api() -> Result<Arc<Api>> {
    static API: OnceLock<std::result::Result<Arc<Api>, String>> = OnceLock::new();
    API.get_or_init(|| Api::load().map(Arc::new)).clone().map_err(PcscError::Unavailable)
}

/// A PC/SC context: released when dropped.
struct Context {
    api: Arc<Api>,
    ctx: SCARDCONTEXT,
}

// SAFETY: pcsc-lite contexts may be used from any thread; we never use one from two at once
// (every owner holds it behind &mut or owns it), except SCardCancel, which is made for that.
unsafe impl Send for Context {}
unsafe impl Sync for Context {}

impl Context {
    fn establish() -> Result<Context> {
        let api = api()?;
        let mut ctx: SCARDCONTEXT = 0;
        // SAFETY: out-pointer to a local; the reserved arguments are null as documented.
        let rv = unsafe { (api.establish_context)(ffi::SCARD_SCOPE_SYSTEM, ptr::null(), ptr::null(), &mut ctx) };
        error::check("connect to the PC/SC service", rv)?;
        Ok(Context { api, ctx })
    }

    fn readers(&self) -> Result<Vec<String>> {
        let mut len: DWORD = 0;
        // SAFETY: first call asks for the size only.
        let rv = unsafe { (self.api.list_readers)(self.ctx, ptr::null(), ptr::null_mut(), &mut len) };
        if error::code(rv) == error::SCARD_E_NO_READERS_AVAILABLE {
            return Ok(Vec::new());
        }
        error::check("list readers", rv)?;
        let mut buf = vec![0u8; len as usize];
        // SAFETY: buf has the size the library asked for.
        let rv = unsafe { (self.api.list_readers)(self.ctx, ptr::null(), buf.as_mut_ptr().cast(), &mut len) };
        if error::code(rv) == error::SCARD_E_NO_READERS_AVAILABLE {
            return Ok(Vec::new());
        }
        error::check("list readers", rv)?;
        buf.truncate(len as usize);
        // A multi-string: names separated by NUL, ended by an empty one.
        Ok(buf.split(|b| *b == 0).filter(|n| !n.is_empty()).map(|n| String::from_utf8_lossy(n).into_owned()).collect())
    }

    fn reader_states(&self) -> Result<Vec<ReaderState>> {
        let names = self.readers()?;
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let c: Vec<CString> = names.iter().map(|n| c_name(n)).collect::<Result<_>>()?;
        let mut states: Vec<_> = c.iter().map(reader_state).collect();
        self.status_change(&mut states, 0)?;
        Ok(names.into_iter().zip(&states).map(|(n, s)| ReaderState::from_raw(n, s)).collect())
    }

    /// One round of SCardGetStatusChange over `states`.
    fn status_change(&self, states: &mut [ffi::SCARD_READERSTATE], timeout: DWORD) -> Result<bool> {
        // SAFETY: states point at NUL-terminated names that outlive the call.
        let rv = unsafe { (self.api.get_status_change)(self.ctx, timeout, states.as_mut_ptr(), states.len() as DWORD) };
        match error::code(rv) {
            error::SCARD_E_TIMEOUT => Ok(false),
            _ => error::check("wait for reader events", rv).map(|_| true),
        }
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: ctx came from SCardEstablishContext and is released once.
        unsafe { (self.api.release_context)(self.ctx) };
    }
}

/// What a reader holds right now.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ReaderState {
    pub name: String,
    pub card_present: bool,
    /// The card's ATR, hex, when a card is present.
    pub atr: Option<String>,
    /// Another program holds the card exclusively.
    pub exclusive: bool,
    /// The card is present but does not answer (no ATR).
    pub mute: bool,
}

impl ReaderState {
    fn from_raw(name: String, s: &ffi::SCARD_READERSTATE) -> ReaderState {
        let ev = s.dwEventState;
        let present = ev & ffi::SCARD_STATE_PRESENT != 0;
        let atr_len = (s.cbAtr as usize).min(ffi::MAX_ATR_SIZE);
        ReaderState {
            name,
            card_present: present,
            atr: (present && atr_len > 0).then(|| hex::encode_upper(&s.rgbAtr[..atr_len])),
            exclusive: ev & ffi::SCARD_STATE_EXCLUSIVE != 0,
            mute: ev & ffi::SCARD_STATE_MUTE != 0,
        }
    }
}

fn reader_state(name: &CString) -> ffi::SCARD_READERSTATE {
    ffi::SCARD_READERSTATE {
        szReader: name.as_ptr(),
        pvUserData: ptr::null_mut(),
        dwCurrentState: ffi::SCARD_STATE_UNAWARE,
        dwEventState: 0,
        cbAtr: 0,
        rgbAtr: [0; ffi::MAX_ATR_SIZE],
    }
}

fn c_name(name: &str) -> Result<CString> {
    CString::new(name).map_err(|_| PcscError::UnknownReader { name: name.into(), known: String::new() })
}

/// The PC/SC service.
pub struct Pcsc {
    ctx: Context,
}

impl Pcsc {
    /// Connect to the PC/SC service. Fails with [`PcscError::Unavailable`] when the library is
    /// missing or pcscd is not running.
    pub fn establish() -> Result<Pcsc> {
        Ok(Pcsc { ctx: Context::establish()? })
    }

    /// Reader names, in the service's order.
    pub fn readers(&self) -> Result<Vec<String>> {
        self.ctx.readers()
    }

    /// Every reader and what it holds.
    pub fn reader_states(&self) -> Result<Vec<ReaderState>> {
        self.ctx.reader_states()
    }

    /// Find a reader by exact name, else by a unique case-insensitive substring (so
    /// `--reader "PCD 00 01"` or `--reader yubikey` work).
    pub fn find_reader(&self, wanted: &str) -> Result<String> {
        let names = self.readers()?;
        if let Some(n) = names.iter().find(|n| *n == wanted) {
            return Ok(n.clone());
        }
        let w = wanted.to_lowercase();
        let hits: Vec<&String> = names.iter().filter(|n| n.to_lowercase().contains(&w)).collect();
        match hits.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(PcscError::UnknownReader { name: wanted.into(), known: known(&names) }),
            many => Err(PcscError::AmbiguousReader {
                name: wanted.into(),
                matches: many.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(", "),
            }),
        }
    }

    /// Connect to the card in `reader` (exact name) and begin an exclusive transaction.
    pub fn connect(&self, reader: &str) -> Result<PcscTransport> {
        PcscTransport::connect(reader)
    }
}

fn known(names: &[String]) -> String {
    if names.is_empty() {
        "none (is a reader plugged in, or `ukey sim serve` running?)".into()
    } else {
        names.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(", ")
    }
}

/// One card in one reader, as a [`Transport`]. Holds a PC/SC transaction while it lives.
pub struct PcscTransport {
    ctx: Context,
    handle: SCARDHANDLE,
    protocol: DWORD,
    reader: String,
    in_transaction: bool,
    /// Transactions per operation ([`Transport::hold`]) rather than for the whole life.
    shared: bool,
}

// SAFETY: a card handle may be used from any thread; &mut self keeps it to one at a time.
unsafe impl Send for PcscTransport {}

/// Largest response we accept: 256 data bytes + SW is what a short APDU allows; leave room.
const RECV_MAX: usize = 4096;

impl PcscTransport {
    /// Connect (shared, T=1 or T=0) and begin a transaction, which waits while another program
    /// holds one.
    pub fn connect(reader: &str) -> Result<PcscTransport> {
        let mut t = Self::connect_only(reader)?;
        t.begin()?;
        Ok(t)
    }

    /// Connect (shared, T=1 or T=0) without a transaction: one is held per operation, from
    /// [`Transport::hold`] to [`Transport::release`]; other programs use the card between.
    pub fn connect_shared(reader: &str) -> Result<PcscTransport> {
        let mut t = Self::connect_only(reader)?;
        t.shared = true;
        Ok(t)
    }

    fn connect_only(reader: &str) -> Result<PcscTransport> {
        let ctx = Context::establish()?;
        let name = c_name(reader)?;
        let mut handle: SCARDHANDLE = 0;
        let mut protocol: DWORD = 0;
        // SAFETY: name is NUL-terminated; out-pointers to locals.
        let rv = unsafe {
            (ctx.api.connect)(
                ctx.ctx,
                name.as_ptr(),
                ffi::SCARD_SHARE_SHARED,
                ffi::SCARD_PROTOCOL_T0 | ffi::SCARD_PROTOCOL_T1,
                &mut handle,
                &mut protocol,
            )
        };
        match error::code(rv) {
            error::SCARD_E_UNKNOWN_READER => {
                return Err(PcscError::UnknownReader { name: reader.into(), known: known(&ctx.readers()?) })
            }
            error::SCARD_E_NO_SMARTCARD | error::SCARD_W_REMOVED_CARD => {
                return Err(PcscError::NoCard { reader: reader.into() })
            }
            _ => error::check("connect to the card", rv)?,
        }
        Ok(PcscTransport { ctx, handle, protocol, reader: reader.to_string(), in_transaction: false, shared: false })
    }

    pub fn reader(&self) -> &str {
        &self.reader
    }

    /// Begin a transaction: whether someone reset the card since our last one.
    fn begin(&mut self) -> Result<bool> {
        // SAFETY: handle is live.
        let rv = unsafe { (self.ctx.api.begin_transaction)(self.handle) };
        let reset = error::code(rv) == error::SCARD_W_RESET_CARD;
        if reset {
            // Someone reset the card since: acknowledge and try once more.
            self.reconnect(ffi::SCARD_LEAVE_CARD)?;
            // SAFETY: as above.
            let rv = unsafe { (self.ctx.api.begin_transaction)(self.handle) };
            error::check("begin a transaction", rv)?;
        } else {
            error::check("begin a transaction", rv)?;
        }
        self.in_transaction = true;
        Ok(reset)
    }

    fn end(&mut self, disposition: DWORD) {
        if self.in_transaction {
            // SAFETY: handle is live and holds the transaction.
            unsafe { (self.ctx.api.end_transaction)(self.handle, disposition) };
            self.in_transaction = false;
        }
    }

    fn reconnect(&mut self, init: DWORD) -> Result<()> {
        let mut protocol: DWORD = 0;
        // SAFETY: handle is live; out-pointer to a local.
        let rv = unsafe {
            (self.ctx.api.reconnect)(
                self.handle,
                ffi::SCARD_SHARE_SHARED,
                ffi::SCARD_PROTOCOL_T0 | ffi::SCARD_PROTOCOL_T1,
                init,
                &mut protocol,
            )
        };
        error::check("reconnect to the card", rv)?;
        self.protocol = protocol;
        Ok(())
    }

    /// The card's ATR and whether it is present (SCardStatus).
    fn status(&self) -> Result<(bool, Vec<u8>)> {
        let mut state: DWORD = 0;
        let mut protocol: DWORD = 0;
        let mut atr = [0u8; ffi::MAX_ATR_SIZE];
        let mut atr_len = atr.len() as DWORD;
        let mut name_len: DWORD = 0;
        // SAFETY: null reader-name buffer with zero length asks for no name; the rest are locals.
        let rv = unsafe {
            (self.ctx.api.status)(
                self.handle,
                ptr::null_mut(),
                &mut name_len,
                &mut state,
                &mut protocol,
                atr.as_mut_ptr(),
                &mut atr_len,
            )
        };
        error::check("read the card status", rv)?;
        Ok((state & ffi::SCARD_PRESENT != 0, atr[..(atr_len as usize).min(atr.len())].to_vec()))
    }

    fn io_error(&self, op: &str, rv: ffi::LONG) -> TransportError {
        match error::code(rv) {
            error::SCARD_W_REMOVED_CARD | error::SCARD_E_NO_SMARTCARD => TransportError::Removed(self.reader.clone()),
            error::SCARD_W_RESET_CARD => TransportError::Reset(self.reader.clone()),
            _ => TransportError::Io(format!("{op} on {}: {}", self.reader, PcscError::call(op, rv))),
        }
    }
}

impl Transport for PcscTransport {
    fn transmit(&mut self, apdu: &[u8]) -> std::result::Result<Vec<u8>, TransportError> {
        let send = ffi::SCARD_IO_REQUEST {
            dwProtocol: self.protocol,
            cbPciLength: std::mem::size_of::<ffi::SCARD_IO_REQUEST>() as DWORD,
        };
        let mut out = vec![0u8; RECV_MAX];
        let mut len = out.len() as DWORD;
        // SAFETY: buffers are valid for the lengths passed; the receive PCI may be null.
        let rv = unsafe {
            (self.ctx.api.transmit)(
                self.handle,
                &send,
                apdu.as_ptr(),
                apdu.len() as DWORD,
                ptr::null_mut(),
                out.as_mut_ptr(),
                &mut len,
            )
        };
        if rv != 0 {
            let e = self.io_error("transmit", rv);
            if error::code(rv) == error::SCARD_W_RESET_CARD {
                // Acknowledge the reset so the next command can go through.
                let _ = self.reconnect(ffi::SCARD_LEAVE_CARD);
            }
            return Err(e);
        }
        out.truncate(len as usize);
        if out.len() < 2 {
            return Err(TransportError::ShortResponse);
        }
        Ok(out)
    }

    fn reset(&mut self) -> std::result::Result<Vec<u8>, TransportError> {
        let held = self.in_transaction;
        self.end(ffi::SCARD_LEAVE_CARD);
        self.reconnect(ffi::SCARD_RESET_CARD).map_err(|e| TransportError::Io(e.to_string()))?;
        if held {
            self.begin().map_err(|e| TransportError::Io(e.to_string()))?;
        }
        match self.status() {
            Ok((true, atr)) => Ok(atr),
            Ok((false, _)) => Err(TransportError::NoCard(self.reader.clone())),
            Err(e) => Err(TransportError::Io(e.to_string())),
        }
    }

    fn is_present(&mut self) -> bool {
        matches!(self.status(), Ok((true, _)))
    }

    fn name(&self) -> String {
        self.reader.clone()
    }

    fn hold(&mut self) -> std::result::Result<proto::transport::Hold, TransportError> {
        if !self.shared {
            return Ok(proto::transport::Hold::Alone);
        }
        match self.begin() {
            Ok(reset) => Ok(proto::transport::Hold::Shared { reset }),
            Err(_) if !self.is_present() => Err(TransportError::Removed(self.reader.clone())),
            Err(e) => Err(TransportError::Io(e.to_string())),
        }
    }

    fn release(&mut self) {
        if self.shared {
            self.end(ffi::SCARD_LEAVE_CARD);
        }
    }
}

impl Drop for PcscTransport {
    fn drop(&mut self) {
        // Leave the card as it is, as other middleware does: a reset here would break the
        // sessions of every other program using the key. Ending a PIN session is the PIV
        // layer's job (VERIFY P1=FF), done by whoever verified.
        self.end(ffi::SCARD_LEAVE_CARD);
        // SAFETY: handle is live and disconnected once.
        unsafe { (self.ctx.api.disconnect)(self.handle, ffi::SCARD_LEAVE_CARD) };
    }
}

/// A change the [`Monitor`] saw.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ReaderEvent {
    ReaderAdded { reader: String },
    ReaderRemoved { reader: String },
    CardInserted { reader: String, atr: Option<String> },
    CardRemoved { reader: String },
}

/// Waits for cards and readers to come and go.
pub struct Monitor {
    ctx: Arc<Context>,
    /// Last seen state per reader.
    known: Vec<ReaderState>,
}

/// Wakes a [`Monitor`] blocked in [`Monitor::wait`] from another thread.
#[derive(Clone)]
pub struct MonitorWaker {
    ctx: Arc<Context>,
}

impl MonitorWaker {
    pub fn wake(&self) {
        // SAFETY: SCardCancel is the one call meant to be made from another thread.
        unsafe { (self.ctx.api.cancel)(self.ctx.ctx) };
    }
}

impl Monitor {
    /// Start watching; the readers present now are the baseline (no events for them).
    pub fn new() -> Result<Monitor> {
        let ctx = Arc::new(Context::establish()?);
        let known = ctx.reader_states()?;
        Ok(Monitor { ctx, known })
    }

    pub fn waker(&self) -> MonitorWaker {
        MonitorWaker { ctx: self.ctx.clone() }
    }

    /// The readers as last seen.
    pub fn readers(&self) -> &[ReaderState] {
        &self.known
    }

    /// Block until something changes or `timeout` passes (or [`MonitorWaker::wake`]); return
    /// what changed, possibly nothing.
    pub fn wait(&mut self, timeout: Duration) -> Result<Vec<ReaderEvent>> {
        let names: Vec<CString> = self.known.iter().map(|r| c_name(&r.name)).collect::<Result<_>>()?;
        let pnp = CStr::from_bytes_with_nul(ffi::PNP_NOTIFICATION).expect("constant is NUL-terminated");
        let mut states: Vec<ffi::SCARD_READERSTATE> = names
            .iter()
            .zip(&self.known)
            .map(|(n, k)| {
                let mut s = reader_state(n);
                s.dwCurrentState = if k.card_present { ffi::SCARD_STATE_PRESENT } else { ffi::SCARD_STATE_EMPTY };
                s
            })
            .collect();
        states.push(ffi::SCARD_READERSTATE {
            szReader: pnp.as_ptr(),
            pvUserData: ptr::null_mut(),
            // The PnP pseudo reader counts readers in the high 16 bits of its state.
            dwCurrentState: (self.known.len() as DWORD) << 16,
            dwEventState: 0,
            cbAtr: 0,
            rgbAtr: [0; ffi::MAX_ATR_SIZE],
        });
        let ms = timeout.as_millis().min(u128::from(u32::MAX - 1)) as DWORD;
        // SAFETY: names and pnp outlive the call.
        let rv =
            unsafe { (self.ctx.api.get_status_change)(self.ctx.ctx, ms, states.as_mut_ptr(), states.len() as DWORD) };
        match error::code(rv) {
            0 => {}
            error::SCARD_E_TIMEOUT | error::SCARD_E_CANCELLED => return Ok(Vec::new()),
            // A reader we listed has gone: fall through to a fresh listing.
            error::SCARD_E_UNKNOWN_READER | error::SCARD_E_READER_UNAVAILABLE => {}
            _ => error::check("wait for reader events", rv)?,
        }
        let now = self.ctx.reader_states()?;
        let events = diff(&self.known, &now);
        self.known = now;
        Ok(events)
    }
}

/// Events that lead from `before` to `after`.
fn diff(before: &[ReaderState], after: &[ReaderState]) -> Vec<ReaderEvent> {
    let mut out = Vec::new();
    for b in before {
        if !after.iter().any(|a| a.name == b.name) {
            if b.card_present {
                out.push(ReaderEvent::CardRemoved { reader: b.name.clone() });
            }
            out.push(ReaderEvent::ReaderRemoved { reader: b.name.clone() });
        }
    }
    for a in after {
        match before.iter().find(|b| b.name == a.name) {
            None => {
                out.push(ReaderEvent::ReaderAdded { reader: a.name.clone() });
                if a.card_present {
                    out.push(ReaderEvent::CardInserted { reader: a.name.clone(), atr: a.atr.clone() });
                }
            }
            Some(b) if b.card_present && !a.card_present => {
                out.push(ReaderEvent::CardRemoved { reader: a.name.clone() })
            }
            Some(b) if !b.card_present && a.card_present => {
                out.push(ReaderEvent::CardInserted { reader: a.name.clone(), atr: a.atr.clone() })
            }
            Some(_) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(name: &str, present: bool) -> ReaderState {
        ReaderState {
            name: name.into(),
            card_present: present,
            atr: present.then(|| "3B".into()),
            exclusive: false,
            mute: false,
        }
    }

    #[test]
    fn events_from_state_changes() {
        let before = [r("A", false), r("B", true), r("C", true)];
        let after = [r("A", true), r("B", false), r("D", false)];
        assert_eq!(
            diff(&before, &after),
            vec![
                ReaderEvent::CardRemoved { reader: "C".into() },
                ReaderEvent::ReaderRemoved { reader: "C".into() },
                ReaderEvent::CardInserted { reader: "A".into(), atr: Some("3B".into()) },
                ReaderEvent::CardRemoved { reader: "B".into() },
                ReaderEvent::ReaderAdded { reader: "D".into() },
            ]
        );
        assert!(diff(&after, &after).is_empty());
    }
}
