//! Which keys this machine has: the virtual keys in a directory, and the PC/SC readers (a
//! key in one read with a retry when the transport hiccups).

use std::path::{Path, PathBuf};
use std::time::Duration;

use host_driver::pcsc::{Pcsc, PcscTransport, ReaderState};
use host_driver::{Piv, PivError};

use crate::error::Error;

/// The virtual keys at `root`: the key itself, or the keys directly inside it (sorted).
/// A root that is neither gives none.
pub fn key_dirs_in(root: &Path) -> Result<Vec<PathBuf>, Error> {
    if token_sim::store::is_key_dir(root) {
        return Ok(vec![root.to_path_buf()]);
    }
    if !root.is_dir() {
        return Ok(Vec::new());
    }
    let mut keys: Vec<PathBuf> = std::fs::read_dir(root)
        .map_err(|source| Error::List { dir: root.to_path_buf(), source })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| token_sim::store::is_key_dir(p))
        .collect();
    keys.sort();
    Ok(keys)
}

/// The virtual keys at `root` that no `ukey sim serve` holds (a served one shows up as its
/// reader); a root that cannot be listed gives none.
pub fn unserved_key_dirs_in(root: &Path) -> Vec<PathBuf> {
    key_dirs_in(root).unwrap_or_default().into_iter().filter(|d| !crate::served::has_socket(d)).collect()
}

/// The names of the readers pcscd has, in its order.
pub fn reader_names() -> Result<Vec<String>, Error> {
    Ok(Pcsc::establish()?.readers()?)
}

/// The readers pcscd has and what each holds.
pub fn readers() -> Result<Vec<ReaderState>, Error> {
    Ok(Pcsc::establish()?.reader_states()?)
}

/// How often a read is tried when the transport fails.
const TRIES: usize = 3;

/// Read the key in `reader` with `read`. Reading spends nothing, so it is tried again when
/// another program reset the card under us (libykpiv resets on disconnect) or the transport
/// hiccuped: a transport error is transient, any other answer final.
pub fn read_reader<T>(
    pcsc: &Pcsc,
    reader: &str,
    mut read: impl FnMut(&mut Piv<PcscTransport>) -> Result<T, PivError>,
) -> Result<T, Error> {
    let mut attempt = 0;
    loop {
        let result = pcsc.connect(reader).map_err(Error::from).and_then(|t| Ok(read(&mut Piv::new(t))?));
        attempt += 1;
        let transient = matches!(&result, Err(Error::Piv(PivError::Transport(_))));
        if !transient || attempt == TRIES {
            return result;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
