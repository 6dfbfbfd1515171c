//! The options several commands share: which key, the management key, key listing, signing.

use std::path::PathBuf;

use clap::Args;
use keys::Locator;

use crate::secrets::PinArgs;

/// Which key a command works on: a virtual key's directory, a key in a PC/SC reader, or a
/// virtual key as a USB CCID device.
#[derive(Args, Debug, Clone)]
pub struct KeyArgs {
    /// Directory of a virtual key (made with `ukey sim new`)
    #[arg(long, value_name = "DIR", env = "UKEY_KEY", conflicts_with = "reader")]
    pub key: Option<PathBuf>,
    /// PC/SC reader holding the key: its name or a unique part of it (`ukey keys` lists them).
    /// Real keys, and virtual keys served with `ukey sim serve`
    #[arg(long, value_name = "NAME", env = "UKEY_READER")]
    pub reader: Option<String>,
    /// Directory of a virtual key reached as a USB CCID token: plugged into a software USB bus
    /// in this process and driven through the host's CCID transport (descriptors, power,
    /// XfrBlock), the way a real token's driver talks to it
    #[arg(long, value_name = "DIR", conflicts_with_all = ["key", "reader"])]
    pub ccid: Option<PathBuf>,
}

impl KeyArgs {
    pub fn dir(dir: &std::path::Path) -> KeyArgs {
        KeyArgs { key: Some(dir.to_path_buf()), reader: None, ccid: None }
    }

    /// Where the key these options name is.
    pub fn locator(&self) -> anyhow::Result<Locator> {
        Ok(match (&self.key, &self.reader, &self.ccid) {
            (Some(dir), _, _) => Locator::Dir(dir.clone()),
            (None, Some(reader), _) => Locator::Reader(reader.clone()),
            (None, None, Some(dir)) => Locator::Ccid(dir.clone()),
            (None, None, None) => anyhow::bail!(
                "which key? give --key DIR (a virtual key), --reader NAME (a key in a reader; see `ukey keys`) \
                 or --ccid DIR (a virtual key as a USB token)"
            ),
        })
    }

    /// Whether the options name a key at all.
    pub fn is_given(&self) -> bool {
        self.key.is_some() || self.reader.is_some() || self.ccid.is_some()
    }
}

/// Management-key options for commands that change the key.
#[derive(Args, Debug, Clone)]
pub struct MgmtArgs {
    /// Management key in hex (default: the factory key 010203..08 x3)
    #[arg(long, value_name = "HEX", env = "UKEY_MGMT_KEY", hide_env_values = true)]
    pub mgmt_key: Option<proto::secret::KeyHex>,
}

/// Options of `ukey keys`.
#[derive(Args, Debug)]
pub struct KeysArgs {
    /// Key directories, or directories holding key directories (default: $UKEY_HOME/keys)
    pub dirs: Vec<PathBuf>,
    /// Only virtual key directories: do not look at PC/SC readers
    #[arg(long)]
    pub no_pcsc: bool,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

/// Options of `ukey sign`.
#[derive(Args, Debug)]
pub struct SignArgs {
    #[command(flatten)]
    pub key: KeyArgs,
    /// Slot: 9a (authentication), 9c (signature), 9d, 9e
    #[arg(long, default_value = "9a")]
    pub slot: proto::piv::Slot,
    #[command(flatten)]
    pub pin: PinArgs,
    /// File to sign
    #[arg(long = "in", value_name = "FILE")]
    pub input: PathBuf,
    /// Where to write the DER signature (check it with `openssl dgst -sha256 -verify`)
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    #[arg(long)]
    pub json: bool,
}
