//! `UKEY_PKCS11_LOG`: what the module logs, and where. `LEVEL` (error, warn, info, debug,
//! trace) logs to standard error; `LEVEL:FILE` appends to FILE, made 0600 if new. A symbolic
//! link at FILE is refused (it could point the log at a file someone else chose): the module
//! then logs to standard error and says so. Unset: warnings to standard error. No PIN is ever
//! logged: the module's own messages name none, and the driver logs only headers and status
//! words.

use std::sync::Once;

pub const LOG_VAR: &str = "UKEY_PKCS11_LOG";

/// Where and how much to log, from the variable's value.
pub fn parse(value: Option<&str>) -> (String, Option<std::path::PathBuf>) {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => ("warn".into(), None),
        Some(v) => match v.split_once(':') {
            Some((level, file)) => (level.to_string(), Some(file.into())),
            None => (v.to_string(), None),
        },
    }
}

/// Set up logging once per process (the host program may have its own subscriber: then it
/// gets the module's events, and this does nothing).
pub fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let (level, file) = parse(std::env::var(LOG_VAR).ok().as_deref());
        let filter = tracing_subscriber::EnvFilter::try_new(&level).unwrap_or_else(|_| "warn".into());
        let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false);
        let opened = file.map(|f| open(&f).map_err(|e| (f, e)));
        let _ = match opened {
            Some(Ok(f)) => builder.with_writer(std::sync::Mutex::new(f)).with_ansi(false).try_init(),
            _ => {
                let r = builder
                    .with_writer(std::io::stderr)
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                    .try_init();
                if let Some(Err((f, e))) = opened {
                    tracing::warn!("{LOG_VAR}: cannot log to {}: {e}; logging to standard error", f.display());
                }
                r
            }
        };
    });
}

/// The log file at `path`, for appending: created 0600, and never through a symbolic link.
fn open(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
    {
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            Err(std::io::Error::other("it is a symbolic link (refused: a log file must be a file of its own)"))
        }
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_and_file() {
        assert_eq!(parse(None), ("warn".into(), None));
        assert_eq!(parse(Some("debug")), ("debug".into(), None));
        assert_eq!(parse(Some("info:/tmp/p11.log")), ("info".into(), Some("/tmp/p11.log".into())));
    }

    #[test]
    fn the_file_is_private_and_never_a_symbolic_link() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p11.log");
        open(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let link = dir.path().join("link.log");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        let e = open(&link).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
    }
}
