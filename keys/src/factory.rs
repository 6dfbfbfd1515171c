//! The manufacturer CA of virtual keys: it issues each new key's attestation certificate (F9),
//! and portals trust attestations that chain to it.

use std::path::Path;
use std::sync::Arc;

use crate::error::Error;

pub const FACTORY_SUBJECT: &str = "CN=ukey Factory PIV Attestation CA,O=ukey";
/// Longer than any key it certifies (20 years).
pub const FACTORY_DAYS: u64 = 30 * 365;

/// The manufacturer CA in `dir` (default `$UKEY_HOME/factory`), created on first use.
pub fn factory(dir: Option<&Path>) -> Result<Arc<ca::Ca>, Error> {
    let dir = match dir {
        Some(d) => d.to_path_buf(),
        None => crate::home::factory_dir()?,
    };
    let ca = ca::Ca::open_or_create(&dir, FACTORY_SUBJECT, FACTORY_DAYS, &proto::clock::SystemClock)
        .map_err(|source| Error::Factory { dir, source })?;
    Ok(Arc::new(ca))
}
