//! A virtual key's directory on disk. One state file, `card.ukey`:
//!
//! ```text
//! "UKEYCARD" | format u16 BE | payload length u32 BE | payload (postcard) | SHA-256(payload)
//! ```
//!
//! Every write goes to a temporary file, is fsynced, renamed over the old one, and the
//! directory is fsynced: a crash leaves either the old or the new state, never a mix.
//! A damaged or newer file is an error that names the file; nothing is ever reset silently.
//! While a key is open its directory is locked, so two processes cannot race its counters.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::piv::{PersistentState, Storage, StorageError};

pub const STATE_FILE: &str = "card.ukey";
const LOCK_FILE: &str = "lock";
const MAGIC: &[u8; 8] = b"UKEYCARD";
/// Version of the state file format this build writes and reads.
pub const FORMAT_VERSION: u16 = 1;
/// How long opening a key waits for another process to let go of it.
const LOCK_WAIT: Duration = Duration::from_secs(10);

/// Facts about the virtual key that are not part of the card.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SimMeta {
    /// Unix time of creation.
    pub created: u64,
    /// Scenario the key was made with.
    pub scenario: String,
    /// Deterministic mode: the RNG seed (every open starts the RNG from it).
    pub seed: Option<u64>,
}

#[derive(Serialize, Deserialize)]
struct Envelope<'a> {
    meta: std::borrow::Cow<'a, SimMeta>,
    card: std::borrow::Cow<'a, PersistentState>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot {action} {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{path} is not a ukey virtual key (no {STATE_FILE}); create one with `ukey sim new {path}`", path = .path.display())]
    NotAKey { path: PathBuf },
    #[error("{path} already holds a virtual key; pick another directory or delete it first", path = .path.display())]
    Exists { path: PathBuf },
    #[error("{path} is corrupted ({reason}); it was left untouched — restore it from a backup or create a new key", path = .path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("{path} was written by a newer ukey (format {found}, this build reads up to {supported}); upgrade ukey", path = .path.display())]
    NewerVersion { path: PathBuf, found: u16, supported: u16 },
    #[error("{path} is in use by another process (waited {waited:?}); stop it (e.g. `ukey sim serve`) and retry", path = .path.display())]
    Busy { path: PathBuf, waited: Duration },
}

/// The persistent home of one virtual key; implements the card's [`Storage`].
#[derive(Debug)]
pub struct FileStore {
    dir: PathBuf,
    meta: SimMeta,
    _lock: File,
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |source| StoreError::Io { action, path: path.to_path_buf(), source }
}

fn lock(dir: &Path) -> Result<File, StoreError> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(io("open", &path))?;
    let start = Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(fs::TryLockError::WouldBlock) if start.elapsed() < LOCK_WAIT => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Busy { path: dir.to_path_buf(), waited: start.elapsed() })
            }
            Err(fs::TryLockError::Error(e)) => return Err(io("lock", &path)(e)),
        }
    }
}

/// Whether `dir` looks like a virtual key (has a state file).
pub fn is_key_dir(dir: &Path) -> bool {
    dir.join(STATE_FILE).is_file()
}

impl FileStore {
    /// Make a new key in `dir` (created if missing; must not already hold a key).
    pub fn create(dir: &Path, meta: SimMeta, state: &PersistentState) -> Result<FileStore, StoreError> {
        fs::create_dir_all(dir).map_err(io("create", dir))?;
        let lock = lock(dir)?;
        if is_key_dir(dir) {
            return Err(StoreError::Exists { path: dir.to_path_buf() });
        }
        let mut store = FileStore { dir: dir.to_path_buf(), meta, _lock: lock };
        store.write(state)?;
        Ok(store)
    }

    /// Open the key in `dir`, returning its store and the state to run the card with.
    pub fn open(dir: &Path) -> Result<(FileStore, PersistentState), StoreError> {
        if !is_key_dir(dir) {
            return Err(StoreError::NotAKey { path: dir.to_path_buf() });
        }
        let lock = lock(dir)?;
        let (meta, state) = read_state(&dir.join(STATE_FILE))?;
        Ok((FileStore { dir: dir.to_path_buf(), meta, _lock: lock }, state))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn meta(&self) -> &SimMeta {
        &self.meta
    }

    fn write(&mut self, state: &PersistentState) -> Result<(), StoreError> {
        let envelope =
            Envelope { meta: std::borrow::Cow::Borrowed(&self.meta), card: std::borrow::Cow::Borrowed(state) };
        let payload = postcard::to_allocvec(&envelope)
            .map_err(|e| StoreError::Corrupt { path: self.dir.join(STATE_FILE), reason: e.to_string() })?;
        let mut bytes = Vec::with_capacity(payload.len() + 46);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
        bytes.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        bytes.extend_from_slice(&payload);
        bytes.extend_from_slice(&Sha256::digest(&payload));

        let tmp = self.dir.join(format!("{STATE_FILE}.tmp"));
        let path = self.dir.join(STATE_FILE);
        let mut f = File::create(&tmp).map_err(io("write", &tmp))?;
        f.write_all(&bytes).map_err(io("write", &tmp))?;
        f.sync_all().map_err(io("fsync", &tmp))?;
        drop(f);
        fs::rename(&tmp, &path).map_err(io("replace", &path))?;
        // The rename itself is durable only once the directory is synced.
        File::open(&self.dir).and_then(|d| d.sync_all()).map_err(io("fsync", &self.dir))?;
        Ok(())
    }
}

impl Storage for FileStore {
    fn persist(&mut self, state: &PersistentState) -> Result<(), StorageError> {
        self.write(state).map_err(|_| StorageError)
    }
}

/// Read and check a state file.
pub fn read_state(path: &Path) -> Result<(SimMeta, PersistentState), StoreError> {
    let bytes = fs::read(path).map_err(io("read", path))?;
    let corrupt = |reason: &str| StoreError::Corrupt { path: path.to_path_buf(), reason: reason.to_string() };
    if bytes.len() < 14 || &bytes[..8] != MAGIC {
        return Err(corrupt("not a ukey state file: bad magic"));
    }
    let version = u16::from_be_bytes([bytes[8], bytes[9]]);
    if version > FORMAT_VERSION {
        return Err(StoreError::NewerVersion { path: path.to_path_buf(), found: version, supported: FORMAT_VERSION });
    }
    if version == 0 {
        return Err(corrupt("format version 0"));
    }
    let len = u32::from_be_bytes([bytes[10], bytes[11], bytes[12], bytes[13]]) as usize;
    if bytes.len() != 14 + len + 32 {
        return Err(corrupt("length does not match the file size (truncated?)"));
    }
    let payload = &bytes[14..14 + len];
    if Sha256::digest(payload)[..] != bytes[14 + len..] {
        return Err(corrupt("checksum mismatch"));
    }
    let env: Envelope<'static> = postcard::from_bytes(payload).map_err(|e| corrupt(&format!("undecodable: {e}")))?;
    Ok((env.meta.into_owned(), env.card.into_owned()))
}
