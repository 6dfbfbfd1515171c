//! Where ukey keeps its files: `$UKEY_HOME`, else `~/.ukey`. It holds `keys/` (virtual keys),
//! the test CA in `ca/`, the manufacturer CA of virtual keys in `factory/`, the portal's
//! database and `pkcs11.toml`.
//!
//! The one rule, for every program and library: an empty variable is an unset one (as a
//! shell's `UKEY_HOME= cmd` means), and with neither `UKEY_HOME` nor `HOME` there is no home:
//! nothing is read from or written to whatever directory the process happens to run in.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::error::Error;

/// The variable that names ukey's home.
pub const HOME_VAR: &str = "UKEY_HOME";

/// The home these values of `UKEY_HOME` and `HOME` give (the rule, without the environment).
pub fn home_from(ukey_home: Option<OsString>, home: Option<OsString>) -> Option<PathBuf> {
    let set = |v: Option<OsString>| v.filter(|v| !v.is_empty()).map(PathBuf::from);
    set(ukey_home).or_else(|| set(home).map(|h| h.join(".ukey")))
}

/// This process's home for ukey, if it has one.
pub fn home() -> Option<PathBuf> {
    home_from(std::env::var_os(HOME_VAR), std::env::var_os("HOME"))
}

/// This process's home for ukey; an error naming the variables when there is none.
pub fn required() -> Result<PathBuf, Error> {
    home().ok_or(Error::NoHome)
}

/// `$UKEY_HOME/keys`: the virtual keys `ukey keys` and the agent look at by default.
pub fn keys_dir() -> Result<PathBuf, Error> {
    Ok(required()?.join("keys"))
}

/// `$UKEY_HOME/ca`: the test CA.
pub fn ca_dir() -> Result<PathBuf, Error> {
    Ok(required()?.join("ca"))
}

/// `$UKEY_HOME/factory`: the manufacturer CA of virtual keys.
pub fn factory_dir() -> Result<PathBuf, Error> {
    Ok(required()?.join("factory"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(s: &str) -> Option<OsString> {
        Some(OsString::from(s))
    }

    #[test]
    fn ukey_home_wins_over_home() {
        assert_eq!(home_from(os("/srv/ukey"), os("/home/alice")), Some(PathBuf::from("/srv/ukey")));
        assert_eq!(home_from(os("rel/home"), None), Some(PathBuf::from("rel/home")));
    }

    #[test]
    fn without_ukey_home_it_is_dot_ukey_in_home() {
        assert_eq!(home_from(None, os("/home/alice")), Some(PathBuf::from("/home/alice/.ukey")));
    }

    #[test]
    fn an_empty_variable_is_an_unset_one() {
        assert_eq!(home_from(os(""), os("/home/alice")), Some(PathBuf::from("/home/alice/.ukey")));
        assert_eq!(home_from(os(""), os("")), None);
    }

    #[test]
    fn neither_variable_is_no_home() {
        assert_eq!(home_from(None, None), None);
    }
}
