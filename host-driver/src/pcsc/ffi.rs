//! The PC/SC API of pcsc-lite, loaded at run time from libpcsclite.so.1.
//!
//! Written by hand, not taken from `pcsc-sys`: that crate links at build time through
//! pkg-config, which needs the libpcsclite-dev package and makes the binary refuse to start on a
//! machine without pcsc-lite. Loading at run time keeps `cargo build` free of system packages
//! and lets virtual keys work where PC/SC is missing. Only the dozen calls we use are declared.
//!
//! pcsc-lite on Linux: DWORD is `unsigned long`, LONG is `long` (64-bit on x86_64), and
//! SCARD_READERSTATE is not packed.
#![allow(non_snake_case, non_camel_case_types, clippy::upper_case_acronyms)]

use std::ffi::{c_char, c_long, c_ulong, c_void};

use libloading::Library;

pub type DWORD = c_ulong;
pub type LONG = c_long;
pub type SCARDCONTEXT = LONG;
pub type SCARDHANDLE = LONG;

pub const MAX_ATR_SIZE: usize = 33;

#[repr(C)]
pub struct SCARD_IO_REQUEST {
    pub dwProtocol: DWORD,
    pub cbPciLength: DWORD,
}

#[repr(C)]
pub struct SCARD_READERSTATE {
    pub szReader: *const c_char,
    pub pvUserData: *mut c_void,
    pub dwCurrentState: DWORD,
    pub dwEventState: DWORD,
    pub cbAtr: DWORD,
    pub rgbAtr: [u8; MAX_ATR_SIZE],
}

pub const SCARD_SCOPE_SYSTEM: DWORD = 2;
pub const SCARD_SHARE_SHARED: DWORD = 2;
pub const SCARD_PROTOCOL_T0: DWORD = 1;
pub const SCARD_PROTOCOL_T1: DWORD = 2;
pub const SCARD_LEAVE_CARD: DWORD = 0;
pub const SCARD_RESET_CARD: DWORD = 1;

pub const SCARD_STATE_UNAWARE: DWORD = 0x0000;
pub const SCARD_STATE_EMPTY: DWORD = 0x0010;
pub const SCARD_STATE_PRESENT: DWORD = 0x0020;
pub const SCARD_STATE_EXCLUSIVE: DWORD = 0x0080;
pub const SCARD_STATE_MUTE: DWORD = 0x0200;

/// The pseudo reader whose state changes when readers come and go.
pub const PNP_NOTIFICATION: &[u8] = b"\\\\?PnP?\\Notification\0";

// SCardStatus' card state (pcsc-lite's own numbering).
pub const SCARD_PRESENT: DWORD = 0x0004;

type EstablishContext = unsafe extern "C" fn(DWORD, *const c_void, *const c_void, *mut SCARDCONTEXT) -> LONG;
type ReleaseContext = unsafe extern "C" fn(SCARDCONTEXT) -> LONG;
type ListReaders = unsafe extern "C" fn(SCARDCONTEXT, *const c_char, *mut c_char, *mut DWORD) -> LONG;
type Connect = unsafe extern "C" fn(SCARDCONTEXT, *const c_char, DWORD, DWORD, *mut SCARDHANDLE, *mut DWORD) -> LONG;
type Reconnect = unsafe extern "C" fn(SCARDHANDLE, DWORD, DWORD, DWORD, *mut DWORD) -> LONG;
type Disconnect = unsafe extern "C" fn(SCARDHANDLE, DWORD) -> LONG;
type BeginTransaction = unsafe extern "C" fn(SCARDHANDLE) -> LONG;
type EndTransaction = unsafe extern "C" fn(SCARDHANDLE, DWORD) -> LONG;
type Status =
    unsafe extern "C" fn(SCARDHANDLE, *mut c_char, *mut DWORD, *mut DWORD, *mut DWORD, *mut u8, *mut DWORD) -> LONG;
type Transmit = unsafe extern "C" fn(
    SCARDHANDLE,
    *const SCARD_IO_REQUEST,
    *const u8,
    DWORD,
    *mut SCARD_IO_REQUEST,
    *mut u8,
    *mut DWORD,
) -> LONG;
type GetStatusChange = unsafe extern "C" fn(SCARDCONTEXT, DWORD, *mut SCARD_READERSTATE, DWORD) -> LONG;
type Cancel = unsafe extern "C" fn(SCARDCONTEXT) -> LONG;

/// The loaded library and its entry points. The function pointers stay valid while `_lib` lives.
pub struct Api {
    pub establish_context: EstablishContext,
    pub release_context: ReleaseContext,
    pub list_readers: ListReaders,
    pub connect: Connect,
    pub reconnect: Reconnect,
    pub disconnect: Disconnect,
    pub begin_transaction: BeginTransaction,
    pub end_transaction: EndTransaction,
    pub status: Status,
    pub transmit: Transmit,
    pub get_status_change: GetStatusChange,
    pub cancel: Cancel,
    _lib: Library,
}

/// Library names tried in order; `UKEY_PCSC_LIB` overrides.
const LIBRARY_NAMES: [&str; 2] = ["libpcsclite.so.1", "libpcsclite.so"];

impl Api {
    pub fn load() -> Result<Api, String> {
        let names: Vec<String> = match std::env::var("UKEY_PCSC_LIB") {
            Ok(n) if !n.is_empty() => vec![n],
            _ => LIBRARY_NAMES.iter().map(|s| s.to_string()).collect(),
        };
        let mut errors = Vec::new();
        for name in &names {
            // SAFETY: loading pcsc-lite runs no initialisers beyond its own, well-behaved ones.
            match unsafe { Library::new(name) } {
                Ok(lib) => return Self::resolve(lib).map_err(|e| format!("{name}: {e}")),
                Err(e) => errors.push(e.to_string()),
            }
        }
        Err(format!("cannot load the PC/SC library ({}); install pcscd and libpcsclite1", errors.join("; ")))
    }

    fn resolve(lib: Library) -> Result<Api, libloading::Error> {
        // SAFETY: the types above are pcsc-lite's documented prototypes for these symbols.
        unsafe {
            Ok(Api {
                establish_context: *lib.get(b"SCardEstablishContext\0")?,
                release_context: *lib.get(b"SCardReleaseContext\0")?,
                list_readers: *lib.get(b"SCardListReaders\0")?,
                connect: *lib.get(b"SCardConnect\0")?,
                reconnect: *lib.get(b"SCardReconnect\0")?,
                disconnect: *lib.get(b"SCardDisconnect\0")?,
                begin_transaction: *lib.get(b"SCardBeginTransaction\0")?,
                end_transaction: *lib.get(b"SCardEndTransaction\0")?,
                status: *lib.get(b"SCardStatus\0")?,
                transmit: *lib.get(b"SCardTransmit\0")?,
                get_status_change: *lib.get(b"SCardGetStatusChange\0")?,
                cancel: *lib.get(b"SCardCancel\0")?,
                _lib: lib,
            })
        }
    }
}
