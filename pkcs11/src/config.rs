//! Which keys the module shows: virtual key directories, one slot each, in order; then every
//! PC/SC reader when pcscd runs. Set in the environment (`UKEY_PKCS11_KEYS`, colon-separated
//! like PATH; `UKEY_PKCS11_READERS=off`), or in a file, `$UKEY_HOME/pkcs11.toml` (else
//! `~/.ukey/pkcs11.toml`, or the file `UKEY_PKCS11_CONFIG` names):
//!
//! ```toml
//! # Virtual key directories (`ukey sim new DIR`), one slot each; relative to this file.
//! keys = ["keys/alice", "/srv/ukey/bob"]
//! # PC/SC readers after them (default true).
//! readers = true
//! # The keys' management key, hex (48 digits for 3DES): with it a logged-in user may generate
//! # key pairs, delete keys (cards with MOVE KEY) and write or delete certificates without the
//! # SO login. Whoever reads this file can do the same: a file with a key that group or others
//! # may read is refused whole (chmod 600 it).
//! # mgmt_key = "010203040506070801020304050607080102030405060708"
//! ```
//!
//! The environment wins over the file, setting by setting. A file that cannot be parsed is
//! reported by line and column, never by its text, and ignored.

use std::path::PathBuf;

use keys::Locator;

/// The environment variable that names the virtual key directories.
pub const KEYS_VAR: &str = "UKEY_PKCS11_KEYS";
/// `off` (or `0`, `no`): no PC/SC readers.
pub const READERS_VAR: &str = "UKEY_PKCS11_READERS";
/// The management key, hex (as `mgmt_key` in the file).
pub const MGMT_KEY_VAR: &str = "UKEY_PKCS11_MGMT_KEY";
/// A configuration file other than `$UKEY_HOME/pkcs11.toml`.
pub const CONFIG_VAR: &str = "UKEY_PKCS11_CONFIG";

/// `pkcs11.toml`.
#[derive(Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    pub keys: Option<Vec<PathBuf>>,
    pub readers: Option<bool>,
    pub mgmt_key: Option<String>,
}

/// The settings a file may have: the only words of the file an error may name.
const SETTINGS: [&str; 3] = ["keys", "readers", "mgmt_key"];

/// Why the configuration file is not used. Never carries the file's text: toml's own errors
/// quote the offending line, and that line may be a mistyped `mgmt_key`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{}{}: {what}", path.display(), at.map(|(l, c)| format!(":{l}:{c}")).unwrap_or_default())]
    Parse {
        path: PathBuf,
        /// Line and column (from 1) where the parser stopped, when it says.
        at: Option<(usize, usize)>,
        what: String,
    },
    #[error(
        "{} holds a management key (mgmt_key) and group or others may read it (mode {mode:03o}): the file is \
         ignored; make it private with: chmod 600 {}",
        path.display(),
        path.display()
    )]
    Exposed { path: PathBuf, mode: u32 },
}

/// A description of a parse error in `text` at byte `at`, built from fixed words only (and the
/// name of the setting on that line, when it is one of [`SETTINGS`]).
fn describe(text: &str, at: Option<usize>) -> String {
    let what = if toml::from_str::<toml::Table>(text).is_err() {
        "not valid TOML (a string needs quotes, a list its brackets)"
    } else {
        "an unknown setting or a value of the wrong type (keys: a list of directories; readers: true or \
         false; mgmt_key: hex digits in quotes)"
    };
    let line = at.map(|i| {
        let start = text[..i.min(text.len())].rfind('\n').map_or(0, |n| n + 1);
        text[start..].lines().next().unwrap_or("")
    });
    let setting = line.and_then(|l| {
        let name = l.split('=').next().unwrap_or("").trim();
        SETTINGS.iter().find(|s| **s == name)
    });
    match setting {
        Some(s) => format!("{what}; in the setting {s}"),
        None => what.to_string(),
    }
}

/// Line and column (from 1) of byte `at` in `text`.
fn line_column(text: &str, at: usize) -> (usize, usize) {
    let before = &text[..at.min(text.len())];
    let line_start = before.rfind('\n').map_or(0, |n| n + 1);
    (before.matches('\n').count() + 1, before[line_start..].chars().count() + 1)
}

impl File {
    /// Parse `text`, from `path` (relative key directories are relative to its folder).
    pub fn parse(text: &str, path: &std::path::Path) -> Result<File, ConfigError> {
        let mut f: File = toml::from_str(text).map_err(|e| {
            let start = e.span().map(|s| s.start);
            ConfigError::Parse {
                path: path.to_path_buf(),
                at: start.map(|i| line_column(text, i)),
                what: describe(text, start),
            }
        })?;
        let base = path.parent().unwrap_or(std::path::Path::new("."));
        if let Some(keys) = &mut f.keys {
            for k in keys.iter_mut().filter(|k| k.is_relative()) {
                *k = base.join(&*k);
            }
        }
        Ok(f)
    }

    /// Read and parse the file at `path`. A file holding a management key must be its owner's
    /// alone (mode & 0o077 == 0): whoever reads the key can make and delete keys on the card.
    pub fn read(path: &std::path::Path) -> Result<File, ConfigError> {
        use std::io::Read;
        use std::os::unix::fs::PermissionsExt;
        let read = |source| ConfigError::Read { path: path.to_path_buf(), source };
        let mut file = std::fs::File::open(path).map_err(read)?;
        // The mode of the file read, not of whatever is at the path a moment later.
        let mode = file.metadata().map_err(read)?.permissions().mode() & 0o777;
        let mut text = zeroize::Zeroizing::new(String::new());
        file.read_to_string(&mut text).map_err(read)?;
        let f = File::parse(&text, path)?;
        if f.mgmt_key.is_some() && mode & 0o077 != 0 {
            return Err(ConfigError::Exposed { path: path.to_path_buf(), mode });
        }
        Ok(f)
    }
}

/// Where the configuration file is: none without a home ([`keys::home`]'s rule).
pub fn file_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(CONFIG_VAR) {
        return Some(p.into());
    }
    Some(keys::home::home()?.join("pkcs11.toml"))
}

/// The configuration file, if there is one; one that cannot be used is logged and ignored.
fn file() -> File {
    let Some(path) = file_path() else { return File::default() };
    match File::read(&path) {
        Ok(f) => f,
        Err(ConfigError::Read { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound && std::env::var_os(CONFIG_VAR).is_none() =>
        {
            File::default()
        }
        Err(e) => {
            tracing::error!("ignoring the configuration file: {e}");
            File::default()
        }
    }
}

/// How a slot names the key behind it.
pub fn slot_description(source: &Locator) -> String {
    match source {
        Locator::Dir(d) => format!("ukey virtual key {}", d.display()),
        Locator::Reader(r) => r.clone(),
        Locator::Ccid(d) => format!("ukey virtual key {} (CCID)", d.display()),
    }
}

/// The sources `value` (of [`KEYS_VAR`]) names: empty entries are skipped.
pub fn parse_keys(value: &str) -> Vec<Locator> {
    value.split(':').map(str::trim).filter(|s| !s.is_empty()).map(|s| Locator::Dir(PathBuf::from(s))).collect()
}

/// Whether PC/SC readers are wanted, from [`READERS_VAR`].
pub fn readers_wanted(value: Option<&str>) -> bool {
    !matches!(value.map(|v| v.trim().to_ascii_lowercase()).as_deref(), Some("off" | "0" | "no" | "false"))
}

/// What the module is configured with, from the environment and the file (read once).
pub struct Settings {
    /// The directories, then the readers pcscd has.
    pub sources: Vec<Locator>,
    /// The management key ([`MGMT_KEY_VAR`], else the file's `mgmt_key`), if any.
    pub mgmt_key: Option<zeroize::Zeroizing<String>>,
}

/// This process's settings.
pub fn load() -> Settings {
    let file = file();
    let mgmt_key = match std::env::var(MGMT_KEY_VAR) {
        Ok(v) => Some(v),
        Err(_) => file.mgmt_key,
    }
    .map(|k| zeroize::Zeroizing::new(k.trim().to_string()))
    .filter(|k| !k.is_empty());
    let mut sources: Vec<Locator> = match std::env::var(KEYS_VAR) {
        Ok(v) => parse_keys(&v),
        Err(_) => file.keys.unwrap_or_default().into_iter().map(Locator::Dir).collect(),
    };
    let readers = match std::env::var(READERS_VAR) {
        Ok(v) => readers_wanted(Some(&v)),
        Err(_) => file.readers.unwrap_or(true),
    };
    if readers {
        match keys::discover::reader_names() {
            Ok(names) => sources.extend(names.into_iter().map(Locator::Reader)),
            Err(e) if sources.is_empty() => {
                tracing::warn!("no PC/SC readers ({e}) and no {KEYS_VAR}: the module has no slots")
            }
            Err(e) => tracing::info!("no PC/SC readers ({e}): only the key directories of {KEYS_VAR}"),
        }
    }
    Settings { sources, mgmt_key }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_directories_are_colon_separated_and_blanks_skipped() {
        assert_eq!(
            parse_keys("/a/alice::/b/bob: "),
            vec![Locator::Dir("/a/alice".into()), Locator::Dir("/b/bob".into())]
        );
        assert!(parse_keys("").is_empty());
    }

    #[test]
    fn the_file_names_keys_relative_to_itself_and_refuses_unknown_settings() {
        let path = std::path::Path::new("/etc/ukey/pkcs11.toml");
        let f = File::parse("keys = [\"keys/alice\", \"/srv/bob\"]\nreaders = false\n", path).unwrap();
        assert_eq!(f.keys, Some(vec![PathBuf::from("/etc/ukey/keys/alice"), PathBuf::from("/srv/bob")]));
        assert_eq!(f.readers, Some(false));
        let e = File::parse("key = []", path).unwrap_err().to_string();
        assert!(e.starts_with("/etc/ukey/pkcs11.toml:1:1: an unknown setting"), "{e}");
    }

    #[test]
    fn a_parse_error_names_line_and_column_and_never_the_text() {
        let path = std::path::Path::new("/etc/ukey/pkcs11.toml");
        let secret = "0102030405060708a1a2a3a4a5a6a7a8b1b2b3b4b5b6b7b8";
        for text in [
            format!("readers = false\nmgmt_key = {secret}\n"),
            format!("readers = false\nmgmt_key = \"{secret}\n"),
            format!("readers = false\nmgmt_key = [\"{secret}\"]\n"),
            format!("readers = false\nmgmt_kye = \"{secret}\"\n"),
            "mgmt_key = 123456\n".to_string(),
        ] {
            let e = File::parse(&text, path).unwrap_err().to_string();
            assert!(e.starts_with("/etc/ukey/pkcs11.toml:"), "{e}");
            assert!(!e.contains("0102") && !e.contains("123456") && !e.contains("mgmt_kye"), "{e}");
        }
        let e = File::parse(&format!("readers = false\nmgmt_key = {secret}\n"), path).unwrap_err().to_string();
        assert!(
            e.starts_with("/etc/ukey/pkcs11.toml:2:")
                && e.contains(": not valid TOML")
                && e.ends_with("setting mgmt_key"),
            "{e}"
        );
    }

    #[test]
    fn readers_are_on_unless_turned_off() {
        assert!(readers_wanted(None) && readers_wanted(Some("on")));
        assert!(!readers_wanted(Some("off")) && !readers_wanted(Some(" 0 ")) && !readers_wanted(Some("No")));
    }
}
