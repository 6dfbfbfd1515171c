//! Reaching the key a command names: a virtual key's directory (in this process), a reader
//! (PC/SC), or a virtual key as a USB CCID token on the software bus. Everything after this
//! point sees only a `Transport`.

use std::path::Path;

use anyhow::{bail, Context, Result};
use host_driver::ccid::CcidTransport;
use host_driver::pcsc::Pcsc;
use host_driver::Piv;
use proto::Transport;
use token_sim::frontends::ccid::bus::HostEnd;
use token_sim::frontends::ccid::device::Plugged;
use token_sim::VirtualKey;

use crate::args::KeyArgs;
use crate::serve;

/// A key a command opened: any transport behind one PIV client.
pub type AnyKey = Session;

/// Ends the PIN session (VERIFY P1=FF) when the command is done with the key: a reader key is
/// shared with every program on the machine, and a PIN this command verified must not stay
/// verified for them.
pub struct Session(Piv<Box<dyn Transport>>);

impl std::ops::Deref for Session {
    type Target = Piv<Box<dyn Transport>>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Session {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.0.logout();
    }
}

/// The transport to the key named on the command line.
pub fn transport(key: &KeyArgs) -> Result<Box<dyn Transport>> {
    Ok(match (&key.key, &key.reader, &key.ccid) {
        (Some(dir), _, _) => Box::new(open_dir(dir)?),
        (None, Some(reader), _) => {
            let pcsc = Pcsc::establish()?;
            let name = pcsc.find_reader(reader)?;
            Box::new(pcsc.connect(&name)?)
        }
        (None, None, Some(dir)) => Box::new(CcidKey::plug(open_dir(dir)?)?),
        (None, None, None) => bail!(
            "which key? give --key DIR (a virtual key), --reader NAME (a key in a reader; see `ukey keys`) \
             or --ccid DIR (a virtual key as a USB token)"
        ),
    })
}

/// A virtual key plugged into the software USB bus, driven through CCID. The key is unplugged
/// when this is dropped.
pub struct CcidKey {
    transport: CcidTransport<HostEnd>,
    _plugged: Plugged,
}

impl CcidKey {
    pub fn plug(key: VirtualKey) -> Result<CcidKey> {
        let plugged = Plugged::new(token_sim::SharedKey::new(key));
        let transport = CcidTransport::open(plugged.host()).context("driving the key through CCID")?;
        Ok(CcidKey { transport, _plugged: plugged })
    }
}

impl Transport for CcidKey {
    fn transmit(&mut self, apdu: &[u8]) -> std::result::Result<Vec<u8>, proto::TransportError> {
        self.transport.transmit(apdu)
    }
    fn reset(&mut self) -> std::result::Result<Vec<u8>, proto::TransportError> {
        self.transport.reset()
    }
    fn is_present(&mut self) -> bool {
        self.transport.is_present()
    }
    fn name(&self) -> String {
        self.transport.name()
    }
    fn may_block(&self) -> bool {
        true
    }
}

/// Open the key named on the command line and select PIV on it.
pub fn open(key: &KeyArgs) -> Result<AnyKey> {
    let transport = transport(key)?;
    let name = transport.name();
    let mut piv = Piv::new(transport);
    piv.select().with_context(|| format!("{name}: the key did not answer SELECT PIV"))?;
    Ok(Session(piv))
}

/// A virtual key's directory, refused at once (not after the lock wait) while `ukey sim serve`
/// holds it: then it is reachable only through its reader.
pub fn open_dir(dir: &Path) -> Result<VirtualKey> {
    if let Some(state) = serve::served_state(dir) {
        bail!(
            "{} is being served by `ukey sim serve` ({state}); reach it through its reader with --reader",
            dir.display()
        );
    }
    VirtualKey::open(dir).with_context(|| format!("opening the virtual key in {}", dir.display()))
}

/// What a person calls the key of these arguments.
pub fn label(key: &KeyArgs) -> String {
    match (&key.key, &key.reader, &key.ccid) {
        (Some(dir), _, _) => dir_label(dir),
        (None, Some(r), _) => r.clone(),
        (None, None, Some(dir)) => format!("{} (CCID)", dir_label(dir)),
        (None, None, None) => "key".into(),
    }
}

pub fn dir_label(dir: &Path) -> String {
    dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| dir.display().to_string())
}

/// The virtual keys at `root`: the key itself, or the keys directly inside it (sorted).
/// A root that is neither gives none.
pub fn key_dirs_in(root: &Path) -> Result<Vec<std::path::PathBuf>> {
    if token_sim::store::is_key_dir(root) {
        return Ok(vec![root.to_path_buf()]);
    }
    if !root.is_dir() {
        return Ok(Vec::new());
    }
    let mut keys: Vec<std::path::PathBuf> = std::fs::read_dir(root)
        .with_context(|| format!("cannot list {}", root.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| token_sim::store::is_key_dir(p))
        .collect();
    keys.sort();
    Ok(keys)
}
