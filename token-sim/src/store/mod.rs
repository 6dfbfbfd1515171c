//! A virtual key's directory on disk: the state file `card.ukey` (its bytes: [`format`]),
//! a lock file, and nothing else.
//!
//! Every write goes to a temporary file, is fsynced, renamed over the old one, and the
//! directory is fsynced: a crash leaves either the old or the new state, never a mix.
//! The directory is 0700 and every file 0600 from its first byte (the state holds private
//! keys and PIN hashes). A damaged, invalid or newer file is an error that names the file;
//! nothing is ever reset silently. While a key is open its directory is locked, so two
//! processes cannot race its counters.

pub mod format;

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::piv::{PersistentState, Storage, StorageError};
pub use format::{FormatError, SimMeta, FORMAT_VERSION};

pub const STATE_FILE: &str = "card.ukey";
const TEMP_FILE: &str = "card.ukey.tmp";
const LOCK_FILE: &str = "lock";
/// How long opening a key waits for another process to let go of it.
const LOCK_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot {action} {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{path} is not a ukey virtual key (no {STATE_FILE}); create one with `ukey sim new {path}`", path = .path.display())]
    NotAKey { path: PathBuf },
    #[error("{path} already holds a virtual key; pick another directory or delete it first", path = .path.display())]
    Exists { path: PathBuf },
    #[error("{path} is not empty; a virtual key needs a directory of its own (a new or an empty one)", path = .path.display())]
    NotEmpty { path: PathBuf },
    #[error("{path} is corrupted ({reason}); it was left untouched — restore it from a backup or create a new key", path = .path.display())]
    Corrupt { path: PathBuf, reason: FormatError },
    #[error("{path} was written by a newer ukey (format {found}, this build reads up to {supported}); upgrade ukey", path = .path.display())]
    NewerVersion { path: PathBuf, found: u16, supported: u16 },
    #[error("cannot encode the state of {path} ({reason}); nothing was written, the key on disk is as before", path = .path.display())]
    Encode { path: PathBuf, reason: String },
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

/// Open options for a file only its owner may read, whatever the umask.
fn private_file() -> OpenOptions {
    let mut opts = OpenOptions::new();
    opts.write(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    opts
}

fn fsync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io("fsync", dir))
}

/// Create `dir` (and missing parents) 0700 and make the new entries durable: a key made
/// just before a power loss must still be there. Returns the directories it fsynced (the
/// parent of each directory it made).
fn create_private_dir(dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let mut missing = Vec::new();
    let mut at = Some(dir);
    while let Some(d) = at.filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        missing.push(d);
        at = d.parent();
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(io("create", dir))?;
    // An existing (empty) directory chosen for a key becomes private too.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io("restrict", dir))?;
    }
    let mut synced = Vec::new();
    for d in missing {
        let parent = d.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        fsync_dir(parent)?;
        synced.push(parent.to_path_buf());
    }
    Ok(synced)
}

/// Take the key directory's lock, waiting up to `wait` for another holder to let go.
fn lock(dir: &Path, wait: Duration) -> Result<File, StoreError> {
    let path = dir.join(LOCK_FILE);
    let file = private_file().create(true).truncate(false).open(&path).map_err(io("open", &path))?;
    let start = Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(fs::TryLockError::WouldBlock) if start.elapsed() < wait => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Busy { path: dir.to_path_buf(), waited: start.elapsed() })
            }
            Err(fs::TryLockError::Error(e)) => return Err(io("lock", &path)(e)),
        }
    }
}

/// What to tell the user when other users may read a key's secrets; `None` when private.
fn exposure(dir: &Path, file: &Path) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| fs::metadata(p).map(|m| m.permissions().mode() & 0o777).unwrap_or(0);
        let (file_mode, dir_mode) = (mode(file), mode(dir));
        if file_mode & 0o077 != 0 || dir_mode & 0o077 != 0 {
            return Some(format!(
                "{} is open to other users (file mode {file_mode:03o}, directory mode {dir_mode:03o}) and holds the \
                 key's private keys and PIN hashes; fix it with: chmod 600 {} && chmod 700 {}",
                file.display(),
                file.display(),
                dir.display()
            ));
        }
    }
    let _ = (dir, file);
    None
}

/// Warn once per file and process when other users may read a key's secrets.
fn warn_if_exposed(dir: &Path, file: &Path) -> bool {
    static WARNED: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);
    let Some(message) = exposure(dir, file) else { return false };
    let mut warned = WARNED.lock().unwrap_or_else(|p| p.into_inner());
    if !warned.get_or_insert_with(HashSet::new).insert(file.to_path_buf()) {
        return false;
    }
    tracing::warn!("{message}");
    true
}

/// Whether `dir` looks like a virtual key (has a state file).
pub fn is_key_dir(dir: &Path) -> bool {
    dir.join(STATE_FILE).is_file()
}

impl FileStore {
    /// Make a new key in `dir` (created if missing; must not already hold a key).
    pub fn create(dir: &Path, meta: SimMeta, state: &PersistentState) -> Result<FileStore, StoreError> {
        // A key gets a directory of its own: an existing one must be empty (it is made
        // private, and `ukey sim new .` must not lock up a project or a home directory).
        if is_key_dir(dir) {
            return Err(StoreError::Exists { path: dir.to_path_buf() });
        }
        if let Ok(mut entries) = fs::read_dir(dir) {
            if entries.next().is_some() {
                return Err(StoreError::NotEmpty { path: dir.to_path_buf() });
            }
        }
        create_private_dir(dir)?;
        let lock = lock(dir, LOCK_WAIT)?;
        if is_key_dir(dir) {
            return Err(StoreError::Exists { path: dir.to_path_buf() });
        }
        let mut store = FileStore { dir: dir.to_path_buf(), meta, _lock: lock };
        store.write(state)?;
        Ok(store)
    }

    /// Open the key in `dir`, returning its store and the state to run the card with.
    /// In deterministic mode the open is counted (and written) before the card runs, so the
    /// RNG of this run starts on a stream no earlier run used.
    pub fn open(dir: &Path) -> Result<(FileStore, PersistentState), StoreError> {
        if !is_key_dir(dir) {
            return Err(StoreError::NotAKey { path: dir.to_path_buf() });
        }
        let lock = lock(dir, LOCK_WAIT)?;
        let path = dir.join(STATE_FILE);
        warn_if_exposed(dir, &path);
        let (meta, state) = read_state(&path)?;
        let mut store = FileStore { dir: dir.to_path_buf(), meta, _lock: lock };
        if store.meta.seed.is_some() {
            store.meta.boots = store.meta.boots.checked_add(1).ok_or_else(|| StoreError::Corrupt {
                path: path.clone(),
                reason: FormatError::Invalid("the key was opened 2^64 times".into()),
            })?;
            store.write(&state)?;
        }
        Ok((store, state))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn meta(&self) -> &SimMeta {
        &self.meta
    }

    fn write(&mut self, state: &PersistentState) -> Result<(), StoreError> {
        let path = self.dir.join(STATE_FILE);
        let bytes =
            format::encode(&self.meta, state).map_err(|reason| StoreError::Encode { path: path.clone(), reason })?;
        let tmp = self.dir.join(TEMP_FILE);
        // A temporary file left by a crash may carry other permissions: start afresh.
        match fs::remove_file(&tmp) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io("remove", &tmp)(e)),
            _ => {}
        }
        let mut f = private_file().create_new(true).open(&tmp).map_err(io("write", &tmp))?;
        f.write_all(&bytes).map_err(io("write", &tmp))?;
        f.sync_all().map_err(io("fsync", &tmp))?;
        drop(f);
        fs::rename(&tmp, &path).map_err(io("replace", &path))?;
        // The rename itself is durable only once the directory is synced.
        fsync_dir(&self.dir)
    }
}

impl Storage for FileStore {
    fn persist(&mut self, state: &PersistentState) -> Result<(), StorageError> {
        self.write(state).map_err(|e| {
            tracing::error!("{e}");
            StorageError
        })
    }
}

/// Read, check and validate a state file.
pub fn read_state(path: &Path) -> Result<(SimMeta, PersistentState), StoreError> {
    let bytes = zeroize::Zeroizing::new(fs::read(path).map_err(io("read", path))?);
    format::decode(&bytes).map_err(|reason| match reason {
        FormatError::Newer { found } => {
            StoreError::NewerVersion { path: path.to_path_buf(), found, supported: FORMAT_VERSION }
        }
        reason => StoreError::Corrupt { path: path.to_path_buf(), reason },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A factory-fresh plain card and its file's facts.
    fn fresh() -> (PersistentState, SimMeta) {
        let d = crate::piv::Defaults::factory();
        let state =
            crate::piv::factory_state(1, crate::piv::state::Flavor::Plain, &d, &mut crate::rng::make_rng(Some(1), 0))
                .unwrap();
        (state, SimMeta { created: 0, scenario: "fresh".into(), seed: None, boots: 0 })
    }

    #[test]
    fn a_key_open_to_other_users_is_named_once_with_the_fix() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("k");
        let (state, meta) = fresh();
        drop(FileStore::create(&dir, meta, &state).unwrap());
        let file = dir.join(STATE_FILE);
        assert_eq!(exposure(&dir, &file), None, "a new key is private");
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        let message = exposure(&dir, &file).expect("a 0644 state file is exposed");
        assert!(message.contains(&file.display().to_string()) && message.contains("chmod 600"), "{message}");
        fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o750)).unwrap();
        assert!(exposure(&dir, &file).unwrap().contains("directory mode 750"));
        assert!(warn_if_exposed(&dir, &file), "the first open warns");
        assert!(!warn_if_exposed(&dir, &file), "the second does not");
        drop(FileStore::open(&dir).unwrap());
    }

    #[test]
    fn new_directories_are_made_durable_through_their_parents() {
        let tmp = tempfile::tempdir().unwrap();
        let leaf = tmp.path().join("a/b/c");
        let synced = create_private_dir(&leaf).unwrap();
        let expect: Vec<PathBuf> = vec![tmp.path().join("a/b"), tmp.path().join("a"), tmp.path().to_path_buf()];
        assert_eq!(synced, expect, "the parent of every directory made");
        assert_eq!(create_private_dir(&leaf).unwrap(), Vec::<PathBuf>::new(), "nothing made, nothing to sync");
    }

    #[test]
    fn fsync_of_a_directory_really_opens_it() {
        // Durability itself needs a power cut to observe; this shows the sync is attempted
        // (a vanished directory is an error, not a silent success).
        let tmp = tempfile::tempdir().unwrap();
        assert!(fsync_dir(tmp.path()).is_ok());
        let err = fsync_dir(&tmp.path().join("gone")).unwrap_err();
        assert!(err.to_string().starts_with("cannot fsync"), "{err}");
    }

    #[test]
    fn a_leftover_temp_file_that_cannot_be_removed_fails_the_write_by_name() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("k");
        let (state, meta) = fresh();
        let mut store = FileStore::create(&dir, meta, &state).unwrap();
        // A directory where the temporary file goes: remove_file cannot take it away.
        fs::create_dir(dir.join(TEMP_FILE)).unwrap();
        fs::write(dir.join(TEMP_FILE).join("x"), b"x").unwrap();
        let err = store.write(&state).unwrap_err();
        assert!(err.to_string().starts_with("cannot remove"), "{err}");
        fs::remove_dir_all(dir.join(TEMP_FILE)).unwrap();
        store.write(&state).unwrap();
    }

    #[test]
    fn a_held_key_is_waited_for_then_refused_as_busy() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("k");
        fs::create_dir(&dir).unwrap();
        let held = lock(&dir, Duration::ZERO).unwrap();
        let start = Instant::now();
        let err = lock(&dir, Duration::from_millis(300)).unwrap_err();
        assert!(matches!(err, StoreError::Busy { .. }), "{err}");
        assert!(start.elapsed() >= Duration::from_millis(300), "it waited the whole time");
        assert!(err.to_string().contains("in use by another process"), "{err}");
        // Let go while another waits: the waiter gets it.
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            drop(held);
        });
        lock(&dir, Duration::from_secs(5)).expect("the lock once let go");
        releaser.join().unwrap();
    }
}
