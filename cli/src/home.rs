//! Default places: `$UKEY_HOME` (else `~/.ukey`) holds `keys/`, the test CA in `ca/` and the
//! manufacturer CA of virtual keys in `factory/`.

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

pub fn factory_dir() -> PathBuf {
    home().join("factory")
}

/// The manufacturer CA of virtual keys in `dir` (default `$UKEY_HOME/factory`), created on
/// first use: it issues each new key's attestation certificate (F9), and portals trust
/// attestations that chain to it.
pub fn factory(dir: Option<&std::path::Path>) -> anyhow::Result<std::sync::Arc<ca::Ca>> {
    use anyhow::Context;
    let dir = dir.map(PathBuf::from).unwrap_or_else(factory_dir);
    let ca = ca::Ca::open_or_create(&dir, FACTORY_SUBJECT, FACTORY_DAYS, &proto::clock::SystemClock)
        .with_context(|| format!("manufacturer CA in {}", dir.display()))?;
    Ok(std::sync::Arc::new(ca))
}

pub const FACTORY_SUBJECT: &str = "CN=ukey Factory PIV Attestation CA,O=ukey";
/// Longer than any key it certifies (20 years).
pub const FACTORY_DAYS: u64 = 30 * 365;
