//! Where a key is, and opening it: a virtual key's directory (opened in this process), a key
//! in a PC/SC reader, or a virtual key as a USB CCID token on the software bus. Everything
//! after opening sees only a [`Transport`].
//!
//! As a string (the agent's key ids, a configuration's entries): `dir:PATH`, `reader:NAME`,
//! `ccid:PATH`.

use std::path::{Path, PathBuf};

use host_driver::pcsc::{Pcsc, PcscTransport};
use proto::transport::Transport;
use token_sim::VirtualKey;

use crate::ccid::CcidKey;
use crate::error::Error;

/// One key's place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Locator {
    /// A virtual key's directory (`ukey sim new DIR`), opened in this process.
    Dir(PathBuf),
    /// A PC/SC reader, by name (or, for [`Locator::open`], a unique part of it).
    Reader(String),
    /// A virtual key's directory, reached as a USB CCID token on the software bus.
    Ccid(PathBuf),
}

/// A string that is none of `dir:PATH`, `reader:NAME`, `ccid:PATH`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} names no key: give dir:PATH, reader:NAME or ccid:PATH")]
pub struct ParseLocatorError(pub String);

impl Locator {
    /// Open the key for one user of it: a reader by its exact name or a unique part of it,
    /// held in a PC/SC transaction (other programs wait) until the transport is dropped.
    /// A served directory is refused at once.
    pub fn open(&self) -> Result<Box<dyn Transport>, Error> {
        Ok(match self {
            Locator::Dir(dir) => Box::new(open_dir(dir)?),
            Locator::Reader(wanted) => {
                let pcsc = Pcsc::establish()?;
                let name = pcsc.find_reader(wanted)?;
                Box::new(pcsc.connect(&name)?)
            }
            Locator::Ccid(dir) => Box::new(CcidKey::plug(open_dir(dir)?)?),
        })
    }

    /// Open the key for a holder that keeps it long and shares it (a PKCS#11 slot): a reader
    /// by its exact name, in a transaction per operation, so other programs use the card
    /// between. Directories open as with [`Locator::open`].
    pub fn open_shared(&self) -> Result<Box<dyn Transport>, Error> {
        match self {
            Locator::Reader(name) => Ok(Box::new(PcscTransport::connect_shared(name)?)),
            _ => self.open(),
        }
    }

    /// What a person calls the key: the directory's name, or the reader's.
    pub fn label(&self) -> String {
        match self {
            Locator::Dir(dir) => dir_label(dir),
            Locator::Reader(name) => name.clone(),
            Locator::Ccid(dir) => format!("{} (CCID)", dir_label(dir)),
        }
    }

    /// The virtual key's directory, for a directory or CCID locator.
    pub fn dir(&self) -> Option<&Path> {
        match self {
            Locator::Dir(dir) | Locator::Ccid(dir) => Some(dir),
            Locator::Reader(_) => None,
        }
    }
}

impl std::fmt::Display for Locator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Locator::Dir(dir) => write!(f, "dir:{}", dir.display()),
            Locator::Reader(name) => write!(f, "reader:{name}"),
            Locator::Ccid(dir) => write!(f, "ccid:{}", dir.display()),
        }
    }
}

impl std::str::FromStr for Locator {
    type Err = ParseLocatorError;

    fn from_str(s: &str) -> Result<Locator, ParseLocatorError> {
        let bad = || ParseLocatorError(s.to_string());
        let (kind, place) = s.split_once(':').ok_or_else(bad)?;
        if place.is_empty() {
            return Err(bad());
        }
        match kind {
            "dir" => Ok(Locator::Dir(PathBuf::from(place))),
            "reader" => Ok(Locator::Reader(place.to_string())),
            "ccid" => Ok(Locator::Ccid(PathBuf::from(place))),
            _ => Err(bad()),
        }
    }
}

/// A virtual key's directory, refused at once (not after the lock wait) while `ukey sim serve`
/// holds it: then it is reachable only through its reader.
pub fn open_dir(dir: &Path) -> Result<VirtualKey, Error> {
    if let Some(state) = crate::served::served_state(dir) {
        return Err(Error::Served { dir: dir.to_path_buf(), state });
    }
    VirtualKey::open(dir).map_err(|source| Error::OpenDir { dir: dir.to_path_buf(), source })
}

/// What a person calls the virtual key in `dir`: the directory's name.
pub fn dir_label(dir: &Path) -> String {
    dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| dir.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_round_trip() {
        for l in [
            Locator::Dir("/home/alice/.ukey/keys/alice".into()),
            Locator::Reader("Virtual PCD 00 00".into()),
            Locator::Ccid("keys/bob".into()),
        ] {
            assert_eq!(l.to_string().parse::<Locator>(), Ok(l));
        }
    }

    #[test]
    fn a_reader_name_may_hold_colons() {
        assert_eq!(
            "reader:Yubico: YubiKey OTP+CCID 00 00".parse(),
            Ok(Locator::Reader("Yubico: YubiKey OTP+CCID 00 00".into()))
        );
        assert_eq!("dir:/a:b".parse(), Ok(Locator::Dir("/a:b".into())));
    }

    #[test]
    fn other_strings_name_no_key() {
        for s in ["", "alice", "dir:", "usb:1-1", "Dir:/a"] {
            let e = s.parse::<Locator>().unwrap_err();
            assert_eq!(e, ParseLocatorError(s.to_string()));
            assert!(e.to_string().contains("dir:PATH, reader:NAME or ccid:PATH"), "{e}");
        }
    }

    #[test]
    fn labels_name_the_directory_or_the_reader() {
        assert_eq!(Locator::Dir("/x/keys/alice".into()).label(), "alice");
        assert_eq!(Locator::Ccid("/x/keys/alice".into()).label(), "alice (CCID)");
        assert_eq!(Locator::Reader("Virtual PCD 00 01".into()).label(), "Virtual PCD 00 01");
        assert_eq!(Locator::Dir("/".into()).label(), "/");
    }

    #[test]
    fn a_directory_that_is_no_key_is_refused_with_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let e = Locator::Dir(dir.path().into()).open().err().unwrap();
        assert!(
            crate::error::chain(&e).starts_with(&format!("opening the virtual key in {}: ", dir.path().display())),
            "{e}"
        );
    }
}
