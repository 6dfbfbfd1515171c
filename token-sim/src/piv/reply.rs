//! The response data of one command, before it is cut into APDU-sized chunks.

use super::buf::Buf;
use super::state::MAX_OBJECT;

/// Response data of one command before it is cut into APDU-sized chunks.
pub const MAX_REPLY: usize = MAX_OBJECT + 64;
pub type Reply = Buf<MAX_REPLY>;
