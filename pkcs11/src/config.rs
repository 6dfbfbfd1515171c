//! Which keys the module shows: virtual key directories named in `UKEY_PKCS11_KEYS`
//! (colon-separated, like PATH), one slot each, in that order.

use std::path::PathBuf;

/// The environment variable that names the virtual key directories.
pub const KEYS_VAR: &str = "UKEY_PKCS11_KEYS";

/// One source of a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A virtual key directory (`ukey sim new DIR`), opened in this process.
    Dir(PathBuf),
}

impl Source {
    pub fn describe(&self) -> String {
        match self {
            Source::Dir(d) => format!("ukey virtual key {}", d.display()),
        }
    }
}

/// The sources `value` (of [`KEYS_VAR`]) names: empty entries are skipped.
pub fn parse_keys(value: &str) -> Vec<Source> {
    value.split(':').map(str::trim).filter(|s| !s.is_empty()).map(|s| Source::Dir(PathBuf::from(s))).collect()
}

/// The sources this process is configured with.
pub fn sources() -> Vec<Source> {
    std::env::var(KEYS_VAR).map(|v| parse_keys(&v)).unwrap_or_default()
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
}
