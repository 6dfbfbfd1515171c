//! The key commands (`ukey sim`, `keys`, `pin`, `key`, `cert`, `sign`, `ca`), one module per
//! command group; each only turns its arguments into calls on the driver and the keys crate,
//! and their answers into output.

mod ca;
mod cert;
mod common;
mod key;
mod list;
mod pin;
mod sign;
mod sim;

pub use ca::{ca_init, ca_issue, CaInitArgs, CaIssueArgs};
pub use cert::{cert_export, cert_import, cert_request, ExportArgs, ImportArgs, RequestArgs};
pub use common::mgmt_key;
pub use key::{key_generate, GenerateArgs};
pub use list::keys;
pub use pin::{pin_change, pin_retries, pin_unblock, pin_verify};
pub use sign::sign;
pub use sim::{make_key, sim_info, sim_new, SimNewArgs};
