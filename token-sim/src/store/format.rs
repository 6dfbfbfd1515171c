//! The bytes of a state file, apart from any file system.
//!
//! ```text
//! "UKEYCARD" | format u16 BE | payload length u32 BE | payload | SHA-256(payload)
//! ```
//!
//! - Format 2 (written since): the payload is CBOR with every field named. Unknown fields are
//!   refused, never dropped: a build that adds a field (with a default, so older files read)
//!   bumps the format, and older builds then refuse the file as newer instead of losing the
//!   field on their next write. A change that defaults cannot express gets a converter here.
//! - Format 1 (read, converted on the next write): postcard, fields by position. Its card part
//!   is decoded into today's [`PersistentState`]; `tests/golden/v1` fails the day that stops
//!   working, and then the format-1 types must be frozen in this module.
//!
//! Whatever the bytes, decoding answers with a [`FormatError`], never a panic, and a state
//! that decodes is checked with [`PersistentState::validate`] before the card may run it.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::piv::PersistentState;

const MAGIC: &[u8; 8] = b"UKEYCARD";
const HEADER: usize = 14;
const CHECKSUM: usize = 32;
/// Version of the state file format this build writes.
pub const FORMAT_VERSION: u16 = 2;
/// The oldest format this build reads.
pub const OLDEST_FORMAT: u16 = 1;

/// Facts about the virtual key that are not part of the card.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SimMeta {
    /// Unix time of creation.
    pub created: u64,
    /// Scenario the key was made with.
    pub scenario: String,
    /// Deterministic mode: the RNG seed.
    pub seed: Option<u64>,
    /// How often the key was opened in deterministic mode: each open runs the seeded RNG on
    /// a stream of its own, so a run repeats but no challenge repeats in the key's life.
    #[serde(default)]
    pub boots: u64,
}

/// The seed predicts everything a deterministic key draws: `{:?}` does not show it.
impl std::fmt::Debug for SimMeta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimMeta")
            .field("created", &self.created)
            .field("scenario", &self.scenario)
            .field("seed", &self.seed.map(|_| "<redacted>"))
            .field("boots", &self.boots)
            .finish()
    }
}

/// Why bytes are not a state this build can run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("not a ukey state file (bad magic)")]
    BadMagic,
    #[error("length does not match the file size (truncated?)")]
    Truncated,
    #[error("checksum mismatch")]
    Checksum,
    #[error("format version 0")]
    VersionZero,
    #[error("written by a newer ukey (format {found}, this build reads up to {FORMAT_VERSION})")]
    Newer { found: u16 },
    #[error("undecodable format-{version} payload: {reason}")]
    Undecodable { version: u16, reason: String },
    #[error("invalid value: {0}")]
    Invalid(String),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope<'a> {
    meta: std::borrow::Cow<'a, SimMeta>,
    card: std::borrow::Cow<'a, PersistentState>,
}

/// Format 1's envelope: the meta had no boot count.
#[derive(Deserialize)]
struct EnvelopeV1 {
    meta: SimMetaV1,
    card: PersistentState,
}

#[derive(Deserialize)]
struct SimMetaV1 {
    created: u64,
    scenario: String,
    seed: Option<u64>,
}

/// A state as this build writes it. Fails only if the state cannot be encoded at all. The
/// bytes hold the key's private keys: both buffers are wiped when dropped.
pub fn encode(meta: &SimMeta, state: &PersistentState) -> Result<Zeroizing<Vec<u8>>, String> {
    let envelope = Envelope { meta: std::borrow::Cow::Borrowed(meta), card: std::borrow::Cow::Borrowed(state) };
    // Big enough for a full object memory, so the buffer never grows (and frees unwiped).
    let mut payload = Zeroizing::new(Vec::with_capacity(64 * 1024));
    ciborium::into_writer(&envelope, &mut *payload).map_err(|e| e.to_string())?;
    let len = u32::try_from(payload.len()).map_err(|_| "state larger than 4 GiB".to_string())?;
    let mut bytes = Zeroizing::new(Vec::with_capacity(HEADER + payload.len() + CHECKSUM));
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
    bytes.extend_from_slice(&len.to_be_bytes());
    bytes.extend_from_slice(&payload);
    bytes.extend_from_slice(&Sha256::digest(&*payload));
    Ok(bytes)
}

/// The format version of `bytes`, once magic, length and checksum are right.
pub fn check_frame(bytes: &[u8]) -> Result<(u16, &[u8]), FormatError> {
    if bytes.len() < HEADER || &bytes[..8] != MAGIC {
        return Err(FormatError::BadMagic);
    }
    let version = u16::from_be_bytes([bytes[8], bytes[9]]);
    let len = u32::from_be_bytes([bytes[10], bytes[11], bytes[12], bytes[13]]) as usize;
    if bytes.len() - HEADER != len.saturating_add(CHECKSUM) {
        return Err(FormatError::Truncated);
    }
    let payload = &bytes[HEADER..HEADER + len];
    if Sha256::digest(payload)[..] != bytes[HEADER + len..] {
        return Err(FormatError::Checksum);
    }
    match version {
        0 => Err(FormatError::VersionZero),
        v if v > FORMAT_VERSION => Err(FormatError::Newer { found: v }),
        v => Ok((v, payload)),
    }
}

/// Decode and validate a whole state file.
pub fn decode(bytes: &[u8]) -> Result<(SimMeta, PersistentState), FormatError> {
    let (version, payload) = check_frame(bytes)?;
    decode_payload(version, payload)
}

/// Decode and validate the payload of a given format version.
pub fn decode_payload(version: u16, payload: &[u8]) -> Result<(SimMeta, PersistentState), FormatError> {
    let undecodable = |reason: String| FormatError::Undecodable { version, reason };
    let (meta, card) = match version {
        1 => {
            let env: EnvelopeV1 = postcard::from_bytes(payload).map_err(|e| undecodable(e.to_string()))?;
            let m = env.meta;
            (SimMeta { created: m.created, scenario: m.scenario, seed: m.seed, boots: 0 }, env.card)
        }
        2 => {
            let env: Envelope<'static> = ciborium::from_reader(payload).map_err(|e| undecodable(e.to_string()))?;
            (env.meta.into_owned(), env.card.into_owned())
        }
        found => return Err(FormatError::Newer { found }),
    };
    card.validate().map_err(|e| FormatError::Invalid(e.to_string()))?;
    Ok((meta, card))
}
