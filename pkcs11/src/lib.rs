//! `libukey_pkcs11.so`: ukey's virtual keys as PKCS#11 tokens, for every program that speaks
//! PKCS#11 (pkcs11-tool, browsers through NSS, ssh, OpenSSL, p11-kit), without pcscd.
//!
//! - [`config`]: which keys: the directories in `UKEY_PKCS11_KEYS`, one slot each.
//! - [`token`]: one key behind one slot, through the host driver's PIV client.
//! - [`objects`]: the certificate, public and private key objects of each PIV slot, as
//!   OpenSC's PIV module shows them (CKA_ID 01..04, its labels).
//! - [`module`]: the slots, and which slot each session is on, behind the module's lock,
//!   which is never held while a card is used.
//! - [`slot`]: one slot's token and sessions, and every operation on them (login, search,
//!   signing, key and certificate management), behind the slot's own lock.
//! - `ffi`: the C entry points (`C_GetFunctionList`, `C_GetInterface`, ...), the one place
//!   with raw pointers; every entry point catches panics, and a forked child finds the module's
//!   lock free.
//! - `events`: C_WaitForSlotEvent, woken by PC/SC and by C_Finalize.
//! - [`log`](crate::log): `UKEY_PKCS11_LOG`.

pub mod config;
mod events;
mod ffi;
pub mod log;
pub mod module;
pub mod objects;
pub mod slot;
pub mod token;

pub use ffi::{C_GetFunctionList, C_GetInterface, C_GetInterfaceList, FUNCTIONS};
