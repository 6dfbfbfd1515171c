//! The functions a PKCS#11 caller gets from `C_GetFunctionList` (2.40) and `C_GetInterface`
//! (3.0): the one place with raw pointers. Each takes its C arguments apart, runs the
//! operation on its slot ([`Slot`], under the slot's lock) or on the [`Module`] (under the
//! module's lock, held only to find a slot), and writes the results back; a panic inside is
//! caught and answered CKR_GENERAL_ERROR, never unwound into the caller.
#![allow(non_snake_case, clippy::missing_safety_doc)]

mod cabi;
mod crypto;
mod general;
mod lists;
mod objects;
mod sessions;
mod slots;
mod state;

pub use lists::{C_GetFunctionList, C_GetInterface, C_GetInterfaceList, FUNCTIONS};
