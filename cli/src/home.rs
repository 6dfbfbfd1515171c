//! Default places: `$UKEY_HOME` (else `~/.ukey`) holds `keys/` and the test CA in `ca/`.

use std::path::PathBuf;

pub fn home() -> PathBuf {
    if let Some(h) = std::env::var_os("UKEY_HOME") {
        return PathBuf::from(h);
    }
    std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(".")).join(".ukey")
}

pub fn keys_dir() -> PathBuf {
    home().join("keys")
}

pub fn ca_dir() -> PathBuf {
    home().join("ca")
}
