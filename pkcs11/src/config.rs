//! Which keys the module shows: virtual key directories named in `UKEY_PKCS11_KEYS`
//! (colon-separated, like PATH), one slot each, in that order; then every PC/SC reader when
//! pcscd runs (`UKEY_PKCS11_READERS=off` leaves them out).

use std::path::PathBuf;

/// The environment variable that names the virtual key directories.
pub const KEYS_VAR: &str = "UKEY_PKCS11_KEYS";
/// `off` (or `0`, `no`): no PC/SC readers.
pub const READERS_VAR: &str = "UKEY_PKCS11_READERS";

/// One source of a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A virtual key directory (`ukey sim new DIR`), opened in this process.
    Dir(PathBuf),
    /// A PC/SC reader, by name; its card, when it holds a PIV one.
    Reader(String),
}

impl Source {
    pub fn describe(&self) -> String {
        match self {
            Source::Dir(d) => format!("ukey virtual key {}", d.display()),
            Source::Reader(r) => r.clone(),
        }
    }
}

/// The sources `value` (of [`KEYS_VAR`]) names: empty entries are skipped.
pub fn parse_keys(value: &str) -> Vec<Source> {
    value.split(':').map(str::trim).filter(|s| !s.is_empty()).map(|s| Source::Dir(PathBuf::from(s))).collect()
}

/// Whether PC/SC readers are wanted, from [`READERS_VAR`].
pub fn readers_wanted(value: Option<&str>) -> bool {
    !matches!(value.map(|v| v.trim().to_ascii_lowercase()).as_deref(), Some("off" | "0" | "no" | "false"))
}

/// The sources this process is configured with: the directories, then the readers pcscd has.
pub fn sources() -> Vec<Source> {
    let mut all: Vec<Source> = std::env::var(KEYS_VAR).map(|v| parse_keys(&v)).unwrap_or_default();
    if !readers_wanted(std::env::var(READERS_VAR).ok().as_deref()) {
        return all;
    }
    match host_driver::pcsc::Pcsc::establish().and_then(|p| p.readers()) {
        Ok(names) => all.extend(names.into_iter().map(Source::Reader)),
        Err(e) if all.is_empty() => {
            tracing::warn!("no PC/SC readers ({e}) and no {KEYS_VAR}: the module has no slots")
        }
        Err(e) => tracing::info!("no PC/SC readers ({e}): only the key directories of {KEYS_VAR}"),
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_directories_are_colon_separated_and_blanks_skipped() {
        assert_eq!(
            parse_keys("/a/alice::/b/bob: "),
            vec![Source::Dir("/a/alice".into()), Source::Dir("/b/bob".into())]
        );
        assert!(parse_keys("").is_empty());
    }

    #[test]
    fn readers_are_on_unless_turned_off() {
        assert!(readers_wanted(None) && readers_wanted(Some("on")));
        assert!(!readers_wanted(Some("off")) && !readers_wanted(Some(" 0 ")) && !readers_wanted(Some("No")));
    }
}
